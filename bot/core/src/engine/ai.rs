//! The engine's side of the copilot: when a turn is queued, deciding on a suggested fix, the
//! resolution-note preview, and `/rf flow build`. The engine never calls a model: turns,
//! assessments, flow drafts and notes that need writing are jobs; a preview is answered at once
//! from the (session, state_version) cache when nothing changed.

use super::{Decision, Engine, EngineResult, Turn, viewer_refusal};
use crate::ai::{
    Copilot, FixChange, FixDecision, NoteOutcome, SuggestedFix, context::session_context,
};
use crate::domain::{Actor, ChannelRef};
use crate::effect::{Action, Block, Choice, Message, Place};
use crate::jobs::{Job, NewJob};
use crate::session::{Conversation, NewStep, SessionChange, SessionStatus, StepKind};
use std::sync::Arc;

/// How long after a resolution the flywheel runs (resolutions in between share the run).
const FLYWHEEL_DELAY_MILLIS: i64 = 10 * 60_000;

/// A copilot turn for `session`; turns queued while one waits are one turn.
pub(crate) fn ai_turn_job(
    account: crate::ids::AccountId,
    session: crate::ids::SessionId,
    now: crate::time::Timestamp,
) -> NewJob {
    NewJob::now(account, Job::AiTurn { session }, now).coalesced(format!("ai-turn:{session}"))
}

/// How the copilot takes part in sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum AiMode {
    /// No copilot at all.
    #[default]
    Off,
    /// The offline provider: it answers free-form sessions only (a flow already guides the rest).
    Offline,
    /// A model: it answers whatever is typed in a session.
    Model,
}

impl Engine {
    /// Lets the copilot answer in sessions, assess escalations and draft flows.
    pub fn with_copilot(mut self, copilot: Arc<dyn Copilot>) -> Self {
        self.copilot = Some(copilot);
        self
    }

    pub(crate) fn ai_mode(&self) -> AiMode {
        match &self.copilot {
            None => AiMode::Off,
            Some(c) if c.provider() == "offline" => AiMode::Offline,
            Some(_) => AiMode::Model,
        }
    }

    /// `preview` / "Preview resolution note": the four-section note at once when it costs no
    /// model call (unchanged since the last preview, or offline); otherwise a job asks the model
    /// and shows the note in the thread, so a slow model holds up no other event.
    pub(super) async fn note_preview(&self, turn: &Turn<'_>) -> EngineResult<Message> {
        let Some(copilot) = &self.copilot else {
            return Ok(Message::text(
                "The resolution note needs the copilot, which is turned off on this server (`[ai] provider`).",
            ));
        };
        let (context, _) =
            session_context(self.store.as_ref(), &self.redactor, turn.session).await?;
        if let Some(note) = copilot.note_at_hand(&context) {
            return Ok(note_message(&self.redactor, &note));
        }
        let session = turn.session.id;
        let job = NewJob::now(
            turn.session.account_id,
            Job::NotePreview { session },
            self.now(),
        )
        .coalesced(format!("note-preview:{session}"));
        self.store.enqueue(vec![job], self.now()).await?;
        self.wake_workers();
        Ok(Message::text(
            "Writing the resolution note; it will appear here in a moment.",
        ))
    }

    /// `/rf flow build <description>`: queues the draft and says so.
    pub(super) async fn flow_build(
        &self,
        actor: &Actor,
        channel: &ChannelRef,
        description: &str,
    ) -> EngineResult<String> {
        if !actor.role.can_work_sessions() {
            return Ok(viewer_refusal());
        }
        if self.ai_mode() != AiMode::Model {
            return Ok(
                "The flow builder needs an AI model. Ask your operator to set `[ai] provider` to `anthropic` or `openai`."
                    .to_owned(),
            );
        }
        let description = self.redactor.redact(description).into_owned();
        let job = NewJob::now(
            actor.account_id,
            Job::FlowBuild {
                description,
                user: actor.user_id,
                platform_user_id: actor.platform_user_id.clone(),
                place: Place {
                    channel: channel.clone(),
                    thread: None,
                },
            },
            self.now(),
        );
        self.store.enqueue(vec![job], self.now()).await?;
        self.wake_workers();
        Ok("Drafting a flow from your description. I'll tell you here when the proposal is ready for review (usually under a minute).".to_owned())
    }
}

impl Turn<'_> {
    /// Queues a copilot turn for this session when the copilot answers here.
    pub(crate) fn ai_turn_jobs(&self, conversation: &Conversation) -> Vec<NewJob> {
        let answers = match self.ai {
            AiMode::Off => false,
            AiMode::Offline => *conversation == Conversation::FreeForm,
            AiMode::Model => true,
        };
        if !answers || self.session.status != SessionStatus::Active {
            return Vec::new();
        }
        vec![ai_turn_job(
            self.session.account_id,
            self.session.id,
            self.now,
        )]
    }

    /// After a resolution, the flywheel looks for new flows (a while later, once per burst).
    pub(crate) fn flywheel_jobs(&self) -> Vec<NewJob> {
        if self.ai != AiMode::Model {
            return Vec::new();
        }
        let account = self.session.account_id;
        vec![
            NewJob::at(
                account,
                Job::Flywheel,
                self.now.plus_millis(FLYWHEEL_DELAY_MILLIS),
            )
            .coalesced(format!("flywheel:{account}")),
        ]
    }

    /// A model assesses a new escalation (the offline assessment stands until it has).
    pub(crate) fn ai_assess_jobs(&self, handoff: crate::ids::HandoffId) -> Vec<NewJob> {
        if self.ai != AiMode::Model {
            return Vec::new();
        }
        vec![NewJob::now(
            self.session.account_id,
            Job::AiAssess { handoff },
            self.now,
        )]
    }

    /// A decision on the suggested fix `fix`. Deciding on a fix that is no longer the active one
    /// (a newer suggestion replaced it, or it was dismissed) is refused with what happened.
    pub(crate) fn decide_fix(&self, fix: uuid::Uuid, decision: FixDecision) -> Decision {
        let fixes = &self.loaded.fixes;
        let Some(target) = fixes.iter().find(|f| f.id == fix) else {
            return self.refuse("That suggested fix no longer exists.");
        };
        if !target.is_active() {
            return self.refuse(superseded_refusal(target, fixes));
        }
        let title = target.proposal.title.clone();
        let text = match decision {
            FixDecision::OneOff => format!(
                "{} is applying the fix \"{title}\" (one-off). Say how it goes; `resolve` when it's fixed.",
                self.actor.display_name
            ),
            FixDecision::DraftTemplate => format!(
                "{} is applying the fix \"{title}\"; it is kept as a draft template for review in the web companion.",
                self.actor.display_name
            ),
            FixDecision::BuildTemplate => format!(
                "{} is applying the fix \"{title}\"; a reusable flow is being drafted from it for review.",
                self.actor.display_name
            ),
            FixDecision::Dismissed => format!(
                "{} dismissed the fix \"{title}\". The copilot will look for something else.",
                self.actor.display_name
            ),
        };
        let mut change = SessionChange {
            fix: Some(FixChange::Decide {
                fix,
                decision,
                by: self.actor.user_id,
            }),
            ..SessionChange::default()
        }
        .step(NewStep::by(
            self.actor.user_id,
            StepKind::FixDecided {
                title: title.clone(),
                decision,
            },
        ));
        match decision {
            FixDecision::DraftTemplate | FixDecision::BuildTemplate if self.ai == AiMode::Model => {
                change.jobs.push(NewJob::now(
                    self.session.account_id,
                    Job::FlowBuild {
                        description: fix_description(&self.session.problem, target),
                        user: self.actor.user_id,
                        platform_user_id: self.actor.platform_user_id.clone(),
                        place: self.place(),
                    },
                    self.now,
                ));
            }
            FixDecision::Dismissed => change
                .jobs
                .extend(self.ai_turn_jobs(&self.session.conversation)),
            _ => {}
        }
        Decision {
            change,
            effects: vec![self.reply(Message::text(text))],
        }
    }
}

/// The resolution-note preview as shown in the thread, with where it came from.
pub(crate) fn note_message(redactor: &crate::redact::Redactor, note: &NoteOutcome) -> Message {
    let source = match note.calls.last() {
        _ if note.from_cache => {
            "unchanged since the last preview, so no AI call was made".to_owned()
        }
        Some(call) => format!("written by {} in {} ms", call.model, call.latency_ms),
        None => "written offline from the session's facts and steps".to_owned(),
    };
    Message::new()
        .heading("Resolution note (preview)")
        .with(Block::Code {
            text: redactor.redact(&note.markdown).into_owned(),
        })
        .context(format!(
            "{source}. AI may be wrong: check it before it goes in the ticket."
        ))
}

/// Why a decision on a fix that is no longer active is refused.
fn superseded_refusal(target: &SuggestedFix, fixes: &[SuggestedFix]) -> String {
    if target.decision == Some(FixDecision::Dismissed) {
        return format!("\"{}\" was dismissed already.", target.proposal.title);
    }
    match fixes.iter().rev().find(|f| f.is_active()) {
        Some(active) => format!(
            "\"{}\" was superseded by a newer suggestion, \"{}\". Decide on that one instead.",
            target.proposal.title, active.proposal.title
        ),
        None => format!("\"{}\" was superseded already.", target.proposal.title),
    }
}

/// What the flow builder is asked for when a fix becomes a template.
fn fix_description(problem: &str, fix: &SuggestedFix) -> String {
    let mut text = format!(
        "A procedure for this problem: {problem}. The fix that worked: {}.",
        fix.proposal.title
    );
    if !fix.proposal.steps.is_empty() {
        text.push_str(" Steps: ");
        text.push_str(&fix.proposal.steps.join("; "));
    }
    text
}

/// The buttons under a suggested fix.
pub(crate) fn fix_choices(session: crate::ids::SessionId, fix: uuid::Uuid) -> Vec<Choice> {
    let choice = |label: &str, decision| {
        Choice::new(
            label,
            Action::Fix {
                session,
                fix,
                decision,
            },
        )
    };
    vec![
        choice("Apply (one-off)", FixDecision::OneOff).primary(),
        choice("Apply + draft template", FixDecision::DraftTemplate),
        choice("Apply + build template", FixDecision::BuildTemplate),
        choice("Dismiss", FixDecision::Dismissed).danger(),
    ]
}
