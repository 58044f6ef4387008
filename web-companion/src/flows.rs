//! A flow of the library, read-only: what the copilot's citations link to. Every member of an
//! account can read its library in chat (`/rf flows`), so any link of the account opens it.

use crate::{CompanionError, CompanionState, Viewer};
use axum::extract::{Path, State};
use axum::response::Html;
use minijinja::context;
use minijinja::value::Serde;
use rf_core::StoreError;
use rf_core::flow::{Checklist, FlowBody};
use rf_core::ids::FlowId;
use serde::Serialize;

/// A step as the page shows it: a tree node (with where its answers lead) or a checklist step.
#[derive(Debug, Serialize)]
struct StepView {
    anchor: String,
    label: String,
    title: Option<String>,
    text: String,
    help: Option<String>,
    command: Option<String>,
    expect: Option<String>,
    branches: Vec<BranchView>,
}

#[derive(Debug, Serialize)]
struct BranchView {
    label: String,
    anchor: String,
    target: String,
}

#[derive(Debug, Serialize)]
struct SectionView {
    title: String,
    steps: Vec<StepView>,
}

fn checklist_sections(checklist: &Checklist) -> Vec<SectionView> {
    checklist
        .sections
        .iter()
        .enumerate()
        .map(|(si, section)| SectionView {
            title: section.title.clone(),
            steps: section
                .steps
                .iter()
                .enumerate()
                .map(|(ti, step)| StepView {
                    anchor: format!("step-{}", step.id),
                    label: format!("{}.{}", si + 1, ti + 1),
                    title: None,
                    text: step.text.clone(),
                    help: step.help.clone(),
                    command: step.command.clone(),
                    expect: step.expect.clone(),
                    branches: Vec::new(),
                })
                .collect(),
        })
        .collect()
}

pub(crate) async fn page(
    State(state): State<CompanionState>,
    Viewer(claims): Viewer,
    Path(id): Path<String>,
) -> Result<Html<String>, CompanionError> {
    let id = FlowId::parse(&id).map_err(|_| CompanionError::NotFound)?;
    let record = match state.store.get_flow(claims.acc, id).await {
        Ok(record) => record,
        Err(StoreError::NotFound { .. }) => return Err(CompanionError::NotFound),
        Err(e) => return Err(e.into()),
    };
    let (meta, summary) = (&record.flow.meta, &record.summary);
    let mut schedule = None;
    let mut targets: &[String] = &[];
    let (tree, sections) = match &record.flow.body {
        FlowBody::Tree(tree) => {
            let title_of = |id: &str| {
                tree.node(id)
                    .map(|n| n.title.clone().unwrap_or_else(|| n.text.clone()))
                    .unwrap_or_else(|| id.to_owned())
            };
            // The start node first, then the rest in file order.
            let ordered = std::iter::once(tree.start_node())
                .chain(tree.nodes.iter().filter(|n| n.id != tree.start));
            let nodes = ordered
                .map(|node| StepView {
                    anchor: format!("step-{}", node.id),
                    label: node.kind.as_str().to_owned(),
                    title: node.title.clone(),
                    text: node.text.clone(),
                    help: node.help.clone(),
                    command: node.command.clone(),
                    expect: node.expect.clone(),
                    branches: node
                        .branches
                        .iter()
                        .map(|b| BranchView {
                            label: b.label.clone(),
                            anchor: format!("step-{}", b.next),
                            target: title_of(&b.next),
                        })
                        .collect(),
                })
                .collect();
            (nodes, Vec::new())
        }
        FlowBody::Checklist(checklist) => (Vec::new(), checklist_sections(checklist)),
        FlowBody::Maintenance {
            schedule: cron,
            targets: list,
            checklist,
        } => {
            schedule = Some(cron.expression().to_owned());
            targets = list;
            (Vec::new(), checklist_sections(checklist))
        }
    };
    state.render(
        "flow.html",
        context! {
            title => meta.title.clone(),
            kind => meta.kind.as_str(),
            status => summary.status.as_str(),
            source => summary.source.as_str(),
            version => summary.version,
            category => meta.category.clone(),
            tags => meta.tags.clone(),
            description => meta.description.clone(),
            symptoms => meta.symptoms.clone(),
            updated => summary.updated_at.display_utc(),
            schedule => schedule,
            targets => targets.to_vec(),
            nodes => Serde(tree),
            sections => Serde(sections),
        },
    )
}
