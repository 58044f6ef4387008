//! Handles recorded Slack requests in the background: who is acting, what the engine makes of it,
//! and carrying out the engine's effects through the Web API. Runs as a job, after Slack has had
//! its answer; a failure that can pass (database, Slack outage) retries the job or the one effect.

use crate::client::{SlackApi, SlackNotifier};
use crate::forms;
use crate::inbound::{COMMAND, EVENT, INTERACTION};
use async_trait::async_trait;
use rf_core::domain::{
    Actor, ChannelRef, ChatIdentity, InstallationRef, Platform, Role, RoleAssignment, ThreadKey,
};
use rf_core::effect::{Action, Effect, Message, Place};
use rf_core::ids::{AccountId, TeamId};
use rf_core::jobs::{Job, JobResult, NewJob, backoff};
use rf_core::notify::{InboundHandler, NotifyError, perform};
use rf_core::{CommandOutcome, Engine, EngineError, Input, StoreError};
use serde_json::Value;
use std::time::Duration;
use tokio::sync::OnceCell;

/// Why handling stopped early.
#[derive(Debug)]
enum Stop {
    /// Try the whole request again later.
    Retry(String, Option<Duration>),
    /// Retrying cannot help.
    Fail(String),
}

/// Whether trying again later can help.
fn passing(e: &EngineError) -> bool {
    matches!(
        e,
        EngineError::Store(StoreError::Unavailable(_)) | EngineError::Contended
    )
}

impl From<EngineError> for Stop {
    fn from(e: EngineError) -> Self {
        if passing(&e) {
            Stop::Retry(e.to_string(), None)
        } else {
            Stop::Fail(e.to_string())
        }
    }
}

impl From<StoreError> for Stop {
    fn from(e: StoreError) -> Self {
        Stop::from(EngineError::Store(e))
    }
}

impl From<NotifyError> for Stop {
    fn from(e: NotifyError) -> Self {
        match e {
            NotifyError::RateLimited { retry_after } => {
                Stop::Retry("rate limited by Slack".to_owned(), retry_after)
            }
            NotifyError::Transient(e) => Stop::Retry(e, None),
            NotifyError::Permanent(e) => Stop::Fail(e),
        }
    }
}

type Handled = Result<(), Stop>;

/// The connected workspace a request came from.
struct Workspace<'a> {
    team: &'a str,
    account: AccountId,
}

/// The Slack side of the engine.
#[derive(Debug, Clone)]
pub struct SlackHandler {
    engine: Engine,
    api: SlackApi,
    notifier: SlackNotifier,
    command_name: String,
    /// With a single bot token: the account and team the token's workspace joins on first contact.
    single_workspace: Option<(AccountId, TeamId)>,
    token_team: std::sync::Arc<OnceCell<String>>,
}

impl SlackHandler {
    pub fn new(engine: Engine, api: SlackApi, command_name: impl Into<String>) -> Self {
        Self {
            engine,
            notifier: SlackNotifier::new(api.clone()),
            api,
            command_name: command_name.into(),
            single_workspace: None,
            token_team: std::sync::Arc::new(OnceCell::new()),
        }
    }

    /// Connects the bot token's workspace to `account` and `team` when it first writes.
    pub fn with_single_workspace(mut self, account: AccountId, team: TeamId) -> Self {
        self.single_workspace = Some((account, team));
        self
    }

    fn installation(team: &str) -> InstallationRef {
        InstallationRef {
            platform: Platform::Slack,
            external_id: team.to_owned(),
        }
    }

    /// The workspace's account, connecting the bot token's workspace on first contact; `None`
    /// when the workspace is not ours to serve.
    async fn connected(&self, team: &str) -> Result<Option<AccountId>, Stop> {
        let installation = Self::installation(team);
        if let Some((account, _)) = self.engine.store().find_installation(&installation).await? {
            return Ok(Some(account));
        }
        let Some((account, team_id)) = self.single_workspace else {
            return Ok(None);
        };
        let token_team = self
            .token_team
            .get_or_try_init(|| self.api.token_workspace(team))
            .await?;
        if token_team != team {
            tracing::warn!(
                slack.team = team,
                "a signed request came from a workspace the bot token does not belong to; ignored"
            );
            return Ok(None);
        }
        self.engine
            .store()
            .attach_installation(&installation, account, team_id, self.engine.now())
            .await?;
        tracing::info!(slack.team = team, "Slack workspace connected");
        Ok(Some(account))
    }

    /// The person behind `user`, registered on first sight: Slack workspace owners and admins
    /// become admins, everyone else an engineer, until an admin changes it.
    async fn actor(&self, ws: &Workspace<'_>, user: &str) -> Result<Actor, Stop> {
        let (account, team) = (ws.account, ws.team);
        let installation = Self::installation(team);
        if let Some(known) = self
            .engine
            .store()
            .find_user(account, Platform::Slack, user)
            .await?
        {
            return Ok(Actor::from(&known));
        }
        let (name, email, admin) = match self.api.user(team, user).await {
            Ok(person) => (person.name, person.email, person.is_admin),
            Err(NotifyError::Permanent(e)) => {
                tracing::warn!(error = %e, "users.info refused; registering by id");
                (user.to_owned(), None, false)
            }
            Err(e) => return Err(e.into()),
        };
        let identity = ChatIdentity {
            platform: Platform::Slack,
            platform_user_id: user.to_owned(),
            display_name: name,
            email,
        };
        let role = if admin { Role::Admin } else { Role::Engineer };
        Ok(self
            .engine
            .identify(&installation, &identity, RoleAssignment::IfNew(role))
            .await?)
    }

    /// Tells `actor` something privately at `place`.
    async fn tell(&self, place: &Place, actor: &Actor, message: Message) {
        self.carry_out(actor.account_id, vec![private(place, actor, message)], None)
            .await;
    }

    /// Carries out `effects` in order. A form opens with `trigger` while it is fresh; an effect
    /// Slack can't take now is queued for retry, and so is everything after it in that channel.
    async fn carry_out(&self, account: AccountId, effects: Vec<Effect>, trigger: Option<&str>) {
        let mut deferred: Vec<NewJob> = Vec::new();
        let mut wait: Option<Duration> = None;
        for effect in effects {
            if wait.is_none()
                && let (Effect::OpenForm { place, form, .. }, Some(trigger)) = (&effect, trigger)
            {
                match self
                    .api
                    .open_view(&place.channel.workspace, trigger, forms::modal(form, place))
                    .await
                {
                    Ok(()) => continue,
                    Err(e) => {
                        tracing::warn!(error = %e, "could not open the modal; sending a hint")
                    }
                }
            }
            if wait.is_none() {
                match perform(&self.notifier, &effect).await {
                    Ok(()) => continue,
                    Err(NotifyError::Permanent(e)) => {
                        tracing::warn!(error = %e, effect = effect.place_key(), "Slack refused an effect");
                        continue;
                    }
                    Err(NotifyError::RateLimited { retry_after }) => {
                        wait = Some(retry_after.unwrap_or_else(|| backoff(1)));
                    }
                    Err(NotifyError::Transient(e)) => {
                        tracing::warn!(error = %e, "Slack failed; the effect will be retried");
                        wait = Some(backoff(1));
                    }
                }
            }
            let run_at = self
                .engine
                .now()
                .plus_millis(wait.unwrap_or_default().as_millis() as i64);
            deferred.push(NewJob::at(account, Job::Perform { effect }, run_at));
        }
        if !deferred.is_empty()
            && let Err(e) = self
                .engine
                .store()
                .enqueue(deferred, self.engine.now())
                .await
        {
            tracing::error!(error = %e, "could not queue effects for retry; they are lost");
        }
    }

    async fn run(&self, kind: &str, body: &Value) -> Handled {
        let team = text(body, "/team_id")
            .or_else(|| text(body, "/team/id"))
            .or_else(|| text(body, "/user/team_id"))
            .ok_or(Stop::Fail("no team".to_owned()))?;
        // Uninstalled, or the bot's token revoked (not merely some user's): disconnect.
        let bot_revoked = body
            .pointer("/event/tokens/bot")
            .and_then(Value::as_array)
            .is_some_and(|bots| !bots.is_empty());
        if kind == EVENT
            && let Some(event) = text(body, "/event/type")
            && (event == "app_uninstalled" || (event == "tokens_revoked" && bot_revoked))
        {
            let disabled = self
                .engine
                .store()
                .disable_installation(&Self::installation(team), self.engine.now())
                .await?;
            tracing::info!(
                slack.team = team,
                disabled,
                event,
                "Slack workspace disconnected"
            );
            return Ok(());
        }
        let Some(account) = self.connected(team).await? else {
            tracing::info!(
                slack.team = team,
                "request from a workspace that is not connected; ignored"
            );
            return Ok(());
        };
        let ws = Workspace { team, account };
        match kind {
            EVENT => self.event(&ws, body).await,
            COMMAND => self.command(&ws, body).await,
            INTERACTION => self.interaction(&ws, body).await,
            other => Err(Stop::Fail(format!("unknown payload kind {other:?}"))),
        }
    }

    async fn event(&self, ws: &Workspace<'_>, body: &Value) -> Handled {
        let (account, team) = (ws.account, ws.team);
        let event = &body["event"];
        let (Some(user), Some(channel), Some(ts)) = (
            text(event, "/user"),
            text(event, "/channel"),
            text(event, "/ts"),
        ) else {
            return Ok(());
        };
        let typed = text(event, "/text").unwrap_or_default();
        let thread_ts = text(event, "/thread_ts");
        match text(event, "/type") {
            Some("message") => {
                let Some(thread_ts) = thread_ts else {
                    return Ok(());
                };
                let thread = thread_key(team, channel, thread_ts);
                // Chatter in threads without a session costs no lookups.
                if self
                    .engine
                    .store()
                    .session_for_thread(account, &thread)
                    .await?
                    .is_none()
                {
                    return Ok(());
                }
                let actor = self.actor(ws, user).await?;
                let effects = self
                    .engine
                    .handle(&actor, &thread, Input::Text(typed.to_owned()))
                    .await?;
                self.carry_out(actor.account_id, effects, None).await;
                Ok(())
            }
            Some("app_mention") => {
                let said = strip_mentions(typed);
                let actor = self.actor(ws, user).await?;
                let thread = thread_key(team, channel, thread_ts.unwrap_or(ts));
                if thread_ts.is_some()
                    && self
                        .engine
                        .store()
                        .session_for_thread(actor.account_id, &thread)
                        .await?
                        .is_some()
                {
                    let effects = self
                        .engine
                        .handle(&actor, &thread, Input::Text(said))
                        .await?;
                    self.carry_out(actor.account_id, effects, None).await;
                    return Ok(());
                }
                let place = Place::from(&thread);
                match self
                    .engine
                    .command(
                        &actor,
                        &channel_ref(team, channel),
                        &said,
                        &self.command_name,
                    )
                    .await?
                {
                    CommandOutcome::Respond(message) => self.tell(&place, &actor, message).await,
                    CommandOutcome::StartSession { problem } => {
                        let effects = self.engine.start(&actor, thread, &problem).await?;
                        self.carry_out(actor.account_id, effects, None).await;
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    async fn command(&self, ws: &Workspace<'_>, body: &Value) -> Handled {
        let team = ws.team;
        let (Some(user), Some(channel)) = (text(body, "/user_id"), text(body, "/channel_id"))
        else {
            return Err(Stop::Fail("command without user or channel".to_owned()));
        };
        let typed = text(body, "/text").unwrap_or_default();
        let command = text(body, "/command").unwrap_or(&self.command_name);
        let actor = self.actor(ws, user).await?;
        let channel = channel_ref(team, channel);
        let place = Place::from(&channel);
        match self
            .engine
            .command(&actor, &channel, typed, command)
            .await?
        {
            CommandOutcome::Respond(message) => {
                let answered = match text(body, "/response_url") {
                    Some(url) => self.api.respond(url, &message).await.map_err(|e| {
                        tracing::warn!(error = %e, "response_url failed; answering with an ephemeral message");
                    }),
                    None => Err(()),
                };
                if answered.is_err() {
                    self.tell(&place, &actor, message).await;
                }
            }
            CommandOutcome::StartSession { problem } => {
                // The session gets its own thread: a root message in the channel.
                let root = Message::new().paragraph(format!(
                    "*{}* is troubleshooting: {problem}",
                    actor.display_name
                ));
                let ts = match self
                    .api
                    .post_message(team, &channel.channel, None, &root)
                    .await
                {
                    Ok(ts) => ts,
                    Err(NotifyError::Permanent(e)) => {
                        tracing::warn!(error = %e, "could not open a session thread");
                        let hint = Message::text(format!(
                            "I can't post in this channel ({e}). Invite me first with `/invite @ResolutionFlow`, or use a channel I'm in."
                        ));
                        self.tell(&place, &actor, hint).await;
                        return Ok(());
                    }
                    Err(e) => return Err(e.into()),
                };
                // The root is posted: retrying the whole request would post it again, so the
                // session is started here, a few times if the database hiccups.
                let thread = thread_key(team, &channel.channel, &ts);
                let mut attempt = 0;
                let effects = loop {
                    attempt += 1;
                    match self.engine.start(&actor, thread.clone(), &problem).await {
                        Ok(effects) => break effects,
                        Err(e) if attempt < 3 && passing(&e) => {
                            tokio::time::sleep(Duration::from_millis(500 * attempt)).await;
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "could not start a session in its new thread");
                            let sorry = Message::text(e.user_message());
                            break vec![Effect::Reply {
                                thread,
                                message: sorry,
                            }];
                        }
                    }
                };
                self.carry_out(actor.account_id, effects, None).await;
            }
        }
        Ok(())
    }

    async fn interaction(&self, ws: &Workspace<'_>, body: &Value) -> Handled {
        let team = ws.team;
        let Some(user) = text(body, "/user/id") else {
            return Err(Stop::Fail("interaction without a user".to_owned()));
        };
        let trigger = text(body, "/trigger_id");
        match text(body, "/type") {
            Some("block_actions") => {
                let Some(channel) =
                    text(body, "/channel/id").or_else(|| text(body, "/container/channel_id"))
                else {
                    return Ok(());
                };
                let thread = text(body, "/message/thread_ts")
                    .or_else(|| text(body, "/container/thread_ts"))
                    .or_else(|| text(body, "/message/ts"))
                    .or_else(|| text(body, "/container/message_ts"));
                let place = Place {
                    channel: channel_ref(team, channel),
                    thread: thread.map(str::to_owned),
                };
                let input = text(
                    body,
                    &format!(
                        "/state/values/{}/{}/value",
                        crate::blocks::INPUT_BLOCK,
                        crate::blocks::INPUT_ACTION
                    ),
                )
                .map(str::to_owned);
                let actions: Vec<Action> = body["actions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|a| {
                        a["action_id"]
                            .as_str()
                            .is_some_and(|id| id.starts_with(crate::blocks::ACTION_PREFIX))
                    })
                    .filter_map(|a| a["value"].as_str().and_then(Action::decode))
                    .collect();
                if actions.is_empty() {
                    return Ok(());
                }
                let actor = self.actor(ws, user).await?;
                for action in actions {
                    let effects = self
                        .engine
                        .press(&actor, &place, action, input.clone())
                        .await?;
                    self.carry_out(actor.account_id, effects, trigger).await;
                }
                Ok(())
            }
            Some("view_submission") => {
                let Some((submission, place)) = forms::submission(body) else {
                    return Ok(());
                };
                let actor = self.actor(ws, user).await?;
                let effects = self.engine.submit(&actor, &place, submission).await?;
                self.carry_out(actor.account_id, effects, trigger).await;
                Ok(())
            }
            Some("message_action") => {
                let (Some(channel), Some(ts)) =
                    (text(body, "/channel/id"), text(body, "/message/ts"))
                else {
                    return Ok(());
                };
                let problem = text(body, "/message/text").unwrap_or_default();
                let thread = thread_key(
                    team,
                    channel,
                    text(body, "/message/thread_ts").unwrap_or(ts),
                );
                let actor = self.actor(ws, user).await?;
                let effects = self
                    .engine
                    .start(&actor, thread, &strip_mentions(problem))
                    .await?;
                self.carry_out(actor.account_id, effects, trigger).await;
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

#[async_trait]
impl InboundHandler for SlackHandler {
    async fn handle(&self, _account: AccountId, event: &Value, attempt: i32) -> JobResult {
        let kind = event["kind"].as_str().unwrap_or_default();
        match self.run(kind, &event["body"]).await {
            Ok(()) => JobResult::Done,
            Err(Stop::Retry(error, after)) => {
                tracing::warn!(%error, attempt, "Slack request will be handled again");
                JobResult::Retry { error, after }
            }
            Err(Stop::Fail(error)) => JobResult::Failed { error },
        }
    }
}

fn text<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn channel_ref(team: &str, channel: &str) -> ChannelRef {
    ChannelRef {
        platform: Platform::Slack,
        workspace: team.to_owned(),
        channel: channel.to_owned(),
    }
}

fn thread_key(team: &str, channel: &str, ts: &str) -> ThreadKey {
    ThreadKey {
        platform: Platform::Slack,
        workspace: team.to_owned(),
        channel: channel.to_owned(),
        thread: ts.to_owned(),
    }
}

fn private(place: &Place, actor: &Actor, message: Message) -> Effect {
    Effect::Private {
        place: place.clone(),
        user: actor.user_id,
        platform_user_id: actor.platform_user_id.clone(),
        message,
    }
}

/// The text of a message without the `<@U…>` mentions of the bot.
fn strip_mentions(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("<@") {
        out.push_str(&rest[..start]);
        match rest[start..].find('>') {
            Some(end) => rest = &rest[start + end + 1..],
            None => {
                rest = &rest[start..];
                break;
            }
        }
    }
    out.push_str(rest);
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_are_stripped() {
        assert_eq!(strip_mentions("<@W111> Hi there!"), "Hi there!");
        assert_eq!(
            strip_mentions("<@U1|rf>  printer <@U2> offline"),
            "printer offline"
        );
        assert_eq!(strip_mentions("no mention"), "no mention");
        assert_eq!(strip_mentions("broken <@U1"), "broken <@U1");
    }
}
