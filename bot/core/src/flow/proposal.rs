//! Flow proposals: drafts the AI wrote (from a description, or from resolved sessions no flow
//! covers) waiting for a person to accept, edit or reject them. Accepted ones are published.

use crate::domain::word_enum;
use crate::ids::{AccountId, FlowId, SessionId, UserId};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

word_enum!(
    /// Where a proposal stands.
    ProposalStatus, "proposal status" {
        Pending => "pending",
        Accepted => "accepted",
        Rejected => "rejected",
    }
);

word_enum!(
    /// Who asked for a proposal.
    ProposalOrigin, "proposal origin" {
        /// `/rf flow build <description>`.
        Builder => "builder",
        /// The knowledge flywheel, from resolved sessions.
        Flywheel => "flywheel",
    }
);

/// A proposal about to be recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFlowProposal {
    pub id: uuid::Uuid,
    pub account_id: AccountId,
    pub title: String,
    /// The draft, in the flow file format; it passed the validator.
    pub yaml: String,
    pub rationale: String,
    pub origin: ProposalOrigin,
    pub source_sessions: Vec<SessionId>,
    pub requested_by: Option<UserId>,
    /// Identifies what the proposal came from (the description, or the set of sessions), so the
    /// flywheel never proposes the same thing twice.
    pub fingerprint: String,
}

/// A proposal as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowProposal {
    pub id: uuid::Uuid,
    pub account_id: AccountId,
    pub title: String,
    pub yaml: String,
    pub rationale: String,
    pub origin: ProposalOrigin,
    pub source_sessions: Vec<SessionId>,
    pub status: ProposalStatus,
    pub requested_by: Option<UserId>,
    pub reviewer_id: Option<UserId>,
    pub reviewed_at: Option<Timestamp>,
    /// The published flow, once accepted.
    pub flow_id: Option<FlowId>,
    pub fingerprint: String,
    pub created_at: Timestamp,
}

/// A reviewer's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProposalReview {
    pub status: ProposalStatus,
    pub reviewer: UserId,
    /// The edited draft, when the reviewer changed it before accepting.
    pub yaml: Option<String>,
    /// The flow it was published as.
    pub flow_id: Option<FlowId>,
}
