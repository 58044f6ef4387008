//! Tickets and notes in a PSA (ConnectWise Manage, Autotask, HaloPSA), as the core sees them.
//!
//! The providers live in `rf-psa`; a team's connection (which PSA, where, with which credentials)
//! is resolved by the [`TicketDesk`] port, so nothing here knows a vendor or holds a secret.

use crate::ids::{AccountId, SessionId, TeamId, UserId};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The PSA products ResolutionFlow speaks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    ConnectWise,
    Autotask,
    Halo,
}

impl Provider {
    pub const ALL: [Provider; 3] = [Provider::ConnectWise, Provider::Autotask, Provider::Halo];

    pub fn as_str(self) -> &'static str {
        match self {
            Provider::ConnectWise => "connectwise",
            Provider::Autotask => "autotask",
            Provider::Halo => "halo",
        }
    }

    /// The product's name, for people.
    pub fn title(self) -> &'static str {
        match self {
            Provider::ConnectWise => "ConnectWise Manage",
            Provider::Autotask => "Autotask",
            Provider::Halo => "HaloPSA",
        }
    }
}

impl std::fmt::Display for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Provider {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "connectwise" | "cw" | "manage" => Ok(Provider::ConnectWise),
            "autotask" | "at" => Ok(Provider::Autotask),
            "halo" | "halopsa" => Ok(Provider::Halo),
            other => Err(format!(
                "unknown PSA {other:?}: use connectwise, autotask or halo"
            )),
        }
    }
}

/// Which kind of note a push writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoteKind {
    /// Visible to the customer (ConnectWise "Discussion").
    Discussion,
    /// Internal analysis, hidden from the customer.
    #[default]
    Internal,
    /// The ticket's resolution.
    Resolution,
}

impl NoteKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NoteKind::Discussion => "discussion",
            NoteKind::Internal => "internal",
            NoteKind::Resolution => "resolution",
        }
    }
}

impl std::str::FromStr for NoteKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "discussion" => Ok(NoteKind::Discussion),
            "internal" => Ok(NoteKind::Internal),
            "resolution" => Ok(NoteKind::Resolution),
            other => Err(format!(
                "unknown note kind {other:?}: use internal, discussion or resolution"
            )),
        }
    }
}

/// A ticket as pulled from the PSA: what a technician (and the copilot) needs to know.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Ticket {
    /// The ticket number as the PSA shows it.
    pub id: String,
    pub summary: String,
    pub company: Option<String>,
    pub contact: Option<String>,
    /// The board (ConnectWise), queue (Autotask) or team (Halo).
    pub board: Option<String>,
    pub status: Option<String>,
    pub priority: Option<String>,
    /// The initial description, trimmed to a readable length.
    pub description: Option<String>,
}

impl Ticket {
    /// Label/value pairs for display, skipping what the PSA did not say.
    pub fn fields(&self) -> Vec<(String, String)> {
        [
            ("Summary", Some(&self.summary)),
            ("Company", self.company.as_ref()),
            ("Contact", self.contact.as_ref()),
            ("Board", self.board.as_ref()),
            ("Status", self.status.as_ref()),
            ("Priority", self.priority.as_ref()),
        ]
        .into_iter()
        .filter_map(|(label, value)| {
            value
                .filter(|v| !v.trim().is_empty())
                .map(|v| (label.to_owned(), v.clone()))
        })
        .collect()
    }
}

/// A person in the PSA that notes are credited to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The identifier the PSA's API takes (ConnectWise member identifier, Autotask resource id,
    /// Halo agent id).
    pub id: String,
    pub name: String,
    pub email: Option<String>,
}

/// A note to write to a ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteRequest {
    pub ticket: String,
    pub kind: NoteKind,
    /// Already redacted.
    pub text: String,
    /// Who the note is credited to, when mapped.
    pub member: Option<Member>,
}

/// What the PSA said when it accepted a note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostedNote {
    /// The PSA's id for the note.
    pub id: String,
}

/// Why a PSA call failed, in words a technician understands. Never carries a credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PsaError {
    #[error("no PSA is connected for this team")]
    NotConnected,
    #[error("the PSA refused the credentials: {0}")]
    Unauthorized(String),
    #[error("{0}")]
    NotFound(String),
    /// The PSA understood the request and said no (validation); retrying cannot help.
    #[error("{0}")]
    Rejected(String),
    #[error("the PSA is rate limiting us")]
    RateLimited { after: Option<Duration> },
    /// Outage, 5xx, timeout: worth retrying.
    #[error("the PSA is unavailable: {0}")]
    Unavailable(String),
    /// The connection's stored settings or credentials cannot be used.
    #[error("the PSA connection is misconfigured: {0}")]
    Misconfigured(String),
}

impl PsaError {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            PsaError::RateLimited { .. } | PsaError::Unavailable(_)
        )
    }

    /// When the PSA asked us to come back, if it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            PsaError::RateLimited { after } => *after,
            _ => None,
        }
    }
}

/// A team's PSA connection as stored: which product, its non-secret settings, and the sealed
/// credentials (`v1:{key id}:{base64}`), which only the application layer can open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PsaConnection {
    pub id: uuid::Uuid,
    pub account_id: AccountId,
    pub team_id: TeamId,
    pub provider: Provider,
    /// Provider settings (site, company, zone, note kind…), never a secret.
    pub settings: serde_json::Value,
    pub sealed_credentials: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// How a chat user was matched to a PSA member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MappingSource {
    /// Matched by e-mail address.
    Email,
    /// Set by a person (`/rf psa map`, the companion); never overwritten by matching.
    Manual,
}

impl MappingSource {
    pub fn as_str(self) -> &'static str {
        match self {
            MappingSource::Email => "email",
            MappingSource::Manual => "manual",
        }
    }
}

impl std::str::FromStr for MappingSource {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "email" => Ok(MappingSource::Email),
            "manual" => Ok(MappingSource::Manual),
            _ => Err(()),
        }
    }
}

/// A chat user ↔ PSA member mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberMapping {
    pub connection_id: uuid::Uuid,
    pub user_id: UserId,
    pub member: Member,
    pub source: MappingSource,
    pub updated_at: Timestamp,
}

/// Where a pushed note stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoteStatus {
    Queued,
    Posted,
    Failed,
}

impl NoteStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            NoteStatus::Queued => "queued",
            NoteStatus::Posted => "posted",
            NoteStatus::Failed => "failed",
        }
    }
}

impl std::str::FromStr for NoteStatus {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "queued" => Ok(NoteStatus::Queued),
            "posted" => Ok(NoteStatus::Posted),
            "failed" => Ok(NoteStatus::Failed),
            _ => Err(()),
        }
    }
}

/// A note queued for a ticket, recorded with the job that posts it (the post log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPsaNote {
    pub id: uuid::Uuid,
    /// `{session}:{ticket}:{version}`: the same note for the same ticket is posted once.
    pub idempotency_key: String,
    pub ticket: String,
    pub version: String,
    pub body: String,
    pub requested_by: UserId,
}

/// A row of the post log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PsaNoteRecord {
    pub id: uuid::Uuid,
    pub account_id: AccountId,
    pub session_id: SessionId,
    pub idempotency_key: String,
    pub ticket: String,
    pub version: String,
    pub body: String,
    pub requested_by: UserId,
    pub status: NoteStatus,
    /// Who the PSA credited the note to.
    pub member: Option<String>,
    pub psa_note_id: Option<String>,
    pub error: Option<String>,
    pub created_at: Timestamp,
    pub posted_at: Option<Timestamp>,
}

/// How a queued note ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoteOutcome {
    Posted {
        psa_note_id: String,
        member: Option<String>,
    },
    Failed {
        error: String,
    },
}

/// The version of a note: a short digest of the ticket and the text, so a changed note is a new
/// version and an unchanged one is the same.
pub fn note_version(ticket: &str, text: &str) -> String {
    // FNV-1a, 64 bits: stable across builds and platforms, and plenty to tell versions apart.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in ticket.bytes().chain([0]).chain(text.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// Reaches a team's PSA: resolves the connection, opens its credentials and credits notes to the
/// mapped member. Implemented by the application, which holds the master key.
#[async_trait::async_trait]
pub trait TicketDesk: Send + Sync + std::fmt::Debug {
    /// The product the team is connected to, if any.
    async fn provider(&self, account: AccountId, team: TeamId) -> Result<Provider, PsaError>;

    async fn ticket(
        &self,
        account: AccountId,
        team: TeamId,
        ticket: &str,
    ) -> Result<Ticket, PsaError>;

    /// Posts `text` to `ticket` as the connection's configured note kind, credited to `author`'s
    /// mapped member. Returns the PSA's note id and who it was credited to.
    async fn post_note(
        &self,
        account: AccountId,
        team: TeamId,
        ticket: &str,
        text: &str,
        author: UserId,
    ) -> Result<(PostedNote, Option<Member>), PsaError>;

    /// Credits `user`'s notes to the PSA member `member` (identifier, id or name), checked
    /// against the PSA; never replaced by e-mail matching.
    async fn map_member(
        &self,
        account: AccountId,
        team: TeamId,
        user: UserId,
        member: &str,
    ) -> Result<Member, PsaError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn note_versions_follow_the_content() {
        let a = note_version("12345", "Checked the cable.");
        assert_eq!(a, note_version("12345", "Checked the cable."));
        assert_ne!(a, note_version("12345", "Checked the cable. Replaced it."));
        assert_ne!(a, note_version("12346", "Checked the cable."));
        assert_eq!(a.len(), 16);
    }

    #[test]
    fn providers_and_kinds_parse_from_what_people_type() {
        assert_eq!("ConnectWise".parse::<Provider>(), Ok(Provider::ConnectWise));
        assert_eq!("halopsa".parse::<Provider>(), Ok(Provider::Halo));
        assert!("zendesk".parse::<Provider>().is_err());
        assert_eq!("Resolution".parse::<NoteKind>(), Ok(NoteKind::Resolution));
    }

    #[test]
    fn transient_errors_are_the_retryable_ones() {
        assert!(PsaError::Unavailable("503".into()).is_transient());
        assert!(
            PsaError::RateLimited {
                after: Some(Duration::from_secs(3))
            }
            .is_transient()
        );
        assert!(!PsaError::NotFound("ticket 1 not found".into()).is_transient());
        assert!(!PsaError::Unauthorized("bad key".into()).is_transient());
    }
}
