//! Slack wiring that needs the server's secrets: bot tokens kept encrypted per workspace, and the
//! installer that records a workspace granted through OAuth.

use crate::config::Config;
use crate::keys::{INSTALLATION_SECRETS, MasterKey, Sealer, installation_secret_owner};
use anyhow::Context;
use async_trait::async_trait;
use axum::Router;
use rf_core::Store;
use rf_core::domain::{
    Account, ChatIdentity, InstallationRef, Platform, Role, RoleAssignment, Team,
};
use rf_core::engine::{Engine, Wake};
use rf_core::notify::NotifyError;
use rf_core::time::Clock;
use rf_slack::client::{ApiSettings, Grant, SlackApi, TokenSource};
use rf_slack::handler::SlackHandler;
use rf_slack::oauth::{Installer, OAuthSettings};
use rf_slack::routes::Ingress;
use rf_slack::socket::SocketMode;
use rf_slack::verify::RequestVerifier;
use secrecy::ExposeSecret;
use std::sync::Arc;
use std::time::Duration;

/// What an installation's bot token is stored under.
const BOT_TOKEN: &str = "slack_bot_token";

fn installation(team: &str) -> InstallationRef {
    InstallationRef {
        platform: Platform::Slack,
        external_id: team.to_owned(),
    }
}

/// Binds a sealed token to its workspace: a token copied to another row does not open.
fn associated(team: &str) -> String {
    installation_secret_owner(&installation(team), BOT_TOKEN)
}

/// Bot tokens: a workspace's own (installed through OAuth, stored encrypted), else the one
/// configured token (`RF_SLACK_BOT_TOKEN`).
#[derive(Clone)]
struct InstalledTokens {
    store: Arc<dyn Store>,
    sealer: Sealer,
    single: Option<String>,
}

impl std::fmt::Debug for InstalledTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstalledTokens")
            .field("single", &self.single.as_ref().map(|_| "[REDACTED]"))
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl TokenSource for InstalledTokens {
    async fn bot_token(&self, workspace: &str) -> Result<String, NotifyError> {
        let stored = self
            .store
            .installation_secret(&installation(workspace), BOT_TOKEN)
            .await
            .map_err(|e| NotifyError::Transient(e.to_string()))?;
        match stored {
            Some(sealed) => self
                .sealer
                .open(&sealed, &associated(workspace))
                .map_err(|e| NotifyError::Permanent(e.to_string())),
            None => self.single.clone().ok_or_else(|| {
                NotifyError::Permanent(format!("Slack workspace {workspace} is not installed"))
            }),
        }
    }
}

/// Records a workspace that installed the app: its own account, its token sealed, the installer
/// an admin.
#[derive(Debug, Clone)]
struct SlackInstaller {
    store: Arc<dyn Store>,
    sealer: Sealer,
    clock: Arc<dyn Clock>,
    team_name: String,
}

#[async_trait]
impl Installer for SlackInstaller {
    async fn install(&self, grant: Grant) -> Result<String, String> {
        let now = self.clock.now();
        let place = installation(&grant.team_id);
        let (account, team) = self
            .store
            .ensure_installation(&place, &grant.team_name, &self.team_name, now)
            .await
            .map_err(|e| e.to_string())?;
        // Re-installing after an uninstall connects the workspace again.
        self.store
            .attach_installation(&place, account.id, team.id, now)
            .await
            .map_err(|e| e.to_string())?;
        let sealed = self
            .sealer
            .seal(&grant.bot_token, &associated(&grant.team_id));
        self.store
            .save_installation_secret(&place, BOT_TOKEN, &sealed, now)
            .await
            .map_err(|e| e.to_string())?;
        let installer = ChatIdentity {
            platform: Platform::Slack,
            platform_user_id: grant.installer.clone(),
            display_name: grant.installer.clone(),
            email: None,
        };
        self.store
            .upsert_user(
                account.id,
                team.id,
                &installer,
                RoleAssignment::IfNew(Role::Admin),
                now,
            )
            .await
            .map_err(|e| e.to_string())?;
        tracing::info!(slack.team = %grant.team_id, account = %account.name, "Slack workspace installed");
        Ok(account.name)
    }
}

/// Slack, wired: the notifier's client, the job handler, and the HTTP routes.
#[derive(Debug)]
pub struct SlackParts {
    pub api: SlackApi,
    pub handler: SlackHandler,
    pub routes: Router,
    /// Socket Mode, when an app-level token is configured.
    pub socket: Option<SocketSettings>,
}

/// What a Socket Mode connection needs.
#[derive(Clone)]
pub struct SocketSettings {
    api: SlackApi,
    token: String,
    ingress: Ingress,
}

impl std::fmt::Debug for SocketSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SocketSettings { token: [REDACTED], .. }")
    }
}

impl SocketSettings {
    /// Keeps a Socket Mode connection open until `stop` resolves, retrying a failed start.
    pub async fn run(self, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        let mut attempt = 0;
        let socket = loop {
            attempt += 1;
            match SocketMode::start(&self.api, &self.token, self.ingress.clone()).await {
                Ok(socket) => break socket,
                Err(error) => {
                    let wait = rf_core::jobs::backoff(attempt);
                    tracing::error!(%error, retry_in = ?wait, "could not open Slack Socket Mode");
                    tokio::select! {
                        () = &mut stop => return,
                        () = tokio::time::sleep(wait) => {}
                    }
                }
            }
        };
        stop.await;
        socket.stop().await;
    }
}

/// Builds Slack from the configuration, or `None` when no signing secret is set.
pub fn build(
    config: &Config,
    master: &MasterKey,
    clock: Arc<dyn Clock>,
    engine: &Engine,
    wake: Wake,
    account: &Account,
    team: &Team,
) -> anyhow::Result<Option<SlackParts>> {
    let slack = &config.slack;
    let (signing, app_token) = (slack.signing_secret(), slack.app_token());
    if signing.is_none() && app_token.is_none() {
        return Ok(None);
    }
    let store = engine.store().clone();
    let single = slack
        .bot_token
        .as_ref()
        .map(|t| t.expose_secret().to_owned())
        .filter(|t| !t.is_empty());
    let oauth = match (&slack.client_id, &slack.client_secret) {
        (Some(id), Some(secret)) if !id.is_empty() && !secret.expose_secret().is_empty() => {
            Some((id.clone(), secret.expose_secret().to_owned()))
        }
        _ => None,
    };
    if single.is_none() && oauth.is_none() {
        anyhow::bail!(
            "Slack is enabled but has no way to act: set RF_SLACK_BOT_TOKEN for one workspace, or RF_SLACK_CLIENT_ID and RF_SLACK_CLIENT_SECRET for \"Add to Slack\""
        );
    }
    let sealer = Sealer::new(master, INSTALLATION_SECRETS);
    let tokens = InstalledTokens {
        store: store.clone(),
        sealer: sealer.clone(),
        single: single.clone(),
    };
    let settings = ApiSettings {
        api_url: slack.api_url.clone(),
        rate_control: slack.rate_control,
        timeout: Duration::from_secs(slack.timeout_seconds),
        response_url_prefix: slack.response_url_prefix.clone(),
    };
    let api = SlackApi::new(&settings, Arc::new(tokens))
        .context("setting up the Slack Web API client")?;
    let mut handler = SlackHandler::new(engine.clone(), api.clone(), slack.command.clone());
    let mut ingress = Ingress::new(store.clone(), clock.clone()).with_wake(wake);
    if let Some(secret) = signing {
        ingress = ingress.with_verifier(RequestVerifier::new(secret));
    }
    if single.is_some() {
        handler = handler.with_single_workspace(account.id, team.id);
        ingress = ingress.with_single_workspace(account.id);
    }
    let socket = app_token.map(|token| SocketSettings {
        api: api.clone(),
        token: token.to_owned(),
        ingress: ingress.clone(),
    });
    let mut routes = match signing {
        Some(_) => rf_slack::routes::router(ingress),
        None => Router::new(),
    };
    if let Some((client_id, client_secret)) = oauth {
        let settings = OAuthSettings {
            client_id,
            client_secret,
            authorize_url: slack.authorize_url.clone(),
            redirect_url: format!(
                "{}/slack/oauth/callback",
                config.public_url().trim_end_matches('/')
            ),
            state_key: master.derive("slack-oauth-state-v1"),
        };
        let installer = SlackInstaller {
            store,
            sealer,
            clock,
            team_name: config.bootstrap.team_name.clone(),
        };
        routes = routes.merge(rf_slack::oauth::router(
            settings,
            api.clone(),
            Arc::new(installer),
        ));
        tracing::info!("Slack installs enabled at /slack/install");
    }
    Ok(Some(SlackParts {
        api,
        handler,
        routes,
        socket,
    }))
}
