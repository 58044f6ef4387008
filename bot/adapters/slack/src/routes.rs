//! The three HTTP endpoints Slack calls. Each verifies the signature, reads just enough to
//! recognise a repeat, records the request with its job in one transaction, and answers: nothing on
//! this path waits on Slack, a model or a PSA. The job worker does the rest.

use crate::inbound::{self, Envelope, Malformed, Parsed};
use crate::verify::{RequestVerifier, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use rf_core::domain::{InstallationRef, Platform};
use rf_core::engine::Wake;
use rf_core::ids::AccountId;
use rf_core::jobs::{Job, NewJob};
use rf_core::time::Clock;
use rf_core::{Store, StoreError};
use std::sync::Arc;

/// What became of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    New,
    /// Seen before (a retry, a re-delivery): nothing more to do.
    Repeat,
    /// From a workspace this server does not serve.
    NotConnected,
}

/// What the endpoints need.
#[derive(Debug, Clone)]
pub struct Ingress {
    /// Checks HTTP requests; Socket Mode needs none.
    verifier: Option<RequestVerifier>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    wake: Option<Wake>,
    /// With a single bot token: the account requests from a not-yet-connected workspace are
    /// recorded under (the job checks the workspace is the token's before connecting it).
    single_workspace: Option<AccountId>,
}

impl Ingress {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        Self {
            verifier: None,
            store,
            clock,
            wake: None,
            single_workspace: None,
        }
    }

    /// Checks HTTP requests against the app's signing secret.
    pub fn with_verifier(mut self, verifier: RequestVerifier) -> Self {
        self.verifier = Some(verifier);
        self
    }

    /// Wakes the local job worker after a request was recorded.
    pub fn with_wake(mut self, wake: Wake) -> Self {
        self.wake = Some(wake);
        self
    }

    pub fn with_single_workspace(mut self, account: AccountId) -> Self {
        self.single_workspace = Some(account);
        self
    }

    fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), StatusCode> {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let Some(verifier) = &self.verifier else {
            tracing::error!("Slack HTTP requests arrived but no signing secret is configured");
            return Err(StatusCode::INTERNAL_SERVER_ERROR);
        };
        verifier
            .verify(header(SIGNATURE_HEADER), header(TIMESTAMP_HEADER), body)
            .map_err(|rejection| {
                if rejection.is_unauthorized() {
                    tracing::warn!(reason = %rejection, "rejected a Slack request");
                    // No detail for whoever sent it.
                    StatusCode::UNAUTHORIZED
                } else {
                    tracing::error!(reason = %rejection, "cannot verify Slack requests");
                    StatusCode::INTERNAL_SERVER_ERROR
                }
            })
    }

    /// Records a request with its job, unless it is a repeat or its workspace is not connected.
    pub async fn record(&self, envelope: Envelope, retry: &str) -> Result<Recorded, StoreError> {
        let installation = InstallationRef {
            platform: Platform::Slack,
            external_id: envelope.team.clone(),
        };
        let account = match self.store.find_installation(&installation).await? {
            Some((account, _)) => account,
            None => match self.single_workspace {
                Some(account) => account,
                None => {
                    tracing::info!(slack.team = %envelope.team, "request from a workspace that is not connected");
                    return Ok(Recorded::NotConnected);
                }
            },
        };
        let now = self.clock.now();
        let job = NewJob::now(
            account,
            Job::Inbound {
                platform: Platform::Slack,
                lane: envelope.lane,
                event: envelope.payload,
            },
            now,
        );
        if self
            .store
            .accept_inbound("slack", &envelope.keys, job, now)
            .await?
        {
            if let Some(wake) = &self.wake {
                (wake.0)();
            }
            Ok(Recorded::New)
        } else {
            tracing::info!(keys = ?envelope.keys, retry, "repeated Slack delivery ignored");
            Ok(Recorded::Repeat)
        }
    }

    /// Takes a request that arrived over Socket Mode: `Err` leaves it unacknowledged, so Slack
    /// sends it again.
    pub async fn take(&self, parsed: Result<Parsed, Malformed>) -> Result<(), StoreError> {
        match parsed {
            Ok(Parsed::Accept(envelope)) => self.record(envelope, "socket").await.map(drop),
            Ok(Parsed::Challenge(_) | Parsed::Ignore(_)) => Ok(()),
            Err(e) => {
                // Sending it again cannot make it readable.
                tracing::warn!(error = %e, "malformed Slack request over Socket Mode");
                Ok(())
            }
        }
    }

    async fn answer(&self, headers: &HeaderMap, parsed: Result<Parsed, Malformed>) -> Response {
        match parsed {
            Ok(Parsed::Challenge(challenge)) => {
                axum::Json(serde_json::json!({ "challenge": challenge })).into_response()
            }
            Ok(Parsed::Accept(envelope)) => {
                let retry = headers
                    .get("x-slack-retry-num")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                match self.record(envelope, retry).await {
                    Ok(Recorded::New | Recorded::Repeat) => StatusCode::OK.into_response(),
                    Ok(Recorded::NotConnected) => (
                        StatusCode::OK,
                        "This Slack workspace is not connected to ResolutionFlow. Ask an admin to install the app.",
                    )
                        .into_response(),
                    Err(e) => unavailable(&e),
                }
            }
            Ok(Parsed::Ignore(what)) => {
                tracing::debug!(%what, "Slack request ignored");
                StatusCode::OK.into_response()
            }
            Err(e) => {
                tracing::warn!(error = %e, "malformed Slack request");
                (StatusCode::BAD_REQUEST, e.to_string()).into_response()
            }
        }
    }
}

/// The database is down: Slack retries events later, and nothing is lost.
fn unavailable(error: &StoreError) -> Response {
    tracing::error!(%error, "could not record a Slack request");
    StatusCode::SERVICE_UNAVAILABLE.into_response()
}

/// Verifies, then reads the body with `parse` and answers.
async fn receive(
    ingress: Ingress,
    headers: HeaderMap,
    body: Bytes,
    parse: fn(&[u8]) -> Result<Parsed, Malformed>,
) -> Response {
    if let Err(status) = ingress.verify(&headers, &body) {
        return status.into_response();
    }
    ingress.answer(&headers, parse(&body)).await
}

async fn events(State(ingress): State<Ingress>, headers: HeaderMap, body: Bytes) -> Response {
    receive(ingress, headers, body, inbound::parse_event).await
}

async fn commands(State(ingress): State<Ingress>, headers: HeaderMap, body: Bytes) -> Response {
    receive(ingress, headers, body, inbound::parse_command).await
}

async fn interactions(State(ingress): State<Ingress>, headers: HeaderMap, body: Bytes) -> Response {
    receive(ingress, headers, body, inbound::parse_interaction).await
}

/// `POST /slack/events`, `/slack/commands` and `/slack/interactions`.
pub fn router(ingress: Ingress) -> Router {
    Router::new()
        .route("/slack/events", post(events))
        .route("/slack/commands", post(commands))
        .route("/slack/interactions", post(interactions))
        .with_state(ingress)
}
