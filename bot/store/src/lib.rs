//! The [`Store`] port on SQLite (the default) and PostgreSQL, chosen by the URL scheme.
//!
//! One SQL text serves both backends wherever the dialects agree (`$N` placeholders bind on both);
//! the few places they differ (full-text search) say so. Every query that touches tenant data is
//! filtered by `account_id`.
#![forbid(unsafe_code)]

mod rows;

use async_trait::async_trait;
use rf_core::ai::{FixChange, FixDecision, SuggestedFix};
use rf_core::domain::{
    Account, ChatIdentity, InstallationRef, Platform, Role, RoleAssignment, Team, ThreadKey, User,
};
use rf_core::flow::proposal::{FlowProposal, NewFlowProposal, ProposalReview, ProposalStatus};
use rf_core::flow::{Flow, FlowHit, FlowQuery, FlowRecord, FlowSource, FlowSummary, SaveOutcome};
use rf_core::handoff::Assessment;
use rf_core::handoff::{ClaimOutcome, ClaimRecord, Handoff, NewHandoff};
use rf_core::ids::HandoffId;
use rf_core::ids::{AccountId, FactId, FlowId, LinkId, SessionId, StepId, TeamId, UserId};
use rf_core::jobs::{DeliveryId, Job, JobRecord, JobResult, NewJob, backoff};
use rf_core::links::ShareLink;
use rf_core::metrics::EscalationRow;
use rf_core::notify::MessageRef;
use rf_core::outbox::{Delivery, DeliveryStatus, HandoffEvent, NewDelivery, NewEvent};
use rf_core::ports::{ClaimPlan, HandoffFilter};
use rf_core::psa::{MemberMapping, NoteOutcome, NoteStatus, PsaConnection, PsaNoteRecord};
use rf_core::session::{
    Fact, NewSession, NewStep, Session, SessionChange, SessionFilter, SessionStatus, TimelineStep,
};
use rf_core::team::TeamSettings;
use rf_core::time::Timestamp;
use rf_core::{Store, StoreError, StoreResult};
use rows::{
    AccountRow, ClaimRow, DELIVERY_COLUMNS, DeliveryRow, EscalationDbRow, EventRow,
    FLOW_SUMMARY_COLUMNS, FactRow, FixRow, FlowHitRow, FlowRow, FlowSummaryRow, HANDOFF_SELECT,
    HandoffRow, JobRow, LinkRow, ProposalRow, PsaConnectionRow, PsaMemberRow, PsaNoteRow,
    SESSION_COLUMNS, SessionRow, StepRow, TeamRow, UserRow, purpose_word, scope_columns, to_json,
};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Postgres, Sqlite, Transaction};
use std::str::FromStr;
use std::time::Duration;
use uuid::Uuid;

/// How to connect.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pub max_connections: u32,
    /// How long to wait for a connection (and, on SQLite, for the write lock).
    pub acquire_timeout: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(10),
        }
    }
}

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("unsupported database URL `{0}`: use sqlite://path.db or postgres://user@host/db")]
    UnsupportedScheme(String),
    #[error("could not connect to the database: {0}")]
    Connect(#[source] sqlx::Error),
    #[error("could not apply database migrations: {0}")]
    Migrate(#[source] sqlx::migrate::MigrateError),
}

#[derive(Debug, Clone)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// The SQL store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SqlStore {
    pool: Pool,
}

/// Runs the same code against whichever pool the store holds.
macro_rules! on_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match &$store.pool {
            Pool::Sqlite($pool) => $body,
            Pool::Postgres($pool) => $body,
        }
    };
}

/// Begins a transaction that will write. On SQLite this takes the write lock up front
/// (`BEGIN IMMEDIATE`) so a read inside the transaction can never deadlock a later write.
trait BeginWrite {
    type Db: sqlx::Database;
    async fn begin_write(&self) -> Result<Transaction<'static, Self::Db>, sqlx::Error>;
}

impl BeginWrite for SqlitePool {
    type Db = Sqlite;
    async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>, sqlx::Error> {
        self.begin_with("BEGIN IMMEDIATE").await
    }
}

impl BeginWrite for PgPool {
    type Db = Postgres;
    async fn begin_write(&self) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        self.begin().await
    }
}

fn db_err(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::RowNotFound => StoreError::NotFound { what: "record" },
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Constraint(format!("already exists ({})", db.message()))
        }
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreError::Constraint(
            format!("refers to something that does not exist ({})", db.message()),
        ),
        other => StoreError::Unavailable(Box::new(other)),
    }
}

fn not_found(what: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| match e {
        sqlx::Error::RowNotFound => StoreError::NotFound { what },
        other => db_err(other),
    }
}

impl SqlStore {
    /// Opens the database named by `url` and brings its schema up to date.
    ///
    /// `sqlite://path.db` (created if missing; WAL mode) or `postgres://…` / `postgresql://…`.
    pub async fn open(url: &str, options: &ConnectOptions) -> Result<Self, OpenError> {
        let store = if url.starts_with("sqlite:") {
            let connect = SqliteConnectOptions::from_str(url)
                .map_err(OpenError::Connect)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(options.acquire_timeout);
            let pool = SqlitePoolOptions::new()
                .max_connections(options.max_connections)
                .acquire_timeout(options.acquire_timeout)
                .connect_with(connect)
                .await
                .map_err(OpenError::Connect)?;
            sqlx::migrate!("../../migrations/sqlite")
                .run(&pool)
                .await
                .map_err(OpenError::Migrate)?;
            Self {
                pool: Pool::Sqlite(pool),
            }
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let connect = PgConnectOptions::from_str(url).map_err(OpenError::Connect)?;
            let pool = PgPoolOptions::new()
                .max_connections(options.max_connections)
                .acquire_timeout(options.acquire_timeout)
                .connect_with(connect)
                .await
                .map_err(OpenError::Connect)?;
            sqlx::migrate!("../../migrations/postgres")
                .run(&pool)
                .await
                .map_err(OpenError::Migrate)?;
            Self {
                pool: Pool::Postgres(pool),
            }
        } else {
            let scheme = url.split(':').next().unwrap_or(url);
            return Err(OpenError::UnsupportedScheme(format!("{scheme}:…")));
        };
        Ok(store)
    }

    /// Closes every pooled connection (graceful shutdown).
    pub async fn close(&self) {
        on_pool!(self, |pool| pool.close().await)
    }

    /// The PostgreSQL pool, for features that need PostgreSQL itself (LISTEN/NOTIFY, advisory locks).
    pub fn postgres_pool(&self) -> Option<&PgPool> {
        match &self.pool {
            Pool::Postgres(pool) => Some(pool),
            Pool::Sqlite(_) => None,
        }
    }
}

/// Any core id (or a `Uuid`) as a `Uuid` to bind.
fn u(id: impl Into<Uuid>) -> Uuid {
    id.into()
}

/// The FTS5 query for the terms: `"vpn" OR "printer"*`. Terms are alphanumeric, so quoting is
/// enough to make them inert.
fn fts5_query(query: &FlowQuery) -> String {
    query
        .terms
        .iter()
        .map(|t| {
            if t.prefix {
                format!("\"{}\"*", t.text)
            } else {
                format!("\"{}\"", t.text)
            }
        })
        .collect::<Vec<_>>()
        .join(" OR ")
}

#[async_trait]
impl Store for SqlStore {
    fn backend(&self) -> &'static str {
        match self.pool {
            Pool::Sqlite(_) => "sqlite",
            Pool::Postgres(_) => "postgres",
        }
    }

    async fn ping(&self) -> StoreResult<()> {
        on_pool!(self, |pool| sqlx::query("SELECT 1")
            .execute(pool)
            .await
            .map(|_| ())
            .map_err(db_err))?;
        Ok(())
    }

    async fn ensure_installation(
        &self,
        installation: &InstallationRef,
        account_name: &str,
        team_name: &str,
        now: Timestamp,
    ) -> StoreResult<(Account, Team)> {
        let platform = installation.platform.as_str();
        let external = installation.external_id.as_str();
        let account_id = AccountId::new();
        let team_id = TeamId::new();
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await.map_err(db_err)?;
            let existing: Option<(Uuid, Uuid)> = sqlx::query_as(
                "SELECT account_id, team_id FROM installations WHERE platform = $1 AND external_id = $2",
            )
            .bind(platform)
            .bind(external)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
            let (account, team) = match existing {
                Some(ids) => ids,
                None => {
                    sqlx::query("INSERT INTO accounts (id, name, created_at) VALUES ($1, $2, $3)")
                        .bind(u(account_id))
                        .bind(account_name)
                        .bind(now.as_millis())
                        .execute(&mut *tx)
                        .await
                        .map_err(db_err)?;
                    sqlx::query("INSERT INTO teams (id, account_id, name, created_at) VALUES ($1, $2, $3, $4)")
                        .bind(u(team_id))
                        .bind(u(account_id))
                        .bind(team_name)
                        .bind(now.as_millis())
                        .execute(&mut *tx)
                        .await
                        .map_err(db_err)?;
                    sqlx::query(
                        "INSERT INTO installations (platform, external_id, account_id, team_id, created_at) \
                         VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(platform)
                    .bind(external)
                    .bind(u(account_id))
                    .bind(u(team_id))
                    .bind(now.as_millis())
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                    (u(account_id), u(team_id))
                }
            };
            let account: AccountRow =
                sqlx::query_as("SELECT id, name, created_at FROM accounts WHERE id = $1")
                    .bind(account)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(not_found("account"))?;
            let team: TeamRow = sqlx::query_as(
                "SELECT id, account_id, name, settings, created_at FROM teams WHERE id = $1 AND account_id = $2",
            )
            .bind(team)
            .bind(account.id)
            .fetch_one(&mut *tx)
            .await
            .map_err(not_found("team"))?;
            tx.commit().await.map_err(db_err)?;
            Ok((account.into(), team.try_into()?))
        })
    }

    async fn find_installation(
        &self,
        installation: &InstallationRef,
    ) -> StoreResult<Option<(AccountId, TeamId)>> {
        let row: Option<(Uuid, Uuid)> = on_pool!(self, |pool| sqlx::query_as(
            "SELECT account_id, team_id FROM installations \
             WHERE platform = $1 AND external_id = $2 AND disabled_at IS NULL",
        )
        .bind(installation.platform.as_str())
        .bind(installation.external_id.as_str())
        .fetch_optional(pool)
        .await
        .map_err(db_err))?;
        Ok(row.map(|(a, t)| (AccountId::from_uuid(a), TeamId::from_uuid(t))))
    }

    async fn attach_installation(
        &self,
        installation: &InstallationRef,
        account: AccountId,
        team: TeamId,
        now: Timestamp,
    ) -> StoreResult<()> {
        on_pool!(self, |pool| sqlx::query(
            "INSERT INTO installations (platform, external_id, account_id, team_id, created_at) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (platform, external_id) DO UPDATE SET disabled_at = NULL \
             WHERE installations.account_id = excluded.account_id",
        )
        .bind(installation.platform.as_str())
        .bind(installation.external_id.as_str())
        .bind(u(account))
        .bind(u(team))
        .bind(now.as_millis())
        .execute(pool)
        .await
        .map(drop)
        .map_err(db_err))
    }

    async fn disable_installation(
        &self,
        installation: &InstallationRef,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let changed = on_pool!(self, |pool| sqlx::query(
            "UPDATE installations SET disabled_at = $3 \
             WHERE platform = $1 AND external_id = $2 AND disabled_at IS NULL",
        )
        .bind(installation.platform.as_str())
        .bind(installation.external_id.as_str())
        .bind(now.as_millis())
        .execute(pool)
        .await
        .map(|r| r.rows_affected())
        .map_err(db_err))?;
        Ok(changed > 0)
    }

    async fn save_installation_secret(
        &self,
        installation: &InstallationRef,
        purpose: &str,
        sealed: &str,
        now: Timestamp,
    ) -> StoreResult<()> {
        on_pool!(self, |pool| sqlx::query(
            "INSERT INTO installation_secrets (platform, external_id, purpose, sealed, updated_at) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (platform, external_id, purpose) DO UPDATE \
             SET sealed = excluded.sealed, updated_at = excluded.updated_at",
        )
        .bind(installation.platform.as_str())
        .bind(installation.external_id.as_str())
        .bind(purpose)
        .bind(sealed)
        .bind(now.as_millis())
        .execute(pool)
        .await
        .map(drop)
        .map_err(db_err))
    }

    async fn all_installation_secrets(
        &self,
    ) -> StoreResult<Vec<(InstallationRef, String, String)>> {
        let rows: Vec<(String, String, String, String)> = on_pool!(self, |pool| sqlx::query_as(
            "SELECT platform, external_id, purpose, sealed FROM installation_secrets \
             ORDER BY platform, external_id, purpose"
        )
        .fetch_all(pool)
        .await
        .map_err(db_err))?;
        rows.into_iter()
            .map(|(platform, external_id, purpose, sealed)| {
                Ok((
                    InstallationRef {
                        platform: platform.parse().map_err(|_| StoreError::Corrupt {
                            what: "installation secret",
                            detail: format!("unknown platform {platform:?}"),
                        })?,
                        external_id,
                    },
                    purpose,
                    sealed,
                ))
            })
            .collect()
    }

    async fn installation_secret(
        &self,
        installation: &InstallationRef,
        purpose: &str,
    ) -> StoreResult<Option<String>> {
        let row: Option<(String,)> = on_pool!(self, |pool| sqlx::query_as(
            "SELECT s.sealed FROM installation_secrets s \
             JOIN installations i ON i.platform = s.platform AND i.external_id = s.external_id \
             WHERE s.platform = $1 AND s.external_id = $2 AND s.purpose = $3 \
               AND i.disabled_at IS NULL",
        )
        .bind(installation.platform.as_str())
        .bind(installation.external_id.as_str())
        .bind(purpose)
        .fetch_optional(pool)
        .await
        .map_err(db_err))?;
        Ok(row.map(|(sealed,)| sealed))
    }

    async fn get_account(&self, account: AccountId) -> StoreResult<Account> {
        let row: AccountRow = on_pool!(self, |pool| sqlx::query_as(
            "SELECT id, name, created_at FROM accounts WHERE id = $1"
        )
        .bind(u(account))
        .fetch_one(pool)
        .await
        .map_err(not_found("account")))?;
        Ok(row.into())
    }

    async fn upsert_user(
        &self,
        account: AccountId,
        team: TeamId,
        identity: &ChatIdentity,
        role: RoleAssignment,
        now: Timestamp,
    ) -> StoreResult<User> {
        let (role, always) = match role {
            RoleAssignment::IfNew(role) => (role, false),
            RoleAssignment::Always(role) => (role, true),
        };
        let row: UserRow = on_pool!(self, |pool| {
            sqlx::query_as(
            "INSERT INTO users (id, account_id, team_id, platform, platform_user_id, display_name, \
                                email, role, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) \
             ON CONFLICT (account_id, platform, platform_user_id) DO UPDATE SET \
                 display_name = excluded.display_name, \
                 email = COALESCE(excluded.email, users.email), \
                 role = CASE WHEN $10 THEN excluded.role ELSE users.role END, \
                 updated_at = excluded.updated_at \
             RETURNING id, account_id, team_id, platform, platform_user_id, display_name, email, role, created_at",
        )
        .bind(u(UserId::new()))
        .bind(u(account))
        .bind(u(team))
        .bind(identity.platform.as_str())
        .bind(identity.platform_user_id.as_str())
        .bind(identity.display_name.as_str())
        .bind(identity.email.as_deref())
        .bind(role.as_str())
        .bind(now.as_millis())
        .bind(always)
        .fetch_one(pool)
        .await
        .map_err(db_err)
        })?;
        row.try_into()
    }

    async fn get_user(&self, account: AccountId, user: UserId) -> StoreResult<User> {
        let row: UserRow = on_pool!(self, |pool| {
            sqlx::query_as(
            "SELECT id, account_id, team_id, platform, platform_user_id, display_name, email, role, created_at \
             FROM users WHERE id = $1 AND account_id = $2",
        )
        .bind(u(user))
        .bind(u(account))
        .fetch_one(pool)
        .await
        .map_err(not_found("user"))
        })?;
        row.try_into()
    }

    async fn find_user(
        &self,
        account: AccountId,
        platform: Platform,
        platform_user_id: &str,
    ) -> StoreResult<Option<User>> {
        let row: Option<UserRow> = on_pool!(self, |pool| {
            sqlx::query_as(
            "SELECT id, account_id, team_id, platform, platform_user_id, display_name, email, role, created_at \
             FROM users WHERE account_id = $1 AND platform = $2 AND platform_user_id = $3",
        )
        .bind(u(account))
        .bind(platform.as_str())
        .bind(platform_user_id)
        .fetch_optional(pool)
        .await
        .map_err(db_err)
        })?;
        row.map(TryInto::try_into).transpose()
    }

    async fn set_role(&self, account: AccountId, user: UserId, role: Role) -> StoreResult<User> {
        let row: UserRow = on_pool!(self, |pool| {
            sqlx::query_as(
            "UPDATE users SET role = $1 WHERE id = $2 AND account_id = $3 \
             RETURNING id, account_id, team_id, platform, platform_user_id, display_name, email, role, created_at",
        )
        .bind(role.as_str())
        .bind(u(user))
        .bind(u(account))
        .fetch_one(pool)
        .await
        .map_err(not_found("user"))
        })?;
        row.try_into()
    }

    async fn list_users(&self, account: AccountId) -> StoreResult<Vec<User>> {
        let rows: Vec<UserRow> = on_pool!(self, |pool| {
            sqlx::query_as(
            "SELECT id, account_id, team_id, platform, platform_user_id, display_name, email, role, created_at \
             FROM users WHERE account_id = $1 ORDER BY display_name",
        )
        .bind(u(account))
        .fetch_all(pool)
        .await
        .map_err(db_err)
        })?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn save_flow(
        &self,
        account: AccountId,
        flow: &Flow,
        source: FlowSource,
        now: Timestamp,
    ) -> StoreResult<(FlowSummary, SaveOutcome)> {
        let meta = &flow.meta;
        let definition = to_json(flow);
        let tags = to_json(&meta.tags);
        let symptoms = to_json(&meta.symptoms);
        let body_text = flow.body_text();
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await.map_err(db_err)?;
            let existing: Option<(Uuid, String)> = sqlx::query_as(
                "SELECT id, definition FROM flows WHERE account_id = $1 AND slug = $2",
            )
            .bind(u(account))
            .bind(meta.slug.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
            let outcome = match &existing {
                Some((_, stored)) if *stored == definition => SaveOutcome::Unchanged,
                Some((id, _)) => {
                    sqlx::query(
                        "UPDATE flows SET title = $1, kind = $2, description = $3, category = $4, tags = $5, \
                             folder = $6, symptoms = $7, body_text = $8, status = $9, source = $10, \
                             version = version + 1, definition = $11, updated_at = $12 \
                         WHERE id = $13 AND account_id = $14",
                    )
                    .bind(meta.title.as_str())
                    .bind(meta.kind.as_str())
                    .bind(meta.description.as_str())
                    .bind(meta.category.as_str())
                    .bind(tags.as_str())
                    .bind(meta.folder.as_deref())
                    .bind(symptoms.as_str())
                    .bind(body_text.as_str())
                    .bind(meta.status.as_str())
                    .bind(source.as_str())
                    .bind(definition.as_str())
                    .bind(now.as_millis())
                    .bind(*id)
                    .bind(u(account))
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                    SaveOutcome::Updated
                }
                None => {
                    sqlx::query(
                        "INSERT INTO flows (id, account_id, slug, title, kind, description, category, tags, \
                             folder, symptoms, body_text, status, source, version, definition, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 1, $14, $15, $15)",
                    )
                    .bind(u(FlowId::new()))
                    .bind(u(account))
                    .bind(meta.slug.as_str())
                    .bind(meta.title.as_str())
                    .bind(meta.kind.as_str())
                    .bind(meta.description.as_str())
                    .bind(meta.category.as_str())
                    .bind(tags.as_str())
                    .bind(meta.folder.as_deref())
                    .bind(symptoms.as_str())
                    .bind(body_text.as_str())
                    .bind(meta.status.as_str())
                    .bind(source.as_str())
                    .bind(definition.as_str())
                    .bind(now.as_millis())
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                    SaveOutcome::Created
                }
            };
            let row: FlowSummaryRow = sqlx::query_as(AssertSqlSafe(format!(
                "SELECT {FLOW_SUMMARY_COLUMNS} FROM flows WHERE account_id = $1 AND slug = $2"
            )))
            .bind(u(account))
            .bind(meta.slug.as_str())
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
            tx.commit().await.map_err(db_err)?;
            Ok((row.try_into()?, outcome))
        })
    }

    async fn get_flow(&self, account: AccountId, flow: FlowId) -> StoreResult<FlowRecord> {
        let row: FlowRow = on_pool!(self, |pool| {
            sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {FLOW_SUMMARY_COLUMNS}, definition FROM flows WHERE id = $1 AND account_id = $2"
        )))
        .bind(u(flow))
        .bind(u(account))
        .fetch_one(pool)
        .await
        .map_err(not_found("flow"))
        })?;
        row.into_record()
    }

    async fn get_flow_by_slug(
        &self,
        account: AccountId,
        slug: &str,
    ) -> StoreResult<Option<FlowRecord>> {
        let row: Option<FlowRow> = on_pool!(self, |pool| {
            sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {FLOW_SUMMARY_COLUMNS}, definition FROM flows WHERE account_id = $1 AND slug = $2"
        )))
        .bind(u(account))
        .bind(slug)
        .fetch_optional(pool)
        .await
        .map_err(db_err)
        })?;
        row.map(FlowRow::into_record).transpose()
    }

    async fn list_flows(&self, account: AccountId) -> StoreResult<Vec<FlowSummary>> {
        let rows: Vec<FlowSummaryRow> = on_pool!(self, |pool| {
            sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {FLOW_SUMMARY_COLUMNS} FROM flows WHERE account_id = $1 ORDER BY category, title"
        )))
        .bind(u(account))
        .fetch_all(pool)
        .await
        .map_err(db_err)
        })?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn search_flows(
        &self,
        account: AccountId,
        query: &FlowQuery,
        limit: i64,
    ) -> StoreResult<Vec<FlowHit>> {
        if query.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<FlowHitRow> = match &self.pool {
            // bm25: lower is better, so negate. Column weights: title, symptoms, tags, category,
            // description, body.
            Pool::Sqlite(pool) => sqlx::query_as(AssertSqlSafe(format!(
                "SELECT {columns}, -bm25(flows_fts, 10.0, 8.0, 5.0, 2.0, 2.0, 1.0) AS score \
                 FROM flows_fts JOIN flows f ON f.seq = flows_fts.rowid \
                 WHERE flows_fts MATCH $1 AND f.account_id = $2 AND f.status = 'published' \
                 ORDER BY score DESC, f.title LIMIT $3",
                columns = prefixed_summary_columns("f")
            )))
            .bind(fts5_query(query))
            .bind(u(account))
            .bind(limit)
            .fetch_all(pool)
            .await
            .map_err(db_err)?,
            // Each term's ts_rank (weights D, C, B, A; normalised by log length) times its inverse
            // document frequency in the account's library, summed: common words count for little,
            // as with bm25 on SQLite.
            Pool::Postgres(pool) => sqlx::query_as(AssertSqlSafe(format!(
                "WITH published AS ( \
                     SELECT * FROM flows WHERE account_id = $2 AND status = 'published' \
                 ), terms AS ( \
                     SELECT to_tsquery('english', term) AS q FROM unnest($1::text[]) AS term \
                 ), weighted AS ( \
                     SELECT t.q, ln(1.0 + (SELECT count(*) FROM published)::float8 \
                                      / (1.0 + count(p.id)::float8)) AS idf \
                     FROM terms t LEFT JOIN published p ON p.search @@ t.q \
                     GROUP BY t.q \
                 ) \
                 SELECT {columns}, \
                        sum(ts_rank('{{0.05, 0.2, 0.5, 1.0}}', f.search, w.q, 1) * w.idf)::float8 AS score \
                 FROM published f JOIN weighted w ON f.search @@ w.q \
                 GROUP BY {columns} \
                 ORDER BY score DESC, f.title LIMIT $3",
                columns = prefixed_summary_columns("f")
            )))
            .bind(query.terms.iter().map(|t| if t.prefix { format!("{}:*", t.text) } else { t.text.clone() }).collect::<Vec<_>>())
            .bind(u(account))
            .bind(limit)
            .fetch_all(pool)
            .await
            .map_err(db_err)?,
        };
        rows.into_iter()
            .map(|row| {
                Ok(FlowHit {
                    score: row.score,
                    summary: row.summary.try_into()?,
                })
            })
            .collect()
    }

    async fn create_session(&self, new: NewSession, now: Timestamp) -> StoreResult<Session> {
        let id = SessionId::new();
        let conversation = to_json(&new.conversation);
        let thread = &new.thread;
        let steps = new.steps;
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await.map_err(db_err)?;
            let inserted = sqlx::query(
                "INSERT INTO sessions (id, account_id, team_id, platform, workspace, channel, thread, owner_id, \
                     created_by, problem, status, conversation, state_version, lock_version, next_seq, \
                     created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9, $10, $11, 0, 0, $12, $13, $13)",
            )
            .bind(u(id))
            .bind(u(new.account_id))
            .bind(u(new.team_id))
            .bind(thread.platform.as_str())
            .bind(thread.workspace.as_str())
            .bind(thread.channel.as_str())
            .bind(thread.thread.as_str())
            .bind(u(new.owner_id))
            .bind(new.problem.as_str())
            .bind(new.status.as_str())
            .bind(conversation.as_str())
            .bind(steps.len() as i64 + 1)
            .bind(now.as_millis())
            .execute(&mut *tx)
            .await;
            match inserted {
                Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                    return Err(StoreError::Conflict {
                        what: "the thread's session",
                    });
                }
                other => other.map_err(db_err)?,
            };
            for (i, step) in steps.iter().enumerate() {
                insert_step(&mut tx, new.account_id, id, i as i64 + 1, step, now).await?;
            }
            let row: SessionRow = sqlx::query_as(AssertSqlSafe(format!(
                "SELECT {SESSION_COLUMNS} FROM sessions WHERE id = $1"
            )))
            .bind(u(id))
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
            tx.commit().await.map_err(db_err)?;
            row.into_session()
        })
    }

    async fn get_session(&self, account: AccountId, session: SessionId) -> StoreResult<Session> {
        let row: SessionRow = on_pool!(self, |pool| sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE id = $1 AND account_id = $2"
        )))
        .bind(u(session))
        .bind(u(account))
        .fetch_one(pool)
        .await
        .map_err(not_found("session")))?;
        row.into_session()
    }

    async fn session_for_thread(
        &self,
        account: AccountId,
        thread: &ThreadKey,
    ) -> StoreResult<Option<Session>> {
        let row: Option<SessionRow> = on_pool!(self, |pool| {
            sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {SESSION_COLUMNS} FROM sessions \
             WHERE account_id = $1 AND platform = $2 AND workspace = $3 AND channel = $4 AND thread = $5"
        )))
        .bind(u(account))
        .bind(thread.platform.as_str())
        .bind(thread.workspace.as_str())
        .bind(thread.channel.as_str())
        .bind(thread.thread.as_str())
        .fetch_optional(pool)
        .await
        .map_err(db_err)
        })?;
        row.map(SessionRow::into_session).transpose()
    }

    async fn list_sessions(
        &self,
        account: AccountId,
        filter: &SessionFilter,
    ) -> StoreResult<Vec<Session>> {
        let limit = if filter.limit > 0 { filter.limit } else { 50 };
        let status = filter.status.map(SessionStatus::as_str);
        let rows: Vec<SessionRow> = on_pool!(self, |pool| sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {SESSION_COLUMNS} FROM sessions \
             WHERE account_id = $1 AND ($2 IS NULL OR status = $2) \
             ORDER BY updated_at DESC, id DESC LIMIT $3"
        )))
        .bind(u(account))
        .bind(status)
        .bind(limit)
        .fetch_all(pool)
        .await
        .map_err(db_err))?;
        rows.into_iter().map(SessionRow::into_session).collect()
    }

    async fn commit_session(
        &self,
        account: AccountId,
        session: SessionId,
        expected_lock_version: i64,
        change: SessionChange,
        now: Timestamp,
    ) -> StoreResult<Session> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await.map_err(db_err)?;
            // Claim the row: this succeeds only if nobody wrote since `expected_lock_version`, and
            // holds the row (PostgreSQL) or the database (SQLite) until commit.
            let claimed: Option<SessionRow> = sqlx::query_as(AssertSqlSafe(format!(
                "UPDATE sessions SET lock_version = lock_version + 1, updated_at = $1 \
                 WHERE id = $2 AND account_id = $3 AND lock_version = $4 \
                 RETURNING {SESSION_COLUMNS}"
            )))
            .bind(now.as_millis())
            .bind(u(session))
            .bind(u(account))
            .bind(expected_lock_version)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
            let Some(row) = claimed else {
                let exists: Option<(i64,)> = sqlx::query_as(
                    "SELECT lock_version FROM sessions WHERE id = $1 AND account_id = $2",
                )
                .bind(u(session))
                .bind(u(account))
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
                return Err(match exists {
                    Some(_) => StoreError::Conflict {
                        what: "the session",
                    },
                    None => StoreError::NotFound { what: "session" },
                });
            };
            let first_seq = row.next_seq;
            let mut next = row.into_session()?;
            let previous_handoff = next.handoff_id;
            apply_change(&mut next, &change, now);
            let steps_len = change.steps.len() as i64;
            if previous_handoff.is_some() && (change.close_handoff || change.handoff.is_some()) {
                sqlx::query("UPDATE handoffs SET closed_at = $1 WHERE id = $2 AND account_id = $3 AND closed_at IS NULL")
                    .bind(now.as_millis())
                    .bind(previous_handoff.map(u))
                    .bind(u(account))
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
            }
            if let Some(handoff) = &change.handoff {
                insert_handoff!(tx, account, &next, handoff, now);
            }
            sqlx::query(
                "UPDATE sessions SET owner_id = $1, status = $2, conversation = $3, flow_id = $4, flow = $5, \
                     psa_ticket = $6, resolution = $7, state_version = $8, next_seq = $9, resolved_at = $10, \
                     handoff_id = $11 \
                 WHERE id = $12",
            )
            .bind(u(next.owner_id))
            .bind(next.status.as_str())
            .bind(to_json(&next.conversation))
            .bind(next.flow_id.map(u))
            .bind(next.flow.as_ref().map(to_json))
            .bind(next.psa_ticket.as_deref())
            .bind(next.resolution.as_deref())
            .bind(next.state_version)
            .bind(first_seq + steps_len)
            .bind(next.resolved_at.map(Timestamp::as_millis))
            .bind(next.handoff_id.map(u))
            .bind(u(session))
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            insert_deliveries!(tx, account, &change.deliveries, now);
            let mut jobs = change.jobs.as_slice();
            let kept: Vec<NewJob>;
            if let Some(note) = &change.psa_note {
                let queued = sqlx::query(
                    "INSERT INTO psa_notes (id, account_id, session_id, idempotency_key, ticket, version, \
                         body, requested_by, status, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'queued', $9) \
                     ON CONFLICT (account_id, idempotency_key) DO NOTHING",
                )
                .bind(note.id)
                .bind(u(account))
                .bind(u(session))
                .bind(note.idempotency_key.as_str())
                .bind(note.ticket.as_str())
                .bind(note.version.as_str())
                .bind(note.body.as_str())
                .bind(u(note.requested_by))
                .bind(now.as_millis())
                .execute(&mut *tx)
                .await
                .map_err(db_err)?
                .rows_affected();
                if queued == 0 {
                    // Queued before: the job that posts it exists already.
                    kept = change
                        .jobs
                        .iter()
                        .filter(|job| !matches!(job.job, Job::PsaNote { .. }))
                        .cloned()
                        .collect();
                    jobs = &kept;
                }
            }
            insert_jobs!(tx, jobs, now);
            match &change.fix {
                Some(FixChange::Suggest { id, proposal }) => {
                    sqlx::query(
                        "UPDATE suggested_fixes SET superseded_at = $1 \
                         WHERE account_id = $2 AND session_id = $3 AND superseded_at IS NULL",
                    )
                    .bind(now.as_millis())
                    .bind(u(account))
                    .bind(u(session))
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                    sqlx::query(
                        "INSERT INTO suggested_fixes (id, account_id, session_id, proposal, created_at) \
                         VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(*id)
                    .bind(u(account))
                    .bind(u(session))
                    .bind(to_json(proposal))
                    .bind(now.as_millis())
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                }
                Some(FixChange::Decide { fix, decision, by }) => {
                    let dismissed = *decision == FixDecision::Dismissed;
                    let decided = sqlx::query(
                        "UPDATE suggested_fixes SET decision = $1, decided_by = $2, decided_at = $3, \
                             superseded_at = CASE WHEN $4 THEN $3 ELSE superseded_at END \
                         WHERE id = $5 AND account_id = $6 AND session_id = $7 AND superseded_at IS NULL",
                    )
                    .bind(decision.as_str())
                    .bind(u(*by))
                    .bind(now.as_millis())
                    .bind(dismissed)
                    .bind(*fix)
                    .bind(u(account))
                    .bind(u(session))
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?
                    .rows_affected();
                    if decided == 0 {
                        return Err(StoreError::Constraint(
                            "that fix was superseded or dismissed already".to_owned(),
                        ));
                    }
                }
                None => {}
            }
            for (i, step) in change.steps.iter().enumerate() {
                insert_step(&mut tx, account, session, first_seq + i as i64, step, now).await?;
            }
            for fact in &change.facts {
                sqlx::query(
                    "INSERT INTO facts (id, account_id, session_id, text, source, author_id, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(u(FactId::new()))
                .bind(u(account))
                .bind(u(session))
                .bind(fact.text.as_str())
                .bind(fact.source.as_str())
                .bind(fact.author.map(u))
                .bind(now.as_millis())
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            }
            // Last: event writers are serialised from here to the commit on PostgreSQL.
            insert_events!(self, tx, account, &change.events, now);
            tx.commit().await.map_err(db_err)?;
            Ok(next)
        })
    }

    async fn timeline(
        &self,
        account: AccountId,
        session: SessionId,
    ) -> StoreResult<Vec<TimelineStep>> {
        let rows: Vec<StepRow> = on_pool!(self, |pool| {
            sqlx::query_as(
            "SELECT t.id, t.account_id, t.session_id, t.seq, t.actor_id, u.display_name AS actor_name, \
                    t.detail, t.created_at \
             FROM timeline_steps t LEFT JOIN users u ON u.id = t.actor_id AND u.account_id = t.account_id \
             WHERE t.account_id = $1 AND t.session_id = $2 ORDER BY t.seq",
        )
        .bind(u(account))
        .bind(u(session))
        .fetch_all(pool)
        .await
        .map_err(db_err)
        })?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn facts(&self, account: AccountId, session: SessionId) -> StoreResult<Vec<Fact>> {
        let rows: Vec<FactRow> = on_pool!(self, |pool| sqlx::query_as(
            "SELECT id, session_id, text, source, author_id, created_at FROM facts \
             WHERE account_id = $1 AND session_id = $2 ORDER BY created_at, id",
        )
        .bind(u(account))
        .bind(u(session))
        .fetch_all(pool)
        .await
        .map_err(db_err))?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn create_link(&self, link: &ShareLink) -> StoreResult<()> {
        let (kind, scope_id) = scope_columns(&link.scope);
        on_pool!(self, |pool| {
            sqlx::query(
            "INSERT INTO share_links (id, account_id, user_id, role, scope_kind, scope_id, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(u(link.id))
        .bind(u(link.account_id))
        .bind(u(link.user_id))
        .bind(link.role.as_str())
        .bind(kind)
        .bind(scope_id)
        .bind(link.created_at.as_millis())
        .bind(link.expires_at.as_millis())
        .execute(pool)
        .await
        .map(|_| ())
        .map_err(db_err)
        })?;
        Ok(())
    }

    async fn get_link(&self, account: AccountId, link: LinkId) -> StoreResult<ShareLink> {
        let row: LinkRow = on_pool!(self, |pool| {
            sqlx::query_as(
            "SELECT id, account_id, user_id, role, scope_kind, scope_id, created_at, expires_at, revoked_at \
             FROM share_links WHERE id = $1 AND account_id = $2",
        )
        .bind(u(link))
        .bind(u(account))
        .fetch_one(pool)
        .await
        .map_err(not_found("link"))
        })?;
        row.try_into()
    }

    async fn revoke_link(
        &self,
        account: AccountId,
        link: LinkId,
        now: Timestamp,
    ) -> StoreResult<()> {
        let done = on_pool!(self, |pool| {
            sqlx::query(
            "UPDATE share_links SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2 AND account_id = $3",
        )
        .bind(now.as_millis())
        .bind(u(link))
        .bind(u(account))
        .execute(pool)
        .await
        .map(|r| r.rows_affected())
        .map_err(db_err)
        })?;
        if done == 0 {
            return Err(StoreError::NotFound { what: "link" });
        }
        Ok(())
    }

    async fn get_team(&self, account: AccountId, team: TeamId) -> StoreResult<Team> {
        let row: TeamRow = on_pool!(self, |pool| {
            sqlx::query_as(
            "SELECT id, account_id, name, settings, created_at FROM teams WHERE id = $1 AND account_id = $2"
        )
        .bind(u(team))
        .bind(u(account))
        .fetch_one(pool)
        .await
        .map_err(not_found("team"))
        })?;
        row.try_into()
    }

    async fn save_team_settings(
        &self,
        account: AccountId,
        team: TeamId,
        settings: &TeamSettings,
    ) -> StoreResult<()> {
        let done = on_pool!(self, |pool| sqlx::query(
            "UPDATE teams SET settings = $1 WHERE id = $2 AND account_id = $3"
        )
        .bind(to_json(settings))
        .bind(u(team))
        .bind(u(account))
        .execute(pool)
        .await
        .map(|r| r.rows_affected())
        .map_err(db_err))?;
        if done == 0 {
            return Err(StoreError::NotFound { what: "team" });
        }
        Ok(())
    }

    async fn get_handoff(&self, account: AccountId, handoff: HandoffId) -> StoreResult<Handoff> {
        let row: HandoffRow = on_pool!(self, |pool| sqlx::query_as(AssertSqlSafe(format!(
            "{HANDOFF_SELECT} WHERE h.account_id = $1 AND h.id = $2"
        )))
        .bind(u(account))
        .bind(u(handoff))
        .fetch_one(pool)
        .await
        .map_err(not_found("escalation")))?;
        row.try_into()
    }

    async fn list_handoffs(
        &self,
        account: AccountId,
        filter: &HandoffFilter,
    ) -> StoreResult<Vec<Handoff>> {
        let limit = if filter.limit > 0 { filter.limit } else { 100 };
        let rows: Vec<HandoffRow> = on_pool!(self, |pool| sqlx::query_as(AssertSqlSafe(format!(
            "{HANDOFF_SELECT} WHERE h.account_id = $1 AND ($2 = 0 OR h.closed_at IS NULL) \
             AND h.created_at >= $3 ORDER BY h.created_at DESC, h.id DESC LIMIT $4"
        )))
        .bind(u(account))
        .bind(i64::from(filter.open_only))
        .bind(filter.since.map_or(0, Timestamp::as_millis))
        .bind(limit)
        .fetch_all(pool)
        .await
        .map_err(db_err))?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn claim_handoff(
        &self,
        account: AccountId,
        handoff: HandoffId,
        user: UserId,
        now: Timestamp,
        plan: ClaimPlan,
    ) -> StoreResult<ClaimOutcome> {
        // `None`: this claim won; otherwise why it did not.
        let lost: Option<ClaimOutcome> = on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await.map_err(db_err)?;
            lock_session_first!(self, tx, account, handoff);
            // The whole race is this one conditional update: it changes a row only for the first.
            let won: Option<(i32, Uuid)> = sqlx::query_as(
                "UPDATE handoffs SET claimed_by = $1, claimed_at = $2, acknowledged_at = NULL, \
                     claim_count = claim_count + 1 \
                 WHERE id = $3 AND account_id = $4 AND claimed_by IS NULL AND closed_at IS NULL \
                     AND intent = 'escalate' \
                 RETURNING claim_count, session_id",
            )
            .bind(u(user))
            .bind(now.as_millis())
            .bind(u(handoff))
            .bind(u(account))
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
            match won {
                None => {
                    let holder: Option<(Option<Uuid>, Option<String>, Option<i64>, Option<i64>)> = sqlx::query_as(
                        "SELECT h.claimed_by, u.display_name, h.claimed_at, h.closed_at FROM handoffs h \
                         LEFT JOIN users u ON u.id = h.claimed_by WHERE h.id = $1 AND h.account_id = $2",
                    )
                    .bind(u(handoff))
                    .bind(u(account))
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_err)?;
                    match holder {
                        None => Err(StoreError::NotFound { what: "escalation" }),
                        Some((Some(by), name, Some(at), None)) => {
                            Ok(Some(ClaimOutcome::AlreadyClaimed {
                                by: UserId::from_uuid(by),
                                by_name: name.unwrap_or_default(),
                                at: Timestamp::from_millis(at),
                            }))
                        }
                        Some(_) => Ok(Some(ClaimOutcome::Closed)),
                    }
                }
                Some((claim, session)) => {
                    sqlx::query(
                        "INSERT INTO handoff_claims (id, account_id, handoff_id, user_id, claimed_at) \
                         VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(Uuid::now_v7())
                    .bind(u(account))
                    .bind(u(handoff))
                    .bind(u(user))
                    .bind(now.as_millis())
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                    // The session passes to the claimer and takes up the work again.
                    apply_plan!(
                        self,
                        tx,
                        account,
                        session,
                        Some(u(user)),
                        "active",
                        plan,
                        claim,
                        now
                    );
                    tx.commit().await.map_err(db_err)?;
                    Ok(None)
                }
            }
        })?;
        match lost {
            Some(outcome) => Ok(outcome),
            None => Ok(ClaimOutcome::Won(Box::new(
                self.get_handoff(account, handoff).await?,
            ))),
        }
    }

    async fn release_handoff(
        &self,
        account: AccountId,
        handoff: HandoffId,
        claim: i32,
        now: Timestamp,
        plan: ClaimPlan,
    ) -> StoreResult<Option<Handoff>> {
        let released = on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await.map_err(db_err)?;
            lock_session_first!(self, tx, account, handoff);
            let released: Option<(Uuid, Uuid)> = sqlx::query_as(AssertSqlSafe(format!(
                "UPDATE handoffs SET claimed_by = NULL, claimed_at = NULL, acknowledged_at = NULL, \
                     release_count = release_count + 1 \
                 WHERE id = $1 AND account_id = $2 AND claim_count = $3 AND claimed_by IS NOT NULL \
                     AND acknowledged_at IS NULL AND closed_at IS NULL \
                     AND NOT EXISTS (SELECT 1 FROM timeline_steps t WHERE t.session_id = handoffs.session_id \
                         AND t.actor_id = handoffs.claimed_by AND t.created_at > handoffs.claimed_at \
                         AND t.kind NOT IN ({not_actions})) \
                 RETURNING session_id, requested_by",
                not_actions = not_first_actions()
            )))
            .bind(u(handoff))
            .bind(u(account))
            .bind(claim)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
            match released {
                None => Ok::<bool, StoreError>(false),
                Some((session, requester)) => {
                    sqlx::query(
                        "UPDATE handoff_claims SET released_at = $1 WHERE handoff_id = $2 AND account_id = $3 \
                         AND released_at IS NULL",
                    )
                    .bind(now.as_millis())
                    .bind(u(handoff))
                    .bind(u(account))
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                    apply_plan!(
                        self,
                        tx,
                        account,
                        session,
                        Some(requester),
                        "escalated",
                        plan,
                        claim,
                        now
                    );
                    tx.commit().await.map_err(db_err)?;
                    Ok(true)
                }
            }
        })?;
        if released {
            Ok(Some(self.get_handoff(account, handoff).await?))
        } else {
            Ok(None)
        }
    }

    async fn acknowledge_claim(
        &self,
        account: AccountId,
        handoff: HandoffId,
        user: UserId,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let done = on_pool!(self, |pool| {
            sqlx::query(
            "UPDATE handoffs SET acknowledged_at = $1 WHERE id = $2 AND account_id = $3 AND claimed_by = $4 \
             AND closed_at IS NULL",
        )
        .bind(now.as_millis())
        .bind(u(handoff))
        .bind(u(account))
        .bind(u(user))
        .execute(pool)
        .await
        .map(|r| r.rows_affected())
        .map_err(db_err)
        })?;
        Ok(done == 1)
    }

    async fn claimer_has_acted(&self, account: AccountId, handoff: &Handoff) -> StoreResult<bool> {
        let (Some(claimer), Some(claimed_at)) = (handoff.claimed_by, handoff.claimed_at) else {
            return Ok(false);
        };
        let acted: Option<(i64,)> = on_pool!(self, |pool| {
            sqlx::query_as(AssertSqlSafe(format!(
            "SELECT 1 FROM timeline_steps WHERE account_id = $1 AND session_id = $2 AND actor_id = $3 \
             AND created_at > $4 AND kind NOT IN ({}) LIMIT 1",
            not_first_actions()
        )))
        .bind(u(account))
        .bind(u(handoff.session_id))
        .bind(u(claimer))
        .bind(claimed_at.as_millis())
        .fetch_optional(pool)
        .await
        .map_err(db_err)
        })?;
        Ok(acted.is_some())
    }

    async fn claim_history(
        &self,
        account: AccountId,
        handoff: HandoffId,
    ) -> StoreResult<Vec<ClaimRecord>> {
        let rows: Vec<ClaimRow> = on_pool!(self, |pool| {
            sqlx::query_as(
            "SELECT user_id, claimed_at, released_at FROM handoff_claims WHERE account_id = $1 AND handoff_id = $2 \
             ORDER BY claimed_at",
        )
        .bind(u(account))
        .bind(u(handoff))
        .fetch_all(pool)
        .await
        .map_err(db_err)
        })?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn add_deliveries(
        &self,
        account: AccountId,
        deliveries: Vec<NewDelivery>,
        jobs: Vec<NewJob>,
        now: Timestamp,
    ) -> StoreResult<()> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await.map_err(db_err)?;
            insert_deliveries!(tx, account, &deliveries, now);
            insert_jobs!(tx, &jobs, now);
            tx.commit().await.map_err(db_err)
        })
    }

    async fn get_delivery(
        &self,
        account: AccountId,
        delivery: DeliveryId,
    ) -> StoreResult<Delivery> {
        let row: DeliveryRow = on_pool!(self, |pool| {
            sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {DELIVERY_COLUMNS} FROM notification_deliveries WHERE id = $1 AND account_id = $2"
        )))
        .bind(delivery)
        .bind(u(account))
        .fetch_one(pool)
        .await
        .map_err(not_found("delivery"))
        })?;
        row.try_into()
    }

    async fn deliveries(
        &self,
        account: AccountId,
        handoff: HandoffId,
    ) -> StoreResult<Vec<Delivery>> {
        let rows: Vec<DeliveryRow> = on_pool!(self, |pool| {
            sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {DELIVERY_COLUMNS} FROM notification_deliveries WHERE account_id = $1 AND handoff_id = $2 \
             ORDER BY created_at, id"
        )))
        .bind(u(account))
        .bind(u(handoff))
        .fetch_all(pool)
        .await
        .map_err(db_err)
        })?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn mark_delivery(
        &self,
        account: AccountId,
        delivery: DeliveryId,
        status: DeliveryStatus,
        error: Option<&str>,
        message_ref: Option<&MessageRef>,
        now: Timestamp,
    ) -> StoreResult<()> {
        let sent_at = (status == DeliveryStatus::Sent).then_some(now.as_millis());
        on_pool!(self, |pool| sqlx::query(
            "UPDATE notification_deliveries SET status = $1, last_error = $2, \
                 message_ref = COALESCE($3, message_ref), sent_at = COALESCE($4, sent_at), \
                 attempts = attempts + 1, updated_at = $5 \
             WHERE id = $6 AND account_id = $7",
        )
        .bind(status.as_str())
        .bind(error)
        .bind(message_ref.map(to_json))
        .bind(sent_at)
        .bind(now.as_millis())
        .bind(delivery)
        .bind(u(account))
        .execute(pool)
        .await
        .map(|_| ())
        .map_err(db_err))
    }

    async fn enqueue(&self, jobs: Vec<NewJob>, now: Timestamp) -> StoreResult<()> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await.map_err(db_err)?;
            insert_jobs!(tx, &jobs, now);
            tx.commit().await.map_err(db_err)
        })
    }

    async fn claim_jobs(
        &self,
        worker: &str,
        now: Timestamp,
        lease_millis: i64,
        limit: i64,
    ) -> StoreResult<Vec<JobRecord>> {
        // A lane with a job running under a live lease is passed over: its next job waits, so
        // one lane's jobs never run side by side, in this worker or any other.
        // PostgreSQL: rows another replica is taking are skipped, never waited on or taken twice,
        // and so are lanes another replica is claiming right now (a transaction-scoped advisory
        // lock per lane, taken as rows qualify; the same transaction may take it again).
        // SQLite: `BEGIN IMMEDIATE` makes the whole claim one writer at a time.
        let (lane_lock, lock) = match self.pool {
            Pool::Postgres(_) => (
                format!(
                    " AND (j.lane = '' OR pg_try_advisory_xact_lock({JOB_LANE_LOCKS}, hashtext(j.lane)))"
                ),
                " FOR UPDATE SKIP LOCKED",
            ),
            Pool::Sqlite(_) => (String::new(), ""),
        };
        const TAKEABLE: &str = "((j.status = 'queued' AND j.run_at <= $1) OR (j.status = 'running' AND j.locked_until <= $1)) \
             AND (j.lane = '' OR NOT EXISTS (SELECT 1 FROM jobs r \
                 WHERE r.lane = j.lane AND r.status = 'running' AND r.locked_until > $1))";
        let rows: Vec<JobRow> = on_pool!(self, |pool| {
            // A read first: a worker woken while nothing can be taken (its lanes are busy) does
            // not take the write lock, which on SQLite would hold up every webhook's record.
            let takeable: Option<(i32,)> = sqlx::query_as(AssertSqlSafe(format!(
                "SELECT 1 FROM jobs j WHERE {TAKEABLE} LIMIT 1"
            )))
            .bind(now.as_millis())
            .fetch_optional(pool)
            .await
            .map_err(db_err)?;
            if takeable.is_none() {
                return Ok(Vec::new());
            }
            let mut tx = pool.begin_write().await.map_err(db_err)?;
            let rows: Vec<JobRow> = sqlx::query_as(AssertSqlSafe(format!(
                "UPDATE jobs SET status = 'running', locked_by = $2, locked_until = $3, attempts = attempts + 1, \
                     updated_at = $1 \
                 WHERE id IN (SELECT j.id FROM jobs j WHERE {TAKEABLE}{lane_lock} \
                     ORDER BY j.run_at, j.id LIMIT $4{lock}) \
                 RETURNING id, account_id, payload, attempts, max_attempts, run_at"
            )))
            .bind(now.as_millis())
            .bind(worker)
            .bind(now.as_millis() + lease_millis)
            .bind(limit)
            .fetch_all(&mut *tx)
            .await
            .map_err(db_err)?;
            tx.commit().await.map_err(db_err)?;
            Ok::<_, StoreError>(rows)
        })?;
        // RETURNING does not keep the subquery's order: restore it (due first, then created first).
        let mut rows = rows;
        rows.sort_by_key(|row| (row.run_at, row.id));
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn renew_job_leases(
        &self,
        worker: &str,
        jobs: &[Uuid],
        until: Timestamp,
        now: Timestamp,
    ) -> StoreResult<u64> {
        if jobs.is_empty() {
            return Ok(0);
        }
        let ids = (0..jobs.len())
            .map(|i| format!("${}", i + 4))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "UPDATE jobs SET locked_until = $1, updated_at = $2 \
             WHERE locked_by = $3 AND status = 'running' AND id IN ({ids})"
        );
        on_pool!(self, |pool| {
            let mut query = sqlx::query(AssertSqlSafe(sql.clone()))
                .bind(until.as_millis())
                .bind(now.as_millis())
                .bind(worker);
            for job in jobs {
                query = query.bind(*job);
            }
            query
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
                .map_err(db_err)
        })
    }

    async fn finish_job(
        &self,
        job: Uuid,
        worker: &str,
        result: &JobResult,
        now: Timestamp,
    ) -> StoreResult<()> {
        on_pool!(self, |pool| {
            match result {
            JobResult::Done => sqlx::query("DELETE FROM jobs WHERE id = $1 AND locked_by = $2")
                .bind(job)
                .bind(worker)
                .execute(pool)
                .await
                .map(|_| ())
                .map_err(db_err),
            JobResult::Retry { error, after } => {
                let attempts: Option<(i32,)> = sqlx::query_as("SELECT attempts FROM jobs WHERE id = $1")
                    .bind(job)
                    .fetch_optional(pool)
                    .await
                    .map_err(db_err)?;
                let delay = after.unwrap_or_else(|| backoff(attempts.map_or(1, |a| a.0)));
                sqlx::query(
                    "UPDATE jobs SET status = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'queued' END, \
                         run_at = $1, locked_by = NULL, locked_until = NULL, last_error = $2, updated_at = $3 \
                     WHERE id = $4 AND locked_by = $5",
                )
                .bind(now.as_millis() + delay.as_millis() as i64)
                .bind(error.as_str())
                .bind(now.as_millis())
                .bind(job)
                .bind(worker)
                .execute(pool)
                .await
                .map(|_| ())
                .map_err(db_err)
            }
            JobResult::Failed { error } => sqlx::query(
                "UPDATE jobs SET status = 'failed', locked_by = NULL, locked_until = NULL, last_error = $1, \
                     updated_at = $2 WHERE id = $3 AND locked_by = $4",
            )
            .bind(error.as_str())
            .bind(now.as_millis())
            .bind(job)
            .bind(worker)
            .execute(pool)
            .await
            .map(|_| ())
            .map_err(db_err),
        }
        })
    }

    async fn pending_jobs(&self) -> StoreResult<Vec<(String, Timestamp)>> {
        let rows: Vec<(String, i64)> = on_pool!(self, |pool| {
            sqlx::query_as(
            "SELECT kind, run_at FROM jobs WHERE status IN ('queued', 'running') ORDER BY run_at"
        )
        .fetch_all(pool)
        .await
        .map_err(db_err)
        })?;
        Ok(rows
            .into_iter()
            .map(|(kind, at)| (kind, Timestamp::from_millis(at)))
            .collect())
    }

    async fn events_after(&self, seq: i64, limit: i64) -> StoreResult<Vec<HandoffEvent>> {
        let rows: Vec<EventRow> = on_pool!(self, |pool| {
            sqlx::query_as(
            "SELECT seq, account_id, kind, summary, created_at FROM handoff_events WHERE seq > $1 ORDER BY seq LIMIT $2"
        )
        .bind(seq)
        .bind(limit)
        .fetch_all(pool)
        .await
        .map_err(db_err)
        })?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn account_events_after(
        &self,
        account: AccountId,
        seq: i64,
        limit: i64,
    ) -> StoreResult<Vec<HandoffEvent>> {
        let rows: Vec<EventRow> = on_pool!(self, |pool| sqlx::query_as(
            "SELECT seq, account_id, kind, summary, created_at FROM handoff_events \
             WHERE account_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
        )
        .bind(u(account))
        .bind(seq)
        .bind(limit)
        .fetch_all(pool)
        .await
        .map_err(db_err))?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn latest_event_seq(&self) -> StoreResult<i64> {
        let row: (Option<i64>,) = on_pool!(self, |pool| sqlx::query_as(
            "SELECT MAX(seq) FROM handoff_events"
        )
        .fetch_one(pool)
        .await
        .map_err(db_err))?;
        Ok(row.0.unwrap_or(0))
    }

    async fn escalation_rows(
        &self,
        account: AccountId,
        since: Timestamp,
        until: Timestamp,
    ) -> StoreResult<Vec<EscalationRow>> {
        let rows: Vec<EscalationDbRow> = on_pool!(self, |pool| {
            sqlx::query_as(AssertSqlSafe(format!(
            "SELECT h.id, h.created_at, h.priority, h.claimed_by, c.display_name AS claimed_by_name, h.claimed_at, \
                 (SELECT MIN(t.created_at) FROM timeline_steps t \
                  WHERE t.session_id = h.session_id AND t.actor_id = h.claimed_by \
                    AND t.created_at > h.claimed_at AND t.kind NOT IN ({not_actions})) AS first_action_at, \
                 s.resolved_at, f.category, h.claim_count, h.release_count \
             FROM handoffs h JOIN sessions s ON s.id = h.session_id \
             LEFT JOIN users c ON c.id = h.claimed_by LEFT JOIN flows f ON f.id = s.flow_id \
             WHERE h.account_id = $1 AND h.intent = 'escalate' AND h.created_at >= $2 AND h.created_at < $3 \
             ORDER BY h.created_at",
            not_actions = not_first_actions()
        )))
        .bind(u(account))
        .bind(since.as_millis())
        .bind(until.as_millis())
        .fetch_all(pool)
        .await
        .map_err(db_err)
        })?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn purge_inbound(&self, before: Timestamp) -> StoreResult<u64> {
        on_pool!(self, |pool| sqlx::query(
            "DELETE FROM inbound_events WHERE received_at < $1"
        )
        .bind(before.as_millis())
        .execute(pool)
        .await
        .map(|r| r.rows_affected())
        .map_err(db_err))
    }

    async fn accept_inbound(
        &self,
        source: &str,
        keys: &[String],
        job: NewJob,
        now: Timestamp,
    ) -> StoreResult<bool> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await.map_err(db_err)?;
            for key in keys {
                let inserted = sqlx::query(
                    "INSERT INTO inbound_events (source, event_key, received_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (source, event_key) DO NOTHING",
                )
                .bind(source)
                .bind(key.as_str())
                .bind(now.as_millis())
                .execute(&mut *tx)
                .await
                .map_err(db_err)?
                .rows_affected();
                if inserted == 0 {
                    tx.rollback().await.map_err(db_err)?;
                    return Ok(false);
                }
            }
            insert_jobs!(tx, std::slice::from_ref(&job), now);
            tx.commit().await.map_err(db_err)?;
            Ok::<_, StoreError>(true)
        })
    }

    async fn save_psa_connection(&self, connection: &PsaConnection) -> StoreResult<()> {
        on_pool!(self, |pool| {
            sqlx::query(
            "INSERT INTO psa_connections (id, account_id, team_id, provider, settings, credentials, \
                 created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7) \
             ON CONFLICT (account_id, team_id) DO UPDATE SET provider = excluded.provider, \
                 settings = excluded.settings, credentials = excluded.credentials, \
                 updated_at = excluded.updated_at",
        )
        .bind(connection.id)
        .bind(u(connection.account_id))
        .bind(u(connection.team_id))
        .bind(connection.provider.as_str())
        .bind(to_json(&connection.settings))
        .bind(connection.sealed_credentials.as_str())
        .bind(connection.updated_at.as_millis())
        .execute(pool)
        .await
        .map(drop)
        .map_err(db_err)
        })
    }

    async fn psa_connection(
        &self,
        account: AccountId,
        team: TeamId,
    ) -> StoreResult<Option<PsaConnection>> {
        let row: Option<PsaConnectionRow> = on_pool!(self, |pool| {
            sqlx::query_as(
            "SELECT id, account_id, team_id, provider, settings, credentials, created_at, updated_at \
             FROM psa_connections WHERE account_id = $1 AND team_id = $2",
        )
        .bind(u(account))
        .bind(u(team))
        .fetch_optional(pool)
        .await
        .map_err(db_err)
        })?;
        row.map(PsaConnection::try_from).transpose()
    }

    async fn delete_psa_connection(&self, account: AccountId, team: TeamId) -> StoreResult<bool> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await.map_err(db_err)?;
            sqlx::query(
                "DELETE FROM psa_members WHERE connection_id IN \
                 (SELECT id FROM psa_connections WHERE account_id = $1 AND team_id = $2)",
            )
            .bind(u(account))
            .bind(u(team))
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            let deleted =
                sqlx::query("DELETE FROM psa_connections WHERE account_id = $1 AND team_id = $2")
                    .bind(u(account))
                    .bind(u(team))
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?
                    .rows_affected();
            tx.commit().await.map_err(db_err)?;
            Ok::<_, StoreError>(deleted > 0)
        })
    }

    async fn all_psa_connections(&self) -> StoreResult<Vec<PsaConnection>> {
        let rows: Vec<PsaConnectionRow> = on_pool!(self, |pool| {
            sqlx::query_as(
            "SELECT id, account_id, team_id, provider, settings, credentials, created_at, updated_at \
             FROM psa_connections ORDER BY created_at, id",
        )
        .fetch_all(pool)
        .await
        .map_err(db_err)
        })?;
        rows.into_iter().map(PsaConnection::try_from).collect()
    }

    async fn reseal_psa_credentials(
        &self,
        connection: Uuid,
        expected: &str,
        sealed: &str,
    ) -> StoreResult<bool> {
        on_pool!(self, |pool| sqlx::query(
            "UPDATE psa_connections SET credentials = $1 WHERE id = $2 AND credentials = $3",
        )
        .bind(sealed)
        .bind(connection)
        .bind(expected)
        .execute(pool)
        .await
        .map(|done| done.rows_affected() > 0)
        .map_err(db_err))
    }

    async fn psa_member(
        &self,
        account: AccountId,
        connection: Uuid,
        user: UserId,
    ) -> StoreResult<Option<MemberMapping>> {
        let row: Option<PsaMemberRow> = on_pool!(self, |pool| {
            sqlx::query_as(
            "SELECT connection_id, user_id, member_id, member_name, member_email, source, updated_at \
             FROM psa_members WHERE account_id = $1 AND connection_id = $2 AND user_id = $3",
        )
        .bind(u(account))
        .bind(connection)
        .bind(u(user))
        .fetch_optional(pool)
        .await
        .map_err(db_err)
        })?;
        row.map(MemberMapping::try_from).transpose()
    }

    async fn save_psa_member(
        &self,
        account: AccountId,
        mapping: &MemberMapping,
    ) -> StoreResult<()> {
        on_pool!(self, |pool| sqlx::query(
            "INSERT INTO psa_members (connection_id, account_id, user_id, member_id, member_name, \
                 member_email, source, updated_at) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $8 \
             WHERE EXISTS (SELECT 1 FROM psa_connections WHERE id = $1 AND account_id = $2) \
             ON CONFLICT (connection_id, user_id) DO UPDATE SET member_id = excluded.member_id, \
                 member_name = excluded.member_name, member_email = excluded.member_email, \
                 source = excluded.source, updated_at = excluded.updated_at \
             WHERE psa_members.source <> 'manual' OR excluded.source = 'manual'",
        )
        .bind(mapping.connection_id)
        .bind(u(account))
        .bind(u(mapping.user_id))
        .bind(mapping.member.id.as_str())
        .bind(mapping.member.name.as_str())
        .bind(mapping.member.email.as_deref())
        .bind(mapping.source.as_str())
        .bind(mapping.updated_at.as_millis())
        .execute(pool)
        .await
        .map(drop)
        .map_err(db_err))
    }

    async fn psa_members(
        &self,
        account: AccountId,
        connection: Uuid,
    ) -> StoreResult<Vec<MemberMapping>> {
        let rows: Vec<PsaMemberRow> = on_pool!(self, |pool| {
            sqlx::query_as(
            "SELECT connection_id, user_id, member_id, member_name, member_email, source, updated_at \
             FROM psa_members WHERE account_id = $1 AND connection_id = $2 ORDER BY member_name",
        )
        .bind(u(account))
        .bind(connection)
        .fetch_all(pool)
        .await
        .map_err(db_err)
        })?;
        rows.into_iter().map(MemberMapping::try_from).collect()
    }

    async fn suggested_fixes(
        &self,
        account: AccountId,
        session: SessionId,
    ) -> StoreResult<Vec<SuggestedFix>> {
        let rows: Vec<FixRow> = on_pool!(self, |pool| sqlx::query_as(
            "SELECT id, account_id, session_id, proposal, created_at, superseded_at, decision, \
                 decided_by, decided_at \
             FROM suggested_fixes WHERE account_id = $1 AND session_id = $2 \
             ORDER BY created_at, id"
        )
        .bind(u(account))
        .bind(u(session))
        .fetch_all(pool)
        .await
        .map_err(db_err))?;
        rows.into_iter().map(SuggestedFix::try_from).collect()
    }

    async fn set_assessment(
        &self,
        account: AccountId,
        handoff: HandoffId,
        assessment: &Assessment,
        jobs: &[NewJob],
        now: Timestamp,
    ) -> StoreResult<()> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await.map_err(db_err)?;
            let updated = sqlx::query(
                "UPDATE handoffs SET assessment = $1 WHERE id = $2 AND account_id = $3",
            )
            .bind(to_json(assessment))
            .bind(u(handoff))
            .bind(u(account))
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
            .rows_affected();
            if updated == 0 {
                return Err(StoreError::NotFound { what: "handoff" });
            }
            insert_jobs!(tx, jobs, now);
            tx.commit().await.map_err(db_err)
        })
    }

    async fn add_flow_proposal(
        &self,
        proposal: &NewFlowProposal,
        now: Timestamp,
    ) -> StoreResult<Option<FlowProposal>> {
        let added = on_pool!(self, |pool| sqlx::query(
            "INSERT INTO flow_proposals (id, account_id, title, yaml, rationale, origin, \
                 source_sessions, status, requested_by, fingerprint, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $9, $10) \
             ON CONFLICT (account_id, fingerprint) DO NOTHING"
        )
        .bind(proposal.id)
        .bind(u(proposal.account_id))
        .bind(proposal.title.as_str())
        .bind(proposal.yaml.as_str())
        .bind(proposal.rationale.as_str())
        .bind(proposal.origin.as_str())
        .bind(to_json(&proposal.source_sessions))
        .bind(proposal.requested_by.map(u))
        .bind(proposal.fingerprint.as_str())
        .bind(now.as_millis())
        .execute(pool)
        .await
        .map(|done| done.rows_affected())
        .map_err(db_err))?;
        if added == 0 {
            return Ok(None);
        }
        self.flow_proposal(proposal.account_id, proposal.id)
            .await
            .map(Some)
    }

    async fn flow_proposal(&self, account: AccountId, proposal: Uuid) -> StoreResult<FlowProposal> {
        let row: ProposalRow = on_pool!(self, |pool| sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {PROPOSAL_COLUMNS} FROM flow_proposals WHERE account_id = $1 AND id = $2"
        )))
        .bind(u(account))
        .bind(proposal)
        .fetch_one(pool)
        .await
        .map_err(not_found("flow proposal")))?;
        row.try_into()
    }

    async fn flow_proposals(
        &self,
        account: AccountId,
        status: Option<ProposalStatus>,
    ) -> StoreResult<Vec<FlowProposal>> {
        let rows: Vec<ProposalRow> =
            on_pool!(self, |pool| sqlx::query_as(AssertSqlSafe(format!(
                "SELECT {PROPOSAL_COLUMNS} FROM flow_proposals \
             WHERE account_id = $1 AND ($2 IS NULL OR status = $2) \
             ORDER BY created_at DESC, id"
            )))
            .bind(u(account))
            .bind(status.map(ProposalStatus::as_str))
            .fetch_all(pool)
            .await
            .map_err(db_err))?;
        rows.into_iter().map(FlowProposal::try_from).collect()
    }

    async fn review_flow_proposal(
        &self,
        account: AccountId,
        proposal: Uuid,
        review: &ProposalReview,
        now: Timestamp,
    ) -> StoreResult<FlowProposal> {
        let reviewed = on_pool!(self, |pool| sqlx::query(
            "UPDATE flow_proposals SET status = $1, reviewer_id = $2, reviewed_at = $3, \
                 yaml = COALESCE($4, yaml), flow_id = $5 \
             WHERE account_id = $6 AND id = $7 AND status = 'pending'"
        )
        .bind(review.status.as_str())
        .bind(u(review.reviewer))
        .bind(now.as_millis())
        .bind(review.yaml.as_deref())
        .bind(review.flow_id.map(u))
        .bind(u(account))
        .bind(proposal)
        .execute(pool)
        .await
        .map(|done| done.rows_affected())
        .map_err(db_err))?;
        let current = self.flow_proposal(account, proposal).await?;
        if reviewed == 0 {
            return Err(StoreError::Conflict {
                what: "the flow proposal",
            });
        }
        Ok(current)
    }

    async fn psa_note(&self, account: AccountId, note: Uuid) -> StoreResult<PsaNoteRecord> {
        let row: PsaNoteRow = on_pool!(self, |pool| sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {PSA_NOTE_COLUMNS} FROM psa_notes WHERE account_id = $1 AND id = $2"
        )))
        .bind(u(account))
        .bind(note)
        .fetch_one(pool)
        .await
        .map_err(not_found("PSA note")))?;
        row.try_into()
    }

    async fn psa_notes(
        &self,
        account: AccountId,
        session: SessionId,
    ) -> StoreResult<Vec<PsaNoteRecord>> {
        let rows: Vec<PsaNoteRow> = on_pool!(self, |pool| {
            sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {PSA_NOTE_COLUMNS} FROM psa_notes WHERE account_id = $1 AND session_id = $2 \
             ORDER BY created_at, id"
        )))
        .bind(u(account))
        .bind(u(session))
        .fetch_all(pool)
        .await
        .map_err(db_err)
        })?;
        rows.into_iter().map(PsaNoteRecord::try_from).collect()
    }

    async fn finish_psa_note(
        &self,
        account: AccountId,
        note: Uuid,
        outcome: &NoteOutcome,
        jobs: &[NewJob],
        now: Timestamp,
    ) -> StoreResult<bool> {
        let (status, member, psa_note_id, error, posted_at) = match outcome {
            NoteOutcome::Posted {
                psa_note_id,
                member,
            } => (
                NoteStatus::Posted,
                member.as_deref(),
                Some(psa_note_id.as_str()),
                None,
                Some(now.as_millis()),
            ),
            NoteOutcome::Failed { error } => {
                (NoteStatus::Failed, None, None, Some(error.as_str()), None)
            }
        };
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await.map_err(db_err)?;
            let finished = sqlx::query(
                "UPDATE psa_notes SET status = $1, member = $2, psa_note_id = $3, error = $4, \
                     posted_at = $5 \
                 WHERE account_id = $6 AND id = $7 AND status = 'queued'",
            )
            .bind(status.as_str())
            .bind(member)
            .bind(psa_note_id)
            .bind(error)
            .bind(posted_at)
            .bind(u(account))
            .bind(note)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
            .rows_affected();
            if finished == 0 {
                tx.rollback().await.map_err(db_err)?;
                return Ok(false);
            }
            insert_jobs!(tx, jobs, now);
            tx.commit().await.map_err(db_err)?;
            Ok::<_, StoreError>(true)
        })
    }
}

const PROPOSAL_COLUMNS: &str = "id, account_id, title, yaml, rationale, origin, source_sessions, \
     status, requested_by, reviewer_id, reviewed_at, flow_id, fingerprint, created_at";

const PSA_NOTE_COLUMNS: &str = "id, account_id, session_id, idempotency_key, ticket, version, body, \
    requested_by, status, member, psa_note_id, error, created_at, posted_at";

fn prefixed_summary_columns(alias: &str) -> String {
    FLOW_SUMMARY_COLUMNS
        .split(", ")
        .map(|c| format!("{alias}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a committed change makes of the session.
fn apply_change(session: &mut Session, change: &SessionChange, now: Timestamp) {
    if let Some(conversation) = &change.conversation {
        session.conversation = conversation.clone();
    }
    if let Some(status) = change.status {
        if status == SessionStatus::Resolved && session.status != SessionStatus::Resolved {
            session.resolved_at = Some(now);
        }
        session.status = status;
    }
    if let Some(owner) = change.owner {
        session.owner_id = owner;
    }
    if let Some((flow_id, flow)) = &change.flow {
        session.flow_id = Some(*flow_id);
        session.flow = Some(flow.clone());
    }
    if let Some(ticket) = &change.psa_ticket {
        session.psa_ticket = Some(ticket.clone());
    }
    if let Some(resolution) = &change.resolution {
        session.resolution = Some(resolution.clone());
    }
    if let Some(handoff) = &change.handoff {
        session.handoff_id = Some(handoff.id);
    } else if change.close_handoff {
        session.handoff_id = None;
    }
    if change.bump_state_version
        || !change.facts.is_empty()
        || change.fix.is_some()
        || change.steps.iter().any(|step| step.kind.changes_note())
    {
        session.state_version += 1;
    }
    session.updated_at = now;
}

async fn insert_step<'c, DB>(
    tx: &mut Transaction<'c, DB>,
    account: AccountId,
    session: SessionId,
    seq: i64,
    step: &NewStep,
    now: Timestamp,
) -> StoreResult<()>
where
    DB: sqlx::Database,
    for<'e> &'e mut <DB as sqlx::Database>::Connection: sqlx::Executor<'e, Database = DB>,
    for<'q> <DB as sqlx::Database>::Arguments: sqlx::IntoArguments<DB>,
    Uuid: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<Uuid>: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i64: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    String: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    &'static str: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    sqlx::query(
        "INSERT INTO timeline_steps (id, account_id, session_id, seq, actor_id, kind, detail, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(u(StepId::new()))
    .bind(u(account))
    .bind(u(session))
    .bind(seq)
    .bind(step.actor.map(u))
    .bind(step.kind.name())
    .bind(to_json(&step.kind))
    .bind(now.as_millis())
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// `'claimed', 'claim_acknowledged', …`: the step kinds that are not a senior's first action.
fn not_first_actions() -> String {
    rf_core::session::StepKind::NOT_FIRST_ACTIONS
        .iter()
        .map(|k| format!("'{k}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Inserts a new handoff for `session` (a [`Session`] after the change).
macro_rules! insert_handoff {
    ($tx:expr, $account:expr, $session:expr, $handoff:expr, $now:expr) => {{
        let handoff: &NewHandoff = $handoff;
        sqlx::query(
            "INSERT INTO handoffs (id, account_id, team_id, session_id, intent, requested_by, reason, priority, \
                 snapshot, assessment, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(u(handoff.id))
        .bind(u($account))
        .bind(u($session.team_id))
        .bind(u($session.id))
        .bind(handoff.intent.as_str())
        .bind(u(handoff.requested_by))
        .bind(handoff.reason.as_str())
        .bind(handoff.priority.as_str())
        .bind(to_json(&handoff.snapshot))
        .bind(to_json(&handoff.assessment))
        .bind($now.as_millis())
        .execute(&mut *$tx)
        .await
        .map_err(db_err)?;
    }};
}
use insert_handoff;

/// Inserts deliveries; one that exists for the same (handoff, channel, recipient) is left alone.
macro_rules! insert_deliveries {
    ($tx:expr, $account:expr, $deliveries:expr, $now:expr) => {{
        let deliveries: &[NewDelivery] = $deliveries;
        for delivery in deliveries {
            let sent_at = (delivery.status == DeliveryStatus::Sent).then_some($now.as_millis());
            sqlx::query(
                "INSERT INTO notification_deliveries (id, account_id, handoff_id, channel, recipient, purpose, status, \
                     sent_at, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) \
                 ON CONFLICT (handoff_id, channel, recipient) DO NOTHING",
            )
            .bind(delivery.id)
            .bind(u($account))
            .bind(u(delivery.handoff))
            .bind(delivery.channel.as_str())
            .bind(delivery.recipient.as_str())
            .bind(purpose_word(delivery.purpose))
            .bind(delivery.status.as_str())
            .bind(sent_at)
            .bind($now.as_millis())
            .execute(&mut *$tx)
            .await
            .map_err(db_err)?;
        }
    }};
}
use insert_deliveries;

/// The attempts a job gets before it is marked failed.
const MAX_JOB_ATTEMPTS: i32 = 12;

/// Inserts jobs; a coalesced job whose key is already waiting is dropped.
macro_rules! insert_jobs {
    ($tx:expr, $jobs:expr, $now:expr) => {{
        let jobs: &[NewJob] = $jobs;
        for job in jobs {
            sqlx::query(
                "INSERT INTO jobs (id, account_id, kind, payload, coalesce_key, status, run_at, attempts, max_attempts, \
                     created_at, updated_at, lane) \
                 VALUES ($1, $2, $3, $4, $5, 'queued', $6, 0, $7, $8, $8, $9) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(Uuid::now_v7())
            .bind(u(job.account_id))
            .bind(job.job.kind())
            .bind(to_json(&job.job))
            .bind(job.coalesce_key.as_deref())
            .bind(job.run_at.as_millis())
            .bind(MAX_JOB_ATTEMPTS)
            .bind($now.as_millis())
            .bind(job.job.lane())
            .execute(&mut *$tx)
            .await
            .map_err(db_err)?;
        }
    }};
}
use insert_jobs;

/// The first key of the PostgreSQL advisory locks a claim takes on job lanes (the second is the
/// lane's hash): see `claim_jobs`.
const JOB_LANE_LOCKS: i32 = 0x7266_6a6c; // "rfjl"

/// The PostgreSQL advisory lock that orders event writers: see [`insert_events`].
const EVENT_ORDER_LOCK: i64 = 0x7266_6576_656e_7473; // "rfevents"

/// Appends events to the live feed. `seq` must become visible in order, so that a reader who sees
/// `n + 1` but not `n` knows `n` was rolled back and never waits for it. SQLite has one writer at a
/// time; on PostgreSQL the sequence hands out numbers before commit, so event writers take a
/// transaction-scoped advisory lock first: the next writer draws its number only after this one has
/// committed or rolled back. Call it last in a transaction, to hold the lock briefly. On PostgreSQL
/// the commit also wakes every replica's feeder.
macro_rules! insert_events {
    ($store:expr, $tx:expr, $account:expr, $events:expr, $now:expr) => {{
        let events: &[NewEvent] = $events;
        if !events.is_empty() && matches!($store.pool, Pool::Postgres(_)) {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(EVENT_ORDER_LOCK)
                .execute(&mut *$tx)
                .await
                .map_err(db_err)?;
        }
        for event in events {
            sqlx::query("INSERT INTO handoff_events (account_id, kind, summary, created_at) VALUES ($1, $2, $3, $4)")
                .bind(u($account))
                .bind(event.kind.as_str())
                .bind(to_json(&event.summary))
                .bind($now.as_millis())
                .execute(&mut *$tx)
                .await
                .map_err(db_err)?;
        }
        if !events.is_empty() && matches!($store.pool, Pool::Postgres(_)) {
            sqlx::query("SELECT pg_notify('rf_events', '')")
                .execute(&mut *$tx)
                .await
                .map_err(db_err)?;
        }
    }};
}
use insert_events;

/// Applies a claim or release plan to the session: new owner and status, a bot step, jobs (idle
/// jobs get the claim generation), events.
macro_rules! apply_plan {
    ($store:expr, $tx:expr, $account:expr, $session:expr, $owner:expr, $status:expr, $plan:expr, $claim:expr, $now:expr) => {{
        let plan: ClaimPlan = $plan;
        let steps = i64::from(plan.step.is_some());
        let first_seq: (i64,) = sqlx::query_as(
            "UPDATE sessions SET owner_id = COALESCE($1, owner_id), status = $2, lock_version = lock_version + 1, \
                 next_seq = next_seq + $3, updated_at = $4 \
             WHERE id = $5 AND account_id = $6 RETURNING next_seq - $3",
        )
        .bind($owner)
        .bind($status)
        .bind(steps)
        .bind($now.as_millis())
        .bind($session)
        .bind(u($account))
        .fetch_one(&mut *$tx)
        .await
        .map_err(db_err)?;
        if let Some(kind) = &plan.step {
            sqlx::query(
                "INSERT INTO timeline_steps (id, account_id, session_id, seq, actor_id, kind, detail, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(u(StepId::new()))
            .bind(u($account))
            .bind($session)
            .bind(first_seq.0)
            .bind($owner.filter(|_| matches!(kind, rf_core::session::StepKind::Claimed { .. })))
            .bind(kind.name())
            .bind(to_json(kind))
            .bind($now.as_millis())
            .execute(&mut *$tx)
            .await
            .map_err(db_err)?;
        }
        let jobs: Vec<NewJob> = plan
            .jobs
            .into_iter()
            .map(|mut job| {
                if let Job::IdleReminder { claim, .. } | Job::IdleRelease { claim, .. } = &mut job.job {
                    *claim = $claim;
                }
                job
            })
            .collect();
        insert_jobs!($tx, &jobs, $now);
        insert_events!($store, $tx, $account, &plan.events, $now);
    }};
}
use apply_plan;

/// On PostgreSQL, locks the session row of a handoff before the handoff row, the order every
/// session change takes (session, then handoff): a claim racing a resolve cannot deadlock. SQLite
/// writers are serialised by `BEGIN IMMEDIATE` already.
macro_rules! lock_session_first {
    ($store:expr, $tx:expr, $account:expr, $handoff:expr) => {{
        if matches!($store.pool, Pool::Postgres(_)) {
            sqlx::query(
                "SELECT s.id FROM sessions s JOIN handoffs h ON h.session_id = s.id \
                 WHERE h.id = $1 AND h.account_id = $2 FOR UPDATE OF s",
            )
            .bind(u($handoff))
            .bind(u($account))
            .execute(&mut *$tx)
            .await
            .map_err(db_err)?;
        }
    }};
}
use lock_session_first;
