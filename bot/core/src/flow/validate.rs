//! Turning a flow file into a [`Flow`], or into a list of everything wrong with it.

use super::{
    Branch, Checklist, ChecklistStep, CronSpec, Flow, FlowBody, FlowDocument, FlowKind, FlowMeta,
    FlowStatus, Node, NodeKind, Section, SectionDocument, Tree,
};
use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;

/// One thing wrong with a flow, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowIssue {
    /// The node or checklist step at fault, when there is one.
    pub node: Option<String>,
    pub problem: FlowProblem,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlowProblem {
    #[error("{message}")]
    Syntax { message: String },
    #[error("`{field}` is required and must not be empty")]
    MissingField { field: &'static str },
    #[error("`{id}` is not a valid id: use lowercase letters, digits, `-` and `_`")]
    BadId { id: String },
    #[error("`{field}` does not belong in a {kind} flow")]
    FieldNotForKind { field: &'static str, kind: FlowKind },
    #[error("the id is used more than once")]
    DuplicateId,
    #[error("`start` names `{start}`, which is not a node")]
    UnknownStart { start: String },
    #[error("branch \"{label}\" points to `{target}`, which does not exist")]
    DanglingBranch { label: String, target: String },
    #[error("two branches are labelled \"{label}\"")]
    DuplicateBranchLabel { label: String },
    #[error("no path from `start` reaches this node (unreachable)")]
    Unreachable,
    #[error("the tree has no solution node: every walk must be able to end in a solution")]
    NoSolution,
    #[error("a {kind} needs a way forward: give it `branches` (or `next` for an action)")]
    DeadEnd { kind: NodeKind },
    #[error("a question needs at least two answers")]
    SingleAnswerQuestion,
    #[error("an action takes either `next` or `branches`, not both")]
    NextAndBranches,
    #[error("a solution ends the walk, so it cannot have `branches` or `next`")]
    SolutionHasBranches,
    #[error("no solution can be reached from here (the walk would loop forever)")]
    NoPathToSolution,
    #[error("the checklist has no steps")]
    EmptyChecklist,
    #[error("section \"{section}\" has no steps")]
    EmptySection { section: String },
    #[error("a maintenance flow needs a `schedule`")]
    MissingSchedule,
    #[error("{0}")]
    BadCron(super::CronError),
    #[error("a maintenance flow needs at least one target")]
    NoTargets,
    #[error("target \"{target}\" is listed twice")]
    DuplicateTarget { target: String },
}

impl FlowIssue {
    fn flow(problem: FlowProblem) -> Self {
        Self {
            node: None,
            problem,
        }
    }

    fn at(node: &str, problem: FlowProblem) -> Self {
        Self {
            node: Some(node.to_owned()),
            problem,
        }
    }
}

impl fmt::Display for FlowIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.node {
            Some(node) => write!(f, "node `{node}`: {}", self.problem),
            None => write!(f, "{}", self.problem),
        }
    }
}

/// Everything wrong with one flow file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowFileError {
    /// The file (or other source) the flow came from.
    pub file: String,
    pub issues: Vec<FlowIssue>,
}

impl fmt::Display for FlowFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, issue) in self.issues.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}: {issue}", self.file)?;
        }
        Ok(())
    }
}

impl std::error::Error for FlowFileError {}

/// Parses and validates one flow file. `file` names it in errors.
pub fn parse_flow_yaml(file: &str, text: &str) -> Result<Flow, FlowFileError> {
    let doc: FlowDocument = serde_norway::from_str(text).map_err(|e| {
        let message = match e.location() {
            Some(at) => format!(
                "invalid YAML at line {}, column {}: {}",
                at.line(),
                at.column(),
                strip_location(&e.to_string())
            ),
            None => format!("invalid YAML: {e}"),
        };
        FlowFileError {
            file: file.to_owned(),
            issues: vec![FlowIssue::flow(FlowProblem::Syntax { message })],
        }
    })?;
    validate(&doc).map_err(|issues| FlowFileError {
        file: file.to_owned(),
        issues,
    })
}

/// serde_norway appends " at line X column Y"; we say it first instead.
fn strip_location(message: &str) -> &str {
    message
        .find(" at line ")
        .map_or(message, |idx| &message[..idx])
}

fn is_valid_id(id: &str) -> bool {
    let mut chars = id.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

fn non_empty(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// Checks a flow document and builds the flow, or lists every problem found.
pub fn validate(doc: &FlowDocument) -> Result<Flow, Vec<FlowIssue>> {
    let mut issues = Vec::new();
    if doc.id.trim().is_empty() {
        issues.push(FlowIssue::flow(FlowProblem::MissingField { field: "id" }));
    } else if !is_valid_id(&doc.id) {
        issues.push(FlowIssue::flow(FlowProblem::BadId { id: doc.id.clone() }));
    }
    if doc.title.trim().is_empty() {
        issues.push(FlowIssue::flow(FlowProblem::MissingField {
            field: "title",
        }));
    }
    let body = match doc.kind {
        FlowKind::Troubleshooting => {
            reject_fields(
                doc,
                &[
                    ("sections", !doc.sections.is_empty()),
                    ("schedule", doc.schedule.is_some()),
                    ("targets", !doc.targets.is_empty()),
                ],
                &mut issues,
            );
            validate_tree(doc, &mut issues).map(FlowBody::Tree)
        }
        FlowKind::Procedural => {
            reject_fields(
                doc,
                &[
                    ("nodes", !doc.nodes.is_empty()),
                    ("start", doc.start.is_some()),
                    ("schedule", doc.schedule.is_some()),
                    ("targets", !doc.targets.is_empty()),
                ],
                &mut issues,
            );
            validate_checklist(&doc.sections, &mut issues).map(FlowBody::Checklist)
        }
        FlowKind::Maintenance => {
            reject_fields(
                doc,
                &[
                    ("nodes", !doc.nodes.is_empty()),
                    ("start", doc.start.is_some()),
                ],
                &mut issues,
            );
            let schedule = match doc.schedule.as_deref() {
                None => {
                    issues.push(FlowIssue::flow(FlowProblem::MissingSchedule));
                    None
                }
                Some(expr) => CronSpec::parse(expr)
                    .map_err(|e| issues.push(FlowIssue::flow(FlowProblem::BadCron(e))))
                    .ok(),
            };
            let targets = validate_targets(&doc.targets, &mut issues);
            let checklist = validate_checklist(&doc.sections, &mut issues);
            match (schedule, checklist) {
                (Some(schedule), Some(checklist)) => Some(FlowBody::Maintenance {
                    schedule,
                    targets,
                    checklist,
                }),
                _ => None,
            }
        }
    };
    match body {
        Some(body) if issues.is_empty() => Ok(Flow {
            meta: FlowMeta {
                slug: doc.id.trim().to_owned(),
                title: doc.title.trim().to_owned(),
                kind: doc.kind,
                description: doc.description.trim().to_owned(),
                category: doc.category.trim().to_owned(),
                tags: doc.tags.iter().map(|t| t.trim().to_owned()).collect(),
                folder: non_empty(&doc.folder),
                symptoms: doc.symptoms.iter().map(|s| s.trim().to_owned()).collect(),
                status: doc.status.unwrap_or(FlowStatus::Published),
            },
            body,
        }),
        _ => Err(issues),
    }
}

fn reject_fields(
    doc: &FlowDocument,
    present: &[(&'static str, bool)],
    issues: &mut Vec<FlowIssue>,
) {
    for (field, is_present) in present {
        if *is_present {
            issues.push(FlowIssue::flow(FlowProblem::FieldNotForKind {
                field,
                kind: doc.kind,
            }));
        }
    }
}

fn validate_targets(targets: &[String], issues: &mut Vec<FlowIssue>) -> Vec<String> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for target in targets.iter().map(|t| t.trim()).filter(|t| !t.is_empty()) {
        if seen.insert(target.to_ascii_lowercase()) {
            out.push(target.to_owned());
        } else {
            issues.push(FlowIssue::flow(FlowProblem::DuplicateTarget {
                target: target.to_owned(),
            }));
        }
    }
    if out.is_empty() {
        issues.push(FlowIssue::flow(FlowProblem::NoTargets));
    }
    out
}

fn validate_checklist(
    sections: &[SectionDocument],
    issues: &mut Vec<FlowIssue>,
) -> Option<Checklist> {
    let before = issues.len();
    if sections.iter().all(|s| s.steps.is_empty()) {
        issues.push(FlowIssue::flow(FlowProblem::EmptyChecklist));
        return None;
    }
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (si, section) in sections.iter().enumerate() {
        if section.steps.is_empty() {
            issues.push(FlowIssue::flow(FlowProblem::EmptySection {
                section: section.title.clone(),
            }));
        }
        let mut steps = Vec::new();
        for (ti, step) in section.steps.iter().enumerate() {
            let id = non_empty(&step.id).unwrap_or_else(|| format!("{}.{}", si + 1, ti + 1));
            if step.id.is_some() && !is_valid_id(&id) {
                issues.push(FlowIssue::at(&id, FlowProblem::BadId { id: id.clone() }));
            }
            if !seen.insert(id.clone()) {
                issues.push(FlowIssue::at(&id, FlowProblem::DuplicateId));
            }
            if step.text.trim().is_empty() {
                issues.push(FlowIssue::at(
                    &id,
                    FlowProblem::MissingField { field: "text" },
                ));
            }
            steps.push(ChecklistStep {
                id,
                text: step.text.trim().to_owned(),
                help: non_empty(&step.help),
                command: non_empty(&step.command),
                expect: non_empty(&step.expect),
            });
        }
        out.push(Section {
            title: section.title.trim().to_owned(),
            steps,
        });
    }
    (issues.len() == before).then_some(Checklist { sections: out })
}

fn validate_tree(doc: &FlowDocument, issues: &mut Vec<FlowIssue>) -> Option<Tree> {
    let before = issues.len();
    if doc.nodes.is_empty() {
        issues.push(FlowIssue::flow(FlowProblem::MissingField {
            field: "nodes",
        }));
        return None;
    }
    let mut nodes: Vec<Node> = Vec::with_capacity(doc.nodes.len());
    let mut index: HashMap<&str, usize> = HashMap::new();
    for raw in &doc.nodes {
        let id = raw.id.trim();
        if id.is_empty() {
            issues.push(FlowIssue::flow(FlowProblem::MissingField {
                field: "nodes[].id",
            }));
            continue;
        }
        if !is_valid_id(id) {
            issues.push(FlowIssue::at(id, FlowProblem::BadId { id: id.to_owned() }));
        }
        if index.contains_key(id) {
            issues.push(FlowIssue::at(id, FlowProblem::DuplicateId));
            continue;
        }
        index.insert(id, nodes.len());
        if raw.text.trim().is_empty() {
            issues.push(FlowIssue::at(
                id,
                FlowProblem::MissingField { field: "text" },
            ));
        }
        let mut branches: Vec<Branch> = raw
            .branches
            .iter()
            .map(|b| Branch {
                label: b.label.trim().to_owned(),
                next: b.next.trim().to_owned(),
            })
            .collect();
        match raw.kind {
            NodeKind::Solution => {
                if !branches.is_empty() || raw.next.is_some() {
                    issues.push(FlowIssue::at(id, FlowProblem::SolutionHasBranches));
                }
            }
            NodeKind::Action => match (&raw.next, branches.is_empty()) {
                (Some(_), false) => {
                    issues.push(FlowIssue::at(id, FlowProblem::NextAndBranches));
                }
                (Some(next), true) => branches.push(Branch {
                    label: "Done".to_owned(),
                    next: next.trim().to_owned(),
                }),
                (None, true) => issues.push(FlowIssue::at(
                    id,
                    FlowProblem::DeadEnd {
                        kind: NodeKind::Action,
                    },
                )),
                (None, false) => {}
            },
            NodeKind::Question => {
                if raw.next.is_some() {
                    issues.push(FlowIssue::at(
                        id,
                        FlowProblem::FieldNotForKind {
                            field: "next",
                            kind: doc.kind,
                        },
                    ));
                }
                match branches.len() {
                    0 => issues.push(FlowIssue::at(
                        id,
                        FlowProblem::DeadEnd {
                            kind: NodeKind::Question,
                        },
                    )),
                    1 => issues.push(FlowIssue::at(id, FlowProblem::SingleAnswerQuestion)),
                    _ => {}
                }
            }
        }
        let mut labels = HashSet::new();
        for branch in &branches {
            if branch.label.is_empty() {
                issues.push(FlowIssue::at(
                    id,
                    FlowProblem::MissingField {
                        field: "branches[].label",
                    },
                ));
            } else if !labels.insert(branch.label.to_lowercase()) {
                issues.push(FlowIssue::at(
                    id,
                    FlowProblem::DuplicateBranchLabel {
                        label: branch.label.clone(),
                    },
                ));
            }
        }
        nodes.push(Node {
            id: id.to_owned(),
            kind: raw.kind,
            text: raw.text.trim().to_owned(),
            title: non_empty(&raw.title),
            help: non_empty(&raw.help),
            command: non_empty(&raw.command),
            expect: non_empty(&raw.expect),
            branches,
        });
    }

    for node in &nodes {
        for branch in &node.branches {
            if !index.contains_key(branch.next.as_str()) {
                issues.push(FlowIssue::at(
                    &node.id,
                    FlowProblem::DanglingBranch {
                        label: branch.label.clone(),
                        target: branch.next.clone(),
                    },
                ));
            }
        }
    }

    let start = match doc.start.as_deref().map(str::trim) {
        Some(start) if !index.contains_key(start) => {
            issues.push(FlowIssue::flow(FlowProblem::UnknownStart {
                start: start.to_owned(),
            }));
            return None;
        }
        Some(start) => start.to_owned(),
        None => nodes.first()?.id.clone(),
    };

    if !nodes.iter().any(|n| n.kind == NodeKind::Solution) {
        issues.push(FlowIssue::flow(FlowProblem::NoSolution));
    }

    let position = |id: &str| index.get(id).copied();
    // Forward reachability from start.
    let mut reachable = vec![false; nodes.len()];
    let mut queue = VecDeque::from([position(&start)?]);
    while let Some(i) = queue.pop_front() {
        if std::mem::replace(&mut reachable[i], true) {
            continue;
        }
        queue.extend(nodes[i].branches.iter().filter_map(|b| position(&b.next)));
    }
    // Backward reachability from solutions.
    let mut reaches_solution = vec![false; nodes.len()];
    let mut queue: VecDeque<usize> = nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| n.kind == NodeKind::Solution)
        .map(|(i, _)| i)
        .collect();
    while let Some(i) = queue.pop_front() {
        if std::mem::replace(&mut reaches_solution[i], true) {
            continue;
        }
        for (j, node) in nodes.iter().enumerate() {
            if !reaches_solution[j] && node.branches.iter().any(|b| position(&b.next) == Some(i)) {
                queue.push_back(j);
            }
        }
    }
    let has_solution = nodes.iter().any(|n| n.kind == NodeKind::Solution);
    for (i, node) in nodes.iter().enumerate() {
        if !reachable[i] {
            issues.push(FlowIssue::at(&node.id, FlowProblem::Unreachable));
        } else if has_solution && !reaches_solution[i] && !node.branches.is_empty() {
            issues.push(FlowIssue::at(&node.id, FlowProblem::NoPathToSolution));
        }
    }

    (issues.len() == before).then_some(Tree { start, nodes })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRINTER: &str = r#"
id: printer-offline
title: Printer shows offline
kind: troubleshooting
category: Printing
tags: [printer]
symptoms: ["can't print"]
nodes:
  - id: power
    type: question
    text: Is the printer on and showing Ready?
    branches:
      - { label: "Yes", next: spooler }
      - { label: "No", next: power-on }
  - id: power-on
    type: solution
    title: Printer was off
    text: Power the printer on and wait for Ready.
  - id: spooler
    type: action
    text: Restart the Print Spooler service.
    command: Restart-Service Spooler
    next: fixed
  - id: fixed
    type: solution
    text: Spooler restarted; printing resumed.
"#;

    fn problems(yaml: &str) -> Vec<String> {
        match parse_flow_yaml("test.yaml", yaml) {
            Ok(_) => Vec::new(),
            Err(e) => e.issues.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn a_good_tree_validates() {
        let flow = parse_flow_yaml("printer.yaml", PRINTER).unwrap();
        let FlowBody::Tree(tree) = &flow.body else {
            panic!("expected a tree")
        };
        assert_eq!(tree.start, "power");
        let spooler = tree.node("spooler").unwrap();
        assert_eq!(
            spooler.branches,
            vec![Branch {
                label: "Done".into(),
                next: "fixed".into()
            }]
        );
        assert_eq!(flow.meta.status, FlowStatus::Published);
    }

    #[test]
    fn export_then_import_round_trips() {
        let flow = parse_flow_yaml("printer.yaml", PRINTER).unwrap();
        let again = parse_flow_yaml("exported.yaml", &flow.to_yaml()).unwrap();
        assert_eq!(flow, again);
    }

    #[test]
    fn a_dangling_branch_names_node_branch_and_target() {
        let broken = PRINTER.replace("next: power-on", "next: power-cycle");
        let errors = problems(&broken);
        assert!(
            errors.contains(
                &"node `power`: branch \"No\" points to `power-cycle`, which does not exist"
                    .to_owned()
            ),
            "{errors:?}"
        );
        // power-on is now unreachable as well.
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with("node `power-on`: no path from `start`")),
            "{errors:?}"
        );
    }

    #[test]
    fn the_file_name_leads_every_message() {
        let err = parse_flow_yaml(
            "flows/broken.yaml",
            &PRINTER.replace("next: fixed", "next: nowhere"),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("flows/broken.yaml: node `spooler`"),
            "{err}"
        );
    }

    #[test]
    fn duplicate_ids_are_reported() {
        let dup = PRINTER.replace("id: fixed", "id: power-on");
        assert!(
            problems(&dup)
                .iter()
                .any(|e| e == "node `power-on`: the id is used more than once")
        );
    }

    #[test]
    fn a_tree_without_solutions_is_rejected() {
        let yaml = r#"
id: loop
title: Loop
kind: troubleshooting
nodes:
  - id: a
    type: question
    text: A?
    branches: [{label: "Yes", next: b}, {label: "No", next: a}]
  - id: b
    type: action
    text: B
    next: a
"#;
        let errors = problems(yaml);
        assert!(
            errors.iter().any(|e| e.contains("has no solution node")),
            "{errors:?}"
        );
    }

    #[test]
    fn a_loop_with_no_exit_is_rejected() {
        let yaml = r#"
id: trap
title: Trap
kind: troubleshooting
nodes:
  - id: a
    type: question
    text: A?
    branches: [{label: "Yes", next: done}, {label: "No", next: b}]
  - id: b
    type: action
    text: B
    next: c
  - id: c
    type: action
    text: C
    next: b
  - id: done
    type: solution
    text: Done
"#;
        let errors = problems(yaml);
        assert!(
            errors.contains(
                &"node `b`: no solution can be reached from here (the walk would loop forever)"
                    .to_owned()
            ),
            "{errors:?}"
        );
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with("node `c`: no solution")),
            "{errors:?}"
        );
    }

    #[test]
    fn dead_ends_and_single_answers_are_rejected() {
        let yaml = r#"
id: dead
title: Dead ends
kind: troubleshooting
nodes:
  - id: q
    type: question
    text: Only one answer?
    branches: [{label: "Yes", next: act}]
  - id: act
    type: action
    text: Do a thing
  - id: fix
    type: solution
    text: Fixed
"#;
        let errors = problems(yaml);
        assert!(
            errors.contains(&"node `q`: a question needs at least two answers".to_owned()),
            "{errors:?}"
        );
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with("node `act`: a action needs a way forward")),
            "{errors:?}"
        );
    }

    #[test]
    fn unknown_fields_are_syntax_errors_with_a_line() {
        let errors = problems(&PRINTER.replace(
            "branches:\n      - { label: \"Yes\"",
            "brances:\n      - { label: \"Yes\"",
        ));
        assert!(errors[0].contains("invalid YAML at line"), "{errors:?}");
        assert!(errors[0].contains("brances"), "{errors:?}");
    }

    #[test]
    fn maintenance_needs_a_valid_schedule_and_targets() {
        let yaml = r#"
id: patching
title: Monthly patching
kind: maintenance
schedule: "0 25 * * *"
sections:
  - title: Check
    steps:
      - text: Review the patch report
"#;
        let errors = problems(yaml);
        assert!(
            errors
                .iter()
                .any(|e| e.contains("is not a valid cron schedule")),
            "{errors:?}"
        );
        assert!(
            errors.iter().any(|e| e.contains("at least one target")),
            "{errors:?}"
        );
    }

    #[test]
    fn a_procedural_checklist_gets_step_ids() {
        let yaml = r#"
id: onboarding
title: New user onboarding
kind: procedural
sections:
  - title: Accounts
    steps:
      - text: Create the AD account
      - id: m365
        text: Assign the M365 licence
  - title: Hardware
    steps:
      - text: Image the laptop
"#;
        let flow = parse_flow_yaml("onboarding.yaml", yaml).unwrap();
        let ids: Vec<_> = flow
            .checklist()
            .unwrap()
            .items()
            .map(|i| i.step.id.clone())
            .collect();
        assert_eq!(ids, ["1.1", "m365", "2.1"]);
    }

    #[test]
    fn tree_fields_are_rejected_on_checklists() {
        let yaml = r#"
id: mixed
title: Mixed
kind: procedural
start: a
sections:
  - title: S
    steps: [{text: x}]
"#;
        assert!(
            problems(yaml).contains(&"`start` does not belong in a procedural flow".to_owned())
        );
    }
}
