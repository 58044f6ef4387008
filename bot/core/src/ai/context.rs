//! What the copilot is told about a session: built from the store, redacted on the way in.

use super::{FixProposal, SessionContext};
use crate::export::describe_step;
use crate::ports::{Store, StoreResult};
use crate::redact::Redactor;
use crate::session::{Session, StepKind, TimelineStep};

/// The most timeline lines a prompt carries (the latest ones).
const MAX_TIMELINE: usize = 80;

/// Loads `session`'s timeline, facts, active fix and pulled ticket into a [`SessionContext`].
/// `latest` is what the technician said since the copilot's last turn.
pub async fn session_context(
    store: &dyn Store,
    redactor: &Redactor,
    session: &Session,
) -> StoreResult<(SessionContext, Vec<TimelineStep>)> {
    let account = session.account_id;
    let timeline = store.timeline(account, session.id).await?;
    let facts = store.facts(account, session.id).await?;
    let fixes = store.suggested_fixes(account, session.id).await?;
    let redact = |text: &str| redactor.redact(text).into_owned();
    let ticket = timeline.iter().rev().find_map(|step| match &step.kind {
        StepKind::TicketPulled { ticket, .. } => Some(ticket.clone()),
        _ => None,
    });
    let turns_so_far = timeline
        .iter()
        .filter(|s| matches!(s.kind, StepKind::AiTurn { .. }))
        .count();
    let last_turn = timeline
        .iter()
        .rposition(|s| matches!(s.kind, StepKind::AiTurn { .. }));
    let latest: Vec<String> = timeline[last_turn.map_or(0, |i| i + 1)..]
        .iter()
        .filter_map(|step| match &step.kind {
            StepKind::Message { text } => Some(redact(text)),
            _ => None,
        })
        .collect();
    let lines: Vec<String> = timeline
        .iter()
        .map(|step| {
            let line = describe_step(step);
            let mut text = format!("{} {}", line.time, line.text);
            if let Some(emphasis) = line.emphasis {
                text.push(' ');
                text.push_str(&emphasis);
            }
            if let Some(output) = line.output {
                text.push_str(" | output: ");
                text.push_str(&output);
            }
            redact(&text)
        })
        .collect();
    let skip = lines.len().saturating_sub(MAX_TIMELINE);
    let active_fix = fixes
        .iter()
        .rev()
        .find(|f| f.is_active())
        .map(|f| redact_fix(redactor, &f.proposal));
    // Where the flow ended, unless that did not fix it.
    let solution = timeline
        .iter()
        .rev()
        .find_map(|step| match &step.kind {
            StepKind::SolutionRejected { .. } => Some(None),
            StepKind::SolutionReached { title, text, .. } => {
                Some(Some(redact(&format!("{title}: {text}"))))
            }
            _ => None,
        })
        .flatten();
    // The note a model wrote for the session as it is now: no need to ask again.
    let written_note = timeline.iter().rev().find_map(|step| match &step.kind {
        StepKind::AiCalls {
            note: Some(note), ..
        } if note.state_version == session.state_version => Some(note.markdown.clone()),
        _ => None,
    });
    let context = SessionContext {
        account_id: Some(account),
        session_id: Some(session.id),
        problem: redact(&session.problem),
        flow: session.flow.as_ref().map(|f| f.meta.title.clone()),
        timeline: lines.into_iter().skip(skip).collect(),
        facts: facts.iter().map(|f| redact(&f.text)).collect(),
        active_fix,
        ticket,
        retrieved: Vec::new(),
        latest: (!latest.is_empty()).then(|| latest.join("\n")),
        turns_so_far,
        state_version: session.state_version,
        resolution: session.resolution.as_deref().map(redact),
        solution,
        written_note,
    };
    Ok((context, timeline))
}

fn redact_fix(redactor: &Redactor, fix: &FixProposal) -> FixProposal {
    let redact = |text: &str| redactor.redact(text).into_owned();
    FixProposal {
        title: redact(&fix.title),
        rationale: redact(&fix.rationale),
        steps: fix.steps.iter().map(|s| redact(s)).collect(),
        script: fix.script.as_deref().map(redact),
        confidence: fix.confidence,
    }
}
