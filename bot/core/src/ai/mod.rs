//! The copilot's neutral side: what a model is asked (a session's context, already redacted), what
//! it answers (a structured turn, a resolution note, an assessment, a draft flow), what each call
//! cost, and the [`Copilot`] port the app implements with a provider (Anthropic, an
//! OpenAI-compatible endpoint, or the offline one).

pub mod context;
pub mod retrieve;

use crate::domain::word_enum;
use crate::handoff::Assessment;
use crate::ids::{AccountId, SessionId, UserId};
use crate::psa::Ticket;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

/// A fix the copilot proposes: what to do, and how sure it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FixProposal {
    pub title: String,
    /// Why this should fix it, in a sentence or two.
    #[serde(default)]
    pub rationale: String,
    /// What to do, in order.
    #[serde(default)]
    pub steps: Vec<String>,
    /// A script to run, when the fix is one.
    #[serde(default)]
    pub script: Option<String>,
    /// 0–100.
    #[serde(default)]
    pub confidence: u8,
}

word_enum!(
    /// What the technician decided about a suggested fix.
    FixDecision, "fix decision" {
        /// Apply it this once.
        OneOff => "one_off",
        /// Apply it and keep it as a draft template.
        DraftTemplate => "draft_template",
        /// Apply it and build a reusable template (a flow proposal) from it.
        BuildTemplate => "build_template",
        /// Not this: the fix is set aside (superseded).
        Dismissed => "dismissed",
    }
);

/// A suggested fix as stored. At most one per session is active (not superseded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SuggestedFix {
    pub id: uuid::Uuid,
    pub account_id: AccountId,
    pub session_id: SessionId,
    pub proposal: FixProposal,
    pub created_at: Timestamp,
    /// When a newer fix replaced it, or it was dismissed.
    pub superseded_at: Option<Timestamp>,
    pub decision: Option<FixDecision>,
    pub decided_by: Option<UserId>,
    pub decided_at: Option<Timestamp>,
}

impl SuggestedFix {
    pub fn is_active(&self) -> bool {
        self.superseded_at.is_none()
    }
}

/// A change to a session's suggested fixes, committed with the session (and bumping its
/// `state_version`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FixChange {
    /// A new fix: the active one, if any, is superseded.
    Suggest {
        id: uuid::Uuid,
        proposal: FixProposal,
    },
    /// A decision on the active fix; `dismissed` also supersedes it.
    Decide {
        fix: uuid::Uuid,
        decision: FixDecision,
        by: UserId,
    },
}

/// One structured answer of the copilot in a session.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TurnReply {
    /// What to say in the thread, briefly.
    #[serde(default)]
    pub message: String,
    /// Questions for the technician.
    #[serde(default)]
    pub questions: Vec<String>,
    /// Things to check or do next.
    #[serde(default)]
    pub actions: Vec<String>,
    /// Facts the conversation established.
    #[serde(default)]
    pub facts: Vec<String>,
    #[serde(default)]
    pub fix: Option<FixProposal>,
    /// How sure the model is of its reading of the problem, 0–100.
    #[serde(default)]
    pub confidence: u8,
}

word_enum!(
    /// What a model call outside a turn was for.
    AiPurpose, "AI purpose" {
        /// The four-section resolution note.
        ResolutionNote => "resolution_note",
        /// An escalation's likely cause, next steps and confidence.
        Assessment => "assessment",
    }
);

/// Which model served a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// Short confirmations: the fast, cheap model.
    Fast,
    /// Discovery and complex decisions: the deep model.
    Deep,
    /// No model: the offline provider.
    Offline,
}

impl Tier {
    pub const fn as_str(self) -> &'static str {
        match self {
            Tier::Fast => "fast",
            Tier::Deep => "deep",
            Tier::Offline => "offline",
        }
    }
}

/// One call to a model, as recorded on the timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelCall {
    /// `anthropic`, `openai` or `offline`.
    pub provider: String,
    pub model: String,
    pub tier: Tier,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Input tokens read from the provider's prompt cache.
    #[serde(default)]
    pub cached_tokens: u64,
    /// Input tokens written to the provider's prompt cache.
    #[serde(default)]
    pub cache_write_tokens: u64,
    pub latency_ms: u64,
    /// Estimated cost in millionths of a US dollar (from the configured price table).
    pub cost_micros: u64,
    /// Why the call's answer was not used, when it was not (unreadable, low confidence, error).
    #[serde(default)]
    pub problem: Option<String>,
}

/// Something retrieved for a turn: a flow or a resolved session like this one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Citation {
    pub kind: CitationKind,
    /// The flow's slug or the session's id.
    pub id: String,
    pub title: String,
    /// What it says, briefly (a flow's description, a session's resolution).
    pub summary: String,
    /// A companion link to it, when the companion is configured.
    #[serde(default)]
    pub url: Option<String>,
    /// For a flow: its step closest to the problem.
    #[serde(default)]
    pub step: Option<CitedStep>,
}

/// A step of a cited flow: its id (the flow page's anchor is `step-<id>`) and what it says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CitedStep {
    pub id: String,
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CitationKind {
    Flow,
    Session,
}

/// A session as the copilot sees it. Every string is redacted before it is put here, and again
/// by the provider before anything is sent.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SessionContext {
    pub account_id: Option<AccountId>,
    pub session_id: Option<SessionId>,
    pub problem: String,
    /// The flow being followed, if any.
    pub flow: Option<String>,
    /// The timeline, one line per step, oldest first.
    pub timeline: Vec<String>,
    pub facts: Vec<String>,
    pub active_fix: Option<FixProposal>,
    /// The linked PSA ticket's details, when pulled.
    pub ticket: Option<Ticket>,
    /// What retrieval found for this session.
    pub retrieved: Vec<Citation>,
    /// The technician's latest message (the one this turn answers).
    pub latest: Option<String>,
    /// How many copilot turns the session has had.
    pub turns_so_far: usize,
    pub state_version: i64,
    /// The resolution summary, once resolved.
    #[serde(default)]
    pub resolution: Option<String>,
    /// The solution the flow arrived at (its title and text), unless the technician said it did
    /// not fix it.
    #[serde(default)]
    pub solution: Option<String>,
    /// The resolution note a model already wrote at this `state_version` (recorded on the
    /// timeline, so every replica and every restart finds it). Not shown to the model.
    #[serde(skip)]
    pub written_note: Option<String>,
}

/// A resolution note as a model wrote it, for the session's state at the time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrittenNote {
    pub state_version: i64,
    pub markdown: String,
}

/// What a turn produced: the reply (none when every attempt was unreadable) and every call made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TurnOutcome {
    pub reply: Option<TurnReply>,
    pub calls: Vec<ModelCall>,
    /// The prompt set's version.
    pub prompt_version: String,
    /// Why there is no reply, in words for the thread.
    pub problem: Option<String>,
}

/// A four-section resolution note and how it was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoteOutcome {
    pub markdown: String,
    pub calls: Vec<ModelCall>,
    /// Served from the (session, state_version) cache: no model was called.
    pub from_cache: bool,
}

/// A drafted flow (YAML in the library's format) and why it was proposed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowDraft {
    pub yaml: String,
    pub rationale: String,
    pub calls: Vec<ModelCall>,
}

/// Resolved sessions that share a problem no flow covers, for the flywheel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionCluster {
    /// The words the sessions share.
    pub theme: String,
    pub sessions: Vec<ResolvedSummary>,
}

/// A resolved session, briefly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedSummary {
    pub session_id: SessionId,
    pub problem: String,
    pub resolution: String,
    /// The steps and facts that led there, one line each.
    pub steps: Vec<String>,
}

/// Why the copilot could not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AiError {
    /// The provider refused the key.
    #[error("the AI provider refused the API key")]
    Unauthorized,
    /// Rate limited or overloaded beyond the retries.
    #[error("the AI provider is busy: {0}")]
    Busy(String),
    /// A spend or quota limit: retrying will not help.
    #[error("the AI provider's spending limit is reached: {0}")]
    SpendLimit(String),
    /// The request was refused as invalid.
    #[error("the AI provider rejected the request: {0}")]
    Rejected(String),
    /// Network failure, timeout or 5xx beyond the retries.
    #[error("the AI provider is unavailable: {0}")]
    Unavailable(String),
    /// The answer could not be used.
    #[error("the AI's answer could not be read: {0}")]
    Unreadable(String),
    /// The answer failed validation (a draft flow the validator refused).
    #[error("the AI's draft is not valid: {0}")]
    Invalid(String),
}

/// The copilot: a provider chosen by configuration, with routing, prompts, parsing, redaction and
/// the note cache behind it. Every method redacts what it sends.
#[async_trait::async_trait]
pub trait Copilot: Send + Sync + std::fmt::Debug {
    /// `offline`, `anthropic` or `openai`: whether a model is configured.
    fn provider(&self) -> &str;

    /// Answers the session's latest message (or starts discovery when there is none).
    async fn turn(&self, context: &SessionContext) -> TurnOutcome;

    /// The four-section resolution note, cached per (session, state_version).
    async fn resolution_note(&self, context: &SessionContext) -> Result<NoteOutcome, AiError>;

    /// The resolution note when it costs no model call: the one cached for this
    /// (session, state_version), or one written offline. `None` when a model must be asked,
    /// which is work for a job, never for the path that answers a person.
    fn note_at_hand(&self, context: &SessionContext) -> Option<NoteOutcome>;

    /// Likely cause, next steps and confidence for an escalation.
    async fn assess(
        &self,
        context: &SessionContext,
    ) -> Result<(Assessment, Vec<ModelCall>), AiError>;

    /// Drafts a flow from a description; `feedback` carries the validator's errors on a retry.
    async fn build_flow(
        &self,
        description: &str,
        feedback: Option<&str>,
    ) -> Result<FlowDraft, AiError>;

    /// Drafts a flow from a cluster of resolved sessions (the flywheel).
    async fn flow_from_sessions(
        &self,
        cluster: &SessionCluster,
        feedback: Option<&str>,
    ) -> Result<FlowDraft, AiError>;

    /// Embeddings of `texts` (redacted before sending), when an embedding model is configured;
    /// `None` otherwise or when the call failed (retrieval then uses full-text search alone).
    async fn embed(&self, texts: &[String]) -> Option<Vec<Vec<f32>>>;
}

/// Clamps a model's confidence (any number, possibly negative or fractional) to 0–100.
pub fn clamp_confidence(value: f64) -> u8 {
    if value.is_nan() {
        return 0;
    }
    // Truncation is intended: the value is already within 0–100.
    value.round().clamp(0.0, 100.0) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confidence_is_clamped() {
        assert_eq!(clamp_confidence(-5.0), 0);
        assert_eq!(clamp_confidence(150.0), 100);
        assert_eq!(clamp_confidence(72.4), 72);
        assert_eq!(clamp_confidence(f64::NAN), 0);
        assert_eq!(clamp_confidence(f64::INFINITY), 100);
    }
}
