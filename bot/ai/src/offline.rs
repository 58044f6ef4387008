//! The offline provider: no network, no key, deterministic. It starts discovery with the questions
//! a senior would ask for the kind of problem, points at similar resolved sessions and flows that
//! retrieval found (suggesting what fixed the closest one), and writes the four-section resolution
//! note from the session's own facts, steps and fix. It is the default, and the fallback when a
//! model cannot answer.

use crate::copilot::{CachedEmbeddings, Embedder};
use rf_core::ai::{
    AiError, CitationKind, Copilot, FixProposal, FlowDraft, ModelCall, NoteOutcome, SessionCluster,
    SessionContext, Tier, TurnOutcome, TurnReply,
};
use rf_core::handoff::Assessment;
use std::fmt::Write;
use std::sync::Arc;

/// The kinds of problem the offline provider has questions for, by words in the problem.
const TOPICS: &[(&[&str], &[&str])] = &[
    (
        &["print", "printer", "spooler", "scan", "scanner", "toner"],
        &[
            "Is it one printer for everyone, or one user with every printer?",
            "Does a test page print from the printer's own panel?",
            "Can you ping the printer's IP address from the print server or the user's PC?",
            "Is the Print Spooler service running on the print server?",
        ],
    ),
    (
        &[
            "vpn",
            "wifi",
            "wi-fi",
            "network",
            "internet",
            "dns",
            "ping",
            "connect",
            "connection",
            "offline",
            "dropping",
            "disconnect",
        ],
        &[
            "Is it one user, one site, or everyone?",
            "Can they reach a site by IP address but not by name?",
            "When did it start, and what changed on the network around then?",
            "Does it happen on another network (a phone hotspot)?",
        ],
    ),
    (
        &[
            "outlook",
            "email",
            "e-mail",
            "mail",
            "mailbox",
            "exchange",
            "calendar",
            "teams",
            "onedrive",
            "sharepoint",
        ],
        &[
            "Does webmail (Outlook on the web) work for the same user?",
            "Did the password change recently, or is there an MFA prompt?",
            "Does it happen in a new Outlook profile too?",
            "Any exact error message? Paste it.",
        ],
    ),
    (
        &[
            "password",
            "locked",
            "lockout",
            "login",
            "logon",
            "sign",
            "mfa",
            "account",
            "2fa",
            "authenticator",
        ],
        &[
            "Is the account locked or disabled in AD / Entra ID?",
            "Did the password change in the last few days?",
            "Which device and app is the sign-in failing on?",
            "What do the sign-in logs say for the failed attempts?",
        ],
    ),
    (
        &[
            "slow",
            "freeze",
            "freezing",
            "crash",
            "crashing",
            "hang",
            "performance",
            "cpu",
            "memory",
            "disk",
            "blue",
            "bsod",
            "reboot",
        ],
        &[
            "Since when, and after which update or install?",
            "What do Task Manager's CPU, memory and disk columns show while it's slow?",
            "Is it one application or the whole machine?",
            "Anything in Event Viewer (System and Application) around the times it happens?",
        ],
    ),
];

/// Questions for any problem.
const GENERAL: &[&str] = &[
    "When did it start, and what changed around then?",
    "Is it one user, several, or everyone?",
    "What exact error message do they see? Paste it.",
    "Has anything been tried already?",
];

/// The offline provider: no model, and no network unless an embedding endpoint is given (a
/// local one, such as Ollama's, keeps it offline in spirit: retrieval ranks by meaning too).
#[derive(Debug, Clone, Default)]
pub struct Offline {
    embeddings: Option<CachedEmbeddings>,
}

impl Offline {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an embedding ranking to retrieval.
    pub fn with_embedder(mut self, embedder: Arc<dyn Embedder>) -> Self {
        self.embeddings = Some(CachedEmbeddings::new(embedder));
        self
    }

    /// The discovery questions for the problem, in order.
    fn questions(problem: &str) -> &'static [&'static str] {
        let lowered = problem.to_lowercase();
        let words: Vec<&str> = lowered
            .split(|c: char| !c.is_alphanumeric() && c != '-')
            .collect();
        TOPICS
            .iter()
            .find(|(keys, _)| keys.iter().any(|k| words.contains(k)))
            .map_or(GENERAL, |(_, questions)| questions)
    }

    /// The templated four-section note.
    pub fn note(context: &SessionContext) -> String {
        let mut note = String::new();
        let _ = writeln!(note, "## Problem\n{}", context.problem);
        if let Some(ticket) = &context.ticket {
            let _ = writeln!(note, "\nTicket #{}: {}", ticket.id, ticket.summary);
        }
        let _ = writeln!(note, "\n## What we confirmed");
        let worked: Vec<&String> = context
            .timeline
            .iter()
            .filter(|line| line.contains(" → ") || line.contains(" — "))
            .collect();
        if context.facts.is_empty() && worked.is_empty() {
            let _ = writeln!(note, "Nothing confirmed yet.");
        }
        for fact in &context.facts {
            let _ = writeln!(note, "- {fact}");
        }
        for line in worked {
            let _ = writeln!(note, "- {line}");
        }
        let _ = writeln!(note, "\n## Root cause");
        match (&context.active_fix, &context.solution) {
            (Some(fix), _) if !fix.rationale.is_empty() => {
                let _ = writeln!(note, "{} (likely; {})", fix.title, fix.rationale);
            }
            (Some(fix), _) => {
                let _ = writeln!(note, "{} (likely, not confirmed)", fix.title);
            }
            (None, Some(solution)) => {
                let _ = writeln!(note, "{solution} (where the flow led)");
            }
            (None, None) => {
                let _ = writeln!(note, "Not confirmed.");
            }
        }
        let _ = writeln!(note, "\n## Resolution");
        match (&context.resolution, &context.active_fix) {
            (Some(resolution), _) => {
                let _ = writeln!(note, "{resolution}");
            }
            (None, Some(fix)) if !fix.steps.is_empty() => {
                let _ = writeln!(note, "In progress: applying \"{}\":", fix.title);
                for step in &fix.steps {
                    let _ = writeln!(note, "- {step}");
                }
            }
            (None, _) => {
                let _ = writeln!(note, "Not resolved yet.");
            }
        }
        note
    }

    fn offline_note(&self, context: &SessionContext) -> NoteOutcome {
        NoteOutcome {
            markdown: Self::note(context),
            calls: Vec::new(),
            from_cache: false,
        }
    }

    fn offline_call() -> ModelCall {
        ModelCall {
            provider: "offline".to_owned(),
            model: "offline".to_owned(),
            tier: Tier::Offline,
            input_tokens: 0,
            output_tokens: 0,
            cached_tokens: 0,
            cache_write_tokens: 0,
            latency_ms: 0,
            cost_micros: 0,
            problem: None,
        }
    }
}

#[async_trait::async_trait]
impl Copilot for Offline {
    fn provider(&self) -> &str {
        "offline"
    }

    async fn turn(&self, context: &SessionContext) -> TurnOutcome {
        let questions = Self::questions(&context.problem);
        // Two new questions a turn, then none: the technician leads from there.
        let asked = context.turns_so_far * 2;
        let questions: Vec<String> = questions
            .iter()
            .skip(asked)
            .take(2)
            .map(|q| (*q).to_owned())
            .collect();
        let flows: Vec<_> = context
            .retrieved
            .iter()
            .filter(|c| c.kind == CitationKind::Flow)
            .collect();
        let sessions: Vec<_> = context
            .retrieved
            .iter()
            .filter(|c| c.kind == CitationKind::Session && !c.summary.is_empty())
            .collect();
        // What the team already knows is said once, at the start; later turns only ask the
        // remaining questions, and say nothing when there are none.
        let first = context.turns_so_far == 0;
        let (flows, sessions) = if first {
            (flows, sessions)
        } else {
            (Vec::new(), Vec::new())
        };
        let mut message = String::new();
        if first {
            message.push_str("I'm working offline (no AI model is configured), so I'll keep to what the team already knows.");
        }
        if let Some(flow) = flows.first() {
            let _ = write!(
                message,
                " The flow \"{}\" in the library may fit; `/rf flows {}` finds it.",
                flow.title, flow.id
            );
        }
        if let Some(session) = sessions.first() {
            let _ = write!(
                message,
                " A resolved session looks similar: \"{}\", fixed by: {}",
                session.title, session.summary
            );
        }
        // Suggest what fixed the closest resolved session, once (until it's dismissed).
        let fix = sessions
            .first()
            .filter(|s| {
                context
                    .active_fix
                    .as_ref()
                    .is_none_or(|active| !active.title.contains(s.title.as_str()))
            })
            .map(|s| FixProposal {
                title: format!("What fixed \"{}\"", s.title),
                rationale: "A resolved session with a similar problem ended this way.".to_owned(),
                steps: vec![s.summary.clone()],
                script: None,
                confidence: 35,
            });
        // The closest step of the flows that may fit: something to check now.
        let actions: Vec<String> = flows
            .iter()
            .filter_map(|flow| {
                let step = flow.step.as_ref()?;
                Some(format!("{} (from \"{}\")", step.text, flow.title))
            })
            .take(2)
            .collect();
        let message = message.trim().to_owned();
        if message.is_empty() && questions.is_empty() && actions.is_empty() && fix.is_none() {
            // Nothing new: the turn is recorded, and the thread is left alone.
            return TurnOutcome {
                reply: None,
                calls: vec![Self::offline_call()],
                prompt_version: "offline".to_owned(),
                problem: Some(
                    "nothing to add offline; keep going, and `escalate` if you're stuck".to_owned(),
                ),
            };
        }
        TurnOutcome {
            reply: Some(TurnReply {
                message,
                questions,
                actions,
                facts: Vec::new(),
                fix,
                confidence: if sessions.is_empty() { 20 } else { 35 },
            }),
            calls: vec![Self::offline_call()],
            prompt_version: "offline".to_owned(),
            problem: None,
        }
    }

    async fn resolution_note(&self, context: &SessionContext) -> Result<NoteOutcome, AiError> {
        Ok(self.offline_note(context))
    }

    fn note_at_hand(&self, context: &SessionContext) -> Option<NoteOutcome> {
        Some(self.offline_note(context))
    }

    async fn assess(
        &self,
        context: &SessionContext,
    ) -> Result<(Assessment, Vec<ModelCall>), AiError> {
        let likely_cause = match (&context.active_fix, context.retrieved.first()) {
            (Some(fix), _) => fix.title.clone(),
            (None, Some(similar)) => format!("Like \"{}\": {}", similar.title, similar.summary),
            (None, None) => "Unknown: nothing confirmed points to a cause yet.".to_owned(),
        };
        let next_steps = Self::questions(&context.problem)
            .iter()
            .take(3)
            .map(|q| (*q).to_owned())
            .collect();
        Ok((
            Assessment {
                likely_cause,
                next_steps,
                confidence: if context.active_fix.is_some() { 40 } else { 15 },
                source: "offline".to_owned(),
            },
            Vec::new(),
        ))
    }

    async fn build_flow(
        &self,
        _description: &str,
        _feedback: Option<&str>,
    ) -> Result<FlowDraft, AiError> {
        Err(AiError::Unavailable(
            "drafting flows needs an AI model (set `[ai] provider`)".to_owned(),
        ))
    }

    async fn flow_from_sessions(
        &self,
        _cluster: &SessionCluster,
        _feedback: Option<&str>,
    ) -> Result<FlowDraft, AiError> {
        Err(AiError::Unavailable(
            "proposing flows needs an AI model (set `[ai] provider`)".to_owned(),
        ))
    }

    async fn embed(&self, texts: &[String]) -> Option<Vec<Vec<f32>>> {
        self.embeddings.as_ref()?.embed(texts).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rf_core::ai::Citation;

    #[tokio::test]
    async fn discovery_asks_questions_for_the_kind_of_problem() {
        let context = SessionContext {
            problem: "Printer on the 2nd floor shows offline".to_owned(),
            ..SessionContext::default()
        };
        let outcome = Offline::new().turn(&context).await;
        let reply = outcome.reply.unwrap();
        assert!(reply.questions[0].contains("printer"), "{reply:?}");
        assert_eq!(outcome.calls[0].tier, Tier::Offline);
    }

    #[tokio::test]
    async fn a_similar_resolved_session_becomes_a_suggested_fix() {
        let context = SessionContext {
            problem: "Outlook keeps asking for a password".to_owned(),
            retrieved: vec![Citation {
                kind: CitationKind::Session,
                id: "s1".to_owned(),
                title: "Outlook password prompt loop".to_owned(),
                summary: "Cleared the cached credentials in Credential Manager".to_owned(),
                url: None,
                step: None,
            }],
            ..SessionContext::default()
        };
        let reply = Offline::new().turn(&context).await.reply.unwrap();
        let fix = reply.fix.unwrap();
        assert_eq!(
            fix.steps,
            ["Cleared the cached credentials in Credential Manager"]
        );
        assert!(reply.message.contains("Outlook password prompt loop"));
    }

    #[tokio::test]
    async fn the_closest_step_of_a_fitting_flow_is_the_next_check() {
        let context = SessionContext {
            problem: "print jobs stuck in the queue".to_owned(),
            retrieved: vec![Citation {
                kind: CitationKind::Flow,
                id: "printer-offline".to_owned(),
                title: "Printer shows offline".to_owned(),
                summary: "Printing".to_owned(),
                url: None,
                step: Some(rf_core::ai::CitedStep {
                    id: "spooler".to_owned(),
                    text: "Restart the Print Spooler service".to_owned(),
                }),
            }],
            ..SessionContext::default()
        };
        let reply = Offline::new().turn(&context).await.reply.unwrap();
        assert_eq!(
            reply.actions,
            ["Restart the Print Spooler service (from \"Printer shows offline\")"]
        );
    }

    #[tokio::test]
    async fn later_turns_ask_the_rest_then_stay_quiet() {
        let mut context = SessionContext {
            problem: "Printer on the 2nd floor shows offline".to_owned(),
            turns_so_far: 1,
            ..SessionContext::default()
        };
        let reply = Offline::new().turn(&context).await.reply.unwrap();
        assert_eq!(reply.questions.len(), 2);
        assert!(reply.message.is_empty() && reply.fix.is_none());
        context.turns_so_far = 2;
        assert!(Offline::new().turn(&context).await.reply.is_none());
    }

    #[test]
    fn the_note_has_four_sections_grounded_in_the_session() {
        let context = SessionContext {
            problem: "VPN drops every hour".to_owned(),
            facts: vec!["Drops at exactly 60 minutes".to_owned()],
            active_fix: Some(FixProposal {
                title: "Raise the IKE SA lifetime".to_owned(),
                rationale: "The rekey fails at the lifetime".to_owned(),
                steps: vec!["Set lifetime to 8 h".to_owned()],
                script: None,
                confidence: 70,
            }),
            ..SessionContext::default()
        };
        let note = Offline::note(&context);
        for heading in [
            "## Problem",
            "## What we confirmed",
            "## Root cause",
            "## Resolution",
        ] {
            assert!(note.contains(heading), "{note}");
        }
        assert!(note.contains("Drops at exactly 60 minutes"));
        assert!(note.contains("Raise the IKE SA lifetime"));
        assert!(!note.contains("Not confirmed."));
    }

    #[test]
    fn a_flow_that_led_to_a_solution_names_it_as_the_cause() {
        let context = SessionContext {
            problem: "Printer shows offline".to_owned(),
            solution: Some("Spooler restarted: the queue was stuck".to_owned()),
            resolution: Some("Restarted the spooler".to_owned()),
            ..SessionContext::default()
        };
        let note = Offline::note(&context);
        assert!(
            note.contains(
                "## Root cause\nSpooler restarted: the queue was stuck (where the flow led)"
            ),
            "{note}"
        );
        assert!(
            note.contains("## Resolution\nRestarted the spooler"),
            "{note}"
        );
    }
}
