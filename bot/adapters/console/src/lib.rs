//! The console adapter: ResolutionFlow in a terminal, driving the real engine the way Slack does.
//!
//! `/rf <problem>` opens a thread and starts a session in it; the bot's buttons print as numbered
//! choices (type the number, or the label); anything else is a message in the current thread.
//! `/as <name> [role]` switches who is typing, so one person can play junior and seniors.
//! `/channel escalations` shows the escalation cards. Output is plain text, so transcripts can be
//! scripted through piped stdin and compared in tests.
#![forbid(unsafe_code)]

mod board;

pub use board::{Arrival, Board, ConsoleNotifier};

use rf_core::domain::{
    Actor, ChannelRef, ChatIdentity, InstallationRef, Platform, Role, RoleAssignment, ThreadKey,
};
use rf_core::effect::{
    Block, Choice, Effect, FieldInput, Form, FormSubmission, Message, Place, plain_markup,
};
use rf_core::engine::{CommandOutcome, Engine, Input};
use rf_core::session::SessionFilter;
use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};

/// The installation id of the local console.
pub const CONSOLE_WORKSPACE: &str = "local";
/// The channel escalation cards go to in the console.
pub const ESCALATION_CHANNEL: &str = "#escalations";
/// How the console spells the command (as Slack's `/rf`).
const COMMAND: &str = "/rf";
const DEFAULT_CHANNEL: &str = "#helpdesk";

/// Runs the background work that is due (so a script sees cards before its next line).
pub type Settle = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// What happened to a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Quit,
}

/// A thread the console knows about.
#[derive(Debug, Clone)]
struct ThreadInfo {
    key: ThreadKey,
    title: String,
}

/// A form being filled in, one field per line.
#[derive(Debug, Clone)]
struct FormInProgress {
    form: Form,
    place: Place,
    values: Vec<(String, String)>,
}

/// The console: who is typing, where, and what the bot last offered.
pub struct Console {
    engine: Engine,
    installation: InstallationRef,
    board: Board,
    settle: Option<Settle>,
    actor: Actor,
    channel: String,
    threads: Vec<ThreadInfo>,
    current: Option<usize>,
    /// The buttons printed last, and where they were pressed from.
    choices: Vec<Choice>,
    choices_place: Option<Place>,
    form: Option<FormInProgress>,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console")
            .field("actor", &self.actor.display_name)
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

const HELP: &str = "Console commands:
  /rf <problem>          start a troubleshooting session in a new thread
  /rf help               the bot's own help (flows, queue, roles, thread commands)
  /rf flows [search]     search the flow library
  /rf <thread command>   e.g. /rf export md; in a thread you can also type it bare: export md
  <number> [text]        press a button from the last message shown (text goes in its input field)
  <label>                press the button with that label
  anything else          a message in the current thread
  /as <name> [role] [email]  act as someone else (roles: owner, admin, engineer, viewer)
  /channel <name>        switch channel and show its messages (e.g. /channel escalations)
  /threads, /thread <n>  list sessions, switch thread
  /whoami                who and where you are
  /help                  this help
  /quit                  leave";

impl Console {
    /// A console acting as `name` with `role` in the console installation (which must exist),
    /// showing what `notifier` (the console's notifier in the dispatcher) posts.
    pub async fn new(
        engine: Engine,
        notifier: ConsoleNotifier,
        name: &str,
        role: Role,
    ) -> Result<Self, String> {
        let installation = InstallationRef {
            platform: Platform::Console,
            external_id: CONSOLE_WORKSPACE.to_owned(),
        };
        let actor = identify(
            &engine,
            &installation,
            name,
            None,
            RoleAssignment::Always(role),
        )
        .await?;
        let board = notifier.board();
        Ok(Self {
            engine,
            installation,
            board,
            settle: None,
            actor,
            channel: DEFAULT_CHANNEL.to_owned(),
            threads: Vec::new(),
            current: None,
            choices: Vec::new(),
            choices_place: None,
            form: None,
        })
    }

    /// Runs due background work before each line's output is printed.
    pub fn with_settle(mut self, settle: Settle) -> Self {
        self.settle = Some(settle);
        self
    }

    /// The prompt: `[#helpdesk › thread 2] jane (engineer)> `.
    pub fn prompt(&self) -> String {
        if let Some(form) = &self.form {
            let field = &form.form.fields[form.values.len()];
            return match &field.input {
                FieldInput::Select { options, default } => format!(
                    "  {} [{}] ({default})> ",
                    field.label,
                    options
                        .iter()
                        .map(|(v, _)| v.as_str())
                        .collect::<Vec<_>>()
                        .join("/")
                ),
                FieldInput::Text { .. } => format!("  {}> ", field.label),
            };
        }
        let place = match self.current {
            Some(i) => format!("{} › thread {}", self.threads[i].key.channel, i + 1),
            None => self.channel.clone(),
        };
        format!(
            "[{place}] {} ({})> ",
            self.actor.display_name, self.actor.role
        )
    }

    /// Handles one line of input; returns what to print.
    pub async fn handle_line(&mut self, line: &str) -> (String, Flow) {
        let mut out = String::new();
        let trimmed = line.trim();
        // Work that came due since the last line runs first, so commands see the current state.
        self.settle().await;
        if self.form.is_some() {
            if let Err(message) = self.form_answer(trimmed, &mut out).await {
                let _ = writeln!(out, "! {message}");
            }
        } else if !trimmed.is_empty()
            && let Err(message) = self.dispatch(trimmed, &mut out).await
        {
            let _ = writeln!(out, "! {message}");
        }
        self.print_arrivals(&mut out).await;
        let flow = if self.form.is_none() && matches!(trimmed, "/quit" | "/exit") {
            Flow::Quit
        } else {
            Flow::Continue
        };
        (out, flow)
    }

    async fn settle(&self) {
        if let Some(settle) = &self.settle {
            settle().await;
        }
    }

    /// Prints whatever the background work posted meanwhile.
    pub async fn print_arrivals(&mut self, out: &mut String) {
        self.settle().await;
        for arrival in self.board.take_arrivals() {
            let prefix = match &arrival.note {
                Some(note) => format!("[{}] ({note}) ", arrival.label),
                None => format!("[{}] ", arrival.label),
            };
            let place = if arrival.label.starts_with('#') && !arrival.label.ends_with(" thread") {
                Some(Place::from(&self.channel_ref(&arrival.label)))
            } else {
                self.current_thread().map(|t| Place::from(&t))
            };
            self.show(out, &prefix, &arrival.message, place);
        }
    }

    fn channel_ref(&self, channel: &str) -> ChannelRef {
        ChannelRef {
            platform: Platform::Console,
            workspace: CONSOLE_WORKSPACE.to_owned(),
            channel: channel.to_owned(),
        }
    }

    async fn dispatch(&mut self, line: &str, out: &mut String) -> Result<(), String> {
        let (word, rest) = match line.split_once(char::is_whitespace) {
            Some((word, rest)) => (word, rest.trim()),
            None => (line, ""),
        };
        match word {
            "/quit" | "/exit" => Ok(()),
            "/help" => {
                let _ = writeln!(out, "{HELP}");
                Ok(())
            }
            "/whoami" => {
                let _ = writeln!(
                    out,
                    "You are {} ({}) in {}.",
                    self.actor.display_name,
                    self.actor.role,
                    self.where_()
                );
                Ok(())
            }
            "/as" => self.switch_actor(rest, out).await,
            "/channel" => self.switch_channel(rest, out),
            "/threads" => self.list_threads(out).await,
            "/thread" => self.switch_thread(rest, out).await,
            COMMAND => self.rf(rest, out).await,
            _ if word.starts_with('/') => Err(format!("Unknown command {word}. Type /help.")),
            _ => self.text(line, out).await,
        }
    }

    fn where_(&self) -> String {
        match self.current {
            Some(i) => format!(
                "{} (thread {}: {})",
                self.threads[i].key.channel,
                i + 1,
                self.threads[i].title
            ),
            None => self.channel.clone(),
        }
    }

    async fn switch_actor(&mut self, rest: &str, out: &mut String) -> Result<(), String> {
        let mut parts = rest.split_whitespace();
        let name = parts
            .next()
            .ok_or("Usage: /as <name> [owner|admin|engineer|viewer] [email]")?;
        let mut assignment = RoleAssignment::IfNew(Role::Engineer);
        let mut email = None;
        for part in parts {
            if part.contains('@') {
                email = Some(part.to_owned());
            } else {
                assignment =
                    RoleAssignment::Always(part.parse::<Role>().map_err(|e| e.to_string())?);
            }
        }
        self.actor = identify(&self.engine, &self.installation, name, email, assignment).await?;
        let _ = writeln!(
            out,
            "You are now {} ({}).",
            self.actor.display_name, self.actor.role
        );
        Ok(())
    }

    fn switch_channel(&mut self, rest: &str, out: &mut String) -> Result<(), String> {
        let name = rest.trim_start_matches('#');
        if name.is_empty() {
            return Err("Usage: /channel <name>".to_owned());
        }
        self.channel = format!("#{name}");
        self.current = None;
        // The listing shows this channel's news; print the rest of what arrived.
        let (here, elsewhere): (Vec<Arrival>, Vec<Arrival>) = self
            .board
            .take_arrivals()
            .into_iter()
            .partition(|a| a.label == self.channel);
        drop(here);
        for arrival in elsewhere {
            self.show(
                out,
                &format!("[{}] ", arrival.label),
                &arrival.message,
                None,
            );
        }
        let messages = self.board.channel(&self.channel);
        let _ = writeln!(
            out,
            "Now in {} ({} message{}).",
            self.channel,
            messages.len(),
            if messages.len() == 1 { "" } else { "s" }
        );
        let place = Place::from(&self.channel_ref(&self.channel));
        for message in messages.iter().rev().take(5).rev() {
            self.show(out, "", message, Some(place.clone()));
        }
        Ok(())
    }

    async fn list_threads(&mut self, out: &mut String) -> Result<(), String> {
        self.load_threads().await?;
        if self.threads.is_empty() {
            let _ = writeln!(out, "No sessions yet. Start one: /rf <problem>");
        }
        for (i, thread) in self.threads.iter().enumerate() {
            let marker = if Some(i) == self.current { "*" } else { " " };
            let _ = writeln!(
                out,
                "{marker} {}. {} {}",
                i + 1,
                thread.key.channel,
                thread.title
            );
        }
        Ok(())
    }

    /// Adds the console's sessions in the database (earlier runs too) to the threads known here.
    async fn load_threads(&mut self) -> Result<(), String> {
        let sessions = self
            .engine
            .store()
            .list_sessions(
                self.actor.account_id,
                &SessionFilter {
                    status: None,
                    limit: 20,
                },
            )
            .await
            .map_err(|e| e.to_string())?;
        for session in sessions.into_iter().rev() {
            if session.thread.platform == Platform::Console
                && !self.threads.iter().any(|t| t.key == session.thread)
            {
                self.threads.push(ThreadInfo {
                    key: session.thread.clone(),
                    title: session.problem.clone(),
                });
            }
        }
        Ok(())
    }

    async fn switch_thread(&mut self, rest: &str, out: &mut String) -> Result<(), String> {
        let n: usize = rest
            .parse()
            .map_err(|_| "Usage: /thread <number> (see /threads)".to_owned())?;
        if n > self.threads.len() {
            // Numbers are those /threads shows, sessions of earlier runs included.
            self.load_threads().await?;
        }
        if n == 0 || n > self.threads.len() {
            return Err(format!("There is no thread {n}; /threads lists them."));
        }
        self.current = Some(n - 1);
        self.channel = self.threads[n - 1].key.channel.clone();
        let _ = writeln!(out, "Now in thread {n}: {}", self.threads[n - 1].title);
        Ok(())
    }

    fn current_thread(&self) -> Option<ThreadKey> {
        self.current.map(|i| self.threads[i].key.clone())
    }

    fn here(&self) -> Place {
        match self.current_thread() {
            Some(thread) => Place::from(&thread),
            None => Place::from(&self.channel_ref(&self.channel)),
        }
    }

    async fn rf(&mut self, text: &str, out: &mut String) -> Result<(), String> {
        // Inside a session thread, `/rf export md` and friends are thread commands.
        let thread_command = rf_core::command::parse_thread_command(text)
            .is_some_and(|parsed| parsed != Ok(rf_core::command::ThreadCommand::Help));
        if let Some(thread) = self.current_thread()
            && thread_command
        {
            return self.send(&thread, Input::Text(text.to_owned()), out).await;
        }
        let here = self.here().channel;
        let outcome = self
            .engine
            .command(&self.actor, &here, text, COMMAND)
            .await
            .map_err(|e| e.user_message())?;
        match outcome {
            CommandOutcome::Respond(message) => self.show(out, "", &message, None),
            CommandOutcome::StartSession { problem } => {
                let key = ThreadKey {
                    platform: Platform::Console,
                    workspace: CONSOLE_WORKSPACE.to_owned(),
                    channel: self.channel.clone(),
                    // Like a Slack `ts`: unique across restarts, sortable.
                    thread: format!(
                        "{}.{:03}",
                        self.engine.now().as_millis(),
                        self.threads.len()
                    ),
                };
                self.threads.push(ThreadInfo {
                    key: key.clone(),
                    title: problem.clone(),
                });
                self.current = Some(self.threads.len() - 1);
                let _ = writeln!(
                    out,
                    "── thread {} in {} ──",
                    self.threads.len(),
                    key.channel
                );
                let effects = self
                    .engine
                    .start(&self.actor, key, &problem)
                    .await
                    .map_err(|e| e.user_message())?;
                self.apply(effects, out);
            }
        }
        Ok(())
    }

    async fn text(&mut self, line: &str, out: &mut String) -> Result<(), String> {
        let (first, rest) = match line.split_once(char::is_whitespace) {
            Some((first, rest)) => (first, Some(rest.trim().to_owned())),
            None => (line, None),
        };
        let pressed = match first.parse::<usize>() {
            Ok(n) if n >= 1 && n <= self.choices.len() => Some((self.choices[n - 1].clone(), rest)),
            _ => self
                .choices
                .iter()
                .find(|c| c.label.eq_ignore_ascii_case(line) && self.current.is_none())
                .map(|c| (c.clone(), None)),
        };
        if let Some((choice, input)) = pressed {
            let _ = writeln!(out, "  → {}", choice.label);
            let place = self.choices_place.clone().unwrap_or_else(|| self.here());
            let effects = self
                .engine
                .press(&self.actor, &place, choice.action, input)
                .await
                .map_err(|e| e.user_message())?;
            self.apply(effects, out);
            return Ok(());
        }
        let thread = self
            .current_thread()
            .ok_or("You're not in a session thread. Start one with /rf <problem>, or /threads to pick one.")?;
        self.send(&thread, Input::Text(line.to_owned()), out).await
    }

    async fn send(
        &mut self,
        thread: &ThreadKey,
        input: Input,
        out: &mut String,
    ) -> Result<(), String> {
        let effects = self
            .engine
            .handle(&self.actor, thread, input)
            .await
            .map_err(|e| e.user_message())?;
        self.apply(effects, out);
        Ok(())
    }

    async fn form_answer(&mut self, line: &str, out: &mut String) -> Result<(), String> {
        let Some(mut form) = self.form.take() else {
            return Ok(());
        };
        let field = form.form.fields[form.values.len()].clone();
        let value = match &field.input {
            FieldInput::Select { options, default } => {
                let wanted = if line.is_empty() {
                    default.as_str()
                } else {
                    line
                };
                match options
                    .iter()
                    .find(|(v, l)| v.eq_ignore_ascii_case(wanted) || l.eq_ignore_ascii_case(wanted))
                {
                    Some((value, _)) => value.clone(),
                    None => {
                        self.form = Some(form);
                        return Err(format!(
                            "Choose one of: {}",
                            options
                                .iter()
                                .map(|(v, _)| v.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ));
                    }
                }
            }
            FieldInput::Text { .. } => {
                if line.is_empty() && field.required {
                    self.form = Some(form);
                    return Err(format!("{} is required.", field.label));
                }
                line.to_owned()
            }
        };
        form.values.push((field.id.clone(), value));
        if form.values.len() < form.form.fields.len() {
            self.form = Some(form);
            return Ok(());
        }
        let submission = FormSubmission {
            kind: form.form.kind.clone(),
            values: form.values,
        };
        let effects = self
            .engine
            .submit(&self.actor, &form.place, submission)
            .await
            .map_err(|e| e.user_message())?;
        self.apply(effects, out);
        Ok(())
    }

    fn apply(&mut self, effects: Vec<Effect>, out: &mut String) {
        let current = self.current_thread();
        for effect in effects {
            match effect {
                Effect::Reply { thread, message } => {
                    let prefix = if Some(&thread) == current.as_ref() {
                        String::new()
                    } else {
                        format!("[{} thread] ", thread.channel)
                    };
                    self.show(out, &prefix, &message, Some(Place::from(&thread)));
                }
                Effect::Post { channel, message } => {
                    self.show(
                        out,
                        &format!("[{}] ", channel.channel),
                        &message,
                        Some(Place::from(&channel)),
                    );
                }
                Effect::Private { message, place, .. } => {
                    self.show(out, "(only you can see this) ", &message, Some(place));
                }
                Effect::OpenForm { form, place, .. } => {
                    let _ = writeln!(
                        out,
                        "── {} ── (answer each question; an empty line takes the default)",
                        form.title
                    );
                    self.form = Some(FormInProgress {
                        form,
                        place,
                        values: Vec::new(),
                    });
                }
                Effect::Acknowledge { .. } => {
                    let _ = writeln!(out, "  ✓ recorded");
                }
                Effect::Document { document, .. } => {
                    let _ = writeln!(out, "──── {} ────", document.filename);
                    out.push_str(&document.content);
                    if !document.content.ends_with('\n') {
                        out.push('\n');
                    }
                    let _ = writeln!(out, "──── end of {} ────", document.filename);
                }
            }
        }
    }

    /// Prints a message; its buttons become the numbered choices.
    fn show(&mut self, out: &mut String, prefix: &str, message: &Message, place: Option<Place>) {
        let choices: Vec<Choice> = message.all_choices().cloned().collect();
        render(out, prefix, message);
        if !choices.is_empty() {
            self.choices = choices;
            self.choices_place = place;
        }
    }
}

async fn identify(
    engine: &Engine,
    installation: &InstallationRef,
    name: &str,
    email: Option<String>,
    role: RoleAssignment,
) -> Result<Actor, String> {
    let identity = ChatIdentity {
        platform: Platform::Console,
        platform_user_id: name.to_lowercase(),
        display_name: name.to_owned(),
        email,
    };
    engine
        .identify(installation, &identity, role)
        .await
        .map_err(|e| e.user_message())
}

/// Prints a message: text blocks as lines, buttons as numbered choices.
fn render(out: &mut String, prefix: &str, message: &Message) {
    let mut first = true;
    let mut lead = || {
        let lead = if first {
            format!("bot> {prefix}")
        } else {
            "     ".to_owned()
        };
        first = false;
        lead
    };
    let mut number = 0;
    for block in &message.blocks {
        match block {
            Block::Heading { text } => {
                let _ = writeln!(out, "{}» {}", lead(), plain_markup(text));
            }
            Block::Text { text } => {
                for line in plain_markup(text).lines() {
                    let _ = writeln!(out, "{}{line}", lead());
                }
            }
            Block::Context { text } => {
                let _ = writeln!(out, "{}({})", lead(), plain_markup(text));
            }
            Block::Code { text } => {
                for line in text.lines() {
                    let _ = writeln!(out, "{}    $ {line}", lead());
                }
            }
            Block::Fields { fields } => {
                for (label, value) in fields {
                    let _ = writeln!(out, "{}{label}: {value}", lead());
                }
            }
            Block::List { items } => {
                for item in items {
                    let _ = writeln!(out, "{}  • {}", lead(), plain_markup(item));
                }
            }
            Block::Choices { choices, input } => {
                for choice in choices {
                    number += 1;
                    let _ = writeln!(out, "{}  [{number}] {}", lead(), choice.label);
                }
                if let Some(input) = input {
                    let _ = writeln!(
                        out,
                        "{}  (type the number, then optionally: {input})",
                        lead()
                    );
                }
            }
        }
    }
}

/// Runs the console over a reader (stdin) and writer (stdout) until EOF or `/quit`.
/// When not `interactive` (piped input), each line is echoed after the prompt, so the output reads
/// as a transcript. When interactive, cards and notices that arrive meanwhile are printed as they
/// come.
pub async fn run<R, W>(
    mut console: Console,
    reader: R,
    mut writer: W,
    interactive: bool,
) -> std::io::Result<()>
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut lines = reader.lines();
    if interactive {
        writer
            .write_all(b"ResolutionFlow console. /help for commands, /rf <problem> to start.\n")
            .await?;
        writer.write_all(console.prompt().as_bytes()).await?;
        writer.flush().await?;
    }
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            line = lines.next_line() => {
                let Some(line) = line? else { break };
                if !interactive && (!line.trim().is_empty() || console.form.is_some()) {
                    writer.write_all(format!("{}{}\n", console.prompt(), line.trim()).as_bytes()).await?;
                }
                let (output, flow) = console.handle_line(&line).await;
                writer.write_all(output.as_bytes()).await?;
                if flow == Flow::Quit {
                    break;
                }
                if interactive {
                    writer.write_all(console.prompt().as_bytes()).await?;
                }
                writer.flush().await?;
            }
            _ = tick.tick(), if interactive => {
                let mut output = String::new();
                console.print_arrivals(&mut output).await;
                if !output.is_empty() {
                    writer.write_all(b"\n").await?;
                    writer.write_all(output.as_bytes()).await?;
                    writer.write_all(console.prompt().as_bytes()).await?;
                    writer.flush().await?;
                }
            }
        }
    }
    Ok(())
}
