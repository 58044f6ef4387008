//! The Anthropic Messages API (`POST /v1/messages`), streamed.
//!
//! The system prompt and the stable context (flow, retrieved items) are marked for prompt caching
//! (`cache_control: ephemeral`): the context is the first block of the first user message, so the
//! cached prefix is system + context and only the conversation after it is new on each turn.
//!
//! Structured output uses the generally available form
//! `"output_config": {"format": {"type": "json_schema", "schema": …}}` (the beta form was a
//! top-level `output_format` with the `structured-outputs-2025-11-13` beta header; set
//! [`AnthropicConfig::beta`] if a deployment still needs a beta header).
//!
//! The answer is read as server-sent events: `message_start` (model, input and cache tokens),
//! `content_block_delta` (`text_delta` appended; other deltas ignored), `message_delta` (stop
//! reason, output tokens), `message_stop`, `ping`, and `error` mid-stream. Unknown events are
//! ignored. A server that answers with a plain JSON message instead is read too.

use crate::llm::transport::{self, Endpoint, Framing};
use crate::llm::{ChatRequest, ChatResponse, Llm, LlmError, Role, Usage};
use eventsource_stream::{EventStreamError, Eventsource};
use futures::{Stream, StreamExt};
use hyper::body::Bytes;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::Duration;

/// Where the Anthropic API is.
pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";
/// The `anthropic-version` sent.
pub const DEFAULT_VERSION: &str = "2023-06-01";
/// The default limit of one whole call.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

const PROVIDER: &str = "Anthropic";

/// How to reach Anthropic. The `Debug` output hides the key.
#[derive(Clone)]
pub struct AnthropicConfig {
    /// Without `/v1`: requests go to `{base_url}/v1/messages`.
    pub base_url: String,
    pub api_key: String,
    /// The `anthropic-version` header.
    pub version: String,
    /// The limit of one whole call, connection to the end of the stream.
    pub timeout: Duration,
    /// An `anthropic-beta` header, when set.
    pub beta: Option<String>,
}

impl AnthropicConfig {
    /// The public API with `api_key`, the default version and a 60 s limit.
    pub fn new(api_key: impl Into<String>) -> Self {
        Self {
            base_url: DEFAULT_BASE_URL.to_owned(),
            api_key: api_key.into(),
            version: DEFAULT_VERSION.to_owned(),
            timeout: DEFAULT_TIMEOUT,
            beta: None,
        }
    }
}

impl std::fmt::Debug for AnthropicConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnthropicConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &"[hidden]")
            .field("version", &self.version)
            .field("timeout", &self.timeout)
            .field("beta", &self.beta)
            .finish()
    }
}

/// An Anthropic Messages client. Cheap to clone; clones share connections.
#[derive(Clone)]
pub struct Anthropic {
    client: rf_net::HyperClient,
    endpoint: Endpoint,
    /// `x-api-key` (marked sensitive), `anthropic-version`, `anthropic-beta`.
    headers: HeaderMap,
    /// Kept only to scrub it from provider messages.
    api_key: String,
    timeout: Duration,
}

impl std::fmt::Debug for Anthropic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Anthropic")
            .field("host", &self.endpoint.host)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Anthropic {
    /// A client for `config`; fails when the base URL, key or headers are unusable.
    pub fn new(config: AnthropicConfig) -> Result<Self, LlmError> {
        let endpoint = transport::endpoint(PROVIDER, &config.base_url, "/v1/messages", None)?;
        if config.api_key.trim().is_empty() {
            return Err(LlmError::Rejected("no Anthropic API key is set".to_owned()));
        }
        let mut headers = HeaderMap::new();
        headers.insert(
            HeaderName::from_static("x-api-key"),
            transport::secret_header(PROVIDER, &config.api_key)?,
        );
        let header = |name: &str, value: &str| {
            HeaderValue::from_str(value.trim())
                .map_err(|_| LlmError::Rejected(format!("the {name} header value is not valid")))
        };
        headers.insert(
            HeaderName::from_static("anthropic-version"),
            header("anthropic-version", &config.version)?,
        );
        if let Some(beta) = config.beta.as_deref().filter(|b| !b.trim().is_empty()) {
            headers.insert(
                HeaderName::from_static("anthropic-beta"),
                header("anthropic-beta", beta)?,
            );
        }
        let timeout = if config.timeout.is_zero() {
            DEFAULT_TIMEOUT
        } else {
            config.timeout
        };
        let client = rf_net::https_client(timeout).map_err(|e| {
            LlmError::Rejected(format!("the HTTPS client could not be set up: {e}"))
        })?;
        Ok(Self {
            client,
            endpoint,
            headers,
            api_key: config.api_key.trim().to_owned(),
            timeout,
        })
    }

    /// The JSON body of a streamed Messages call for `request`.
    pub fn request_body(model: &str, request: &ChatRequest) -> Value {
        let cached = json!({"type": "ephemeral"});
        let mut context = request
            .context
            .as_deref()
            .filter(|c| !c.trim().is_empty())
            .map(|text| json!({"type": "text", "text": text, "cache_control": cached}));
        let mut messages = Vec::with_capacity(request.messages.len() + 1);
        for message in &request.messages {
            let content = match (message.role, context.take()) {
                (Role::User, Some(context)) => {
                    let mut blocks = vec![context];
                    if !message.content.is_empty() {
                        blocks.push(json!({"type": "text", "text": message.content}));
                    }
                    Value::Array(blocks)
                }
                (_, taken) => {
                    context = taken;
                    json!(message.content)
                }
            };
            messages.push(json!({"role": message.role.as_str(), "content": content}));
        }
        if let Some(context) = context {
            // No user message to carry it: the context is the (first) user message.
            messages.insert(0, json!({"role": "user", "content": [context]}));
        }
        let mut body = json!({
            "model": model,
            "max_tokens": request.max_tokens,
            "stream": true,
            "messages": messages,
        });
        if !request.system.trim().is_empty() {
            body["system"] =
                json!([{"type": "text", "text": request.system, "cache_control": cached}]);
        }
        if let Some(schema) = &request.schema {
            body["output_config"] =
                json!({"format": {"type": "json_schema", "schema": schema.schema}});
        }
        body
    }

    async fn exchange(&self, body: Vec<u8>) -> Result<ChatResponse, LlmError> {
        let response =
            transport::post(&self.client, PROVIDER, &self.endpoint, &self.headers, body).await?;
        let status = response.status();
        let retry_after = transport::retry_after(response.headers());
        let framing = transport::framing(response.headers());
        if !status.is_success() {
            let body = transport::read_all(response.into_body(), transport::MAX_ERROR_BYTES)
                .await
                .unwrap_or_default();
            return Err(error_for_status(status.as_u16(), retry_after, &body));
        }
        if framing == Framing::EventStream {
            return read_stream(transport::data_stream(response.into_body())).await;
        }
        let body = transport::read_all(response.into_body(), transport::MAX_ANSWER_BYTES).await?;
        if transport::looks_like_event_stream(&body) {
            read_stream(futures::stream::iter([Ok(body)])).await
        } else {
            parse_message(&body)
        }
    }
}

#[async_trait::async_trait]
impl Llm for Anthropic {
    fn provider(&self) -> &'static str {
        "anthropic"
    }

    async fn chat(&self, model: &str, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let body = serde_json::to_vec(&Self::request_body(model, request))
            .map_err(|e| LlmError::Rejected(format!("could not encode the request: {e}")))?;
        let result = match tokio::time::timeout(self.timeout, self.exchange(body)).await {
            Ok(result) => result,
            Err(_) => Err(LlmError::Unavailable(format!(
                "{PROVIDER} did not answer within {}",
                transport::seconds(self.timeout)
            ))),
        }
        .map_err(|e| transport::scrub(e, &self.api_key));
        transport::log_call("anthropic", model, &result);
        result
    }
}

/// `{"type":"error","error":{"type":…,"message":…}}`.
#[derive(Debug, Deserialize)]
struct ErrorEnvelope {
    error: ErrorBody,
}

#[derive(Debug, Default, Deserialize)]
struct ErrorBody {
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    message: String,
}

/// What an answer with a non-2xx `status` means.
pub(crate) fn error_for_status(
    status: u16,
    retry_after: Option<Duration>,
    body: &[u8],
) -> LlmError {
    let (kind, message) = match serde_json::from_slice::<ErrorEnvelope>(body) {
        Ok(envelope) if !envelope.error.message.trim().is_empty() => (
            envelope.error.kind,
            transport::message(&envelope.error.message),
        ),
        Ok(envelope) => (envelope.error.kind, transport::describe_body(status, body)),
        Err(_) => (String::new(), transport::describe_body(status, body)),
    };
    classify(Some(status), &kind, message, retry_after)
}

/// Sorts an Anthropic error by HTTP status (absent mid-stream) and error type.
fn classify(
    status: Option<u16>,
    kind: &str,
    message: String,
    retry_after: Option<Duration>,
) -> LlmError {
    let lowered = message.to_lowercase();
    if matches!(status, Some(401 | 403))
        || matches!(kind, "authentication_error" | "permission_error")
    {
        LlmError::Unauthorized
    } else if status == Some(402) || kind == "billing_error" || lowered.contains("credit balance") {
        LlmError::SpendLimit(message)
    } else if status == Some(429) || kind == "rate_limit_error" {
        LlmError::RateLimited {
            retry_after,
            message,
        }
    } else if status == Some(529) || kind == "overloaded_error" {
        LlmError::Overloaded(message)
    } else {
        match status {
            Some(400..=499) => LlmError::Rejected(message),
            Some(_) => LlmError::Unavailable(message),
            None => match kind {
                "invalid_request_error" | "request_too_large" | "not_found_error" => {
                    LlmError::Rejected(message)
                }
                _ => LlmError::Unavailable(message),
            },
        }
    }
}

/// Token counts as Anthropic reports them; absent counts are `None`.
#[derive(Debug, Default, Deserialize)]
struct WireUsage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
}

impl WireUsage {
    /// Applies the counts given (later events carry cumulative totals).
    fn apply(&self, usage: &mut Usage) {
        if let Some(n) = self.input_tokens {
            usage.input_tokens = n;
        }
        if let Some(n) = self.output_tokens {
            usage.output_tokens = n;
        }
        if let Some(n) = self.cache_read_input_tokens {
            usage.cached_tokens = n;
        }
        if let Some(n) = self.cache_creation_input_tokens {
            usage.cache_write_tokens = n;
        }
    }
}

#[derive(Debug, Default, Deserialize)]
struct StartedMessage {
    #[serde(default)]
    model: String,
    #[serde(default)]
    usage: WireUsage,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Delta {
    TextDelta {
        text: String,
    },
    #[serde(other)]
    Other,
}

#[derive(Debug, Default, Deserialize)]
struct MessageDeltaBody {
    #[serde(default)]
    stop_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StreamEvent {
    MessageStart {
        #[serde(default)]
        message: StartedMessage,
    },
    ContentBlockDelta {
        delta: Delta,
    },
    MessageDelta {
        #[serde(default)]
        delta: MessageDeltaBody,
        #[serde(default)]
        usage: WireUsage,
    },
    MessageStop,
    Error {
        #[serde(default)]
        error: ErrorBody,
    },
    /// `ping`, `content_block_start`, `content_block_stop` and whatever comes next.
    #[serde(other)]
    Other,
}

/// A failure of the event stream itself.
pub(crate) fn stream_error(error: EventStreamError<LlmError>) -> LlmError {
    match error {
        EventStreamError::Transport(error) => error,
        EventStreamError::Utf8(_) => {
            LlmError::Malformed("the answer stream is not UTF-8 text".to_owned())
        }
        EventStreamError::Parser(_) => {
            LlmError::Malformed("the answer is not a valid event stream".to_owned())
        }
    }
}

/// Reads a Messages event stream to `message_stop`.
pub(crate) async fn read_stream<S>(stream: S) -> Result<ChatResponse, LlmError>
where
    S: Stream<Item = Result<Bytes, LlmError>>,
{
    let mut events = std::pin::pin!(stream.eventsource());
    let mut answer = ChatResponse::default();
    while let Some(event) = events.next().await {
        let event = event.map_err(stream_error)?;
        let parsed: StreamEvent = serde_json::from_str(&event.data).map_err(|e| {
            LlmError::Malformed(format!("an unreadable `{}` event: {e}", event.event))
        })?;
        match parsed {
            StreamEvent::MessageStart { message } => {
                answer.model = message.model;
                message.usage.apply(&mut answer.usage);
            }
            StreamEvent::ContentBlockDelta {
                delta: Delta::TextDelta { text },
            } => answer.text.push_str(&text),
            StreamEvent::MessageDelta { delta, usage } => {
                if delta.stop_reason.is_some() {
                    answer.stop_reason = delta.stop_reason;
                }
                usage.apply(&mut answer.usage);
            }
            StreamEvent::MessageStop => return Ok(answer),
            StreamEvent::Error { error } => {
                let message = if error.message.trim().is_empty() {
                    format!("an error event mid-stream ({})", error.kind)
                } else {
                    transport::message(&error.message)
                };
                return Err(classify(None, &error.kind, message, None));
            }
            StreamEvent::ContentBlockDelta {
                delta: Delta::Other,
            }
            | StreamEvent::Other => {}
        }
    }
    Err(LlmError::Unavailable(
        "the answer stream was cut off before message_stop".to_owned(),
    ))
}

/// A whole (unstreamed) Messages answer: its text blocks joined.
#[derive(Debug, Deserialize)]
struct WholeMessage {
    #[serde(default)]
    model: String,
    content: Vec<ContentBlock>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: WireUsage,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ContentBlock {
    Text {
        text: String,
    },
    #[serde(other)]
    Other,
}

/// Reads an unstreamed Messages answer (or an error body that came with a 2xx).
pub(crate) fn parse_message(body: &[u8]) -> Result<ChatResponse, LlmError> {
    if let Ok(envelope) = serde_json::from_slice::<ErrorEnvelope>(body) {
        let message = transport::message(&envelope.error.message);
        return Err(classify(None, &envelope.error.kind, message, None));
    }
    let message: WholeMessage = serde_json::from_slice(body).map_err(|e| {
        LlmError::Malformed(if transport::describe_body(200, body).contains("HTML") {
            "an HTML page instead of a message".to_owned()
        } else {
            format!("not a Messages answer: {e}")
        })
    })?;
    let mut usage = Usage::default();
    message.usage.apply(&mut usage);
    let text = message
        .content
        .into_iter()
        .filter_map(|block| match block {
            ContentBlock::Text { text } => Some(text),
            ContentBlock::Other => None,
        })
        .collect();
    Ok(ChatResponse {
        text,
        model: message.model,
        usage,
        stop_reason: message.stop_reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::{ChatMessage, OutputSchema};

    const STREAM: &str = include_str!("../fixtures/llm/anthropic_message_stream.sse");
    const MESSAGE: &str = include_str!("../fixtures/llm/anthropic_message.json");
    const TOOL_USE: &str = include_str!("../fixtures/llm/anthropic_message_tool_use.json");
    const RATE_LIMIT: &str = include_str!("../fixtures/llm/anthropic_error_rate_limit.json");
    const OVERLOADED: &str = include_str!("../fixtures/llm/anthropic_error_overloaded.json");

    /// `text` in chunks of `size` bytes, as a network might deliver it.
    fn chunks(text: &str, size: usize) -> impl Stream<Item = Result<Bytes, LlmError>> + use<> {
        let pieces: Vec<Result<Bytes, LlmError>> = text
            .as_bytes()
            .chunks(size)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        futures::stream::iter(pieces)
    }

    fn read(text: &str, size: usize) -> Result<ChatResponse, LlmError> {
        futures::executor::block_on(read_stream(chunks(text, size)))
    }

    #[test]
    fn the_fixture_stream_is_read_exactly() {
        for size in [1, 7, 64, usize::MAX] {
            let answer = read(STREAM, size.min(STREAM.len())).unwrap();
            assert_eq!(
                answer,
                ChatResponse {
                    text: "Hello there!".to_owned(),
                    model: "claude-3-opus-latest".to_owned(),
                    usage: Usage {
                        input_tokens: 11,
                        output_tokens: 6,
                        cached_tokens: 0,
                        cache_write_tokens: 0,
                    },
                    stop_reason: Some("end_turn".to_owned()),
                },
                "chunks of {size}"
            );
        }
    }

    #[test]
    fn cache_tokens_are_read_from_message_start() {
        let stream = STREAM.replace(
            r#""usage":{"input_tokens":11,"output_tokens":1}"#,
            r#""usage":{"input_tokens":11,"cache_read_input_tokens":900,"cache_creation_input_tokens":40,"output_tokens":1}"#,
        );
        let answer = read(&stream, 50).unwrap();
        assert_eq!(answer.usage.cached_tokens, 900);
        assert_eq!(answer.usage.cache_write_tokens, 40);
        assert_eq!(answer.usage.input_tokens, 11);
    }

    #[test]
    fn a_stream_without_message_stop_was_cut_off() {
        let cut = STREAM
            .split("event: message_stop")
            .next()
            .unwrap_or_default();
        let error = read(cut, 64).unwrap_err();
        assert!(matches!(error, LlmError::Unavailable(_)), "{error:?}");
    }

    #[test]
    fn errors_mid_stream_are_sorted() {
        let start = STREAM
            .split("event: content_block_stop")
            .next()
            .unwrap_or_default();
        let overloaded = format!(
            "{start}event: error\ndata: {{\"type\":\"error\",\"error\":{{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}}}\n\n"
        );
        assert_eq!(
            read(&overloaded, 32).unwrap_err(),
            LlmError::Overloaded("Overloaded".to_owned())
        );
        let api = format!(
            "{start}event: error\ndata: {{\"type\":\"error\",\"error\":{{\"type\":\"api_error\",\"message\":\"Internal server error\"}}}}\n\n"
        );
        assert!(matches!(
            read(&api, 32).unwrap_err(),
            LlmError::Unavailable(_)
        ));
    }

    #[test]
    fn unknown_events_and_deltas_are_ignored() {
        let extra = STREAM.replace(
            "event: ping",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"hmm\"}}\n\nevent: brand_new\ndata: {\"type\":\"brand_new\",\"x\":1}\n\nevent: ping",
        );
        assert_eq!(read(&extra, 64).unwrap().text, "Hello there!");
    }

    #[test]
    fn garbage_in_a_stream_is_malformed() {
        let error = read(
            "event: message_start\ndata: {\"type\":\"message_start\",\"mess\n\n",
            8,
        )
        .unwrap_err();
        assert!(matches!(error, LlmError::Malformed(_)), "{error:?}");
    }

    #[test]
    fn whole_messages_are_read_too() {
        let answer = parse_message(MESSAGE.as_bytes()).unwrap();
        assert!(
            answer
                .text
                .starts_with("I apologize, but I'm getting an error")
        );
        assert_eq!(answer.model, "claude-haiku-4-5-20251001");
        assert_eq!(answer.usage.input_tokens, 760);
        assert_eq!(answer.usage.output_tokens, 63);
        assert_eq!(answer.stop_reason.as_deref(), Some("end_turn"));
        let tools = parse_message(TOOL_USE.as_bytes()).unwrap();
        assert_eq!(tools.text, "");
        assert_eq!(tools.stop_reason.as_deref(), Some("tool_use"));
        assert!(matches!(
            parse_message(b"<html>oops</html>"),
            Err(LlmError::Malformed(_))
        ));
    }

    #[test]
    fn error_bodies_are_sorted() {
        let limited = error_for_status(429, Some(Duration::from_secs(1)), RATE_LIMIT.as_bytes());
        let LlmError::RateLimited {
            retry_after,
            message,
        } = limited
        else {
            panic!("{limited:?}")
        };
        assert_eq!(retry_after, Some(Duration::from_secs(1)));
        assert!(message.starts_with("This request would exceed your organization's rate limit"));
        assert!(message.chars().count() <= 301);
        assert_eq!(
            error_for_status(529, None, OVERLOADED.as_bytes()),
            LlmError::Overloaded("Overloaded".to_owned())
        );
        let auth = br#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#;
        assert_eq!(error_for_status(401, None, auth), LlmError::Unauthorized);
        let billing =
            br#"{"type":"error","error":{"type":"billing_error","message":"Payment required"}}"#;
        assert!(matches!(
            error_for_status(402, None, billing),
            LlmError::SpendLimit(_)
        ));
        let credit = br#"{"type":"error","error":{"type":"invalid_request_error","message":"Your credit balance is too low to access the Anthropic API."}}"#;
        assert!(matches!(
            error_for_status(400, None, credit),
            LlmError::SpendLimit(_)
        ));
        let invalid = br#"{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: must be positive"}}"#;
        assert_eq!(
            error_for_status(400, None, invalid),
            LlmError::Rejected("max_tokens: must be positive".to_owned())
        );
        assert!(matches!(
            error_for_status(502, None, b"<html><h1>502 Bad Gateway</h1></html>"),
            LlmError::Unavailable(m) if m.contains("HTML")
        ));
        assert!(matches!(
            error_for_status(404, None, b"not found"),
            LlmError::Rejected(m) if m == "HTTP 404: not found"
        ));
    }

    fn request(context: Option<&str>) -> ChatRequest {
        ChatRequest {
            system: "You are a senior engineer.".to_owned(),
            context: context.map(str::to_owned),
            messages: vec![
                ChatMessage {
                    role: Role::User,
                    content: "The printer is offline.".to_owned(),
                },
                ChatMessage {
                    role: Role::Assistant,
                    content: "Is it one printer?".to_owned(),
                },
                ChatMessage {
                    role: Role::User,
                    content: "Yes.".to_owned(),
                },
            ],
            schema: Some(OutputSchema {
                name: "turn".to_owned(),
                schema: json!({"type": "object"}),
            }),
            max_tokens: 1_000,
        }
    }

    #[test]
    fn the_request_caches_system_and_context() {
        let body = Anthropic::request_body("claude-sonnet-4-5", &request(Some("Flow: printer")));
        assert_eq!(
            body,
            json!({
                "model": "claude-sonnet-4-5",
                "max_tokens": 1000,
                "stream": true,
                "system": [{"type": "text", "text": "You are a senior engineer.", "cache_control": {"type": "ephemeral"}}],
                "messages": [
                    {"role": "user", "content": [
                        {"type": "text", "text": "Flow: printer", "cache_control": {"type": "ephemeral"}},
                        {"type": "text", "text": "The printer is offline."}
                    ]},
                    {"role": "assistant", "content": "Is it one printer?"},
                    {"role": "user", "content": "Yes."}
                ],
                "output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}}
            })
        );
        let plain = Anthropic::request_body("m", &request(None));
        assert_eq!(plain["messages"][0]["content"], "The printer is offline.");
    }

    #[test]
    fn the_key_stays_out_of_debug_output() {
        let config = AnthropicConfig::new("sk-ant-very-secret");
        assert!(!format!("{config:?}").contains("very-secret"));
        let client = Anthropic::new(config).unwrap();
        assert!(!format!("{client:?}").contains("very-secret"));
        assert!(matches!(
            Anthropic::new(AnthropicConfig::new(" ")),
            Err(LlmError::Rejected(_))
        ));
        let mut bad = AnthropicConfig::new("sk-ant-very-secret");
        bad.base_url = "api.anthropic.com".to_owned();
        assert!(matches!(Anthropic::new(bad), Err(LlmError::Rejected(_))));
    }
}
