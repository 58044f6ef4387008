//! Builds the copilot the configuration asks for: offline (the default), Anthropic, or an
//! OpenAI-compatible endpoint, with the prompt files and the optional embedding model.

use crate::config::{AiConfig, ConfigError};
use rf_ai::anthropic::{Anthropic, AnthropicConfig};
use rf_ai::copilot::{Embedder, ModelCopilot, ModelSettings};
use rf_ai::llm::{Llm, LlmError, RetryPolicy};
use rf_ai::offline::Offline;
use rf_ai::openai::{OpenAi, OpenAiAuth, OpenAiConfig, StructuredOutput};
use rf_ai::prompts::Prompts;
use rf_core::ai::Copilot;
use std::sync::Arc;
use std::time::Duration;

/// The copilot, or `None` when it is turned off (`provider = "off"`).
pub fn build(config: &AiConfig) -> Result<Option<Arc<dyn Copilot>>, ConfigError> {
    let provider = config.provider.trim().to_ascii_lowercase();
    let timeout = Duration::from_secs(config.timeout_seconds.max(1));
    let llm: Arc<dyn Llm> = match provider.as_str() {
        "off" | "none" => return Ok(None),
        "offline" | "" => {
            let mut offline = Offline::new();
            if let Some(embedder) = embedder(config, timeout)? {
                tracing::info!(model = %config.embedding_model, "offline copilot with embeddings for retrieval");
                offline = offline.with_embedder(embedder);
            }
            return Ok(Some(Arc::new(offline)));
        }
        "anthropic" => {
            let Some(api_key) = config.api_key() else {
                return Err(ConfigError::new(
                    "[ai] provider = \"anthropic\" needs an API key: set RF_AI__API_KEY",
                ));
            };
            let mut settings = AnthropicConfig::new(api_key);
            if !config.base_url.is_empty() {
                settings.base_url = config.base_url.trim_end_matches('/').to_owned();
            }
            settings.timeout = timeout;
            Arc::new(Anthropic::new(settings).map_err(llm_error)?)
        }
        "openai" => Arc::new(OpenAi::new(openai_settings(config, timeout)?).map_err(llm_error)?),
        other => {
            return Err(ConfigError::new(&format!(
                "[ai] provider must be offline, anthropic, openai or off, not `{other}`"
            )));
        }
    };
    let anthropic = provider == "anthropic";
    let pick = |configured: &str, anthropic_default: &str, openai_default: &str| {
        if !configured.is_empty() {
            configured.to_owned()
        } else if anthropic {
            anthropic_default.to_owned()
        } else {
            openai_default.to_owned()
        }
    };
    let prompts = match &config.prompts_dir {
        Some(dir) => Prompts::with_overrides(dir).map_err(|e| ConfigError::new(&e.to_string()))?,
        None => Prompts::embedded(),
    };
    let settings = ModelSettings {
        fast_model: pick(&config.fast_model, "claude-haiku-4-5", "gpt-4o-mini"),
        deep_model: pick(&config.deep_model, "claude-sonnet-4-5", "gpt-4o"),
        low_confidence: config.low_confidence.min(100),
        max_tokens: config.max_tokens.max(256),
        retry: RetryPolicy {
            max_attempts: config.max_attempts.max(1),
            ..RetryPolicy::default()
        },
        prices: config.prices.clone(),
        ..ModelSettings::default()
    };
    tracing::info!(
        provider = %provider,
        fast = %settings.fast_model,
        deep = %settings.deep_model,
        "AI copilot enabled"
    );
    let mut copilot = ModelCopilot::new(llm, settings, prompts);
    if let Some(embedder) = embedder(config, timeout)? {
        copilot = copilot.with_embedder(embedder);
    }
    Ok(Some(Arc::new(copilot)))
}

fn openai_settings(config: &AiConfig, timeout: Duration) -> Result<OpenAiConfig, ConfigError> {
    let base_url = if config.base_url.is_empty() {
        "https://api.openai.com/v1".to_owned()
    } else {
        config.base_url.trim_end_matches('/').to_owned()
    };
    let auth = match config.openai_auth.as_str() {
        "bearer" | "" => OpenAiAuth::Bearer,
        "api-key" | "api_key" => OpenAiAuth::ApiKeyHeader,
        other => {
            return Err(ConfigError::new(&format!(
                "[ai] openai_auth must be bearer or api-key, not `{other}`"
            )));
        }
    };
    let structured = match config.structured_output.as_str() {
        "json_schema" | "" => StructuredOutput::JsonSchema,
        "json_object" => StructuredOutput::JsonObject,
        "none" => StructuredOutput::None,
        other => {
            return Err(ConfigError::new(&format!(
                "[ai] structured_output must be json_schema, json_object or none, not `{other}`"
            )));
        }
    };
    Ok(OpenAiConfig {
        base_url,
        api_key: config.api_key(),
        auth,
        query: (!config.openai_query.is_empty()).then(|| config.openai_query.clone()),
        max_tokens_field: config.max_tokens_field.clone(),
        structured,
        timeout,
    })
}

/// The embedding endpoint, when `embedding_model` is set.
fn embedder(
    config: &AiConfig,
    timeout: Duration,
) -> Result<Option<Arc<dyn Embedder>>, ConfigError> {
    if config.embedding_model.is_empty() {
        return Ok(None);
    }
    let mut settings = openai_settings(config, timeout)?;
    if !config.embedding_base_url.is_empty() {
        settings.base_url = config.embedding_base_url.trim_end_matches('/').to_owned();
    } else if config.provider != "openai" {
        return Err(ConfigError::new(
            "[ai] embedding_model needs embedding_base_url (an OpenAI-compatible endpoint)",
        ));
    }
    if let Some(key) = config
        .embedding_api_key
        .as_ref()
        .map(|k| secrecy::ExposeSecret::expose_secret(k).to_owned())
        .filter(|k| !k.is_empty())
    {
        settings.api_key = Some(key);
    }
    let client = OpenAi::new(settings).map_err(llm_error)?;
    Ok(Some(Arc::new(Embeddings {
        client,
        model: config.embedding_model.clone(),
    })))
}

/// An OpenAI-compatible client used for its `/embeddings` endpoint.
#[derive(Debug)]
struct Embeddings {
    client: OpenAi,
    model: String,
}

#[async_trait::async_trait]
impl Embedder for Embeddings {
    async fn embed(&self, inputs: &[String]) -> Result<Vec<Vec<f32>>, LlmError> {
        self.client.embed(&self.model, inputs).await
    }
}

fn llm_error(error: LlmError) -> ConfigError {
    ConfigError::new(&format!("the AI provider could not be set up: {error}"))
}
