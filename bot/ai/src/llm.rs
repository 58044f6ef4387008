//! What every model provider offers: one chat call with a system prompt, cacheable context, the
//! conversation and an optional output schema; the errors it can end in, sorted by what the caller
//! should do about them; and [`chat_with_retries`], which retries the transient ones.

use backon::{ExponentialBuilder, Retryable};
use rf_core::ai::AiError;
use std::time::Duration;

/// Who said a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    User,
    Assistant,
}

impl Role {
    /// The role's name on the wire (`user`, `assistant`), the same for every provider.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Assistant => "assistant",
        }
    }
}

/// One message of the conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
}

/// The JSON schema the answer must follow.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputSchema {
    /// A short name (OpenAI's `json_schema.name`): letters, digits, `_` and `-`.
    pub name: String,
    pub schema: serde_json::Value,
}

/// One chat call.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    pub system: String,
    /// Stable context (flow, retrieved items) marked for prompt caching, sent before the messages.
    pub context: Option<String>,
    pub messages: Vec<ChatMessage>,
    pub schema: Option<OutputSchema>,
    pub max_tokens: u32,
}

/// The tokens a call used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Input tokens billed at the full price: neither read from nor written to the prompt cache
    /// (for OpenAI-compatible servers, `prompt_tokens` less the cached ones).
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Input tokens read from the prompt cache.
    pub cached_tokens: u64,
    /// Input tokens written to the prompt cache (Anthropic).
    pub cache_write_tokens: u64,
}

/// A complete answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChatResponse {
    pub text: String,
    /// The model that answered, as the provider names it (may be more specific than the one asked
    /// for; empty when the provider did not say).
    pub model: String,
    pub usage: Usage,
    /// Why the model stopped (`end_turn`, `max_tokens`, `stop`, `length`…), when the provider said.
    pub stop_reason: Option<String>,
}

/// Why a call failed. No message ever carries the API key, the prompt or a response body; the
/// provider's own error message is kept (shortened) where it helps.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LlmError {
    /// The provider refused the key (HTTP 401 or 403).
    #[error("the provider refused the API key")]
    Unauthorized,
    /// Too many requests (HTTP 429, not a quota): worth retrying, after `retry_after` if given.
    #[error("rate limited: {message}")]
    RateLimited {
        retry_after: Option<Duration>,
        message: String,
    },
    /// The provider is overloaded (Anthropic 529 or `overloaded_error`, also mid-stream).
    #[error("overloaded: {0}")]
    Overloaded(String),
    /// A spend limit or quota is reached (Anthropic `billing_error` or "credit balance", OpenAI
    /// `insufficient_quota`): retrying will not help.
    #[error("spending limit reached: {0}")]
    SpendLimit(String),
    /// The request was refused (another 4xx), with the provider's message; also a client that
    /// cannot be set up (an unusable base URL or key).
    #[error("request rejected: {0}")]
    Rejected(String),
    /// A 5xx, a connection failure, a timeout or a stream that was cut off.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A 2xx whose body or stream could not be read.
    #[error("unreadable answer: {0}")]
    Malformed(String),
}

impl LlmError {
    /// Whether trying again later may succeed: rate limits, overload and outages.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::RateLimited { .. } | Self::Overloaded(_) | Self::Unavailable(_)
        )
    }

    /// A short name of the kind of failure, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Unauthorized => "unauthorized",
            Self::RateLimited { .. } => "rate_limited",
            Self::Overloaded(_) => "overloaded",
            Self::SpendLimit(_) => "spend_limit",
            Self::Rejected(_) => "rejected",
            Self::Unavailable(_) => "unavailable",
            Self::Malformed(_) => "malformed",
        }
    }

    /// The copilot's view of the failure.
    pub fn into_ai(self) -> AiError {
        match self {
            Self::Unauthorized => AiError::Unauthorized,
            Self::RateLimited { message, .. } => AiError::Busy(format!("rate limited: {message}")),
            Self::Overloaded(message) => AiError::Busy(format!("overloaded: {message}")),
            Self::SpendLimit(message) => AiError::SpendLimit(message),
            Self::Rejected(message) => AiError::Rejected(message),
            Self::Unavailable(message) => AiError::Unavailable(message),
            Self::Malformed(message) => AiError::Unreadable(message),
        }
    }
}

impl From<LlmError> for AiError {
    fn from(error: LlmError) -> Self {
        error.into_ai()
    }
}

/// A model provider.
#[async_trait::async_trait]
pub trait Llm: Send + Sync + std::fmt::Debug {
    /// `anthropic` or `openai`.
    fn provider(&self) -> &'static str;

    /// One call to `model`, read to the end. Not retried: see [`chat_with_retries`].
    async fn chat(&self, model: &str, request: &ChatRequest) -> Result<ChatResponse, LlmError>;
}

/// How [`chat_with_retries`] retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Calls in all, the first included (at least one is made).
    pub max_attempts: usize,
    /// The first back-off delay; each next one doubles, plus up to as much again of jitter.
    pub base_delay: Duration,
    /// The longest wait between two attempts, `retry-after` included.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The exponential back-off with jitter between attempts.
    fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::new()
            .with_factor(2.0)
            .with_min_delay(self.base_delay)
            .with_max_delay(self.max_delay.max(self.base_delay))
            .with_jitter()
            .with_max_times(self.max_attempts.saturating_sub(1))
    }

    /// How long to wait after `error`, given the back-off's next delay (`None`: no retry left).
    fn wait(&self, error: &LlmError, backoff: Option<Duration>) -> Option<Duration> {
        let backoff = backoff?;
        let wait = match error {
            LlmError::RateLimited {
                retry_after: Some(retry_after),
                ..
            } => *retry_after,
            _ => backoff,
        };
        Some(wait.min(self.max_delay))
    }
}

/// Calls `llm` until it answers, a failure is not worth retrying, or `policy.max_attempts` calls
/// were made. A rate limit waits for the provider's `retry-after` (capped at `max_delay`) when it
/// gave one; otherwise, and after overload or an outage, the wait backs off exponentially with
/// jitter. Spend limits, refused keys, rejected requests and unreadable answers are returned at
/// once. Each retry is logged with its reason and wait, never with the prompt, key or answer.
pub async fn chat_with_retries(
    llm: &dyn Llm,
    model: &str,
    request: &ChatRequest,
    policy: &RetryPolicy,
) -> Result<ChatResponse, LlmError> {
    let mut attempt = 1usize;
    (|| llm.chat(model, request))
        .retry(policy.backoff())
        .sleep(tokio::time::sleep)
        .when(LlmError::is_retryable)
        .adjust(|error, backoff| policy.wait(error, backoff))
        .notify(|error, wait| {
            tracing::warn!(
                provider = llm.provider(),
                model,
                attempt,
                max_attempts = policy.max_attempts,
                reason = error.kind(),
                wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                "model call failed; retrying"
            );
            attempt += 1;
        })
        .await
}

/// The HTTP plumbing both provider clients share: endpoints, one POST, capped bodies, error text
/// that is short and carries no secret.
pub(crate) mod transport {
    use super::{ChatResponse, LlmError};
    use futures::{Stream, TryStreamExt};
    use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
    use hyper::body::{Bytes, Incoming};
    use hyper::header::{CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER, USER_AGENT};
    use hyper::{Request, Response, Uri};
    use std::time::Duration;

    /// The most an answer (a whole stream included) may weigh.
    pub(crate) const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;
    /// The most of an error body that is read.
    pub(crate) const MAX_ERROR_BYTES: usize = 64 * 1024;
    /// The longest provider message kept in an error.
    const MAX_MESSAGE_CHARS: usize = 300;

    /// Where requests go, and how to name it in messages.
    #[derive(Debug, Clone)]
    pub(crate) struct Endpoint {
        pub(crate) uri: Uri,
        /// Host and port, for messages (never the path or query).
        pub(crate) host: String,
    }

    /// `{base_url}{path}` (with `?{query}` when given): an `http` or `https` URL.
    pub(crate) fn endpoint(
        provider: &str,
        base_url: &str,
        path: &str,
        query: Option<&str>,
    ) -> Result<Endpoint, LlmError> {
        let base = base_url.trim().trim_end_matches('/');
        let mut text = format!("{base}{path}");
        if let Some(query) = query.map(|q| q.trim().trim_start_matches('?'))
            && !query.is_empty()
        {
            text.push('?');
            text.push_str(query);
        }
        let unusable = || {
            LlmError::Rejected(format!(
                "the base URL of {provider} is not an http(s) URL: `{}`",
                short(base, 120)
            ))
        };
        let usable = |url: &url::Url| {
            matches!(url.scheme(), "http" | "https")
                && url.host_str().is_some_and(|h| !h.is_empty())
        };
        if !url::Url::parse(base).is_ok_and(|url| usable(&url)) {
            return Err(unusable());
        }
        let url = url::Url::parse(&text).map_err(|_| unusable())?;
        if !usable(&url) {
            return Err(unusable());
        }
        let host = match (url.host_str(), url.port()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_owned(),
            _ => return Err(unusable()),
        };
        let uri = url.as_str().parse::<Uri>().map_err(|_| unusable())?;
        Ok(Endpoint { uri, host })
    }

    /// A header value holding a secret: marked sensitive so that it is never printed.
    pub(crate) fn secret_header(provider: &str, value: &str) -> Result<HeaderValue, LlmError> {
        let mut header = HeaderValue::from_str(value.trim()).map_err(|_| {
            LlmError::Rejected(format!(
                "the {provider} API key contains characters a header cannot carry"
            ))
        })?;
        header.set_sensitive(true);
        Ok(header)
    }

    /// Sends one JSON POST; only transport failures are errors here.
    pub(crate) async fn post(
        client: &rf_net::HyperClient,
        provider: &str,
        endpoint: &Endpoint,
        headers: &HeaderMap,
        body: Vec<u8>,
    ) -> Result<Response<Incoming>, LlmError> {
        let mut request = Request::post(endpoint.uri.clone())
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| LlmError::Rejected(format!("could not build the request: {e}")))?;
        let map = request.headers_mut();
        map.clone_from(headers);
        map.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        map.insert(USER_AGENT, rf_net::user_agent());
        client.request(request).await.map_err(|e| {
            let what = if e.is_connect() {
                "could not connect to"
            } else {
                "lost the connection to"
            };
            LlmError::Unavailable(format!(
                "{what} {provider} at {}: {}",
                endpoint.host,
                short(&rf_net::root_cause(&e), 200)
            ))
        })
    }

    /// What a body failing to arrive means: too big is unreadable, anything else an outage.
    fn body_error(error: &(dyn std::error::Error + Send + Sync + 'static)) -> LlmError {
        if error.is::<LengthLimitError>() {
            LlmError::Malformed(format!(
                "the answer is larger than {} MiB",
                MAX_ANSWER_BYTES / (1024 * 1024)
            ))
        } else {
            LlmError::Unavailable(format!(
                "the answer was cut off: {}",
                short(&rf_net::root_cause(error), 200)
            ))
        }
    }

    /// The body as a stream of chunks, at most [`MAX_ANSWER_BYTES`] in all.
    pub(crate) fn data_stream(body: Incoming) -> impl Stream<Item = Result<Bytes, LlmError>> {
        Limited::new(body, MAX_ANSWER_BYTES)
            .into_data_stream()
            .map_err(|e| body_error(e.as_ref()))
    }

    /// The whole body, at most `limit` bytes.
    pub(crate) async fn read_all(body: Incoming, limit: usize) -> Result<Bytes, LlmError> {
        Limited::new(body, limit)
            .collect()
            .await
            .map(http_body_util::Collected::to_bytes)
            .map_err(|e| body_error(e.as_ref()))
    }

    /// How a 2xx body is framed, by its content type.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) enum Framing {
        EventStream,
        Json,
        /// Another or no content type: the body is read whole and sniffed.
        Unknown,
    }

    pub(crate) fn framing(headers: &HeaderMap) -> Framing {
        let content_type = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase();
        if content_type.starts_with("text/event-stream") {
            Framing::EventStream
        } else if content_type.starts_with("application/json") {
            Framing::Json
        } else {
            Framing::Unknown
        }
    }

    /// Whether a body read whole looks like server-sent events rather than JSON.
    pub(crate) fn looks_like_event_stream(body: &[u8]) -> bool {
        let text = String::from_utf8_lossy(&body[..body.len().min(64)]);
        let text = text.trim_start_matches('\u{feff}').trim_start();
        text.starts_with("event:") || text.starts_with("data:") || text.starts_with(':')
    }

    /// The wait a rate limit asks for: `retry-after-ms`, else `retry-after` in seconds (an HTTP
    /// date is ignored).
    /// Logs a call's outcome: tokens, or why it failed (never the prompt, key or body).
    pub(crate) fn log_call(provider: &str, model: &str, result: &Result<ChatResponse, LlmError>) {
        match result {
            Ok(response) => tracing::debug!(
                provider,
                model,
                input_tokens = response.usage.input_tokens,
                output_tokens = response.usage.output_tokens,
                cached_tokens = response.usage.cached_tokens,
                "model call"
            ),
            Err(error) => {
                tracing::debug!(provider, model, reason = error.kind(), "model call failed")
            }
        }
    }

    pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
        let number = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|v| v.is_finite() && *v >= 0.0)
        };
        if let Some(ms) = number("retry-after-ms") {
            return Duration::try_from_secs_f64(ms / 1000.0).ok();
        }
        number(RETRY_AFTER.as_str()).and_then(|s| Duration::try_from_secs_f64(s).ok())
    }

    /// `text` trimmed and cut to `max` characters.
    pub(crate) fn short(text: &str, max: usize) -> String {
        let text = text.trim();
        match text.char_indices().nth(max) {
            Some((end, _)) => format!("{}…", &text[..end]),
            None => text.to_owned(),
        }
    }

    /// A provider's message, shortened.
    pub(crate) fn message(text: &str) -> String {
        short(text, MAX_MESSAGE_CHARS)
    }

    /// What an error body says when it is not the provider's JSON: its text, shortened, or a
    /// note that it was an HTML page or empty.
    pub(crate) fn describe_body(status: u16, body: &[u8]) -> String {
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        if text.is_empty() {
            format!("HTTP {status} with an empty body")
        } else if text.starts_with('<') {
            format!("HTTP {status} with an HTML page (a proxy or gateway?)")
        } else {
            format!("HTTP {status}: {}", short(text, 200))
        }
    }

    /// `1 s`, `2.5 s`.
    pub(crate) fn seconds(duration: Duration) -> String {
        let secs = duration.as_secs_f64();
        if secs.fract() == 0.0 {
            format!("{secs:.0} s")
        } else {
            format!("{secs:.1} s")
        }
    }

    /// The error with every occurrence of `secret` in its message replaced: a provider that
    /// echoes the key back must not put it in our logs.
    pub(crate) fn scrub(error: LlmError, secret: &str) -> LlmError {
        let secret = secret.trim();
        if secret.len() < 4 {
            return error;
        }
        let clean = |message: String| {
            if message.contains(secret) {
                message.replace(secret, "[key]")
            } else {
                message
            }
        };
        match error {
            LlmError::Unauthorized => LlmError::Unauthorized,
            LlmError::RateLimited {
                retry_after,
                message,
            } => LlmError::RateLimited {
                retry_after,
                message: clean(message),
            },
            LlmError::Overloaded(m) => LlmError::Overloaded(clean(m)),
            LlmError::SpendLimit(m) => LlmError::SpendLimit(clean(m)),
            LlmError::Rejected(m) => LlmError::Rejected(clean(m)),
            LlmError::Unavailable(m) => LlmError::Unavailable(clean(m)),
            LlmError::Malformed(m) => LlmError::Malformed(clean(m)),
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn endpoints_join_base_path_and_query() {
            let e = endpoint(
                "OpenAI",
                "https://x.openai.azure.com/openai/deployments/d/",
                "/chat/completions",
                Some("?api-version=2024-10-21"),
            )
            .unwrap();
            assert_eq!(
                e.uri.to_string(),
                "https://x.openai.azure.com/openai/deployments/d/chat/completions?api-version=2024-10-21"
            );
            assert_eq!(e.host, "x.openai.azure.com");
            let e = endpoint("Anthropic", "http://127.0.0.1:8080", "/v1/messages", None).unwrap();
            assert_eq!(e.host, "127.0.0.1:8080");
            for bad in ["", "api.anthropic.com", "ftp://x", "http://"] {
                assert!(
                    matches!(
                        endpoint("Anthropic", bad, "/v1/messages", None),
                        Err(LlmError::Rejected(_))
                    ),
                    "{bad}"
                );
            }
        }

        #[test]
        fn retry_after_reads_seconds_and_milliseconds() {
            let mut headers = HeaderMap::new();
            assert_eq!(retry_after(&headers), None);
            headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
            assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
            headers.insert(
                RETRY_AFTER,
                HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
            );
            assert_eq!(retry_after(&headers), None);
            headers.insert("retry-after-ms", HeaderValue::from_static("1500"));
            assert_eq!(retry_after(&headers), Some(Duration::from_millis(1500)));
        }

        #[test]
        fn messages_are_short_and_scrubbed() {
            assert_eq!(short("  abcdef ", 3), "abc…");
            assert_eq!(short("é🙂x", 2), "é🙂…");
            assert!(describe_body(502, b"<html><body>Bad gateway</body></html>").contains("HTML"));
            assert_eq!(describe_body(500, b"  "), "HTTP 500 with an empty body");
            let error = scrub(
                LlmError::Rejected("Incorrect API key provided: sk-secret-123".to_owned()),
                "sk-secret-123",
            );
            assert_eq!(
                error,
                LlmError::Rejected("Incorrect API key provided: [key]".to_owned())
            );
        }

        #[test]
        fn event_streams_are_told_from_json() {
            assert!(looks_like_event_stream(b"event: message_start\ndata: {}"));
            assert!(looks_like_event_stream(b"\n\ndata: {}"));
            assert!(!looks_like_event_stream(b"{\"id\": 1}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use std::sync::Mutex;
    use std::time::Instant;

    /// Answers from a script, counting calls.
    #[derive(Debug)]
    struct Scripted {
        replies: Mutex<VecDeque<Result<ChatResponse, LlmError>>>,
        calls: Mutex<usize>,
    }

    impl Scripted {
        fn new(replies: Vec<Result<ChatResponse, LlmError>>) -> Self {
            Self {
                replies: Mutex::new(replies.into()),
                calls: Mutex::new(0),
            }
        }

        fn calls(&self) -> usize {
            *self.calls.lock().unwrap()
        }
    }

    #[async_trait::async_trait]
    impl Llm for Scripted {
        fn provider(&self) -> &'static str {
            "scripted"
        }

        async fn chat(&self, _: &str, _: &ChatRequest) -> Result<ChatResponse, LlmError> {
            *self.calls.lock().unwrap() += 1;
            self.replies
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or_else(|| Err(LlmError::Unavailable("script ended".to_owned())))
        }
    }

    fn request() -> ChatRequest {
        ChatRequest {
            system: "system".to_owned(),
            context: None,
            messages: vec![ChatMessage {
                role: Role::User,
                content: "hello".to_owned(),
            }],
            schema: None,
            max_tokens: 100,
        }
    }

    fn answer() -> ChatResponse {
        ChatResponse {
            text: "hi".to_owned(),
            ..ChatResponse::default()
        }
    }

    fn quick() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(200),
        }
    }

    #[tokio::test]
    async fn transient_failures_are_retried_until_an_answer() {
        let llm = Scripted::new(vec![
            Err(LlmError::Overloaded("Overloaded".to_owned())),
            Err(LlmError::Unavailable("HTTP 502".to_owned())),
            Err(LlmError::RateLimited {
                retry_after: None,
                message: "slow down".to_owned(),
            }),
            Ok(answer()),
        ]);
        let response = chat_with_retries(&llm, "m", &request(), &quick())
            .await
            .unwrap();
        assert_eq!(response.text, "hi");
        assert_eq!(llm.calls(), 4);
    }

    #[test]
    fn the_retrying_call_can_run_on_any_thread() {
        fn send<T: Send>(_: &T) {}
        let llm = Scripted::new(Vec::new());
        let request = request();
        let policy = quick();
        let call = chat_with_retries(&llm, "m", &request, &policy);
        send(&call);
    }

    #[tokio::test]
    async fn attempts_are_bounded() {
        let llm = Scripted::new(Vec::new());
        let error = chat_with_retries(&llm, "m", &request(), &quick())
            .await
            .unwrap_err();
        assert!(matches!(error, LlmError::Unavailable(_)), "{error:?}");
        assert_eq!(llm.calls(), 4);

        let once = RetryPolicy {
            max_attempts: 1,
            ..quick()
        };
        let llm = Scripted::new(Vec::new());
        chat_with_retries(&llm, "m", &request(), &once)
            .await
            .unwrap_err();
        assert_eq!(llm.calls(), 1);
    }

    #[tokio::test]
    async fn final_failures_are_not_retried() {
        for error in [
            LlmError::Unauthorized,
            LlmError::SpendLimit("credit balance too low".to_owned()),
            LlmError::Rejected("bad request".to_owned()),
            LlmError::Malformed("not JSON".to_owned()),
        ] {
            let llm = Scripted::new(vec![Err(error.clone()), Ok(answer())]);
            let got = chat_with_retries(&llm, "m", &request(), &quick())
                .await
                .unwrap_err();
            assert_eq!(got, error);
            assert_eq!(llm.calls(), 1, "{error:?} is not retried");
        }
    }

    #[tokio::test]
    async fn retry_after_is_honoured_and_capped() {
        let llm = Scripted::new(vec![
            Err(LlmError::RateLimited {
                retry_after: Some(Duration::from_millis(150)),
                message: "slow down".to_owned(),
            }),
            Ok(answer()),
        ]);
        let started = Instant::now();
        chat_with_retries(&llm, "m", &request(), &quick())
            .await
            .unwrap();
        assert!(started.elapsed() >= Duration::from_millis(150));

        let policy = quick();
        let error = LlmError::RateLimited {
            retry_after: Some(Duration::from_secs(3_600)),
            message: String::new(),
        };
        assert_eq!(
            policy.wait(&error, Some(Duration::from_millis(5))),
            Some(policy.max_delay)
        );
        assert_eq!(policy.wait(&error, None), None, "no retry left");
    }

    #[test]
    fn the_backoff_grows_with_jitter_within_the_cap() {
        use backon::BackoffBuilder;
        let policy = RetryPolicy {
            max_attempts: 6,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1_000),
        };
        let delays: Vec<Duration> = policy.backoff().build().collect();
        assert_eq!(delays.len(), 5);
        for (i, delay) in delays.iter().enumerate() {
            let floor = Duration::from_millis(100 * 2u64.pow(u32::try_from(i).unwrap()))
                .min(policy.max_delay);
            assert!(*delay >= floor && *delay <= floor * 2, "{i}: {delay:?}");
            let wait = policy
                .wait(&LlmError::Overloaded(String::new()), Some(*delay))
                .unwrap();
            assert!(wait <= policy.max_delay);
        }
        // Two runs differ: the jitter is random.
        let again: Vec<Duration> = policy.backoff().build().collect();
        assert_ne!(delays, again);
    }

    #[test]
    fn errors_map_to_the_copilots_errors() {
        assert_eq!(LlmError::Unauthorized.into_ai(), AiError::Unauthorized);
        assert!(matches!(
            LlmError::Overloaded("x".into()).into_ai(),
            AiError::Busy(_)
        ));
        assert!(matches!(
            LlmError::RateLimited {
                retry_after: None,
                message: "x".into()
            }
            .into_ai(),
            AiError::Busy(_)
        ));
        assert_eq!(
            LlmError::SpendLimit("x".into()).into_ai(),
            AiError::SpendLimit("x".into())
        );
        assert_eq!(
            LlmError::Rejected("x".into()).into_ai(),
            AiError::Rejected("x".into())
        );
        assert_eq!(
            LlmError::Unavailable("x".into()).into_ai(),
            AiError::Unavailable("x".into())
        );
        assert_eq!(
            LlmError::Malformed("x".into()).into_ai(),
            AiError::Unreadable("x".into())
        );
    }
}
