//! Copilot jobs: a turn in a session, an escalation's assessment, a drafted flow, and the
//! knowledge flywheel. A model that fails, times out or answers garbage never breaks a session:
//! the failure is recorded on the timeline (with what each call cost) and the thread is told
//! briefly; everything the technician typed is already saved.

use super::{COMMIT_ATTEMPTS, Dispatcher, retry};
use crate::ai::retrieve::retrieve;
use crate::ai::{
    AiError, AiPurpose, Citation, CitationKind, Copilot, FixChange, ResolvedSummary,
    SessionCluster, Tier, TurnOutcome, TurnReply, context::session_context,
};
use crate::effect::{Block, Effect, Message, Place, link};
use crate::engine::{fix_choices, note_message};
use crate::flow::proposal::{NewFlowProposal, ProposalOrigin};
use crate::flow::{FlowQuery, parse_flow_yaml};
use crate::ids::{AccountId, HandoffId, SessionId, UserId};
use crate::jobs::{Job, JobRecord, JobResult, NewJob};
use crate::links::LinkScope;
use crate::ports::StoreError;
use crate::session::{
    FactSource, NewFact, NewStep, Session, SessionChange, SessionFilter, SessionStatus, StepKind,
};
use std::collections::BTreeSet;
use std::sync::Arc;

/// How many of each kind of retrieved item a turn cites.
const CITED: usize = 3;
/// The fewest resolved sessions that make a flywheel cluster.
pub const CLUSTER_MIN: usize = 3;
/// How alike two problems must be (Jaccard over their search terms) to share a cluster.
const CLUSTER_SIMILARITY: f64 = 0.3;

impl Dispatcher {
    /// Uses `copilot` for turns, assessments and drafts.
    pub fn with_copilot(mut self, copilot: Arc<dyn Copilot>) -> Self {
        self.copilot = Some(copilot);
        self
    }

    pub(super) async fn ai_turn(&self, job: &JobRecord, session: SessionId) -> JobResult {
        let account = job.account_id;
        let Some(copilot) = self.copilot.clone() else {
            return JobResult::Done;
        };
        let (session, mut context) = match self.session_and_context(account, session).await {
            Ok(loaded) => loaded,
            Err(done) => return done,
        };
        if session.status.is_closed() {
            return JobResult::Done;
        }
        if context.turns_so_far > 0 && context.latest.is_none() {
            // Everything said has been answered (a coalesced burst, or a retry).
            return JobResult::Done;
        }
        let query = match &context.latest {
            Some(latest) => format!("{} {latest}", context.problem),
            None => context.problem.clone(),
        };
        let retrieved = match retrieve(
            self.store.as_ref(),
            Some(copilot.as_ref()),
            account,
            &query,
            Some(session.id),
        )
        .await
        {
            Ok(retrieved) => retrieved,
            Err(e) => return retry(e),
        };
        context.retrieved = self.cite(&session, retrieved.citations(CITED)).await;
        let outcome = copilot.turn(&context).await;
        self.record_turn(account, session, outcome, context.retrieved)
            .await
    }

    /// Signed companion links for what a turn cites (a resolved session's timeline, a flow's
    /// page), minted for the session's owner.
    async fn cite(&self, session: &Session, mut citations: Vec<Citation>) -> Vec<Citation> {
        let Some((signer, ttl)) = &self.links else {
            return citations;
        };
        let Ok(owner) = self
            .store
            .get_user(session.account_id, session.owner_id)
            .await
        else {
            return citations;
        };
        for citation in &mut citations {
            let scope = match citation.kind {
                CitationKind::Session => match citation.id.parse::<SessionId>() {
                    Ok(cited) => LinkScope::Session(cited),
                    Err(_) => continue,
                },
                CitationKind::Flow => {
                    match self
                        .store
                        .get_flow_by_slug(session.account_id, &citation.id)
                        .await
                    {
                        Ok(Some(flow)) => LinkScope::Flow(flow.summary.id),
                        _ => continue,
                    }
                }
            };
            let now = self.clock.now();
            let link = crate::links::ShareLink {
                id: crate::ids::LinkId::new(),
                account_id: session.account_id,
                user_id: owner.id,
                role: owner.role,
                scope,
                created_at: now,
                expires_at: now.plus_millis(*ttl),
                revoked_at: None,
            };
            if self.store.create_link(&link).await.is_ok() {
                // The fragment survives the link's redirect to the flow page.
                let anchor = citation
                    .step
                    .as_ref()
                    .map_or_else(String::new, |step| format!("#step-{}", step.id));
                citation.url = Some(format!("{}{anchor}", signer.url_for(&link)));
            }
        }
        citations
    }

    /// Commits the turn: its timeline step (calls, tokens, cost), new facts, a new suggested fix
    /// (superseding the active one) and the reply in the thread.
    async fn record_turn(
        &self,
        account: AccountId,
        mut session: Session,
        outcome: TurnOutcome,
        citations: Vec<Citation>,
    ) -> JobResult {
        self.counters.ai_calls("turn", &outcome.calls);
        for _ in 0..COMMIT_ATTEMPTS {
            let facts = match self.store.facts(account, session.id).await {
                Ok(facts) => facts,
                Err(e) => return retry(e),
            };
            let active = match self.store.suggested_fixes(account, session.id).await {
                Ok(fixes) => fixes.into_iter().rev().find(|f| f.is_active()),
                Err(e) => return retry(e),
            };
            let reply = outcome.reply.clone().map(|r| self.redact_reply(r));
            let mut change = SessionChange::default();
            let mut fix_id = None;
            if let Some(reply) = &reply {
                let known: BTreeSet<String> = facts.iter().map(|f| f.text.to_lowercase()).collect();
                change.facts = reply
                    .facts
                    .iter()
                    .filter(|f| !known.contains(&f.to_lowercase()))
                    .map(|text| NewFact {
                        text: text.clone(),
                        source: FactSource::Ai,
                        author: None,
                    })
                    .collect();
                if let Some(fix) = &reply.fix {
                    let same = active.as_ref().is_some_and(|a| {
                        a.proposal.title.eq_ignore_ascii_case(&fix.title)
                            && a.proposal.steps == fix.steps
                    });
                    if !same {
                        let id = uuid::Uuid::now_v7();
                        fix_id = Some(id);
                        change.fix = Some(FixChange::Suggest {
                            id,
                            proposal: fix.clone(),
                        });
                    }
                }
            }
            // The offline provider with nothing new to say stays quiet; a model that failed says so.
            let offline = outcome.calls.iter().all(|c| c.tier == Tier::Offline);
            if reply.is_some() || !offline {
                let message = turn_message(&session, &outcome, reply.as_ref(), fix_id, &citations);
                change.jobs.push(self.thread_reply(&session, message));
            }
            let change = change.step(NewStep::bot(StepKind::AiTurn {
                reply,
                calls: outcome.calls.clone(),
                prompt_version: outcome.prompt_version.clone(),
                citations: citations.clone(),
                problem: outcome.problem.clone(),
            }));
            match self
                .store
                .commit_session(
                    account,
                    session.id,
                    session.lock_version,
                    change,
                    self.clock.now(),
                )
                .await
            {
                Ok(_) => return JobResult::Done,
                Err(StoreError::Conflict { .. }) => {
                    session = match self.store.get_session(account, session.id).await {
                        Ok(session) => session,
                        Err(e) => return retry(e),
                    };
                }
                Err(e) => return retry(e),
            }
        }
        JobResult::Retry {
            error: "the session kept changing while the copilot's turn was recorded".to_owned(),
            after: None,
        }
    }

    fn redact_reply(&self, reply: TurnReply) -> TurnReply {
        let redact = |text: &String| self.redactor.redact(text).into_owned();
        TurnReply {
            message: redact(&reply.message),
            questions: reply.questions.iter().map(redact).collect(),
            actions: reply.actions.iter().map(redact).collect(),
            facts: reply.facts.iter().map(redact).collect(),
            fix: reply.fix.map(|fix| crate::ai::FixProposal {
                title: redact(&fix.title),
                rationale: redact(&fix.rationale),
                steps: fix.steps.iter().map(redact).collect(),
                script: fix.script.as_ref().map(redact),
                confidence: fix.confidence,
            }),
            confidence: reply.confidence,
        }
    }

    pub(super) async fn ai_assess(&self, job: &JobRecord, handoff: HandoffId) -> JobResult {
        let account = job.account_id;
        let Some(copilot) = self.copilot.clone() else {
            return JobResult::Done;
        };
        let handoff = match self.store.get_handoff(account, handoff).await {
            Ok(handoff) => handoff,
            Err(StoreError::NotFound { .. }) => return JobResult::Done,
            Err(e) => return retry(e),
        };
        if !handoff.is_open() {
            return JobResult::Done;
        }
        let (session, context) = match self.session_and_context(account, handoff.session_id).await {
            Ok(loaded) => loaded,
            Err(done) => return done,
        };
        match copilot.assess(&context).await {
            Ok((assessment, calls)) => {
                self.counters.ai_calls("assessment", &calls);
                let assessment = crate::handoff::Assessment {
                    likely_cause: self.redactor.redact(&assessment.likely_cause).into_owned(),
                    next_steps: assessment
                        .next_steps
                        .iter()
                        .map(|s| self.redactor.redact(s).into_owned())
                        .collect(),
                    ..assessment
                };
                let jobs = [crate::escalation::update_cards(
                    account,
                    handoff.id,
                    self.clock.now(),
                )];
                if let Err(e) = self
                    .store
                    .set_assessment(account, handoff.id, &assessment, &jobs, self.clock.now())
                    .await
                {
                    return retry(e);
                }
                // The assessment is in; what it cost is recorded as well as the store allows
                // (asking the model again to record its cost would cost twice).
                let step = NewStep::bot(StepKind::AiCalls {
                    purpose: AiPurpose::Assessment,
                    calls,
                    note: None,
                });
                if let Err(error) = self
                    .commit_step(account, session.id, step, Vec::new())
                    .await
                {
                    tracing::warn!(%error, handoff.id = %handoff.id, "the assessment's model calls could not be recorded");
                }
                JobResult::Done
            }
            Err(AiError::Busy(e) | AiError::Unavailable(e)) if job.attempts < 3 => {
                JobResult::Retry {
                    error: e,
                    after: None,
                }
            }
            Err(error) => {
                // The offline assessment stays on the card.
                tracing::warn!(%error, handoff.id = %handoff.id, "the model could not assess the escalation");
                JobResult::Done
            }
        }
    }

    /// A resolution-note preview that needs the model: asks it (or takes the cached note, when
    /// another preview wrote it meanwhile), records the calls and shows the note in the thread,
    /// in one commit.
    pub(super) async fn note_preview(&self, job: &JobRecord, session: SessionId) -> JobResult {
        let account = job.account_id;
        let Some(copilot) = self.copilot.clone() else {
            return JobResult::Done;
        };
        let (session, context) = match self.session_and_context(account, session).await {
            Ok(loaded) => loaded,
            Err(done) => return done,
        };
        let (calls, written, message) = match copilot.resolution_note(&context).await {
            Ok(note) => {
                self.counters.ai_calls("resolution_note", &note.calls);
                // The model's own note is kept with the state it describes (a fallback written
                // offline after a failed call is not).
                let written = note
                    .calls
                    .last()
                    .is_some_and(|call| call.problem.is_none())
                    .then(|| crate::ai::WrittenNote {
                        state_version: context.state_version,
                        markdown: note.markdown.clone(),
                    });
                (
                    note.calls.clone(),
                    written,
                    note_message(&self.redactor, &note),
                )
            }
            Err(error) => (
                Vec::new(),
                None,
                Message::text(format!(
                    "I couldn't write the resolution note: {error}. Nothing is lost; `export md` still gives the full timeline."
                )),
            ),
        };
        let reply = self.thread_reply(&session, message);
        let result = if calls.is_empty() {
            self.store.enqueue(vec![reply], self.clock.now()).await
        } else {
            let step = NewStep::bot(StepKind::AiCalls {
                purpose: AiPurpose::ResolutionNote,
                calls,
                note: written,
            });
            self.commit_step(account, session.id, step, vec![reply])
                .await
        };
        match result {
            Ok(()) => JobResult::Done,
            Err(e) => retry(e),
        }
    }

    /// The session and what the copilot is told of it (redacted); `Err` holds how the job ends
    /// when they cannot be read (done when the session is gone, else retried).
    async fn session_and_context(
        &self,
        account: AccountId,
        session: SessionId,
    ) -> Result<(Session, crate::ai::SessionContext), JobResult> {
        let session = match self.store.get_session(account, session).await {
            Ok(session) => session,
            Err(StoreError::NotFound { .. }) => return Err(JobResult::Done),
            Err(e) => return Err(retry(e)),
        };
        match session_context(self.store.as_ref(), &self.redactor, &session).await {
            Ok((context, _)) => Ok((session, context)),
            Err(e) => Err(retry(e)),
        }
    }

    pub(super) async fn flow_build(
        &self,
        job: &JobRecord,
        description: &str,
        user: UserId,
        platform_user_id: &str,
        place: &Place,
    ) -> JobResult {
        let Some(copilot) = self.copilot.clone() else {
            return JobResult::Done;
        };
        let account = job.account_id;
        let drafted = draft_valid(|feedback| {
            let copilot = copilot.clone();
            let description = description.to_owned();
            let counters = self.counters.clone();
            async move {
                counted(
                    &counters,
                    copilot.build_flow(&description, feedback.as_deref()).await,
                )
            }
        })
        .await;
        let text = match drafted {
            Ok((draft, title)) => {
                let proposal = NewFlowProposal {
                    id: uuid::Uuid::now_v7(),
                    account_id: account,
                    title: title.clone(),
                    yaml: draft.yaml,
                    rationale: draft.rationale,
                    origin: ProposalOrigin::Builder,
                    source_sessions: Vec::new(),
                    requested_by: Some(user),
                    fingerprint: format!("builder:{}", job.id),
                };
                match self
                    .store
                    .add_flow_proposal(&proposal, self.clock.now())
                    .await
                {
                    Ok(_) => format!(
                        "Your flow \"{title}\" is drafted and waiting for review: open the web companion's *Flow proposals* page (`/rf metrics` gives you a link) to accept, edit or reject it."
                    ),
                    Err(e) => return retry(e),
                }
            }
            Err(AiError::Busy(e) | AiError::Unavailable(e))
                if job.attempts < job.max_attempts.min(4) =>
            {
                return JobResult::Retry {
                    error: e,
                    after: None,
                };
            }
            Err(error) => format!("I couldn't draft that flow: {error}."),
        };
        let effect = Effect::Private {
            place: place.clone(),
            user,
            platform_user_id: platform_user_id.to_owned(),
            message: Message::text(text),
        };
        match self
            .store
            .enqueue(
                vec![NewJob::now(
                    account,
                    Job::Perform { effect },
                    self.clock.now(),
                )],
                self.clock.now(),
            )
            .await
        {
            Ok(()) => JobResult::Done,
            Err(e) => retry(e),
        }
    }

    /// The flywheel: resolved sessions that followed no flow, not yet behind a proposal, are
    /// clustered by problem; each cluster of at least [`CLUSTER_MIN`] becomes a proposal.
    pub(super) async fn flywheel(&self, job: &JobRecord) -> JobResult {
        let Some(copilot) = self.copilot.clone() else {
            return JobResult::Done;
        };
        let account = job.account_id;
        let clusters = match self.clusters(account).await {
            Ok(clusters) => clusters,
            Err(e) => return retry(e),
        };
        for cluster in clusters {
            let fingerprint = format!(
                "flywheel:{}",
                cluster
                    .sessions
                    .iter()
                    .map(|s| s.session_id.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            );
            let drafted = draft_valid(|feedback| {
                let copilot = copilot.clone();
                let cluster = cluster.clone();
                let counters = self.counters.clone();
                async move {
                    counted(
                        &counters,
                        copilot
                            .flow_from_sessions(&cluster, feedback.as_deref())
                            .await,
                    )
                }
            })
            .await;
            match drafted {
                Ok((draft, title)) => {
                    let proposal = NewFlowProposal {
                        id: uuid::Uuid::now_v7(),
                        account_id: account,
                        title,
                        yaml: draft.yaml,
                        rationale: draft.rationale,
                        origin: ProposalOrigin::Flywheel,
                        source_sessions: cluster.sessions.iter().map(|s| s.session_id).collect(),
                        requested_by: None,
                        fingerprint,
                    };
                    if let Err(e) = self
                        .store
                        .add_flow_proposal(&proposal, self.clock.now())
                        .await
                    {
                        return retry(e);
                    }
                }
                Err(AiError::Busy(e) | AiError::Unavailable(e)) => {
                    return JobResult::Retry {
                        error: e,
                        after: None,
                    };
                }
                Err(error) => {
                    tracing::warn!(%error, theme = %cluster.theme, "the flywheel could not draft a flow");
                }
            }
        }
        JobResult::Done
    }

    /// Resolved free-form sessions not yet behind a proposal, clustered by problem.
    pub async fn clusters(&self, account: AccountId) -> Result<Vec<SessionCluster>, StoreError> {
        let proposed: BTreeSet<SessionId> = self
            .store
            .flow_proposals(account, None)
            .await?
            .into_iter()
            .flat_map(|p| p.source_sessions)
            .collect();
        let sessions = self
            .store
            .list_sessions(
                account,
                &SessionFilter {
                    status: Some(SessionStatus::Resolved),
                    limit: 1_000,
                },
            )
            .await?;
        let candidates: Vec<Session> = sessions
            .into_iter()
            .filter(|s| s.flow_id.is_none() && !proposed.contains(&s.id))
            .collect();
        let mut summaries = Vec::new();
        for session in &candidates {
            let timeline = self.store.timeline(account, session.id).await?;
            let steps = timeline
                .iter()
                .filter(|s| s.kind.is_human_action())
                .map(|s| {
                    self.redactor
                        .redact(&crate::export::describe_step(s).text)
                        .into_owned()
                })
                .take(30)
                .collect();
            summaries.push(ResolvedSummary {
                session_id: session.id,
                problem: self.redactor.redact(&session.problem).into_owned(),
                resolution: self
                    .redactor
                    .redact(session.resolution.as_deref().unwrap_or(""))
                    .into_owned(),
                steps,
            });
        }
        Ok(cluster(summaries))
    }
}

/// Single-link clustering of resolved sessions by the Jaccard similarity of their problems'
/// search terms; clusters smaller than [`CLUSTER_MIN`] are dropped.
pub fn cluster(sessions: Vec<ResolvedSummary>) -> Vec<SessionCluster> {
    let terms: Vec<BTreeSet<String>> = sessions
        .iter()
        .map(|s| {
            FlowQuery::from_problem(&s.problem)
                .terms
                .into_iter()
                .map(|t| t.text)
                .collect()
        })
        .collect();
    let n = sessions.len();
    let mut parent: Vec<usize> = (0..n).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    for i in 0..n {
        for j in i + 1..n {
            let shared = terms[i].intersection(&terms[j]).count() as f64;
            let union = terms[i].union(&terms[j]).count() as f64;
            if union > 0.0 && shared / union >= CLUSTER_SIMILARITY {
                let (a, b) = (root(&mut parent, i), root(&mut parent, j));
                parent[a] = b;
            }
        }
    }
    let mut groups: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
    for i in 0..n {
        let r = root(&mut parent, i);
        groups.entry(r).or_default().push(i);
    }
    let mut slots: Vec<Option<ResolvedSummary>> = sessions.into_iter().map(Some).collect();
    groups
        .into_values()
        .filter(|members| members.len() >= CLUSTER_MIN)
        .map(|members| {
            let mut shared: Option<BTreeSet<String>> = None;
            for &m in &members {
                shared = Some(match shared {
                    None => terms[m].clone(),
                    Some(s) => s.intersection(&terms[m]).cloned().collect(),
                });
            }
            let mut sessions: Vec<ResolvedSummary> =
                members.iter().filter_map(|&m| slots[m].take()).collect();
            sessions.sort_by_key(|s| s.session_id);
            SessionCluster {
                theme: shared
                    .unwrap_or_default()
                    .into_iter()
                    .collect::<Vec<_>>()
                    .join(" "),
                sessions,
            }
        })
        .collect()
}

/// `draft`, its model calls counted.
fn counted(
    counters: &crate::counters::Counters,
    draft: Result<crate::ai::FlowDraft, AiError>,
) -> Result<crate::ai::FlowDraft, AiError> {
    if let Ok(draft) = &draft {
        counters.ai_calls("flow_draft", &draft.calls);
    }
    draft
}

/// Asks for a draft; when the validator refuses it, asks once more with the validator's errors.
async fn draft_valid<F, Fut>(mut ask: F) -> Result<(crate::ai::FlowDraft, String), AiError>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: std::future::Future<Output = Result<crate::ai::FlowDraft, AiError>>,
{
    let first = ask(None).await?;
    let problems = match parse_flow_yaml("draft.yaml", &first.yaml) {
        Ok(flow) => return Ok((first, flow.meta.title.clone())),
        Err(e) => e.to_string(),
    };
    let second = ask(Some(problems)).await?;
    match parse_flow_yaml("draft.yaml", &second.yaml) {
        Ok(flow) => Ok((second.clone(), flow.meta.title.clone())),
        Err(e) => Err(AiError::Invalid(format!(
            "the draft failed the flow validator twice: {e}"
        ))),
    }
}

/// The thread message for a turn.
fn turn_message(
    session: &Session,
    outcome: &TurnOutcome,
    reply: Option<&TurnReply>,
    fix: Option<uuid::Uuid>,
    citations: &[Citation],
) -> Message {
    let Some(reply) = reply else {
        return Message::text(format!(
            "The copilot couldn't answer this time ({}). Nothing is lost; carry on and it will try again with your next message.",
            outcome.problem.as_deref().unwrap_or("no usable answer")
        ));
    };
    let mut message = Message::new().heading("Copilot");
    if !reply.message.is_empty() {
        message = message.paragraph(reply.message.clone());
    }
    if !reply.questions.is_empty() {
        message = message.paragraph("*Questions*").with(Block::List {
            items: reply.questions.clone(),
        });
    }
    if !reply.actions.is_empty() {
        message = message.paragraph("*Next checks*").with(Block::List {
            items: reply.actions.clone(),
        });
    }
    if !reply.facts.is_empty() {
        message = message.paragraph("*Recorded as facts*").with(Block::List {
            items: reply.facts.clone(),
        });
    }
    if let (Some(id), Some(proposal)) = (fix, &reply.fix) {
        message = message.paragraph(format!(
            "*Suggested fix:* {} ({}% confidence)",
            proposal.title, proposal.confidence
        ));
        if !proposal.rationale.is_empty() {
            message = message.paragraph(proposal.rationale.clone());
        }
        if !proposal.steps.is_empty() {
            message = message.with(Block::List {
                items: proposal.steps.clone(),
            });
        }
        if let Some(script) = &proposal.script {
            message = message.code(script.clone());
        }
        message = message.choices(fix_choices(session.id, id));
    }
    if !citations.is_empty() {
        let items = citations
            .iter()
            .map(|c| {
                let kind = match c.kind {
                    CitationKind::Flow => "flow",
                    CitationKind::Session => "resolved session",
                };
                let step = c
                    .step
                    .as_ref()
                    .map_or_else(String::new, |step| format!(", step \"{}\"", step.text));
                match &c.url {
                    Some(url) => format!("{} ({kind}{step})", link(url, &c.title)),
                    None => format!("{} ({kind}{step})", c.title),
                }
            })
            .collect();
        message = message.paragraph("*Related*").with(Block::List { items });
    }
    let model = outcome
        .calls
        .last()
        .map_or_else(|| "offline".to_owned(), |c| c.model.clone());
    message.context(format!(
        "AI may be wrong · {model} · {}% confidence",
        reply.confidence
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolved(problem: &str) -> ResolvedSummary {
        ResolvedSummary {
            session_id: SessionId::new(),
            problem: problem.to_owned(),
            resolution: "fixed".to_owned(),
            steps: Vec::new(),
        }
    }

    #[test]
    fn alike_problems_cluster_and_strays_do_not() {
        let clusters = cluster(vec![
            resolved("Zorbix crashes at launch with 0xc0000142"),
            resolved("Zorbix crashes on launch after update"),
            resolved("zorbix app crashes at launch for accounting"),
            resolved("Printer on floor 2 is offline"),
            resolved("Teams camera black in meetings"),
        ]);
        assert_eq!(clusters.len(), 1, "{clusters:?}");
        assert_eq!(clusters[0].sessions.len(), 3);
        assert!(
            clusters[0].theme.contains("zorbix"),
            "{}",
            clusters[0].theme
        );
    }

    #[test]
    fn small_groups_are_not_clusters() {
        assert!(
            cluster(vec![
                resolved("VPN drops hourly"),
                resolved("VPN drops every hour")
            ])
            .is_empty()
        );
    }
}
