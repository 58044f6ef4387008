//! "Add to Slack" for many workspaces: OAuth v2 with a `state` we generate, sign, bind to the
//! browser and check (slack-morphism leaves that to us), then the code exchanged for the
//! workspace's bot token, handed to an [`Installer`] that stores it encrypted.

use crate::client::{Grant, SlackApi};
use async_trait::async_trait;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::Deserialize;
use sha2::Sha256;
use std::sync::Arc;

/// Every bot scope the app needs (the manifest in `deploy/slack/` lists the same).
pub const BOT_SCOPES: &[&str] = &[
    "app_mentions:read",
    "channels:history",
    "groups:history",
    "chat:write",
    "chat:write.public",
    "commands",
    "im:write",
    "channels:manage",
    "groups:write",
    "users:read",
    "users:read.email",
];

const COOKIE: &str = "rf_slack_oauth";
/// How long an install may take from click to callback.
const STATE_TTL_SECONDS: i64 = 600;

/// Connects a workspace that granted the app: records it and keeps its token safe.
#[async_trait]
pub trait Installer: Send + Sync + std::fmt::Debug {
    /// Returns the name of the account the workspace now belongs to.
    async fn install(&self, grant: Grant) -> Result<String, String>;
}

/// The app's OAuth credentials and where Slack sends people back.
#[derive(Clone)]
pub struct OAuthSettings {
    pub client_id: String,
    pub client_secret: String,
    /// Slack's consent page (`https://slack.com/oauth/v2/authorize`).
    pub authorize_url: String,
    /// This server's `/slack/oauth/callback`, as registered in the app.
    pub redirect_url: String,
    /// Signs `state` values.
    pub state_key: [u8; 32],
}

impl std::fmt::Debug for OAuthSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthSettings")
            .field("client_id", &self.client_id)
            .field("redirect_url", &self.redirect_url)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
struct OAuth {
    settings: Arc<OAuthSettings>,
    api: SlackApi,
    installer: Arc<dyn Installer>,
}

fn now_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl OAuthSettings {
    fn mac(&self, text: &str) -> Hmac<Sha256> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.state_key).expect("HMAC takes any key length");
        mac.update(text.as_bytes());
        mac
    }

    /// A fresh `state`: nonce, expiry, signature. The nonce also goes into a cookie.
    fn new_state(&self, now: i64) -> (String, String) {
        let mut nonce = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut nonce);
        let nonce = hex::encode(nonce);
        let body = format!("{nonce}.{}", now + STATE_TTL_SECONDS);
        let signature = hex::encode(self.mac(&body).finalize().into_bytes());
        (format!("{body}.{signature}"), nonce)
    }

    /// Checks a returned `state` against its signature, its expiry and the browser's cookie.
    fn check_state(
        &self,
        state: &str,
        cookie_nonce: Option<&str>,
        now: i64,
    ) -> Result<(), &'static str> {
        let mut parts = state.split('.');
        let (Some(nonce), Some(expires), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("the install link is malformed");
        };
        let signature = hex::decode(signature).map_err(|_| "the install link is malformed")?;
        self.mac(&format!("{nonce}.{expires}"))
            .verify_slice(&signature)
            .map_err(|_| "the install link was not issued by this server")?;
        let expires: i64 = expires
            .parse()
            .map_err(|_| "the install link is malformed")?;
        if expires < now {
            return Err("the install link has expired");
        }
        if cookie_nonce != Some(nonce) {
            return Err("the install was started in another browser");
        }
        Ok(())
    }
}

fn page(status: StatusCode, title: &str, text: &str) -> Response {
    let escape = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    (
        status,
        Html(format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title></head>\
             <body style=\"font-family:system-ui,sans-serif;max-width:40rem;margin:4rem auto\">\
             <h1>{t}</h1><p>{x}</p></body></html>",
            t = escape(title),
            x = escape(text)
        )),
    )
        .into_response()
}

async fn install(State(oauth): State<OAuth>) -> Response {
    let settings = &oauth.settings;
    let (state, nonce) = settings.new_state(now_seconds());
    let mut url = match url::Url::parse(&settings.authorize_url) {
        Ok(url) => url,
        Err(e) => {
            tracing::error!(error = %e, "bad Slack authorize URL");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    url.query_pairs_mut()
        .append_pair("client_id", &settings.client_id)
        .append_pair("scope", &BOT_SCOPES.join(","))
        .append_pair("state", &state)
        .append_pair("redirect_uri", &settings.redirect_url);
    let secure = if settings.redirect_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, url.to_string()),
            (
                header::SET_COOKIE,
                format!(
                    "{COOKIE}={nonce}; Path=/slack; HttpOnly; SameSite=Lax; Max-Age={STATE_TTL_SECONDS}{secure}"
                ),
            ),
        ],
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

async fn callback(
    State(oauth): State<OAuth>,
    headers: HeaderMap,
    Query(query): Query<Callback>,
) -> Response {
    if let Some(error) = query.error {
        tracing::info!(%error, "Slack install cancelled");
        return page(
            StatusCode::OK,
            "Installation cancelled",
            "ResolutionFlow was not added to your Slack workspace. You can start again at any time.",
        );
    }
    let (Some(code), Some(state)) = (query.code, query.state) else {
        return page(
            StatusCode::BAD_REQUEST,
            "Installation failed",
            "Slack did not send the expected code. Start the installation again.",
        );
    };
    if let Err(why) = oauth
        .settings
        .check_state(&state, cookie(&headers, COOKIE), now_seconds())
    {
        tracing::warn!(why, "Slack install callback refused");
        return page(
            StatusCode::BAD_REQUEST,
            "Installation failed",
            &format!("{why}. Start the installation again from this server's /slack/install page."),
        );
    }
    let settings = &oauth.settings;
    let grant = match oauth
        .api
        .exchange_code(
            &settings.client_id,
            &settings.client_secret,
            &code,
            &settings.redirect_url,
        )
        .await
    {
        Ok(grant) => grant,
        Err(e) => {
            tracing::warn!(error = %e, "Slack OAuth code exchange failed");
            return page(
                StatusCode::BAD_GATEWAY,
                "Installation failed",
                "Slack did not accept the install (the code may have been used already). Start the installation again.",
            );
        }
    };
    let team = grant.team_name.clone();
    match oauth.installer.install(grant).await {
        Ok(account) => page(
            StatusCode::OK,
            "ResolutionFlow is installed",
            &format!(
                "{team} is connected to the {account} account. In Slack, type /rf help to get started, and /rf escalations here in the channel that should receive escalations."
            ),
        ),
        Err(e) => {
            tracing::error!(error = %e, "could not record a Slack install");
            page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Installation failed",
                "The workspace could not be recorded. Please try again in a moment.",
            )
        }
    }
}

/// `GET /slack/install` and `GET /slack/oauth/callback`.
pub fn router(settings: OAuthSettings, api: SlackApi, installer: Arc<dyn Installer>) -> Router {
    Router::new()
        .route("/slack/install", get(install))
        .route("/slack/oauth/callback", get(callback))
        .with_state(OAuth {
            settings: Arc::new(settings),
            api,
            installer,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> OAuthSettings {
        OAuthSettings {
            client_id: "1.2".into(),
            client_secret: "s".into(),
            authorize_url: "https://slack.com/oauth/v2/authorize".into(),
            redirect_url: "https://rf.example.com/slack/oauth/callback".into(),
            state_key: [7; 32],
        }
    }

    #[test]
    fn state_is_signed_expires_and_is_bound_to_the_browser() {
        let s = settings();
        let (state, nonce) = s.new_state(1_000);
        assert_eq!(s.check_state(&state, Some(&nonce), 1_001), Ok(()));
        assert!(
            s.check_state(&state, Some(&nonce), 1_000 + STATE_TTL_SECONDS + 1)
                .is_err()
        );
        assert!(s.check_state(&state, Some("other"), 1_001).is_err());
        assert!(s.check_state(&state, None, 1_001).is_err());
        let forged = state.replacen(&nonce, "00000000000000000000000000000000", 1);
        assert!(
            s.check_state(&forged, Some("00000000000000000000000000000000"), 1_001)
                .is_err()
        );
        let other_key = OAuthSettings {
            state_key: [8; 32],
            ..settings()
        };
        assert!(other_key.check_state(&state, Some(&nonce), 1_001).is_err());
        assert!(s.check_state("garbage", Some(&nonce), 1_001).is_err());
    }
}
