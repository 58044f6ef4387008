//! Share links: signed, scoped, expiring, revocable invitations into the companion.

use crate::domain::Role;
use crate::ids::{AccountId, FlowId, HandoffId, LinkId, SessionId, UserId};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

/// What a link opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum LinkScope {
    /// One session's timeline.
    Session(SessionId),
    /// One handoff's context page (and its session).
    Handoff(HandoffId),
    /// One flow of the library (as the copilot cites it). Any link of the account reads the
    /// library, as every member can in chat; this one opens nothing else.
    Flow(FlowId),
    /// Every page of the account the holder's role allows (metrics, queue, settings).
    Account,
}

impl LinkScope {
    /// Whether the link opens this session's pages. A handoff link's session is checked by the
    /// caller, who knows which session the handoff belongs to.
    pub fn allows_session(&self, session: SessionId) -> bool {
        match self {
            LinkScope::Session(id) => *id == session,
            LinkScope::Handoff(_) | LinkScope::Flow(_) => false,
            LinkScope::Account => true,
        }
    }

    pub fn allows_handoff(&self, handoff: HandoffId) -> bool {
        match self {
            LinkScope::Handoff(id) => *id == handoff,
            LinkScope::Session(_) | LinkScope::Flow(_) => false,
            LinkScope::Account => true,
        }
    }
}

/// A minted link, recorded so it can be listed and revoked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareLink {
    pub id: LinkId,
    pub account_id: AccountId,
    pub user_id: UserId,
    pub role: Role,
    pub scope: LinkScope,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

/// Turns a recorded share link into a URL the companion will accept (a signed token). Implemented
/// by the companion; the core only asks for URLs.
pub trait LinkSigner: Send + Sync + std::fmt::Debug + 'static {
    fn url_for(&self, link: &ShareLink) -> String;
}
