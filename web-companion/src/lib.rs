//! The ResolutionFlow web companion: server-rendered pages behind signed links.
//!
//! The bot hands out links (`link` in a session thread, `resolutionflow link` on the server). A
//! link is a short-lived signed token; opening it sets an HttpOnly session cookie and redirects to
//! the page it was made for. Every page is scoped to the cookie's account: another tenant's
//! resource answers 404, exactly like one that does not exist.
#![forbid(unsafe_code)]

mod escalations;
mod flows;
pub mod links;
mod pages;
mod proposals;
pub mod psa;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum_extra::extract::cookie::CookieJar;
use links::{Claims, TokenError, TokenKeys, TokenKind};
use minijinja::Environment;
use rf_core::domain::Actor;
use rf_core::engine::Engine;
use rf_core::outbox::HandoffEvent;
use rf_core::time::Clock;
use rf_core::{Store, StoreError};
use std::sync::Arc;
use tokio::sync::broadcast;
use tower_http::set_header::SetResponseHeaderLayer;

/// The name of the session cookie.
pub const COOKIE: &str = "rf_session";

/// Everything the companion needs.
#[derive(Debug, Clone)]
pub struct CompanionState {
    pub engine: Engine,
    pub store: Arc<dyn Store>,
    pub keys: TokenKeys,
    pub clock: Arc<dyn Clock>,
    /// How long the session cookie lasts after a link is opened.
    pub cookie_ttl_millis: i64,
    /// Every committed escalation event, as it happens (all accounts; each stream filters).
    pub events: broadcast::Sender<HandoffEvent>,
    /// PSA connection management, when the server has it.
    pub psa: Option<Arc<dyn psa::PsaSettings>>,
    templates: Arc<Environment<'static>>,
}

impl CompanionState {
    pub fn new(
        engine: Engine,
        keys: TokenKeys,
        clock: Arc<dyn Clock>,
        cookie_ttl_millis: i64,
        events: broadcast::Sender<HandoffEvent>,
    ) -> Self {
        Self {
            store: engine.store().clone(),
            engine,
            keys,
            clock,
            cookie_ttl_millis,
            events,
            psa: None,
            templates: Arc::new(templates()),
        }
    }

    /// Lets admins manage their team's PSA connection.
    pub fn with_psa(mut self, psa: Arc<dyn psa::PsaSettings>) -> Self {
        self.psa = Some(psa);
        self
    }

    /// Whether cookies must only travel over HTTPS.
    fn secure_cookies(&self) -> bool {
        self.keys.public_url().starts_with("https://")
    }

    fn render(
        &self,
        name: &str,
        context: minijinja::Value,
    ) -> Result<Html<String>, CompanionError> {
        self.templates
            .get_template(name)
            .and_then(|template| template.render(context))
            .map(Html)
            .map_err(|e| CompanionError::Internal(format!("rendering {name}: {e:#}")))
    }
}

fn templates() -> Environment<'static> {
    let mut env = Environment::new();
    for (name, source) in [
        ("base.html", include_str!("../templates/base.html")),
        ("error.html", include_str!("../templates/error.html")),
        ("session.html", include_str!("../templates/session.html")),
        ("home.html", include_str!("../templates/home.html")),
        ("handoff.html", include_str!("../templates/handoff.html")),
        ("queue.html", include_str!("../templates/queue.html")),
        ("metrics.html", include_str!("../templates/metrics.html")),
        ("psa.html", include_str!("../templates/psa.html")),
        ("flow.html", include_str!("../templates/flow.html")),
        (
            "proposals.html",
            include_str!("../templates/proposals.html"),
        ),
    ] {
        env.add_template(name, source)
            .unwrap_or_else(|e| panic!("bundled template {name} is invalid: {e}"));
    }
    env
}

/// The companion's routes. Health checks need no cookie; everything else does.
pub fn router(state: CompanionState) -> Router {
    Router::new()
        .route("/healthz", get(pages::healthz))
        .route("/readyz", get(pages::readyz))
        .route("/auth/link", get(pages::open_link))
        .route("/", get(pages::home))
        .route("/sessions/{id}", get(pages::session))
        .route("/sessions/{id}/export/{format}", get(pages::export))
        .route("/handoffs/{id}", get(escalations::handoff_page))
        .route("/handoffs/{id}/claim", axum::routing::post(escalations::claim_form))
        .route("/api/handoffs/{id}/claim", axum::routing::post(escalations::claim_api))
        .route("/queue", get(escalations::queue_page))
        .route("/api/escalations", get(escalations::queue_api))
        .route("/api/escalations/stream", get(escalations::stream))
        .route("/team/metrics", get(escalations::metrics_page))
        .route("/team/metrics/baseline", axum::routing::post(escalations::set_baseline))
        .route("/api/metrics", get(escalations::metrics_api))
        .route("/api/metrics.csv", get(escalations::metrics_csv))
        .route("/team/psa", get(psa::settings_page).post(psa::connect))
        .route("/team/psa/test", axum::routing::post(psa::test_saved))
        .route("/team/psa/map", axum::routing::post(psa::map_member))
        .route("/flows/{id}", get(flows::page))
        .route("/team/proposals", get(proposals::list))
        .route("/team/proposals/{id}", axum::routing::post(proposals::review))
        .route("/static/companion.js", get(escalations::script))
        .fallback(pages::not_found)
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'",
            ),
        ))
        .with_state(state)
}

/// Why a request failed, as the person sees it.
#[derive(Debug)]
pub enum CompanionError {
    /// No cookie: the page needs a link from the bot.
    SignInRequired,
    /// The link or cookie was refused.
    BadToken(TokenError),
    /// The link was revoked by an admin.
    Revoked,
    /// Not there, or not yours (indistinguishable on purpose).
    NotFound,
    /// Signed in, but the role does not allow this page.
    Forbidden(&'static str),
    /// A form from another site (cross-site request forgery).
    CrossSite,
    /// The database did not answer.
    Unavailable,
    /// A bug; logged once, never shown.
    Internal(String),
}

impl From<StoreError> for CompanionError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { .. } => CompanionError::NotFound,
            StoreError::Unavailable(_) => CompanionError::Unavailable,
            other => CompanionError::Internal(other.to_string()),
        }
    }
}

impl IntoResponse for CompanionError {
    fn into_response(self) -> Response {
        let (status, title, detail) = match &self {
            CompanionError::SignInRequired => (
                StatusCode::UNAUTHORIZED,
                "Open this page from a link",
                "Pages here open from links the bot hands out. Type `link` in the session's thread to get one.",
            ),
            CompanionError::BadToken(TokenError::Expired) => (
                StatusCode::UNAUTHORIZED,
                "This link has expired",
                "Links expire to keep sessions private. Ask the bot for a new one: type `link` in the session's thread.",
            ),
            CompanionError::BadToken(TokenError::Invalid) => (
                StatusCode::UNAUTHORIZED,
                "This link is not valid",
                "The link is incomplete or has been altered. Copy the whole link from the bot's message, or ask for a new one.",
            ),
            CompanionError::Revoked => (
                StatusCode::UNAUTHORIZED,
                "This link was revoked",
                "An admin revoked this link. Ask the bot for a new one if you still need access.",
            ),
            CompanionError::NotFound => (
                StatusCode::NOT_FOUND,
                "Not found",
                "There is nothing here, or it is not part of your account.",
            ),
            CompanionError::Forbidden(detail) => (StatusCode::FORBIDDEN, "Not allowed", *detail),
            CompanionError::CrossSite => (
                StatusCode::FORBIDDEN,
                "Request refused",
                "This request did not come from a ResolutionFlow page.",
            ),
            CompanionError::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Temporarily unavailable",
                "The database is not answering. Nothing was lost; try again in a minute.",
            ),
            CompanionError::Internal(detail) => {
                tracing::error!(error = %detail, "companion request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something on our side failed",
                    "The error has been logged. Try again, and tell your administrator if it keeps happening.",
                )
            }
        };
        let body = pages::error_page(status, title, detail);
        let mut response = (status, Html(body)).into_response();
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

/// The signed-in viewer of a page, from the session cookie.
#[derive(Debug, Clone)]
pub struct Viewer(pub Claims);

impl Viewer {
    /// The viewer as the engine's actor, with their current role (it may have changed since the
    /// link was made).
    pub(crate) async fn actor(&self, state: &CompanionState) -> Result<Actor, CompanionError> {
        let user = state.store.get_user(self.0.acc, self.0.sub).await?;
        Ok(Actor::from(&user))
    }
}

impl FromRequestParts<CompanionState> for Viewer {
    type Rejection = CompanionError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &CompanionState,
    ) -> Result<Self, Self::Rejection> {
        let jar = CookieJar::from_headers(&parts.headers);
        let token = jar.get(COOKIE).ok_or(CompanionError::SignInRequired)?;
        let claims = state
            .keys
            .verify(token.value(), TokenKind::Cookie, state.clock.now())
            .map_err(CompanionError::BadToken)?;
        live_link(state, &claims).await?;
        Ok(Viewer(claims))
    }
}

/// The share link a token stems from, if it still exists in its account and is not revoked.
pub(crate) async fn live_link(
    state: &CompanionState,
    claims: &Claims,
) -> Result<rf_core::links::ShareLink, CompanionError> {
    let link = state
        .store
        .get_link(claims.acc, claims.jti)
        .await
        .map_err(|e| match e {
            StoreError::NotFound { .. } => CompanionError::BadToken(TokenError::Invalid),
            other => other.into(),
        })?;
    if link.revoked_at.is_some() {
        return Err(CompanionError::Revoked);
    }
    Ok(link)
}
