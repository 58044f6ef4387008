//! The ports the core needs from the outside world. Adapters implement them.

use crate::domain::{
    Account, ChatIdentity, InstallationRef, Platform, Role, RoleAssignment, Team, ThreadKey, User,
};
use crate::flow::{Flow, FlowHit, FlowQuery, FlowRecord, FlowSource, FlowSummary, SaveOutcome};
use crate::handoff::{ClaimOutcome, ClaimRecord, Handoff};
use crate::ids::{AccountId, FlowId, HandoffId, LinkId, SessionId, TeamId, UserId};
use crate::jobs::{DeliveryId, JobRecord, JobResult, NewJob};
use crate::links::ShareLink;
use crate::metrics::EscalationRow;
use crate::notify::MessageRef;
use crate::outbox::{Delivery, DeliveryStatus, HandoffEvent, NewDelivery, NewEvent};
use crate::psa::{MemberMapping, NoteOutcome, PsaConnection, PsaNoteRecord};
use crate::session::{
    Fact, NewSession, Session, SessionChange, SessionFilter, StepKind, TimelineStep,
};
use crate::team::TeamSettings;
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

    /// Connects another installation (a chat workspace) to an existing account and team, or
    /// re-enables it there after an uninstall. An installation of another account is left alone.
    async fn attach_installation(
        &self,
        installation: &InstallationRef,
        account: AccountId,
        team: TeamId,
        now: Timestamp,
    ) -> StoreResult<()>;

    /// Disconnects an installation (the app was uninstalled): its events are no longer handled.
    /// `true` when it was connected.
    async fn disable_installation(
        &self,
        installation: &InstallationRef,
        now: Timestamp,
    ) -> StoreResult<bool>;

    /// Stores an installation's encrypted secret for `purpose` (replacing the previous one).
    async fn save_installation_secret(
        &self,
        installation: &InstallationRef,
        purpose: &str,
        sealed: &str,
        now: Timestamp,
    ) -> StoreResult<()>;

    /// Every stored installation secret, of every account: for the operator's `keys rotate` only.
    async fn all_installation_secrets(&self)
    -> StoreResult<Vec<(InstallationRef, String, String)>>;

    /// The encrypted secret of a connected installation, if any.
    async fn installation_secret(
        &self,
        installation: &InstallationRef,
        purpose: &str,
    ) -> StoreResult<Option<String>>;

    async fn get_account(&self, account: AccountId) -> StoreResult<Account>;

    async fn get_team(&self, account: AccountId, team: TeamId) -> StoreResult<Team>;

    async fn save_team_settings(
        &self,
        account: AccountId,
        team: TeamId,
        settings: &TeamSettings,
    ) -> StoreResult<()>;

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

    // --- handoffs ----------------------------------------------------------------------------

    async fn get_handoff(&self, account: AccountId, handoff: HandoffId) -> StoreResult<Handoff>;

    /// The account's escalations, newest first: open ones, or everything created since `since`.
    async fn list_handoffs(
        &self,
        account: AccountId,
        filter: &HandoffFilter,
    ) -> StoreResult<Vec<Handoff>>;

    /// First claim wins: the handoff is claimed only if nobody holds it (a single conditional
    /// update, on every backend and across processes). When won, `plan` is applied in the same
    /// transaction: the session passes to the claimer, and its steps, jobs and event are written.
    async fn claim_handoff(
        &self,
        account: AccountId,
        handoff: HandoffId,
        user: UserId,
        now: Timestamp,
        plan: ClaimPlan,
    ) -> StoreResult<ClaimOutcome>;

    /// Releases claim generation `claim` if it is still held and was neither acknowledged nor acted
    /// on; applies `plan` in the same transaction. `None` when there was nothing to release.
    async fn release_handoff(
        &self,
        account: AccountId,
        handoff: HandoffId,
        claim: i32,
        now: Timestamp,
        plan: ClaimPlan,
    ) -> StoreResult<Option<Handoff>>;

    /// The claimer said "I'm on it". `false` if `user` does not hold the claim.
    async fn acknowledge_claim(
        &self,
        account: AccountId,
        handoff: HandoffId,
        user: UserId,
        now: Timestamp,
    ) -> StoreResult<bool>;

    /// Whether the claimer has done anything in the session since claiming.
    async fn claimer_has_acted(&self, account: AccountId, handoff: &Handoff) -> StoreResult<bool>;

    async fn claim_history(
        &self,
        account: AccountId,
        handoff: HandoffId,
    ) -> StoreResult<Vec<ClaimRecord>>;

    // --- outbox ------------------------------------------------------------------------------

    /// Records deliveries (a delivery that exists for the same handoff, channel and recipient is
    /// left alone) and jobs, atomically.
    async fn add_deliveries(
        &self,
        account: AccountId,
        deliveries: Vec<NewDelivery>,
        jobs: Vec<NewJob>,
        now: Timestamp,
    ) -> StoreResult<()>;

    async fn get_delivery(&self, account: AccountId, delivery: DeliveryId)
    -> StoreResult<Delivery>;

    async fn deliveries(
        &self,
        account: AccountId,
        handoff: HandoffId,
    ) -> StoreResult<Vec<Delivery>>;

    async fn mark_delivery(
        &self,
        account: AccountId,
        delivery: DeliveryId,
        status: DeliveryStatus,
        error: Option<&str>,
        message_ref: Option<&MessageRef>,
        now: Timestamp,
    ) -> StoreResult<()>;

    /// Records jobs outside any other change.
    async fn enqueue(&self, jobs: Vec<NewJob>, now: Timestamp) -> StoreResult<()>;

    /// Takes up to `limit` due jobs for `worker` for `lease_millis` (a job whose worker died is due
    /// again once its lease runs out), due first, then oldest first. A lane with a job running
    /// under a live lease is passed over, so one lane's jobs never run side by side. On
    /// PostgreSQL, `FOR UPDATE SKIP LOCKED`: replicas never take the same job.
    async fn claim_jobs(
        &self,
        worker: &str,
        now: Timestamp,
        lease_millis: i64,
        limit: i64,
    ) -> StoreResult<Vec<JobRecord>>;

    /// Extends the leases `worker` holds on `jobs` to `until`, so that a job that takes longer
    /// than one lease (a slow model, a PSA outage) is not taken over while it runs. Returns how
    /// many leases were renewed.
    async fn renew_job_leases(
        &self,
        worker: &str,
        jobs: &[uuid::Uuid],
        until: Timestamp,
        now: Timestamp,
    ) -> StoreResult<u64>;

    /// Records how a claimed job ended (retry later, done, or failed for good).
    async fn finish_job(
        &self,
        job: uuid::Uuid,
        worker: &str,
        result: &JobResult,
        now: Timestamp,
    ) -> StoreResult<()>;

    /// Jobs not yet done, by kind (for tests, metrics and operators).
    async fn pending_jobs(&self) -> StoreResult<Vec<(String, Timestamp)>>;

    // --- event stream ------------------------------------------------------------------------

    /// Events of every account after `seq`, oldest first (the fan-out feeder reads this).
    async fn events_after(&self, seq: i64, limit: i64) -> StoreResult<Vec<HandoffEvent>>;

    /// One account's events after `seq` (backfill for a reconnecting subscriber).
    async fn account_events_after(
        &self,
        account: AccountId,
        seq: i64,
        limit: i64,
    ) -> StoreResult<Vec<HandoffEvent>>;

    /// The newest event's `seq` (0 when there are none).
    async fn latest_event_seq(&self) -> StoreResult<i64>;

    // --- metrics -----------------------------------------------------------------------------

    /// One row per escalation created in `[since, until)`, with its claim, first action after the
    /// claim, resolution and flow category.
    async fn escalation_rows(
        &self,
        account: AccountId,
        since: Timestamp,
        until: Timestamp,
    ) -> StoreResult<Vec<EscalationRow>>;

    // --- inbound de-duplication ---------------------------------------------------------------

    /// Forgets inbound deliveries recorded before `before` (platforms stop retrying long before).
    async fn purge_inbound(&self, before: Timestamp) -> StoreResult<u64>;

    /// Records an inbound delivery under every one of its `keys` (an event id, a channel and
    /// message timestamp…) together with the job that handles it, in one transaction. `false`, and
    /// nothing recorded, when any key was seen before: a retried or re-sent delivery.
    async fn accept_inbound(
        &self,
        source: &str,
        keys: &[String],
        job: NewJob,
        now: Timestamp,
    ) -> StoreResult<bool>;

    // --- PSA ------------------------------------------------------------------------------------

    /// Saves a team's PSA connection (one per team): a connection for a team that has one
    /// replaces its settings and credentials and keeps its id.
    async fn save_psa_connection(&self, connection: &PsaConnection) -> StoreResult<()>;

    async fn psa_connection(
        &self,
        account: AccountId,
        team: TeamId,
    ) -> StoreResult<Option<PsaConnection>>;

    /// Removes a team's connection and its member mapping; `false` if there was none.
    async fn delete_psa_connection(&self, account: AccountId, team: TeamId) -> StoreResult<bool>;

    /// Every connection of every account (for re-encrypting credentials under a new key).
    async fn all_psa_connections(&self) -> StoreResult<Vec<PsaConnection>>;

    /// Replaces a connection's sealed credentials only if they are still `expected`.
    async fn reseal_psa_credentials(
        &self,
        connection: uuid::Uuid,
        expected: &str,
        sealed: &str,
    ) -> StoreResult<bool>;

    async fn psa_member(
        &self,
        account: AccountId,
        connection: uuid::Uuid,
        user: UserId,
    ) -> StoreResult<Option<MemberMapping>>;

    /// Saves a mapping. A mapping set by a person is never replaced by one matched by e-mail.
    async fn save_psa_member(&self, account: AccountId, mapping: &MemberMapping)
    -> StoreResult<()>;

    async fn psa_members(
        &self,
        account: AccountId,
        connection: uuid::Uuid,
    ) -> StoreResult<Vec<MemberMapping>>;

    async fn psa_note(&self, account: AccountId, note: uuid::Uuid) -> StoreResult<PsaNoteRecord>;

    /// The post log of a session, oldest first.
    async fn psa_notes(
        &self,
        account: AccountId,
        session: SessionId,
    ) -> StoreResult<Vec<PsaNoteRecord>>;

    /// Records how a queued note ended, with the jobs that tell people, in one transaction. A
    /// note that already ended is left as it is (and `jobs` are not added): `false`.
    async fn finish_psa_note(
        &self,
        account: AccountId,
        note: uuid::Uuid,
        outcome: &NoteOutcome,
        jobs: &[NewJob],
        now: Timestamp,
    ) -> StoreResult<bool>;

    // --- Copilot --------------------------------------------------------------------------------

    /// A session's suggested fixes, oldest first (the last one not superseded is the active one).
    async fn suggested_fixes(
        &self,
        account: AccountId,
        session: SessionId,
    ) -> StoreResult<Vec<crate::ai::SuggestedFix>>;

    /// Replaces a handoff's assessment (a model's, replacing the offline one), with the jobs that
    /// bring its cards up to date, in one transaction.
    async fn set_assessment(
        &self,
        account: AccountId,
        handoff: HandoffId,
        assessment: &crate::handoff::Assessment,
        jobs: &[NewJob],
        now: Timestamp,
    ) -> StoreResult<()>;

    /// Records a flow proposal; `None` when one with the same fingerprint exists.
    async fn add_flow_proposal(
        &self,
        proposal: &crate::flow::proposal::NewFlowProposal,
        now: Timestamp,
    ) -> StoreResult<Option<crate::flow::proposal::FlowProposal>>;

    async fn flow_proposal(
        &self,
        account: AccountId,
        proposal: uuid::Uuid,
    ) -> StoreResult<crate::flow::proposal::FlowProposal>;

    /// The account's proposals, newest first, optionally of one status.
    async fn flow_proposals(
        &self,
        account: AccountId,
        status: Option<crate::flow::proposal::ProposalStatus>,
    ) -> StoreResult<Vec<crate::flow::proposal::FlowProposal>>;

    /// Records a review of a pending proposal. A proposal already reviewed is a `Conflict`.
    async fn review_flow_proposal(
        &self,
        account: AccountId,
        proposal: uuid::Uuid,
        review: &crate::flow::proposal::ProposalReview,
        now: Timestamp,
    ) -> StoreResult<crate::flow::proposal::FlowProposal>;
}

/// Which handoffs to list.
#[derive(Debug, Clone, Default)]
pub struct HandoffFilter {
    /// Only open (not closed) ones.
    pub open_only: bool,
    /// Only ones created at or after this time.
    pub since: Option<Timestamp>,
    pub limit: i64,
}

/// What to write when a claim is won (or released), in the same transaction.
#[derive(Debug, Clone, Default)]
pub struct ClaimPlan {
    pub step: Option<StepKind>,
    pub jobs: Vec<NewJob>,
    pub events: Vec<NewEvent>,
}
