//! Background work, recorded durably in the same transaction as the change that causes it and
//! run afterwards by a worker: nothing slow ever happens on the path that answers a person.

use crate::domain::Platform;
use crate::effect::Effect;
use crate::ids::{AccountId, HandoffId, SessionId, UserId};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Identifies a notification delivery row.
pub type DeliveryId = uuid::Uuid;

/// A unit of background work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "job", rename_all = "snake_case")]
pub enum Job {
    /// Send one notification delivery (card, direct message, e-mail).
    Deliver { delivery: DeliveryId },
    /// Climb one rung of the re-notification ladder if the escalation is still unclaimed.
    Ladder { handoff: HandoffId, step: usize },
    /// Bring every posted card of the escalation up to date (coalesced: the latest state wins).
    UpdateCards { handoff: HandoffId },
    /// Tell the session's thread what happened to its escalation.
    ThreadNotice {
        handoff: HandoffId,
        notice: ThreadNotice,
    },
    /// Add the claimer to the session's thread.
    Invite { handoff: HandoffId, user: UserId },
    /// Remind an idle claimer (generation `claim` of the handoff's claims).
    IdleReminder { handoff: HandoffId, claim: i32 },
    /// Release an idle, unacknowledged claim back to the queue.
    IdleRelease { handoff: HandoffId, claim: i32 },
    /// Handle an event a chat platform sent, recorded before it was acknowledged. Events in the
    /// same `lane` (a channel) run in the order they arrived.
    Inbound {
        platform: Platform,
        lane: String,
        event: serde_json::Value,
    },
    /// Carry out an effect the platform could not take the first time (rate limit, outage).
    Perform { effect: Effect },
    /// Pull a linked ticket's details from the team's PSA into the session.
    PsaTicket { session: SessionId, ticket: String },
    /// Post a queued note (a row of the post log) to its ticket.
    PsaNote {
        session: SessionId,
        note: uuid::Uuid,
    },
    /// Have the copilot answer what was said in the session since its last turn.
    AiTurn { session: SessionId },
    /// Ask the model for the session's resolution note and show it in the thread.
    NotePreview { session: SessionId },
    /// Replace an escalation's offline assessment with the model's.
    AiAssess { handoff: HandoffId },
    /// Draft a flow from a description and record it as a proposal; tell `user` at `place`.
    FlowBuild {
        description: String,
        user: UserId,
        platform_user_id: String,
        place: crate::effect::Place,
    },
    /// Cluster resolved sessions no flow covers and propose flows for them.
    Flywheel,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "notice", rename_all = "snake_case")]
pub enum ThreadNotice {
    Claimed {
        by: String,
    },
    Released {
        by: String,
    },
    /// The escalation card could not be posted yet (the platform rate-limited it).
    Delayed {
        seconds: Option<u64>,
    },
}

impl Job {
    /// The word stored in the `kind` column.
    pub fn kind(&self) -> &'static str {
        match self {
            Job::Deliver { .. } => "deliver",
            Job::Ladder { .. } => "ladder",
            Job::UpdateCards { .. } => "update_cards",
            Job::ThreadNotice { .. } => "thread_notice",
            Job::Invite { .. } => "invite",
            Job::IdleReminder { .. } => "idle_reminder",
            Job::IdleRelease { .. } => "idle_release",
            Job::Inbound { .. } => "inbound",
            Job::Perform { .. } => "perform",
            Job::PsaTicket { .. } => "psa_ticket",
            Job::PsaNote { .. } => "psa_note",
            Job::AiTurn { .. } => "ai_turn",
            Job::NotePreview { .. } => "note_preview",
            Job::AiAssess { .. } => "ai_assess",
            Job::FlowBuild { .. } => "flow_build",
            Job::Flywheel => "flywheel",
        }
    }

    /// Jobs in the same lane run one after another, in order; jobs in different lanes may run at
    /// the same time.
    pub fn lane(&self) -> String {
        match self {
            Job::Deliver { delivery } => format!("delivery:{delivery}"),
            Job::Ladder { handoff, .. }
            | Job::UpdateCards { handoff }
            | Job::ThreadNotice { handoff, .. }
            | Job::Invite { handoff, .. }
            | Job::IdleReminder { handoff, .. }
            | Job::IdleRelease { handoff, .. } => format!("handoff:{handoff}"),
            Job::Inbound { lane, .. } => lane.clone(),
            Job::Perform { effect } => format!("perform:{}", effect.place_key()),
            // A session's PSA work runs in order: its notes land in the order they were pushed.
            Job::PsaTicket { session, .. } | Job::PsaNote { session, .. } => {
                format!("psa:{session}")
            }
            // A session's copilot work runs in its own lane: a slow model holds up nobody else.
            Job::AiTurn { session } | Job::NotePreview { session } => format!("ai:{session}"),
            Job::AiAssess { handoff } => format!("handoff:{handoff}"),
            Job::FlowBuild { user, .. } => format!("flow-build:{user}"),
            Job::Flywheel => "flywheel".to_owned(),
        }
    }
}

/// A job about to be recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJob {
    pub account_id: AccountId,
    pub job: Job,
    pub run_at: Timestamp,
    /// While a job with this key is still waiting, another with the same key is not added (so
    /// ten claims and releases in a burst update the cards once).
    pub coalesce_key: Option<String>,
}

impl NewJob {
    pub fn now(account_id: AccountId, job: Job, now: Timestamp) -> Self {
        Self {
            account_id,
            job,
            run_at: now,
            coalesce_key: None,
        }
    }

    pub fn at(account_id: AccountId, job: Job, run_at: Timestamp) -> Self {
        Self {
            account_id,
            job,
            run_at,
            coalesce_key: None,
        }
    }

    pub fn coalesced(mut self, key: String) -> Self {
        self.coalesce_key = Some(key);
        self
    }
}

/// A job claimed by a worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRecord {
    pub id: uuid::Uuid,
    pub account_id: AccountId,
    pub job: Job,
    /// How many times it has been started, this time included.
    pub attempts: i32,
    pub max_attempts: i32,
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobResult {
    Done,
    /// Try again later: after `after` if the other side said when, else on the backoff schedule.
    Retry {
        error: String,
        after: Option<Duration>,
    },
    /// Give up: retrying cannot help.
    Failed {
        error: String,
    },
}

/// The delay before retry `attempt` (1-based): exponential with jitter, 2 s doubling to 5 min.
pub fn backoff(attempt: i32) -> Duration {
    use backon::BackoffBuilder;
    backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_secs(2))
        .with_max_delay(Duration::from_secs(300))
        .with_factor(2.0)
        .with_jitter()
        .with_max_times(64)
        .build()
        .nth(attempt.saturating_sub(1).max(0) as usize)
        .unwrap_or(Duration::from_secs(300))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let first = backoff(1);
        assert!(
            first >= Duration::from_secs(2) && first < Duration::from_secs(5),
            "{first:?}"
        );
        let fifth = backoff(5);
        assert!(fifth >= Duration::from_secs(32), "{fifth:?}");
        assert!(backoff(40) <= Duration::from_secs(600));
    }

    #[test]
    fn jobs_serialise_compactly() {
        let job = Job::Ladder {
            handoff: HandoffId::new(),
            step: 2,
        };
        let json = serde_json::to_string(&job).unwrap();
        assert!(json.starts_with("{\"job\":\"ladder\""), "{json}");
        assert_eq!(serde_json::from_str::<Job>(&json).unwrap(), job);
    }
}
