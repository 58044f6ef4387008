//! Flows: troubleshooting decision trees, procedural checklists and scheduled maintenance.
//!
//! A flow file (YAML, documented in `docs/flows.md`) parses into a [`FlowDocument`]; validation
//! turns a document into a [`Flow`], which is valid by construction. Nothing else makes a `Flow`.

mod cron;
pub mod proposal;
mod search;
mod validate;

pub use self::cron::{CronError, CronSpec};
pub use search::{FlowQuery, QueryTerm};
pub use validate::{FlowFileError, FlowIssue, FlowProblem, parse_flow_yaml, validate};

use crate::domain::word_enum;
use crate::ids::FlowId;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

word_enum!(
    /// The three shapes a flow can take.
    FlowKind, "flow kind" {
        /// A decision tree of question, action and solution nodes.
        Troubleshooting => "troubleshooting",
        /// An ordered checklist in sections.
        Procedural => "procedural",
        /// A checklist run on a cron schedule against a list of targets.
        Maintenance => "maintenance",
    }
);

word_enum!(
    /// Whether a flow is offered to technicians.
    FlowStatus, "flow status" {
        Draft => "draft",
        Published => "published",
    }
);

word_enum!(
    /// Where a flow came from.
    FlowSource, "flow source" {
        Authored => "authored",
        Imported => "imported",
        Sample => "sample",
        AiProposed => "ai_proposed",
    }
);

word_enum!(
    /// What a decision-tree node is.
    NodeKind, "node type" {
        /// Ask the technician something; one button per answer.
        Question => "question",
        /// Have the technician do something, then say how it went.
        Action => "action",
        /// A fix: where the walk ends.
        Solution => "solution",
    }
);

/// A flow file as written: the YAML schema. See `docs/flows.md`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowDocument {
    /// Stable slug, unique in a library: `printer-offline`.
    pub id: String,
    pub title: String,
    pub kind: FlowKind,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub category: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folder: Option<String>,
    /// Plain-language ways technicians describe the problem; they weigh heavily in matching.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub symptoms: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<FlowStatus>,
    /// Troubleshooting: the first node (defaults to the first listed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<NodeDocument>,
    /// Procedural and maintenance: the checklist.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sections: Vec<SectionDocument>,
    /// Maintenance: when it runs (crontab syntax, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// Maintenance: what it runs against (servers, tenants, sites).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeDocument {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: NodeKind,
    /// The question, the instruction, or the fix.
    pub text: String,
    /// Short name (solutions: shown as the resolution).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Longer guidance shown under the text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    /// A command or script to run, shown as code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// What the technician should see if all is well.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<String>,
    /// Action shorthand: a single "Done" branch to this node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub branches: Vec<BranchDocument>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BranchDocument {
    pub label: String,
    pub next: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SectionDocument {
    pub title: String,
    pub steps: Vec<StepDocument>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepDocument {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<String>,
}

/// A validated flow. Serialises to JSON for session snapshots; [`Flow::to_document`] gives the file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Flow {
    pub meta: FlowMeta,
    pub body: FlowBody,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowMeta {
    pub slug: String,
    pub title: String,
    pub kind: FlowKind,
    pub description: String,
    pub category: String,
    pub tags: Vec<String>,
    pub folder: Option<String>,
    pub symptoms: Vec<String>,
    pub status: FlowStatus,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FlowBody {
    Tree(Tree),
    Checklist(Checklist),
    Maintenance {
        schedule: CronSpec,
        targets: Vec<String>,
        checklist: Checklist,
    },
}

/// A decision tree whose every branch points at a node, every node is reachable from `start`, and
/// every node can reach a solution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree {
    pub start: String,
    pub nodes: Vec<Node>,
}

impl Tree {
    pub fn node(&self, id: &str) -> Option<&Node> {
        self.nodes.iter().find(|node| node.id == id)
    }

    pub fn start_node(&self) -> &Node {
        // Validation guarantees `start` names a node.
        self.node(&self.start).unwrap_or(&self.nodes[0])
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub id: String,
    pub kind: NodeKind,
    pub text: String,
    pub title: Option<String>,
    pub help: Option<String>,
    pub command: Option<String>,
    pub expect: Option<String>,
    /// Empty exactly for solutions.
    pub branches: Vec<Branch>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Branch {
    pub label: String,
    pub next: String,
}

/// A non-empty list of non-empty sections.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checklist {
    pub sections: Vec<Section>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Section {
    pub title: String,
    pub steps: Vec<ChecklistStep>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChecklistStep {
    pub id: String,
    pub text: String,
    pub help: Option<String>,
    pub command: Option<String>,
    pub expect: Option<String>,
}

/// One step of a checklist in order, with its section.
#[derive(Debug, Clone, Copy)]
pub struct ChecklistItem<'a> {
    pub section: &'a Section,
    pub step: &'a ChecklistStep,
}

impl Checklist {
    /// Every step in order.
    pub fn items(&self) -> impl Iterator<Item = ChecklistItem<'_>> {
        self.sections.iter().flat_map(|section| {
            section
                .steps
                .iter()
                .map(move |step| ChecklistItem { section, step })
        })
    }

    pub fn len(&self) -> usize {
        self.sections.iter().map(|s| s.steps.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Flow {
    /// The flow file for this flow.
    pub fn to_document(&self) -> FlowDocument {
        let meta = &self.meta;
        let mut doc = FlowDocument {
            id: meta.slug.clone(),
            title: meta.title.clone(),
            kind: meta.kind,
            description: meta.description.clone(),
            category: meta.category.clone(),
            tags: meta.tags.clone(),
            folder: meta.folder.clone(),
            symptoms: meta.symptoms.clone(),
            status: Some(meta.status),
            start: None,
            nodes: Vec::new(),
            sections: Vec::new(),
            schedule: None,
            targets: Vec::new(),
        };
        match &self.body {
            FlowBody::Tree(tree) => {
                doc.start = Some(tree.start.clone());
                doc.nodes = tree.nodes.iter().map(node_document).collect();
            }
            FlowBody::Checklist(checklist) => doc.sections = section_documents(checklist),
            FlowBody::Maintenance {
                schedule,
                targets,
                checklist,
            } => {
                doc.schedule = Some(schedule.expression().to_owned());
                doc.targets = targets.clone();
                doc.sections = section_documents(checklist);
            }
        }
        doc
    }

    /// The flow file as YAML.
    pub fn to_yaml(&self) -> String {
        serde_norway::to_string(&self.to_document())
            .unwrap_or_else(|e| format!("# could not serialise flow: {e}\n"))
    }

    /// All the words of the flow's steps, for full-text search.
    pub fn body_text(&self) -> String {
        let mut parts: Vec<&str> = Vec::new();
        match &self.body {
            FlowBody::Tree(tree) => {
                for node in &tree.nodes {
                    parts.push(&node.text);
                    parts.extend(
                        [&node.title, &node.help, &node.expect]
                            .into_iter()
                            .flatten()
                            .map(String::as_str),
                    );
                }
            }
            FlowBody::Checklist(checklist) | FlowBody::Maintenance { checklist, .. } => {
                for item in checklist.items() {
                    parts.push(&item.section.title);
                    parts.push(&item.step.text);
                    parts.extend(
                        [&item.step.help, &item.step.expect]
                            .into_iter()
                            .flatten()
                            .map(String::as_str),
                    );
                }
            }
        }
        parts.join("\n")
    }

    /// The checklist of a procedural or maintenance flow.
    pub fn checklist(&self) -> Option<&Checklist> {
        match &self.body {
            FlowBody::Tree(_) => None,
            FlowBody::Checklist(checklist) | FlowBody::Maintenance { checklist, .. } => {
                Some(checklist)
            }
        }
    }

    /// Maintenance targets; empty for other kinds.
    pub fn targets(&self) -> &[String] {
        match &self.body {
            FlowBody::Maintenance { targets, .. } => targets,
            _ => &[],
        }
    }
}

fn node_document(node: &Node) -> NodeDocument {
    NodeDocument {
        id: node.id.clone(),
        kind: node.kind,
        text: node.text.clone(),
        title: node.title.clone(),
        help: node.help.clone(),
        command: node.command.clone(),
        expect: node.expect.clone(),
        next: None,
        branches: node
            .branches
            .iter()
            .map(|b| BranchDocument {
                label: b.label.clone(),
                next: b.next.clone(),
            })
            .collect(),
    }
}

fn section_documents(checklist: &Checklist) -> Vec<SectionDocument> {
    checklist
        .sections
        .iter()
        .enumerate()
        .map(|(si, section)| SectionDocument {
            title: section.title.clone(),
            steps: section
                .steps
                .iter()
                .enumerate()
                .map(|(ti, step)| StepDocument {
                    // Positional ids (`2.3`) are the default; write only ids the author chose.
                    id: (step.id != format!("{}.{}", si + 1, ti + 1)).then(|| step.id.clone()),
                    text: step.text.clone(),
                    help: step.help.clone(),
                    command: step.command.clone(),
                    expect: step.expect.clone(),
                })
                .collect(),
        })
        .collect()
}

/// A flow as the library lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowSummary {
    pub id: FlowId,
    pub slug: String,
    pub title: String,
    pub kind: FlowKind,
    pub category: String,
    pub tags: Vec<String>,
    pub folder: Option<String>,
    pub status: FlowStatus,
    pub source: FlowSource,
    pub version: i32,
    pub updated_at: Timestamp,
}

/// A stored flow with its definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowRecord {
    pub summary: FlowSummary,
    pub flow: Flow,
}

/// A search result: a flow and how well it matched (higher is better; comparable only within one
/// result list).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowHit {
    pub summary: FlowSummary,
    pub score: f64,
}

/// What saving a flow did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SaveOutcome {
    Created,
    /// The definition changed; the version went up.
    Updated,
    /// Identical to what was stored; nothing changed.
    Unchanged,
}
