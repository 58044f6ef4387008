//! The copilot with a model behind it: tiered routing (a fast model for confirmations, a deep one
//! for discovery and decisions, and the deep one again when the fast one's answer is unreadable or
//! unsure), redaction of everything sent, cost accounting per call, and the resolution-note cache.

use crate::llm::{
    ChatMessage, ChatRequest, ChatResponse, Llm, LlmError, OutputSchema, RetryPolicy, Role,
    chat_with_retries,
};
use crate::offline::Offline;
use crate::prompts::{Prompts, RenderedPrompt};
use crate::{parse, schema};
use rf_core::ai::{
    AiError, Copilot, FlowDraft, ModelCall, NoteOutcome, SessionCluster, SessionContext, Tier,
    TurnOutcome, TurnReply,
};
use rf_core::handoff::Assessment;
use rf_core::ids::SessionId;
use rf_core::redact::Redactor;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Price of a model in US dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Deserialize, serde::Serialize)]
pub struct Price {
    pub input: f64,
    pub output: f64,
    /// Input tokens read from the prompt cache.
    #[serde(default)]
    pub cached: f64,
}

/// List prices of well-known models (by name prefix), used when the configuration names none.
/// Local models (Ollama, vLLM, llama.cpp) cost nothing.
const KNOWN_PRICES: &[(&str, Price)] = &[
    (
        "claude-haiku-4",
        Price {
            input: 1.0,
            output: 5.0,
            cached: 0.1,
        },
    ),
    (
        "claude-3-5-haiku",
        Price {
            input: 0.8,
            output: 4.0,
            cached: 0.08,
        },
    ),
    (
        "claude-sonnet-4",
        Price {
            input: 3.0,
            output: 15.0,
            cached: 0.3,
        },
    ),
    (
        "claude-3-7-sonnet",
        Price {
            input: 3.0,
            output: 15.0,
            cached: 0.3,
        },
    ),
    (
        "claude-opus-4-1",
        Price {
            input: 15.0,
            output: 75.0,
            cached: 1.5,
        },
    ),
    (
        "claude-opus-4",
        Price {
            input: 5.0,
            output: 25.0,
            cached: 0.5,
        },
    ),
    (
        "gpt-4o-mini",
        Price {
            input: 0.15,
            output: 0.6,
            cached: 0.075,
        },
    ),
    (
        "gpt-4o",
        Price {
            input: 2.5,
            output: 10.0,
            cached: 1.25,
        },
    ),
    (
        "gpt-4.1-mini",
        Price {
            input: 0.4,
            output: 1.6,
            cached: 0.1,
        },
    ),
    (
        "gpt-4.1",
        Price {
            input: 2.0,
            output: 8.0,
            cached: 0.5,
        },
    ),
    (
        "gpt-5-mini",
        Price {
            input: 0.25,
            output: 2.0,
            cached: 0.025,
        },
    ),
    (
        "gpt-5",
        Price {
            input: 1.25,
            output: 10.0,
            cached: 0.125,
        },
    ),
];

/// How the model copilot is set up.
#[derive(Debug, Clone)]
pub struct ModelSettings {
    /// For short confirmations.
    pub fast_model: String,
    /// For discovery, decisions, notes, assessments and drafts.
    pub deep_model: String,
    /// A fast answer below this confidence is asked again of the deep model.
    pub low_confidence: u8,
    pub max_tokens: u32,
    pub retry: RetryPolicy,
    /// Prices by model name (exact) overriding the built-in list.
    pub prices: HashMap<String, Price>,
    /// The most resolution notes kept in the cache.
    pub note_cache_entries: usize,
}

impl Default for ModelSettings {
    fn default() -> Self {
        Self {
            fast_model: String::new(),
            deep_model: String::new(),
            low_confidence: 40,
            max_tokens: 1_500,
            retry: RetryPolicy::default(),
            prices: HashMap::new(),
            note_cache_entries: 5_000,
        }
    }
}

/// An embedding endpoint (OpenAI-compatible `/embeddings`).
#[async_trait::async_trait]
pub trait Embedder: Send + Sync + std::fmt::Debug {
    async fn embed(&self, inputs: &[String]) -> Result<Vec<Vec<f32>>, LlmError>;
}

/// The copilot backed by a model.
#[derive(Debug, Clone)]
pub struct ModelCopilot {
    llm: Arc<dyn Llm>,
    embeddings: Option<CachedEmbeddings>,
    settings: ModelSettings,
    prompts: Arc<Prompts>,
    redactor: Redactor,
    notes: Arc<Bounded<(SessionId, i64), String>>,
}

impl ModelCopilot {
    pub fn new(llm: Arc<dyn Llm>, settings: ModelSettings, prompts: Prompts) -> Self {
        let entries = settings.note_cache_entries.max(1);
        Self {
            llm,
            embeddings: None,
            settings,
            prompts: Arc::new(prompts),
            redactor: Redactor::new(),
            notes: Arc::new(Bounded::new(entries)),
        }
    }

    /// Adds an embedding ranking to retrieval.
    pub fn with_embedder(mut self, embedder: Arc<dyn Embedder>) -> Self {
        self.embeddings = Some(CachedEmbeddings::new(embedder));
        self
    }

    /// Which tier answers this turn: discovery (no turn yet) and anything but a short
    /// confirmation go to the deep model.
    pub fn route(context: &SessionContext) -> Tier {
        match &context.latest {
            Some(latest) if context.turns_so_far > 0 && is_confirmation(latest) => Tier::Fast,
            _ => Tier::Deep,
        }
    }

    fn model(&self, tier: Tier) -> &str {
        match tier {
            Tier::Fast => &self.settings.fast_model,
            _ => &self.settings.deep_model,
        }
    }

    fn price(&self, model: &str) -> Price {
        if let Some(price) = self.settings.prices.get(model) {
            return *price;
        }
        KNOWN_PRICES
            .iter()
            .find(|(prefix, _)| model.starts_with(prefix))
            .map_or_else(Price::default, |(_, price)| *price)
    }

    /// The request for a rendered prompt, with every part redacted: nothing a redaction rule
    /// catches is sent to a provider, whatever the caller put in.
    fn request(&self, prompt: &RenderedPrompt, output: Option<OutputSchema>) -> ChatRequest {
        let redact = |text: &str| self.redactor.redact(text).into_owned();
        ChatRequest {
            system: redact(&prompt.system),
            context: (!prompt.context.is_empty()).then(|| redact(&prompt.context)),
            messages: vec![ChatMessage {
                role: Role::User,
                content: redact(&prompt.user),
            }],
            schema: output,
            max_tokens: self.settings.max_tokens,
        }
    }

    /// One call, timed and priced. The response is `None` when the call failed.
    async fn call(
        &self,
        tier: Tier,
        request: &ChatRequest,
    ) -> (Result<ChatResponse, LlmError>, ModelCall) {
        let model = self.model(tier).to_owned();
        let started = Instant::now();
        let result =
            chat_with_retries(self.llm.as_ref(), &model, request, &self.settings.retry).await;
        let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let mut record = ModelCall {
            provider: self.llm.provider().to_owned(),
            model: model.clone(),
            tier,
            input_tokens: 0,
            output_tokens: 0,
            cached_tokens: 0,
            cache_write_tokens: 0,
            latency_ms,
            cost_micros: 0,
            problem: None,
        };
        match &result {
            Ok(response) => {
                let usage = &response.usage;
                record.model = if response.model.is_empty() {
                    model.clone()
                } else {
                    response.model.clone()
                };
                record.input_tokens = usage.input_tokens;
                record.output_tokens = usage.output_tokens;
                record.cached_tokens = usage.cached_tokens;
                record.cache_write_tokens = usage.cache_write_tokens;
                record.cost_micros = cost_micros(self.price(&model), usage);
            }
            Err(error) => record.problem = Some(error.to_string()),
        }
        (result, record)
    }
}

/// Where a session's resolution note is cached: its id and state version.
fn note_key(context: &SessionContext) -> Option<(SessionId, i64)> {
    context
        .session_id
        .map(|session| (session, context.state_version))
}

/// The estimated cost of a call in millionths of a dollar. Cache writes are billed at 1.25× the
/// input price (Anthropic's five-minute cache); reads at the cached price.
fn cost_micros(price: Price, usage: &crate::llm::Usage) -> u64 {
    let dollars = usage.input_tokens as f64 * price.input
        + usage.cache_write_tokens as f64 * price.input * 1.25
        + usage.cached_tokens as f64 * price.cached
        + usage.output_tokens as f64 * price.output;
    // Per million tokens, in millionths of a dollar: the two millions cancel.
    dollars.round().max(0.0) as u64
}

/// A short answer that only confirms or denies ("yes", "done, still broken", "that worked").
pub fn is_confirmation(text: &str) -> bool {
    const WORDS: &[&str] = &[
        "yes",
        "yep",
        "yeah",
        "yup",
        "y",
        "no",
        "nope",
        "nah",
        "n",
        "ok",
        "okay",
        "done",
        "did",
        "confirmed",
        "correct",
        "right",
        "same",
        "still",
        "fixed",
        "worked",
        "works",
        "working",
        "sure",
        "didn't",
        "didnt",
        "doesn't",
        "doesnt",
        "nothing",
        "true",
        "false",
        "that",
        "it",
        "not",
        "thanks",
        "great",
        "good",
    ];
    let lowered = text.trim().to_lowercase();
    let words: Vec<&str> = lowered
        .split(|c: char| c.is_whitespace() || c == ',' || c == '.' || c == '!')
        .filter(|w| !w.is_empty())
        .collect();
    const ASKING: &[&str] = &[
        "what", "why", "how", "which", "where", "when", "who", "should",
    ];
    !words.is_empty()
        && words.len() <= 6
        && !lowered.contains('?')
        && !words.iter().any(|w| ASKING.contains(w))
        && words.first().is_some_and(|w| WORDS.contains(w))
}

#[async_trait::async_trait]
impl Copilot for ModelCopilot {
    fn provider(&self) -> &str {
        self.llm.provider()
    }

    async fn turn(&self, context: &SessionContext) -> TurnOutcome {
        let version = self.prompts.version().to_owned();
        let prompt = match self.prompts.render_turn(context) {
            Ok(prompt) => prompt,
            Err(error) => {
                tracing::error!(%error, "the turn prompt could not be rendered");
                return TurnOutcome {
                    reply: None,
                    calls: Vec::new(),
                    prompt_version: version,
                    problem: Some(
                        "the copilot's prompt is broken; an admin must fix the prompt override"
                            .to_owned(),
                    ),
                };
            }
        };
        let request = self.request(
            &prompt,
            Some(OutputSchema {
                name: "turn".to_owned(),
                schema: schema::turn_schema(),
            }),
        );
        let mut calls = Vec::new();
        let mut tier = Self::route(context);
        let mut problem = None;
        loop {
            let (result, mut record) = self.call(tier, &request).await;
            let reply: Option<TurnReply> = match result {
                Ok(response) => match parse::parse_turn(&response.text) {
                    Ok(parsed) => {
                        if !parsed.warnings.is_empty() {
                            tracing::info!(warnings = ?parsed.warnings, "the model's turn had unusable parts");
                        }
                        Some(parsed.value)
                    }
                    Err(error) => {
                        tracing::warn!(%error, model = %record.model, "the model's turn could not be read");
                        record.problem = Some(format!("unreadable answer: {error}"));
                        problem = Some("the model's answer could not be read".to_owned());
                        None
                    }
                },
                Err(error) => {
                    problem = Some(error.to_string());
                    None
                }
            };
            let unsure = reply
                .as_ref()
                .is_some_and(|r| r.confidence < self.settings.low_confidence);
            if tier == Tier::Fast && unsure {
                record.problem = Some(format!(
                    "low confidence ({}%): asked the deep model",
                    reply.as_ref().map_or(0, |r| r.confidence)
                ));
            }
            calls.push(record);
            match reply {
                Some(reply) if !(tier == Tier::Fast && unsure) => {
                    return TurnOutcome {
                        reply: Some(reply),
                        calls,
                        prompt_version: version,
                        problem: None,
                    };
                }
                _ if tier == Tier::Fast => tier = Tier::Deep,
                // The deep model was unsure: its answer still beats none.
                Some(reply) => {
                    return TurnOutcome {
                        reply: Some(reply),
                        calls,
                        prompt_version: version,
                        problem: None,
                    };
                }
                None => {
                    return TurnOutcome {
                        reply: None,
                        calls,
                        prompt_version: version,
                        problem,
                    };
                }
            }
        }
    }

    fn note_at_hand(&self, context: &SessionContext) -> Option<NoteOutcome> {
        let markdown = context
            .written_note
            .clone()
            .or_else(|| self.notes.get(&note_key(context)?))?;
        Some(NoteOutcome {
            markdown,
            calls: Vec::new(),
            from_cache: true,
        })
    }

    async fn resolution_note(&self, context: &SessionContext) -> Result<NoteOutcome, AiError> {
        if let Some(note) = self.note_at_hand(context) {
            return Ok(note);
        }
        let key = note_key(context);
        let prompt = self
            .prompts
            .render_note(context)
            .map_err(|e| AiError::Rejected(format!("the note prompt is broken: {e}")))?;
        let request = self.request(&prompt, None);
        let (result, mut record) = self.call(Tier::Deep, &request).await;
        let checked = match result {
            Ok(response) => parse::check_note(&response.text).map_err(|e| e.to_string()),
            Err(error) => Err(error.to_string()),
        };
        match checked {
            Ok(markdown) => {
                if let Some(key) = key {
                    self.notes.put(key, markdown.clone());
                }
                Ok(NoteOutcome {
                    markdown,
                    calls: vec![record],
                    from_cache: false,
                })
            }
            Err(problem) => {
                // The offline note, from the same facts, is better than none; it is not cached, so
                // the next preview asks the model again.
                tracing::warn!(%problem, "the model's resolution note was unusable; using the offline one");
                record.problem = Some(problem);
                Ok(NoteOutcome {
                    markdown: Offline::note(context),
                    calls: vec![record],
                    from_cache: false,
                })
            }
        }
    }

    async fn assess(
        &self,
        context: &SessionContext,
    ) -> Result<(Assessment, Vec<ModelCall>), AiError> {
        let prompt = self
            .prompts
            .render_assessment(context)
            .map_err(|e| AiError::Rejected(format!("the assessment prompt is broken: {e}")))?;
        let request = self.request(
            &prompt,
            Some(OutputSchema {
                name: "assessment".to_owned(),
                schema: schema::assessment_schema(),
            }),
        );
        let (result, record) = self.call(Tier::Deep, &request).await;
        let response = result.map_err(LlmError::into_ai)?;
        let assessment = parse::parse_assessment(&response.text, &record.model)
            .map_err(|e| AiError::Unreadable(e.to_string()))?;
        Ok((assessment, vec![record]))
    }

    async fn build_flow(
        &self,
        description: &str,
        feedback: Option<&str>,
    ) -> Result<FlowDraft, AiError> {
        let prompt = self
            .prompts
            .render_flow_builder(description, feedback)
            .map_err(|e| AiError::Rejected(format!("the flow builder prompt is broken: {e}")))?;
        self.draft(&prompt).await
    }

    async fn flow_from_sessions(
        &self,
        cluster: &SessionCluster,
        feedback: Option<&str>,
    ) -> Result<FlowDraft, AiError> {
        let prompt = self
            .prompts
            .render_flywheel(cluster, feedback)
            .map_err(|e| AiError::Rejected(format!("the flywheel prompt is broken: {e}")))?;
        self.draft(&prompt).await
    }

    async fn embed(&self, texts: &[String]) -> Option<Vec<Vec<f32>>> {
        self.embeddings.as_ref()?.embed(texts).await
    }
}

impl ModelCopilot {
    async fn draft(&self, prompt: &RenderedPrompt) -> Result<FlowDraft, AiError> {
        let request = self.request(
            prompt,
            Some(OutputSchema {
                name: "flow_draft".to_owned(),
                schema: schema::flow_draft_schema(),
            }),
        );
        let (result, record) = self.call(Tier::Deep, &request).await;
        let response = result.map_err(LlmError::into_ai)?;
        let (yaml, rationale) = parse::parse_flow_draft(&response.text)
            .map_err(|e| AiError::Unreadable(e.to_string()))?;
        Ok(FlowDraft {
            yaml,
            rationale,
            calls: vec![record],
        })
    }
}

/// An embedding endpoint behind a bounded cache of vectors (keyed by the redacted text's hash),
/// so that a flow or a resolved session is embedded once, not on every turn. Texts are redacted
/// before they are sent; a failing endpoint gives `None` and retrieval carries on with full-text
/// search alone.
#[derive(Debug, Clone)]
pub struct CachedEmbeddings {
    embedder: Arc<dyn Embedder>,
    redactor: Redactor,
    vectors: Arc<Bounded<[u8; 32], Vec<f32>>>,
}

impl CachedEmbeddings {
    pub fn new(embedder: Arc<dyn Embedder>) -> Self {
        Self {
            embedder,
            redactor: Redactor::new(),
            vectors: Arc::new(Bounded::new(20_000)),
        }
    }

    /// One vector per text, in order.
    pub async fn embed(&self, texts: &[String]) -> Option<Vec<Vec<f32>>> {
        let redacted: Vec<String> = texts
            .iter()
            .map(|t| self.redactor.redact(t).into_owned())
            .collect();
        let keys: Vec<[u8; 32]> = redacted
            .iter()
            .map(|t| Sha256::digest(t.as_bytes()).into())
            .collect();
        let mut found: Vec<Option<Vec<f32>>> = keys.iter().map(|k| self.vectors.get(k)).collect();
        let missing: Vec<usize> = (0..texts.len()).filter(|&i| found[i].is_none()).collect();
        if !missing.is_empty() {
            let inputs: Vec<String> = missing.iter().map(|&i| redacted[i].clone()).collect();
            match self.embedder.embed(&inputs).await {
                Ok(vectors) if vectors.len() == inputs.len() => {
                    for (&i, vector) in missing.iter().zip(vectors) {
                        self.vectors.put(keys[i], vector.clone());
                        found[i] = Some(vector);
                    }
                }
                Ok(_) => {
                    tracing::warn!("the embedding endpoint answered the wrong number of vectors");
                    return None;
                }
                Err(error) => {
                    tracing::warn!(%error, "embeddings unavailable; retrieval uses full-text search alone");
                    return None;
                }
            }
        }
        found.into_iter().collect()
    }
}

/// A bounded map: when full, the oldest entry goes. Keys here only ever grow (a session's
/// `state_version` never goes back), so first-in-first-out is as good as least-recently-used.
#[derive(Debug)]
pub struct Bounded<K, V> {
    capacity: usize,
    inner: Mutex<(HashMap<K, V>, VecDeque<K>)>,
}

impl<K: std::hash::Hash + Eq + Clone, V: Clone> Bounded<K, V> {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            inner: Mutex::new((HashMap::new(), VecDeque::new())),
        }
    }

    pub fn get(&self, key: &K) -> Option<V> {
        let guard = self
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        guard.0.get(key).cloned()
    }

    pub fn put(&self, key: K, value: V) {
        let mut guard = self
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let (map, order) = &mut *guard;
        if map.insert(key.clone(), value).is_none() {
            order.push_back(key);
        }
        while map.len() > self.capacity {
            match order.pop_front() {
                Some(oldest) => {
                    map.remove(&oldest);
                }
                None => break,
            }
        }
    }

    pub fn len(&self) -> usize {
        let guard = self
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        guard.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confirmations_are_short_answers() {
        for text in [
            "yes",
            "Done, still offline",
            "that worked!",
            "no",
            "nope same error",
        ] {
            assert!(is_confirmation(text), "{text}");
        }
        for text in [
            "The event log shows 4740 from a phone",
            "yes but why does it lock again after an hour and only on Mondays",
            "did you mean the PDC?",
            "still the same, now what",
            "",
        ] {
            assert!(!is_confirmation(text), "{text}");
        }
    }

    #[test]
    fn the_cache_is_bounded() {
        let cache = Bounded::new(2);
        cache.put(1, "a");
        cache.put(2, "b");
        cache.put(3, "c");
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get(&1), None);
        assert_eq!(cache.get(&3), Some("c"));
    }

    #[test]
    fn cost_counts_cached_and_output_tokens() {
        let usage = crate::llm::Usage {
            input_tokens: 1_000,
            output_tokens: 200,
            cached_tokens: 10_000,
            cache_write_tokens: 0,
        };
        // Sonnet: 1,000 × $3 + 10,000 × $0.30 + 200 × $15 per million = $0.009.
        let price = Price {
            input: 3.0,
            output: 15.0,
            cached: 0.3,
        };
        assert_eq!(cost_micros(price, &usage), 9_000);
    }
}
