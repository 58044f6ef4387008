//! Time as the core sees it: milliseconds since the Unix epoch, from an injectable clock.

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// A point in time, in milliseconds since the Unix epoch (UTC).
///
/// Stored as a plain integer on both database backends, so differences (time to claim, time to first
/// action) are exact integer arithmetic in SQL and in Rust.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(i64);

impl Timestamp {
    pub const fn from_millis(millis: i64) -> Self {
        Self(millis)
    }

    pub const fn as_millis(self) -> i64 {
        self.0
    }

    pub fn to_datetime(self) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(self.0)
            .single()
            .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
    }

    pub fn from_datetime(at: DateTime<Utc>) -> Self {
        Self(at.timestamp_millis())
    }

    /// Milliseconds from `earlier` to `self`, floored at zero.
    pub fn millis_since(self, earlier: Timestamp) -> i64 {
        (self.0 - earlier.0).max(0)
    }

    pub const fn plus_millis(self, millis: i64) -> Self {
        Self(self.0 + millis)
    }

    /// `2026-11-22 10:03:12 UTC`
    pub fn display_utc(self) -> String {
        self.to_datetime()
            .format("%Y-%m-%d %H:%M:%S UTC")
            .to_string()
    }

    /// `10:03:12`
    pub fn time_of_day(self) -> String {
        self.to_datetime().format("%H:%M:%S").to_string()
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display_utc())
    }
}

/// "40 s", "3 min", "2 h 5 min": how long something took, for people.
pub fn human_duration(millis: i64) -> String {
    let secs = millis.max(0) / 1000;
    match secs {
        0..=59 => format!("{secs} s"),
        60..=3599 => format!("{} min", secs / 60),
        _ if secs % 3600 < 60 => format!("{} h", secs / 3600),
        _ => format!("{} h {} min", secs / 3600, (secs % 3600) / 60),
    }
}

/// Where the current time comes from; tests substitute a [`ManualClock`].
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    fn now(&self) -> Timestamp;
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_datetime(Utc::now())
    }
}

/// A clock that moves only when told to.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    pub fn starting_at(at: Timestamp) -> Self {
        Self(Arc::new(AtomicI64::new(at.as_millis())))
    }

    pub fn advance_millis(&self, millis: i64) {
        self.0.fetch_add(millis, Ordering::SeqCst);
    }

    pub fn set(&self, at: Timestamp) {
        self.0.store(at.as_millis(), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.0.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(human_duration(40_000), "40 s");
        assert_eq!(human_duration(180_000), "3 min");
        assert_eq!(human_duration(7_200_000), "2 h");
        assert_eq!(human_duration(7_500_000), "2 h 5 min");
        assert_eq!(human_duration(-5), "0 s");
    }

    #[test]
    fn timestamps_display_in_utc() {
        let at = Timestamp::from_millis(1_795_000_000_000);
        assert_eq!(at.display_utc(), "2026-11-18 11:06:40 UTC");
        assert_eq!(at.time_of_day(), "11:06:40");
    }

    #[test]
    fn manual_clock_moves_when_told() {
        let clock = ManualClock::starting_at(Timestamp::from_millis(1_000));
        clock.advance_millis(500);
        assert_eq!(clock.now(), Timestamp::from_millis(1_500));
    }
}
