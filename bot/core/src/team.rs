//! A team's escalation settings: where cards go, the re-notification ladder, working hours and the
//! idle-claim policy. Stored as JSON with the team; every field has a sensible default.

use crate::domain::{ChannelRef, Priority};
use crate::time::Timestamp;
use chrono::{Datelike, Duration, Timelike};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct TeamSettings {
    /// Where escalation cards are posted (one channel per platform).
    pub escalation_channels: Vec<ChannelRef>,
    pub ladder: Ladder,
    pub working_hours: WorkingHours,
    pub idle: IdlePolicy,
    /// The owner's manual measurement of minutes lost per escalation before ResolutionFlow (the
    /// "what you currently lose" number), shown beside the in-product metric.
    pub baseline_minutes: Option<f64>,
}

impl TeamSettings {
    /// The team's escalation channel on a platform.
    pub fn escalation_channel(&self, platform: crate::domain::Platform) -> Option<&ChannelRef> {
        self.escalation_channels
            .iter()
            .find(|c| c.platform == platform)
    }

    /// Makes `channel` the escalation channel for its platform.
    pub fn set_escalation_channel(&mut self, channel: ChannelRef) {
        self.escalation_channels
            .retain(|c| c.platform != channel.platform);
        self.escalation_channels.push(channel);
    }
}

/// What happens, and when, while nobody claims an escalation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Ladder {
    pub steps: Vec<LadderStep>,
    /// At most this many ladder steps fire per escalation.
    pub cap: u32,
}

impl Default for Ladder {
    fn default() -> Self {
        Self {
            steps: vec![
                LadderStep::new(5 * 60, LadderAction::Repost, When::Always),
                LadderStep::new(
                    15 * 60,
                    LadderAction::DirectMessageSeniors,
                    When::WorkingHours,
                ),
                LadderStep::new(15 * 60, LadderAction::EmailSeniors, When::OffHours),
                LadderStep::new(30 * 60, LadderAction::EmailOwners, When::Always),
            ],
            cap: 4,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LadderStep {
    /// Seconds after the escalation (halved for urgent escalations).
    pub after_seconds: u64,
    pub action: LadderAction,
    #[serde(default)]
    pub when: When,
    /// Only for these priorities; empty means every priority.
    #[serde(default)]
    pub priorities: Vec<Priority>,
}

impl LadderStep {
    pub fn new(after_seconds: u64, action: LadderAction, when: When) -> Self {
        Self {
            after_seconds,
            action,
            when,
            priorities: Vec::new(),
        }
    }

    /// When this step is due for an escalation created at `created` with `priority`.
    pub fn due_at(&self, created: Timestamp, priority: Priority) -> Timestamp {
        let seconds = if priority == Priority::Urgent {
            self.after_seconds / 2
        } else {
            self.after_seconds
        };
        created.plus_millis(seconds as i64 * 1000)
    }

    pub fn applies_to(&self, priority: Priority) -> bool {
        self.priorities.is_empty() || self.priorities.contains(&priority)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LadderAction {
    /// Post the card again in the escalation channel, mentioning everyone (@here).
    Repost,
    /// Message each senior (engineer, admin, owner) privately.
    DirectMessageSeniors,
    /// E-mail each senior with an address.
    EmailSeniors,
    /// E-mail the account's owners.
    EmailOwners,
}

/// Whether a ladder step fires in or out of working hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum When {
    #[default]
    Always,
    WorkingHours,
    /// Outside working hours: seniors are offline, so e-mail reaches them.
    OffHours,
}

/// The team's working week, in a fixed UTC offset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WorkingHours {
    pub utc_offset_minutes: i32,
    /// ISO weekdays: 1 = Monday … 7 = Sunday.
    pub days: Vec<u8>,
    pub start_hour: u8,
    pub end_hour: u8,
}

impl Default for WorkingHours {
    fn default() -> Self {
        Self {
            utc_offset_minutes: 0,
            days: vec![1, 2, 3, 4, 5],
            start_hour: 8,
            end_hour: 18,
        }
    }
}

impl WorkingHours {
    pub fn contains(&self, at: Timestamp) -> bool {
        let local = at.to_datetime() + Duration::minutes(i64::from(self.utc_offset_minutes));
        let day = local.weekday().number_from_monday() as u8;
        let hour = local.hour() as u8;
        self.days.contains(&day) && hour >= self.start_hour && hour < self.end_hour
    }

    pub fn allows(&self, when: When, at: Timestamp) -> bool {
        match when {
            When::Always => true,
            When::WorkingHours => self.contains(at),
            When::OffHours => !self.contains(at),
        }
    }
}

/// A claimed escalation nobody works on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct IdlePolicy {
    /// Remind the claimer after this long without a first action.
    pub remind_after_seconds: u64,
    /// Release back to the queue this long after the reminder, unless acknowledged or acted on.
    pub release_after_seconds: u64,
}

impl Default for IdlePolicy {
    fn default() -> Self {
        Self {
            remind_after_seconds: 10 * 60,
            release_after_seconds: 10 * 60,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn at(y: i32, m: u32, d: u32, h: u32) -> Timestamp {
        Timestamp::from_datetime(Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap())
    }

    #[test]
    fn working_hours_follow_the_offset() {
        let hours = WorkingHours {
            utc_offset_minutes: -300, // New York in winter
            ..WorkingHours::default()
        };
        // Monday 2026-11-23 14:00 UTC is 09:00 in New York: working.
        assert!(hours.contains(at(2026, 11, 23, 14)));
        // Monday 12:00 UTC is 07:00 in New York: not yet.
        assert!(!hours.contains(at(2026, 11, 23, 12)));
        // Saturday never.
        assert!(!hours.contains(at(2026, 11, 21, 15)));
        assert!(hours.allows(When::OffHours, at(2026, 11, 21, 15)));
    }

    #[test]
    fn urgent_escalations_climb_the_ladder_twice_as_fast() {
        let step = LadderStep::new(600, LadderAction::Repost, When::Always);
        let t0 = Timestamp::from_millis(0);
        assert_eq!(
            step.due_at(t0, Priority::Normal),
            Timestamp::from_millis(600_000)
        );
        assert_eq!(
            step.due_at(t0, Priority::Urgent),
            Timestamp::from_millis(300_000)
        );
    }

    #[test]
    fn settings_default_from_an_empty_object() {
        let settings: TeamSettings = serde_json::from_str("{}").unwrap();
        assert_eq!(settings.ladder.steps.len(), 4);
        assert_eq!(settings.idle.remind_after_seconds, 600);
    }
}
