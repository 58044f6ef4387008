//! Page and download handlers.

use crate::links::{TokenError, TokenKind};
use crate::{COOKIE, CompanionError, CompanionState, Viewer};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use minijinja::context;
use rf_core::effect::ExportFormat;
use rf_core::engine::export_session;
use rf_core::export::describe_step;
use rf_core::ids::SessionId;
use rf_core::links::LinkScope;
use rf_core::redact::Redactor;
use rf_core::session::{SessionFilter, SessionStatus};
use serde::{Deserialize, Serialize};

pub(crate) async fn healthz() -> &'static str {
    "ok"
}

pub(crate) async fn readyz(State(state): State<CompanionState>) -> Response {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response()
        }
    }
}

pub(crate) async fn not_found() -> CompanionError {
    CompanionError::NotFound
}

#[derive(Debug, Deserialize)]
pub(crate) struct LinkQuery {
    token: Option<String>,
}

/// Exchanges a link for a session cookie and goes to the page the link was made for.
pub(crate) async fn open_link(
    State(state): State<CompanionState>,
    Query(query): Query<LinkQuery>,
    jar: CookieJar,
) -> Result<(CookieJar, Redirect), CompanionError> {
    let token = query
        .token
        .ok_or(CompanionError::BadToken(TokenError::Invalid))?;
    let now = state.clock.now();
    let claims = state
        .keys
        .verify(&token, TokenKind::Link, now)
        .map_err(CompanionError::BadToken)?;
    let link = crate::live_link(&state, &claims).await?;
    let expires = now.plus_millis(state.cookie_ttl_millis);
    let cookie_token = state.keys.sign(&link, TokenKind::Cookie, now, expires);
    let cookie = Cookie::build((COOKIE, cookie_token))
        .http_only(true)
        .secure(state.secure_cookies())
        .same_site(SameSite::Lax)
        .path("/")
        .max_age(cookie::time::Duration::milliseconds(
            state.cookie_ttl_millis,
        ))
        .build();
    let target = match link.scope {
        LinkScope::Session(id) => format!("/sessions/{id}"),
        LinkScope::Handoff(id) => format!("/handoffs/{id}"),
        LinkScope::Flow(id) => format!("/flows/{id}"),
        LinkScope::Account => "/queue".to_owned(),
    };
    Ok((jar.add(cookie), Redirect::to(&target)))
}

#[derive(Debug, Serialize)]
struct SessionRow {
    id: String,
    problem: String,
    status: &'static str,
    updated: String,
}

pub(crate) async fn home(
    State(state): State<CompanionState>,
    Viewer(claims): Viewer,
) -> Result<Response, CompanionError> {
    match claims.scope {
        LinkScope::Session(id) => {
            return Ok(Redirect::to(&format!("/sessions/{id}")).into_response());
        }
        LinkScope::Handoff(id) => {
            return Ok(Redirect::to(&format!("/handoffs/{id}")).into_response());
        }
        LinkScope::Flow(id) => {
            return Ok(Redirect::to(&format!("/flows/{id}")).into_response());
        }
        LinkScope::Account => {}
    }
    let account = state.store.get_account(claims.acc).await?;
    let sessions = state
        .store
        .list_sessions(
            claims.acc,
            &SessionFilter {
                status: None,
                limit: 50,
            },
        )
        .await?;
    let redactor = Redactor::new();
    let rows: Vec<SessionRow> = sessions
        .into_iter()
        .map(|s| SessionRow {
            id: s.id.to_string(),
            problem: redactor.redact(&s.problem).into_owned(),
            status: status_label(s.status),
            updated: s.updated_at.display_utc(),
        })
        .collect();
    Ok(state
        .render("home.html", context! { account => account.name, sessions => minijinja::Value::from(minijinja::value::Serde(&rows)) })?
        .into_response())
}

fn status_label(status: SessionStatus) -> &'static str {
    match status {
        SessionStatus::Active => "In progress",
        SessionStatus::Parked => "Parked",
        SessionStatus::Escalated => "Escalated",
        SessionStatus::Resolved => "Resolved",
        SessionStatus::Abandoned => "Abandoned",
    }
}

/// Whether the cookie opens this session: its own session link, an account link, or the link of a
/// handoff of this session.
pub(crate) async fn allow_session(
    state: &CompanionState,
    claims: &crate::links::Claims,
    session: SessionId,
) -> Result<(), CompanionError> {
    if claims.scope.allows_session(session) {
        return Ok(());
    }
    if let LinkScope::Handoff(handoff) = claims.scope {
        let handoff = state.store.get_handoff(claims.acc, handoff).await?;
        if handoff.session_id == session {
            return Ok(());
        }
    }
    Err(CompanionError::NotFound)
}

fn parse_session_id(text: &str) -> Result<SessionId, CompanionError> {
    SessionId::parse(text).map_err(|_| CompanionError::NotFound)
}

#[derive(Debug, Serialize)]
struct StepView {
    time: String,
    text: String,
    emphasis: Option<String>,
    output: Option<String>,
    prompt: bool,
}

/// A session's timeline.
pub(crate) async fn session(
    State(state): State<CompanionState>,
    Viewer(claims): Viewer,
    Path(id): Path<String>,
) -> Result<Html<String>, CompanionError> {
    let id = parse_session_id(&id)?;
    allow_session(&state, &claims, id).await?;
    let store = &state.store;
    let session = store.get_session(claims.acc, id).await?;
    let timeline = store.timeline(claims.acc, id).await?;
    let facts = store.facts(claims.acc, id).await?;
    let owner = store.get_user(claims.acc, session.owner_id).await?;
    let redactor = Redactor::new();
    let clean = |text: &str| redactor.redact(text).into_owned();
    let steps: Vec<StepView> = timeline
        .iter()
        .map(|step| {
            let line = describe_step(step);
            StepView {
                time: line.time,
                text: clean(&line.text),
                emphasis: line.emphasis.as_deref().map(clean),
                output: line.output.as_deref().map(clean),
                prompt: line.prompt,
            }
        })
        .collect();
    let facts: Vec<String> = facts.iter().map(|f| clean(&f.text)).collect();
    let mut posts = Vec::new();
    for note in store.psa_notes(claims.acc, id).await? {
        let by = store.get_user(claims.acc, note.requested_by).await?;
        let outcome = match (note.status, &note.psa_note_id, &note.error) {
            (rf_core::psa::NoteStatus::Posted, Some(psa_id), _) => format!(
                "posted {} as note {psa_id}{}",
                note.posted_at.map(|t| t.display_utc()).unwrap_or_default(),
                note.member
                    .as_ref()
                    .map(|m| format!(", credited to {m}"))
                    .unwrap_or_default()
            ),
            (rf_core::psa::NoteStatus::Failed, _, Some(error)) => {
                format!("failed: {}", clean(error))
            }
            _ => "waiting to be posted".to_owned(),
        };
        posts.push((
            note.created_at.display_utc(),
            by.display_name,
            note.ticket,
            outcome,
        ));
    }
    // Every model call the copilot made in this session: which model, tokens, latency, cost.
    let mut ai_calls = Vec::new();
    for step in &timeline {
        let (purpose, calls) = match &step.kind {
            rf_core::session::StepKind::AiTurn { calls, .. } => ("turn", calls),
            rf_core::session::StepKind::AiCalls { purpose, calls, .. } => (
                match purpose {
                    rf_core::ai::AiPurpose::ResolutionNote => "resolution note",
                    rf_core::ai::AiPurpose::Assessment => "escalation assessment",
                },
                calls,
            ),
            _ => continue,
        };
        for call in calls {
            ai_calls.push((
                step.created_at.time_of_day(),
                purpose,
                format!("{} ({})", call.model, call.tier.as_str()),
                format!(
                    "{} in ({} cached) / {} out",
                    call.input_tokens, call.cached_tokens, call.output_tokens
                ),
                format!("{} ms", call.latency_ms),
                format!("${:.4}", call.cost_micros as f64 / 1e6),
                call.problem.as_deref().map(clean).unwrap_or_default(),
            ));
        }
    }
    let fixes: Vec<(String, String, String)> = store
        .suggested_fixes(claims.acc, id)
        .await?
        .into_iter()
        .map(|f| {
            let state = match (f.decision, f.superseded_at) {
                (Some(decision), _) => decision.as_str().replace('_', " "),
                (None, Some(_)) => "superseded".to_owned(),
                (None, None) => "active".to_owned(),
            };
            (
                clean(&f.proposal.title),
                format!("{}%", f.proposal.confidence),
                state,
            )
        })
        .collect();
    let exports = [
        ExportFormat::Markdown,
        ExportFormat::Text,
        ExportFormat::Html,
    ]
    .iter()
    .map(|f| {
        (
            f.extension(),
            format!("/sessions/{id}/export/{}", f.extension()),
        )
    })
    .collect::<Vec<_>>();
    state.render(
        "session.html",
        context! {
            problem => clean(&session.problem),
            status => status_label(session.status),
            owner => owner.display_name,
            flow => session.flow.as_ref().map(|f| f.meta.title.clone()),
            flow_id => session.flow_id.map(|id| id.to_string()),
            ticket => session.psa_ticket,
            started => session.created_at.display_utc(),
            resolved => session.resolved_at.map(|t| t.display_utc()),
            resolution => session.resolution.as_deref().map(clean),
            steps => minijinja::Value::from(minijinja::value::Serde(&steps)),
            facts => facts,
            posts => posts,
            ai_calls => ai_calls,
            fixes => fixes,
            exports => exports,
            account_scope => claims.scope == LinkScope::Account,
        },
    )
}

/// A session's documentation as a download.
pub(crate) async fn export(
    State(state): State<CompanionState>,
    Viewer(claims): Viewer,
    Path((id, format)): Path<(String, String)>,
) -> Result<Response, CompanionError> {
    let id = parse_session_id(&id)?;
    allow_session(&state, &claims, id).await?;
    let format = ExportFormat::parse(&format).ok_or(CompanionError::NotFound)?;
    let document = export_session(
        state.store.as_ref(),
        &Redactor::new(),
        claims.acc,
        id,
        format,
    )
    .await?;
    let disposition = format!("attachment; filename=\"{}\"", document.filename);
    let mut response = document.content.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.mime()),
    );
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// The error page, rendered without the state (errors can happen before it is available).
pub(crate) fn error_page(status: StatusCode, title: &str, detail: &str) -> String {
    let env = super::templates();
    env.get_template("error.html")
        .and_then(|t| {
            t.render(context! { status => status.as_u16(), title => title, detail => detail })
        })
        .unwrap_or_else(|_| format!("{} {title}: {detail}", status.as_u16()))
}
