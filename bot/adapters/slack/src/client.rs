//! The Slack Web API, as the core's [`Notifier`] and as the few calls only Slack has (modals,
//! user lookups). Requests are built with slack-morphism's models and sent through its client;
//! answers are read leniently, for the fields we use only, so a field Slack adds never breaks us.

use crate::blocks;
use async_trait::async_trait;
use rf_core::domain::{ChannelRef, Platform, ThreadKey};
use rf_core::effect::{Document, Message, Place};
use rf_core::notify::{MessageRef, Notifier, NotifyError};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use slack_morphism::errors::SlackClientError;
use slack_morphism::prelude::*;
use std::sync::Arc;
use std::time::Duration;

/// Slack's own Web API address.
pub const DEFAULT_API_URL: &str = "https://slack.com/api";
/// Where Slack's `response_url`s point.
pub const DEFAULT_RESPONSE_URL_PREFIX: &str = "https://hooks.slack.com/";

/// How to reach Slack.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// The Web API base URL (a local fake in tests).
    pub api_url: String,
    /// Throttle calls to Slack's published per-method tiers before Slack has to say 429.
    pub rate_control: bool,
    /// How long one call may take before it is abandoned and retried later.
    pub timeout: Duration,
    /// Commands' `response_url`s are only called when they start with this.
    pub response_url_prefix: String,
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            api_url: DEFAULT_API_URL.to_owned(),
            rate_control: true,
            timeout: Duration::from_secs(10),
            response_url_prefix: DEFAULT_RESPONSE_URL_PREFIX.to_owned(),
        }
    }
}

/// The bot token (`xoxb-…`) for a workspace.
#[async_trait]
pub trait TokenSource: Send + Sync + std::fmt::Debug {
    async fn bot_token(&self, workspace: &str) -> Result<String, NotifyError>;
}

/// What an OAuth install grants: the workspace and its bot token.
#[derive(Clone, PartialEq, Eq)]
pub struct Grant {
    pub team_id: String,
    pub team_name: String,
    pub bot_token: String,
    /// The Slack user who installed the app.
    pub installer: String,
}

impl std::fmt::Debug for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grant")
            .field("team_id", &self.team_id)
            .field("team_name", &self.team_name)
            .field("installer", &self.installer)
            .finish_non_exhaustive()
    }
}

/// A person as `users.info` describes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlackPerson {
    pub id: String,
    pub name: String,
    pub email: Option<String>,
    /// A workspace owner or admin.
    pub is_admin: bool,
    pub is_bot: bool,
}

/// The Slack Web API client.
#[derive(Clone)]
pub struct SlackApi {
    client: Arc<SlackClient<SlackClientHyperHttpsConnector>>,
    tokens: Arc<dyn TokenSource>,
    timeout: Duration,
    api_url: String,
    response_url_prefix: String,
}

impl std::fmt::Debug for SlackApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackApi")
            .field("api_url", &self.api_url)
            .field("tokens", &self.tokens)
            .finish_non_exhaustive()
    }
}

/// The part of a `chat.postMessage` answer we keep.
#[derive(Debug, Deserialize)]
struct Posted {
    ts: String,
}

#[derive(Debug, Deserialize)]
struct Opened {
    channel: OpenedChannel,
}

#[derive(Debug, Deserialize)]
struct OpenedChannel {
    id: String,
}

#[derive(Debug, Deserialize)]
struct UserInfo {
    user: UserRecord,
}

#[derive(Debug, Deserialize)]
struct UserRecord {
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    real_name: Option<String>,
    #[serde(default)]
    is_admin: bool,
    #[serde(default)]
    is_owner: bool,
    #[serde(default)]
    is_bot: bool,
    #[serde(default)]
    profile: Option<Profile>,
}

#[derive(Debug, Deserialize)]
struct Profile {
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    real_name: Option<String>,
    #[serde(default)]
    email: Option<String>,
}

#[derive(Debug, Deserialize)]
struct AuthTest {
    team_id: String,
}

/// An answer whose content we don't need.
#[derive(Debug, Deserialize)]
struct Ignored {}

impl SlackApi {
    pub fn new(settings: &ApiSettings, tokens: Arc<dyn TokenSource>) -> std::io::Result<Self> {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()?
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .build();
        let mut connector = SlackClientHyperConnector::with_connector(https)
            .with_slack_api_url(settings.api_url.trim_end_matches('/'));
        if settings.rate_control {
            connector = connector.with_rate_control(SlackApiRateControlConfig::new());
        }
        Ok(Self {
            client: Arc::new(SlackClient::new(connector)),
            tokens,
            timeout: settings.timeout,
            api_url: settings.api_url.clone(),
            response_url_prefix: settings.response_url_prefix.clone(),
        })
    }

    /// The underlying slack-morphism client (Socket Mode connects through it).
    pub(crate) fn client(&self) -> Arc<SlackClient<SlackClientHyperHttpsConnector>> {
        self.client.clone()
    }

    async fn token(&self, workspace: &str) -> Result<SlackApiToken, NotifyError> {
        let value = self.tokens.bot_token(workspace).await?;
        Ok(SlackApiToken::new(SlackApiTokenValue::new(value))
            .with_team_id(SlackTeamId::new(workspace.to_owned())))
    }

    async fn post<RQ, RS>(
        &self,
        workspace: &str,
        method: &str,
        request: &RQ,
        tier: &SlackApiMethodRateControlConfig,
    ) -> Result<RS, NotifyError>
    where
        RQ: serde::Serialize + Send + Sync,
        RS: DeserializeOwned + Send,
    {
        let token = self.token(workspace).await?;
        let session = self.client.open_session(&token);
        let call = session
            .http_session_api
            .http_post::<RQ, RS>(method, request, Some(tier));
        match tokio::time::timeout(self.timeout, call).await {
            Ok(result) => result.map_err(|e| classify(method, e)),
            Err(_) => Err(NotifyError::Transient(format!(
                "Slack did not answer {method} within {} s",
                self.timeout.as_secs()
            ))),
        }
    }

    /// Posts `message` in `channel`, in the thread `thread_ts` if given.
    pub async fn post_message(
        &self,
        workspace: &str,
        channel: &str,
        thread_ts: Option<&str>,
        message: &Message,
    ) -> Result<String, NotifyError> {
        let mut request =
            SlackApiChatPostMessageRequest::new(channel.into(), blocks::content(message));
        request.thread_ts = thread_ts.map(|ts| SlackTs::new(ts.to_owned()));
        let posted: Posted = self
            .post(
                workspace,
                "chat.postMessage",
                &request,
                &CHAT_POST_MESSAGE_SPECIAL_LIMIT_RATE_CTL,
            )
            .await?;
        Ok(posted.ts)
    }

    /// Opens a modal with the `trigger_id` of the click that asked for it (valid for 3 s).
    pub async fn open_view(
        &self,
        workspace: &str,
        trigger_id: &str,
        view: SlackView,
    ) -> Result<(), NotifyError> {
        let request = SlackApiViewsOpenRequest::new(trigger_id.into(), view);
        self.post::<_, Ignored>(
            workspace,
            "views.open",
            &request,
            &SLACK_TIER4_METHOD_CONFIG,
        )
        .await
        .map(drop)
    }

    /// Who `user` is, and whether they administer the workspace.
    pub async fn user(&self, workspace: &str, user: &str) -> Result<SlackPerson, NotifyError> {
        let token = self.token(workspace).await?;
        let session = self.client.open_session(&token);
        let params = vec![("user", Some(user.to_owned()))];
        let call = session.http_session_api.http_get::<UserInfo, _, _>(
            "users.info",
            &params,
            Some(&SLACK_TIER4_METHOD_CONFIG),
        );
        let info = match tokio::time::timeout(self.timeout, call).await {
            Ok(result) => result.map_err(|e| classify("users.info", e))?,
            Err(_) => return Err(NotifyError::Transient("users.info timed out".to_owned())),
        };
        let record = info.user;
        let profile = record.profile.unwrap_or(Profile {
            display_name: None,
            real_name: None,
            email: None,
        });
        let name = [
            profile.display_name,
            record.real_name,
            profile.real_name,
            Some(record.name),
        ]
        .into_iter()
        .flatten()
        .find(|n| !n.trim().is_empty())
        .unwrap_or_else(|| record.id.clone());
        Ok(SlackPerson {
            id: record.id,
            name,
            email: profile.email.filter(|e| !e.is_empty()),
            is_admin: record.is_admin || record.is_owner,
            is_bot: record.is_bot,
        })
    }

    /// Answers a slash command privately through its `response_url` (works in channels the bot
    /// is not in). Only Slack's own hook URLs are called.
    pub async fn respond(&self, response_url: &str, message: &Message) -> Result<(), NotifyError> {
        if !response_url.starts_with(&self.response_url_prefix) {
            return Err(NotifyError::Permanent(format!(
                "not a Slack response URL: {}",
                response_url.split('?').next().unwrap_or_default()
            )));
        }
        let url = url::Url::parse(response_url)
            .map_err(|e| NotifyError::Permanent(format!("bad response URL: {e}")))?;
        let request = SlackApiPostWebhookMessageRequest::new(blocks::content(message));
        let url = SlackResponseUrl::new(url);
        let call = self.client.respond_to_event(&url, &request);
        match tokio::time::timeout(self.timeout, call).await {
            Ok(result) => result.map(drop).map_err(|e| classify("response_url", e)),
            Err(_) => Err(NotifyError::Transient("response_url timed out".to_owned())),
        }
    }

    /// Shares `document` as a file in a thread: Slack's upload-URL, upload, complete sequence.
    pub async fn upload(
        &self,
        workspace: &str,
        channel: &str,
        thread_ts: &str,
        document: &Document,
    ) -> Result<(), NotifyError> {
        let token = self.token(workspace).await?;
        let session = self.client.open_session(&token);
        let bytes = document.content.as_bytes().to_vec();
        let uploaded = async {
            let target = session
                .get_upload_url_external(&SlackApiFilesGetUploadUrlExternalRequest::new(
                    document.filename.clone(),
                    bytes.len(),
                ))
                .await?;
            session
                .files_upload_via_url(&SlackApiFilesUploadViaUrlRequest::new(
                    target.upload_url,
                    bytes,
                    document.format.mime().to_owned(),
                ))
                .await?;
            Ok::<_, SlackClientError>(target.file_id)
        };
        let file = match tokio::time::timeout(self.timeout, uploaded).await {
            Ok(result) => result.map_err(|e| classify("files upload", e))?,
            Err(_) => return Err(NotifyError::Transient("file upload timed out".to_owned())),
        };
        let complete = SlackApiFilesCompleteUploadExternalRequest::new(vec![
            SlackApiFilesComplete::new(file).with_title(document.filename.clone()),
        ])
        .with_channel_id(channel.into())
        .with_thread_ts(SlackTs::new(thread_ts.to_owned()));
        self.post::<_, Ignored>(
            workspace,
            "files.completeUploadExternal",
            &complete,
            &SLACK_TIER4_METHOD_CONFIG,
        )
        .await
        .map(drop)
    }

    /// Exchanges an OAuth `code` for the workspace's bot token (`oauth.v2.access`).
    pub async fn exchange_code(
        &self,
        client_id: &str,
        client_secret: &str,
        code: &str,
        redirect_uri: &str,
    ) -> Result<Grant, NotifyError> {
        let redirect = url::Url::parse(redirect_uri)
            .map_err(|e| NotifyError::Permanent(format!("bad redirect URL: {e}")))?;
        let request = SlackOAuthV2AccessTokenRequest::new(
            client_id.into(),
            client_secret.into(),
            code.into(),
        )
        .with_redirect_uri(redirect);
        let call = self.client.oauth2_access(&request);
        let answer = match tokio::time::timeout(self.timeout, call).await {
            Ok(result) => result.map_err(|e| classify("oauth.v2.access", e))?,
            Err(_) => {
                return Err(NotifyError::Transient(
                    "oauth.v2.access timed out".to_owned(),
                ));
            }
        };
        Ok(Grant {
            team_id: answer.team.id.to_string(),
            team_name: answer
                .team
                .name
                .unwrap_or_else(|| answer.team.id.to_string()),
            bot_token: answer.access_token.to_string(),
            installer: answer.authed_user.id.to_string(),
        })
    }

    /// The workspace the bot token belongs to (`auth.test`).
    pub async fn token_workspace(&self, workspace_hint: &str) -> Result<String, NotifyError> {
        let answer: AuthTest = self
            .post(
                workspace_hint,
                "auth.test",
                &serde_json::json!({}),
                &SLACK_TIER4_METHOD_CONFIG,
            )
            .await?;
        Ok(answer.team_id)
    }
}

/// Sorts a failed call into retry-later or give-up.
fn classify(method: &str, error: SlackClientError) -> NotifyError {
    match error {
        SlackClientError::RateLimitError(e) => NotifyError::RateLimited {
            retry_after: e.retry_after,
        },
        SlackClientError::ApiError(e) => match e.code.as_str() {
            "ratelimited" | "rate_limited" => NotifyError::RateLimited { retry_after: None },
            "internal_error" | "fatal_error" | "service_unavailable" | "request_timeout" => {
                NotifyError::Transient(format!("Slack {method}: {}", e.code))
            }
            code => NotifyError::Permanent(format!("Slack refused {method}: {code}")),
        },
        SlackClientError::HttpError(e) if e.status_code.is_client_error() => {
            NotifyError::Permanent(format!("Slack {method}: HTTP {}", e.status_code))
        }
        SlackClientError::HttpError(e) => {
            NotifyError::Transient(format!("Slack {method}: HTTP {}", e.status_code))
        }
        other => NotifyError::Transient(format!("Slack {method}: {other}")),
    }
}

/// Slack as a chat platform for the core.
#[derive(Debug, Clone)]
pub struct SlackNotifier {
    api: SlackApi,
}

impl SlackNotifier {
    pub fn new(api: SlackApi) -> Self {
        Self { api }
    }
}

fn slack_only(platform: Platform) -> Result<(), NotifyError> {
    if platform == Platform::Slack {
        Ok(())
    } else {
        Err(NotifyError::Permanent(format!(
            "a {platform} place was handed to the Slack notifier"
        )))
    }
}

#[async_trait]
impl Notifier for SlackNotifier {
    async fn post(
        &self,
        channel: &ChannelRef,
        message: &Message,
    ) -> Result<MessageRef, NotifyError> {
        slack_only(channel.platform)?;
        let ts = self
            .api
            .post_message(&channel.workspace, &channel.channel, None, message)
            .await?;
        Ok(MessageRef {
            channel: channel.clone(),
            id: ts,
        })
    }

    async fn update(&self, posted: &MessageRef, message: &Message) -> Result<(), NotifyError> {
        slack_only(posted.channel.platform)?;
        let request = SlackApiChatUpdateRequest::new(
            posted.channel.channel.as_str().into(),
            blocks::content(message),
            SlackTs::new(posted.id.clone()),
        );
        self.api
            .post::<_, Ignored>(
                &posted.channel.workspace,
                "chat.update",
                &request,
                &SLACK_TIER3_METHOD_CONFIG,
            )
            .await
            .map(drop)
    }

    async fn reply(&self, thread: &ThreadKey, message: &Message) -> Result<(), NotifyError> {
        slack_only(thread.platform)?;
        self.api
            .post_message(
                &thread.workspace,
                &thread.channel,
                Some(&thread.thread),
                message,
            )
            .await
            .map(drop)
    }

    async fn direct(
        &self,
        workspace: &str,
        platform_user_id: &str,
        message: &Message,
    ) -> Result<(), NotifyError> {
        let request =
            SlackApiConversationsOpenRequest::new().with_users(vec![platform_user_id.into()]);
        let opened: Opened = self
            .api
            .post(
                workspace,
                "conversations.open",
                &request,
                &SLACK_TIER3_METHOD_CONFIG,
            )
            .await?;
        self.api
            .post_message(workspace, &opened.channel.id, None, message)
            .await
            .map(drop)
    }

    async fn invite(&self, thread: &ThreadKey, platform_user_id: &str) -> Result<(), NotifyError> {
        slack_only(thread.platform)?;
        let request = SlackApiConversationsInviteRequest::new(
            thread.channel.as_str().into(),
            vec![platform_user_id.into()],
        );
        match self
            .api
            .post::<_, Ignored>(
                &thread.workspace,
                "conversations.invite",
                &request,
                &SLACK_TIER3_METHOD_CONFIG,
            )
            .await
        {
            // Already there (or it's a DM or the bot itself): nothing to do.
            Err(NotifyError::Permanent(e))
                if e.ends_with("already_in_channel")
                    || e.ends_with("cant_invite_self")
                    || e.ends_with("method_not_supported_for_channel_type") =>
            {
                Ok(())
            }
            other => other.map(drop),
        }
    }

    async fn document(&self, thread: &ThreadKey, document: &Document) -> Result<(), NotifyError> {
        slack_only(thread.platform)?;
        self.api
            .upload(&thread.workspace, &thread.channel, &thread.thread, document)
            .await
    }

    async fn ephemeral(
        &self,
        place: &Place,
        platform_user_id: &str,
        message: &Message,
    ) -> Result<(), NotifyError> {
        slack_only(place.channel.platform)?;
        let mut request = SlackApiChatPostEphemeralRequest::new(
            place.channel.channel.as_str().into(),
            platform_user_id.into(),
            blocks::content(message),
        );
        request.thread_ts = place.thread.clone().map(SlackTs::new);
        self.api
            .post::<_, Ignored>(
                &place.channel.workspace,
                "chat.postEphemeral",
                &request,
                &SLACK_TIER4_METHOD_CONFIG,
            )
            .await
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slack_morphism::errors::*;

    #[derive(Debug)]
    struct NoTokens;

    #[async_trait]
    impl TokenSource for NoTokens {
        async fn bot_token(&self, _workspace: &str) -> Result<String, NotifyError> {
            Err(NotifyError::Permanent("no tokens here".to_owned()))
        }
    }

    #[tokio::test]
    async fn only_slack_response_urls_are_called() {
        let api = SlackApi::new(&ApiSettings::default(), Arc::new(NoTokens)).unwrap();
        let refused = api
            .respond(
                "http://169.254.169.254/latest/meta-data?x=1",
                &Message::text("hi"),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&refused, NotifyError::Permanent(e) if e.contains("not a Slack response URL") && !e.contains("x=1")),
            "{refused:?}"
        );
    }

    #[test]
    fn failures_are_sorted_for_retrying() {
        let limited = SlackClientError::RateLimitError(
            SlackRateLimitError::new().with_retry_after(Duration::from_secs(7)),
        );
        assert_eq!(
            classify("chat.postMessage", limited),
            NotifyError::RateLimited {
                retry_after: Some(Duration::from_secs(7))
            }
        );
        let refused =
            SlackClientError::ApiError(SlackClientApiError::new("channel_not_found".into()));
        assert!(matches!(
            classify("chat.postMessage", refused),
            NotifyError::Permanent(e) if e.contains("channel_not_found")
        ));
        let down = SlackClientError::HttpError(SlackClientHttpError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
        ));
        assert!(matches!(
            classify("chat.update", down),
            NotifyError::Transient(_)
        ));
    }
}
