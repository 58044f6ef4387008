//! Any OpenAI-compatible chat-completions endpoint — OpenAI, Azure OpenAI, Ollama, vLLM,
//! llama.cpp — streamed, and its `/embeddings`.
//!
//! The system prompt and the stable context go in **one** leading system message
//! (`system + "\n\n" + context`): OpenAI caches the longest repeated prefix by itself, so a stable
//! system message is all caching needs, and many local servers' chat templates refuse a second
//! system message or one that is not first.
//!
//! Structured output asks for `response_format: {"type": "json_schema", …, "strict": true}`. A
//! server that answers 400 naming `response_format` or `json_schema` is asked again, once, with
//! `{"type": "json_object"}`, and the client remembers that for its later calls. In `json_object`
//! (and `none`) mode the schema is appended to the system message, since nothing else tells the
//! model the shape (and OpenAI requires the word "JSON" in the messages for `json_object`).
//!
//! The answer is read as server-sent events (`choices[0].delta.content` appended, the final
//! usage-only chunk, `data: [DONE]`); servers that ignore `stream` and answer with a plain
//! `chat.completion` JSON body are read too.

use crate::llm::transport::{self, Endpoint, Framing};
use crate::llm::{ChatRequest, ChatResponse, Llm, LlmError, Usage};
use eventsource_stream::Eventsource;
use futures::{Stream, StreamExt};
use hyper::body::Bytes;
use hyper::header::{AUTHORIZATION, HeaderMap, HeaderName};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// OpenAI's API.
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";
/// The default limit of one whole call.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

const PROVIDER: &str = "the OpenAI-compatible server";

/// How the key is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OpenAiAuth {
    /// `Authorization: Bearer <key>` (OpenAI, vLLM, llama.cpp, Ollama).
    #[default]
    Bearer,
    /// `api-key: <key>` (Azure OpenAI).
    ApiKeyHeader,
}

/// How structured output is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StructuredOutput {
    /// `response_format: json_schema` (strict), falling back to `json_object` once if refused.
    #[default]
    JsonSchema,
    /// `response_format: json_object`, the schema described in the system message.
    JsonObject,
    /// No `response_format`; the schema described in the system message.
    None,
}

/// How to reach an OpenAI-compatible server. The `Debug` output hides the key.
#[derive(Clone)]
pub struct OpenAiConfig {
    /// Up to the version, e.g. `https://api.openai.com/v1`, `http://localhost:11434/v1`, or an
    /// Azure deployment `https://x.openai.azure.com/openai/deployments/<name>`: requests go to
    /// `{base_url}/chat/completions` and `{base_url}/embeddings`.
    pub base_url: String,
    /// None for local servers that need no key.
    pub api_key: Option<String>,
    pub auth: OpenAiAuth,
    /// A query string added to every request, e.g. Azure's `api-version=2024-10-21`.
    pub query: Option<String>,
    /// The name of the output-token limit: `max_tokens` (empty means this) or
    /// `max_completion_tokens` (newer OpenAI models).
    pub max_tokens_field: String,
    pub structured: StructuredOutput,
    /// The limit of one whole call, connection to the end of the stream.
    pub timeout: Duration,
}

impl Default for OpenAiConfig {
    fn default() -> Self {
        Self {
            base_url: DEFAULT_BASE_URL.to_owned(),
            api_key: None,
            auth: OpenAiAuth::Bearer,
            query: None,
            max_tokens_field: "max_tokens".to_owned(),
            structured: StructuredOutput::JsonSchema,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

impl std::fmt::Debug for OpenAiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "[hidden]"))
            .field("auth", &self.auth)
            .field("query", &self.query)
            .field("max_tokens_field", &self.max_tokens_field)
            .field("structured", &self.structured)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// An OpenAI-compatible client.
pub struct OpenAi {
    client: rf_net::HyperClient,
    chat: Endpoint,
    embeddings: Endpoint,
    /// The key header (marked sensitive), when a key is set.
    headers: HeaderMap,
    /// Kept only to scrub it from provider messages.
    api_key: String,
    max_tokens_field: String,
    structured: StructuredOutput,
    timeout: Duration,
    /// Set once the server refused `json_schema`: later calls ask for `json_object`.
    json_object_only: AtomicBool,
}

impl std::fmt::Debug for OpenAi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAi")
            .field("host", &self.chat.host)
            .field("structured", &self.structured)
            .field(
                "json_object_only",
                &self.json_object_only.load(Ordering::Relaxed),
            )
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The `response_format` a call asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    JsonSchema,
    JsonObject,
    None,
}

impl OpenAi {
    /// A client for `config`; fails when the base URL or key is unusable.
    pub fn new(config: OpenAiConfig) -> Result<Self, LlmError> {
        let query = config.query.as_deref();
        let chat = transport::endpoint(PROVIDER, &config.base_url, "/chat/completions", query)?;
        let embeddings = transport::endpoint(PROVIDER, &config.base_url, "/embeddings", query)?;
        let api_key = config
            .api_key
            .as_deref()
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .unwrap_or_default()
            .to_owned();
        let mut headers = HeaderMap::new();
        if !api_key.is_empty() {
            match config.auth {
                OpenAiAuth::Bearer => headers.insert(
                    AUTHORIZATION,
                    transport::secret_header("OpenAI", &format!("Bearer {api_key}"))?,
                ),
                OpenAiAuth::ApiKeyHeader => headers.insert(
                    HeaderName::from_static("api-key"),
                    transport::secret_header("OpenAI", &api_key)?,
                ),
            };
        }
        let max_tokens_field = match config.max_tokens_field.trim() {
            "" => "max_tokens".to_owned(),
            field => field.to_owned(),
        };
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
            chat,
            embeddings,
            headers,
            api_key,
            max_tokens_field,
            structured: config.structured,
            timeout,
            json_object_only: AtomicBool::new(false),
        })
    }

    /// Whether the server refused `json_schema` and later calls ask for `json_object`.
    pub fn uses_json_object_fallback(&self) -> bool {
        self.json_object_only.load(Ordering::Relaxed)
    }

    /// The `response_format` to ask for first.
    fn format(&self, request: &ChatRequest) -> Format {
        if request.schema.is_none() {
            return Format::None;
        }
        match self.structured {
            StructuredOutput::JsonSchema if self.uses_json_object_fallback() => Format::JsonObject,
            StructuredOutput::JsonSchema => Format::JsonSchema,
            StructuredOutput::JsonObject => Format::JsonObject,
            StructuredOutput::None => Format::None,
        }
    }

    /// The JSON body of a streamed chat-completions call.
    fn request_body(&self, model: &str, request: &ChatRequest, format: Format) -> Value {
        let mut system = request.system.trim_end().to_owned();
        if let Some(context) = request.context.as_deref().filter(|c| !c.trim().is_empty()) {
            if !system.is_empty() {
                system.push_str("\n\n");
            }
            system.push_str(context);
        }
        if let Some(schema) = &request.schema
            && format != Format::JsonSchema
        {
            if !system.is_empty() {
                system.push_str("\n\n");
            }
            system.push_str("Answer with one JSON object that follows this JSON schema:\n");
            system.push_str(&schema.schema.to_string());
        }
        let mut messages = Vec::with_capacity(request.messages.len() + 1);
        if !system.is_empty() {
            messages.push(json!({"role": "system", "content": system}));
        }
        for message in &request.messages {
            messages.push(json!({"role": message.role.as_str(), "content": message.content}));
        }
        let mut body = json!({
            "model": model,
            "messages": messages,
            "stream": true,
            "stream_options": {"include_usage": true},
        });
        body[self.max_tokens_field.as_str()] = json!(request.max_tokens);
        match (format, &request.schema) {
            (Format::JsonSchema, Some(schema)) => {
                body["response_format"] = json!({
                    "type": "json_schema",
                    "json_schema": {
                        "name": schema_name(&schema.name),
                        "schema": schema.schema,
                        "strict": true,
                    },
                });
            }
            (Format::JsonObject, Some(_)) => {
                body["response_format"] = json!({"type": "json_object"});
            }
            _ => {}
        }
        body
    }

    /// One POST within the time limit, the answer read by `read`.
    async fn call<T, F, Fut>(
        &self,
        endpoint: &Endpoint,
        body: &Value,
        read: F,
    ) -> Result<T, LlmError>
    where
        F: FnOnce(hyper::Response<hyper::body::Incoming>) -> Fut,
        Fut: Future<Output = Result<T, LlmError>>,
    {
        let body = serde_json::to_vec(body)
            .map_err(|e| LlmError::Rejected(format!("could not encode the request: {e}")))?;
        let exchange = async {
            let response =
                transport::post(&self.client, PROVIDER, endpoint, &self.headers, body).await?;
            let status = response.status();
            if !status.is_success() {
                let retry_after = transport::retry_after(response.headers());
                let body = transport::read_all(response.into_body(), transport::MAX_ERROR_BYTES)
                    .await
                    .unwrap_or_default();
                return Err(error_for_status(status.as_u16(), retry_after, &body));
            }
            read(response).await
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(LlmError::Unavailable(format!(
                "{PROVIDER} at {} did not answer within {}",
                endpoint.host,
                transport::seconds(self.timeout)
            ))),
        }
        .map_err(|e| transport::scrub(e, &self.api_key))
    }

    async fn complete(
        &self,
        model: &str,
        request: &ChatRequest,
        format: Format,
    ) -> Result<ChatResponse, LlmError> {
        let body = self.request_body(model, request, format);
        self.call(&self.chat, &body, |response| async move {
            let framing = transport::framing(response.headers());
            if framing == Framing::EventStream {
                return read_stream(transport::data_stream(response.into_body())).await;
            }
            let body =
                transport::read_all(response.into_body(), transport::MAX_ANSWER_BYTES).await?;
            if transport::looks_like_event_stream(&body) {
                read_stream(futures::stream::iter([Ok(body)])).await
            } else {
                parse_completion(&body)
            }
        })
        .await
    }

    /// Embeds `inputs` with `model` (`POST {base}/embeddings`): one vector per input, in order.
    /// One call, not retried.
    pub async fn embed(&self, model: &str, inputs: &[String]) -> Result<Vec<Vec<f32>>, LlmError> {
        if inputs.is_empty() {
            return Ok(Vec::new());
        }
        let body = json!({"model": model, "input": inputs});
        let vectors = self
            .call(&self.embeddings, &body, |response| async move {
                let body =
                    transport::read_all(response.into_body(), transport::MAX_ANSWER_BYTES).await?;
                parse_embeddings(&body, inputs.len())
            })
            .await;
        if let Err(error) = &vectors {
            tracing::debug!(
                provider = "openai",
                model,
                reason = error.kind(),
                "embedding call failed"
            );
        }
        vectors
    }
}

#[async_trait::async_trait]
impl Llm for OpenAi {
    fn provider(&self) -> &'static str {
        "openai"
    }

    async fn chat(&self, model: &str, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let format = self.format(request);
        let mut result = self.complete(model, request, format).await;
        if format == Format::JsonSchema
            && let Err(LlmError::Rejected(message)) = &result
            && refuses_json_schema(message)
        {
            tracing::info!(
                provider = "openai",
                model,
                "the server does not support json_schema output: using json_object from now on"
            );
            self.json_object_only.store(true, Ordering::Relaxed);
            result = self.complete(model, request, Format::JsonObject).await;
        }
        transport::log_call("openai", model, &result);
        result
    }
}

/// A `json_schema.name`: letters, digits, `_` and `-`, at most 64.
fn schema_name(name: &str) -> String {
    let name: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if name.is_empty() {
        "answer".to_owned()
    } else {
        name
    }
}

/// Whether a 400's message says structured output with a schema is not supported.
fn refuses_json_schema(message: &str) -> bool {
    let lowered = message.to_lowercase();
    lowered.contains("response_format") || lowered.contains("json_schema")
}

/// `{"error": {"message", "type", "code"}}`, or `{"error": "text"}` (Ollama), or
/// `{"message": …}` / `{"detail": …}` (other servers).
#[derive(Debug, Default)]
struct ErrorInfo {
    message: String,
    kind: String,
    code: String,
}

fn error_info(body: &Value) -> Option<ErrorInfo> {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    match body.get("error") {
        Some(Value::Object(error)) => Some(ErrorInfo {
            message: error.get("message").map(text).unwrap_or_default(),
            kind: error.get("type").map(text).unwrap_or_default(),
            code: error.get("code").map(text).unwrap_or_default(),
        }),
        Some(Value::String(message)) => Some(ErrorInfo {
            message: message.clone(),
            ..ErrorInfo::default()
        }),
        _ => ["message", "detail"]
            .iter()
            .find_map(|key| body.get(*key).map(text))
            .filter(|m| !m.is_empty())
            .map(|message| ErrorInfo {
                message,
                ..ErrorInfo::default()
            }),
    }
}

/// What an answer with a non-2xx `status` means.
pub(crate) fn error_for_status(
    status: u16,
    retry_after: Option<Duration>,
    body: &[u8],
) -> LlmError {
    let info = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| error_info(&v));
    let message = match &info {
        Some(info) if !info.message.trim().is_empty() => transport::message(&info.message),
        _ => transport::describe_body(status, body),
    };
    let info = info.unwrap_or_default();
    let quota = info.code == "insufficient_quota" || info.kind == "insufficient_quota";
    match status {
        401 => LlmError::Unauthorized,
        402 => LlmError::SpendLimit(message),
        429 if quota => LlmError::SpendLimit(message),
        429 => LlmError::RateLimited {
            retry_after,
            message,
        },
        400..=499 => LlmError::Rejected(message),
        _ => LlmError::Unavailable(message),
    }
}

/// An error object inside a 2xx answer (a stream chunk or a JSON body).
fn error_in_answer(info: ErrorInfo) -> LlmError {
    let message = if info.message.trim().is_empty() {
        "an error in the answer".to_owned()
    } else {
        transport::message(&info.message)
    };
    if info.code == "insufficient_quota" || info.kind == "insufficient_quota" {
        LlmError::SpendLimit(message)
    } else if info.code == "rate_limit_exceeded" || info.kind == "rate_limit_error" {
        LlmError::RateLimited {
            retry_after: None,
            message,
        }
    } else if info.kind == "invalid_request_error" {
        LlmError::Rejected(message)
    } else {
        LlmError::Unavailable(message)
    }
}

/// Token counts as OpenAI reports them.
#[derive(Debug, Default, Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetails>,
}

#[derive(Debug, Default, Deserialize)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

impl WireUsage {
    fn usage(&self) -> Usage {
        let cached = self
            .prompt_tokens_details
            .as_ref()
            .and_then(|d| d.cached_tokens)
            .unwrap_or(0);
        Usage {
            input_tokens: self.prompt_tokens.saturating_sub(cached),
            output_tokens: self.completion_tokens,
            cached_tokens: cached,
            cache_write_tokens: 0,
        }
    }
}

#[derive(Debug, Deserialize)]
struct Chunk {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    choices: Vec<ChunkChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Debug, Deserialize)]
struct ChunkChoice {
    #[serde(default)]
    index: u32,
    #[serde(default)]
    delta: Option<ChunkDelta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ChunkDelta {
    #[serde(default)]
    content: Option<String>,
}

/// Reads a chat-completions event stream to `[DONE]` (or to its end, after a finish reason).
pub(crate) async fn read_stream<S>(stream: S) -> Result<ChatResponse, LlmError>
where
    S: Stream<Item = Result<Bytes, LlmError>>,
{
    let mut events = std::pin::pin!(stream.eventsource());
    let mut answer = ChatResponse::default();
    while let Some(event) = events.next().await {
        let event = event.map_err(crate::anthropic::stream_error)?;
        let data = event.data.trim();
        if data == "[DONE]" {
            return Ok(answer);
        }
        let value: Value = serde_json::from_str(data)
            .map_err(|e| LlmError::Malformed(format!("an unreadable stream chunk: {e}")))?;
        if let Some(info) = error_info(&value).filter(|_| value.get("choices").is_none()) {
            return Err(error_in_answer(info));
        }
        let chunk: Chunk = serde_json::from_value(value)
            .map_err(|e| LlmError::Malformed(format!("an unexpected stream chunk: {e}")))?;
        if let Some(model) = chunk.model.filter(|m| !m.is_empty()) {
            answer.model = model;
        }
        if let Some(usage) = &chunk.usage {
            answer.usage = usage.usage();
        }
        for choice in chunk.choices.into_iter().filter(|c| c.index == 0) {
            if let Some(text) = choice.delta.and_then(|d| d.content) {
                answer.text.push_str(&text);
            }
            if choice.finish_reason.is_some() {
                answer.stop_reason = choice.finish_reason;
            }
        }
    }
    if answer.stop_reason.is_some() {
        // Some servers close the stream without `[DONE]`: a finish reason says it was complete.
        Ok(answer)
    } else {
        Err(LlmError::Unavailable(
            "the answer stream was cut off before [DONE]".to_owned(),
        ))
    }
}

#[derive(Debug, Deserialize)]
struct Completion {
    #[serde(default)]
    model: String,
    choices: Vec<CompletionChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Debug, Deserialize)]
struct CompletionChoice {
    #[serde(default)]
    index: u32,
    message: CompletionMessage,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct CompletionMessage {
    #[serde(default)]
    content: Option<String>,
}

/// Reads a whole `chat.completion` body (a server that did not stream).
pub(crate) fn parse_completion(body: &[u8]) -> Result<ChatResponse, LlmError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        LlmError::Malformed(if transport::describe_body(200, body).contains("HTML") {
            "an HTML page instead of a completion".to_owned()
        } else {
            format!("not a chat completion: {e}")
        })
    })?;
    if let Some(info) = error_info(&value).filter(|_| value.get("choices").is_none()) {
        return Err(error_in_answer(info));
    }
    let completion: Completion = serde_json::from_value(value)
        .map_err(|e| LlmError::Malformed(format!("not a chat completion: {e}")))?;
    let choice = completion
        .choices
        .into_iter()
        .find(|c| c.index == 0)
        .ok_or_else(|| LlmError::Malformed("a chat completion without a choice".to_owned()))?;
    Ok(ChatResponse {
        text: choice.message.content.unwrap_or_default(),
        model: completion.model,
        usage: completion
            .usage
            .as_ref()
            .map(WireUsage::usage)
            .unwrap_or_default(),
        stop_reason: choice.finish_reason,
    })
}

#[derive(Debug, Deserialize)]
struct EmbeddingList {
    data: Vec<EmbeddingItem>,
}

#[derive(Debug, Deserialize)]
struct EmbeddingItem {
    #[serde(default)]
    index: usize,
    embedding: Vec<f32>,
}

/// Reads an `/embeddings` answer: `expected` vectors, ordered by their `index`.
pub(crate) fn parse_embeddings(body: &[u8], expected: usize) -> Result<Vec<Vec<f32>>, LlmError> {
    if let Some(info) = serde_json::from_slice::<Value>(body)
        .ok()
        .filter(|v| v.get("data").is_none())
        .and_then(|v| error_info(&v))
    {
        return Err(error_in_answer(info));
    }
    let mut list: EmbeddingList = serde_json::from_slice(body)
        .map_err(|e| LlmError::Malformed(format!("not an embedding list: {e}")))?;
    list.data.sort_by_key(|item| item.index);
    let in_order = list
        .data
        .iter()
        .enumerate()
        .all(|(i, item)| item.index == i);
    if list.data.len() != expected || !in_order {
        return Err(LlmError::Malformed(format!(
            "{} embeddings for {expected} inputs",
            list.data.len()
        )));
    }
    Ok(list.data.into_iter().map(|item| item.embedding).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::{ChatMessage, OutputSchema, Role};

    const STREAM: &str = include_str!("../fixtures/llm/openai_chat_completion_stream.sse");
    const COMPLETION: &str = include_str!("../fixtures/llm/openai_chat_completion.json");
    const EXPECTED: &str = "I'm unable to provide real-time weather updates. To get the current \
        weather in San Francisco, I recommend checking a reliable weather website or a weather app.";

    fn read(text: &str, size: usize) -> Result<ChatResponse, LlmError> {
        let pieces: Vec<Result<Bytes, LlmError>> = text
            .as_bytes()
            .chunks(size)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        futures::executor::block_on(read_stream(futures::stream::iter(pieces)))
    }

    #[test]
    fn the_fixture_stream_is_read_exactly() {
        for size in [1, 13, 200, STREAM.len()] {
            let answer = read(STREAM, size).unwrap();
            assert_eq!(
                answer,
                ChatResponse {
                    text: EXPECTED.to_owned(),
                    model: "gpt-4o-2024-08-06".to_owned(),
                    usage: Usage {
                        input_tokens: 14,
                        output_tokens: 30,
                        cached_tokens: 0,
                        cache_write_tokens: 0,
                    },
                    stop_reason: Some("stop".to_owned()),
                },
                "chunks of {size}"
            );
        }
    }

    #[test]
    fn cached_tokens_are_split_from_the_prompt() {
        let stream = STREAM.replace(
            r#""usage":{"prompt_tokens":14,"#,
            r#""usage":{"prompt_tokens_details":{"cached_tokens":10},"prompt_tokens":14,"#,
        );
        let usage = read(&stream, 100).unwrap().usage;
        assert_eq!((usage.input_tokens, usage.cached_tokens), (4, 10));
    }

    #[test]
    fn cut_streams_and_errors_mid_stream() {
        let head: String = STREAM.lines().take(6).map(|l| format!("{l}\n")).collect();
        assert!(matches!(read(&head, 50), Err(LlmError::Unavailable(_))));
        // No [DONE], but a finish reason: complete.
        let no_done = STREAM.replace("data: [DONE]", "");
        assert_eq!(read(&no_done, 50).unwrap().text, EXPECTED);
        let error = format!(
            "{head}\ndata: {{\"error\":{{\"message\":\"The server had an error\",\"type\":\"server_error\"}}}}\n\n"
        );
        assert_eq!(
            read(&error, 50).unwrap_err(),
            LlmError::Unavailable("The server had an error".to_owned())
        );
        assert!(matches!(
            read("data: {\"id\": \"chatcmpl\", \"choi\n\n", 5),
            Err(LlmError::Malformed(_))
        ));
    }

    #[test]
    fn whole_completions_are_read_too() {
        let answer = parse_completion(COMPLETION.as_bytes()).unwrap();
        assert!(
            answer
                .text
                .starts_with("I'm unable to provide real-time weather updates.")
        );
        assert_eq!(answer.model, "gpt-4o-2024-08-06");
        assert_eq!(answer.usage.input_tokens, 14);
        assert_eq!(answer.usage.output_tokens, 37);
        assert_eq!(answer.stop_reason.as_deref(), Some("stop"));
        assert!(matches!(
            parse_completion(b"<html>Bad gateway</html>"),
            Err(LlmError::Malformed(_))
        ));
        assert!(matches!(
            parse_completion(br#"{"choices": []}"#),
            Err(LlmError::Malformed(_))
        ));
    }

    #[test]
    fn error_bodies_are_sorted() {
        let quota = br#"{"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#;
        assert!(matches!(
            error_for_status(429, None, quota),
            LlmError::SpendLimit(_)
        ));
        let limited = br#"{"error":{"message":"Rate limit reached for gpt-4o","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#;
        assert_eq!(
            error_for_status(429, Some(Duration::from_secs(2)), limited),
            LlmError::RateLimited {
                retry_after: Some(Duration::from_secs(2)),
                message: "Rate limit reached for gpt-4o".to_owned()
            }
        );
        let auth = br#"{"error":{"message":"Incorrect API key provided: sk-abc***xyz.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#;
        assert_eq!(error_for_status(401, None, auth), LlmError::Unauthorized);
        assert_eq!(
            error_for_status(404, None, br#"{"error":"model \"llama9\" not found"}"#),
            LlmError::Rejected("model \"llama9\" not found".to_owned())
        );
        assert_eq!(
            error_for_status(422, None, br#"{"detail":"bad field"}"#),
            LlmError::Rejected("bad field".to_owned())
        );
        assert!(matches!(
            error_for_status(503, None, b"<html>down</html>"),
            LlmError::Unavailable(_)
        ));
    }

    #[test]
    fn embeddings_are_ordered_by_index() {
        let body = br#"{"object":"list","data":[{"object":"embedding","index":1,"embedding":[0.5,0.5]},{"object":"embedding","index":0,"embedding":[1.0,0.0]}],"model":"m"}"#;
        assert_eq!(
            parse_embeddings(body, 2).unwrap(),
            vec![vec![1.0, 0.0], vec![0.5, 0.5]]
        );
        assert!(matches!(
            parse_embeddings(body, 3),
            Err(LlmError::Malformed(_))
        ));
    }

    fn request() -> ChatRequest {
        ChatRequest {
            system: "You are a senior engineer.".to_owned(),
            context: Some("Flow: printer".to_owned()),
            messages: vec![ChatMessage {
                role: Role::User,
                content: "The printer is offline.".to_owned(),
            }],
            schema: Some(OutputSchema {
                name: "turn reply".to_owned(),
                schema: json!({"type": "object"}),
            }),
            max_tokens: 500,
        }
    }

    #[test]
    fn the_request_has_one_system_message_and_the_format() {
        let client = OpenAi::new(OpenAiConfig {
            max_tokens_field: "max_completion_tokens".to_owned(),
            ..OpenAiConfig::default()
        })
        .unwrap();
        let body = client.request_body("gpt-4o", &request(), Format::JsonSchema);
        assert_eq!(
            body,
            json!({
                "model": "gpt-4o",
                "messages": [
                    {"role": "system", "content": "You are a senior engineer.\n\nFlow: printer"},
                    {"role": "user", "content": "The printer is offline."}
                ],
                "stream": true,
                "stream_options": {"include_usage": true},
                "max_completion_tokens": 500,
                "response_format": {"type": "json_schema", "json_schema": {
                    "name": "turn_reply", "schema": {"type": "object"}, "strict": true
                }}
            })
        );
        let object = client.request_body("gpt-4o", &request(), Format::JsonObject);
        assert_eq!(object["response_format"], json!({"type": "json_object"}));
        let system = object["messages"][0]["content"]
            .as_str()
            .unwrap_or_default();
        assert!(
            system.ends_with("JSON schema:\n{\"type\":\"object\"}"),
            "{system}"
        );
    }

    #[test]
    fn the_key_stays_out_of_debug_output() {
        let config = OpenAiConfig {
            api_key: Some("sk-very-secret".to_owned()),
            ..OpenAiConfig::default()
        };
        assert!(!format!("{config:?}").contains("very-secret"));
        let client = OpenAi::new(config).unwrap();
        assert!(!format!("{client:?}").contains("very-secret"));
    }
}
