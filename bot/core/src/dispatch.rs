//! Runs background jobs: sends deliveries, climbs the re-notification ladder, keeps cards current,
//! tells threads, reminds and releases idle claims. Everything reads the state as it is when the job
//! runs, so a late job never undoes what happened since (a reminder for an escalation that was
//! claimed meanwhile is suppressed, not sent).

use crate::domain::{Platform, Role, User};
use crate::effect::{Action, Choice, Message};
use crate::escalation::{channel_key, parse_channel_key, summary_of, update_cards};
use crate::handoff::{CardMood, Handoff, HandoffIntent, escalation_card, escalation_email};
use crate::ids::{AccountId, SessionId};
use crate::jobs::{Job, JobRecord, JobResult, NewJob, ThreadNotice};
use crate::links::{LinkScope, LinkSigner, ShareLink};
use crate::notify::{InboundHandler, Mailer, Notifiers, NotifyError};
use crate::outbox::{
    Delivery, DeliveryChannel, DeliveryPurpose, DeliveryStatus, EventKind, NewDelivery, NewEvent,
};
use crate::ports::{ClaimPlan, Store, StoreError};
use crate::redact::Redactor;
use crate::session::{NewStep, Session, SessionChange, StepKind};
use crate::team::{LadderAction, TeamSettings};
use crate::time::{Clock, human_duration};
use std::sync::Arc;

pub mod ai;
mod psa;

/// Runs jobs against the platforms and the mail server.
#[derive(Debug, Clone)]
pub struct Dispatcher {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    notifiers: Notifiers,
    mailer: Option<Arc<dyn Mailer>>,
    links: Option<(Arc<dyn LinkSigner>, i64)>,
    redactor: Redactor,
    counters: crate::counters::Counters,
    inbound: std::collections::HashMap<Platform, Arc<dyn InboundHandler>>,
    /// The teams' PSAs, when the integration is enabled.
    desk: Option<Arc<dyn crate::psa::TicketDesk>>,
    /// The copilot, when enabled.
    copilot: Option<Arc<dyn crate::ai::Copilot>>,
}

/// How many times a job's change is re-committed when the session changes under it.
const COMMIT_ATTEMPTS: usize = 5;

/// The error recorded on a delivery the platform rate-limited.
const RATE_LIMITED: &str = "rate limited by the chat platform";

/// Turns a store failure into a retry.
fn retry(e: StoreError) -> JobResult {
    JobResult::Retry {
        error: e.to_string(),
        after: None,
    }
}

macro_rules! try_store {
    ($e:expr) => {
        match $e {
            Ok(value) => value,
            Err(StoreError::NotFound { .. }) => return JobResult::Done,
            Err(e) => return retry(e),
        }
    };
}

impl Dispatcher {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, notifiers: Notifiers) -> Self {
        Self {
            store,
            clock,
            notifiers,
            mailer: None,
            links: None,
            redactor: Redactor::new(),
            counters: crate::counters::Counters::new(),
            inbound: std::collections::HashMap::new(),
            desk: None,
            copilot: None,
        }
    }

    /// Pulls tickets from and posts notes to the teams' PSAs through `desk`.
    pub fn with_desk(mut self, desk: Arc<dyn crate::psa::TicketDesk>) -> Self {
        self.desk = Some(desk);
        self
    }

    /// Hands `platform`'s recorded events to `handler`.
    pub fn with_inbound(mut self, platform: Platform, handler: Arc<dyn InboundHandler>) -> Self {
        self.inbound.insert(platform, handler);
        self
    }

    /// Counts deliveries into `counters`.
    pub fn with_counters(mut self, counters: crate::counters::Counters) -> Self {
        self.counters = counters;
        self
    }

    pub fn with_mailer(mut self, mailer: Arc<dyn Mailer>) -> Self {
        self.mailer = Some(mailer);
        self
    }

    /// E-mails carry personal companion links valid for `ttl_millis`.
    pub fn with_links(mut self, signer: Arc<dyn LinkSigner>, ttl_millis: i64) -> Self {
        self.links = Some((signer, ttl_millis));
        self
    }

    /// Commits `step` and `jobs` to the session, reading it again when another writer got there
    /// first.
    pub(super) async fn commit_step(
        &self,
        account: AccountId,
        session: SessionId,
        step: NewStep,
        jobs: Vec<NewJob>,
    ) -> Result<(), StoreError> {
        let change = SessionChange {
            jobs,
            ..SessionChange::default()
        }
        .step(step);
        for _ in 0..COMMIT_ATTEMPTS {
            let current = self.store.get_session(account, session).await?;
            match self
                .store
                .commit_session(
                    account,
                    session,
                    current.lock_version,
                    change.clone(),
                    self.clock.now(),
                )
                .await
            {
                Ok(_) => return Ok(()),
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Conflict { what: "session" })
    }

    /// A job that says `message` in the session's thread.
    pub(super) fn thread_reply(&self, session: &Session, message: Message) -> NewJob {
        NewJob::now(
            session.account_id,
            Job::Perform {
                effect: crate::effect::Effect::Reply {
                    thread: session.thread.clone(),
                    message,
                },
            },
            self.clock.now(),
        )
    }

    /// Runs one job.
    #[tracing::instrument(skip_all, fields(job.id = %job.id, job.kind = job.job.kind(), job.attempt = job.attempts))]
    pub async fn run(&self, job: &JobRecord) -> JobResult {
        let account = job.account_id;
        match &job.job {
            Job::Deliver { delivery } => {
                let delivery = try_store!(self.store.get_delivery(account, *delivery).await);
                self.deliver(&delivery).await
            }
            Job::Ladder { handoff, step } => {
                let handoff = try_store!(self.store.get_handoff(account, *handoff).await);
                self.ladder(&handoff, *step).await
            }
            Job::UpdateCards { handoff } => {
                let handoff = try_store!(self.store.get_handoff(account, *handoff).await);
                self.update_cards(&handoff).await
            }
            Job::ThreadNotice { handoff, notice } => {
                let handoff = try_store!(self.store.get_handoff(account, *handoff).await);
                self.thread_notice(&handoff, notice).await
            }
            Job::Invite { handoff, user } => {
                let handoff = try_store!(self.store.get_handoff(account, *handoff).await);
                let user = try_store!(self.store.get_user(account, *user).await);
                if user.platform != handoff.thread.platform {
                    return JobResult::Done;
                }
                let Some(notifier) = self.notifiers.get(handoff.thread.platform) else {
                    return JobResult::Done;
                };
                outcome(
                    notifier
                        .invite(&handoff.thread, &user.platform_user_id)
                        .await,
                )
            }
            Job::IdleReminder { handoff, claim } => {
                let handoff = try_store!(self.store.get_handoff(account, *handoff).await);
                self.idle_reminder(&handoff, *claim).await
            }
            Job::IdleRelease { handoff, claim } => {
                let handoff = try_store!(self.store.get_handoff(account, *handoff).await);
                self.idle_release(&handoff, *claim).await
            }
            Job::Inbound {
                platform, event, ..
            } => match self.inbound.get(platform) {
                Some(handler) => handler.handle(account, event, job.attempts).await,
                None => JobResult::Failed {
                    error: format!("{platform} is not connected on this server"),
                },
            },
            Job::Perform { effect } => match self.notifiers.get(effect.platform()) {
                Some(notifier) => outcome(crate::notify::perform(notifier.as_ref(), effect).await),
                None => JobResult::Failed {
                    error: format!("{} is not connected on this server", effect.platform()),
                },
            },
            Job::PsaTicket { session, ticket } => self.psa_ticket(job, *session, ticket).await,
            Job::PsaNote { note, .. } => self.psa_note(job, *note).await,
            Job::AiTurn { session } => self.ai_turn(job, *session).await,
            Job::NotePreview { session } => self.note_preview(job, *session).await,
            Job::AiAssess { handoff } => self.ai_assess(job, *handoff).await,
            Job::FlowBuild {
                description,
                user,
                platform_user_id,
                place,
            } => {
                self.flow_build(job, description, *user, platform_user_id, place)
                    .await
            }
            Job::Flywheel => self.flywheel(job).await,
        }
    }

    async fn mark(
        &self,
        delivery: &Delivery,
        status: DeliveryStatus,
        error: Option<&str>,
    ) -> JobResult {
        self.record(delivery, status, error, None).await
    }

    /// Records a delivery's new status (and where a card was posted), and counts it.
    async fn record(
        &self,
        delivery: &Delivery,
        status: DeliveryStatus,
        error: Option<&str>,
        posted: Option<&crate::notify::MessageRef>,
    ) -> JobResult {
        self.counters
            .delivery(delivery.channel.as_str(), status.as_str());
        match self
            .store
            .mark_delivery(
                delivery.account_id,
                delivery.id,
                status,
                error,
                posted,
                self.clock.now(),
            )
            .await
        {
            Ok(()) => JobResult::Done,
            Err(e) => retry(e),
        }
    }

    /// Records why a delivery waits for another attempt (best effort: the job retries anyway).
    async fn requeue(&self, delivery: &Delivery, error: &str) {
        let _ = self
            .store
            .mark_delivery(
                delivery.account_id,
                delivery.id,
                DeliveryStatus::Queued,
                Some(error),
                None,
                self.clock.now(),
            )
            .await;
    }

    /// After a send failed: retry, or record the failure for good.
    async fn failed(&self, delivery: &Delivery, error: NotifyError) -> JobResult {
        match error {
            NotifyError::RateLimited { retry_after } => {
                let first = delivery.last_error.as_deref() != Some(RATE_LIMITED);
                self.requeue(delivery, RATE_LIMITED).await;
                if first && delivery.purpose == DeliveryPurpose::Card {
                    let notice = Job::ThreadNotice {
                        handoff: delivery.handoff_id,
                        notice: ThreadNotice::Delayed {
                            seconds: retry_after.map(|d| d.as_secs()),
                        },
                    };
                    let job = NewJob::now(delivery.account_id, notice, self.clock.now());
                    if let Err(e) = self.store.enqueue(vec![job], self.clock.now()).await {
                        tracing::warn!(error = %e, "could not tell the thread its escalation is delayed");
                    }
                }
                JobResult::Retry {
                    error: RATE_LIMITED.to_owned(),
                    after: retry_after,
                }
            }
            NotifyError::Transient(error) => {
                self.requeue(delivery, &error).await;
                JobResult::Retry { error, after: None }
            }
            NotifyError::Permanent(error) => {
                let _ = self
                    .mark(delivery, DeliveryStatus::Failed, Some(&error))
                    .await;
                JobResult::Failed { error }
            }
        }
    }

    async fn deliver(&self, delivery: &Delivery) -> JobResult {
        if delivery.status != DeliveryStatus::Queued {
            return JobResult::Done; // Sent already (a retried job): exactly once.
        }
        let handoff = try_store!(
            self.store
                .get_handoff(delivery.account_id, delivery.handoff_id)
                .await
        );
        let now = self.clock.now();
        let still_needed = match delivery.purpose {
            DeliveryPurpose::Card | DeliveryPurpose::Stream => true,
            DeliveryPurpose::Reminder | DeliveryPurpose::Ladder => handoff.is_unclaimed(),
            DeliveryPurpose::IdleReminder => {
                handoff.is_open()
                    && handoff.claimed_by.is_some()
                    && handoff.acknowledged_at.is_none()
            }
        };
        if !still_needed {
            return self
                .mark(
                    delivery,
                    DeliveryStatus::Suppressed,
                    Some("no longer needed: claimed or closed meanwhile"),
                )
                .await;
        }
        match delivery.channel {
            DeliveryChannel::CompanionStream => {
                self.mark(delivery, DeliveryStatus::Sent, None).await
            }
            DeliveryChannel::ChatCard => {
                let Some(channel) = parse_channel_key(&delivery.recipient) else {
                    return self
                        .mark(delivery, DeliveryStatus::Failed, Some("unreadable channel"))
                        .await;
                };
                let Some(notifier) = self.notifiers.get(channel.platform) else {
                    return self
                        .mark(
                            delivery,
                            DeliveryStatus::Failed,
                            Some(&format!("{} is not connected", channel.platform)),
                        )
                        .await;
                };
                let mood = if delivery.purpose == DeliveryPurpose::Reminder {
                    CardMood::Reminder
                } else {
                    CardMood::New
                };
                match notifier
                    .post(&channel, &escalation_card(&handoff, now, mood))
                    .await
                {
                    Ok(posted) => {
                        self.record(delivery, DeliveryStatus::Sent, None, Some(&posted))
                            .await
                    }
                    Err(e) => self.failed(delivery, e).await,
                }
            }
            DeliveryChannel::ChatDm => {
                let user = match self.recipient_or_suppress(delivery).await {
                    Ok(user) => user,
                    Err(done) => return done,
                };
                let Some(notifier) = self.notifiers.get(user.platform) else {
                    return self
                        .mark(
                            delivery,
                            DeliveryStatus::Failed,
                            Some(&format!("{} is not connected", user.platform)),
                        )
                        .await;
                };
                let workspace = self.workspace_for(&handoff, user.platform).await;
                let message = match delivery.purpose {
                    DeliveryPurpose::IdleReminder => idle_reminder_message(&handoff, now),
                    _ => Message::new()
                        .paragraph(format!(
                            "An escalation has waited {} for a senior:",
                            human_duration(now.millis_since(handoff.created_at))
                        ))
                        .extend_with(escalation_card(&handoff, now, CardMood::New)),
                };
                match notifier
                    .direct(&workspace, &user.platform_user_id, &message)
                    .await
                {
                    Ok(()) => self.mark(delivery, DeliveryStatus::Sent, None).await,
                    Err(e) => self.failed(delivery, e).await,
                }
            }
            DeliveryChannel::Email => {
                let user = match self.recipient_or_suppress(delivery).await {
                    Ok(user) => user,
                    Err(done) => return done,
                };
                let Some(address) = user.email.clone().filter(|e| e.contains('@')) else {
                    return self
                        .mark(
                            delivery,
                            DeliveryStatus::Suppressed,
                            Some("no e-mail address"),
                        )
                        .await;
                };
                let Some(mailer) = &self.mailer else {
                    return self
                        .mark(
                            delivery,
                            DeliveryStatus::Failed,
                            Some("e-mail is not configured (set [smtp])"),
                        )
                        .await;
                };
                let link = match self.personal_link(&handoff, &user).await {
                    Ok(link) => link,
                    Err(e) => return retry(e),
                };
                let mut email = escalation_email(&handoff, &address, link.as_deref(), now);
                // Nothing secret leaves in an e-mail body; the link itself is meant to leave.
                email.text = self.redact_keeping(&email.text, link.as_deref());
                email.html = self.redact_keeping(&email.html, link.as_deref());
                match mailer.send(&email).await {
                    Ok(()) => self.mark(delivery, DeliveryStatus::Sent, None).await,
                    Err(e) => self.failed(delivery, e).await,
                }
            }
        }
    }

    fn redact_keeping(&self, text: &str, keep: Option<&str>) -> String {
        match keep {
            Some(link) => text
                .split(link)
                .map(|part| self.redactor.redact(part).into_owned())
                .collect::<Vec<_>>()
                .join(link),
            None => self.redactor.redact(text).into_owned(),
        }
    }

    /// The person a direct message or e-mail is for; when they are gone, the delivery is
    /// suppressed and the job is done.
    async fn recipient_or_suppress(&self, delivery: &Delivery) -> Result<User, JobResult> {
        match self.recipient(delivery).await {
            Some(user) => Ok(user),
            None => Err(self
                .mark(
                    delivery,
                    DeliveryStatus::Suppressed,
                    Some("recipient no longer exists"),
                )
                .await),
        }
    }

    async fn recipient(&self, delivery: &Delivery) -> Option<User> {
        let id = delivery.recipient.split('@').next()?;
        let id = crate::ids::UserId::parse(id).ok()?;
        self.store.get_user(delivery.account_id, id).await.ok()
    }

    /// The workspace to reach a user of `platform` in: the thread's, or the team's escalation channel's.
    async fn workspace_for(&self, handoff: &Handoff, platform: Platform) -> String {
        if handoff.thread.platform == platform {
            return handoff.thread.workspace.clone();
        }
        match self
            .store
            .get_team(handoff.account_id, handoff.team_id)
            .await
        {
            Ok(team) => team
                .settings
                .escalation_channel(platform)
                .map(|c| c.workspace.clone())
                .unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    async fn personal_link(
        &self,
        handoff: &Handoff,
        user: &User,
    ) -> Result<Option<String>, StoreError> {
        let Some((signer, ttl)) = &self.links else {
            return Ok(None);
        };
        let now = self.clock.now();
        let link = ShareLink {
            id: crate::ids::LinkId::new(),
            account_id: handoff.account_id,
            user_id: user.id,
            role: user.role,
            scope: LinkScope::Handoff(handoff.id),
            created_at: now,
            expires_at: now.plus_millis(*ttl),
            revoked_at: None,
        };
        self.store.create_link(&link).await?;
        Ok(Some(signer.url_for(&link)))
    }

    async fn team_settings(&self, handoff: &Handoff) -> Result<TeamSettings, StoreError> {
        Ok(self
            .store
            .get_team(handoff.account_id, handoff.team_id)
            .await?
            .settings)
    }

    async fn ladder(&self, handoff: &Handoff, index: usize) -> JobResult {
        if !handoff.is_unclaimed() || handoff.intent != HandoffIntent::Escalate {
            return JobResult::Done;
        }
        let settings = match self.team_settings(handoff).await {
            Ok(settings) => settings,
            Err(e) => return retry(e),
        };
        let Some(step) = settings.ladder.steps.get(index) else {
            return JobResult::Done;
        };
        let now = self.clock.now();
        let allowed = settings.working_hours.allows(step.when, now);
        let status = if allowed {
            DeliveryStatus::Queued
        } else {
            DeliveryStatus::Suppressed
        };
        let mut deliveries = Vec::new();
        match step.action {
            LadderAction::Repost => {
                for channel in &settings.escalation_channels {
                    deliveries.push((
                        DeliveryChannel::ChatCard,
                        format!("{}@ladder-{index}", channel_key(channel)),
                        DeliveryPurpose::Reminder,
                    ));
                }
            }
            LadderAction::DirectMessageSeniors
            | LadderAction::EmailSeniors
            | LadderAction::EmailOwners => {
                let users = match self.store.list_users(handoff.account_id).await {
                    Ok(users) => users,
                    Err(e) => return retry(e),
                };
                let channel = if step.action == LadderAction::DirectMessageSeniors {
                    DeliveryChannel::ChatDm
                } else {
                    DeliveryChannel::Email
                };
                let recipients = ladder_recipients(&users, handoff, step.action);
                for user in recipients {
                    deliveries.push((
                        channel,
                        format!("{}@ladder-{index}", user.id),
                        DeliveryPurpose::Ladder,
                    ));
                }
            }
        }
        let mut rows = Vec::new();
        let mut jobs = Vec::new();
        for (channel, recipient, purpose) in deliveries {
            let id = uuid::Uuid::now_v7();
            rows.push(NewDelivery {
                id,
                handoff: handoff.id,
                channel,
                recipient,
                purpose,
                status,
            });
            if allowed {
                jobs.push(NewJob::now(
                    handoff.account_id,
                    Job::Deliver { delivery: id },
                    now,
                ));
            }
        }
        match self
            .store
            .add_deliveries(handoff.account_id, rows, jobs, now)
            .await
        {
            Ok(()) => JobResult::Done,
            Err(e) => retry(e),
        }
    }

    async fn update_cards(&self, handoff: &Handoff) -> JobResult {
        let deliveries = match self.store.deliveries(handoff.account_id, handoff.id).await {
            Ok(d) => d,
            Err(e) => return retry(e),
        };
        let now = self.clock.now();
        for delivery in deliveries
            .iter()
            .filter(|d| d.channel == DeliveryChannel::ChatCard && d.status == DeliveryStatus::Sent)
        {
            let Some(posted) = &delivery.message_ref else {
                continue;
            };
            let Some(notifier) = self.notifiers.get(posted.channel.platform) else {
                continue;
            };
            let mood = if delivery.purpose == DeliveryPurpose::Reminder {
                CardMood::Reminder
            } else {
                CardMood::New
            };
            if let Err(e) = notifier
                .update(posted, &escalation_card(handoff, now, mood))
                .await
            {
                return match e {
                    NotifyError::RateLimited { retry_after } => JobResult::Retry {
                        error: "rate limited".to_owned(),
                        after: retry_after,
                    },
                    NotifyError::Transient(error) => JobResult::Retry { error, after: None },
                    NotifyError::Permanent(error) => JobResult::Failed { error },
                };
            }
        }
        JobResult::Done
    }

    async fn thread_notice(&self, handoff: &Handoff, notice: &ThreadNotice) -> JobResult {
        let Some(notifier) = self.notifiers.get(handoff.thread.platform) else {
            return JobResult::Done;
        };
        let text = match notice {
            ThreadNotice::Claimed { by } => {
                format!("{by} claimed this escalation and now owns the session.")
            }
            ThreadNotice::Released { by } => format!(
                "{by}'s claim lapsed (no action after the reminder); the escalation is back in the queue."
            ),
            ThreadNotice::Delayed { seconds } => match seconds {
                Some(s) => format!(
                    "Your escalation is delayed: the chat platform is rate-limiting us. It will be posted in about {}; nothing is lost.",
                    human_duration(*s as i64 * 1000)
                ),
                None => "Your escalation is delayed: the chat platform is rate-limiting us. It will be posted as soon as it allows; nothing is lost.".to_owned(),
            },
        };
        outcome(notifier.reply(&handoff.thread, &Message::text(text)).await)
    }

    async fn idle_reminder(&self, handoff: &Handoff, claim: i32) -> JobResult {
        if !self.still_idle(handoff, claim).await {
            return JobResult::Done;
        }
        let Some(claimer) = handoff.claimed_by else {
            return JobResult::Done;
        };
        let settings = match self.team_settings(handoff).await {
            Ok(s) => s,
            Err(e) => return retry(e),
        };
        let now = self.clock.now();
        let id = uuid::Uuid::now_v7();
        let rows = vec![NewDelivery {
            id,
            handoff: handoff.id,
            channel: DeliveryChannel::ChatDm,
            recipient: format!("{claimer}@idle-{claim}"),
            purpose: DeliveryPurpose::IdleReminder,
            status: DeliveryStatus::Queued,
        }];
        let jobs = vec![
            NewJob::now(handoff.account_id, Job::Deliver { delivery: id }, now),
            NewJob::at(
                handoff.account_id,
                Job::IdleRelease {
                    handoff: handoff.id,
                    claim,
                },
                now.plus_millis(settings.idle.release_after_seconds as i64 * 1000),
            ),
        ];
        match self
            .store
            .add_deliveries(handoff.account_id, rows, jobs, now)
            .await
        {
            Ok(()) => JobResult::Done,
            Err(e) => retry(e),
        }
    }

    /// The claim of generation `claim` is still held, unacknowledged, with no action yet.
    async fn still_idle(&self, handoff: &Handoff, claim: i32) -> bool {
        handoff.is_open()
            && handoff.claim_count == claim
            && handoff.claimed_by.is_some()
            && handoff.acknowledged_at.is_none()
            && !self
                .store
                .claimer_has_acted(handoff.account_id, handoff)
                .await
                .unwrap_or(true)
    }

    async fn idle_release(&self, handoff: &Handoff, claim: i32) -> JobResult {
        if !self.still_idle(handoff, claim).await {
            return JobResult::Done;
        }
        let settings = match self.team_settings(handoff).await {
            Ok(s) => s,
            Err(e) => return retry(e),
        };
        let now = self.clock.now();
        let account = handoff.account_id;
        let by = handoff
            .claimed_by_name
            .clone()
            .unwrap_or_else(|| "The claimer".to_owned());
        let idle_for = human_duration(now.millis_since(handoff.claimed_at.unwrap_or(now)));
        let mut summary = summary_of(handoff);
        summary.claimed_by = None;
        summary.claimed_at = None;
        let mut jobs = vec![
            update_cards(account, handoff.id, now),
            NewJob::now(
                account,
                Job::ThreadNotice {
                    handoff: handoff.id,
                    notice: ThreadNotice::Released { by: by.clone() },
                },
                now,
            ),
        ];
        // Back in the queue: the ladder starts over from now.
        for (index, step) in settings
            .ladder
            .steps
            .iter()
            .enumerate()
            .take(settings.ladder.cap as usize)
        {
            if step.applies_to(handoff.priority) {
                jobs.push(NewJob::at(
                    account,
                    Job::Ladder {
                        handoff: handoff.id,
                        step: index,
                    },
                    step.due_at(now, handoff.priority),
                ));
            }
        }
        let plan = ClaimPlan {
            step: Some(StepKind::Released {
                reason: format!("{by} did not start within {idle_for} of claiming"),
            }),
            jobs,
            events: vec![NewEvent {
                kind: EventKind::HandoffReleased,
                summary,
            }],
        };
        match self
            .store
            .release_handoff(account, handoff.id, claim, now, plan)
            .await
        {
            Ok(_) => JobResult::Done,
            Err(e) => retry(e),
        }
    }
}

/// Who a ladder step reaches: seniors (anyone who may claim) other than the requester, or the owners
/// (admins when there is no owner).
fn ladder_recipients<'a>(
    users: &'a [User],
    handoff: &Handoff,
    action: LadderAction,
) -> Vec<&'a User> {
    match action {
        LadderAction::EmailOwners => {
            let owners: Vec<&User> = users.iter().filter(|u| u.role == Role::Owner).collect();
            if owners.is_empty() {
                users.iter().filter(|u| u.role == Role::Admin).collect()
            } else {
                owners
            }
        }
        _ => users
            .iter()
            .filter(|u| {
                u.team_id == handoff.team_id && u.role.can_claim() && u.id != handoff.requested_by
            })
            .collect(),
    }
}

fn idle_reminder_message(handoff: &Handoff, now: crate::time::Timestamp) -> Message {
    Message::new()
        .paragraph(format!(
            "You claimed \"{}\" {} ago and nothing has been recorded in the session yet. If you're not on it, it goes back to the queue soon.",
            handoff.snapshot.problem,
            human_duration(now.millis_since(handoff.claimed_at.unwrap_or(now)))
        ))
        .choices(vec![
            Choice::new("I'm on it", Action::Acknowledge { handoff: handoff.id }).primary(),
            Choice::new("View handoff", Action::ViewHandoff { handoff: handoff.id }),
        ])
}

fn outcome(result: Result<(), NotifyError>) -> JobResult {
    match result {
        Ok(()) => JobResult::Done,
        Err(NotifyError::RateLimited { retry_after }) => JobResult::Retry {
            error: "rate limited".to_owned(),
            after: retry_after,
        },
        Err(NotifyError::Transient(error)) => JobResult::Retry { error, after: None },
        Err(NotifyError::Permanent(error)) => JobResult::Failed { error },
    }
}
