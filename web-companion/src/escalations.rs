//! Escalation pages: the handoff context, the live queue (with its event stream) and the metrics.

use crate::{CompanionError, CompanionState, Viewer};
use axum::Json;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use futures::Stream;
use minijinja::context;
use minijinja::value::Serde;
use rf_core::domain::Role;
use rf_core::escalation::{ClaimView, summary_of};
use rf_core::handoff::{Handoff, HandoffIntent};
use rf_core::ids::HandoffId;
use rf_core::links::LinkScope;
use rf_core::metrics::{EscalationMetrics, Period, to_csv};
use rf_core::outbox::{EventSummary, HandoffEvent};
use rf_core::ports::HandoffFilter;
use rf_core::redact::Redactor;
use rf_core::time::{Timestamp, human_duration};
use serde::{Deserialize, Serialize};
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

/// How often an idle event stream sends a keep-alive comment (proxies drop silent connections).
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(25);

fn parse_handoff(text: &str) -> Result<HandoffId, CompanionError> {
    HandoffId::parse(text).map_err(|_| CompanionError::NotFound)
}

pub(crate) fn require_account(viewer: &Viewer) -> Result<(), CompanionError> {
    match viewer.0.scope {
        LinkScope::Account => Ok(()),
        _ => Err(CompanionError::NotFound),
    }
}

/// Rejects a form or API call whose `Origin` is another site. The cookie is SameSite=Lax, so a
/// cross-site POST carries no cookie anyway; this is the second lock.
pub(crate) fn same_origin(
    state: &CompanionState,
    headers: &HeaderMap,
) -> Result<(), CompanionError> {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else {
        return Ok(());
    };
    let public = state.keys.public_url();
    let public_origin = public.split('/').take(3).collect::<Vec<_>>().join("/");
    if origin == public_origin || origin == "null" && public_origin.is_empty() {
        Ok(())
    } else {
        Err(CompanionError::CrossSite)
    }
}

/// The handoff as a page shows it, redacted on the way out.
#[derive(Debug, Serialize)]
struct HandoffView {
    id: String,
    session_id: String,
    problem: String,
    flow: Option<String>,
    ticket: Option<String>,
    requested_by: String,
    reason: String,
    priority: String,
    age: String,
    created: String,
    steps: Vec<String>,
    dead_ends: Vec<String>,
    facts: Vec<String>,
    active_fix: Option<String>,
    latest_state: String,
    likely_cause: String,
    next_steps: Vec<String>,
    confidence: u8,
    source: String,
    claimed_by: Option<String>,
    claimed_after: Option<String>,
    closed: bool,
    /// A web link to the chat thread, where the platform has one.
    thread_url: Option<String>,
    /// How to find the thread otherwise.
    thread: String,
    is_escalation: bool,
}

fn view(handoff: &Handoff, now: Timestamp) -> HandoffView {
    let r = Redactor::new();
    let clean = |t: &str| r.redact(t).into_owned();
    let all = |items: &[String]| items.iter().map(|i| clean(i)).collect::<Vec<_>>();
    let s = &handoff.snapshot;
    HandoffView {
        id: handoff.id.to_string(),
        session_id: handoff.session_id.to_string(),
        problem: clean(&s.problem),
        flow: s.flow.clone(),
        ticket: s.ticket.clone(),
        requested_by: handoff.requested_by_name.clone(),
        reason: clean(&handoff.reason),
        priority: handoff.priority.to_string(),
        age: human_duration(now.millis_since(handoff.created_at)),
        created: handoff.created_at.display_utc(),
        steps: all(&s.steps_attempted),
        dead_ends: all(&s.dead_ends),
        facts: all(&s.facts),
        active_fix: s.active_fix.as_deref().map(clean),
        latest_state: clean(&s.latest_state),
        likely_cause: clean(&handoff.assessment.likely_cause),
        next_steps: all(&handoff.assessment.next_steps),
        confidence: handoff.assessment.confidence,
        source: handoff.assessment.source.clone(),
        claimed_by: handoff.claimed_by_name.clone(),
        claimed_after: handoff
            .claimed_at
            .map(|at| human_duration(at.millis_since(handoff.created_at))),
        closed: handoff.closed_at.is_some(),
        thread_url: thread_url(handoff),
        thread: format!(
            "{} thread {}",
            handoff.thread.channel, handoff.thread.thread
        ),
        is_escalation: handoff.intent == HandoffIntent::Escalate,
    }
}

/// A deep link to the chat thread, for platforms whose threads have web addresses.
fn thread_url(handoff: &Handoff) -> Option<String> {
    let t = &handoff.thread;
    match t.platform {
        rf_core::domain::Platform::Slack => Some(format!(
            "https://app.slack.com/client/{}/{}/thread/{}-{}",
            t.workspace, t.channel, t.channel, t.thread
        )),
        rf_core::domain::Platform::Discord => Some(format!(
            "https://discord.com/channels/{}/{}",
            t.workspace, t.thread
        )),
        rf_core::domain::Platform::Teams | rf_core::domain::Platform::Console => None,
    }
}

async fn load_handoff(
    state: &CompanionState,
    viewer: &Viewer,
    id: &str,
) -> Result<Handoff, CompanionError> {
    let id = parse_handoff(id)?;
    if !viewer.0.scope.allows_handoff(id) {
        return Err(CompanionError::NotFound);
    }
    Ok(state.store.get_handoff(viewer.0.acc, id).await?)
}

async fn render_handoff(
    state: &CompanionState,
    viewer: &Viewer,
    handoff: &Handoff,
    notice: Option<String>,
) -> Result<Html<String>, CompanionError> {
    let actor = viewer.actor(state).await?;
    state.render(
        "handoff.html",
        context! {
            h => Serde(view(handoff, state.clock.now())),
            can_claim => actor.role.can_claim() && handoff.is_unclaimed() && handoff.intent == HandoffIntent::Escalate,
            notice => notice,
            account_scope => viewer.0.scope == LinkScope::Account,
        },
    )
}

/// The handoff-context page: problem, what's been tried, assessment, start here.
pub(crate) async fn handoff_page(
    State(state): State<CompanionState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Html<String>, CompanionError> {
    let handoff = load_handoff(&state, &viewer, &id).await?;
    render_handoff(&state, &viewer, &handoff, None).await
}

/// Claim from the page (works without JavaScript).
pub(crate) async fn claim_form(
    State(state): State<CompanionState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Html<String>, CompanionError> {
    let (handoff, outcome) = claim(&state, &viewer, &headers, &id).await?;
    let notice = match &outcome {
        ClaimView::Won(_) => {
            "You claimed it. You have been added to the session's thread.".to_owned()
        }
        other => other.message(state.clock.now()).plain_text(),
    };
    let handoff = state.store.get_handoff(viewer.0.acc, handoff.id).await?;
    render_handoff(&state, &viewer, &handoff, Some(notice)).await
}

/// Claims a handoff for the viewer through the engine: the same atomic path as chat.
async fn claim(
    state: &CompanionState,
    viewer: &Viewer,
    headers: &HeaderMap,
    id: &str,
) -> Result<(Handoff, ClaimView), CompanionError> {
    same_origin(state, headers)?;
    let handoff = load_handoff(state, viewer, id).await?;
    let actor = viewer.actor(state).await?;
    let outcome = state
        .engine
        .claim(&actor, handoff.id)
        .await
        .map_err(engine_error)?;
    Ok((handoff, outcome))
}

fn engine_error(e: rf_core::EngineError) -> CompanionError {
    match e {
        rf_core::EngineError::Store(store) => store.into(),
        other => CompanionError::Internal(other.to_string()),
    }
}

/// The answer of the claim API.
#[derive(Debug, Serialize)]
pub(crate) struct ClaimResponse {
    /// `won`, `already_claimed` or `refused`.
    outcome: &'static str,
    message: String,
    claimed_by: Option<String>,
    ago_seconds: Option<i64>,
}

/// Claim from the live queue (JSON): the same atomic path as chat.
pub(crate) async fn claim_api(
    State(state): State<CompanionState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<ClaimResponse>, CompanionError> {
    let (_, outcome) = claim(&state, &viewer, &headers, &id).await?;
    let message = outcome.message(state.clock.now()).plain_text();
    Ok(Json(match outcome {
        ClaimView::Won(h) => ClaimResponse {
            outcome: "won",
            message: format!("You claimed \"{}\".", h.snapshot.problem),
            claimed_by: h.claimed_by_name,
            ago_seconds: Some(0),
        },
        ClaimView::Lost { by, ago_millis, .. } => ClaimResponse {
            outcome: "already_claimed",
            message,
            claimed_by: Some(by),
            ago_seconds: Some(ago_millis / 1000),
        },
        ClaimView::Refused(_) => ClaimResponse {
            outcome: "refused",
            message,
            claimed_by: None,
            ago_seconds: None,
        },
    }))
}

/// What the queue lists.
async fn queue_items(
    state: &CompanionState,
    viewer: &Viewer,
) -> Result<Vec<EventSummary>, CompanionError> {
    let now = state.clock.now();
    let day = now.plus_millis(-86_400_000);
    let handoffs = state
        .store
        .list_handoffs(
            viewer.0.acc,
            &HandoffFilter {
                open_only: false,
                since: Some(day),
                limit: 200,
            },
        )
        .await?;
    let open = state
        .store
        .list_handoffs(
            viewer.0.acc,
            &HandoffFilter {
                open_only: true,
                since: None,
                limit: 200,
            },
        )
        .await?;
    let mut items: Vec<EventSummary> = open
        .iter()
        .chain(handoffs.iter().filter(|h| h.closed_at.is_some()))
        .filter(|h| h.intent == HandoffIntent::Escalate)
        .map(summary_of)
        .collect();
    items.dedup_by_key(|s| s.handoff_id);
    let r = Redactor::new();
    for item in &mut items {
        item.problem = r.redact(&item.problem).into_owned();
        item.reason = r.redact(&item.reason).into_owned();
    }
    Ok(items)
}

/// The live queue page.
pub(crate) async fn queue_page(
    State(state): State<CompanionState>,
    viewer: Viewer,
) -> Result<Html<String>, CompanionError> {
    require_account(&viewer)?;
    let actor = viewer.actor(&state).await?;
    let items = queue_items(&state, &viewer).await?;
    let waiting = items.iter().filter(|i| i.claimed_by.is_none()).count();
    state.render(
        "queue.html",
        context! {
            items => Serde(&items),
            waiting => waiting,
            can_claim => actor.role.can_claim(),
            is_admin => actor.role.is_admin(),
        },
    )
}

/// The queue as JSON.
pub(crate) async fn queue_api(
    State(state): State<CompanionState>,
    viewer: Viewer,
) -> Result<Json<Vec<EventSummary>>, CompanionError> {
    require_account(&viewer)?;
    Ok(Json(queue_items(&state, &viewer).await?))
}

fn sse_event(event: &HandoffEvent) -> Event {
    Event::default()
        .id(event.seq.to_string())
        .event(event.kind.as_str())
        .json_data(&event.summary)
        .unwrap_or_else(|_| Event::default().comment("unserialisable event"))
}

/// State of one subscriber's stream.
struct Subscription {
    state: CompanionState,
    account: rf_core::ids::AccountId,
    receiver: tokio::sync::broadcast::Receiver<HandoffEvent>,
    /// Events to send before reading live ones (backfill, or catching up after a lag).
    pending: std::collections::VecDeque<HandoffEvent>,
    last: i64,
    ready_sent: bool,
}

impl Subscription {
    async fn catch_up(&mut self) {
        match self
            .state
            .store
            .account_events_after(self.account, self.last, 1000)
            .await
        {
            Ok(events) => self.pending.extend(events),
            Err(e) => tracing::warn!(error = %e, "event stream backfill failed"),
        }
    }

    async fn next(&mut self) -> Option<Event> {
        if !self.ready_sent {
            self.ready_sent = true;
            return Some(
                Event::default()
                    .event("ready")
                    .data(format!("{{\"last_event_id\":{}}}", self.last)),
            );
        }
        loop {
            if let Some(event) = self.pending.pop_front() {
                if event.seq > self.last {
                    self.last = event.seq;
                    return Some(sse_event(&event));
                }
                continue;
            }
            match self.receiver.recv().await {
                Ok(event) if event.account_id == self.account && event.seq > self.last => {
                    self.last = event.seq;
                    return Some(sse_event(&event));
                }
                Ok(_) => {}
                Err(RecvError::Lagged(missed)) => {
                    tracing::debug!(missed, "event stream subscriber lagged; backfilling");
                    self.catch_up().await;
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }
}

/// The live queue's event stream: `ready`, then the account's events as they happen. A reconnect
/// with `Last-Event-ID` gets what it missed first.
pub(crate) async fn stream(
    State(state): State<CompanionState>,
    viewer: Viewer,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, CompanionError> {
    require_account(&viewer)?;
    // Subscribe before reading the backfill, so nothing falls between the two.
    let receiver = state.events.subscribe();
    let last_event_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok());
    let mut subscription = Subscription {
        state: state.clone(),
        account: viewer.0.acc,
        receiver,
        pending: Default::default(),
        last: 0,
        ready_sent: false,
    };
    match last_event_id {
        Some(last) => {
            subscription.last = last;
            subscription.catch_up().await;
        }
        None => subscription.last = state.store.latest_event_seq().await?,
    }
    let stream = futures::stream::unfold(subscription, |mut subscription| async move {
        subscription
            .next()
            .await
            .map(|event| (Ok(event), subscription))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(HEARTBEAT).text("keepalive")))
}

#[derive(Debug, Deserialize)]
pub(crate) struct PeriodQuery {
    period: Option<String>,
}

async fn metrics_for(
    state: &CompanionState,
    viewer: &Viewer,
    query: &PeriodQuery,
) -> Result<EscalationMetrics, CompanionError> {
    require_account(viewer)?;
    let actor = viewer.actor(state).await?;
    if !actor.role.is_admin() {
        return Err(CompanionError::Forbidden(
            "Escalation metrics are for owners and admins.",
        ));
    }
    let period = match query.period.as_deref() {
        None => Period::Days30,
        Some(p) => Period::parse(p).ok_or(CompanionError::NotFound)?,
    };
    state
        .engine
        .metrics(viewer.0.acc, period)
        .await
        .map_err(engine_error)
}

fn seconds(value: Option<f64>) -> String {
    value.map_or_else(|| "–".to_owned(), |s| human_duration((s * 1000.0) as i64))
}

/// The weekly trend as bars: (x, y, width, height, label, value) for an inline SVG.
fn trend_bars(metrics: &EscalationMetrics) -> Vec<(u32, u32, u32, u32, String, usize)> {
    let max = metrics
        .weekly
        .iter()
        .map(|w| w.escalations)
        .max()
        .unwrap_or(1)
        .max(1);
    let width = 40;
    metrics
        .weekly
        .iter()
        .enumerate()
        .map(|(i, week)| {
            let height = (week.escalations * 120 / max) as u32;
            (
                i as u32 * (width + 12) + 8,
                130 - height,
                width,
                height,
                week.week_start[5..].to_owned(),
                week.escalations,
            )
        })
        .collect()
}

/// The metrics page (owners and admins).
pub(crate) async fn metrics_page(
    State(state): State<CompanionState>,
    viewer: Viewer,
    Query(query): Query<PeriodQuery>,
) -> Result<Html<String>, CompanionError> {
    let metrics = metrics_for(&state, &viewer, &query).await?;
    let in_product_minutes = metrics
        .time_to_first_action
        .median_seconds
        .map(|s| s / 60.0);
    let difference = match (metrics.manual_baseline_minutes, in_product_minutes) {
        (Some(baseline), Some(now)) => Some(format!("{:.1}", baseline - now)),
        _ => None,
    };
    state.render(
        "metrics.html",
        context! {
            m => Serde(&metrics),
            period => metrics.period.label(),
            ttc_avg => seconds(metrics.time_to_claim.avg_seconds),
            ttc_median => seconds(metrics.time_to_claim.median_seconds),
            ttc_p95 => seconds(metrics.time_to_claim.p95_seconds),
            tfa_avg => seconds(metrics.time_to_first_action.avg_seconds),
            tfa_median => seconds(metrics.time_to_first_action.median_seconds),
            tfa_p95 => seconds(metrics.time_to_first_action.p95_seconds),
            ttr_median => seconds(metrics.time_to_resolve.median_seconds),
            rate => metrics.claimed_with_action_rate.map(|r| format!("{:.0}%", r * 100.0)),
            difference => difference,
            bars => Serde(trend_bars(&metrics)),
            tech => Serde(metrics.per_tech.iter().map(|t| (t.name.clone(), t.claimed, t.with_action, seconds(t.time_to_first_action.median_seconds))).collect::<Vec<_>>()),
            domains => Serde(metrics.per_domain.iter().map(|d| (d.domain.clone(), d.escalations, d.claimed, seconds(d.time_to_first_action.median_seconds))).collect::<Vec<_>>()),
        },
    )
}

/// The metrics as JSON.
pub(crate) async fn metrics_api(
    State(state): State<CompanionState>,
    viewer: Viewer,
    Query(query): Query<PeriodQuery>,
) -> Result<Json<EscalationMetrics>, CompanionError> {
    Ok(Json(metrics_for(&state, &viewer, &query).await?))
}

/// The metrics as CSV.
pub(crate) async fn metrics_csv(
    State(state): State<CompanionState>,
    viewer: Viewer,
    Query(query): Query<PeriodQuery>,
) -> Result<Response, CompanionError> {
    let metrics = metrics_for(&state, &viewer, &query).await?;
    let mut response = to_csv(&metrics).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(value) = HeaderValue::from_str(&format!(
        "attachment; filename=\"escalation-metrics-{}.csv\"",
        metrics.period.label()
    )) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

#[derive(Debug, Deserialize)]
pub(crate) struct BaselineForm {
    minutes: String,
}

/// The owner's manual baseline.
pub(crate) async fn set_baseline(
    State(state): State<CompanionState>,
    viewer: Viewer,
    headers: HeaderMap,
    Form(form): Form<BaselineForm>,
) -> Result<Response, CompanionError> {
    same_origin(&state, &headers)?;
    require_account(&viewer)?;
    let actor = viewer.actor(&state).await?;
    if !matches!(actor.role, Role::Owner | Role::Admin | Role::SuperAdmin) {
        return Err(CompanionError::Forbidden(
            "Only owners and admins can set the baseline.",
        ));
    }
    let minutes =
        match form.minutes.trim() {
            "" => None,
            text => Some(text.parse::<f64>().map_err(|_| {
                CompanionError::Forbidden("The baseline must be a number of minutes.")
            })?),
        };
    match state
        .engine
        .set_baseline(&actor, minutes)
        .await
        .map_err(engine_error)?
    {
        Ok(()) => Ok(axum::response::Redirect::to("/team/metrics").into_response()),
        Err(_) => Err(CompanionError::Forbidden(
            "The baseline is minutes per escalation, between 0 and 1440.",
        )),
    }
}

/// The small script behind the live queue and the handoff page.
pub(crate) async fn script() -> Response {
    let mut response = include_str!("../static/companion.js").into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/javascript; charset=utf-8"),
    );
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}
