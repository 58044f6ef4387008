//! Socket Mode: the same requests over a WebSocket the server opens to Slack (no public URL
//! needed), through slack-morphism's listener. Each envelope is recorded exactly as an HTTP request
//! would be, then acknowledged; one that could not be recorded is left unacknowledged so Slack
//! sends it again.

use crate::client::SlackApi;
use crate::inbound::{self, Malformed, Parsed};
use crate::routes::Ingress;
use slack_morphism::prelude::*;
use std::sync::Arc;

type Failure = Box<dyn std::error::Error + Send + Sync>;

async fn ingress(states: &SlackClientEventsUserState) -> Result<Ingress, Failure> {
    states
        .read()
        .await
        .get_user_state::<Ingress>()
        .cloned()
        .ok_or_else(|| "Socket Mode started without its ingress".into())
}

async fn take(
    states: SlackClientEventsUserState,
    parsed: Result<Parsed, Malformed>,
) -> Result<(), Failure> {
    ingress(&states)
        .await?
        .take(parsed)
        .await
        .map_err(Into::into)
}

fn as_json<T: serde::Serialize>(value: &T) -> Result<serde_json::Value, Malformed> {
    serde_json::to_value(value).map_err(|e| Malformed(e.to_string()))
}

async fn on_push(
    event: SlackPushEventCallback,
    _client: Arc<SlackHyperClient>,
    states: SlackClientEventsUserState,
) -> UserCallbackResult<()> {
    let parsed = as_json(&SlackPushEvent::EventCallback(event)).and_then(inbound::event_value);
    take(states, parsed).await
}

async fn on_command(
    event: SlackCommandEvent,
    _client: Arc<SlackHyperClient>,
    states: SlackClientEventsUserState,
) -> UserCallbackResult<SlackCommandEventResponse> {
    let parsed = as_json(&event).and_then(inbound::command_value);
    take(states, parsed).await?;
    // The answer comes from the job, privately; the acknowledgement says nothing.
    Ok(SlackCommandEventResponse::new(SlackMessageContent::new()))
}

async fn on_interaction(
    event: SlackInteractionEvent,
    _client: Arc<SlackHyperClient>,
    states: SlackClientEventsUserState,
) -> UserCallbackResult<()> {
    let parsed = as_json(&event).and_then(inbound::interaction_value);
    take(states, parsed).await
}

/// Leaves an envelope that could not be recorded unacknowledged, so Slack delivers it again.
fn on_error(
    error: Failure,
    _client: Arc<SlackHyperClient>,
    _states: SlackClientEventsUserState,
) -> HttpStatusCode {
    tracing::error!(%error, "could not record a Slack request from Socket Mode; Slack will resend it");
    HttpStatusCode::SERVICE_UNAVAILABLE
}

/// A running Socket Mode connection.
pub struct SocketMode {
    listener: SlackClientSocketModeListener<SlackClientHyperHttpsConnector>,
}

impl std::fmt::Debug for SocketMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SocketMode { .. }")
    }
}

impl SocketMode {
    /// Opens the connection with the app-level token (`xapp-…`) and starts handling envelopes.
    pub async fn start(api: &SlackApi, app_token: &str, ingress: Ingress) -> Result<Self, Failure> {
        let environment = Arc::new(
            SlackClientEventsListenerEnvironment::new(api.client())
                .with_error_handler(on_error)
                .with_user_state(ingress),
        );
        let callbacks = SlackSocketModeListenerCallbacks::new()
            .with_push_events(on_push)
            .with_command_events(on_command)
            .with_interaction_events(on_interaction);
        let listener = SlackClientSocketModeListener::new(
            &SlackClientSocketModeConfig::new()
                .with_max_connections_count(1)
                .with_initial_backoff_in_seconds(1),
            environment,
            callbacks,
        );
        let token = SlackApiToken::new(SlackApiTokenValue::new(app_token.to_owned()));
        listener.listen_for(&token).await?;
        listener.start().await;
        tracing::info!("Slack Socket Mode connected");
        Ok(Self { listener })
    }

    /// Closes the connection.
    pub async fn stop(&self) {
        self.listener.shutdown().await;
    }
}
