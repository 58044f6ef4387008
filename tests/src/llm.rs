//! Local model providers: a fake Anthropic Messages API and a fake OpenAI-compatible server that
//! speak the real wire formats (server-sent events shaped like the fixtures in
//! `bot/ai/fixtures/llm/`, error bodies, `retry-after`), check the key as the real services do,
//! answer from a script (then a default reply), and record every request.
//!
//! ```text
//! let fake = FakeAnthropic::start("sk-ant-test").await;
//! fake.push(Reply::anthropic_rate_limited(1));
//! fake.push(Reply::Text(r#"{"message": "hi"}"#.to_owned()));
//! let mut config = AnthropicConfig::new("sk-ant-test");
//! config.base_url = fake.url();
//! // … call the client …
//! assert_eq!(fake.requests().len(), 2);
//! assert_eq!(fake.models(), ["claude-sonnet-4-5", "claude-sonnet-4-5"]);
//! ```

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Anthropic's 429 body, as recorded.
pub const ANTHROPIC_RATE_LIMIT: &str =
    include_str!("../../bot/ai/fixtures/llm/anthropic_error_rate_limit.json");
/// Anthropic's 529 body, as recorded.
pub const ANTHROPIC_OVERLOADED: &str =
    include_str!("../../bot/ai/fixtures/llm/anthropic_error_overloaded.json");
/// The message of the 400 a [`FakeOpenAi`] answers to `json_schema` when told to refuse it.
pub const JSON_SCHEMA_UNSUPPORTED: &str =
    "response_format json_schema is not supported by this model";
/// How many dimensions [`embedding`] vectors have.
pub const EMBEDDING_DIMENSIONS: usize = 64;

/// What the fake answers to one model call.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// The model's text: as server-sent events when the request asked for `stream: true`, as one
    /// JSON answer otherwise.
    Text(String),
    /// An HTTP status with a body (JSON or not) and an optional `retry-after` in seconds.
    Status {
        status: u16,
        retry_after: Option<u64>,
        body: String,
    },
    /// A stream that starts, sends a few deltas, then an error: Anthropic's `event: error` with
    /// the overloaded body, OpenAI's `data: {"error": {… "server_error"}}`.
    StreamError,
    /// The reply after a delay (before anything is sent).
    Slow(Duration, Box<Reply>),
    /// A 200 that cannot be read: a stream event whose JSON is cut short, or a truncated body.
    Garbage,
}

impl Reply {
    /// `status` with a JSON `body`.
    pub fn status(status: u16, body: Value) -> Self {
        Self::Status {
            status,
            retry_after: None,
            body: body.to_string(),
        }
    }

    /// `reply` after `delay`.
    pub fn slow(delay: Duration, reply: Reply) -> Self {
        Self::Slow(delay, Box::new(reply))
    }

    /// Anthropic's recorded 429 with `retry-after: {seconds}`.
    pub fn anthropic_rate_limited(seconds: u64) -> Self {
        Self::Status {
            status: 429,
            retry_after: Some(seconds),
            body: ANTHROPIC_RATE_LIMIT.to_owned(),
        }
    }

    /// Anthropic's recorded 529 `overloaded_error`.
    pub fn anthropic_overloaded() -> Self {
        Self::Status {
            status: 529,
            retry_after: None,
            body: ANTHROPIC_OVERLOADED.to_owned(),
        }
    }

    /// Anthropic's 402 `billing_error`.
    pub fn anthropic_billing() -> Self {
        Self::status(
            402,
            anthropic_error(
                "billing_error",
                "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits.",
            ),
        )
    }

    /// OpenAI's 429 rate limit with `retry-after: {seconds}`.
    pub fn openai_rate_limited(seconds: u64) -> Self {
        Self::Status {
            status: 429,
            retry_after: Some(seconds),
            body: openai_error(
                "Rate limit reached for gpt-4o in organization org-test on requests per min (RPM): Limit 500, Used 500, Requested 1. Please try again in 1s.",
                "requests",
                Some("rate_limit_exceeded"),
            )
            .to_string(),
        }
    }

    /// OpenAI's 429 `insufficient_quota`.
    pub fn openai_insufficient_quota() -> Self {
        Self::status(
            429,
            openai_error(
                "You exceeded your current quota, please check your plan and billing details. For more information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors.",
                "insufficient_quota",
                Some("insufficient_quota"),
            ),
        )
    }
}

/// The token counts the fakes report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FakeUsage {
    /// Uncached input tokens (OpenAI's `prompt_tokens` is this plus `cached`).
    pub input: u64,
    pub output: u64,
    /// Input tokens read from the cache.
    pub cached: u64,
    /// Input tokens written to the cache (Anthropic only).
    pub cache_write: u64,
}

impl Default for FakeUsage {
    fn default() -> Self {
        Self {
            input: 1_200,
            output: 180,
            cached: 2_400,
            cache_write: 0,
        }
    }
}

/// One request a fake received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    /// Path and query.
    pub path: String,
    pub headers: HeaderMap,
    /// The body as sent.
    pub raw: String,
    /// The body as JSON (`Null` when it was not JSON).
    pub body: Value,
    /// The body's `model`.
    pub model: Option<String>,
    /// The status the fake answered.
    pub status: u16,
}

impl RecordedRequest {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }
}

#[derive(Debug)]
struct Inner {
    key: String,
    replies: VecDeque<Reply>,
    default: Reply,
    usage: FakeUsage,
    requests: Vec<RecordedRequest>,
    /// OpenAI: answer 400 to `response_format: json_schema`.
    reject_json_schema: bool,
    /// OpenAI: the key comes in `api-key` (Azure) rather than `Authorization: Bearer`.
    api_key_header: bool,
    /// OpenAI: ignore `stream` and answer one `chat.completion` JSON body (llama.cpp, Ollama).
    plain_json: bool,
    next_id: u64,
}

/// What both fakes share: the script, the log and the listener.
#[derive(Debug, Clone)]
struct Core {
    base: String,
    inner: Arc<Mutex<Inner>>,
}

impl Core {
    async fn start<F, Fut>(key: &str, handler: F) -> Self
    where
        F: Fn(Core, Method, Uri, HeaderMap, Bytes) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Response> + Send + 'static,
    {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind port 0");
        let address = listener.local_addr().expect("local address");
        let core = Self {
            base: format!("http://{address}"),
            inner: Arc::new(Mutex::new(Inner {
                key: key.to_owned(),
                replies: VecDeque::new(),
                default: Reply::Text("OK".to_owned()),
                usage: FakeUsage::default(),
                requests: Vec::new(),
                reject_json_schema: false,
                api_key_header: false,
                plain_json: false,
                next_id: 0,
            })),
        };
        let app = Router::new()
            .fallback(
                move |State(core): State<Core>,
                      method: Method,
                      uri: Uri,
                      headers: HeaderMap,
                      body: Bytes| {
                    let handler = handler.clone();
                    async move { handler(core, method, uri, headers, body).await }
                },
            )
            .with_state(core.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        core
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn next_reply(&self) -> Reply {
        let mut inner = self.lock();
        match inner.replies.pop_front() {
            Some(reply) => reply,
            None => inner.default.clone(),
        }
    }

    fn next_id(&self) -> u64 {
        let mut inner = self.lock();
        inner.next_id += 1;
        inner.next_id
    }

    fn record(&self, method: &Method, uri: &Uri, headers: &HeaderMap, body: &Bytes, status: u16) {
        let raw = String::from_utf8_lossy(body).into_owned();
        let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let model = json["model"].as_str().map(str::to_owned);
        self.lock().requests.push(RecordedRequest {
            method: method.to_string(),
            path: uri
                .path_and_query()
                .map_or_else(|| uri.path().to_owned(), |p| p.as_str().to_owned()),
            headers: headers.clone(),
            raw,
            body: json,
            model,
            status,
        });
    }
}

/// The methods both fakes have.
macro_rules! common {
    () => {
        /// Answers the next model call with `reply` (replies queue up in order).
        pub fn push(&self, reply: Reply) {
            self.core.lock().replies.push_back(reply);
        }

        /// What model calls get once the queue is empty (at first `Reply::Text("OK")`).
        pub fn set_default(&self, reply: Reply) {
            self.core.lock().default = reply;
        }

        /// The token counts reported from now on.
        pub fn set_usage(&self, usage: FakeUsage) {
            self.core.lock().usage = usage;
        }

        /// How many scripted replies are still queued.
        pub fn pending(&self) -> usize {
            self.core.lock().replies.len()
        }

        /// Every request so far, refused ones included.
        pub fn requests(&self) -> Vec<RecordedRequest> {
            self.core.lock().requests.clone()
        }

        /// Every request body so far, as sent.
        pub fn bodies(&self) -> Vec<String> {
            self.core
                .lock()
                .requests
                .iter()
                .map(|r| r.raw.clone())
                .collect()
        }

        /// Every request body so far, one after the other: for "this never reached the model"
        /// assertions.
        pub fn bodies_text(&self) -> String {
            self.bodies().join("\n")
        }

        /// The `model` of each request so far, in order.
        pub fn models(&self) -> Vec<String> {
            self.core
                .lock()
                .requests
                .iter()
                .filter_map(|r| r.model.clone())
                .collect()
        }

        /// Forgets the requests recorded so far.
        pub fn clear_requests(&self) {
            self.core.lock().requests.clear();
        }
    };
}

/// The body of an Anthropic error.
fn anthropic_error(kind: &str, message: &str) -> Value {
    json!({"type": "error", "error": {"type": kind, "message": message}})
}

/// The body of an OpenAI error.
fn openai_error(message: &str, kind: &str, code: Option<&str>) -> Value {
    json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
}

/// A JSON response.
fn json_response(status: u16, body: &Value) -> Response {
    raw_response(status, "application/json", body.to_string(), None)
}

fn raw_response(
    status: u16,
    content_type: &'static str,
    body: String,
    retry_after: Option<u64>,
) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static(content_type));
    if let Some(seconds) = retry_after {
        response
            .headers_mut()
            .insert("retry-after", HeaderValue::from(seconds));
    }
    response
}

/// A `Status` reply: JSON bodies as JSON, anything else as HTML.
fn status_response(status: u16, retry_after: Option<u64>, body: &str) -> Response {
    let content_type = if serde_json::from_str::<Value>(body).is_ok() {
        "application/json"
    } else {
        "text/html"
    };
    raw_response(status, content_type, body.to_owned(), retry_after)
}

/// Server-sent events, delivered in small chunks as a network would (splitting lines and
/// characters).
fn sse_response(events: String) -> Response {
    let chunks: Vec<Result<Bytes, Infallible>> = events
        .into_bytes()
        .chunks(37)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let mut response = Response::new(Body::from_stream(futures::stream::iter(chunks)));
    let headers = response.headers_mut();
    headers.insert(
        "content-type",
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    headers.insert("cache-control", HeaderValue::from_static("no-cache"));
    response
}

/// The text in pieces of about a dozen characters, as a model streams it.
fn pieces(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    chars.chunks(12).map(|c| c.iter().collect()).collect()
}

/// What status a reply ends in (for the log).
fn final_status(reply: &Reply) -> u16 {
    match reply {
        Reply::Status { status, .. } => *status,
        Reply::Slow(_, inner) => final_status(inner),
        _ => 200,
    }
}

/// A fake Anthropic Messages API (`POST /v1/messages`).
#[derive(Debug, Clone)]
pub struct FakeAnthropic {
    core: Core,
}

impl FakeAnthropic {
    /// Starts on a free local port, accepting `x-api-key: {key}` with an `anthropic-version`.
    pub async fn start(key: &str) -> Self {
        let core = Core::start(key, |core, method, uri, headers, body| async move {
            FakeAnthropic { core }
                .handle(method, uri, headers, body)
                .await
        })
        .await;
        Self { core }
    }

    /// The base URL to configure (`http://127.0.0.1:{port}`, no `/v1`).
    pub fn url(&self) -> String {
        self.core.base.clone()
    }

    common!();

    async fn handle(&self, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
        let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let refusal = if method != Method::POST || uri.path() != "/v1/messages" {
            Some((
                404,
                anthropic_error("not_found_error", &format!("Not found: {}", uri.path())),
            ))
        } else if !self.authorized(&headers) {
            Some((
                401,
                anthropic_error("authentication_error", "invalid x-api-key"),
            ))
        } else {
            ["model", "max_tokens", "messages"]
                .into_iter()
                .find(|f| json.get(*f).is_none())
                .map(|field| {
                    (
                        400,
                        anthropic_error(
                            "invalid_request_error",
                            &format!("{field}: Field required"),
                        ),
                    )
                })
        };
        if let Some((status, error)) = refusal {
            self.core.record(&method, &uri, &headers, &body, status);
            return json_response(status, &error);
        }
        let reply = self.core.next_reply();
        self.core
            .record(&method, &uri, &headers, &body, final_status(&reply));
        let stream = json["stream"] == json!(true);
        let model = json["model"].as_str().unwrap_or_default().to_owned();
        self.answer(reply, stream, &model).await
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        let key = self.core.lock().key.clone();
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        header("x-api-key") == Some(key.as_str()) && header("anthropic-version").is_some()
    }

    async fn answer(&self, reply: Reply, stream: bool, model: &str) -> Response {
        let usage = self.core.lock().usage;
        let id = format!("msg_fake{:06}", self.core.next_id());
        match reply {
            Reply::Text(text) if stream => sse_response(anthropic_stream(&id, model, &text, usage)),
            Reply::Text(text) => json_response(
                200,
                &json!({
                    "model": model, "id": id, "type": "message", "role": "assistant",
                    "content": [{"type": "text", "text": text}],
                    "stop_reason": "end_turn", "stop_sequence": null,
                    "usage": {
                        "input_tokens": usage.input,
                        "cache_creation_input_tokens": usage.cache_write,
                        "cache_read_input_tokens": usage.cached,
                        "output_tokens": usage.output,
                        "service_tier": "standard",
                    },
                }),
            ),
            Reply::Status {
                status,
                retry_after,
                body,
            } => status_response(status, retry_after, &body),
            Reply::StreamError if stream => {
                let mut events = anthropic_start(&id, model, usage);
                events.push_str(&delta("Let me look at the "));
                events.push_str(&delta("printer queue"));
                events.push_str(&format!(
                    "event: error\ndata: {}\n\n",
                    compact(ANTHROPIC_OVERLOADED)
                ));
                sse_response(events)
            }
            Reply::StreamError => status_response(529, None, ANTHROPIC_OVERLOADED),
            Reply::Garbage if stream => sse_response(format!(
                "event: message_start\ndata: {{\"type\":\"message_start\",\"message\":{{\"id\":\"{id}\",\"type\":\"mess\n\n"
            )),
            Reply::Garbage => raw_response(
                200,
                "application/json",
                format!("{{\"model\":\"{model}\",\"id\":\"{id}\",\"content\":[{{\"type\":\"te"),
                None,
            ),
            Reply::Slow(delay, inner) => {
                tokio::time::sleep(delay).await;
                Box::pin(self.answer(*inner, stream, model)).await
            }
        }
    }
}

/// A fixture body on one line (SSE data must not span lines).
fn compact(json: &str) -> String {
    serde_json::from_str::<Value>(json).map_or_else(|_| json.replace('\n', " "), |v| v.to_string())
}

fn event(name: &str, data: &Value) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

fn delta(text: &str) -> String {
    event(
        "content_block_delta",
        &json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}),
    )
}

/// `message_start`, `content_block_start` and a `ping`, as in the fixture.
fn anthropic_start(id: &str, model: &str, usage: FakeUsage) -> String {
    let mut events = event(
        "message_start",
        &json!({"type": "message_start", "message": {
            "id": id, "type": "message", "role": "assistant", "content": [], "model": model,
            "stop_reason": null, "stop_sequence": null,
            "usage": {
                "input_tokens": usage.input,
                "cache_creation_input_tokens": usage.cache_write,
                "cache_read_input_tokens": usage.cached,
                "output_tokens": 1,
            },
        }}),
    );
    events.push_str(&event(
        "content_block_start",
        &json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
    ));
    events.push_str("event: ping\ndata: {\"type\": \"ping\"}\n\n");
    events
}

/// A whole Messages stream for `text`, shaped like `anthropic_message_stream.sse`.
fn anthropic_stream(id: &str, model: &str, text: &str, usage: FakeUsage) -> String {
    let mut events = anthropic_start(id, model, usage);
    for piece in pieces(text) {
        events.push_str(&delta(&piece));
    }
    events.push_str(&event(
        "content_block_stop",
        &json!({"type": "content_block_stop", "index": 0}),
    ));
    events.push_str(&event(
        "message_delta",
        &json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": usage.output}}),
    ));
    events.push_str(&event("message_stop", &json!({"type": "message_stop"})));
    events
}

/// A fake OpenAI-compatible server: `POST …/chat/completions` and `POST …/embeddings` under
/// `/v1`.
#[derive(Debug, Clone)]
pub struct FakeOpenAi {
    core: Core,
}

impl FakeOpenAi {
    /// Starts on a free local port, accepting `Authorization: Bearer {key}`; with an empty `key`,
    /// any request (as a local Ollama or llama.cpp server).
    pub async fn start(key: &str) -> Self {
        let core = Core::start(key, |core, method, uri, headers, body| async move {
            FakeOpenAi { core }.handle(method, uri, headers, body).await
        })
        .await;
        Self { core }
    }

    /// The base URL to configure (`http://127.0.0.1:{port}/v1`).
    pub fn url(&self) -> String {
        format!("{}/v1", self.core.base)
    }

    common!();

    /// While on, requests with `response_format: json_schema` get a 400 whose message says it is
    /// not supported ([`JSON_SCHEMA_UNSUPPORTED`]); they use up no scripted reply.
    pub fn reject_json_schema(&self, reject: bool) {
        self.core.lock().reject_json_schema = reject;
    }

    /// While on, the key must come as `api-key: {key}` (Azure OpenAI) instead of a bearer token.
    pub fn require_api_key_header(&self, on: bool) {
        self.core.lock().api_key_header = on;
    }

    /// While on, `stream` is ignored and every answer is one `chat.completion` JSON body.
    pub fn plain_json(&self, on: bool) {
        self.core.lock().plain_json = on;
    }

    async fn handle(&self, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
        let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let path = uri.path().to_owned();
        let chat = path.ends_with("/chat/completions");
        let embeddings = path.ends_with("/embeddings");
        let (reject_json_schema, plain_json) = {
            let inner = self.core.lock();
            (inner.reject_json_schema, inner.plain_json)
        };
        let refusal = if method != Method::POST || !(chat || embeddings) {
            Some((
                404,
                openai_error(
                    &format!(
                        "Unknown request URL: {method} {path}. Please check the URL for typos."
                    ),
                    "invalid_request_error",
                    Some("unknown_url"),
                ),
            ))
        } else if let Some(error) = self.auth_error(&headers) {
            Some((401, error))
        } else if json.get("model").is_none() {
            Some((
                400,
                openai_error(
                    "you must provide a model parameter",
                    "invalid_request_error",
                    None,
                ),
            ))
        } else if chat && json.get("messages").is_none() {
            Some((
                400,
                openai_error(
                    "Missing required parameter: 'messages'.",
                    "invalid_request_error",
                    Some("missing_required_parameter"),
                ),
            ))
        } else if chat && reject_json_schema && json["response_format"]["type"] == "json_schema" {
            Some((
                400,
                json!({"error": {
                    "message": JSON_SCHEMA_UNSUPPORTED, "type": "invalid_request_error",
                    "param": "response_format", "code": null,
                }}),
            ))
        } else {
            None
        };
        if let Some((status, error)) = refusal {
            self.core.record(&method, &uri, &headers, &body, status);
            return json_response(status, &error);
        }
        let model = json["model"].as_str().unwrap_or_default().to_owned();
        if embeddings {
            self.core.record(&method, &uri, &headers, &body, 200);
            return json_response(200, &embedding_list(&json["input"], &model));
        }
        let reply = self.core.next_reply();
        self.core
            .record(&method, &uri, &headers, &body, final_status(&reply));
        let stream = json["stream"] == json!(true) && !plain_json;
        let include_usage = json["stream_options"]["include_usage"] == json!(true);
        self.answer(reply, stream, include_usage, &model).await
    }

    /// The 401 body when the key is missing or wrong.
    fn auth_error(&self, headers: &HeaderMap) -> Option<Value> {
        let (key, api_key_header) = {
            let inner = self.core.lock();
            (inner.key.clone(), inner.api_key_header)
        };
        if key.is_empty() {
            return None;
        }
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let offered = if api_key_header {
            header("api-key")
        } else {
            header("authorization").and_then(|v| v.strip_prefix("Bearer "))
        };
        match offered {
            Some(offered) if offered == key => None,
            Some(offered) => Some(openai_error(
                &format!(
                    "Incorrect API key provided: {}. You can find your API key at https://platform.openai.com/account/api-keys.",
                    masked(offered)
                ),
                "invalid_request_error",
                Some("invalid_api_key"),
            )),
            None => Some(openai_error(
                "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                "invalid_request_error",
                None,
            )),
        }
    }

    async fn answer(
        &self,
        reply: Reply,
        stream: bool,
        include_usage: bool,
        model: &str,
    ) -> Response {
        let usage = self.core.lock().usage;
        let id = format!("chatcmpl-fake{:06}", self.core.next_id());
        match reply {
            Reply::Text(text) if stream => {
                sse_response(openai_stream(&id, model, &text, usage, include_usage))
            }
            Reply::Text(text) => json_response(
                200,
                &json!({
                    "id": id, "object": "chat.completion", "created": 1_727_346_142, "model": model,
                    "choices": [{
                        "index": 0,
                        "message": {"role": "assistant", "content": text, "refusal": null},
                        "logprobs": null, "finish_reason": "stop",
                    }],
                    "usage": openai_usage(usage),
                    "system_fingerprint": "fp_fake",
                }),
            ),
            Reply::Status {
                status,
                retry_after,
                body,
            } => status_response(status, retry_after, &body),
            Reply::StreamError if stream => {
                let mut events = String::new();
                for content in ["Let me look at the ", "printer queue"] {
                    events.push_str(&chunk(&id, model, &json!({"content": content}), None));
                }
                events.push_str(&format!(
                    "data: {}\n\n",
                    openai_error(
                        "The server had an error while processing your request. Sorry about that!",
                        "server_error",
                        None
                    )
                ));
                sse_response(events)
            }
            Reply::StreamError => json_response(
                500,
                &openai_error(
                    "The server had an error while processing your request. Sorry about that!",
                    "server_error",
                    None,
                ),
            ),
            Reply::Garbage if stream => sse_response(format!(
                "data: {{\"id\":\"{id}\",\"object\":\"chat.completion.chunk\",\"choi\n\n"
            )),
            Reply::Garbage => raw_response(
                200,
                "application/json",
                format!("{{\"id\":\"{id}\",\"object\":\"chat.completion\",\"choices\":[{{\"ind"),
                None,
            ),
            Reply::Slow(delay, inner) => {
                tokio::time::sleep(delay).await;
                Box::pin(self.answer(*inner, stream, include_usage, model)).await
            }
        }
    }
}

/// `sk-ab****************wxyz`, as OpenAI shows a wrong key.
fn masked(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() <= 8 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 7))
}

fn openai_usage(usage: FakeUsage) -> Value {
    json!({
        "prompt_tokens": usage.input + usage.cached,
        "completion_tokens": usage.output,
        "total_tokens": usage.input + usage.cached + usage.output,
        "prompt_tokens_details": {"cached_tokens": usage.cached, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    })
}

/// One `chat.completion.chunk` event, shaped like `openai_chat_completion_stream.sse`.
fn chunk(id: &str, model: &str, delta: &Value, finish: Option<&str>) -> String {
    let data = json!({
        "id": id, "object": "chat.completion.chunk", "created": 1_727_346_168, "model": model,
        "system_fingerprint": "fp_fake",
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
    });
    format!("data: {data}\n\n")
}

/// A whole chat-completions stream for `text`.
fn openai_stream(
    id: &str,
    model: &str,
    text: &str,
    usage: FakeUsage,
    include_usage: bool,
) -> String {
    let mut events = chunk(
        id,
        model,
        &json!({"role": "assistant", "content": "", "refusal": null}),
        None,
    );
    for piece in pieces(text) {
        events.push_str(&chunk(id, model, &json!({"content": piece}), None));
    }
    events.push_str(&chunk(id, model, &json!({}), Some("stop")));
    if include_usage {
        let data = json!({
            "id": id, "object": "chat.completion.chunk", "created": 1_727_346_168, "model": model,
            "system_fingerprint": "fp_fake", "choices": [], "usage": openai_usage(usage),
        });
        events.push_str(&format!("data: {data}\n\n"));
    }
    events.push_str("data: [DONE]\n\n");
    events
}

/// The fake's embedding of `text`: a hashed bag of lower-cased words in
/// [`EMBEDDING_DIMENSIONS`] dimensions, of unit length (all zeros for a text without words).
/// Texts sharing words are close.
pub fn embedding(text: &str) -> Vec<f32> {
    let mut vector = vec![0f32; EMBEDDING_DIMENSIONS];
    for word in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let digest = Sha256::digest(word.to_lowercase().as_bytes());
        let slot = usize::from(digest[0]) % EMBEDDING_DIMENSIONS;
        let sign = if digest[1] & 1 == 0 { 1.0 } else { -1.0 };
        vector[slot] += sign;
    }
    let norm = vector.iter().map(|v| v * v).sum::<f32>().sqrt();
    if norm > 0.0 {
        for v in &mut vector {
            *v /= norm;
        }
    }
    vector
}

/// An `/embeddings` answer for `input` (a string or a list), listed in reverse order (clients must
/// order by `index`).
fn embedding_list(input: &Value, model: &str) -> Value {
    let texts: Vec<String> = match input {
        Value::String(text) => vec![text.clone()],
        Value::Array(items) => items
            .iter()
            .map(|v| v.as_str().unwrap_or_default().to_owned())
            .collect(),
        _ => Vec::new(),
    };
    let tokens: usize = texts.iter().map(|t| t.split_whitespace().count()).sum();
    let data: Vec<Value> = texts
        .iter()
        .enumerate()
        .rev()
        .map(|(index, text)| json!({"object": "embedding", "index": index, "embedding": embedding(text)}))
        .collect();
    json!({
        "object": "list", "data": data, "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    })
}
