//! Wiring: the store, engine, companion and HTTP listener built from a [`Config`].

use crate::config::Config;
use crate::flows;
use crate::keys::{self, KeySource, MasterKey};
use anyhow::Context;
use axum::Router;
use axum::extract::Request;
use rf_companion::CompanionState;
use rf_companion::links::TokenKeys;
use rf_core::Store;
use rf_core::domain::{Account, InstallationRef, Platform, Team};
use rf_core::engine::Engine;
use rf_core::flow::FlowSource;
use rf_core::time::{Clock, SystemClock};
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
    pub engine: Engine,
    pub companion: CompanionState,
    /// The account the console and the CLI work in.
    pub account: Account,
    pub team: Team,
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
        let (account, team) = store
            .ensure_installation(
                &console_installation(),
                &config.bootstrap.account_name,
                &config.bootstrap.team_name,
                now,
            )
            .await?;
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
        let port: Arc<dyn Store> = store.clone();
        let engine = Engine::new(port.clone(), clock.clone()).with_links(
            Arc::new(token_keys.clone()),
            config.companion.link_ttl_minutes * 60_000,
        );
        let companion = CompanionState::new(
            port,
            token_keys,
            clock,
            config.companion.cookie_ttl_minutes * 60_000,
        );
        Ok(Self {
            config,
            store,
            engine,
            companion,
            account,
            team,
        })
    }

    /// Every HTTP route: the companion now, platform webhooks as adapters arrive.
    pub fn router(&self) -> Router {
        rf_companion::router(self.companion.clone())
            .layer(RequestBodyLimitLayer::new(self.config.http.max_body_bytes))
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
