//! Database rows and their conversion to core types. One row type serves both backends.

use rf_core::StoreError;
use rf_core::ai::SuggestedFix;
use rf_core::domain::Priority;
use rf_core::domain::{Account, Platform, Role, Team, ThreadKey, User};
use rf_core::flow::proposal::FlowProposal;
use rf_core::flow::{Flow, FlowKind, FlowSource, FlowStatus, FlowSummary};
use rf_core::handoff::{ClaimRecord, Handoff, HandoffIntent};
use rf_core::ids::{
    AccountId, FactId, FlowId, HandoffId, LinkId, SessionId, StepId, TeamId, UserId,
};
use rf_core::jobs::{Job, JobRecord};
use rf_core::links::{LinkScope, ShareLink};
use rf_core::metrics::EscalationRow;
use rf_core::outbox::{
    Delivery, DeliveryChannel, DeliveryPurpose, DeliveryStatus, EventKind, HandoffEvent,
};
use rf_core::psa::{Member, MemberMapping, PsaConnection, PsaNoteRecord};
use rf_core::session::{
    Conversation, Fact, FactSource, Session, SessionStatus, StepKind, TimelineStep,
};
use rf_core::time::Timestamp;
use serde::de::DeserializeOwned;
use std::str::FromStr;
use uuid::Uuid;

pub(crate) fn word<T: FromStr>(what: &'static str, value: &str) -> Result<T, StoreError> {
    value.parse().map_err(|_| StoreError::Corrupt {
        what,
        detail: format!("unknown value `{value}`"),
    })
}

pub(crate) fn json<T: DeserializeOwned>(what: &'static str, value: &str) -> Result<T, StoreError> {
    serde_json::from_str(value).map_err(|e| StoreError::Corrupt {
        what,
        detail: e.to_string(),
    })
}

pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> String {
    // Serialising our own plain data types cannot fail.
    serde_json::to_string(value).unwrap_or_default()
}

fn ts(millis: i64) -> Timestamp {
    Timestamp::from_millis(millis)
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct AccountRow {
    pub(crate) id: Uuid,
    name: String,
    created_at: i64,
}

impl From<AccountRow> for Account {
    fn from(row: AccountRow) -> Self {
        Account {
            id: AccountId::from_uuid(row.id),
            name: row.name,
            created_at: ts(row.created_at),
        }
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct TeamRow {
    id: Uuid,
    account_id: Uuid,
    name: String,
    settings: String,
    created_at: i64,
}

impl TryFrom<TeamRow> for Team {
    type Error = StoreError;
    fn try_from(row: TeamRow) -> Result<Self, StoreError> {
        Ok(Team {
            id: TeamId::from_uuid(row.id),
            account_id: AccountId::from_uuid(row.account_id),
            name: row.name,
            settings: json("team settings", &row.settings)?,
            created_at: ts(row.created_at),
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct UserRow {
    id: Uuid,
    account_id: Uuid,
    team_id: Uuid,
    platform: String,
    platform_user_id: String,
    display_name: String,
    email: Option<String>,
    role: String,
    created_at: i64,
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;
    fn try_from(row: UserRow) -> Result<Self, StoreError> {
        Ok(User {
            id: UserId::from_uuid(row.id),
            account_id: AccountId::from_uuid(row.account_id),
            team_id: TeamId::from_uuid(row.team_id),
            platform: word::<Platform>("user platform", &row.platform)?,
            platform_user_id: row.platform_user_id,
            display_name: row.display_name,
            email: row.email,
            role: word::<Role>("user role", &row.role)?,
            created_at: ts(row.created_at),
        })
    }
}

/// The columns of `flows` a listing needs.
pub(crate) const FLOW_SUMMARY_COLUMNS: &str =
    "id, slug, title, kind, category, tags, folder, status, source, version, updated_at";

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct FlowSummaryRow {
    id: Uuid,
    slug: String,
    title: String,
    kind: String,
    category: String,
    tags: String,
    folder: Option<String>,
    status: String,
    source: String,
    version: i32,
    updated_at: i64,
}

impl TryFrom<FlowSummaryRow> for FlowSummary {
    type Error = StoreError;
    fn try_from(row: FlowSummaryRow) -> Result<Self, StoreError> {
        Ok(FlowSummary {
            id: FlowId::from_uuid(row.id),
            slug: row.slug,
            title: row.title,
            kind: word::<FlowKind>("flow kind", &row.kind)?,
            category: row.category,
            tags: json("flow tags", &row.tags)?,
            folder: row.folder,
            status: word::<FlowStatus>("flow status", &row.status)?,
            source: word::<FlowSource>("flow source", &row.source)?,
            version: row.version,
            updated_at: ts(row.updated_at),
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct FlowRow {
    #[sqlx(flatten)]
    pub(crate) summary: FlowSummaryRow,
    pub(crate) definition: String,
}

impl FlowRow {
    pub(crate) fn into_record(self) -> Result<rf_core::flow::FlowRecord, StoreError> {
        let flow: Flow = json("flow definition", &self.definition)?;
        Ok(rf_core::flow::FlowRecord {
            summary: self.summary.try_into()?,
            flow,
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct FlowHitRow {
    #[sqlx(flatten)]
    pub(crate) summary: FlowSummaryRow,
    pub(crate) score: f64,
}

pub(crate) const SESSION_COLUMNS: &str = "id, account_id, team_id, platform, workspace, channel, thread, \
     owner_id, created_by, problem, status, conversation, flow_id, flow, psa_ticket, handoff_id, resolution, \
     state_version, lock_version, next_seq, created_at, updated_at, resolved_at";

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct SessionRow {
    id: Uuid,
    account_id: Uuid,
    team_id: Uuid,
    platform: String,
    workspace: String,
    channel: String,
    thread: String,
    owner_id: Uuid,
    created_by: Uuid,
    problem: String,
    status: String,
    conversation: String,
    flow_id: Option<Uuid>,
    flow: Option<String>,
    psa_ticket: Option<String>,
    handoff_id: Option<Uuid>,
    resolution: Option<String>,
    state_version: i64,
    lock_version: i64,
    pub(crate) next_seq: i64,
    created_at: i64,
    updated_at: i64,
    resolved_at: Option<i64>,
}

impl SessionRow {
    pub(crate) fn into_session(self) -> Result<Session, StoreError> {
        Ok(Session {
            id: SessionId::from_uuid(self.id),
            account_id: AccountId::from_uuid(self.account_id),
            team_id: TeamId::from_uuid(self.team_id),
            thread: ThreadKey {
                platform: word::<Platform>("session platform", &self.platform)?,
                workspace: self.workspace,
                channel: self.channel,
                thread: self.thread,
            },
            owner_id: UserId::from_uuid(self.owner_id),
            created_by: UserId::from_uuid(self.created_by),
            problem: self.problem,
            status: word::<SessionStatus>("session status", &self.status)?,
            conversation: json::<Conversation>("session conversation", &self.conversation)?,
            flow_id: self.flow_id.map(FlowId::from_uuid),
            flow: self
                .flow
                .as_deref()
                .map(|f| json::<Flow>("session flow", f))
                .transpose()?,
            psa_ticket: self.psa_ticket,
            handoff_id: self.handoff_id.map(HandoffId::from_uuid),
            state_version: self.state_version,
            lock_version: self.lock_version,
            created_at: ts(self.created_at),
            updated_at: ts(self.updated_at),
            resolved_at: self.resolved_at.map(ts),
            resolution: self.resolution,
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct StepRow {
    id: Uuid,
    account_id: Uuid,
    session_id: Uuid,
    seq: i64,
    actor_id: Option<Uuid>,
    actor_name: Option<String>,
    detail: String,
    created_at: i64,
}

impl TryFrom<StepRow> for TimelineStep {
    type Error = StoreError;
    fn try_from(row: StepRow) -> Result<Self, StoreError> {
        Ok(TimelineStep {
            id: StepId::from_uuid(row.id),
            account_id: AccountId::from_uuid(row.account_id),
            session_id: SessionId::from_uuid(row.session_id),
            seq: row.seq,
            actor_id: row.actor_id.map(UserId::from_uuid),
            actor_name: row.actor_name,
            kind: json::<StepKind>("timeline step", &row.detail)?,
            created_at: ts(row.created_at),
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct FactRow {
    id: Uuid,
    session_id: Uuid,
    text: String,
    source: String,
    author_id: Option<Uuid>,
    created_at: i64,
}

impl TryFrom<FactRow> for Fact {
    type Error = StoreError;
    fn try_from(row: FactRow) -> Result<Self, StoreError> {
        Ok(Fact {
            id: FactId::from_uuid(row.id),
            session_id: SessionId::from_uuid(row.session_id),
            text: row.text,
            source: word::<FactSource>("fact source", &row.source)?,
            author_id: row.author_id.map(UserId::from_uuid),
            created_at: ts(row.created_at),
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct LinkRow {
    id: Uuid,
    account_id: Uuid,
    user_id: Uuid,
    role: String,
    scope_kind: String,
    scope_id: Option<Uuid>,
    created_at: i64,
    expires_at: i64,
    revoked_at: Option<i64>,
}

impl TryFrom<LinkRow> for ShareLink {
    type Error = StoreError;
    fn try_from(row: LinkRow) -> Result<Self, StoreError> {
        let scope = match (row.scope_kind.as_str(), row.scope_id) {
            ("session", Some(id)) => LinkScope::Session(SessionId::from_uuid(id)),
            ("handoff", Some(id)) => LinkScope::Handoff(HandoffId::from_uuid(id)),
            ("flow", Some(id)) => LinkScope::Flow(FlowId::from_uuid(id)),
            ("account", _) => LinkScope::Account,
            (other, _) => {
                return Err(StoreError::Corrupt {
                    what: "link scope",
                    detail: format!("unknown scope `{other}`"),
                });
            }
        };
        Ok(ShareLink {
            id: LinkId::from_uuid(row.id),
            account_id: AccountId::from_uuid(row.account_id),
            user_id: UserId::from_uuid(row.user_id),
            role: word::<Role>("link role", &row.role)?,
            scope,
            created_at: ts(row.created_at),
            expires_at: ts(row.expires_at),
            revoked_at: row.revoked_at.map(ts),
        })
    }
}

/// The (kind, id) columns for a link scope.
pub(crate) fn scope_columns(scope: &LinkScope) -> (&'static str, Option<Uuid>) {
    match scope {
        LinkScope::Session(id) => ("session", Some(id.as_uuid())),
        LinkScope::Handoff(id) => ("handoff", Some(id.as_uuid())),
        LinkScope::Flow(id) => ("flow", Some(id.as_uuid())),
        LinkScope::Account => ("account", None),
    }
}

/// A handoff with its session's thread and the names of requester and claimer.
pub(crate) const HANDOFF_SELECT: &str = "SELECT h.id, h.account_id, h.team_id, h.session_id, \
     s.platform, s.workspace, s.channel, s.thread, h.intent, h.requested_by, r.display_name AS requested_by_name, \
     h.reason, h.priority, h.snapshot, h.assessment, h.claimed_by, c.display_name AS claimed_by_name, \
     h.claimed_at, h.acknowledged_at, h.claim_count, h.release_count, h.closed_at, h.created_at \
     FROM handoffs h JOIN sessions s ON s.id = h.session_id \
     JOIN users r ON r.id = h.requested_by LEFT JOIN users c ON c.id = h.claimed_by";

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct HandoffRow {
    id: Uuid,
    account_id: Uuid,
    team_id: Uuid,
    session_id: Uuid,
    platform: String,
    workspace: String,
    channel: String,
    thread: String,
    intent: String,
    requested_by: Uuid,
    requested_by_name: String,
    reason: String,
    priority: String,
    snapshot: String,
    assessment: String,
    claimed_by: Option<Uuid>,
    claimed_by_name: Option<String>,
    claimed_at: Option<i64>,
    acknowledged_at: Option<i64>,
    claim_count: i32,
    release_count: i32,
    closed_at: Option<i64>,
    created_at: i64,
}

impl TryFrom<HandoffRow> for Handoff {
    type Error = StoreError;
    fn try_from(row: HandoffRow) -> Result<Self, StoreError> {
        Ok(Handoff {
            id: HandoffId::from_uuid(row.id),
            account_id: AccountId::from_uuid(row.account_id),
            team_id: TeamId::from_uuid(row.team_id),
            session_id: SessionId::from_uuid(row.session_id),
            thread: ThreadKey {
                platform: word::<Platform>("handoff platform", &row.platform)?,
                workspace: row.workspace,
                channel: row.channel,
                thread: row.thread,
            },
            intent: word::<HandoffIntent>("handoff intent", &row.intent)?,
            requested_by: UserId::from_uuid(row.requested_by),
            requested_by_name: row.requested_by_name,
            reason: row.reason,
            priority: word::<Priority>("handoff priority", &row.priority)?,
            snapshot: json("handoff snapshot", &row.snapshot)?,
            assessment: json("handoff assessment", &row.assessment)?,
            claimed_by: row.claimed_by.map(UserId::from_uuid),
            claimed_by_name: row.claimed_by.and(row.claimed_by_name),
            claimed_at: row.claimed_at.map(ts),
            acknowledged_at: row.acknowledged_at.map(ts),
            claim_count: row.claim_count,
            release_count: row.release_count,
            closed_at: row.closed_at.map(ts),
            created_at: ts(row.created_at),
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct ClaimRow {
    user_id: Uuid,
    claimed_at: i64,
    released_at: Option<i64>,
}

impl From<ClaimRow> for ClaimRecord {
    fn from(row: ClaimRow) -> Self {
        ClaimRecord {
            user_id: UserId::from_uuid(row.user_id),
            claimed_at: ts(row.claimed_at),
            released_at: row.released_at.map(ts),
        }
    }
}

pub(crate) const DELIVERY_COLUMNS: &str = "id, account_id, handoff_id, channel, recipient, purpose, status, \
     attempts, last_error, message_ref, sent_at, created_at";

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct DeliveryRow {
    id: Uuid,
    account_id: Uuid,
    handoff_id: Uuid,
    channel: String,
    recipient: String,
    purpose: String,
    status: String,
    attempts: i32,
    last_error: Option<String>,
    message_ref: Option<String>,
    sent_at: Option<i64>,
    created_at: i64,
}

impl TryFrom<DeliveryRow> for Delivery {
    type Error = StoreError;
    fn try_from(row: DeliveryRow) -> Result<Self, StoreError> {
        Ok(Delivery {
            id: row.id,
            account_id: AccountId::from_uuid(row.account_id),
            handoff_id: HandoffId::from_uuid(row.handoff_id),
            channel: word::<DeliveryChannel>("delivery channel", &row.channel)?,
            recipient: row.recipient,
            purpose: json::<DeliveryPurpose>("delivery purpose", &format!("\"{}\"", row.purpose))?,
            status: word::<DeliveryStatus>("delivery status", &row.status)?,
            attempts: row.attempts,
            last_error: row.last_error,
            message_ref: row
                .message_ref
                .as_deref()
                .map(|m| json("delivery message ref", m))
                .transpose()?,
            sent_at: row.sent_at.map(ts),
            created_at: ts(row.created_at),
        })
    }
}

/// The stored word for a delivery purpose.
pub(crate) fn purpose_word(purpose: DeliveryPurpose) -> String {
    to_json(&purpose).trim_matches('"').to_owned()
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct JobRow {
    pub(crate) id: Uuid,
    account_id: Uuid,
    payload: String,
    attempts: i32,
    max_attempts: i32,
    pub(crate) run_at: i64,
}

impl TryFrom<JobRow> for JobRecord {
    type Error = StoreError;
    fn try_from(row: JobRow) -> Result<Self, StoreError> {
        Ok(JobRecord {
            id: row.id,
            account_id: AccountId::from_uuid(row.account_id),
            job: json::<Job>("job payload", &row.payload)?,
            attempts: row.attempts,
            max_attempts: row.max_attempts,
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct EventRow {
    seq: i64,
    account_id: Uuid,
    kind: String,
    summary: String,
    created_at: i64,
}

impl TryFrom<EventRow> for HandoffEvent {
    type Error = StoreError;
    fn try_from(row: EventRow) -> Result<Self, StoreError> {
        Ok(HandoffEvent {
            seq: row.seq,
            account_id: AccountId::from_uuid(row.account_id),
            kind: word::<EventKind>("event kind", &row.kind)?,
            summary: json("event summary", &row.summary)?,
            created_at: ts(row.created_at),
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct EscalationDbRow {
    id: Uuid,
    created_at: i64,
    priority: String,
    claimed_by: Option<Uuid>,
    claimed_by_name: Option<String>,
    claimed_at: Option<i64>,
    first_action_at: Option<i64>,
    resolved_at: Option<i64>,
    category: Option<String>,
    claim_count: i32,
    release_count: i32,
}

impl TryFrom<EscalationDbRow> for EscalationRow {
    type Error = StoreError;
    fn try_from(row: EscalationDbRow) -> Result<Self, StoreError> {
        Ok(EscalationRow {
            handoff_id: HandoffId::from_uuid(row.id),
            created_at: ts(row.created_at),
            priority: word::<Priority>("handoff priority", &row.priority)?,
            claimed_by: row.claimed_by.map(UserId::from_uuid),
            claimed_by_name: row.claimed_by_name,
            claimed_at: row.claimed_at.map(ts),
            first_action_at: row.first_action_at.map(ts),
            resolved_at: row.resolved_at.map(ts),
            category: row.category,
            claim_count: row.claim_count,
            release_count: row.release_count,
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct PsaConnectionRow {
    id: Uuid,
    account_id: Uuid,
    team_id: Uuid,
    provider: String,
    settings: String,
    credentials: String,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<PsaConnectionRow> for PsaConnection {
    type Error = StoreError;

    fn try_from(row: PsaConnectionRow) -> Result<Self, StoreError> {
        Ok(PsaConnection {
            id: row.id,
            account_id: AccountId::from_uuid(row.account_id),
            team_id: TeamId::from_uuid(row.team_id),
            provider: word("PSA connection", &row.provider)?,
            settings: json("PSA connection", &row.settings)?,
            sealed_credentials: row.credentials,
            created_at: ts(row.created_at),
            updated_at: ts(row.updated_at),
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct PsaMemberRow {
    connection_id: Uuid,
    user_id: Uuid,
    member_id: String,
    member_name: String,
    member_email: Option<String>,
    source: String,
    updated_at: i64,
}

impl TryFrom<PsaMemberRow> for MemberMapping {
    type Error = StoreError;

    fn try_from(row: PsaMemberRow) -> Result<Self, StoreError> {
        Ok(MemberMapping {
            connection_id: row.connection_id,
            user_id: UserId::from_uuid(row.user_id),
            member: Member {
                id: row.member_id,
                name: row.member_name,
                email: row.member_email,
            },
            source: word("PSA member mapping", &row.source)?,
            updated_at: ts(row.updated_at),
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct PsaNoteRow {
    id: Uuid,
    account_id: Uuid,
    session_id: Uuid,
    idempotency_key: String,
    ticket: String,
    version: String,
    body: String,
    requested_by: Uuid,
    status: String,
    member: Option<String>,
    psa_note_id: Option<String>,
    error: Option<String>,
    created_at: i64,
    posted_at: Option<i64>,
}

impl TryFrom<PsaNoteRow> for PsaNoteRecord {
    type Error = StoreError;

    fn try_from(row: PsaNoteRow) -> Result<Self, StoreError> {
        Ok(PsaNoteRecord {
            id: row.id,
            account_id: AccountId::from_uuid(row.account_id),
            session_id: SessionId::from_uuid(row.session_id),
            idempotency_key: row.idempotency_key,
            ticket: row.ticket,
            version: row.version,
            body: row.body,
            requested_by: UserId::from_uuid(row.requested_by),
            status: word("PSA note", &row.status)?,
            member: row.member,
            psa_note_id: row.psa_note_id,
            error: row.error,
            created_at: ts(row.created_at),
            posted_at: row.posted_at.map(ts),
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct FixRow {
    id: Uuid,
    account_id: Uuid,
    session_id: Uuid,
    proposal: String,
    created_at: i64,
    superseded_at: Option<i64>,
    decision: Option<String>,
    decided_by: Option<Uuid>,
    decided_at: Option<i64>,
}

impl TryFrom<FixRow> for SuggestedFix {
    type Error = StoreError;

    fn try_from(row: FixRow) -> Result<Self, StoreError> {
        Ok(SuggestedFix {
            id: row.id,
            account_id: AccountId::from_uuid(row.account_id),
            session_id: SessionId::from_uuid(row.session_id),
            proposal: json("suggested fix", &row.proposal)?,
            created_at: ts(row.created_at),
            superseded_at: row.superseded_at.map(ts),
            decision: row.decision.map(|d| word("fix decision", &d)).transpose()?,
            decided_by: row.decided_by.map(UserId::from_uuid),
            decided_at: row.decided_at.map(ts),
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct ProposalRow {
    id: Uuid,
    account_id: Uuid,
    title: String,
    yaml: String,
    rationale: String,
    origin: String,
    source_sessions: String,
    status: String,
    requested_by: Option<Uuid>,
    reviewer_id: Option<Uuid>,
    reviewed_at: Option<i64>,
    flow_id: Option<Uuid>,
    fingerprint: String,
    created_at: i64,
}

impl TryFrom<ProposalRow> for FlowProposal {
    type Error = StoreError;

    fn try_from(row: ProposalRow) -> Result<Self, StoreError> {
        Ok(FlowProposal {
            id: row.id,
            account_id: AccountId::from_uuid(row.account_id),
            title: row.title,
            yaml: row.yaml,
            rationale: row.rationale,
            origin: word("proposal origin", &row.origin)?,
            source_sessions: json("flow proposal", &row.source_sessions)?,
            status: word("proposal status", &row.status)?,
            requested_by: row.requested_by.map(UserId::from_uuid),
            reviewer_id: row.reviewer_id.map(UserId::from_uuid),
            reviewed_at: row.reviewed_at.map(ts),
            flow_id: row.flow_id.map(FlowId::from_uuid),
            fingerprint: row.fingerprint,
            created_at: ts(row.created_at),
        })
    }
}
