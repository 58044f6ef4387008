//! The outbox: one delivery row per (handoff, channel, recipient), and the account's event stream.

use crate::domain::{Priority, word_enum};
use crate::ids::{AccountId, HandoffId};
use crate::jobs::DeliveryId;
use crate::notify::MessageRef;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

word_enum!(
    /// How a notification reaches people.
    DeliveryChannel, "delivery channel" {
        /// The escalation card in the team's channel.
        ChatCard => "chat_card",
        /// A private chat message to one person.
        ChatDm => "chat_dm",
        Email => "email",
        /// The companion's live queue.
        CompanionStream => "companion_stream",
    }
);

word_enum!(
    DeliveryStatus, "delivery status" {
        Queued => "queued",
        Sent => "sent",
        Failed => "failed",
        /// Not sent on purpose (claimed meanwhile, outside working hours, no address).
        Suppressed => "suppressed",
    }
);

/// Which notification a delivery is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryPurpose {
    /// The first card.
    Card,
    /// The ladder's repost with @here.
    Reminder,
    /// A ladder message or e-mail.
    Ladder,
    /// The idle claimer's reminder.
    IdleReminder,
    /// The live queue.
    Stream,
}

/// A delivery about to be recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery {
    pub id: DeliveryId,
    pub handoff: HandoffId,
    pub channel: DeliveryChannel,
    /// `platform:workspace:channel` for cards, a user id for DMs, an address for e-mail.
    pub recipient: String,
    pub purpose: DeliveryPurpose,
    pub status: DeliveryStatus,
}

/// A delivery as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub id: DeliveryId,
    pub account_id: AccountId,
    pub handoff_id: HandoffId,
    pub channel: DeliveryChannel,
    pub recipient: String,
    pub purpose: DeliveryPurpose,
    pub status: DeliveryStatus,
    pub attempts: i32,
    pub last_error: Option<String>,
    /// Where a card was posted.
    pub message_ref: Option<MessageRef>,
    pub sent_at: Option<Timestamp>,
    pub created_at: Timestamp,
}

word_enum!(
    /// What happened to an escalation, for the live queue.
    EventKind, "event kind" {
        HandoffCreated => "handoff_created",
        HandoffClaimed => "handoff_claimed",
        HandoffReleased => "handoff_released",
        HandoffClosed => "handoff_closed",
    }
);

/// What the live queue shows of an escalation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventSummary {
    pub handoff_id: HandoffId,
    pub problem: String,
    pub priority: Priority,
    pub requested_by: String,
    pub reason: String,
    pub likely_cause: String,
    pub confidence: u8,
    pub steps_tried: usize,
    pub created_at: Timestamp,
    pub claimed_by: Option<String>,
    pub claimed_at: Option<Timestamp>,
}

/// An event about to be recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    pub kind: EventKind,
    pub summary: EventSummary,
}

/// An event of an account's stream. `seq` orders all events and is the SSE event id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandoffEvent {
    pub seq: i64,
    pub account_id: AccountId,
    pub kind: EventKind,
    pub summary: EventSummary,
    pub created_at: Timestamp,
}
