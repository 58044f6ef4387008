//! Handoffs: a session parked for the team or escalated to a senior, with everything the senior
//! needs to start at once (the snapshot and an assessment), and who claimed it when.

use crate::domain::{Priority, ThreadKey, word_enum};
use crate::effect::{Action, Block, Choice, Message};
use crate::flow::{FlowBody, NodeKind};
use crate::ids::{AccountId, HandoffId, SessionId, TeamId, UserId};
use crate::notify::Email;
use crate::session::{Conversation, Fact, Session, StepKind, StepOutcome, TimelineStep};
use crate::time::{Timestamp, human_duration};
use serde::{Deserialize, Serialize};
use std::collections::{HashSet, VecDeque};

word_enum!(
    /// Why a session was handed off.
    HandoffIntent, "handoff intent" {
        Park => "park",
        Escalate => "escalate",
    }
);

/// The session as it stood when it was handed off.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Snapshot {
    pub problem: String,
    pub flow: Option<String>,
    pub ticket: Option<String>,
    /// What was checked and done, in order.
    pub steps_attempted: Vec<String>,
    /// Fixes that did not work and steps that failed.
    pub dead_ends: Vec<String>,
    pub facts: Vec<String>,
    /// A fix proposed but not yet confirmed.
    pub active_fix: Option<String>,
    /// Where the session stands: the open question or step.
    pub latest_state: String,
}

/// What is probably wrong and what to try next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assessment {
    pub likely_cause: String,
    pub next_steps: Vec<String>,
    /// 0–100.
    pub confidence: u8,
    /// `offline` or the model that wrote it.
    pub source: String,
}

/// A handoff as stored, with the names a card needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handoff {
    pub id: HandoffId,
    pub account_id: AccountId,
    pub team_id: TeamId,
    pub session_id: SessionId,
    pub thread: ThreadKey,
    pub intent: HandoffIntent,
    pub requested_by: UserId,
    pub requested_by_name: String,
    pub reason: String,
    pub priority: Priority,
    pub snapshot: Snapshot,
    pub assessment: Assessment,
    pub claimed_by: Option<UserId>,
    pub claimed_by_name: Option<String>,
    pub claimed_at: Option<Timestamp>,
    pub acknowledged_at: Option<Timestamp>,
    /// How many times it has been claimed (each claim is a generation for idle checks).
    pub claim_count: i32,
    pub release_count: i32,
    pub closed_at: Option<Timestamp>,
    pub created_at: Timestamp,
}

impl Handoff {
    pub fn is_open(&self) -> bool {
        self.closed_at.is_none()
    }

    pub fn is_unclaimed(&self) -> bool {
        self.is_open() && self.claimed_by.is_none()
    }
}

/// A handoff about to be created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewHandoff {
    pub id: HandoffId,
    pub intent: HandoffIntent,
    pub requested_by: UserId,
    pub reason: String,
    pub priority: Priority,
    pub snapshot: Snapshot,
    pub assessment: Assessment,
}

/// What a claim came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    Won(Box<Handoff>),
    AlreadyClaimed {
        by: UserId,
        by_name: String,
        at: Timestamp,
    },
    /// The session was resolved, or the handoff was withdrawn.
    Closed,
}

/// One claim of a handoff, for the release/re-claim history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimRecord {
    pub user_id: UserId,
    pub claimed_at: Timestamp,
    pub released_at: Option<Timestamp>,
}

impl Snapshot {
    /// Reads the snapshot off a session's timeline and facts.
    pub fn of(session: &Session, timeline: &[TimelineStep], facts: &[Fact]) -> Self {
        let mut steps_attempted = Vec::new();
        let mut dead_ends = Vec::new();
        for step in timeline {
            let who = step.actor_name.as_deref().unwrap_or("bot");
            match &step.kind {
                StepKind::FlowChosen { title, .. } => {
                    steps_attempted.push(format!("Followed the flow \"{title}\""))
                }
                StepKind::Answered {
                    question, answer, ..
                } => steps_attempted.push(format!("{question} → {answer}")),
                StepKind::ChecklistResult {
                    text,
                    target,
                    outcome,
                    output,
                    ..
                } => {
                    let target = target
                        .as_ref()
                        .map(|t| format!("[{t}] "))
                        .unwrap_or_default();
                    let output = output
                        .as_ref()
                        .map(|o| format!(" ({o})"))
                        .unwrap_or_default();
                    let line = format!("{target}{text}: {outcome}{output}");
                    if *outcome == StepOutcome::Failed {
                        dead_ends.push(line.clone());
                    }
                    steps_attempted.push(line);
                }
                StepKind::SolutionRejected { title, .. } => {
                    dead_ends.push(format!("\"{title}\" did not fix it"))
                }
                StepKind::Message { text } => steps_attempted.push(format!("{who}: {text}")),
                StepKind::NoteAdded { text } => steps_attempted.push(format!("Note: {text}")),
                _ => {}
            }
        }
        let (active_fix, latest_state) = describe_position(session);
        Self {
            problem: session.problem.clone(),
            flow: session.flow.as_ref().map(|f| f.meta.title.clone()),
            ticket: session.psa_ticket.clone(),
            steps_attempted,
            dead_ends,
            facts: facts.iter().map(|f| f.text.clone()).collect(),
            active_fix,
            latest_state,
        }
    }
}

fn describe_position(session: &Session) -> (Option<String>, String) {
    let tree = session.flow.as_ref().and_then(|f| match &f.body {
        FlowBody::Tree(tree) => Some(tree),
        _ => None,
    });
    match &session.conversation {
        Conversation::ChoosingFlow { .. } => (None, "No flow chosen yet.".to_owned()),
        Conversation::FreeForm => (
            None,
            "Troubleshooting free-form (no flow, or the flow's fix did not work).".to_owned(),
        ),
        Conversation::Tree { node } => {
            let text = tree
                .and_then(|t| t.node(node))
                .map_or_else(|| node.clone(), |n| n.text.clone());
            (None, format!("Waiting on: {text}"))
        }
        Conversation::Solution { node } => {
            let fix = tree.and_then(|t| t.node(node)).map(|n| {
                format!(
                    "{}: {}",
                    n.title.as_deref().unwrap_or("Suggested fix"),
                    n.text
                )
            });
            (fix, "A fix was suggested but not yet confirmed.".to_owned())
        }
        Conversation::Checklist { cursor } => (
            None,
            format!(
                "Checklist: {} of {} items done.",
                cursor,
                session.checklist_len()
            ),
        ),
        Conversation::ChecklistComplete => {
            (None, "Every checklist item has an outcome.".to_owned())
        }
    }
}

/// The assessment available without a model: the fixes the flow still holds from where the
/// technician stands, most direct first.
pub fn offline_assessment(session: &Session, snapshot: &Snapshot) -> Assessment {
    let mut next_steps = Vec::new();
    let mut candidates = Vec::new();
    if let (Some(flow), Conversation::Tree { node } | Conversation::Solution { node }) =
        (&session.flow, &session.conversation)
        && let FlowBody::Tree(tree) = &flow.body
    {
        if let Some(current) = tree.node(node)
            && current.kind != NodeKind::Solution
        {
            next_steps.push(format!("Answer the open question: {}", current.text));
        }
        // Breadth-first from the current node: the nearest unvisited solutions are the likeliest.
        let rejected: HashSet<&str> = snapshot.dead_ends.iter().map(String::as_str).collect();
        let mut seen = HashSet::new();
        let mut queue = VecDeque::from([node.as_str()]);
        while let Some(id) = queue.pop_front() {
            if !seen.insert(id) {
                continue;
            }
            let Some(n) = tree.node(id) else { continue };
            if n.kind == NodeKind::Solution && id != node {
                let title = n.title.clone().unwrap_or_else(|| n.text.clone());
                if !rejected.contains(format!("\"{title}\" did not fix it").as_str()) {
                    candidates.push(title);
                }
            }
            queue.extend(n.branches.iter().map(|b| b.next.as_str()));
        }
    }
    if let Some(fix) = &snapshot.active_fix {
        next_steps.insert(0, format!("Confirm or rule out the suggested fix: {fix}"));
    }
    next_steps.extend(candidates.iter().take(3).map(|fix| format!("Try: {fix}")));
    let (likely_cause, confidence) = match candidates.as_slice() {
        [only] => (
            format!("Probably: {only} (the flow's remaining fix from where the session stands)"),
            45,
        ),
        [first, second, ..] => (
            format!("Probably {first}, or {second} (the flow's nearest remaining fixes)"),
            if snapshot.dead_ends.is_empty() {
                40
            } else {
                30
            },
        ),
        [] if !snapshot.dead_ends.is_empty() => (
            "Outside the standard fixes: the flow's fixes were tried and did not work.".to_owned(),
            20,
        ),
        [] => (
            "Not enough evidence yet; the session has little recorded.".to_owned(),
            10,
        ),
    };
    if next_steps.is_empty() {
        next_steps.extend([
            "Reproduce the problem with the user and capture the exact error text".to_owned(),
            "Check the relevant event log (System / Application) around the failure time"
                .to_owned(),
            "Confirm whether other users or devices are affected".to_owned(),
        ]);
    }
    next_steps.truncate(5);
    Assessment {
        likely_cause,
        next_steps,
        confidence,
        source: "offline".to_owned(),
    }
}

fn priority_label(priority: Priority) -> &'static str {
    match priority {
        Priority::Low => "Low",
        Priority::Normal => "Normal",
        Priority::High => "High",
        Priority::Urgent => "URGENT",
    }
}

/// How a card reads at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardMood {
    /// First posting.
    New,
    /// The ladder's repost: mention everyone.
    Reminder,
}

/// The escalation card: problem, requester, priority, age, likely cause, steps tried; Claim and
/// View handoff. Nothing more.
pub fn escalation_card(handoff: &Handoff, now: Timestamp, mood: CardMood) -> Message {
    let s = &handoff.snapshot;
    let mut message = Message::new();
    if mood == CardMood::Reminder && handoff.is_unclaimed() {
        message = message.paragraph(format!(
            "@here still unclaimed after {}",
            human_duration(now.millis_since(handoff.created_at))
        ));
    }
    message = message
        .heading(format!(
            "{} escalation: {}",
            priority_label(handoff.priority),
            s.problem
        ))
        .with(Block::Fields {
            fields: vec![
                ("Requested by".to_owned(), handoff.requested_by_name.clone()),
                (
                    "Priority".to_owned(),
                    priority_label(handoff.priority).to_owned(),
                ),
                (
                    "Escalated".to_owned(),
                    format!(
                        "{} ({} ago)",
                        handoff.created_at.display_utc(),
                        human_duration(now.millis_since(handoff.created_at))
                    ),
                ),
                (
                    "Steps tried".to_owned(),
                    s.steps_attempted.len().to_string(),
                ),
            ],
        })
        .paragraph(format!("Reason: {}", handoff.reason))
        .context(format!(
            "Likely cause ({}% confidence, AI may be wrong): {}",
            handoff.assessment.confidence, handoff.assessment.likely_cause
        ));
    let view = Choice::new(
        "View handoff",
        Action::ViewHandoff {
            handoff: handoff.id,
        },
    );
    if let Some(closed) = handoff.closed_at {
        return message.paragraph(format!(
            "Closed {}: the session was resolved.",
            closed.display_utc()
        ));
    }
    match (&handoff.claimed_by_name, handoff.claimed_at) {
        (Some(name), Some(at)) => message
            .paragraph(format!(
                "Claimed by {name} · {} after escalation",
                human_duration(at.millis_since(handoff.created_at))
            ))
            .choices(vec![view]),
        _ => {
            if handoff.release_count > 0 {
                message = message.paragraph(format!(
                    "Released back to the queue: the last claimer did not start within the idle limit ({} release{}).",
                    handoff.release_count,
                    if handoff.release_count == 1 { "" } else { "s" }
                ));
            }
            message.choices(vec![
                Choice::new(
                    "Claim",
                    Action::Claim {
                        handoff: handoff.id,
                    },
                )
                .primary(),
                view,
            ])
        }
    }
}

/// The private read-in for whoever claimed: problem, what's been tried, the assessment, and where
/// to start, with the suggested next steps as quick replies.
pub fn read_in(handoff: &Handoff, now: Timestamp) -> Message {
    let s = &handoff.snapshot;
    let mut message = Message::new()
        .heading(format!("You claimed: {}", s.problem))
        .context(format!(
            "Escalated by {} {} ago · priority {} · reason: {}",
            handoff.requested_by_name,
            human_duration(now.millis_since(handoff.created_at)),
            priority_label(handoff.priority),
            handoff.reason
        ))
        .paragraph("*Problem*")
        .paragraph(match (&s.flow, &s.ticket) {
            (Some(flow), Some(ticket)) => {
                format!("{} (flow \"{flow}\", ticket #{ticket})", s.problem)
            }
            (Some(flow), None) => format!("{} (flow \"{flow}\")", s.problem),
            (None, Some(ticket)) => format!("{} (ticket #{ticket})", s.problem),
            (None, None) => s.problem.clone(),
        })
        .paragraph("*What's been tried*");
    message = if s.steps_attempted.is_empty() {
        message.paragraph("Nothing recorded yet.")
    } else {
        message.with(Block::List {
            items: s
                .steps_attempted
                .iter()
                .rev()
                .take(10)
                .rev()
                .cloned()
                .collect(),
        })
    };
    if !s.dead_ends.is_empty() {
        message = message.paragraph("Dead ends:").with(Block::List {
            items: s.dead_ends.clone(),
        });
    }
    if !s.facts.is_empty() {
        message = message.paragraph("Confirmed facts:").with(Block::List {
            items: s.facts.clone(),
        });
    }
    let a = &handoff.assessment;
    message = message
        .paragraph(format!(
            "*Assessment* ({}% confidence; AI may be wrong)",
            a.confidence
        ))
        .paragraph(format!("Likely cause: {}", a.likely_cause))
        .paragraph("*Start here*")
        .paragraph(s.latest_state.clone());
    if let Some(fix) = &s.active_fix {
        message = message.paragraph(format!("Suggested fix awaiting confirmation: {fix}"));
    }
    let quick: Vec<Choice> = a
        .next_steps
        .iter()
        .enumerate()
        .take(4)
        .map(|(step, text)| {
            Choice::new(
                text.clone(),
                Action::StartStep {
                    handoff: handoff.id,
                    step,
                },
            )
        })
        .collect();
    message.choices(quick).context("You've been added to the session's thread; everything you do there goes into the ticket note.")
}

/// "Already claimed by X N s ago", for everyone who clicked too late.
pub fn already_claimed(by_name: &str, at: Timestamp, now: Timestamp) -> Message {
    Message::text(format!(
        "Already claimed by {by_name} {} ago.",
        human_duration(now.millis_since(at))
    ))
}

/// The e-mail for seniors who are offline (and owners, at the top of the ladder).
pub fn escalation_email(handoff: &Handoff, to: &str, link: Option<&str>, now: Timestamp) -> Email {
    let s = &handoff.snapshot;
    let subject = format!(
        "[{}] Escalation: {}",
        priority_label(handoff.priority),
        truncate(&s.problem, 120)
    );
    let age = human_duration(now.millis_since(handoff.created_at));
    let link_line = link
        .map(|l| format!("Open the handoff: {l}\n"))
        .unwrap_or_default();
    let text = format!(
        "{} escalated a session {age} ago and nobody has claimed it yet.\n\n\
         Problem: {}\nReason: {}\nPriority: {}\nSteps tried: {}\n\
         Likely cause ({}% confidence, AI may be wrong): {}\n\n{link_line}\
         Claim it from the card in the escalation channel or from the link above.\n",
        handoff.requested_by_name,
        s.problem,
        handoff.reason,
        priority_label(handoff.priority),
        s.steps_attempted.len(),
        handoff.assessment.confidence,
        handoff.assessment.likely_cause,
    );
    let e = crate::export::escape_html;
    let link_html = link
        .map(|l| format!("<p><a href=\"{}\">Open the handoff</a></p>", e(l)))
        .unwrap_or_default();
    let html = format!(
        "<p>{} escalated a session {age} ago and nobody has claimed it yet.</p>\
         <ul><li><strong>Problem:</strong> {}</li><li><strong>Reason:</strong> {}</li>\
         <li><strong>Priority:</strong> {}</li><li><strong>Steps tried:</strong> {}</li>\
         <li><strong>Likely cause</strong> ({}% confidence, AI may be wrong): {}</li></ul>{link_html}",
        e(&handoff.requested_by_name),
        e(&s.problem),
        e(&handoff.reason),
        priority_label(handoff.priority),
        s.steps_attempted.len(),
        handoff.assessment.confidence,
        e(&handoff.assessment.likely_cause),
    );
    Email {
        to: to.to_owned(),
        subject,
        text,
        html,
    }
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        format!("{}…", text.chars().take(max - 1).collect::<String>())
    }
}
