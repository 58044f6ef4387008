//! Wiring: the store, engine, companion and HTTP listener built from a [`Config`].

use crate::config::Config;
use crate::feed::EventFeed;
use crate::flows;
use crate::jobs::Worker;
use crate::keys::{self, KeySource, MasterKey};
use crate::mail::SmtpMailer;
use anyhow::Context;
use axum::Router;
use axum::extract::Request;
use rf_companion::CompanionState;
use rf_companion::links::TokenKeys;
use rf_console::{Board, ConsoleNotifier};
use rf_core::Store;
use rf_core::dispatch::Dispatcher;
use rf_core::domain::{Account, ChannelRef, InstallationRef, Platform, Team};
use rf_core::engine::{Engine, Wake};
use rf_core::flow::FlowSource;
use rf_core::notify::Notifiers;
use rf_core::time::{Clock, SystemClock};
use rf_slack::client::SlackNotifier;
use rf_store::{ConnectOptions, SqlStore};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

/// The running product's parts.
#[derive(Debug, Clone)]
pub struct App {
    pub config: Config,
    pub store: Arc<SqlStore>,
    pub clock: Arc<dyn Clock>,
    pub engine: Engine,
    pub companion: CompanionState,
    pub worker: Worker,
    pub feed: EventFeed,
    /// The console as a chat platform: where its cards and notices go.
    pub console: ConsoleNotifier,
    /// What this process did, for `/metrics`.
    pub counters: rf_core::counters::Counters,
    /// Slack's endpoints, when Slack is configured.
    pub slack: Option<Router>,
    /// Slack's Socket Mode connection, when an app-level token is configured.
    pub slack_socket: Option<crate::slack::SocketSettings>,
    /// The teams' PSA connections.
    pub desk: crate::psa::Desk,
    /// The account the console and the CLI work in.
    pub account: Account,
    pub team: Team,
}

/// Background tasks started by [`App::start_background`].
#[derive(Debug)]
pub struct Background {
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Background {
    /// Stops the tasks after their current job, and waits for them.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// The console's installation: one per server.
pub fn console_installation() -> InstallationRef {
    InstallationRef {
        platform: Platform::Console,
        external_id: rf_console::CONSOLE_WORKSPACE.to_owned(),
    }
}

impl App {
    /// Opens the database, loads keys and sample flows, and wires everything, with the wall clock.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        Self::build_with_clock(config, Arc::new(SystemClock)).await
    }

    pub async fn build_with_clock(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let options = ConnectOptions {
            max_connections: config.database.max_connections,
            acquire_timeout: Duration::from_secs(config.database.acquire_timeout_seconds),
        };
        let store = SqlStore::open(&config.database.url, &options)
            .await
            .with_context(|| {
                format!("opening the database {}", redact_url(&config.database.url))
            })?;
        let store = Arc::new(store);
        tracing::info!(backend = store.backend(), database = %redact_url(&config.database.url), "database ready");

        let (master, source) = MasterKey::load(
            config.security.master_key.as_ref(),
            &config.security.key_file,
        )?;
        keys::check_strength(&master)?;
        match source {
            KeySource::Configured => tracing::info!("master key from configuration"),
            KeySource::KeyFile => {
                tracing::info!(file = %config.security.key_file.display(), "master key from key file")
            }
            KeySource::Generated => tracing::warn!(
                file = %config.security.key_file.display(),
                "generated a new master key; back this file up, and set RF_MASTER_KEY on every replica of a multi-replica deployment"
            ),
        }
        if store.backend() == "postgres" && source != KeySource::Configured {
            tracing::warn!(
                "on PostgreSQL, set RF_MASTER_KEY so every replica signs links with the same key"
            );
        }

        let now = clock.now();
        let (account, mut team) = store
            .ensure_installation(
                &console_installation(),
                &config.bootstrap.account_name,
                &config.bootstrap.team_name,
                now,
            )
            .await?;
        if team
            .settings
            .escalation_channel(Platform::Console)
            .is_none()
        {
            team.settings.set_escalation_channel(ChannelRef {
                platform: Platform::Console,
                workspace: rf_console::CONSOLE_WORKSPACE.to_owned(),
                channel: config.bootstrap.escalation_channel.clone(),
            });
            store
                .save_team_settings(account.id, team.id, &team.settings)
                .await?;
        }
        if config.flows.load_samples && store.list_flows(account.id).await?.is_empty() {
            let samples = flows::samples();
            let refs: Vec<_> = samples.iter().collect();
            flows::import(store.as_ref(), account.id, &refs, FlowSource::Sample, now).await?;
            tracing::info!(count = samples.len(), "loaded the sample flow library");
        }
        if let Some(dir) = &config.flows.import_dir {
            let files = flows::read_flow_files(std::slice::from_ref(dir))?;
            let mut valid = Vec::new();
            for file in &files {
                match &file.result {
                    Ok(flow) => valid.push(flow),
                    Err(e) => tracing::error!(error = %e, "flow file not imported"),
                }
            }
            let outcomes = flows::import(
                store.as_ref(),
                account.id,
                &valid,
                FlowSource::Imported,
                now,
            )
            .await?;
            tracing::info!(dir = %dir.display(), imported = outcomes.len(), "imported flow folder");
        }

        let token_keys = TokenKeys::new(&master.derive("companion-links-v1"), &config.public_url());
        let link_ttl = config.companion.link_ttl_minutes * 60_000;
        let port: Arc<dyn Store> = store.clone();

        let counters = rf_core::counters::Counters::new();
        let feed = EventFeed::new(4096);
        let worker_wake = Arc::new(tokio::sync::Notify::new());
        let (wake_worker, wake_feed) = (worker_wake.clone(), feed.waker());
        let wake = Wake(Arc::new(move || {
            wake_worker.notify_one();
            wake_feed.notify_one();
        }));
        let desk = crate::psa::Desk::new(
            port.clone(),
            clock.clone(),
            &master,
            Duration::from_secs(config.psa.timeout_seconds),
        );
        let copilot = crate::ai::build(&config.ai)?;
        let mut engine = Engine::new(port.clone(), clock.clone())
            .with_desk(Arc::new(desk.clone()))
            .with_links(Arc::new(token_keys.clone()), link_ttl)
            .with_wake(wake.clone())
            .with_counters(counters.clone());
        if let Some(copilot) = &copilot {
            engine = engine.with_copilot(copilot.clone());
        }

        let console = ConsoleNotifier::new(Board::new());
        let mut notifiers = Notifiers::new().with(Platform::Console, Arc::new(console.clone()));
        let slack = crate::slack::build(
            &config,
            &master,
            clock.clone(),
            &engine,
            wake.clone(),
            &account,
            &team,
        )?;
        if let Some(parts) = &slack {
            notifiers = notifiers.with(
                Platform::Slack,
                Arc::new(SlackNotifier::new(parts.api.clone())),
            );
            tracing::info!(api = %config.slack.api_url, command = %config.slack.command, "Slack enabled");
        }
        let mut dispatcher = Dispatcher::new(port.clone(), clock.clone(), notifiers)
            .with_desk(Arc::new(desk.clone()))
            .with_counters(counters.clone())
            .with_links(Arc::new(token_keys.clone()), link_ttl);
        if let Some(copilot) = &copilot {
            dispatcher = dispatcher.with_copilot(copilot.clone());
        }
        match SmtpMailer::from_config(&config.smtp)? {
            Some(mailer) => {
                tracing::info!(host = %config.smtp.host, port = config.smtp.port, "e-mail enabled");
                dispatcher = dispatcher.with_mailer(Arc::new(mailer));
            }
            None => tracing::info!(
                "e-mail disabled (no [smtp] host); escalation e-mails are recorded as failed"
            ),
        }
        let (slack, slack_socket) = match slack {
            Some(parts) => {
                dispatcher = dispatcher.with_inbound(Platform::Slack, Arc::new(parts.handler));
                (Some(parts.routes), parts.socket)
            }
            None => (None, None),
        };
        let worker = Worker::new(
            port.clone(),
            clock.clone(),
            dispatcher,
            Duration::from_secs(config.jobs.lease_seconds),
            Duration::from_millis(config.jobs.poll_interval_ms),
        )
        .with_waker(worker_wake)
        .with_counters(counters.clone());
        let companion = CompanionState::new(
            engine.clone(),
            token_keys,
            clock.clone(),
            config.companion.cookie_ttl_minutes * 60_000,
            feed.sender(),
        )
        .with_psa(Arc::new(desk.clone()));
        Ok(Self {
            config,
            store,
            clock,
            engine,
            companion,
            worker,
            feed,
            console,
            counters,
            slack,
            slack_socket,
            desk,
            account,
            team,
        })
    }

    /// Starts the job worker (unless disabled) and the event feed.
    pub fn start_background(&self) -> Background {
        self.start_background_with(self.config.jobs.enabled)
    }

    /// Starts the event feed, and the job worker if `worker` (a console that runs due jobs itself
    /// between lines needs none).
    pub fn start_background_with(&self, worker: bool) -> Background {
        let (stop, watch) = tokio::sync::watch::channel(false);
        let stopped = |mut watch: tokio::sync::watch::Receiver<bool>| async move {
            let _ = watch.wait_for(|stop| *stop).await;
        };
        let mut tasks = Vec::new();
        if worker {
            let worker = self.worker.clone();
            tasks.push(tokio::spawn(worker.run(stopped(watch.clone()))));
        }
        if let Some(socket) = self.slack_socket.clone() {
            tasks.push(tokio::spawn(socket.run(stopped(watch.clone()))));
        }
        let feed = self.feed.clone();
        let store: Arc<dyn Store> = self.store.clone();
        let postgres = self.store.postgres_pool().cloned();
        tasks.push(tokio::spawn(feed.run(store, postgres, stopped(watch))));
        Background { stop, tasks }
    }

    /// Lets a console show what the worker posts, and run due jobs before printing.
    pub fn console_settle(&self) -> rf_console::Settle {
        let worker = self.worker.clone();
        Arc::new(move || {
            let worker = worker.clone();
            Box::pin(async move {
                worker.run_due().await;
            })
        })
    }

    /// Every HTTP route: the companion now, platform webhooks as adapters arrive.
    pub fn router(&self) -> Router {
        let counters = self.counters.clone();
        let store: Arc<dyn Store> = self.store.clone();
        let prometheus = axum::routing::get(move || prometheus(counters.clone(), store.clone()));
        let mut router = rf_companion::router(self.companion.clone());
        if let Some(slack) = &self.slack {
            router = router.merge(slack.clone());
        }
        router
            .route("/metrics", prometheus)
            .layer(RequestBodyLimitLayer::new(self.config.http.max_body_bytes))
            .layer(axum::middleware::map_response(close_after_refusing_a_body))
            .layer(TimeoutLayer::with_status_code(
                axum::http::StatusCode::REQUEST_TIMEOUT,
                Duration::from_secs(self.config.http.request_timeout_seconds),
            ))
            // Log the path only: query strings carry link tokens.
            .layer(TraceLayer::new_for_http().make_span_with(|request: &Request| {
                tracing::info_span!("http", method = %request.method(), path = %request.uri().path())
            }))
    }

    /// Serves HTTP on `listener` until `shutdown` completes, then finishes in-flight requests.
    pub async fn serve(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let address = listener.local_addr()?;
        tracing::info!(%address, public_url = %self.config.public_url(), "listening");
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await
            .context("HTTP server failed")
    }
}

/// A database URL without its password, for logs.
pub fn redact_url(url: &str) -> String {
    rf_core::redact::Redactor::new().redact(url).into_owned()
}

/// Prometheus exposition: this process's counters and the shared job backlog.
async fn prometheus(
    counters: rf_core::counters::Counters,
    store: Arc<dyn Store>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let mut body = counters.render();
    match store.pending_jobs().await {
        Ok(jobs) => body.push_str(&format!(
            "# HELP rf_jobs_pending Background jobs queued or running (all replicas).\n# TYPE rf_jobs_pending gauge\nrf_jobs_pending {}\n",
            jobs.len()
        )),
        Err(e) => tracing::warn!(error = %e, "could not count pending jobs for /metrics"),
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// A body refused as too large is not read to its end, so the connection cannot carry another
/// request: say so (`Connection: close`), or a client that pools connections may send its next
/// request on one the server is closing.
async fn close_after_refusing_a_body(
    mut response: axum::response::Response,
) -> axum::response::Response {
    if response.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        response.headers_mut().insert(
            axum::http::header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
    }
    response
}
