//! Test harness for ResolutionFlow's end-to-end tests and benchmarks.
//!
//! Every test gets a fresh database: a temporary SQLite file by default, or — when
//! `RF_TEST_DATABASE_URL` names a PostgreSQL server — a throwaway database created on that server
//! and dropped afterwards. Running the same suite twice, once with the variable set, runs it on both
//! backends.
#![forbid(unsafe_code)]

use resolutionflow::app::App;
use resolutionflow::config::Config;
use rf_core::domain::{
    Account, Actor, ChatIdentity, InstallationRef, Platform, Role, RoleAssignment, Team, ThreadKey,
};
use rf_core::flow::{Flow, FlowSource, parse_flow_yaml};
use rf_core::ids::{HandoffId, UserId};
use rf_core::time::Clock;
use rf_core::time::Timestamp;
use rf_core::{Store, StoreResult};
use rf_store::{ConnectOptions, SqlStore};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The environment variable naming a PostgreSQL server for the suite.
pub const POSTGRES_ENV: &str = "RF_TEST_DATABASE_URL";

/// A fresh, migrated database for one test.
#[derive(Debug)]
pub struct TestDb {
    pub store: Arc<SqlStore>,
    /// The URL the store was opened with (give it to a second process to share the database).
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    _postgres: Option<PgScratch>,
}

/// A PostgreSQL database that drops itself.
#[derive(Debug)]
struct PgScratch {
    admin_url: String,
    name: String,
}

impl TestDb {
    /// A new database on the backend this run is for.
    pub async fn new() -> Self {
        match std::env::var(POSTGRES_ENV) {
            Ok(admin_url) if !admin_url.is_empty() => Self::postgres(&admin_url).await,
            _ => Self::sqlite().await,
        }
    }

    /// A new SQLite database in a temporary directory, whatever the environment says.
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = format!("sqlite://{}", dir.path().join("test.db").display());
        let store = SqlStore::open(&url, &ConnectOptions::default())
            .await
            .expect("open SQLite test database");
        Self {
            store: Arc::new(store),
            url,
            _dir: Some(dir),
            _postgres: None,
        }
    }

    async fn postgres(admin_url: &str) -> Self {
        let name = format!("rf_t_{}", uuid::Uuid::new_v4().simple());
        let admin = admin_pool(admin_url).await;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&admin)
            .await
            .expect("create PostgreSQL test database");
        admin.close().await;
        let url = with_database(admin_url, &name);
        let store = SqlStore::open(&url, &ConnectOptions::default())
            .await
            .expect("open PostgreSQL test database");
        Self {
            store: Arc::new(store),
            url,
            _dir: None,
            _postgres: Some(PgScratch {
                admin_url: admin_url.to_owned(),
                name,
            }),
        }
    }

    /// `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        self.store.backend()
    }

    /// The store as the core sees it.
    pub fn port(&self) -> Arc<dyn Store> {
        self.store.clone()
    }
}

impl Drop for PgScratch {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // Drop runs outside any async context we can use; a short-lived runtime on its own thread
        // removes the database even when the test panicked.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime for test cleanup");
            runtime.block_on(async {
                let admin = admin_pool(&admin_url).await;
                let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&admin)
                .await;
                admin.close().await;
            });
        })
        .join();
    }
}

async fn admin_pool(admin_url: &str) -> sqlx::PgPool {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(admin_url)
        .await
        .unwrap_or_else(|e| panic!("connect to {POSTGRES_ENV} ({admin_url}): {e}"))
}

/// The same server URL with another database name.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let server = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{server}/{database}?{query}"),
        None => format!("{server}/{database}"),
    }
}

/// A running app on the test database: its HTTP listener on a free port, the companion reachable
/// at `base_url`.
#[derive(Debug)]
pub struct TestApp {
    pub app: App,
    pub base_url: String,
    server: tokio::task::JoinHandle<()>,
    _background: resolutionflow::app::Background,
    _keys: tempfile::TempDir,
}

impl TestApp {
    /// Builds the real app (sample flows loaded) on `db` with `clock`, and serves it. The job
    /// worker is not started: tests run due jobs with `app.worker.run_due()`, so timing is theirs.
    /// The event feed runs.
    pub async fn start(db: &TestDb, clock: Arc<dyn Clock>) -> Self {
        Self::start_with(db, clock, |_| {}).await
    }

    /// As [`TestApp::start`], with the configuration adjusted first.
    pub async fn start_with(
        db: &TestDb,
        clock: Arc<dyn Clock>,
        adjust: impl FnOnce(&mut Config),
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind port 0");
        let address = listener.local_addr().expect("local address");
        let keys = tempfile::tempdir().expect("key directory");
        let mut config = Config::default();
        config.database.url = db.url.clone();
        config.http.listen = address.to_string();
        config.http.public_url = Some(format!("http://{address}"));
        config.security.key_file = keys.path().join("test.key");
        config.jobs.enabled = false;
        adjust(&mut config);
        let app = App::build_with_clock(config, clock)
            .await
            .expect("build the app");
        let background = app.start_background();
        let served = app.clone();
        let server = tokio::spawn(async move {
            let _ = served.serve(listener, std::future::pending()).await;
        });
        Self {
            app,
            base_url: format!("http://{address}"),
            server,
            _background: background,
            _keys: keys,
        }
    }
}

impl TestApp {
    /// Someone in an installation's account (the installation is created on first use).
    pub async fn member(
        &self,
        installation: &InstallationRef,
        name: &str,
        role: Role,
        email: Option<&str>,
    ) -> Actor {
        let engine = &self.app.engine;
        engine
            .store()
            .ensure_installation(installation, "Test MSP", "Service Desk", engine.now())
            .await
            .expect("installation");
        let identity = ChatIdentity {
            platform: installation.platform,
            platform_user_id: name.to_lowercase(),
            display_name: name.to_owned(),
            email: email.map(str::to_owned),
        };
        engine
            .identify(installation, &identity, RoleAssignment::Always(role))
            .await
            .expect("identify")
    }

    /// Someone in the console's account.
    pub async fn person(&self, name: &str, role: Role) -> Actor {
        self.member(
            &resolutionflow::app::console_installation(),
            name,
            role,
            None,
        )
        .await
    }

    /// Starts a session about `problem` in a new thread and types `lines` into it. Returns the
    /// thread and the session's open handoff (after `escalate …`, the escalation).
    pub async fn session(
        &self,
        actor: &Actor,
        problem: &str,
        lines: &[&str],
    ) -> (ThreadKey, Option<HandoffId>) {
        let engine = &self.app.engine;
        let thread = ThreadKey {
            platform: actor.platform,
            workspace: "local".to_owned(),
            channel: "#helpdesk".to_owned(),
            thread: rf_core::ids::StepId::new().to_string(),
        };
        engine
            .start(actor, thread.clone(), problem)
            .await
            .expect("start");
        for line in lines {
            engine
                .handle(
                    actor,
                    &thread,
                    rf_core::engine::Input::Text((*line).to_owned()),
                )
                .await
                .expect("handle");
        }
        let session = engine
            .store()
            .session_for_thread(actor.account_id, &thread)
            .await
            .expect("session")
            .expect("a session in the thread");
        (thread, session.handoff_id)
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// The `resolutionflow` binary of this build. `cargo test --workspace` builds it fresh (the
/// binary's own CLI tests need it); run alone, this builds it if it is missing.
pub fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> → target/<profile>/resolutionflow
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target directory");
    let binary = dir.join(format!("resolutionflow{}", std::env::consts::EXE_SUFFIX));
    if !binary.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let status = std::process::Command::new(cargo)
            .args(["build", "-p", "resolutionflow", "--bin", "resolutionflow"])
            .status()
            .expect("run cargo build");
        assert!(
            status.success(),
            "could not build the resolutionflow binary"
        );
    }
    binary
}

/// Runs a benchmark on SQLite, then on PostgreSQL when [`POSTGRES_ENV`] names a server.
pub fn bench_on_backends<F, Fut>(bench: F)
where
    F: Fn(TestDb) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime");
    runtime.block_on(async {
        bench(TestDb::sqlite().await).await;
        if std::env::var(POSTGRES_ENV).is_ok_and(|v| !v.is_empty()) {
            bench(TestDb::new().await).await;
        } else {
            println!("(set {POSTGRES_ENV} to benchmark PostgreSQL too)");
        }
    });
}

pub mod llm;
pub mod process;
pub mod psa;
pub mod slack;
pub mod smtp;

/// The repository's `flows/` folder.
pub fn flows_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../flows")
}

/// Every bundled sample flow.
pub fn sample_flows() -> Vec<Flow> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(flows_dir())
        .expect("flows/ exists")
        .map(|entry| entry.expect("readable entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|path| {
            let text = std::fs::read_to_string(path).expect("readable flow");
            parse_flow_yaml(&path.display().to_string(), &text).unwrap_or_else(|e| panic!("{e}"))
        })
        .collect()
}

/// A new account (with its default team) for a fake installation.
pub async fn account(store: &dyn Store, name: &str) -> StoreResult<(Account, Team)> {
    store
        .ensure_installation(
            &InstallationRef {
                platform: Platform::Console,
                external_id: format!("test-{name}-{}", uuid::Uuid::new_v4().simple()),
            },
            name,
            "Service Desk",
            Timestamp::from_millis(1_795_000_000_000),
        )
        .await
}

/// A new account with every sample flow in its library.
pub async fn account_with_samples(store: &dyn Store, name: &str) -> StoreResult<(Account, Team)> {
    let (account, team) = account(store, name).await?;
    for flow in sample_flows() {
        store
            .save_flow(
                account.id,
                &flow,
                FlowSource::Sample,
                Timestamp::from_millis(1_795_000_000_000),
            )
            .await?;
    }
    Ok((account, team))
}

/// A console user (an engineer) in `account`, created if new.
pub async fn user(store: &dyn Store, account: &Account, team: &Team, name: &str) -> UserId {
    store
        .upsert_user(
            account.id,
            team.id,
            &ChatIdentity {
                platform: Platform::Console,
                platform_user_id: name.to_lowercase(),
                display_name: name.to_owned(),
                email: None,
            },
            RoleAssignment::IfNew(Role::Engineer),
            Timestamp::from_millis(1_795_000_000_000),
        )
        .await
        .expect("a user")
        .id
}

/// A session that was resolved (after following `flow`, if given) with `resolution`.
pub async fn resolved_session(
    store: &dyn Store,
    team: &Team,
    owner: UserId,
    thread: &str,
    problem: &str,
    flow: Option<(rf_core::ids::FlowId, Flow)>,
    resolution: &str,
) -> rf_core::ids::SessionId {
    use rf_core::session::{Conversation, NewSession, SessionChange, SessionStatus};
    let now = Timestamp::from_millis(1_795_000_000_000);
    let session = store
        .create_session(
            NewSession {
                account_id: team.account_id,
                team_id: team.id,
                thread: rf_core::domain::ThreadKey {
                    platform: Platform::Console,
                    workspace: "history".to_owned(),
                    channel: "history".to_owned(),
                    thread: thread.to_owned(),
                },
                owner_id: owner,
                problem: problem.to_owned(),
                conversation: Conversation::FreeForm,
                status: SessionStatus::Active,
                steps: Vec::new(),
            },
            now,
        )
        .await
        .expect("a session");
    store
        .commit_session(
            team.account_id,
            session.id,
            session.lock_version,
            SessionChange {
                flow,
                status: Some(SessionStatus::Resolved),
                resolution: Some(resolution.to_owned()),
                ..SessionChange::default()
            },
            now,
        )
        .await
        .expect("resolve the session");
    session.id
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn database_names_are_swapped_in_urls() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/test", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgres://u:p@h/db?sslmode=disable", "x"),
            "postgres://u:p@h/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
    }
}
