//! Prompts are files: minijinja templates in `prompts/` at the repository root, built into the
//! binary, versioned by `prompts/VERSION` (recorded on every AI timeline step), and overridable one
//! file at a time from a directory (`[ai] prompts_dir`).
//!
//! The files:
//! - `system.md.j2`: who the copilot is and how it works, rendered with `task` (`turn`, `note`,
//!   `assessment`, `flow_builder`, `flywheel`); it carries the turn's output rules;
//! - one template per task (`turn.md.j2`, `resolution_note.md.j2`, `escalation_assessment.md.j2`,
//!   `flow_builder.md.j2`, `flywheel.md.j2`), each with three blocks: `system` (the task's rules,
//!   appended to the system prompt), `context` (stable material: the problem, flow, ticket and
//!   retrieved items) and `user` (what changes from turn to turn: facts, active fix, timeline,
//!   latest message, the task);
//! - `session.md.j2` (macros showing a session's parts) and `flow_format.md.j2` (the flow file
//!   format with an example), used by the task templates.
//!
//! Session templates see `session` (the [`SessionContext`]); the flow builder sees `description`
//! and `feedback`; the flywheel `cluster` (the [`SessionCluster`]) and `feedback`. Undefined
//! variables are errors (strict mode), so a typo in a template fails instead of leaving a hole in
//! the prompt; overrides are rendered once against sample sessions when loaded, so such a typo
//! fails at startup, naming the file.
//!
//! System and context come first and change least, so providers' prompt caches hit: the system
//! prompt depends only on the task, the context only on the session's problem, ticket and
//! retrieval.

use minijinja::syntax::SyntaxConfig;
use minijinja::value::Serde;
use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value, context};
use rf_core::ai::{
    Citation, CitationKind, FixProposal, ResolvedSummary, SessionCluster, SessionContext,
};
use rf_core::ids::SessionId;
use rf_core::psa::Ticket;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The built-in prompt files, by name.
const FILES: &[(&str, &str)] = &[
    (
        "system.md.j2",
        include_str!("../../../prompts/system.md.j2"),
    ),
    (
        "session.md.j2",
        include_str!("../../../prompts/session.md.j2"),
    ),
    (
        "flow_format.md.j2",
        include_str!("../../../prompts/flow_format.md.j2"),
    ),
    ("turn.md.j2", include_str!("../../../prompts/turn.md.j2")),
    (
        "resolution_note.md.j2",
        include_str!("../../../prompts/resolution_note.md.j2"),
    ),
    (
        "escalation_assessment.md.j2",
        include_str!("../../../prompts/escalation_assessment.md.j2"),
    ),
    (
        "flow_builder.md.j2",
        include_str!("../../../prompts/flow_builder.md.j2"),
    ),
    (
        "flywheel.md.j2",
        include_str!("../../../prompts/flywheel.md.j2"),
    ),
];

/// The built-in prompt set's version.
const VERSION: &str = include_str!("../../../prompts/VERSION");

const SYSTEM: &str = "system.md.j2";

/// A prompt ready to send: the system prompt, the stable context (sent before the messages and
/// marked for caching; may be empty) and the user message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedPrompt {
    pub system: String,
    /// Stable for the session: problem, flow, ticket, retrieved items.
    pub context: String,
    pub user: String,
}

/// A prompt file that could not be loaded or rendered. Every variant names the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PromptError {
    #[error("cannot read the prompt directory {dir}: {message}")]
    Directory { dir: String, message: String },
    #[error("cannot read the prompt file {file}: {message}")]
    Read { file: String, message: String },
    #[error("the prompt file {file} is not a valid template: {message}")]
    Syntax { file: String, message: String },
    #[error("the prompt file {file} failed to render: {message}")]
    Render { file: String, message: String },
    #[error("{file} is not one of the prompt files ({known})")]
    Unknown { file: String, known: String },
}

/// What a prompt is for: which template renders it and what `task` the system prompt sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Task {
    Turn,
    Note,
    Assessment,
    FlowBuilder,
    Flywheel,
}

impl Task {
    const ALL: [Task; 5] = [
        Task::Turn,
        Task::Note,
        Task::Assessment,
        Task::FlowBuilder,
        Task::Flywheel,
    ];

    fn name(self) -> &'static str {
        match self {
            Task::Turn => "turn",
            Task::Note => "note",
            Task::Assessment => "assessment",
            Task::FlowBuilder => "flow_builder",
            Task::Flywheel => "flywheel",
        }
    }

    fn file(self) -> &'static str {
        match self {
            Task::Turn => "turn.md.j2",
            Task::Note => "resolution_note.md.j2",
            Task::Assessment => "escalation_assessment.md.j2",
            Task::FlowBuilder => "flow_builder.md.j2",
            Task::Flywheel => "flywheel.md.j2",
        }
    }
}

/// The prompt set: the templates and their version.
#[derive(Debug, Clone)]
pub struct Prompts {
    env: Environment<'static>,
    version: String,
    /// Files replaced from an override directory, by name.
    overrides: BTreeMap<String, PathBuf>,
}

impl Prompts {
    /// The built-in prompts.
    pub fn embedded() -> Self {
        let mut env = environment();
        for (name, source) in FILES {
            // The built-in files are parsed and rendered by this module's tests; should one fail
            // anyway, rendering it reports the missing template instead of panicking here.
            if let Err(error) = env.add_template(name, source) {
                tracing::error!(%error, file = name, "a built-in prompt file is invalid");
            }
        }
        Self {
            env,
            version: VERSION.trim().to_owned(),
            overrides: BTreeMap::new(),
        }
    }

    /// The built-in prompts, with each prompt file present in `dir` replacing its namesake.
    ///
    /// A `*.j2` file that is not a prompt file is an error (a misspelt override would otherwise
    /// be silently ignored); other files (`VERSION`, a README, hidden files) are ignored. When any
    /// file is replaced, the version becomes `<built-in>+<dir/VERSION>`, or
    /// `<built-in>+local.<digest of the overrides>` when the directory has no `VERSION`. Every
    /// prompt is rendered once against sample sessions, so a template that parses but cannot
    /// render (an undefined variable) fails here, naming the file.
    pub fn with_overrides(dir: &Path) -> Result<Self, PromptError> {
        let mut prompts = Self::embedded();
        let entries = std::fs::read_dir(dir).map_err(|e| PromptError::Directory {
            dir: dir.display().to_string(),
            message: e.to_string(),
        })?;
        let mut files: Vec<(String, PathBuf)> = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| PromptError::Directory {
                dir: dir.display().to_string(),
                message: e.to_string(),
            })?;
            let path = entry.path();
            if path.is_dir() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                // Editor swap and lock files.
                continue;
            }
            if FILES.iter().any(|(known, _)| *known == name) {
                files.push((name, path));
            } else if name.ends_with(".j2") {
                return Err(PromptError::Unknown {
                    file: path.display().to_string(),
                    known: FILES
                        .iter()
                        .map(|(known, _)| *known)
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
        }
        // A stable order, for the digest.
        files.sort();
        let mut digest = Sha256::new();
        for (name, path) in files {
            let source = std::fs::read_to_string(&path).map_err(|e| PromptError::Read {
                file: path.display().to_string(),
                message: e.to_string(),
            })?;
            digest.update(name.as_bytes());
            digest.update([0]);
            digest.update(source.as_bytes());
            digest.update([0]);
            prompts
                .env
                .add_template_owned(name.clone(), source)
                .map_err(|e| PromptError::Syntax {
                    file: path.display().to_string(),
                    message: describe(&e),
                })?;
            prompts.overrides.insert(name, path);
        }
        if !prompts.overrides.is_empty() {
            let custom = match std::fs::read_to_string(dir.join("VERSION")) {
                Ok(version) if !version.trim().is_empty() => version.trim().to_owned(),
                _ => {
                    let hash = digest.finalize();
                    let mut short = String::from("local.");
                    for byte in hash.iter().take(4) {
                        let _ = write!(short, "{byte:02x}");
                    }
                    short
                }
            };
            prompts.version = format!("{}+{custom}", prompts.version);
        }
        prompts.check()?;
        tracing::info!(
            dir = %dir.display(),
            replaced = ?prompts.overrides.keys().collect::<Vec<_>>(),
            version = %prompts.version,
            "prompt overrides loaded"
        );
        Ok(prompts)
    }

    /// The prompt set's version, recorded on every AI timeline step.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The prompt for a copilot turn.
    pub fn render_turn(&self, context: &SessionContext) -> Result<RenderedPrompt, PromptError> {
        self.render(
            Task::Turn,
            context! { session => Value::from(Serde(context)) },
        )
    }

    /// The prompt for the four-section resolution note.
    pub fn render_note(&self, context: &SessionContext) -> Result<RenderedPrompt, PromptError> {
        self.render(
            Task::Note,
            context! { session => Value::from(Serde(context)) },
        )
    }

    /// The prompt for an escalation's assessment.
    pub fn render_assessment(
        &self,
        context: &SessionContext,
    ) -> Result<RenderedPrompt, PromptError> {
        self.render(
            Task::Assessment,
            context! { session => Value::from(Serde(context)) },
        )
    }

    /// The prompt for drafting a flow from a description; `feedback` is the validator's
    /// complaint about the previous draft, on a retry.
    pub fn render_flow_builder(
        &self,
        description: &str,
        feedback: Option<&str>,
    ) -> Result<RenderedPrompt, PromptError> {
        self.render(
            Task::FlowBuilder,
            context! { description => description, feedback => feedback },
        )
    }

    /// The prompt for proposing a flow from a cluster of resolved sessions (the flywheel).
    pub fn render_flywheel(
        &self,
        cluster: &SessionCluster,
        feedback: Option<&str>,
    ) -> Result<RenderedPrompt, PromptError> {
        self.render(
            Task::Flywheel,
            context! { cluster => Value::from(Serde(cluster)), feedback => feedback },
        )
    }

    fn render(&self, task: Task, ctx: Value) -> Result<RenderedPrompt, PromptError> {
        let failed = |error: minijinja::Error| PromptError::Render {
            file: self.file_name(error.name().unwrap_or(task.file())),
            message: describe(&error),
        };
        let base = self
            .env
            .get_template(SYSTEM)
            .and_then(|t| t.render(context! { task => task.name() }))
            .map_err(|e| PromptError::Render {
                file: self.file_name(e.name().unwrap_or(SYSTEM)),
                message: describe(&e),
            })?;
        let template = self.env.get_template(task.file()).map_err(failed)?;
        let mut captured = template.render_captured(ctx).map_err(failed)?;
        let (system, context, user) = captured
            .with_state_mut(|state| {
                Ok::<_, minijinja::Error>((
                    state.render_block("system")?,
                    state.render_block("context")?,
                    state.render_block("user")?,
                ))
            })
            .map_err(failed)?;
        let system = match tidy(&system) {
            rules if rules.is_empty() => tidy(&base),
            rules => format!("{}\n\n{rules}", tidy(&base)),
        };
        Ok(RenderedPrompt {
            system,
            context: tidy(&context),
            user: tidy(&user),
        })
    }

    /// The file as the operator knows it: the override's path, or the built-in name.
    fn file_name(&self, name: &str) -> String {
        self.overrides
            .get(name)
            .map_or_else(|| name.to_owned(), |path| path.display().to_string())
    }

    /// Renders every prompt against a full and an empty sample, so a broken template is found
    /// when the prompts are loaded rather than in the middle of a session.
    fn check(&self) -> Result<(), PromptError> {
        let full = sample_session();
        let empty = SessionContext::default();
        let cluster = sample_cluster();
        for task in Task::ALL {
            match task {
                Task::Turn => {
                    self.render_turn(&full)?;
                    self.render_turn(&empty)?;
                }
                Task::Note => {
                    self.render_note(&full)?;
                    self.render_note(&empty)?;
                }
                Task::Assessment => {
                    self.render_assessment(&full)?;
                    self.render_assessment(&empty)?;
                }
                Task::FlowBuilder => {
                    self.render_flow_builder("A flow", Some("a problem"))?;
                    self.render_flow_builder("", None)?;
                }
                Task::Flywheel => {
                    self.render_flywheel(&cluster, Some("a problem"))?;
                    self.render_flywheel(
                        &SessionCluster {
                            theme: String::new(),
                            sessions: Vec::new(),
                        },
                        None,
                    )?;
                }
            }
        }
        Ok(())
    }
}

/// The environment every prompt set uses: strict undefined values, no escaping (this is not
/// HTML), and Jinja's block whitespace handling so templates can be laid out readably.
fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    match SyntaxConfig::builder()
        .trim_blocks(true)
        .lstrip_blocks(true)
        .build()
    {
        Ok(syntax) => env.set_syntax(syntax),
        Err(error) => tracing::error!(%error, "the prompt syntax settings were refused"),
    }
    env
}

/// A minijinja error in one line: what went wrong and where (file and line).
fn describe(error: &minijinja::Error) -> String {
    match (error.detail(), error.line()) {
        (Some(detail), Some(line)) => format!("{} at line {line}: {detail}", error.kind()),
        (Some(detail), None) => format!("{}: {detail}", error.kind()),
        (None, Some(line)) => format!("{} at line {line}", error.kind()),
        (None, None) => error.kind().to_string(),
    }
}

/// Without trailing spaces, at most one blank line in a row, trimmed.
fn tidy(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank = 0;
    for line in text.lines() {
        let line = line.trim_end();
        if line.is_empty() {
            blank += 1;
            if blank > 1 {
                continue;
            }
        } else {
            blank = 0;
        }
        out.push_str(line);
        out.push('\n');
    }
    out.trim().to_owned()
}

/// A session with every part filled in, to check templates against.
fn sample_session() -> SessionContext {
    SessionContext {
        problem: "Sample problem".to_owned(),
        flow: Some("Sample flow".to_owned()),
        timeline: vec!["09:00:00 Sample step".to_owned()],
        facts: vec!["Sample fact".to_owned()],
        active_fix: Some(FixProposal {
            title: "Sample fix".to_owned(),
            rationale: "Sample rationale".to_owned(),
            steps: vec!["Sample step".to_owned()],
            script: Some("Sample-Script".to_owned()),
            confidence: 50,
        }),
        ticket: Some(Ticket {
            id: "1".to_owned(),
            summary: "Sample ticket".to_owned(),
            company: Some("Sample company".to_owned()),
            contact: Some("Sample contact".to_owned()),
            board: Some("Sample board".to_owned()),
            status: Some("New".to_owned()),
            priority: Some("High".to_owned()),
            description: Some("Sample description".to_owned()),
        }),
        retrieved: vec![Citation {
            kind: CitationKind::Flow,
            id: "sample".to_owned(),
            title: "Sample".to_owned(),
            summary: "Sample summary".to_owned(),
            url: Some("https://example.invalid/f/sample".to_owned()),
            step: None,
        }],
        latest: Some("Sample message".to_owned()),
        turns_so_far: 1,
        resolution: Some("Sample resolution".to_owned()),
        ..SessionContext::default()
    }
}

fn sample_cluster() -> SessionCluster {
    SessionCluster {
        theme: "sample".to_owned(),
        sessions: vec![ResolvedSummary {
            session_id: SessionId::new(),
            problem: "Sample problem".to_owned(),
            resolution: "Sample resolution".to_owned(),
            steps: vec!["Sample step".to_owned()],
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rf_core::ai::CitedStep;
    use rf_core::ids::SessionId;

    /// The fixed, realistic session the snapshots show: a printer offline, two facts, an active
    /// fix, a pulled ticket, two citations and a latest message.
    fn printer() -> SessionContext {
        SessionContext {
            problem: "Printer on the 2nd floor shows offline for everyone".to_owned(),
            flow: Some("Printer shows offline or won't print".to_owned()),
            timeline: vec![
                "09:00 Jane started the session: \"Printer on the 2nd floor shows offline for everyone\"".to_owned(),
                "09:01 Jane pulled ticket #48213 from ConnectWise Manage".to_owned(),
                "09:02 Is the printer powered on and showing Ready? → Yes".to_owned(),
                "09:04 How is the printer added on this PC? → Print server".to_owned(),
                "09:06 Copilot suggested: Restart the Print Spooler on PRINT01".to_owned(),
                "09:07 Jane: the server queue shows 41 jobs, the oldest from 07:58".to_owned(),
            ],
            facts: vec![
                "HP-Floor2 answers ping at 10.0.20.15 from PRINT01".to_owned(),
                "Every user on the 2nd floor is affected; the 3rd floor prints fine".to_owned(),
            ],
            active_fix: Some(FixProposal {
                title: "Restart the Print Spooler on PRINT01 and clear the stuck jobs".to_owned(),
                rationale: "Everyone on one queue is affected while the printer answers: a stuck job is blocking the server queue.".to_owned(),
                steps: vec![
                    "Warn the 2nd floor that pending jobs will be cancelled".to_owned(),
                    "Stop the spooler, empty C:\\Windows\\System32\\spool\\PRINTERS, start it".to_owned(),
                    "Print a test page to HP-Floor2".to_owned(),
                ],
                script: Some("Stop-Service -Name Spooler -Force\nRemove-Item \"$env:SystemRoot\\System32\\spool\\PRINTERS\\*\" -Force\nStart-Service -Name Spooler".to_owned()),
                confidence: 70,
            }),
            ticket: Some(Ticket {
                id: "48213".to_owned(),
                summary: "2nd floor printer offline".to_owned(),
                company: Some("Acme Dental".to_owned()),
                contact: Some("Mary Jones".to_owned()),
                board: Some("Service Desk".to_owned()),
                status: Some("In Progress".to_owned()),
                priority: Some("Priority 2 - High".to_owned()),
                description: Some("Nobody on the 2nd floor can print since this morning. Printer shows offline on all PCs.".to_owned()),
            }),
            retrieved: vec![
                Citation {
                    kind: CitationKind::Flow,
                    id: "printer-offline".to_owned(),
                    title: "Printer shows offline or won't print".to_owned(),
                    summary: "Checks the printer, the network path, the port, the spooler and the driver, in that order.".to_owned(),
                    url: None,
                    step: Some(CitedStep {
                        id: "spooler".to_owned(),
                        text: "Restart the Print Spooler service".to_owned(),
                    }),
                },
                Citation {
                    kind: CitationKind::Session,
                    id: "0190a0a0-0000-7000-8000-000000000042".to_owned(),
                    title: "3rd floor printer offline after a power cut".to_owned(),
                    summary: "Cleared a corrupt job from the spool folder on PRINT01 and restarted the spooler.".to_owned(),
                    url: Some("https://rf.example.com/s/0190a0a0".to_owned()),
                    step: None,
                },
            ],
            latest: Some("Restarted the spooler like you said, queue is empty now but the PCs still show the printer offline".to_owned()),
            turns_so_far: 2,
            state_version: 7,
            resolution: None,
            ..SessionContext::default()
        }
    }

    fn cluster() -> SessionCluster {
        let id = |n: u32| {
            SessionId::parse(&format!("0190a0a0-0000-7000-8000-0000000000{n:02}")).unwrap()
        };
        SessionCluster {
            theme: "payfast timesheet sync".to_owned(),
            sessions: vec![
                ResolvedSummary {
                    session_id: id(1),
                    problem: "Payfast timesheet sync fails every night".to_owned(),
                    resolution: "Renewed the expired Payfast API token in the connector settings"
                        .to_owned(),
                    steps: vec![
                        "The sync log shows HTTP 401 since Monday".to_owned(),
                        "Fact: the API token expired on Sunday".to_owned(),
                    ],
                },
                ResolvedSummary {
                    session_id: id(2),
                    problem: "Timesheets not syncing to Payfast".to_owned(),
                    resolution:
                        "Started the stopped Payfast Connector service and set it to Automatic"
                            .to_owned(),
                    steps: vec!["The sync log has no entries since the server rebooted".to_owned()],
                },
                ResolvedSummary {
                    session_id: id(3),
                    problem: "payfast sync error for one site".to_owned(),
                    resolution: "Renewed the API token".to_owned(),
                    steps: Vec::new(),
                },
            ],
        }
    }

    /// All three parts of a prompt, for one snapshot.
    fn show(prompt: &RenderedPrompt) -> String {
        format!(
            "===== system =====\n{}\n===== context =====\n{}\n===== user =====\n{}\n",
            prompt.system, prompt.context, prompt.user
        )
    }

    #[test]
    fn the_turn_prompt() {
        let prompts = Prompts::embedded();
        insta::assert_snapshot!("turn", show(&prompts.render_turn(&printer()).unwrap()));
    }

    #[test]
    fn the_discovery_turn_prompt() {
        let prompts = Prompts::embedded();
        let context = SessionContext {
            problem: "Zorbix accounting app dies at launch with error 0xc0000142".to_owned(),
            timeline: vec!["09:00 Jane started the session".to_owned()],
            ..SessionContext::default()
        };
        insta::assert_snapshot!(
            "turn_discovery",
            show(&prompts.render_turn(&context).unwrap())
        );
    }

    #[test]
    fn the_note_prompt() {
        let prompts = Prompts::embedded();
        let context = SessionContext {
            resolution: Some(
                "Cleared the spool folder and restarted the spooler; test page printed".to_owned(),
            ),
            ..printer()
        };
        insta::assert_snapshot!("note", show(&prompts.render_note(&context).unwrap()));
    }

    #[test]
    fn the_assessment_prompt() {
        let prompts = Prompts::embedded();
        insta::assert_snapshot!(
            "assessment",
            show(&prompts.render_assessment(&printer()).unwrap())
        );
    }

    #[test]
    fn the_flow_builder_prompts() {
        let prompts = Prompts::embedded();
        let description = "A flow for resetting a user's MFA in Entra ID when they got a new phone";
        insta::assert_snapshot!(
            "flow_builder",
            show(&prompts.render_flow_builder(description, None).unwrap())
        );
        let retry = prompts
            .render_flow_builder(
                description,
                Some("draft.yaml: node `verify`: branch \"Yes\" points to `done`, which does not exist"),
            )
            .unwrap();
        insta::assert_snapshot!("flow_builder_retry_user", retry.user);
    }

    #[test]
    fn the_flywheel_prompt() {
        let prompts = Prompts::embedded();
        insta::assert_snapshot!(
            "flywheel",
            show(&prompts.render_flywheel(&cluster(), None).unwrap())
        );
    }

    #[test]
    fn stable_material_is_apart_from_what_changes() {
        let prompts = Prompts::embedded();
        let one = prompts.render_turn(&printer()).unwrap();
        let later = prompts
            .render_turn(&SessionContext {
                latest: Some("Still offline".to_owned()),
                timeline: vec!["10:00 something else".to_owned()],
                facts: vec!["A new fact".to_owned()],
                active_fix: None,
                turns_so_far: 5,
                ..printer()
            })
            .unwrap();
        assert_eq!(one.system, later.system, "the system prompt is cacheable");
        assert_eq!(one.context, later.context, "the context is cacheable");
        assert_ne!(one.user, later.user);
        assert!(one.context.contains("printer-offline") && one.context.contains("#48213"));
        assert!(one.user.contains("still show the printer offline"));
        assert!(!one.context.contains("still show the printer offline"));
        // The system prompt depends on the task only.
        let note = prompts.render_note(&printer()).unwrap();
        assert_ne!(note.system, one.system);
        assert_eq!(
            note.system,
            prompts
                .render_note(&SessionContext::default())
                .unwrap()
                .system
        );
    }

    #[test]
    fn every_prompt_renders_with_an_empty_session() {
        let prompts = Prompts::embedded();
        prompts.check().unwrap();
        let empty = prompts.render_turn(&SessionContext::default()).unwrap();
        assert!(empty.user.contains("Nothing yet"));
        assert!(empty.context.contains("No ticket has been pulled"));
    }

    #[test]
    fn the_version_is_the_files() {
        assert_eq!(Prompts::embedded().version(), VERSION.trim());
        assert!(!VERSION.trim().is_empty());
    }

    /// The example flow in the prompt passes the validator the drafts are checked with.
    #[test]
    fn the_example_flow_in_the_prompt_is_valid() {
        let format = FILES
            .iter()
            .find(|(name, _)| *name == "flow_format.md.j2")
            .map(|(_, source)| *source)
            .unwrap();
        let start = format.find("```yaml\n").unwrap() + "```yaml\n".len();
        let end = start + format[start..].find("```").unwrap();
        let flow = rf_core::flow::parse_flow_yaml("example.yaml", &format[start..end])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(flow.meta.slug, "teams-no-audio");
    }

    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir().join(format!(
                "rf-prompts-{name}-{}-{}",
                std::process::id(),
                SessionId::new()
            ));
            std::fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }

        fn write(&self, name: &str, text: &str) {
            std::fs::write(self.0.join(name), text).unwrap();
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn an_override_replaces_one_template() {
        let dir = TempDir::new("override");
        dir.write(
            "turn.md.j2",
            "{% block system %}{% endblock %}{% block context %}Problem: {{ session.problem }}{% endblock %}{% block user %}Only: {{ session.latest }}{% endblock %}",
        );
        dir.write("README.md", "not a template: ignored");
        let prompts = Prompts::with_overrides(&dir.0).unwrap();
        let turn = prompts.render_turn(&printer()).unwrap();
        assert_eq!(
            turn.context,
            "Problem: Printer on the 2nd floor shows offline for everyone"
        );
        assert!(turn.user.starts_with("Only: Restarted the spooler"));
        assert_eq!(
            turn.system,
            Prompts::embedded().render_turn(&printer()).unwrap().system
        );
        // The others are the built-in ones.
        assert_eq!(
            prompts.render_note(&printer()).unwrap(),
            Prompts::embedded().render_note(&printer()).unwrap()
        );
        let version = prompts.version().to_owned();
        assert!(
            version.starts_with(&format!("{}+local.", VERSION.trim())),
            "{version}"
        );
        // The directory's VERSION names the set.
        dir.write("VERSION", "acme-7\n");
        assert_eq!(
            Prompts::with_overrides(&dir.0).unwrap().version(),
            format!("{}+acme-7", VERSION.trim())
        );
    }

    #[test]
    fn an_empty_override_directory_changes_nothing() {
        let dir = TempDir::new("empty");
        let prompts = Prompts::with_overrides(&dir.0).unwrap();
        assert_eq!(prompts.version(), VERSION.trim());
        assert_eq!(
            prompts.render_turn(&printer()).unwrap(),
            Prompts::embedded().render_turn(&printer()).unwrap()
        );
    }

    #[test]
    fn a_broken_override_is_an_error_naming_the_file() {
        // Does not parse.
        let dir = TempDir::new("syntax");
        dir.write(
            "resolution_note.md.j2",
            "{% block user %}{% if %}{% endblock %}",
        );
        let error = Prompts::with_overrides(&dir.0).unwrap_err();
        assert!(matches!(error, PromptError::Syntax { .. }), "{error:?}");
        let message = error.to_string();
        assert!(message.contains("resolution_note.md.j2"), "{message}");
        assert!(message.contains("line 1"), "{message}");

        // Parses, but names a variable that does not exist (a typo).
        let dir = TempDir::new("typo");
        dir.write(
            "escalation_assessment.md.j2",
            "{% block system %}{% endblock %}{% block context %}{% endblock %}\n{% block user %}\n{{ session.problme }}{% endblock %}",
        );
        let error = Prompts::with_overrides(&dir.0).unwrap_err();
        assert!(matches!(error, PromptError::Render { .. }), "{error:?}");
        let message = error.to_string();
        assert!(message.contains("escalation_assessment.md.j2"), "{message}");
        assert!(
            message.contains(&dir.0.display().to_string()),
            "the override's path: {message}"
        );

        // A block missing.
        let dir = TempDir::new("block");
        dir.write(
            "flywheel.md.j2",
            "{% block user %}{{ cluster.theme }}{% endblock %}",
        );
        let message = Prompts::with_overrides(&dir.0).unwrap_err().to_string();
        assert!(message.contains("flywheel.md.j2"), "{message}");

        // A misspelt file name.
        let dir = TempDir::new("unknown");
        dir.write("sytem.md.j2", "You are…");
        let error = Prompts::with_overrides(&dir.0).unwrap_err();
        assert!(matches!(error, PromptError::Unknown { .. }), "{error:?}");
        assert!(error.to_string().contains("sytem.md.j2"));

        // A missing directory.
        let error = Prompts::with_overrides(Path::new("/nonexistent/rf-prompts")).unwrap_err();
        assert!(matches!(error, PromptError::Directory { .. }), "{error:?}");
    }

    #[test]
    fn an_override_of_a_shared_file_is_checked_too() {
        let dir = TempDir::new("shared");
        dir.write(
            "session.md.j2",
            "{% macro problem(session) %}{{ session.nope }}{% endmacro %}",
        );
        let message = Prompts::with_overrides(&dir.0).unwrap_err().to_string();
        assert!(message.contains("session.md.j2"), "{message}");
    }
}
