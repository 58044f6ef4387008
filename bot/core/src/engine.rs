//! The session engine: what happens when a technician types or clicks in a session thread.
//!
//! Each event is handled under its thread's lock (one at a time per thread, concurrently across
//! threads), against the session as stored. The decision is a pure function of the session, the
//! input and what was loaded for it; its changes — steps, facts, a handoff, deliveries, jobs,
//! events — are committed in one transaction with optimistic locking, so two replicas handling
//! events for one thread cannot both win: the loser reloads and decides again.

use crate::command::{
    THREAD_HELP, ThreadCommand, TopCommand, parse_thread_command, parse_top_command, top_help,
};
use crate::domain::{
    Actor, ChannelRef, ChatIdentity, InstallationRef, Priority, Role, RoleAssignment, Team,
    ThreadKey,
};
use crate::effect::{
    Action, ActionTarget, Block, Choice, Effect, ExportFormat, FormKind, FormSubmission, Message,
    Place, escalate_form,
};
use crate::escalation;
use crate::export::{self, SessionRecord};
use crate::flow::{Flow, FlowBody, FlowQuery, FlowRecord, NodeKind, Tree};
use crate::handoff::{Handoff, HandoffIntent};
use crate::ids::{LinkId, SessionId};
use crate::keyed::KeyedLocks;
use crate::links::{LinkScope, LinkSigner, ShareLink};
use crate::ports::{Store, StoreError};
use crate::redact::Redactor;
use crate::session::{
    Conversation, Fact, FactSource, FlowCandidate, NewFact, NewSession, NewStep, Session,
    SessionChange, SessionStatus, StepKind, StepOutcome, TimelineStep,
};
use crate::time::{Clock, Timestamp};
use std::sync::Arc;

mod ai;
mod push;

pub(crate) use ai::{AiMode, fix_choices, note_message};

/// How many times an event is re-decided when another writer got there first.
const MAX_ATTEMPTS: usize = 5;

/// Something the engine could not do because the infrastructure failed. Refusals a person can act
/// on (wrong role, stale button, parked session) are not errors: they come back as private replies.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("this workspace is not connected to ResolutionFlow yet")]
    NotInstalled,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the session kept changing while this was being saved")]
    Contended,
}

impl EngineError {
    /// What to tell the person whose action failed.
    pub fn user_message(&self) -> String {
        match self {
            EngineError::NotInstalled => {
                "This workspace is not connected to ResolutionFlow yet. Ask an admin to install the app.".to_owned()
            }
            EngineError::Store(StoreError::Unavailable(_)) => {
                "I couldn't save that: the database is unavailable. Nothing was lost; please try again in a moment.".to_owned()
            }
            EngineError::Store(StoreError::NotFound { what }) => {
                format!("I couldn't find that {what}. It may have been removed.")
            }
            EngineError::Store(_) | EngineError::Contended => {
                "That clashed with another change to this session. Please try again.".to_owned()
            }
        }
    }
}

pub type EngineResult<T> = Result<T, EngineError>;

/// What a technician sent in a session thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A message typed in the thread.
    Text(String),
    /// A button press, with the optional line typed into the message's input field.
    Action {
        action: Action,
        input: Option<String>,
    },
    /// A submitted form.
    Submit(FormSubmission),
}

/// The answer to a `/rf …` command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandOutcome {
    /// Answer the person who typed the command (privately, where the platform can).
    Respond(Message),
    /// Open a thread for this problem, then call [`Engine::start`] with it.
    StartSession { problem: String },
}

/// The platform-neutral session engine.
#[derive(Debug, Clone)]
pub struct Engine {
    pub(crate) store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    locks: KeyedLocks,
    redactor: Redactor,
    links: Option<Links>,
    /// Called after a commit that recorded jobs, so a local worker can start at once.
    wake: Option<Wake>,
    /// The teams' PSAs (member mapping from chat).
    desk: Option<Arc<dyn crate::psa::TicketDesk>>,
    /// The copilot (offline or a model), when enabled.
    copilot: Option<Arc<dyn crate::ai::Copilot>>,
    counters: crate::counters::Counters,
}

/// A callback that wakes the local job worker.
#[derive(Clone)]
pub struct Wake(pub Arc<dyn Fn() + Send + Sync>);

impl std::fmt::Debug for Wake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Wake")
    }
}

/// How the engine mints companion links.
#[derive(Debug, Clone)]
struct Links {
    signer: Arc<dyn LinkSigner>,
    ttl_millis: i64,
}

/// The result of deciding one event: what to write and what to say.
#[derive(Debug, Default)]
pub(crate) struct Decision {
    pub(crate) change: SessionChange,
    pub(crate) effects: Vec<Effect>,
}

/// What was loaded for a decision, beyond the session itself.
#[derive(Debug, Default)]
pub(crate) struct Loaded {
    pub(crate) flow: Option<FlowRecord>,
    pub(crate) timeline: Vec<TimelineStep>,
    pub(crate) facts: Vec<Fact>,
    pub(crate) team: Option<Team>,
    pub(crate) handoff: Option<Handoff>,
    /// The team's PSA connection, the note and its post log (linking tickets, pushing notes).
    pub(crate) push: Option<push::PushContext>,
    /// The session's suggested fixes (deciding on one).
    pub(crate) fixes: Vec<crate::ai::SuggestedFix>,
}

/// The context of one decision.
pub(crate) struct Turn<'a> {
    pub(crate) actor: &'a Actor,
    pub(crate) session: &'a Session,
    pub(crate) redactor: &'a Redactor,
    pub(crate) now: Timestamp,
    pub(crate) loaded: &'a Loaded,
    pub(crate) ai: AiMode,
}

impl Engine {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            clock,
            locks: KeyedLocks::new(),
            redactor: Redactor::new(),
            links: None,
            wake: None,
            desk: None,
            copilot: None,
            counters: crate::counters::Counters::new(),
        }
    }

    /// Counts what the engine does into `counters`.
    pub fn with_counters(mut self, counters: crate::counters::Counters) -> Self {
        self.counters = counters;
        self
    }

    pub(crate) fn counters(&self) -> &crate::counters::Counters {
        &self.counters
    }

    /// Lets the engine hand out companion links that stay valid for `ttl_millis`.
    pub fn with_links(mut self, signer: Arc<dyn LinkSigner>, ttl_millis: i64) -> Self {
        self.links = Some(Links { signer, ttl_millis });
        self
    }

    /// Reaches the teams' PSAs through `desk` (mapping members from chat).
    pub fn with_desk(mut self, desk: Arc<dyn crate::psa::TicketDesk>) -> Self {
        self.desk = Some(desk);
        self
    }

    /// Calls `wake` after every commit that recorded background jobs.
    pub fn with_wake(mut self, wake: Wake) -> Self {
        self.wake = Some(wake);
        self
    }

    pub(crate) fn wake_workers(&self) {
        if let Some(wake) = &self.wake {
            (wake.0)();
        }
    }

    /// Records and signs a companion link for `user`; `None` when no companion is configured.
    pub async fn share_link(
        &self,
        account: crate::ids::AccountId,
        user: crate::ids::UserId,
        role: Role,
        scope: LinkScope,
    ) -> EngineResult<Option<String>> {
        let Some(links) = &self.links else {
            return Ok(None);
        };
        let now = self.now();
        let link = ShareLink {
            id: LinkId::new(),
            account_id: account,
            user_id: user,
            role,
            scope,
            created_at: now,
            expires_at: now.plus_millis(links.ttl_millis),
            revoked_at: None,
        };
        self.store.create_link(&link).await?;
        Ok(Some(links.signer.url_for(&link)))
    }

    /// How long links stay valid, for people.
    pub(crate) fn link_ttl_words(&self) -> String {
        crate::time::human_duration(self.links.as_ref().map_or(0, |l| l.ttl_millis))
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// The actor behind a chat identity in an installation, registering them on first sight.
    pub async fn identify(
        &self,
        installation: &InstallationRef,
        identity: &ChatIdentity,
        role: RoleAssignment,
    ) -> EngineResult<Actor> {
        let (account, team) = self
            .store
            .find_installation(installation)
            .await?
            .ok_or(EngineError::NotInstalled)?;
        let user = self
            .store
            .upsert_user(account, team, identity, role, self.now())
            .await?;
        Ok(Actor::from(&user))
    }

    /// Handles the text after `/rf`, typed in `channel`. `command_name` is how the platform spells
    /// the command.
    pub async fn command(
        &self,
        actor: &Actor,
        channel: &ChannelRef,
        text: &str,
        command_name: &str,
    ) -> EngineResult<CommandOutcome> {
        let respond = |text: String| Ok(CommandOutcome::Respond(Message::text(text)));
        match parse_top_command(text) {
            TopCommand::Help => respond(top_help(command_name)),
            TopCommand::Invalid(usage) => respond(usage),
            TopCommand::Flows(search) => Ok(CommandOutcome::Respond(
                self.flow_search_message(actor, &search).await?,
            )),
            TopCommand::Role { user, role } => respond(self.change_role(actor, &user, role).await?),
            TopCommand::EscalationsHere => respond(self.escalations_here(actor, channel).await?),
            TopCommand::Queue => Ok(CommandOutcome::Respond(self.queue_message(actor).await?)),
            TopCommand::Metrics => respond(self.metrics_link(actor).await?),
            TopCommand::Psa => respond(self.psa_status(actor).await?),
            TopCommand::PsaMap { user, member } => {
                respond(self.psa_map(actor, &user, &member).await?)
            }
            TopCommand::FlowBuild(description) => {
                respond(self.flow_build(actor, channel, &description).await?)
            }
            TopCommand::Start(problem) => {
                if !actor.role.can_work_sessions() {
                    return respond(viewer_refusal());
                }
                Ok(CommandOutcome::StartSession { problem })
            }
        }
    }

    async fn flow_search_message(&self, actor: &Actor, search: &str) -> EngineResult<Message> {
        if search.trim().is_empty() {
            let flows = self.store.list_flows(actor.account_id).await?;
            let items = flows
                .iter()
                .map(|f| {
                    format!(
                        "{} ({}, {})",
                        f.title,
                        f.kind,
                        category_or_general(&f.category)
                    )
                })
                .collect::<Vec<_>>();
            return Ok(Message::new()
                .heading(format!("Flow library: {} flows", flows.len()))
                .with(Block::List { items }));
        }
        let hits = self
            .store
            .search_flows(actor.account_id, &FlowQuery::from_problem(search), 5)
            .await?;
        if hits.is_empty() {
            return Ok(Message::text(format!(
                "No flows match \"{search}\". Start a session anyway and troubleshoot free-form."
            )));
        }
        let items = hits
            .iter()
            .map(|h| {
                format!(
                    "{} ({})",
                    h.summary.title,
                    category_or_general(&h.summary.category)
                )
            })
            .collect();
        Ok(Message::new()
            .heading(format!("Flows matching \"{search}\""))
            .with(Block::List { items }))
    }

    async fn change_role(&self, actor: &Actor, mention: &str, role: Role) -> EngineResult<String> {
        if !actor.role.is_admin() {
            return Ok("Only admins and owners can change roles.".to_owned());
        }
        let (platform_user_id, name) = parse_mention(mention);
        if platform_user_id.is_empty() {
            return Ok("Tell me whose role to change: `role @user engineer`.".to_owned());
        }
        if platform_user_id == actor.platform_user_id {
            return Ok("You can't change your own role; ask another admin.".to_owned());
        }
        let granting_owner = role == Role::Owner;
        let existing = self
            .store
            .find_user(actor.account_id, actor.platform, &platform_user_id)
            .await?;
        let touches_owner =
            granting_owner || existing.as_ref().is_some_and(|u| u.role == Role::Owner);
        if touches_owner && !matches!(actor.role, Role::Owner | Role::SuperAdmin) {
            return Ok("Only an owner can grant or remove the owner role.".to_owned());
        }
        let identity = ChatIdentity {
            platform: actor.platform,
            platform_user_id: platform_user_id.clone(),
            display_name: existing
                .as_ref()
                .map(|u| u.display_name.clone())
                .or(name)
                .unwrap_or_else(|| platform_user_id.clone()),
            email: existing.as_ref().and_then(|u| u.email.clone()),
        };
        let user = self
            .store
            .upsert_user(
                actor.account_id,
                actor.team_id,
                &identity,
                RoleAssignment::Always(role),
                self.now(),
            )
            .await?;
        Ok(format!(
            "{} is now {} {}.",
            user.display_name,
            article(role),
            role
        ))
    }

    /// Starts a session about `problem` in `thread` (a thread the adapter has just opened).
    pub async fn start(
        &self,
        actor: &Actor,
        thread: ThreadKey,
        problem: &str,
    ) -> EngineResult<Vec<Effect>> {
        let place = Place::from(&thread);
        if !actor.role.can_work_sessions() {
            return Ok(vec![private_to(&place, actor, &viewer_refusal())]);
        }
        let problem = self.redactor.redact(problem.trim()).into_owned();
        if problem.is_empty() {
            return Ok(vec![private_to(
                &place,
                actor,
                "Tell me what's wrong, e.g. `/rf printer shows offline`.",
            )]);
        }
        let _guard = self.locks.lock(&thread.lock_key()).await;
        if let Some(existing) = self
            .store
            .session_for_thread(actor.account_id, &thread)
            .await?
        {
            return Ok(vec![
                private_to(
                    &place,
                    actor,
                    "There is already a session in this thread; here is where it stands.",
                ),
                Effect::Reply {
                    thread: thread.clone(),
                    message: prompt_message(
                        existing.id,
                        existing.flow.as_ref(),
                        &existing.conversation,
                    ),
                },
            ]);
        }
        let hits = self
            .store
            .search_flows(actor.account_id, &FlowQuery::from_problem(&problem), 3)
            .await?;
        let candidates: Vec<FlowCandidate> = hits
            .iter()
            .map(|hit| FlowCandidate {
                flow_id: hit.summary.id,
                title: hit.summary.title.clone(),
            })
            .collect();
        let mut steps = vec![NewStep::by(
            actor.user_id,
            StepKind::SessionStarted {
                problem: problem.clone(),
            },
        )];
        let conversation = if candidates.is_empty() {
            Conversation::FreeForm
        } else {
            steps.push(NewStep::bot(StepKind::FlowsOffered {
                titles: candidates.iter().map(|c| c.title.clone()).collect(),
            }));
            Conversation::ChoosingFlow { candidates }
        };
        let session = self
            .store
            .create_session(
                NewSession {
                    account_id: actor.account_id,
                    team_id: actor.team_id,
                    thread: thread.clone(),
                    owner_id: actor.user_id,
                    problem: problem.clone(),
                    conversation,
                    status: SessionStatus::Active,
                    steps,
                },
                self.now(),
            )
            .await?;
        self.counters.session_started();
        if session.conversation == Conversation::FreeForm && self.ai_mode() != AiMode::Off {
            // Nothing in the library matches: the copilot starts discovery. The session stands
            // without it: the technician's first message queues a turn anyway.
            match self
                .store
                .enqueue(
                    vec![ai::ai_turn_job(session.account_id, session.id, self.now())],
                    self.now(),
                )
                .await
            {
                Ok(()) => self.wake_workers(),
                Err(error) => {
                    tracing::warn!(%error, session.id = %session.id, "could not queue the copilot's first turn");
                }
            }
        }
        let mut message = Message::new()
            .heading(format!("Troubleshooting: {problem}"))
            .context(format!(
                "Session owner: {}. Everything in this thread goes into the ticket note.",
                actor.display_name
            ));
        if session.conversation == Conversation::FreeForm {
            message = message
                .paragraph("No flow in the library matches this yet, so let's work it free-form.");
        }
        message
            .blocks
            .extend(prompt_message(session.id, None, &session.conversation).blocks);
        message = message.context("Type `help` in this thread for commands: `note`, `fact`, `ticket`, `park`, `escalate`, `resolve`, `export`.");
        Ok(vec![Effect::Reply { thread, message }])
    }

    /// A button was pressed at `place`: routes it to its session's thread or its handoff.
    pub async fn press(
        &self,
        actor: &Actor,
        place: &Place,
        action: Action,
        input: Option<String>,
    ) -> EngineResult<Vec<Effect>> {
        match action.target() {
            ActionTarget::Session(session) => {
                self.handle_in_session(actor, place, session, Input::Action { action, input })
                    .await
            }
            ActionTarget::Handoff(handoff) => {
                escalation::press(self, actor, place, handoff, action).await
            }
        }
    }

    /// A form was submitted at `place`.
    pub async fn submit(
        &self,
        actor: &Actor,
        place: &Place,
        submission: FormSubmission,
    ) -> EngineResult<Vec<Effect>> {
        let FormKind::Escalate { session } = submission.kind;
        self.handle_in_session(actor, place, session, Input::Submit(submission))
            .await
    }

    /// Handles input for a session given by id, in its own thread.
    async fn handle_in_session(
        &self,
        actor: &Actor,
        place: &Place,
        session: SessionId,
        input: Input,
    ) -> EngineResult<Vec<Effect>> {
        match self.store.get_session(actor.account_id, session).await {
            Ok(session) => self.handle(actor, &session.thread, input).await,
            Err(StoreError::NotFound { .. }) => Ok(vec![private_to(
                place,
                actor,
                "That session no longer exists.",
            )]),
            Err(e) => Err(e.into()),
        }
    }

    /// Handles a message, button press or form in a session thread.
    #[tracing::instrument(skip_all, fields(thread = %thread.lock_key(), user.id = %actor.user_id))]
    pub async fn handle(
        &self,
        actor: &Actor,
        thread: &ThreadKey,
        input: Input,
    ) -> EngineResult<Vec<Effect>> {
        let _guard = self.locks.lock(&thread.lock_key()).await;
        for _ in 0..MAX_ATTEMPTS {
            let Some(session) = self
                .store
                .session_for_thread(actor.account_id, thread)
                .await?
            else {
                return Ok(match input {
                    // Ordinary chatter in a thread without a session is none of our business.
                    Input::Text(_) => Vec::new(),
                    Input::Action { .. } | Input::Submit(_) => {
                        vec![private_to(
                            &Place::from(thread),
                            actor,
                            "That session no longer exists.",
                        )]
                    }
                });
            };
            let loaded = Loaded::default();
            let turn = Turn {
                actor,
                session: &session,
                redactor: &self.redactor,
                now: self.now(),
                loaded: &loaded,
                ai: self.ai_mode(),
            };
            let input = turn.normalise(input.clone());
            if let Some(effects) = self.read_only(&turn, &input).await? {
                return Ok(effects);
            }
            let loaded = self.load(&session, &input).await?;
            let turn = Turn {
                loaded: &loaded,
                ..turn
            };
            let decision = turn.decide(input);
            if decision.change.is_empty() {
                return Ok(decision.effects);
            }
            let has_jobs = !decision.change.jobs.is_empty();
            let escalates = decision
                .change
                .handoff
                .as_ref()
                .is_some_and(|h| h.intent == HandoffIntent::Escalate);
            match self
                .store
                .commit_session(
                    actor.account_id,
                    session.id,
                    session.lock_version,
                    decision.change,
                    self.now(),
                )
                .await
            {
                Ok(_) => {
                    self.counters.session_event();
                    if escalates {
                        self.counters.escalated();
                    }
                    if has_jobs {
                        self.wake_workers();
                    }
                    return Ok(decision.effects);
                }
                Err(StoreError::Conflict { .. }) => {
                    tracing::debug!(session.id = %session.id, "session changed concurrently; deciding again");
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(EngineError::Contended)
    }

    /// Loads what deciding this input needs.
    async fn load(&self, session: &Session, input: &Input) -> EngineResult<Loaded> {
        let account = session.account_id;
        let mut loaded = Loaded::default();
        if let Input::Action {
            action: Action::PickFlow { flow, .. },
            ..
        } = input
        {
            loaded.flow = match self.store.get_flow(account, *flow).await {
                Ok(record) => Some(record),
                Err(StoreError::NotFound { .. }) => None,
                Err(e) => return Err(e.into()),
            };
        }
        let hands_off = match input {
            Input::Submit(_) => true,
            Input::Text(text) => matches!(
                parse_thread_command(text),
                Some(Ok(ThreadCommand::Park(_)
                    | ThreadCommand::Escalate {
                        reason: Some(_),
                        ..
                    }))
            ),
            Input::Action { action, .. } => matches!(action, Action::Park { .. }),
        };
        if hands_off {
            loaded.timeline = self.store.timeline(account, session.id).await?;
            loaded.facts = self.store.facts(account, session.id).await?;
            loaded.team = Some(self.store.get_team(account, session.team_id).await?);
        }
        if let Some(handoff) = session.handoff_id {
            loaded.handoff = Some(self.store.get_handoff(account, handoff).await?);
        }
        match input {
            Input::Action {
                action: Action::Fix { .. },
                ..
            } => loaded.fixes = self.store.suggested_fixes(account, session.id).await?,
            Input::Action {
                action: Action::PushNote { .. },
                ..
            } => loaded.push = Some(self.push_context(session).await?),
            Input::Text(text)
                if matches!(
                    parse_thread_command(text),
                    Some(Ok(ThreadCommand::Ticket(_)))
                ) =>
            {
                loaded.push = Some(push::PushContext {
                    connection: self.psa_connection(session).await?,
                    note: None,
                    log: Vec::new(),
                });
            }
            _ => {}
        }
        Ok(loaded)
    }

    /// Commands that only read: facts, export, status, help, link.
    async fn read_only(&self, turn: &Turn<'_>, input: &Input) -> EngineResult<Option<Vec<Effect>>> {
        let session = turn.session;
        let format = match input {
            Input::Text(text) => match parse_thread_command(text) {
                Some(Ok(ThreadCommand::Facts)) => {
                    let facts = self.store.facts(session.account_id, session.id).await?;
                    let message = if facts.is_empty() {
                        Message::text("No confirmed facts yet. Add one with `fact <text>`.")
                    } else {
                        Message::new().heading("Confirmed facts").with(Block::List {
                            items: facts.into_iter().map(|f| f.text).collect(),
                        })
                    };
                    return Ok(Some(vec![turn.reply(message)]));
                }
                Some(Ok(ThreadCommand::Status)) => {
                    return Ok(Some(vec![turn.reply(turn.status_message())]));
                }
                Some(Ok(ThreadCommand::Help)) => {
                    return Ok(Some(vec![turn.private(THREAD_HELP)]));
                }
                Some(Ok(ThreadCommand::Link)) => {
                    let actor = turn.actor;
                    let url = self
                        .share_link(
                            actor.account_id,
                            actor.user_id,
                            actor.role,
                            LinkScope::Session(session.id),
                        )
                        .await?;
                    let text = match url {
                        Some(url) => format!(
                            "{} (valid for {}, only for you)",
                            crate::effect::link(&url, "This session's timeline"),
                            self.link_ttl_words()
                        ),
                        None => "The web companion is not configured on this server.".to_owned(),
                    };
                    return Ok(Some(vec![turn.private(text)]));
                }
                Some(Ok(ThreadCommand::Export(format))) => format,
                Some(Ok(ThreadCommand::Push)) => {
                    return Ok(Some(vec![turn.reply(self.push_preview(turn).await?)]));
                }
                Some(Ok(ThreadCommand::Preview)) => {
                    return Ok(Some(vec![turn.reply(self.note_preview(turn).await?)]));
                }
                _ => return Ok(None),
            },
            Input::Action {
                action: Action::PushPreview { .. },
                ..
            } => {
                if !turn.actor.role.can_work_sessions() {
                    return Ok(Some(vec![turn.private(viewer_refusal())]));
                }
                return Ok(Some(vec![turn.reply(self.push_preview(turn).await?)]));
            }
            Input::Action {
                action: Action::NotePreview { .. },
                ..
            } => {
                return Ok(Some(vec![turn.reply(self.note_preview(turn).await?)]));
            }
            Input::Action {
                action: Action::Export { format, .. },
                ..
            } => *format,
            Input::Action { .. } | Input::Submit(_) => return Ok(None),
        };
        let document = export_session(
            self.store.as_ref(),
            &self.redactor,
            session.account_id,
            session.id,
            format,
        )
        .await?;
        Ok(Some(vec![Effect::Document {
            thread: session.thread.clone(),
            document,
        }]))
    }

    /// Searches the account's flow library for a problem description.
    pub async fn match_flows(
        &self,
        actor: &Actor,
        problem: &str,
        limit: i64,
    ) -> EngineResult<Vec<crate::flow::FlowHit>> {
        Ok(self
            .store
            .search_flows(actor.account_id, &FlowQuery::from_problem(problem), limit)
            .await?)
    }
}

/// Loads a session with everything its documentation needs and renders it.
pub async fn export_session(
    store: &dyn Store,
    redactor: &Redactor,
    account: crate::ids::AccountId,
    session: SessionId,
    format: ExportFormat,
) -> Result<crate::effect::Document, StoreError> {
    let session = store.get_session(account, session).await?;
    let timeline = store.timeline(account, session.id).await?;
    let facts = store.facts(account, session.id).await?;
    let owner = store.get_user(account, session.owner_id).await?;
    let record = SessionRecord {
        session: &session,
        owner_name: &owner.display_name,
        timeline: &timeline,
        facts: &facts,
    };
    Ok(export::render(&record, format, redactor))
}

pub(crate) fn private_to(place: &Place, actor: &Actor, text: &str) -> Effect {
    private_message(place, actor, Message::text(text))
}

pub(crate) fn private_message(place: &Place, actor: &Actor, message: Message) -> Effect {
    Effect::Private {
        place: place.clone(),
        user: actor.user_id,
        platform_user_id: actor.platform_user_id.clone(),
        message,
    }
}

pub(crate) fn viewer_refusal() -> String {
    "You have the viewer role, which can watch sessions but not change them. Ask an admin for the engineer role (`role @you engineer`).".to_owned()
}

fn category_or_general(category: &str) -> &str {
    if category.is_empty() {
        "General"
    } else {
        category
    }
}

fn article(role: Role) -> &'static str {
    match role {
        Role::Owner | Role::Admin | Role::Engineer => "an",
        Role::Viewer | Role::SuperAdmin => "a",
    }
}

/// `<@U123|jane>`, `<@U123>`, `@jane`, `jane` → (platform user id, display name if given).
pub fn parse_mention(mention: &str) -> (String, Option<String>) {
    let inner = mention
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim_start_matches('@')
        .trim_start_matches('!');
    match inner.split_once('|') {
        Some((id, name)) => (id.to_owned(), Some(name.to_owned())),
        None => (inner.to_owned(), None),
    }
}

impl Turn<'_> {
    pub(crate) fn place(&self) -> Place {
        Place::from(&self.session.thread)
    }

    pub(crate) fn private(&self, text: impl Into<String>) -> Effect {
        private_to(&self.place(), self.actor, &text.into())
    }

    pub(crate) fn reply(&self, message: Message) -> Effect {
        Effect::Reply {
            thread: self.session.thread.clone(),
            message,
        }
    }

    pub(crate) fn refuse(&self, text: impl Into<String>) -> Decision {
        Decision {
            change: SessionChange::default(),
            effects: vec![self.private(text)],
        }
    }

    pub(crate) fn redact(&self, text: &str) -> String {
        self.redactor.redact(text.trim()).into_owned()
    }

    fn current_prompt(&self) -> Message {
        prompt_message(
            self.session.id,
            self.session.flow.as_ref(),
            &self.session.conversation,
        )
    }

    fn status_message(&self) -> Message {
        let s = self.session;
        let status = match s.status {
            SessionStatus::Active => "In progress",
            SessionStatus::Parked => "Parked: type `resume` to pick it up",
            SessionStatus::Escalated => "Escalated: waiting for a senior to claim it",
            SessionStatus::Resolved => "Resolved",
            SessionStatus::Abandoned => "Abandoned",
        };
        let mut message = Message::new().with(Block::Fields {
            fields: vec![
                ("Problem".to_owned(), s.problem.clone()),
                ("Status".to_owned(), status.to_owned()),
                (
                    "Flow".to_owned(),
                    s.flow
                        .as_ref()
                        .map_or_else(|| "none".to_owned(), |f| f.meta.title.clone()),
                ),
                (
                    "Ticket".to_owned(),
                    s.psa_ticket
                        .as_ref()
                        .map_or_else(|| "not linked".to_owned(), |t| format!("#{t}")),
                ),
            ],
        });
        if !s.status.is_closed() {
            message.blocks.extend(self.current_prompt().blocks);
        }
        message
    }

    /// A typed word that matches a button of the current prompt becomes that button press.
    fn normalise(&self, input: Input) -> Input {
        let Input::Text(text) = &input else {
            return input;
        };
        if self.session.status != SessionStatus::Active {
            return input;
        }
        let wanted = text.trim();
        self.current_prompt()
            .all_choices()
            .find(|choice| choice.label.eq_ignore_ascii_case(wanted))
            .map_or(input.clone(), |choice| Input::Action {
                action: choice.action.clone(),
                input: None,
            })
    }

    fn decide(&self, input: Input) -> Decision {
        let role = self.actor.role;
        let same_team = self.actor.team_id == self.session.team_id || role.is_admin();
        match input {
            Input::Text(text) => match parse_thread_command(&text) {
                Some(Err(usage)) => self.refuse(usage),
                Some(Ok(_)) | None if !role.can_work_sessions() => {
                    match parse_thread_command(&text) {
                        Some(_) => self.refuse(viewer_refusal()),
                        None => Decision::default(),
                    }
                }
                Some(Ok(_)) | None if !same_team => {
                    self.refuse("This session belongs to another team.")
                }
                Some(Ok(command)) => self.command(command),
                None => self.message(&text),
            },
            Input::Action { action, input } => {
                if action.session() != Some(self.session.id) {
                    return self.refuse("That button belongs to another session.");
                }
                if !role.can_work_sessions() {
                    return self.refuse(viewer_refusal());
                }
                if !same_team {
                    return self.refuse("This session belongs to another team.");
                }
                self.action(action, input)
            }
            Input::Submit(submission) => {
                if !role.can_work_sessions() {
                    return self.refuse(viewer_refusal());
                }
                if !same_team {
                    return self.refuse("Only the session's team can escalate it.");
                }
                let reason = submission
                    .value("reason")
                    .map(|r| self.redact(r))
                    .unwrap_or_default();
                if reason.is_empty() {
                    return self.refuse(
                        "An escalation needs a reason: say what you tried and why you're stuck.",
                    );
                }
                let priority = submission
                    .value("priority")
                    .and_then(|p| p.parse::<Priority>().ok())
                    .unwrap_or(Priority::Normal);
                self.escalate(priority, reason)
            }
        }
    }

    fn command(&self, command: ThreadCommand) -> Decision {
        let user = self.actor.user_id;
        match command {
            ThreadCommand::Fact(text) => {
                let text = self.redact(&text);
                Decision {
                    change: SessionChange {
                        facts: vec![NewFact {
                            text: text.clone(),
                            source: FactSource::Technician,
                            author: Some(user),
                        }],
                        bump_state_version: true,
                        ..SessionChange::default()
                    }
                    .step(NewStep::by(
                        user,
                        StepKind::FactAdded { text: text.clone() },
                    )),
                    effects: vec![self.reply(Message::text(format!("Fact recorded: {text}")))],
                }
            }
            ThreadCommand::Note(text) => Decision {
                change: SessionChange::default().step(NewStep::by(
                    user,
                    StepKind::NoteAdded {
                        text: self.redact(&text),
                    },
                )),
                effects: vec![Effect::Acknowledge {
                    thread: self.session.thread.clone(),
                }],
            },
            ThreadCommand::Ticket(ticket) => {
                let (message, jobs) = self.link_ticket(&ticket);
                Decision {
                    change: SessionChange {
                        psa_ticket: Some(ticket.clone()),
                        jobs,
                        ..SessionChange::default()
                    }
                    .step(NewStep::by(user, StepKind::TicketLinked { ticket })),
                    effects: vec![self.reply(message)],
                }
            }
            ThreadCommand::Park(reason) => self.park(reason.map(|r| self.redact(&r))),
            ThreadCommand::Escalate { priority, reason } => match reason {
                Some(reason) => {
                    self.escalate(priority.unwrap_or(Priority::Normal), self.redact(&reason))
                }
                None => self.open_escalate_form(),
            },
            ThreadCommand::Resume => self.resume(),
            ThreadCommand::Resolve(summary) => self.resolve(summary.map(|s| self.redact(&s))),
            // Read-only commands are answered before deciding.
            ThreadCommand::Facts
            | ThreadCommand::Push
            | ThreadCommand::Preview
            | ThreadCommand::Export(_)
            | ThreadCommand::Status
            | ThreadCommand::Link
            | ThreadCommand::Help => Decision::default(),
        }
    }

    fn message(&self, text: &str) -> Decision {
        if self.session.status.is_closed() {
            return Decision::default();
        }
        let text = self.redact(text);
        if text.is_empty() {
            return Decision::default();
        }
        Decision {
            change: SessionChange {
                jobs: self.ai_turn_jobs(&self.session.conversation),
                ..SessionChange::default()
            }
            .step(NewStep::by(self.actor.user_id, StepKind::Message { text })),
            effects: vec![Effect::Acknowledge {
                thread: self.session.thread.clone(),
            }],
        }
    }

    fn park(&self, reason: Option<String>) -> Decision {
        match self.session.status {
            SessionStatus::Active => {}
            SessionStatus::Parked => return self.refuse("This session is already parked."),
            SessionStatus::Escalated => {
                return self
                    .refuse("This session is escalated; a senior will pick it up from the queue.");
            }
            SessionStatus::Resolved | SessionStatus::Abandoned => {
                return self.refuse("This session is closed; there is nothing to park.");
            }
        }
        let message = Message::new()
            .paragraph(format!(
                "Parked by {}{}. Anyone on the team can pick it up where it stands.",
                self.actor.display_name,
                reason
                    .as_ref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            ))
            .choices(vec![
                Choice::new(
                    "Resume",
                    Action::Resume {
                        session: self.session.id,
                    },
                )
                .primary(),
            ]);
        let handoff = escalation::new_handoff(
            self,
            HandoffIntent::Park,
            Priority::Normal,
            reason.clone().unwrap_or_default(),
        );
        Decision {
            change: SessionChange {
                status: Some(SessionStatus::Parked),
                handoff: Some(handoff),
                ..SessionChange::default()
            }
            .step(NewStep::by(self.actor.user_id, StepKind::Parked { reason })),
            effects: vec![self.reply(message)],
        }
    }

    fn open_escalate_form(&self) -> Decision {
        if let Some(refusal) = self.cannot_escalate() {
            return self.refuse(refusal);
        }
        Decision {
            change: SessionChange::default(),
            effects: vec![Effect::OpenForm {
                place: self.place(),
                user: self.actor.user_id,
                platform_user_id: self.actor.platform_user_id.clone(),
                form: escalate_form(self.session.id),
            }],
        }
    }

    /// Why this session cannot be escalated now, if it cannot.
    pub(crate) fn cannot_escalate(&self) -> Option<String> {
        match self.session.status {
            SessionStatus::Active | SessionStatus::Parked => None,
            SessionStatus::Escalated => Some(
                match self
                    .loaded
                    .handoff
                    .as_ref()
                    .and_then(|h| h.claimed_by_name.clone())
                {
                    Some(name) => format!("{name} has already claimed this escalation."),
                    None => {
                        "This session is already escalated and waiting for a senior to claim it."
                            .to_owned()
                    }
                },
            ),
            SessionStatus::Resolved | SessionStatus::Abandoned => {
                Some("This session is closed.".to_owned())
            }
        }
    }

    fn escalate(&self, priority: Priority, reason: String) -> Decision {
        if let Some(refusal) = self.cannot_escalate() {
            return self.refuse(refusal);
        }
        escalation::escalate(self, priority, reason)
    }

    fn resume(&self) -> Decision {
        if self.session.status != SessionStatus::Parked {
            return self.refuse(match self.session.status {
                SessionStatus::Active => "This session is already in progress.",
                SessionStatus::Escalated => {
                    "This session is escalated: claim it from the escalation card to take it over."
                }
                _ => "Only a parked session can be resumed.",
            });
        }
        let mut message = Message::text(format!(
            "{} resumed the session and now owns it. Here is where it stands:",
            self.actor.display_name
        ));
        message.blocks.extend(self.current_prompt().blocks);
        Decision {
            change: SessionChange {
                status: Some(SessionStatus::Active),
                owner: Some(self.actor.user_id),
                close_handoff: self.session.handoff_id.is_some(),
                ..SessionChange::default()
            }
            .step(NewStep::by(self.actor.user_id, StepKind::Resumed)),
            effects: vec![self.reply(message)],
        }
    }

    fn resolve(&self, summary: Option<String>) -> Decision {
        if self.session.status.is_closed() {
            return self.refuse("This session is already closed.");
        }
        let summary =
            summary.unwrap_or_else(|| match (&self.session.conversation, &self.session.flow) {
                (Conversation::Solution { node }, Some(flow)) => solution_summary(flow, node),
                (Conversation::ChecklistComplete, Some(flow)) => {
                    format!("Completed \"{}\".", flow.meta.title)
                }
                _ => "Resolved.".to_owned(),
            });
        let id = self.session.id;
        let message = Message::new()
            .paragraph(format!(
                "Resolved by {}: {summary}",
                self.actor.display_name
            ))
            .paragraph("Get the ticket note:")
            .choices(vec![
                Choice::new(
                    "Markdown",
                    Action::Export {
                        session: id,
                        format: ExportFormat::Markdown,
                    },
                )
                .primary(),
                Choice::new(
                    "Plain text",
                    Action::Export {
                        session: id,
                        format: ExportFormat::Text,
                    },
                ),
                Choice::new(
                    "HTML",
                    Action::Export {
                        session: id,
                        format: ExportFormat::Html,
                    },
                ),
            ]);
        let mut more = Vec::new();
        if self.ai != AiMode::Off {
            more.push(Choice::new(
                "Preview resolution note",
                Action::NotePreview { session: id },
            ));
        }
        if let Some(ticket) = &self.session.psa_ticket {
            more.push(Choice::new(
                format!("Push to ticket #{ticket}"),
                Action::PushPreview { session: id },
            ));
        }
        let message = if more.is_empty() {
            message
        } else {
            message.choices(more)
        };
        let mut change = SessionChange {
            status: Some(SessionStatus::Resolved),
            resolution: Some(summary.clone()),
            close_handoff: self.session.handoff_id.is_some(),
            jobs: self.flywheel_jobs(),
            ..SessionChange::default()
        }
        .step(NewStep::by(
            self.actor.user_id,
            StepKind::Resolved { summary },
        ));
        if let Some(handoff) = self
            .loaded
            .handoff
            .as_ref()
            .filter(|h| h.intent == HandoffIntent::Escalate && h.is_open())
        {
            escalation::close_escalation(self, handoff, &mut change);
        }
        Decision {
            change,
            effects: vec![self.reply(message)],
        }
    }

    fn action(&self, action: Action, input: Option<String>) -> Decision {
        match action {
            Action::Park { .. } => return self.park(None),
            Action::Resume { .. } => return self.resume(),
            Action::Resolve { .. } => return self.resolve(None),
            Action::Escalate { .. } => return self.open_escalate_form(),
            Action::PushNote { version, .. } => return self.push_note(&version),
            Action::Fix { fix, decision, .. } => return self.decide_fix(fix, decision),
            // Answered before deciding.
            Action::Export { .. } | Action::PushPreview { .. } | Action::NotePreview { .. } => {
                return Decision::default();
            }
            _ => {}
        }
        match self.session.status {
            SessionStatus::Active => {}
            SessionStatus::Parked => {
                return self.refuse("This session is parked. Type `resume` to pick it up first.");
            }
            SessionStatus::Escalated => {
                return self.refuse(
                    "This session is escalated; the flow continues once someone claims it.",
                );
            }
            SessionStatus::Resolved | SessionStatus::Abandoned => {
                return self.refuse("This session is closed.");
            }
        }
        let user = self.actor.user_id;
        let stale = || self.refuse("That step has already been answered; here is the current one.");
        match (action, &self.session.conversation) {
            (Action::PickFlow { flow: wanted, .. }, Conversation::ChoosingFlow { candidates }) => {
                let Some(record) = self.loaded.flow.as_ref().filter(|r| {
                    candidates.iter().any(|c| c.flow_id == wanted) && r.summary.id == wanted
                }) else {
                    return self.refuse("That flow is no longer in the library. Pick another, or troubleshoot without one.");
                };
                let (conversation, mut steps, message) = enter_flow(self.session, &record.flow);
                steps.insert(
                    0,
                    NewStep::by(
                        user,
                        StepKind::FlowChosen {
                            title: record.flow.meta.title.clone(),
                            version: record.summary.version,
                        },
                    ),
                );
                Decision {
                    change: SessionChange {
                        conversation: Some(conversation),
                        flow: Some((record.summary.id, record.flow.clone())),
                        steps,
                        ..SessionChange::default()
                    },
                    effects: vec![self.reply(message)],
                }
            }
            (Action::FreeForm { .. }, Conversation::ChoosingFlow { .. }) => Decision {
                change: SessionChange {
                    conversation: Some(Conversation::FreeForm),
                    jobs: self.ai_turn_jobs(&Conversation::FreeForm),
                    ..SessionChange::default()
                }
                .step(NewStep::by(user, StepKind::FreeFormChosen)),
                effects: vec![self.reply(prompt_message(
                    self.session.id,
                    None,
                    &Conversation::FreeForm,
                ))],
            },
            (Action::Answer { node, branch, .. }, Conversation::Tree { node: current })
                if node == *current =>
            {
                let Some((tree, flow)) = self.tree() else {
                    return self.refuse("This session's flow could not be read.");
                };
                let Some(asked) = tree.node(&node) else {
                    return stale();
                };
                let Some(chosen) = asked.branches.get(branch) else {
                    return stale();
                };
                let answered = NewStep::by(
                    user,
                    StepKind::Answered {
                        node: node.clone(),
                        question: asked.text.clone(),
                        answer: chosen.label.clone(),
                    },
                );
                let (conversation, mut steps, message) =
                    enter_node(self.session.id, flow, tree, &chosen.next);
                steps.insert(0, answered);
                Decision {
                    change: SessionChange {
                        conversation: Some(conversation),
                        steps,
                        ..SessionChange::default()
                    },
                    effects: vec![self.reply(message)],
                }
            }
            (
                Action::Checklist {
                    cursor, outcome, ..
                },
                Conversation::Checklist { cursor: current },
            ) if cursor == *current => {
                let Some(flow) = &self.session.flow else {
                    return self.refuse("This session's flow could not be read.");
                };
                let Some(item) = checklist_item(flow, cursor) else {
                    return stale();
                };
                let output = input.map(|o| self.redact(&o)).filter(|o| !o.is_empty());
                let result = NewStep::by(
                    user,
                    StepKind::ChecklistResult {
                        step: item.step_id.clone(),
                        text: item.text.clone(),
                        target: item.target.clone(),
                        outcome,
                        output,
                    },
                );
                let next = cursor + 1;
                let conversation = if next >= self.session.checklist_len() {
                    Conversation::ChecklistComplete
                } else {
                    Conversation::Checklist { cursor: next }
                };
                let message = prompt_message(self.session.id, Some(flow), &conversation);
                Decision {
                    change: SessionChange {
                        conversation: Some(conversation),
                        ..SessionChange::default()
                    }
                    .step(result),
                    effects: vec![self.reply(message)],
                }
            }
            (Action::Solution { node, fixed, .. }, Conversation::Solution { node: current })
                if node == *current =>
            {
                if fixed {
                    return self.resolve(None);
                }
                let title = self
                    .session
                    .flow
                    .as_ref()
                    .map_or_else(|| node.clone(), |flow| solution_title(flow, &node));
                Decision {
                    change: SessionChange {
                        conversation: Some(Conversation::FreeForm),
                        ..SessionChange::default()
                    }
                    .step(NewStep::by(user, StepKind::SolutionRejected { node, title })),
                    effects: vec![self.reply(
                        Message::text(
                            "OK, that didn't fix it. Keep going free-form: type what you check and find, `fact <text>` for anything confirmed, or `resolve <summary>` once it's fixed.",
                        )
                        .choices(vec![Choice::new("Escalate to a senior", Action::Escalate { session: self.session.id })]),
                    )],
                }
            }
            // A late or double click: shown the current step privately, so the thread does not
            // fill with repeats of a prompt everyone can already see.
            _ => Decision {
                change: SessionChange::default(),
                effects: vec![private_message(
                    &self.place(),
                    self.actor,
                    Message::text("That step has already been answered; here is the current one.")
                        .extend_with(self.current_prompt()),
                )],
            },
        }
    }

    fn tree(&self) -> Option<(&Tree, &Flow)> {
        let flow = self.session.flow.as_ref()?;
        match &flow.body {
            FlowBody::Tree(tree) => Some((tree, flow)),
            _ => None,
        }
    }
}

fn solution_title(flow: &Flow, node: &str) -> String {
    match &flow.body {
        FlowBody::Tree(tree) => tree
            .node(node)
            .map(|n| n.title.clone().unwrap_or_else(|| n.text.clone()))
            .unwrap_or_else(|| node.to_owned()),
        _ => node.to_owned(),
    }
}

fn solution_summary(flow: &Flow, node: &str) -> String {
    match &flow.body {
        FlowBody::Tree(tree) => tree.node(node).map_or_else(
            || node.to_owned(),
            |n| match &n.title {
                Some(title) => format!("{title}. {}", n.text),
                None => n.text.clone(),
            },
        ),
        _ => node.to_owned(),
    }
}

/// Starting a chosen flow: the first node or checklist item.
fn enter_flow(session: &Session, flow: &Flow) -> (Conversation, Vec<NewStep>, Message) {
    match &flow.body {
        FlowBody::Tree(tree) => enter_node(session.id, flow, tree, &tree.start_node().id.clone()),
        FlowBody::Checklist(_) | FlowBody::Maintenance { .. } => {
            let conversation = Conversation::Checklist { cursor: 0 };
            let message = prompt_message(session.id, Some(flow), &conversation);
            (conversation, Vec::new(), message)
        }
    }
}

/// Moving to a tree node: a question or action to show, or a solution reached.
fn enter_node(
    session: SessionId,
    flow: &Flow,
    tree: &Tree,
    node_id: &str,
) -> (Conversation, Vec<NewStep>, Message) {
    let Some(node) = tree.node(node_id) else {
        return (
            Conversation::FreeForm,
            Vec::new(),
            Message::text("The flow ends here."),
        );
    };
    let (conversation, step) = if node.kind == NodeKind::Solution {
        (
            Conversation::Solution {
                node: node.id.clone(),
            },
            StepKind::SolutionReached {
                node: node.id.clone(),
                title: node.title.clone().unwrap_or_else(|| "Solution".to_owned()),
                text: node.text.clone(),
            },
        )
    } else {
        (
            Conversation::Tree {
                node: node.id.clone(),
            },
            StepKind::NodeShown {
                node: node.id.clone(),
                text: node.text.clone(),
            },
        )
    };
    let message = prompt_message(session, Some(flow), &conversation);
    (conversation, vec![NewStep::bot(step)], message)
}

/// One checklist item resolved against targets.
struct ItemView {
    step_id: String,
    text: String,
    section: String,
    help: Option<String>,
    command: Option<String>,
    expect: Option<String>,
    target: Option<String>,
    /// 1-based position within the current target's run.
    position: usize,
    per_target: usize,
}

fn checklist_item(flow: &Flow, cursor: usize) -> Option<ItemView> {
    let checklist = flow.checklist()?;
    let per_target = checklist.len();
    if per_target == 0 {
        return None;
    }
    let targets = flow.targets();
    let (target, index) = if targets.is_empty() {
        (None, cursor)
    } else {
        (
            Some(targets.get(cursor / per_target)?.clone()),
            cursor % per_target,
        )
    };
    let item = checklist.items().nth(index)?;
    // Maintenance steps may name the target they run against as `{target}`.
    let fill = |text: &str| match &target {
        Some(target) => text.replace("{target}", target),
        None => text.to_owned(),
    };
    let fill_opt = |text: &Option<String>| text.as_deref().map(fill);
    Some(ItemView {
        step_id: item.step.id.clone(),
        text: fill(&item.step.text),
        section: item.section.title.clone(),
        help: fill_opt(&item.step.help),
        command: fill_opt(&item.step.command),
        expect: fill_opt(&item.step.expect),
        target,
        position: index + 1,
        per_target,
    })
}

/// What to show for the session's current state.
pub fn prompt_message(
    session: SessionId,
    flow: Option<&Flow>,
    conversation: &Conversation,
) -> Message {
    let escalate = || Choice::new("Escalate", Action::Escalate { session });
    match conversation {
        Conversation::ChoosingFlow { candidates } => {
            let mut choices: Vec<Choice> = candidates
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let choice = Choice::new(
                        c.title.clone(),
                        Action::PickFlow {
                            session,
                            flow: c.flow_id,
                        },
                    );
                    if i == 0 { choice.primary() } else { choice }
                })
                .collect();
            choices.push(Choice::new(
                "Troubleshoot without a flow",
                Action::FreeForm { session },
            ));
            Message::new()
                .paragraph("These flows look like a match. Pick one to walk through it:")
                .choices(choices)
        }
        Conversation::FreeForm => Message::text(
            "Free-form: type what you check and what you find as you go, and it all goes into the ticket note. `fact <text>` records something confirmed; `escalate` asks a senior; `resolve <summary>` closes the session.",
        ),
        Conversation::Tree { node } | Conversation::Solution { node } => {
            let Some(tree_node) = flow.and_then(|f| match &f.body {
                FlowBody::Tree(tree) => tree.node(node),
                _ => None,
            }) else {
                return Message::text("This session's flow could not be read; carry on free-form.");
            };
            let mut message = Message::new();
            match tree_node.kind {
                NodeKind::Solution => {
                    message = message
                        .heading(format!(
                            "Suggested fix: {}",
                            tree_node.title.as_deref().unwrap_or("Solution")
                        ))
                        .paragraph(tree_node.text.clone());
                }
                NodeKind::Question | NodeKind::Action => {
                    message = message.heading(tree_node.text.clone());
                }
            }
            if let Some(help) = &tree_node.help {
                message = message.paragraph(help.clone());
            }
            if let Some(command) = &tree_node.command {
                message = message.code(command.clone());
            }
            if let Some(expect) = &tree_node.expect {
                message = message.context(format!("Expected: {expect}"));
            }
            let choices = if tree_node.kind == NodeKind::Solution {
                vec![
                    Choice::new(
                        "That fixed it",
                        Action::Solution {
                            session,
                            node: node.clone(),
                            fixed: true,
                        },
                    )
                    .primary(),
                    Choice::new(
                        "Still broken",
                        Action::Solution {
                            session,
                            node: node.clone(),
                            fixed: false,
                        },
                    ),
                ]
            } else {
                tree_node
                    .branches
                    .iter()
                    .enumerate()
                    .map(|(branch, b)| {
                        Choice::new(
                            b.label.clone(),
                            Action::Answer {
                                session,
                                node: node.clone(),
                                branch,
                            },
                        )
                    })
                    .chain(std::iter::once(escalate()))
                    .collect()
            };
            message.choices(choices)
        }
        Conversation::Checklist { cursor } => {
            let Some(item) = flow.and_then(|f| checklist_item(f, *cursor)) else {
                return Message::text(
                    "This session's checklist could not be read; carry on free-form.",
                );
            };
            let where_ = match &item.target {
                Some(target) => format!(
                    "{target} · {} · step {} of {}",
                    item.section, item.position, item.per_target
                ),
                None => format!(
                    "{} · step {} of {}",
                    item.section, item.position, item.per_target
                ),
            };
            let mut message = Message::new().context(where_).heading(item.text.clone());
            if let Some(help) = item.help {
                message = message.paragraph(help);
            }
            if let Some(command) = item.command {
                message = message.code(command);
            }
            if let Some(expect) = item.expect {
                message = message.context(format!("Expected: {expect}"));
            }
            let choice = |label: &str, outcome| {
                Choice::new(
                    label,
                    Action::Checklist {
                        session,
                        cursor: *cursor,
                        outcome,
                    },
                )
            };
            message.with(Block::Choices {
                choices: vec![
                    choice("Done", StepOutcome::Done).primary(),
                    choice("Skipped", StepOutcome::Skipped),
                    choice("Failed", StepOutcome::Failed).danger(),
                ],
                input: Some("Output or notes (optional)".to_owned()),
            })
        }
        Conversation::ChecklistComplete => Message::new()
            .paragraph("Every step of the checklist has an outcome.")
            .choices(vec![
                Choice::new("Resolve", Action::Resolve { session }).primary(),
            ]),
    }
}
