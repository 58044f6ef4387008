//! The review queue for AI-proposed flows (the flow builder's drafts and the knowledge
//! flywheel's): owners and admins accept (optionally after editing the YAML), or reject. An
//! accepted draft must pass the flow validator; it is published to the library.

use crate::escalations::{require_account, same_origin};
use crate::{CompanionError, CompanionState, Viewer};
use axum::Form;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Html;
use minijinja::context;
use minijinja::value::Serde;
use rf_core::StoreError;
use rf_core::domain::{Actor, Role};
use rf_core::flow::proposal::{ProposalReview, ProposalStatus};
use rf_core::flow::{FlowSource, parse_flow_yaml};
use serde::Serialize;
use std::collections::HashMap;

#[derive(Debug, Serialize)]
struct ProposalView {
    id: String,
    title: String,
    yaml: String,
    rationale: String,
    origin: &'static str,
    sources: Vec<String>,
    status: &'static str,
    created: String,
    reviewed: Option<String>,
}

async fn reviewer(state: &CompanionState, viewer: &Viewer) -> Result<Actor, CompanionError> {
    require_account(viewer)?;
    let actor = viewer.actor(state).await?;
    if !matches!(actor.role, Role::Owner | Role::Admin | Role::SuperAdmin) {
        return Err(CompanionError::Forbidden(
            "Only owners and admins can review flow proposals.",
        ));
    }
    Ok(actor)
}

async fn page(
    state: &CompanionState,
    actor: &Actor,
    notice: Option<(bool, String)>,
) -> Result<Html<String>, CompanionError> {
    let proposals = state.store.flow_proposals(actor.account_id, None).await?;
    let view = |p: rf_core::flow::proposal::FlowProposal| ProposalView {
        id: p.id.to_string(),
        title: p.title,
        yaml: p.yaml,
        rationale: p.rationale,
        origin: match p.origin {
            rf_core::flow::proposal::ProposalOrigin::Builder => "flow builder",
            rf_core::flow::proposal::ProposalOrigin::Flywheel => "knowledge flywheel",
        },
        sources: p.source_sessions.iter().map(ToString::to_string).collect(),
        status: p.status.as_str(),
        created: p.created_at.display_utc(),
        reviewed: p.reviewed_at.map(|t| t.display_utc()),
    };
    let (pending, reviewed): (Vec<_>, Vec<_>) = proposals
        .into_iter()
        .partition(|p| p.status == ProposalStatus::Pending);
    state.render(
        "proposals.html",
        context! {
            pending => Serde(pending.into_iter().map(view).collect::<Vec<_>>()),
            reviewed => Serde(reviewed.into_iter().map(view).collect::<Vec<_>>()),
            notice => notice.as_ref().map(|(_, text)| text.clone()),
            notice_ok => notice.as_ref().is_some_and(|(ok, _)| *ok),
        },
    )
}

pub(crate) async fn list(
    State(state): State<CompanionState>,
    viewer: Viewer,
) -> Result<Html<String>, CompanionError> {
    let actor = reviewer(&state, &viewer).await?;
    page(&state, &actor, None).await
}

/// `action=accept` (with the possibly edited `yaml`) or `action=reject`.
pub(crate) async fn review(
    State(state): State<CompanionState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Html<String>, CompanionError> {
    same_origin(&state, &headers)?;
    let actor = reviewer(&state, &viewer).await?;
    let id: uuid::Uuid = id.parse().map_err(|_| CompanionError::NotFound)?;
    let proposal = match state.store.flow_proposal(actor.account_id, id).await {
        Ok(proposal) => proposal,
        Err(StoreError::NotFound { .. }) => return Err(CompanionError::NotFound),
        Err(e) => return Err(e.into()),
    };
    if proposal.status != ProposalStatus::Pending {
        let text = format!("\"{}\" was already {}.", proposal.title, proposal.status);
        return page(&state, &actor, Some((false, text))).await;
    }
    let now = state.clock.now();
    let outcome = match form.get("action").map(String::as_str) {
        Some("reject") => {
            let review = ProposalReview {
                status: ProposalStatus::Rejected,
                reviewer: actor.user_id,
                yaml: None,
                flow_id: None,
            };
            state
                .store
                .review_flow_proposal(actor.account_id, id, &review, now)
                .await
                .map(|p| (true, format!("Rejected \"{}\".", p.title)))
        }
        Some("accept") => {
            let yaml = form
                .get("yaml")
                .map(|y| y.replace("\r\n", "\n"))
                .unwrap_or_else(|| proposal.yaml.clone());
            let flow = match parse_flow_yaml(&format!("proposal {}", proposal.title), &yaml) {
                Ok(flow) => flow,
                Err(e) => {
                    let text = format!("Not published: the flow validator found problems.\n{e}");
                    return page(&state, &actor, Some((false, text))).await;
                }
            };
            if let Some(existing) = state
                .store
                .get_flow_by_slug(actor.account_id, &flow.meta.slug)
                .await?
                .filter(|f| f.summary.source != FlowSource::AiProposed)
            {
                let text = format!(
                    "Not published: the library already has \"{}\" with the id `{}`. Change the draft's `id` and accept again.",
                    existing.summary.title, flow.meta.slug
                );
                return page(&state, &actor, Some((false, text))).await;
            }
            let (summary, _) = state
                .store
                .save_flow(actor.account_id, &flow, FlowSource::AiProposed, now)
                .await?;
            let review = ProposalReview {
                status: ProposalStatus::Accepted,
                reviewer: actor.user_id,
                yaml: (yaml != proposal.yaml).then_some(yaml),
                flow_id: Some(summary.id),
            };
            state
                .store
                .review_flow_proposal(actor.account_id, id, &review, now)
                .await
                .map(|p| {
                    (
                        true,
                        format!(
                            "Published \"{}\" to the flow library (version {}).",
                            p.title, summary.version
                        ),
                    )
                })
        }
        _ => {
            return page(
                &state,
                &actor,
                Some((false, "Choose accept or reject.".to_owned())),
            )
            .await;
        }
    };
    let notice = match outcome {
        Ok(notice) => notice,
        Err(StoreError::Conflict { .. }) => (
            false,
            "Someone reviewed this proposal at the same time; here is where it stands.".to_owned(),
        ),
        Err(e) => return Err(e.into()),
    };
    page(&state, &actor, Some(notice)).await
}
