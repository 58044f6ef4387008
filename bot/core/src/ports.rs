//! The ports the core needs from the outside world. Adapters implement them.

use crate::domain::{
    Account, ChatIdentity, InstallationRef, Platform, Role, RoleAssignment, Team, ThreadKey, User,
};
use crate::flow::{Flow, FlowHit, FlowQuery, FlowRecord, FlowSource, FlowSummary, SaveOutcome};
use crate::ids::{AccountId, FlowId, LinkId, SessionId, TeamId, UserId};
use crate::links::ShareLink;
use crate::session::{Fact, NewSession, Session, SessionChange, SessionFilter, TimelineStep};
use crate::time::Timestamp;
use async_trait::async_trait;
use std::fmt::Debug;

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{what} not found")]
    NotFound { what: &'static str },
    /// Someone else wrote the record since it was read; reload and try again.
    #[error("{what} was changed by someone else in the meantime")]
    Conflict { what: &'static str },
    /// A uniqueness or integrity rule refused the write.
    #[error("{0}")]
    Constraint(String),
    /// Stored data could not be read back (a bug or a manual edit).
    #[error("stored {what} is unreadable: {detail}")]
    Corrupt { what: &'static str, detail: String },
    #[error("the database is unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Persistence for everything the core keeps. Every method that touches tenant data takes the
/// account and filters by it: a record of another account is simply not found.
#[async_trait]
pub trait Store: Send + Sync + Debug + 'static {
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    /// Checks the database answers.
    async fn ping(&self) -> StoreResult<()>;

    // --- directory ---------------------------------------------------------------------------

    /// The account and default team for an installation, created on first sight.
    async fn ensure_installation(
        &self,
        installation: &InstallationRef,
        account_name: &str,
        team_name: &str,
        now: Timestamp,
    ) -> StoreResult<(Account, Team)>;

    /// The account and default team of a known installation.
    async fn find_installation(
        &self,
        installation: &InstallationRef,
    ) -> StoreResult<Option<(AccountId, TeamId)>>;

    async fn get_account(&self, account: AccountId) -> StoreResult<Account>;

    /// Creates the user or refreshes their name and e-mail; the role follows `role`.
    async fn upsert_user(
        &self,
        account: AccountId,
        team: TeamId,
        identity: &ChatIdentity,
        role: RoleAssignment,
        now: Timestamp,
    ) -> StoreResult<User>;

    async fn get_user(&self, account: AccountId, user: UserId) -> StoreResult<User>;

    async fn find_user(
        &self,
        account: AccountId,
        platform: Platform,
        platform_user_id: &str,
    ) -> StoreResult<Option<User>>;

    async fn set_role(&self, account: AccountId, user: UserId, role: Role) -> StoreResult<User>;

    async fn list_users(&self, account: AccountId) -> StoreResult<Vec<User>>;

    // --- flows -------------------------------------------------------------------------------

    /// Creates the flow, or updates the one with the same slug (bumping its version when the
    /// definition changed).
    async fn save_flow(
        &self,
        account: AccountId,
        flow: &Flow,
        source: FlowSource,
        now: Timestamp,
    ) -> StoreResult<(FlowSummary, SaveOutcome)>;

    async fn get_flow(&self, account: AccountId, flow: FlowId) -> StoreResult<FlowRecord>;

    async fn get_flow_by_slug(
        &self,
        account: AccountId,
        slug: &str,
    ) -> StoreResult<Option<FlowRecord>>;

    async fn list_flows(&self, account: AccountId) -> StoreResult<Vec<FlowSummary>>;

    /// Published flows ranked by full-text relevance to the query, best first.
    async fn search_flows(
        &self,
        account: AccountId,
        query: &FlowQuery,
        limit: i64,
    ) -> StoreResult<Vec<FlowHit>>;

    // --- sessions ----------------------------------------------------------------------------

    /// Creates a session and its first timeline steps. A thread holds at most one session:
    /// a second one for the same thread is a [`StoreError::Conflict`].
    async fn create_session(&self, new: NewSession, now: Timestamp) -> StoreResult<Session>;

    async fn get_session(&self, account: AccountId, session: SessionId) -> StoreResult<Session>;

    async fn session_for_thread(
        &self,
        account: AccountId,
        thread: &ThreadKey,
    ) -> StoreResult<Option<Session>>;

    /// Most recently updated first.
    async fn list_sessions(
        &self,
        account: AccountId,
        filter: &SessionFilter,
    ) -> StoreResult<Vec<Session>>;

    /// Applies a change if the session is still at `expected_lock_version`; otherwise
    /// [`StoreError::Conflict`] and nothing is written.
    async fn commit_session(
        &self,
        account: AccountId,
        session: SessionId,
        expected_lock_version: i64,
        change: SessionChange,
        now: Timestamp,
    ) -> StoreResult<Session>;

    /// The session's timeline in order, with actor names.
    async fn timeline(
        &self,
        account: AccountId,
        session: SessionId,
    ) -> StoreResult<Vec<TimelineStep>>;

    async fn facts(&self, account: AccountId, session: SessionId) -> StoreResult<Vec<Fact>>;

    // --- share links -------------------------------------------------------------------------

    async fn create_link(&self, link: &ShareLink) -> StoreResult<()>;

    async fn get_link(&self, account: AccountId, link: LinkId) -> StoreResult<ShareLink>;

    async fn revoke_link(
        &self,
        account: AccountId,
        link: LinkId,
        now: Timestamp,
    ) -> StoreResult<()>;

    // --- inbound de-duplication ---------------------------------------------------------------

    /// Records that an inbound delivery (`source`, `key`) was seen. `true` the first time only.
    async fn record_inbound(&self, source: &str, key: &str, now: Timestamp) -> StoreResult<bool>;
}
