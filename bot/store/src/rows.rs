//! Database rows and their conversion to core types. One row type serves both backends.

use rf_core::StoreError;
use rf_core::domain::{Account, Platform, Role, Team, ThreadKey, User};
use rf_core::flow::{Flow, FlowKind, FlowSource, FlowStatus, FlowSummary};
use rf_core::ids::{AccountId, FactId, FlowId, LinkId, SessionId, StepId, TeamId, UserId};
use rf_core::links::{LinkScope, ShareLink};
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
    created_at: i64,
}

impl From<TeamRow> for Team {
    fn from(row: TeamRow) -> Self {
        Team {
            id: TeamId::from_uuid(row.id),
            account_id: AccountId::from_uuid(row.account_id),
            name: row.name,
            created_at: ts(row.created_at),
        }
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
     owner_id, created_by, problem, status, conversation, flow_id, flow, psa_ticket, resolution, \
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
        LinkScope::Account => ("account", None),
    }
}
