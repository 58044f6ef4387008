//! Sessions: a troubleshooting conversation bound to a chat thread, and everything that happened in it.

use crate::domain::Priority;
use crate::domain::{ThreadKey, word_enum};
use crate::flow::Flow;
use crate::handoff::NewHandoff;
use crate::ids::{AccountId, FactId, FlowId, HandoffId, SessionId, StepId, TeamId, UserId};
use crate::jobs::NewJob;
use crate::outbox::{NewDelivery, NewEvent};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

word_enum!(
    /// Where a session stands.
    SessionStatus, "session status" {
        Active => "active",
        Parked => "parked",
        Escalated => "escalated",
        Resolved => "resolved",
        Abandoned => "abandoned",
    }
);

impl SessionStatus {
    /// Resolved and abandoned sessions take no more flow input.
    pub const fn is_closed(self) -> bool {
        matches!(self, SessionStatus::Resolved | SessionStatus::Abandoned)
    }
}

word_enum!(
    /// How a checklist step went.
    StepOutcome, "step outcome" {
        Done => "done",
        Skipped => "skipped",
        Failed => "failed",
    }
);

word_enum!(
    /// Who established a fact.
    FactSource, "fact source" {
        Technician => "technician",
        Ai => "ai",
        Flow => "flow",
        Psa => "psa",
    }
);

/// A flow offered when the session started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowCandidate {
    pub flow_id: FlowId,
    pub title: String,
}

/// Where the conversation is: the state machine of a session, stored as JSON beside the session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Conversation {
    /// Matching flows were offered; waiting for a pick (or free-form).
    ChoosingFlow { candidates: Vec<FlowCandidate> },
    /// No flow: free-form troubleshooting, recorded as it goes.
    FreeForm,
    /// Walking a decision tree; `node` is the one awaiting an answer.
    Tree { node: String },
    /// Working a checklist; `cursor` counts the items done so far, over every target for
    /// maintenance flows (see [`Session::checklist_len`]).
    Checklist { cursor: usize },
    /// The tree reached a solution; waiting for the technician to confirm it fixed things.
    Solution { node: String },
    /// Every checklist item has an outcome.
    ChecklistComplete,
}

/// A session as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub id: SessionId,
    pub account_id: AccountId,
    pub team_id: TeamId,
    pub thread: ThreadKey,
    pub owner_id: UserId,
    pub created_by: UserId,
    pub problem: String,
    pub status: SessionStatus,
    pub conversation: Conversation,
    /// The flow being followed, as it was when chosen: later edits do not disturb a running session.
    pub flow_id: Option<FlowId>,
    pub flow: Option<Flow>,
    pub psa_ticket: Option<String>,
    /// The open escalation or park handoff, if any.
    pub handoff_id: Option<HandoffId>,
    /// Bumped whenever facts, the active fix or script outputs change (the note-preview cache key).
    pub state_version: i64,
    /// Bumped on every write; writers must name the version they read (optimistic locking).
    pub lock_version: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub resolved_at: Option<Timestamp>,
    /// The resolution summary, once resolved.
    pub resolution: Option<String>,
}

impl Session {
    /// The number of checklist items this session walks (steps × targets for maintenance).
    pub fn checklist_len(&self) -> usize {
        let Some(flow) = &self.flow else { return 0 };
        let steps = flow.checklist().map_or(0, |c| c.len());
        steps * flow.targets().len().max(1)
    }
}

/// What happened, for the timeline. Serialised as JSON in the timeline step's `detail`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StepKind {
    SessionStarted {
        problem: String,
    },
    FlowsOffered {
        titles: Vec<String>,
    },
    FlowChosen {
        title: String,
        version: i32,
    },
    FreeFormChosen,
    /// A question or action was put to the technician.
    NodeShown {
        node: String,
        text: String,
    },
    Answered {
        node: String,
        question: String,
        answer: String,
    },
    ChecklistResult {
        step: String,
        text: String,
        target: Option<String>,
        outcome: StepOutcome,
        output: Option<String>,
    },
    SolutionReached {
        node: String,
        title: String,
        text: String,
    },
    /// The technician said a suggested solution did not fix it.
    SolutionRejected {
        node: String,
        title: String,
    },
    Message {
        text: String,
    },
    FactAdded {
        text: String,
    },
    NoteAdded {
        text: String,
    },
    TicketLinked {
        ticket: String,
    },
    /// The linked ticket's details, pulled from the PSA.
    TicketPulled {
        ticket: crate::psa::Ticket,
        provider: crate::psa::Provider,
    },
    Parked {
        reason: Option<String>,
    },
    Resumed,
    Resolved {
        summary: String,
    },
    Escalated {
        reason: String,
        priority: Priority,
    },
    /// A senior claimed the escalation `after_ms` after it was raised.
    Claimed {
        after_ms: i64,
    },
    /// The claimer said "I'm on it" to the idle reminder.
    ClaimAcknowledged,
    /// The claim lapsed and the escalation went back to the queue.
    Released {
        reason: String,
    },
    /// The copilot answered (or could not): what it said and every model call it took.
    AiTurn {
        reply: Option<crate::ai::TurnReply>,
        calls: Vec<crate::ai::ModelCall>,
        prompt_version: String,
        #[serde(default)]
        citations: Vec<crate::ai::Citation>,
        #[serde(default)]
        problem: Option<String>,
    },
    /// A decision on the copilot's suggested fix.
    FixDecided {
        title: String,
        decision: crate::ai::FixDecision,
    },
    /// Model calls made for the session outside a turn (a resolution note, an escalation's
    /// assessment): what they cost, on the record.
    AiCalls {
        purpose: crate::ai::AiPurpose,
        calls: Vec<crate::ai::ModelCall>,
        /// The resolution note the calls wrote, when they did.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<crate::ai::WrittenNote>,
    },
}

impl StepKind {
    /// The word stored in the `kind` column, for queries over the timeline.
    pub fn name(&self) -> &'static str {
        match self {
            StepKind::SessionStarted { .. } => "session_started",
            StepKind::FlowsOffered { .. } => "flows_offered",
            StepKind::FlowChosen { .. } => "flow_chosen",
            StepKind::FreeFormChosen => "free_form_chosen",
            StepKind::NodeShown { .. } => "node_shown",
            StepKind::Answered { .. } => "answered",
            StepKind::ChecklistResult { .. } => "checklist_result",
            StepKind::SolutionReached { .. } => "solution_reached",
            StepKind::SolutionRejected { .. } => "solution_rejected",
            StepKind::Message { .. } => "message",
            StepKind::FactAdded { .. } => "fact_added",
            StepKind::NoteAdded { .. } => "note_added",
            StepKind::TicketLinked { .. } => "ticket_linked",
            StepKind::TicketPulled { .. } => "ticket_pulled",
            StepKind::Parked { .. } => "parked",
            StepKind::Resumed => "resumed",
            StepKind::Resolved { .. } => "resolved",
            StepKind::Escalated { .. } => "escalated",
            StepKind::Claimed { .. } => "claimed",
            StepKind::ClaimAcknowledged => "claim_acknowledged",
            StepKind::Released { .. } => "released",
            StepKind::AiTurn { .. } => "ai_turn",
            StepKind::FixDecided { .. } => "fix_decided",
            StepKind::AiCalls { .. } => "ai_calls",
        }
    }

    /// Kinds that do not count as a senior's first action after a claim: the claim machinery
    /// itself and what the bot showed.
    pub const NOT_FIRST_ACTIONS: &'static [&'static str] = &[
        "claimed",
        "claim_acknowledged",
        "released",
        "escalated",
        "node_shown",
        "flows_offered",
        "solution_reached",
        "ai_turn",
        "ai_calls",
    ];

    /// Whether a person did something (as opposed to the bot showing something).
    pub fn is_human_action(&self) -> bool {
        !matches!(
            self,
            StepKind::NodeShown { .. }
                | StepKind::FlowsOffered { .. }
                | StepKind::SolutionReached { .. }
                | StepKind::AiTurn { .. }
                | StepKind::AiCalls { .. }
        )
    }

    /// Whether the step changes what the resolution note says (so its cache must not be used):
    /// answers, checklist results, solutions, pulled tickets and the resolution.
    pub fn changes_note(&self) -> bool {
        matches!(
            self,
            StepKind::Answered { .. }
                | StepKind::ChecklistResult { .. }
                | StepKind::SolutionReached { .. }
                | StepKind::SolutionRejected { .. }
                | StepKind::TicketPulled { .. }
                | StepKind::Resolved { .. }
                | StepKind::FixDecided { .. }
        )
    }
}

/// A step about to be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewStep {
    pub actor: Option<UserId>,
    pub kind: StepKind,
}

impl NewStep {
    pub fn by(actor: UserId, kind: StepKind) -> Self {
        Self {
            actor: Some(actor),
            kind,
        }
    }

    pub fn bot(kind: StepKind) -> Self {
        Self { actor: None, kind }
    }
}

/// One event on a session's timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineStep {
    pub id: StepId,
    pub account_id: AccountId,
    pub session_id: SessionId,
    /// Position in the session, from 1.
    pub seq: i64,
    /// `None` for the bot.
    pub actor_id: Option<UserId>,
    pub actor_name: Option<String>,
    pub kind: StepKind,
    pub created_at: Timestamp,
}

/// A confirmed piece of knowledge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fact {
    pub id: FactId,
    pub session_id: SessionId,
    pub text: String,
    pub source: FactSource,
    pub author_id: Option<UserId>,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFact {
    pub text: String,
    pub source: FactSource,
    pub author: Option<UserId>,
}

/// A session about to be created, with its first steps.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub account_id: AccountId,
    pub team_id: TeamId,
    pub thread: ThreadKey,
    pub owner_id: UserId,
    pub problem: String,
    pub conversation: Conversation,
    pub status: SessionStatus,
    pub steps: Vec<NewStep>,
}

/// Everything one event changes on a session, committed atomically by the store.
#[derive(Debug, Clone, Default)]
pub struct SessionChange {
    pub conversation: Option<Conversation>,
    pub status: Option<SessionStatus>,
    pub owner: Option<UserId>,
    /// Set when a flow is chosen.
    pub flow: Option<(FlowId, Flow)>,
    pub psa_ticket: Option<String>,
    pub resolution: Option<String>,
    pub steps: Vec<NewStep>,
    pub facts: Vec<NewFact>,
    /// Bump `state_version` (facts, fix or script output changed). Facts bump it regardless.
    pub bump_state_version: bool,
    /// A handoff opened by this change (becomes the session's open handoff).
    pub handoff: Option<NewHandoff>,
    /// Close the session's open handoff (the session was resolved).
    pub close_handoff: bool,
    pub deliveries: Vec<NewDelivery>,
    pub jobs: Vec<NewJob>,
    pub events: Vec<NewEvent>,
    /// A note queued for the PSA (the post log row). When a note with the same idempotency key
    /// was queued before, nothing is added and the change's `psa_note` jobs are dropped.
    pub psa_note: Option<crate::psa::NewPsaNote>,
    /// A new suggested fix or a decision on the active one (bumps `state_version`).
    pub fix: Option<crate::ai::FixChange>,
}

impl SessionChange {
    pub fn is_empty(&self) -> bool {
        self.conversation.is_none()
            && self.status.is_none()
            && self.owner.is_none()
            && self.flow.is_none()
            && self.psa_ticket.is_none()
            && self.resolution.is_none()
            && self.steps.is_empty()
            && self.facts.is_empty()
            && !self.bump_state_version
            && self.handoff.is_none()
            && !self.close_handoff
            && self.deliveries.is_empty()
            && self.jobs.is_empty()
            && self.events.is_empty()
            && self.psa_note.is_none()
            && self.fix.is_none()
    }

    pub fn step(mut self, step: NewStep) -> Self {
        self.steps.push(step);
        self
    }
}

/// Which sessions to list.
#[derive(Debug, Clone, Default)]
pub struct SessionFilter {
    pub status: Option<SessionStatus>,
    pub limit: i64,
}
