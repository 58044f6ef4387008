//! Escalation metrics: time to claim, time to first action after claim, per tech, per problem
//! domain, trend. Pure functions over rows the store returns, so the figures are testable exactly.
//!
//! Definitions (the seeds' two-metric framing): the *in-product* time to first action is measured
//! from `claimed_at` to the claimer's first recorded step strictly after it (negative deltas are
//! floored at zero). It is not "minutes saved": that needs the owner's manual baseline, which is
//! shown beside it, labelled.
//!
//! Median: the middle value (the mean of the two middle values for an even count).
//! p95: nearest rank, the ⌈0.95·n⌉-th smallest value.

use crate::domain::Priority;
use crate::ids::{HandoffId, UserId};
use crate::time::Timestamp;
use chrono::{Datelike, Duration};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One escalation, as the metrics need it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EscalationRow {
    pub handoff_id: HandoffId,
    pub created_at: Timestamp,
    pub priority: Priority,
    pub claimed_by: Option<UserId>,
    pub claimed_by_name: Option<String>,
    pub claimed_at: Option<Timestamp>,
    /// The claimer's first step strictly after `claimed_at`.
    pub first_action_at: Option<Timestamp>,
    pub resolved_at: Option<Timestamp>,
    /// The category of the session's flow (`None`: free-form).
    pub category: Option<String>,
    pub claim_count: i32,
    pub release_count: i32,
}

/// The reporting window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Period {
    #[serde(rename = "7d")]
    Days7,
    #[serde(rename = "30d")]
    Days30,
    #[serde(rename = "90d")]
    Days90,
}

impl Period {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "7d" => Some(Self::Days7),
            "30d" => Some(Self::Days30),
            "90d" => Some(Self::Days90),
            _ => None,
        }
    }

    pub const fn days(self) -> i64 {
        match self {
            Self::Days7 => 7,
            Self::Days30 => 30,
            Self::Days90 => 90,
        }
    }

    pub const fn label(self) -> &'static str {
        match self {
            Self::Days7 => "7d",
            Self::Days30 => "30d",
            Self::Days90 => "90d",
        }
    }

    /// `[now - days, now)`.
    pub fn window(self, now: Timestamp) -> (Timestamp, Timestamp) {
        (now.plus_millis(-self.days() * 86_400_000), now)
    }
}

/// Average, median and p95 of durations, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct Stats {
    pub count: usize,
    pub avg_seconds: Option<f64>,
    pub median_seconds: Option<f64>,
    pub p95_seconds: Option<f64>,
}

impl Stats {
    /// From durations in milliseconds (negative values count as zero).
    pub fn of(millis: &[i64]) -> Self {
        let mut values: Vec<f64> = millis.iter().map(|m| (*m).max(0) as f64 / 1000.0).collect();
        if values.is_empty() {
            return Self::default();
        }
        values.sort_by(f64::total_cmp);
        let n = values.len();
        let median = if n % 2 == 1 {
            values[n / 2]
        } else {
            (values[n / 2 - 1] + values[n / 2]) / 2.0
        };
        let rank = ((0.95 * n as f64).ceil() as usize).clamp(1, n);
        Self {
            count: n,
            avg_seconds: Some(values.iter().sum::<f64>() / n as f64),
            median_seconds: Some(median),
            p95_seconds: Some(values[rank - 1]),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TechRow {
    pub name: String,
    pub claimed: usize,
    pub with_action: usize,
    pub time_to_first_action: Stats,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DomainRow {
    pub domain: String,
    pub escalations: usize,
    pub claimed: usize,
    pub time_to_first_action: Stats,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeekRow {
    /// The Monday the ISO week starts on, `2026-11-16`.
    pub week_start: String,
    pub escalations: usize,
    pub claimed: usize,
    pub median_first_action_seconds: Option<f64>,
}

/// Everything the metrics page, JSON and CSV show.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EscalationMetrics {
    pub period: Period,
    pub since: Timestamp,
    pub until: Timestamp,
    pub escalations: usize,
    pub claimed: usize,
    pub unclaimed: usize,
    pub time_to_claim: Stats,
    /// In-product: claim → the claimer's first action.
    pub time_to_first_action: Stats,
    /// Claimed escalations whose claimer has acted, over claimed escalations (0–1).
    pub claimed_with_action_rate: Option<f64>,
    pub releases: i64,
    /// Claims after the first (after a release).
    pub reclaims: i64,
    /// Escalation → session resolved.
    pub time_to_resolve: Stats,
    pub per_tech: Vec<TechRow>,
    pub per_domain: Vec<DomainRow>,
    pub weekly: Vec<WeekRow>,
    /// The owner's manual "before" measurement, minutes per escalation (not from the product).
    pub manual_baseline_minutes: Option<f64>,
}

fn delta(from: Option<Timestamp>, to: Option<Timestamp>) -> Option<i64> {
    Some(to?.as_millis() - from?.as_millis())
}

/// Aggregates rows (already limited to the window and the account).
pub fn compute(
    rows: &[EscalationRow],
    period: Period,
    since: Timestamp,
    until: Timestamp,
    manual_baseline_minutes: Option<f64>,
) -> EscalationMetrics {
    let claimed: Vec<&EscalationRow> = rows.iter().filter(|r| r.claimed_at.is_some()).collect();
    let ttc: Vec<i64> = claimed
        .iter()
        .filter_map(|r| delta(Some(r.created_at), r.claimed_at))
        .collect();
    let ttfa_of = |rows: &[&EscalationRow]| -> Vec<i64> {
        rows.iter()
            .filter_map(|r| delta(r.claimed_at, r.first_action_at))
            .collect()
    };
    let ttfa = ttfa_of(&claimed);
    let ttr: Vec<i64> = rows
        .iter()
        .filter_map(|r| delta(Some(r.created_at), r.resolved_at))
        .collect();

    let mut techs: BTreeMap<String, Vec<&EscalationRow>> = BTreeMap::new();
    for row in &claimed {
        techs
            .entry(
                row.claimed_by_name
                    .clone()
                    .unwrap_or_else(|| "Unknown".to_owned()),
            )
            .or_default()
            .push(row);
    }
    let per_tech = techs
        .into_iter()
        .map(|(name, rows)| TechRow {
            name,
            claimed: rows.len(),
            with_action: rows.iter().filter(|r| r.first_action_at.is_some()).count(),
            time_to_first_action: Stats::of(&ttfa_of(&rows)),
        })
        .collect();

    let mut domains: BTreeMap<String, Vec<&EscalationRow>> = BTreeMap::new();
    for row in rows {
        let domain = match row.category.as_deref() {
            Some(c) if !c.trim().is_empty() => c.to_owned(),
            Some(_) => "Uncategorised".to_owned(),
            None => "No flow (free-form)".to_owned(),
        };
        domains.entry(domain).or_default().push(row);
    }
    let per_domain = domains
        .into_iter()
        .map(|(domain, rows)| {
            let claimed: Vec<&EscalationRow> = rows
                .iter()
                .copied()
                .filter(|r| r.claimed_at.is_some())
                .collect();
            DomainRow {
                domain,
                escalations: rows.len(),
                claimed: claimed.len(),
                time_to_first_action: Stats::of(&ttfa_of(&claimed)),
            }
        })
        .collect();

    let mut weeks: BTreeMap<String, Vec<&EscalationRow>> = BTreeMap::new();
    for row in rows {
        let date = row.created_at.to_datetime().date_naive();
        let monday = date - Duration::days(i64::from(date.weekday().num_days_from_monday()));
        weeks
            .entry(monday.format("%Y-%m-%d").to_string())
            .or_default()
            .push(row);
    }
    let weekly = weeks
        .into_iter()
        .map(|(week_start, rows)| {
            let claimed: Vec<&EscalationRow> = rows
                .iter()
                .copied()
                .filter(|r| r.claimed_at.is_some())
                .collect();
            WeekRow {
                week_start,
                escalations: rows.len(),
                claimed: claimed.len(),
                median_first_action_seconds: Stats::of(&ttfa_of(&claimed)).median_seconds,
            }
        })
        .collect();

    let with_action = claimed
        .iter()
        .filter(|r| r.first_action_at.is_some())
        .count();
    EscalationMetrics {
        period,
        since,
        until,
        escalations: rows.len(),
        claimed: claimed.len(),
        unclaimed: rows.len() - claimed.len(),
        time_to_claim: Stats::of(&ttc),
        time_to_first_action: Stats::of(&ttfa),
        claimed_with_action_rate: (!claimed.is_empty())
            .then(|| with_action as f64 / claimed.len() as f64),
        releases: rows.iter().map(|r| i64::from(r.release_count)).sum(),
        reclaims: rows
            .iter()
            .map(|r| i64::from((r.claim_count - 1).max(0)))
            .sum(),
        time_to_resolve: Stats::of(&ttr),
        per_tech,
        per_domain,
        weekly,
        manual_baseline_minutes,
    }
}

/// The metrics as CSV: one section per table, each with a header row.
pub fn to_csv(m: &EscalationMetrics) -> String {
    let f = |v: Option<f64>| v.map(|v| format!("{v:.1}")).unwrap_or_default();
    let mut out = String::from("metric,value\n");
    let mut line = |k: &str, v: String| {
        out.push_str(&format!("{k},{v}\n"));
    };
    line("period", m.period.label().to_owned());
    line("escalations", m.escalations.to_string());
    line("claimed", m.claimed.to_string());
    line("unclaimed", m.unclaimed.to_string());
    line("time_to_claim_avg_s", f(m.time_to_claim.avg_seconds));
    line("time_to_claim_median_s", f(m.time_to_claim.median_seconds));
    line("time_to_claim_p95_s", f(m.time_to_claim.p95_seconds));
    line("first_action_avg_s", f(m.time_to_first_action.avg_seconds));
    line(
        "first_action_median_s",
        f(m.time_to_first_action.median_seconds),
    );
    line("first_action_p95_s", f(m.time_to_first_action.p95_seconds));
    line(
        "claimed_with_action_rate",
        m.claimed_with_action_rate
            .map(|r| format!("{r:.3}"))
            .unwrap_or_default(),
    );
    line("releases", m.releases.to_string());
    line("reclaims", m.reclaims.to_string());
    line(
        "time_to_resolve_median_s",
        f(m.time_to_resolve.median_seconds),
    );
    line("manual_baseline_minutes", f(m.manual_baseline_minutes));
    out.push_str("\ntech,claimed,with_action,first_action_median_s\n");
    for t in &m.per_tech {
        out.push_str(&format!(
            "{},{},{},{}\n",
            csv_field(&t.name),
            t.claimed,
            t.with_action,
            f(t.time_to_first_action.median_seconds)
        ));
    }
    out.push_str("\ndomain,escalations,claimed,first_action_median_s\n");
    for d in &m.per_domain {
        out.push_str(&format!(
            "{},{},{},{}\n",
            csv_field(&d.domain),
            d.escalations,
            d.claimed,
            f(d.time_to_first_action.median_seconds)
        ));
    }
    out.push_str("\nweek_start,escalations,claimed,first_action_median_s\n");
    for w in &m.weekly {
        out.push_str(&format!(
            "{},{},{},{}\n",
            w.week_start,
            w.escalations,
            w.claimed,
            f(w.median_first_action_seconds)
        ));
    }
    out
}

/// Quotes a CSV field when needed, and defuses spreadsheet formulas.
fn csv_field(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@']) {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    if value.contains([',', '"', '\n']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_use_the_documented_definitions() {
        let s = Stats::of(&[10_000, 20_000, 30_000, 100_000]);
        assert_eq!(s.count, 4);
        assert_eq!(s.avg_seconds, Some(40.0));
        assert_eq!(s.median_seconds, Some(25.0));
        assert_eq!(s.p95_seconds, Some(100.0));
        let odd = Stats::of(&[3_000, 1_000, 2_000]);
        assert_eq!(odd.median_seconds, Some(2.0));
        assert_eq!(
            Stats::of(&[-5_000]).avg_seconds,
            Some(0.0),
            "negative deltas floor at zero"
        );
        assert_eq!(Stats::of(&[]), Stats::default());
        let twenty: Vec<i64> = (1..=20).map(|s| s * 1000).collect();
        assert_eq!(Stats::of(&twenty).p95_seconds, Some(19.0));
    }

    #[test]
    fn csv_fields_are_quoted_and_defused() {
        assert_eq!(csv_field("Printing, offices"), "\"Printing, offices\"");
        assert_eq!(csv_field("=HYPERLINK()"), "'=HYPERLINK()");
    }
}
