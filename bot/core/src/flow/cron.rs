//! Cron schedules for maintenance flows.
//!
//! Flow files use the five-field crontab syntax operators know (`min hour day-of-month month
//! day-of-week`, Sunday = 0 or 7), or the `@daily`/`@weekly`/`@monthly` shorthands. The `cron`
//! crate wants a seconds field and numbers Sunday as 1, so numeric days of week are translated to
//! names before parsing; six- and seven-field expressions pass through unchanged.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A validated cron schedule, remembering the expression the author wrote.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CronSpec {
    expression: String,
    // Boxed: a parsed schedule is large, and flows carry one only for maintenance.
    schedule: Box<cron::Schedule>,
}

/// A cron expression that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{expression}` is not a valid cron schedule: {reason}")]
pub struct CronError {
    pub expression: String,
    pub reason: String,
}

impl CronSpec {
    pub fn parse(expression: &str) -> Result<Self, CronError> {
        let trimmed = expression.trim();
        let fail = |reason: String| CronError {
            expression: trimmed.to_owned(),
            reason,
        };
        let translated = translate(trimmed).map_err(fail)?;
        let schedule = cron::Schedule::from_str(&translated).map_err(|e| fail(e.to_string()))?;
        if schedule.upcoming(Utc).next().is_none() {
            return Err(fail("it never fires".to_owned()));
        }
        Ok(Self {
            expression: trimmed.to_owned(),
            schedule: Box::new(schedule),
        })
    }

    /// The expression as the author wrote it.
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The first run strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.schedule.after(&after).next()
    }
}

impl PartialEq for CronSpec {
    fn eq(&self, other: &Self) -> bool {
        self.expression == other.expression
    }
}

impl Eq for CronSpec {}

impl fmt::Display for CronSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.expression)
    }
}

impl TryFrom<String> for CronSpec {
    type Error = CronError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<CronSpec> for String {
    fn from(value: CronSpec) -> Self {
        value.expression
    }
}

const DAY_NAMES: [&str; 8] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"];

/// Turns a crontab expression into the `cron` crate's dialect.
fn translate(expression: &str) -> Result<String, String> {
    if expression.starts_with('@') {
        return Ok(expression.to_owned());
    }
    let fields: Vec<&str> = expression.split_whitespace().collect();
    match fields.len() {
        5 => {
            let dow = translate_day_of_week(fields[4])?;
            Ok(format!(
                "0 {} {} {} {} {}",
                fields[0], fields[1], fields[2], fields[3], dow
            ))
        }
        6 | 7 => Ok(expression.to_owned()),
        n => Err(format!(
            "expected 5 fields (minute hour day-of-month month day-of-week), found {n}"
        )),
    }
}

/// Maps crontab day numbers (0–7, Sunday = 0 or 7) to names, leaving step counts alone.
fn translate_day_of_week(field: &str) -> Result<String, String> {
    let items: Result<Vec<String>, String> = field
        .split(',')
        .map(|item| {
            let (range, step) = match item.split_once('/') {
                Some((range, step)) => (range, Some(step)),
                None => (item, None),
            };
            let mapped: Result<Vec<String>, String> = range
                .split('-')
                .map(|part| match part.parse::<usize>() {
                    Ok(n) if n < DAY_NAMES.len() => Ok(DAY_NAMES[n].to_owned()),
                    Ok(n) => Err(format!("day of week {n} is out of range (0-7)")),
                    Err(_) => Ok(part.to_owned()),
                })
                .collect();
            let mut out = mapped?.join("-");
            if let Some(step) = step {
                out.push('/');
                out.push_str(step);
            }
            Ok(out)
        })
        .collect();
    Ok(items?.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, TimeZone, Timelike, Weekday};

    fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
    }

    #[test]
    fn five_field_crontab_is_accepted() {
        let spec = CronSpec::parse("30 6 1 * *").unwrap();
        let next = spec.next_after(at(2026, 11, 22, 0)).unwrap();
        assert_eq!(
            (next.month(), next.day(), next.hour(), next.minute()),
            (12, 1, 6, 30)
        );
    }

    #[test]
    fn crontab_day_numbers_mean_what_operators_expect() {
        // 1 is Monday in crontab (the cron crate would read it as Sunday).
        let spec = CronSpec::parse("0 9 * * 1").unwrap();
        let next = spec.next_after(at(2026, 11, 22, 0)).unwrap();
        assert_eq!(next.weekday(), Weekday::Mon);
        let weekdays = CronSpec::parse("0 9 * * 1-5").unwrap();
        let sat_noon = at(2026, 11, 21, 12);
        assert_eq!(
            weekdays.next_after(sat_noon).unwrap().weekday(),
            Weekday::Mon
        );
        let sunday = CronSpec::parse("0 9 * * 7").unwrap();
        assert_eq!(sunday.next_after(sat_noon).unwrap().weekday(), Weekday::Sun);
    }

    #[test]
    fn shorthands_and_six_fields_pass_through() {
        assert!(CronSpec::parse("@monthly").is_ok());
        assert!(CronSpec::parse("0 0 6 * * Mon").is_ok());
    }

    #[test]
    fn bad_expressions_say_why() {
        let err = CronSpec::parse("every tuesday").unwrap_err();
        assert!(err.reason.contains("expected 5 fields"), "{err}");
        assert!(CronSpec::parse("61 * * * *").is_err());
        assert!(
            CronSpec::parse("0 9 * * 9")
                .unwrap_err()
                .reason
                .contains("out of range")
        );
    }

    #[test]
    fn serde_keeps_the_authors_expression() {
        let spec = CronSpec::parse("0 6 1 * *").unwrap();
        let json = serde_json::to_string(&spec).unwrap();
        assert_eq!(json, "\"0 6 1 * *\"");
        let back: CronSpec = serde_json::from_str(&json).unwrap();
        assert_eq!(back, spec);
    }
}
