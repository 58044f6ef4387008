//! Escalation Mode in the engine: escalating a session, claiming it (first click wins), and the
//! buttons and commands around it. Notifications are recorded as deliveries and jobs in the same
//! transaction as the handoff, and sent afterwards by the [`Dispatcher`](crate::dispatch::Dispatcher):
//! nothing a notification does can roll the handoff back.

use crate::domain::{Actor, ChannelRef, Priority, Role};
use crate::effect::{Action, Block, Effect, Message, Place};
use crate::engine::{
    Decision, Engine, EngineResult, Turn, private_message, private_to, viewer_refusal,
};
use crate::handoff::{
    ClaimOutcome, Handoff, HandoffIntent, NewHandoff, Snapshot, offline_assessment, read_in,
};
use crate::ids::HandoffId;
use crate::jobs::{Job, NewJob, ThreadNotice};
use crate::links::LinkScope;
use crate::metrics::{self, EscalationMetrics, Period};
use crate::outbox::{
    DeliveryChannel, DeliveryPurpose, DeliveryStatus, EventKind, EventSummary, NewDelivery,
    NewEvent,
};
use crate::ports::{ClaimPlan, HandoffFilter, StoreError};
use crate::session::{NewStep, SessionChange, SessionStatus, StepKind};
use crate::time::{Timestamp, human_duration};

/// How a card channel is named in a delivery's recipient.
pub fn channel_key(channel: &ChannelRef) -> String {
    format!(
        "{}:{}:{}",
        channel.platform, channel.workspace, channel.channel
    )
}

/// Reads a card recipient back. A ladder repost's recipient carries an `@ladder-N` suffix, so it is a
/// delivery of its own.
pub fn parse_channel_key(key: &str) -> Option<ChannelRef> {
    let key = key.rsplit_once("@ladder-").map_or(key, |(k, _)| k);
    let (platform, rest) = key.split_once(':')?;
    let (workspace, channel) = rest.split_once(':')?;
    Some(ChannelRef {
        platform: platform.parse().ok()?,
        workspace: workspace.to_owned(),
        channel: channel.to_owned(),
    })
}

/// What the live queue shows of a handoff.
pub fn summary_of(handoff: &Handoff) -> EventSummary {
    EventSummary {
        handoff_id: handoff.id,
        problem: handoff.snapshot.problem.clone(),
        priority: handoff.priority,
        requested_by: handoff.requested_by_name.clone(),
        reason: handoff.reason.clone(),
        likely_cause: handoff.assessment.likely_cause.clone(),
        confidence: handoff.assessment.confidence,
        steps_tried: handoff.snapshot.steps_attempted.len(),
        created_at: handoff.created_at,
        claimed_by: handoff.claimed_by_name.clone(),
        claimed_at: handoff.claimed_at,
    }
}

/// A handoff of the session as it stands, with the offline assessment.
pub(crate) fn new_handoff(
    turn: &Turn<'_>,
    intent: HandoffIntent,
    priority: Priority,
    reason: String,
) -> NewHandoff {
    let snapshot = Snapshot::of(turn.session, &turn.loaded.timeline, &turn.loaded.facts);
    let assessment = offline_assessment(turn.session, &snapshot);
    NewHandoff {
        id: HandoffId::new(),
        intent,
        requested_by: turn.actor.user_id,
        reason,
        priority,
        snapshot,
        assessment,
    }
}

/// Escalates the session: the handoff, a card delivery per escalation channel, the live-queue
/// event and the ladder, all in the session's change.
pub(crate) fn escalate(turn: &Turn<'_>, priority: Priority, reason: String) -> Decision {
    let settings = turn
        .loaded
        .team
        .as_ref()
        .map(|t| t.settings.clone())
        .unwrap_or_default();
    let handoff = new_handoff(turn, HandoffIntent::Escalate, priority, reason.clone());
    let account = turn.session.account_id;
    let now = turn.now;
    let mut deliveries = Vec::new();
    let mut jobs = Vec::new();
    for channel in &settings.escalation_channels {
        let id = uuid::Uuid::now_v7();
        deliveries.push(NewDelivery {
            id,
            handoff: handoff.id,
            channel: DeliveryChannel::ChatCard,
            recipient: channel_key(channel),
            purpose: DeliveryPurpose::Card,
            status: DeliveryStatus::Queued,
        });
        jobs.push(NewJob::now(account, Job::Deliver { delivery: id }, now));
    }
    deliveries.push(NewDelivery {
        id: uuid::Uuid::now_v7(),
        handoff: handoff.id,
        channel: DeliveryChannel::CompanionStream,
        recipient: "account".to_owned(),
        purpose: DeliveryPurpose::Stream,
        status: DeliveryStatus::Sent,
    });
    for (index, step) in settings
        .ladder
        .steps
        .iter()
        .enumerate()
        .take(settings.ladder.cap as usize)
    {
        if step.applies_to(priority) {
            jobs.push(NewJob::at(
                account,
                Job::Ladder {
                    handoff: handoff.id,
                    step: index,
                },
                step.due_at(now, priority),
            ));
        }
    }
    jobs.extend(turn.ai_assess_jobs(handoff.id));
    let summary = EventSummary {
        handoff_id: handoff.id,
        problem: handoff.snapshot.problem.clone(),
        priority,
        requested_by: turn.actor.display_name.clone(),
        reason: reason.clone(),
        likely_cause: handoff.assessment.likely_cause.clone(),
        confidence: handoff.assessment.confidence,
        steps_tried: handoff.snapshot.steps_attempted.len(),
        created_at: now,
        claimed_by: None,
        claimed_at: None,
    };
    let where_ = if settings.escalation_channels.is_empty() {
        "No escalation channel is set for this team yet (an admin can run `/rf escalations here` in the channel that should get the cards); it is in the companion's live queue meanwhile.".to_owned()
    } else {
        // Name the channels the requester can see: those on their own platform, if any.
        let platform = turn.session.thread.platform;
        let here = settings
            .escalation_channels
            .iter()
            .any(|c| c.platform == platform);
        let names: Vec<String> = settings
            .escalation_channels
            .iter()
            .filter(|c| !here || c.platform == platform)
            .map(ChannelRef::mention)
            .collect();
        format!(
            "The team has been notified in {}; I'll post here when someone claims it.",
            names.join(", ")
        )
    };
    let message = Message::new()
        .paragraph(format!(
            "Escalated by {} (priority {priority}): {reason}",
            turn.actor.display_name
        ))
        .paragraph(where_);
    Decision {
        change: SessionChange {
            status: Some(SessionStatus::Escalated),
            handoff: Some(handoff),
            deliveries,
            jobs,
            events: vec![NewEvent {
                kind: EventKind::HandoffCreated,
                summary,
            }],
            ..SessionChange::default()
        }
        .step(NewStep::by(
            turn.actor.user_id,
            StepKind::Escalated { reason, priority },
        )),
        effects: vec![turn.reply(message)],
    }
}

/// The session was resolved: the escalation closes, its cards say so, the queue drops it.
pub(crate) fn close_escalation(turn: &Turn<'_>, handoff: &Handoff, change: &mut SessionChange) {
    let account = turn.session.account_id;
    change
        .jobs
        .push(update_cards(account, handoff.id, turn.now));
    let mut summary = summary_of(handoff);
    summary.problem = handoff.snapshot.problem.clone();
    change.events.push(NewEvent {
        kind: EventKind::HandoffClosed,
        summary,
    });
}

/// Bringing the cards up to date; bursts of changes coalesce into one update.
pub(crate) fn update_cards(
    account: crate::ids::AccountId,
    handoff: HandoffId,
    now: Timestamp,
) -> NewJob {
    NewJob::now(account, Job::UpdateCards { handoff }, now).coalesced(format!("cards:{handoff}"))
}

/// What a claim came to, for whoever clicked (chat or companion).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimView {
    Won(Box<Handoff>),
    /// Someone else (or the same person, earlier) holds it.
    Lost {
        by: String,
        by_you: bool,
        ago_millis: i64,
    },
    /// Not allowed or not possible; the text says why.
    Refused(String),
}

impl ClaimView {
    /// The private message for whoever clicked.
    pub fn message(&self, now: Timestamp) -> Message {
        match self {
            ClaimView::Won(handoff) => read_in(handoff, now),
            ClaimView::Lost {
                by_you: true,
                ago_millis,
                ..
            } => Message::text(format!(
                "You already claimed this {} ago.",
                human_duration(*ago_millis)
            )),
            ClaimView::Lost { by, ago_millis, .. } => Message::text(format!(
                "Already claimed by {by} {} ago.",
                human_duration(*ago_millis)
            )),
            ClaimView::Refused(reason) => Message::text(reason.clone()),
        }
    }
}

impl Engine {
    /// Claims an escalation for `actor`: role-gated, first claim wins on every backend.
    pub async fn claim(&self, actor: &Actor, handoff: HandoffId) -> EngineResult<ClaimView> {
        if !actor.role.can_claim() {
            return Ok(ClaimView::Refused(
                "You have the viewer role: viewers can follow escalations but not claim them. Ask an admin for the engineer role.".to_owned(),
            ));
        }
        let current = match self.store.get_handoff(actor.account_id, handoff).await {
            Ok(h) => h,
            Err(StoreError::NotFound { .. }) => {
                return Ok(ClaimView::Refused(
                    "That escalation no longer exists.".to_owned(),
                ));
            }
            Err(e) => return Err(e.into()),
        };
        if current.intent != HandoffIntent::Escalate {
            return Ok(ClaimView::Refused(
                "That is a parked session, not an escalation: type `resume` in its thread."
                    .to_owned(),
            ));
        }
        if current.team_id != actor.team_id && !actor.role.is_admin() {
            return Ok(ClaimView::Refused(
                "This escalation belongs to another team.".to_owned(),
            ));
        }
        let settings = self
            .store
            .get_team(actor.account_id, current.team_id)
            .await?
            .settings;
        let now = self.now();
        let account = actor.account_id;
        let mut summary = summary_of(&current);
        summary.claimed_by = Some(actor.display_name.clone());
        summary.claimed_at = Some(now);
        let plan = ClaimPlan {
            step: Some(StepKind::Claimed {
                after_ms: now.millis_since(current.created_at),
            }),
            jobs: vec![
                update_cards(account, handoff, now),
                NewJob::now(
                    account,
                    Job::ThreadNotice {
                        handoff,
                        notice: ThreadNotice::Claimed {
                            by: actor.display_name.clone(),
                        },
                    },
                    now,
                ),
                NewJob::now(
                    account,
                    Job::Invite {
                        handoff,
                        user: actor.user_id,
                    },
                    now,
                ),
                // The store fills in the claim generation it assigns.
                NewJob::at(
                    account,
                    Job::IdleReminder { handoff, claim: 0 },
                    now.plus_millis(settings.idle.remind_after_seconds as i64 * 1000),
                ),
            ],
            events: vec![NewEvent {
                kind: EventKind::HandoffClaimed,
                summary,
            }],
        };
        let outcome = self
            .store
            .claim_handoff(account, handoff, actor.user_id, now, plan)
            .await?;
        self.counters().claim(match outcome {
            ClaimOutcome::Won(_) => "won",
            ClaimOutcome::AlreadyClaimed { .. } => "lost",
            ClaimOutcome::Closed => "refused",
        });
        Ok(match outcome {
            ClaimOutcome::Won(handoff) => {
                self.wake_workers();
                tracing::info!(handoff.id = %handoff.id, user.id = %actor.user_id, "escalation claimed");
                ClaimView::Won(handoff)
            }
            ClaimOutcome::AlreadyClaimed { by, by_name, at } => ClaimView::Lost {
                by: by_name,
                by_you: by == actor.user_id,
                ago_millis: now.millis_since(at),
            },
            ClaimOutcome::Closed => ClaimView::Refused(
                "This escalation is closed: the session was resolved.".to_owned(),
            ),
        })
    }

    async fn view_handoff(&self, actor: &Actor, handoff: HandoffId) -> EngineResult<String> {
        match self.store.get_handoff(actor.account_id, handoff).await {
            Ok(_) => {}
            Err(StoreError::NotFound { .. }) => {
                return Ok("That escalation no longer exists.".to_owned());
            }
            Err(e) => return Err(e.into()),
        }
        let url = self
            .share_link(
                actor.account_id,
                actor.user_id,
                actor.role,
                LinkScope::Handoff(handoff),
            )
            .await?;
        Ok(match url {
            Some(url) => format!(
                "{} (only for you, valid for {})",
                crate::effect::link(&url, "Handoff context"),
                self.link_ttl_words()
            ),
            None => "The web companion is not configured on this server.".to_owned(),
        })
    }

    /// Makes `channel` the team's escalation channel.
    pub(crate) async fn escalations_here(
        &self,
        actor: &Actor,
        channel: &ChannelRef,
    ) -> EngineResult<String> {
        if !actor.role.is_admin() {
            return Ok("Only admins and owners can choose the escalation channel.".to_owned());
        }
        let mut team = self.store.get_team(actor.account_id, actor.team_id).await?;
        team.settings.set_escalation_channel(channel.clone());
        self.store
            .save_team_settings(actor.account_id, team.id, &team.settings)
            .await?;
        Ok(format!(
            "Escalation cards for {} will be posted in {}.",
            team.name,
            channel.mention()
        ))
    }

    /// The open escalations, oldest first.
    pub(crate) async fn queue_message(&self, actor: &Actor) -> EngineResult<Message> {
        let open = self
            .store
            .list_handoffs(
                actor.account_id,
                &HandoffFilter {
                    open_only: true,
                    since: None,
                    limit: 50,
                },
            )
            .await?;
        let now = self.now();
        let waiting: Vec<String> = open
            .iter()
            .rev()
            .filter(|h| h.intent == HandoffIntent::Escalate)
            .map(|h| match &h.claimed_by_name {
                Some(name) => format!(
                    "{} · {} · claimed by {name}",
                    h.snapshot.problem, h.priority
                ),
                None => format!(
                    "{} · {} · waiting {} · from {}",
                    h.snapshot.problem,
                    h.priority,
                    human_duration(now.millis_since(h.created_at)),
                    h.requested_by_name
                ),
            })
            .collect();
        let link = self
            .share_link(
                actor.account_id,
                actor.user_id,
                actor.role,
                LinkScope::Account,
            )
            .await?
            .map(|url| {
                format!(
                    "{} (only for you, valid for {})",
                    crate::effect::link(&url, "Live queue"),
                    self.link_ttl_words()
                )
            });
        let mut message = if waiting.is_empty() {
            Message::text("No open escalations.")
        } else {
            Message::new()
                .heading(format!("Open escalations: {}", waiting.len()))
                .with(Block::List { items: waiting })
        };
        if let Some(link) = link {
            // A paragraph, not small print: a URL must end where the line ends.
            message = message.paragraph(link);
        }
        Ok(message)
    }

    /// A private link to the metrics page, for owners and admins.
    pub(crate) async fn metrics_link(&self, actor: &Actor) -> EngineResult<String> {
        if !actor.role.is_admin() {
            return Ok("The metrics page is for owners and admins.".to_owned());
        }
        Ok(
            match self
                .share_link(
                    actor.account_id,
                    actor.user_id,
                    actor.role,
                    LinkScope::Account,
                )
                .await?
            {
                Some(url) => format!(
                    "{} (only for you, valid for {})",
                    crate::effect::link(&url, "Escalation metrics"),
                    self.link_ttl_words()
                ),
                None => "The web companion is not configured on this server.".to_owned(),
            },
        )
    }

    /// The account's escalation metrics for a period ending now.
    pub async fn metrics(
        &self,
        account: crate::ids::AccountId,
        period: Period,
    ) -> EngineResult<EscalationMetrics> {
        let (since, until) = period.window(self.now());
        let rows = self.store.escalation_rows(account, since, until).await?;
        let teams_baseline = self.baseline(account).await?;
        Ok(metrics::compute(
            &rows,
            period,
            since,
            until,
            teams_baseline,
        ))
    }

    async fn baseline(&self, account: crate::ids::AccountId) -> EngineResult<Option<f64>> {
        let users = self.store.list_users(account).await?;
        let Some(team) = users.first().map(|u| u.team_id) else {
            return Ok(None);
        };
        Ok(self
            .store
            .get_team(account, team)
            .await?
            .settings
            .baseline_minutes)
    }

    /// Saves the owner's manual baseline (minutes per escalation before ResolutionFlow).
    pub async fn set_baseline(
        &self,
        actor: &Actor,
        minutes: Option<f64>,
    ) -> EngineResult<Result<(), String>> {
        if !matches!(actor.role, Role::Owner | Role::Admin | Role::SuperAdmin) {
            return Ok(Err(
                "Only owners and admins can set the baseline.".to_owned()
            ));
        }
        if minutes.is_some_and(|m| !(0.0..=24.0 * 60.0).contains(&m)) {
            return Ok(Err(
                "The baseline is minutes per escalation, between 0 and 1440.".to_owned(),
            ));
        }
        let mut team = self.store.get_team(actor.account_id, actor.team_id).await?;
        team.settings.baseline_minutes = minutes;
        self.store
            .save_team_settings(actor.account_id, team.id, &team.settings)
            .await?;
        Ok(Ok(()))
    }
}

/// A handoff button was pressed.
pub(crate) async fn press(
    engine: &Engine,
    actor: &Actor,
    place: &Place,
    handoff: HandoffId,
    action: Action,
) -> EngineResult<Vec<Effect>> {
    let now = engine.now();
    match action {
        Action::Claim { .. } => {
            let view = engine.claim(actor, handoff).await?;
            Ok(vec![private_message(place, actor, view.message(now))])
        }
        Action::ViewHandoff { .. } => Ok(vec![private_to(
            place,
            actor,
            &engine.view_handoff(actor, handoff).await?,
        )]),
        Action::Acknowledge { .. } => {
            let held = engine
                .store
                .acknowledge_claim(actor.account_id, handoff, actor.user_id, now)
                .await?;
            let text = if held {
                "Thanks: the escalation stays yours."
            } else {
                "You don't hold this escalation any more (it was released or resolved)."
            };
            Ok(vec![private_to(place, actor, text)])
        }
        Action::StartStep { step, .. } => {
            if !actor.role.can_work_sessions() {
                return Ok(vec![private_to(place, actor, &viewer_refusal())]);
            }
            let h = match engine.store.get_handoff(actor.account_id, handoff).await {
                Ok(h) => h,
                Err(StoreError::NotFound { .. }) => {
                    return Ok(vec![private_to(
                        place,
                        actor,
                        "That escalation no longer exists.",
                    )]);
                }
                Err(e) => return Err(e.into()),
            };
            let Some(text) = h.assessment.next_steps.get(step) else {
                return Ok(vec![private_to(
                    place,
                    actor,
                    "That suggestion is no longer available.",
                )]);
            };
            let mut effects = engine
                .handle(
                    actor,
                    &h.thread,
                    crate::engine::Input::Text(format!("Starting: {text}")),
                )
                .await?;
            effects.push(private_to(
                place,
                actor,
                &format!("Recorded in the session thread: Starting: {text}"),
            ));
            Ok(effects)
        }
        _ => Ok(vec![private_to(
            place,
            actor,
            "That button does not apply here.",
        )]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Platform;

    #[test]
    fn card_recipients_round_trip() {
        let channel = ChannelRef {
            platform: Platform::Slack,
            workspace: "T1".into(),
            channel: "C9".into(),
        };
        assert_eq!(
            parse_channel_key(&channel_key(&channel)),
            Some(channel.clone())
        );
        assert_eq!(
            parse_channel_key(&format!("{}@ladder-0", channel_key(&channel))),
            Some(channel)
        );
        assert_eq!(parse_channel_key("nonsense"), None);
    }
}
