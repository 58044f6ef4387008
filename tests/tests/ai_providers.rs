//! The model provider clients end to end against fake Anthropic and OpenAI-compatible servers that
//! speak the real wire formats: request shape, streamed answers and usage, retries (rate limits,
//! overload, errors mid-stream), final failures, time limits, unreadable answers, the
//! `json_object` fallback and embeddings.

use rf_ai::anthropic::{Anthropic, AnthropicConfig};
use rf_ai::llm::{
    ChatMessage, ChatRequest, ChatResponse, Llm, LlmError, OutputSchema, RetryPolicy, Role, Usage,
    chat_with_retries,
};
use rf_ai::openai::{OpenAi, OpenAiAuth, OpenAiConfig, StructuredOutput};
use rf_tests::llm::{
    EMBEDDING_DIMENSIONS, FakeAnthropic, FakeOpenAi, FakeUsage, JSON_SCHEMA_UNSUPPORTED, Reply,
    embedding,
};
use serde_json::json;
use std::time::{Duration, Instant};

const ANTHROPIC_KEY: &str = "sk-ant-api03-test-key-0123456789abcdef";
const OPENAI_KEY: &str = "sk-proj-test-key-0123456789abcdef";
const SONNET: &str = "claude-sonnet-4-5";
const GPT: &str = "gpt-4o";

/// A turn as the copilot would send it: system, cacheable context, the conversation, a schema.
fn request() -> ChatRequest {
    ChatRequest {
        system: "You are a senior MSP engineer helping a technician.".to_owned(),
        context: Some("Flow: Printer shows offline\n1. Ping the printer".to_owned()),
        messages: vec![
            ChatMessage {
                role: Role::User,
                content: "The printer on floor 2 shows offline.".to_owned(),
            },
            ChatMessage {
                role: Role::Assistant,
                content: "Does a test page print from the printer's panel?".to_owned(),
            },
            ChatMessage {
                role: Role::User,
                content: "Yes, it does.".to_owned(),
            },
        ],
        schema: Some(OutputSchema {
            name: "turn".to_owned(),
            schema: json!({
                "type": "object",
                "properties": {"message": {"type": "string"}},
                "required": ["message"],
                "additionalProperties": false
            }),
        }),
        max_tokens: 1_024,
    }
}

/// Retries that keep the suite fast.
fn quick() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_secs(2),
    }
}

fn anthropic(fake: &FakeAnthropic, key: &str) -> Anthropic {
    let mut config = AnthropicConfig::new(key);
    config.base_url = fake.url();
    config.timeout = Duration::from_secs(5);
    Anthropic::new(config).expect("an Anthropic client")
}

fn openai_config(fake: &FakeOpenAi, key: Option<&str>) -> OpenAiConfig {
    OpenAiConfig {
        base_url: fake.url(),
        api_key: key.map(str::to_owned),
        auth: OpenAiAuth::Bearer,
        query: None,
        max_tokens_field: String::new(),
        structured: StructuredOutput::JsonSchema,
        timeout: Duration::from_secs(5),
    }
}

fn openai(fake: &FakeOpenAi) -> OpenAi {
    OpenAi::new(openai_config(fake, Some(OPENAI_KEY))).expect("an OpenAI client")
}

const ANSWER: &str =
    r#"{"message": "Then the spooler on the print server is the next suspect — restart it."}"#;

// ---------------------------------------------------------------- Anthropic

#[tokio::test]
async fn anthropic_requests_are_cacheable_and_streamed_answers_are_read() {
    let fake = FakeAnthropic::start(ANTHROPIC_KEY).await;
    fake.set_usage(FakeUsage {
        input: 150,
        output: 42,
        cached: 3_000,
        cache_write: 512,
    });
    fake.push(Reply::Text(ANSWER.to_owned()));
    let client = anthropic(&fake, ANTHROPIC_KEY);
    assert_eq!(client.provider(), "anthropic");

    let response = client.chat(SONNET, &request()).await.unwrap();
    assert_eq!(
        response,
        ChatResponse {
            text: ANSWER.to_owned(),
            model: SONNET.to_owned(),
            usage: Usage {
                input_tokens: 150,
                output_tokens: 42,
                cached_tokens: 3_000,
                cache_write_tokens: 512,
            },
            stop_reason: Some("end_turn".to_owned()),
        }
    );

    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    let sent = &requests[0];
    assert_eq!(sent.method, "POST");
    assert_eq!(sent.path, "/v1/messages");
    assert_eq!(sent.header("x-api-key").as_deref(), Some(ANTHROPIC_KEY));
    assert_eq!(
        sent.header("anthropic-version").as_deref(),
        Some("2023-06-01")
    );
    assert_eq!(sent.header("anthropic-beta"), None);
    assert_eq!(
        sent.header("content-type").as_deref(),
        Some("application/json")
    );
    assert!(
        sent.header("user-agent")
            .is_some_and(|a| a.starts_with("ResolutionFlow/"))
    );
    let body = &sent.body;
    assert_eq!(body["model"], SONNET);
    assert_eq!(body["max_tokens"], 1_024);
    assert_eq!(body["stream"], true);
    assert_eq!(
        body["system"],
        json!([{
            "type": "text",
            "text": "You are a senior MSP engineer helping a technician.",
            "cache_control": {"type": "ephemeral"}
        }])
    );
    let first = &body["messages"][0];
    assert_eq!(first["role"], "user");
    assert_eq!(
        first["content"][0],
        json!({
            "type": "text",
            "text": "Flow: Printer shows offline\n1. Ping the printer",
            "cache_control": {"type": "ephemeral"}
        })
    );
    assert_eq!(
        first["content"][1],
        json!({"type": "text", "text": "The printer on floor 2 shows offline."})
    );
    assert_eq!(body["messages"][1]["role"], "assistant");
    assert_eq!(body["messages"][2]["content"], "Yes, it does.");
    assert_eq!(body["messages"].as_array().map(Vec::len), Some(3));
    assert_eq!(body["output_config"]["format"]["type"], "json_schema");
    assert_eq!(
        body["output_config"]["format"]["schema"],
        request().schema.unwrap().schema
    );
    assert_eq!(fake.models(), [SONNET]);
    assert!(
        !fake.bodies_text().contains(ANTHROPIC_KEY),
        "the key travels in a header only"
    );
}

#[tokio::test]
async fn anthropic_sends_a_beta_header_when_configured() {
    let fake = FakeAnthropic::start(ANTHROPIC_KEY).await;
    let mut config = AnthropicConfig::new(ANTHROPIC_KEY);
    config.base_url = format!("{}/", fake.url());
    config.beta = Some("context-1m-2025-08-07".to_owned());
    let client = Anthropic::new(config).unwrap();
    let mut plain = request();
    plain.schema = None;
    plain.context = None;
    client.chat("claude-haiku-4-5", &plain).await.unwrap();
    let sent = &fake.requests()[0];
    assert_eq!(
        sent.header("anthropic-beta").as_deref(),
        Some("context-1m-2025-08-07")
    );
    assert!(sent.body.get("output_config").is_none());
    assert_eq!(
        sent.body["messages"][0]["content"],
        "The printer on floor 2 shows offline."
    );
    assert_eq!(fake.models(), ["claude-haiku-4-5"]);
}

#[tokio::test]
async fn anthropic_rate_limits_wait_for_retry_after_then_succeed() {
    let fake = FakeAnthropic::start(ANTHROPIC_KEY).await;
    fake.push(Reply::anthropic_rate_limited(1));
    fake.push(Reply::Text(ANSWER.to_owned()));
    let client = anthropic(&fake, ANTHROPIC_KEY);

    let started = Instant::now();
    let response = chat_with_retries(&client, SONNET, &request(), &quick())
        .await
        .unwrap();
    let waited = started.elapsed();
    assert_eq!(response.text, ANSWER);
    assert_eq!(fake.requests().len(), 2);
    assert_eq!(fake.requests()[0].status, 429);
    assert!(
        waited >= Duration::from_millis(950),
        "retry-after: 1 was honoured: {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(5),
        "and not much more: {waited:?}"
    );

    // One call alone reports the rate limit with the provider's wait and message.
    fake.push(Reply::anthropic_rate_limited(1));
    let error = client.chat(SONNET, &request()).await.unwrap_err();
    let LlmError::RateLimited {
        retry_after,
        message,
    } = &error
    else {
        panic!("{error:?}")
    };
    assert_eq!(*retry_after, Some(Duration::from_secs(1)));
    assert!(message.contains("rate limit"), "{message}");
}

#[tokio::test]
async fn anthropic_overload_and_errors_mid_stream_are_retried_with_backoff() {
    let fake = FakeAnthropic::start(ANTHROPIC_KEY).await;
    fake.push(Reply::anthropic_overloaded());
    fake.push(Reply::StreamError);
    let client = anthropic(&fake, ANTHROPIC_KEY);

    // Alone, each is an overload.
    let error = client.chat(SONNET, &request()).await.unwrap_err();
    assert_eq!(error, LlmError::Overloaded("Overloaded".to_owned()));
    let error = client.chat(SONNET, &request()).await.unwrap_err();
    assert_eq!(
        error,
        LlmError::Overloaded("Overloaded".to_owned()),
        "an error event mid-stream"
    );
    assert!(error.is_retryable());

    fake.push(Reply::anthropic_overloaded());
    fake.push(Reply::StreamError);
    fake.push(Reply::Text(ANSWER.to_owned()));
    let before = fake.requests().len();
    let started = Instant::now();
    let response = chat_with_retries(&client, SONNET, &request(), &quick())
        .await
        .unwrap();
    assert_eq!(response.text, ANSWER, "the partial stream was discarded");
    assert_eq!(fake.requests().len() - before, 3);
    // Two back-offs: 20 ms and 40 ms, each plus up to as much again of jitter.
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(60), "{waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");

    // Retries are bounded.
    for _ in 0..5 {
        fake.push(Reply::anthropic_overloaded());
    }
    let before = fake.requests().len();
    let error = chat_with_retries(&client, SONNET, &request(), &quick())
        .await
        .unwrap_err();
    assert!(matches!(error, LlmError::Overloaded(_)), "{error:?}");
    assert_eq!(fake.requests().len() - before, 4);
}

#[tokio::test]
async fn anthropic_spend_limits_are_not_retried() {
    let fake = FakeAnthropic::start(ANTHROPIC_KEY).await;
    fake.push(Reply::anthropic_billing());
    let client = anthropic(&fake, ANTHROPIC_KEY);
    let error = chat_with_retries(&client, SONNET, &request(), &quick())
        .await
        .unwrap_err();
    let LlmError::SpendLimit(message) = &error else {
        panic!("{error:?}")
    };
    assert!(message.contains("credit balance"), "{message}");
    assert_eq!(fake.requests().len(), 1, "exactly one request");
    assert!(matches!(
        error.into_ai(),
        rf_core::ai::AiError::SpendLimit(_)
    ));

    // The same words in a 400 (as Anthropic sends them) are a spend limit too.
    fake.push(Reply::status(
        400,
        json!({"type": "error", "error": {"type": "invalid_request_error",
            "message": "Your credit balance is too low to access the Anthropic API."}}),
    ));
    let error = chat_with_retries(&client, SONNET, &request(), &quick())
        .await
        .unwrap_err();
    assert!(matches!(error, LlmError::SpendLimit(_)), "{error:?}");
    assert_eq!(fake.requests().len(), 2);
}

#[tokio::test]
async fn anthropic_refuses_a_wrong_key_and_the_key_is_never_shown() {
    let fake = FakeAnthropic::start(ANTHROPIC_KEY).await;
    let wrong = "sk-ant-api03-WRONG-and-secret-987654321";
    let client = anthropic(&fake, wrong);
    let error = chat_with_retries(&client, SONNET, &request(), &quick())
        .await
        .unwrap_err();
    assert_eq!(error, LlmError::Unauthorized);
    assert_eq!(fake.requests().len(), 1, "not retried");
    assert_eq!(fake.requests()[0].status, 401);
    for shown in [
        error.to_string(),
        format!("{error:?}"),
        error.clone().into_ai().to_string(),
        format!("{client:?}"),
        format!("{:?}", AnthropicConfig::new(wrong)),
    ] {
        assert!(!shown.contains(wrong), "{shown}");
        assert!(!shown.contains("secret"), "{shown}");
    }
    assert_eq!(fake.pending(), 0);
}

#[tokio::test]
async fn anthropic_answers_beyond_the_time_limit_are_unavailable() {
    let fake = FakeAnthropic::start(ANTHROPIC_KEY).await;
    fake.push(Reply::slow(
        Duration::from_secs(30),
        Reply::Text(ANSWER.to_owned()),
    ));
    let mut config = AnthropicConfig::new(ANTHROPIC_KEY);
    config.base_url = fake.url();
    config.timeout = Duration::from_millis(300);
    let client = Anthropic::new(config).unwrap();
    let started = Instant::now();
    let error = client.chat(SONNET, &request()).await.unwrap_err();
    assert!(
        matches!(&error, LlmError::Unavailable(m) if m.contains("did not answer within")),
        "{error:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn anthropic_garbage_is_malformed_and_not_retried() {
    let fake = FakeAnthropic::start(ANTHROPIC_KEY).await;
    fake.push(Reply::Garbage);
    let client = anthropic(&fake, ANTHROPIC_KEY);
    let error = chat_with_retries(&client, SONNET, &request(), &quick())
        .await
        .unwrap_err();
    assert!(matches!(error, LlmError::Malformed(_)), "{error:?}");
    assert_eq!(fake.requests().len(), 1);

    // An HTML error page from a gateway is an outage, retried.
    fake.push(Reply::Status {
        status: 502,
        retry_after: None,
        body: "<html><body><h1>502 Bad Gateway</h1></body></html>".to_owned(),
    });
    let response = chat_with_retries(&client, SONNET, &request(), &quick())
        .await
        .unwrap();
    assert_eq!(response.text, "OK", "the default reply");
    assert_eq!(fake.requests().len(), 3);
}

#[tokio::test]
async fn anthropic_unreachable_servers_are_unavailable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let mut config = AnthropicConfig::new(ANTHROPIC_KEY);
    config.base_url = format!("http://{address}");
    let client = Anthropic::new(config).unwrap();
    let error = client.chat(SONNET, &request()).await.unwrap_err();
    let LlmError::Unavailable(message) = &error else {
        panic!("{error:?}")
    };
    assert!(
        message.starts_with("could not connect to Anthropic at 127.0.0.1:"),
        "{message}"
    );
}

// ---------------------------------------------------------------- OpenAI-compatible

#[tokio::test]
async fn openai_requests_carry_the_schema_and_streamed_answers_are_read() {
    let fake = FakeOpenAi::start(OPENAI_KEY).await;
    fake.set_usage(FakeUsage {
        input: 200,
        output: 64,
        cached: 1_024,
        cache_write: 0,
    });
    fake.push(Reply::Text(ANSWER.to_owned()));
    let client = OpenAi::new(OpenAiConfig {
        max_tokens_field: "max_completion_tokens".to_owned(),
        ..openai_config(&fake, Some(OPENAI_KEY))
    })
    .unwrap();
    assert_eq!(client.provider(), "openai");

    let response = client.chat(GPT, &request()).await.unwrap();
    assert_eq!(
        response,
        ChatResponse {
            text: ANSWER.to_owned(),
            model: GPT.to_owned(),
            usage: Usage {
                input_tokens: 200,
                output_tokens: 64,
                cached_tokens: 1_024,
                cache_write_tokens: 0,
            },
            stop_reason: Some("stop".to_owned()),
        }
    );

    let sent = &fake.requests()[0];
    assert_eq!(sent.path, "/v1/chat/completions");
    assert_eq!(
        sent.header("authorization"),
        Some(format!("Bearer {OPENAI_KEY}"))
    );
    assert!(
        sent.header("user-agent")
            .is_some_and(|a| a.starts_with("ResolutionFlow/"))
    );
    let body = &sent.body;
    assert_eq!(body["model"], GPT);
    assert_eq!(body["stream"], true);
    assert_eq!(body["stream_options"], json!({"include_usage": true}));
    assert_eq!(body["max_completion_tokens"], 1_024);
    assert!(body.get("max_tokens").is_none());
    assert_eq!(
        body["messages"][0],
        json!({"role": "system", "content":
            "You are a senior MSP engineer helping a technician.\n\nFlow: Printer shows offline\n1. Ping the printer"})
    );
    assert_eq!(
        body["messages"][1],
        json!({"role": "user", "content": "The printer on floor 2 shows offline."})
    );
    assert_eq!(body["messages"][2]["role"], "assistant");
    assert_eq!(body["messages"].as_array().map(Vec::len), Some(4));
    assert_eq!(
        body["response_format"],
        json!({"type": "json_schema", "json_schema": {
            "name": "turn", "schema": request().schema.unwrap().schema, "strict": true
        }})
    );
    assert!(!fake.bodies_text().contains(OPENAI_KEY));

    // The default field name is max_tokens.
    openai(&fake).chat(GPT, &request()).await.unwrap();
    assert_eq!(fake.requests()[1].body["max_tokens"], 1_024);
    assert_eq!(fake.models(), [GPT, GPT]);
}

#[tokio::test]
async fn openai_servers_that_do_not_stream_are_read_too() {
    let fake = FakeOpenAi::start(OPENAI_KEY).await;
    fake.plain_json(true);
    fake.push(Reply::Text(ANSWER.to_owned()));
    let response = openai(&fake).chat("llama3.1:8b", &request()).await.unwrap();
    assert_eq!(response.text, ANSWER);
    assert_eq!(response.model, "llama3.1:8b");
    assert_eq!(response.usage.output_tokens, 180);
    assert_eq!(response.stop_reason.as_deref(), Some("stop"));
}

#[tokio::test]
async fn openai_local_servers_need_no_key() {
    let fake = FakeOpenAi::start("").await;
    let client = OpenAi::new(openai_config(&fake, None)).unwrap();
    assert_eq!(client.chat("qwen2.5", &request()).await.unwrap().text, "OK");
    assert_eq!(fake.requests()[0].header("authorization"), None);
}

#[tokio::test]
async fn azure_style_deployments_take_the_key_header_and_query() {
    let fake = FakeOpenAi::start(OPENAI_KEY).await;
    fake.require_api_key_header(true);
    let client = OpenAi::new(OpenAiConfig {
        auth: OpenAiAuth::ApiKeyHeader,
        query: Some("api-version=2024-10-21".to_owned()),
        ..openai_config(&fake, Some(OPENAI_KEY))
    })
    .unwrap();
    client.chat("gpt-4o-deployment", &request()).await.unwrap();
    let sent = &fake.requests()[0];
    assert_eq!(sent.path, "/v1/chat/completions?api-version=2024-10-21");
    assert_eq!(sent.header("api-key").as_deref(), Some(OPENAI_KEY));
    assert_eq!(sent.header("authorization"), None);
    let vectors = client
        .embed("text-embedding-3-small", &["printer".to_owned()])
        .await
        .unwrap();
    assert_eq!(vectors.len(), 1);
    assert_eq!(
        fake.requests()[1].path,
        "/v1/embeddings?api-version=2024-10-21"
    );

    // A bearer token is not what this server takes.
    let bearer = openai(&fake);
    assert_eq!(
        bearer.chat(GPT, &request()).await.unwrap_err(),
        LlmError::Unauthorized
    );
}

#[tokio::test]
async fn openai_quota_is_a_spend_limit_and_not_retried() {
    let fake = FakeOpenAi::start(OPENAI_KEY).await;
    fake.push(Reply::openai_insufficient_quota());
    let error = chat_with_retries(&openai(&fake), GPT, &request(), &quick())
        .await
        .unwrap_err();
    let LlmError::SpendLimit(message) = &error else {
        panic!("{error:?}")
    };
    assert!(
        message.starts_with("You exceeded your current quota"),
        "{message}"
    );
    assert_eq!(fake.requests().len(), 1, "exactly one request");
}

#[tokio::test]
async fn openai_rate_limits_wait_for_retry_after_then_succeed() {
    let fake = FakeOpenAi::start(OPENAI_KEY).await;
    fake.push(Reply::openai_rate_limited(1));
    fake.push(Reply::Text(ANSWER.to_owned()));
    let started = Instant::now();
    let response = chat_with_retries(&openai(&fake), GPT, &request(), &quick())
        .await
        .unwrap();
    let waited = started.elapsed();
    assert_eq!(response.text, ANSWER);
    assert_eq!(fake.requests().len(), 2);
    assert!(waited >= Duration::from_millis(950), "{waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
}

#[tokio::test]
async fn openai_errors_mid_stream_and_5xx_are_retried() {
    let fake = FakeOpenAi::start(OPENAI_KEY).await;
    fake.push(Reply::StreamError);
    fake.push(Reply::status(
        503,
        json!({"error": {"message": "The engine is currently overloaded, please try again later", "type": "server_error", "param": null, "code": null}}),
    ));
    fake.push(Reply::Text(ANSWER.to_owned()));
    let client = openai(&fake);
    let response = chat_with_retries(&client, GPT, &request(), &quick())
        .await
        .unwrap();
    assert_eq!(response.text, ANSWER);
    assert_eq!(fake.requests().len(), 3);

    fake.push(Reply::StreamError);
    let error = client.chat(GPT, &request()).await.unwrap_err();
    assert!(
        matches!(&error, LlmError::Unavailable(m) if m.contains("The server had an error")),
        "{error:?}"
    );
}

#[tokio::test]
async fn openai_refuses_a_wrong_key_and_the_key_is_never_shown() {
    let fake = FakeOpenAi::start(OPENAI_KEY).await;
    let wrong = "sk-proj-WRONG-and-secret-987654321";
    let client = OpenAi::new(openai_config(&fake, Some(wrong))).unwrap();
    let error = chat_with_retries(&client, GPT, &request(), &quick())
        .await
        .unwrap_err();
    assert_eq!(error, LlmError::Unauthorized);
    assert_eq!(fake.requests().len(), 1, "not retried");
    let config = openai_config(&fake, Some(wrong));
    for shown in [
        error.to_string(),
        format!("{error:?}"),
        error.into_ai().to_string(),
        format!("{client:?}"),
        format!("{config:?}"),
    ] {
        assert!(!shown.contains(wrong), "{shown}");
        assert!(!shown.contains("secret"), "{shown}");
    }

    // A provider message that echoes the key back is scrubbed.
    fake.push(Reply::status(
        400,
        json!({"error": {"message": format!("Invalid value for 'user': {OPENAI_KEY}"), "type": "invalid_request_error", "param": "user", "code": null}}),
    ));
    let error = openai(&fake).chat(GPT, &request()).await.unwrap_err();
    assert_eq!(
        error,
        LlmError::Rejected("Invalid value for 'user': [key]".to_owned())
    );
}

#[tokio::test]
async fn openai_answers_beyond_the_time_limit_are_unavailable_and_garbage_is_malformed() {
    let fake = FakeOpenAi::start(OPENAI_KEY).await;
    fake.push(Reply::slow(
        Duration::from_secs(30),
        Reply::Text(ANSWER.to_owned()),
    ));
    let client = OpenAi::new(OpenAiConfig {
        timeout: Duration::from_millis(300),
        ..openai_config(&fake, Some(OPENAI_KEY))
    })
    .unwrap();
    let started = Instant::now();
    let error = client.chat(GPT, &request()).await.unwrap_err();
    assert!(matches!(error, LlmError::Unavailable(_)), "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(10));

    fake.push(Reply::Garbage);
    let error = chat_with_retries(&openai(&fake), GPT, &request(), &quick())
        .await
        .unwrap_err();
    assert!(matches!(error, LlmError::Malformed(_)), "{error:?}");
    assert_eq!(fake.requests().len(), 2, "not retried");

    fake.plain_json(true);
    fake.push(Reply::Garbage);
    let error = openai(&fake).chat(GPT, &request()).await.unwrap_err();
    assert!(matches!(error, LlmError::Malformed(_)), "{error:?}");
}

#[tokio::test]
async fn openai_falls_back_to_json_object_once_and_remembers() {
    let fake = FakeOpenAi::start(OPENAI_KEY).await;
    fake.reject_json_schema(true);
    fake.push(Reply::Text(ANSWER.to_owned()));
    fake.push(Reply::Text(ANSWER.to_owned()));
    let client = openai(&fake);
    assert!(!client.uses_json_object_fallback());

    let response = client.chat(GPT, &request()).await.unwrap();
    assert_eq!(response.text, ANSWER);
    let requests = fake.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].status, 400);
    assert_eq!(requests[0].body["response_format"]["type"], "json_schema");
    assert_eq!(requests[1].status, 200);
    assert_eq!(
        requests[1].body["response_format"],
        json!({"type": "json_object"})
    );
    let system = requests[1].body["messages"][0]["content"]
        .as_str()
        .unwrap_or_default();
    assert!(
        system.contains("JSON schema") && system.contains("additionalProperties"),
        "the schema is described instead: {system}"
    );
    assert!(client.uses_json_object_fallback());

    // Later calls go straight to json_object.
    client.chat(GPT, &request()).await.unwrap();
    let requests = fake.requests();
    assert_eq!(requests.len(), 3);
    assert_eq!(requests[2].body["response_format"]["type"], "json_object");

    // Calls without a schema ask for no format at all.
    let mut free = request();
    free.schema = None;
    client.chat(GPT, &free).await.unwrap();
    assert!(fake.requests()[3].body.get("response_format").is_none());

    // Any other 400 is a rejection, with no second try.
    let fresh = openai(&fake);
    fake.reject_json_schema(false);
    fake.push(Reply::status(
        400,
        json!({"error": {"message": "This model's maximum context length is 128000 tokens.", "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}}),
    ));
    let error = fresh.chat(GPT, &request()).await.unwrap_err();
    assert_eq!(
        error,
        LlmError::Rejected("This model's maximum context length is 128000 tokens.".to_owned())
    );
    assert_eq!(fake.requests().len(), 5);
    assert!(!fresh.uses_json_object_fallback());
    assert!(JSON_SCHEMA_UNSUPPORTED.contains("json_schema"));
}

#[tokio::test]
async fn openai_json_object_mode_never_asks_for_a_schema() {
    let fake = FakeOpenAi::start(OPENAI_KEY).await;
    let client = OpenAi::new(OpenAiConfig {
        structured: StructuredOutput::JsonObject,
        ..openai_config(&fake, Some(OPENAI_KEY))
    })
    .unwrap();
    client.chat(GPT, &request()).await.unwrap();
    assert_eq!(
        fake.requests()[0].body["response_format"],
        json!({"type": "json_object"})
    );
    let none = OpenAi::new(OpenAiConfig {
        structured: StructuredOutput::None,
        ..openai_config(&fake, Some(OPENAI_KEY))
    })
    .unwrap();
    none.chat(GPT, &request()).await.unwrap();
    assert!(fake.requests()[1].body.get("response_format").is_none());
}

#[tokio::test]
async fn embeddings_come_back_in_input_order() {
    let fake = FakeOpenAi::start(OPENAI_KEY).await;
    let client = openai(&fake);
    let inputs = vec![
        "printer shows offline on floor 2".to_owned(),
        "the printer on floor 2 is offline".to_owned(),
        "outlook keeps asking for the password".to_owned(),
    ];
    let vectors = client
        .embed("text-embedding-3-small", &inputs)
        .await
        .unwrap();
    assert_eq!(vectors.len(), 3);
    for (vector, input) in vectors.iter().zip(&inputs) {
        assert_eq!(vector.len(), EMBEDDING_DIMENSIONS);
        assert_eq!(vector, &embedding(input));
    }
    let cosine = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    assert!(cosine(&vectors[0], &vectors[1]) > cosine(&vectors[0], &vectors[2]));

    let sent = &fake.requests()[0];
    assert_eq!(sent.path, "/v1/embeddings");
    assert_eq!(
        sent.body,
        json!({"model": "text-embedding-3-small", "input": inputs})
    );
    assert!(client.embed("m", &[]).await.unwrap().is_empty());
    assert_eq!(fake.requests().len(), 1, "nothing to embed, no call");

    let wrong = OpenAi::new(openai_config(&fake, Some("sk-wrong-key-000000"))).unwrap();
    assert_eq!(
        wrong.embed("m", &inputs).await.unwrap_err(),
        LlmError::Unauthorized
    );
}
