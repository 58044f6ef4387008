//! The console adapter: ResolutionFlow in a terminal, driving the real engine the way Slack does.
//!
//! `/rf <problem>` opens a thread and starts a session in it; the bot's buttons print as numbered
//! choices (type the number, or the label); anything else is a message in the current thread.
//! `/as <name> [role]` switches who is typing, so one person can play junior and senior. Output is
//! plain text, so transcripts can be scripted through piped stdin and compared in tests.
#![forbid(unsafe_code)]

use rf_core::domain::{
    Actor, ChatIdentity, InstallationRef, Platform, Role, RoleAssignment, ThreadKey,
};
use rf_core::effect::{Block, Choice, Effect, Message};
use rf_core::engine::{CommandOutcome, Engine, Input};
use rf_core::session::SessionFilter;
use std::collections::HashMap;
use std::fmt::Write as _;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};

/// The installation id of the local console.
pub const CONSOLE_WORKSPACE: &str = "local";
/// How the console spells the command (as Slack's `/rf`).
const COMMAND: &str = "/rf";
const DEFAULT_CHANNEL: &str = "#helpdesk";

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

/// The console: who is typing, where, and what the bot last offered.
#[derive(Debug)]
pub struct Console {
    engine: Engine,
    installation: InstallationRef,
    actor: Actor,
    channel: String,
    threads: Vec<ThreadInfo>,
    current: Option<usize>,
    /// The buttons last shown in each thread, by thread key.
    choices: HashMap<String, Vec<Choice>>,
}

const HELP: &str = "Console commands:
  /rf <problem>          start a troubleshooting session in a new thread
  /rf help               the bot's own help (flows, roles, thread commands)
  /rf flows [search]     search the flow library
  /rf <thread command>   e.g. /rf export md; in a thread you can also type it bare: export md
  <number> [text]        press the numbered button (text goes in its input field, e.g. checklist output)
  <label>                press the button with that label
  anything else          a message in the current thread
  /as <name> [role]      act as someone else (roles: owner, admin, engineer, viewer)
  /threads               list sessions; /thread <n> switches to one
  /channel <name>        switch channel
  /whoami                who and where you are
  /help                  this help
  /quit                  leave";

impl Console {
    /// A console acting as `name` with `role` in the console installation (which must exist).
    pub async fn new(engine: Engine, name: &str, role: Role) -> Result<Self, String> {
        let installation = InstallationRef {
            platform: Platform::Console,
            external_id: CONSOLE_WORKSPACE.to_owned(),
        };
        let actor = identify(&engine, &installation, name, RoleAssignment::Always(role)).await?;
        Ok(Self {
            engine,
            installation,
            actor,
            channel: DEFAULT_CHANNEL.to_owned(),
            threads: Vec::new(),
            current: None,
            choices: HashMap::new(),
        })
    }

    /// The prompt for interactive use: `[#helpdesk › thread 2] jane (engineer)> `.
    pub fn prompt(&self) -> String {
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
        let line = line.trim();
        if line.is_empty() {
            return (out, Flow::Continue);
        }
        let result = self.dispatch(line, &mut out).await;
        if let Err(message) = result {
            let _ = writeln!(out, "! {message}");
        }
        let flow = if matches!(line, "/quit" | "/exit") {
            Flow::Quit
        } else {
            Flow::Continue
        };
        (out, flow)
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
            "/channel" => {
                let name = rest.trim_start_matches('#');
                if name.is_empty() {
                    return Err("Usage: /channel <name>".to_owned());
                }
                self.channel = format!("#{name}");
                self.current = None;
                let _ = writeln!(out, "Now in {}.", self.channel);
                Ok(())
            }
            "/threads" => self.list_threads(out).await,
            "/thread" => self.switch_thread(rest, out),
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
            .ok_or("Usage: /as <name> [owner|admin|engineer|viewer]")?;
        let assignment = match parts.next() {
            Some(role) => RoleAssignment::Always(role.parse::<Role>().map_err(|e| e.to_string())?),
            None => RoleAssignment::IfNew(Role::Engineer),
        };
        self.actor = identify(&self.engine, &self.installation, name, assignment).await?;
        let _ = writeln!(
            out,
            "You are now {} ({}).",
            self.actor.display_name, self.actor.role
        );
        Ok(())
    }

    async fn list_threads(&mut self, out: &mut String) -> Result<(), String> {
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

    fn switch_thread(&mut self, rest: &str, out: &mut String) -> Result<(), String> {
        let n: usize = rest
            .parse()
            .map_err(|_| "Usage: /thread <number> (see /threads)".to_owned())?;
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

    async fn rf(&mut self, text: &str, out: &mut String) -> Result<(), String> {
        // Inside a session thread, `/rf export md` and friends are thread commands.
        let thread_command = rf_core::command::parse_thread_command(text)
            .is_some_and(|parsed| parsed != Ok(rf_core::command::ThreadCommand::Help));
        if let Some(thread) = self.current_thread()
            && thread_command
        {
            return self.send(&thread, Input::Text(text.to_owned()), out).await;
        }
        let outcome = self
            .engine
            .command(&self.actor, text, COMMAND)
            .await
            .map_err(|e| e.user_message())?;
        match outcome {
            CommandOutcome::Respond(message) => render(out, "", &message, None),
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
        let thread = self
            .current_thread()
            .ok_or("You're not in a session thread. Start one with /rf <problem>, or /threads to pick one.")?;
        let (first, rest) = match line.split_once(char::is_whitespace) {
            Some((first, rest)) => (first, Some(rest.trim().to_owned())),
            None => (line, None),
        };
        let offered = self.choices.get(&thread.lock_key());
        let pressed = match (first.parse::<usize>(), offered) {
            (Ok(n), Some(choices)) if n >= 1 && n <= choices.len() => {
                Some((choices[n - 1].clone(), rest))
            }
            _ => None,
        };
        let input = match pressed {
            Some((choice, input)) => {
                let _ = writeln!(out, "  → {}", choice.label);
                Input::Action {
                    action: choice.action,
                    input,
                }
            }
            None => Input::Text(line.to_owned()),
        };
        self.send(&thread, input, out).await
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
                    let choices: Vec<Choice> = message.all_choices().cloned().collect();
                    render(out, &prefix, &message, Some(&choices));
                    if !choices.is_empty() {
                        self.choices.insert(thread.lock_key(), choices);
                    }
                }
                Effect::Post { channel, message } => {
                    render(out, &format!("[{}] ", channel.channel), &message, None);
                }
                Effect::Private { message, .. } => {
                    render(out, "(only you can see this) ", &message, None)
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
}

async fn identify(
    engine: &Engine,
    installation: &InstallationRef,
    name: &str,
    role: RoleAssignment,
) -> Result<Actor, String> {
    let identity = ChatIdentity {
        platform: Platform::Console,
        platform_user_id: name.to_lowercase(),
        display_name: name.to_owned(),
        email: None,
    };
    engine
        .identify(installation, &identity, role)
        .await
        .map_err(|e| e.user_message())
}

/// Prints a message: text blocks as lines, buttons as numbered choices.
fn render(out: &mut String, prefix: &str, message: &Message, numbered: Option<&[Choice]>) {
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
                let _ = writeln!(out, "{}» {text}", lead());
            }
            Block::Text { text } => {
                for line in text.lines() {
                    let _ = writeln!(out, "{}{line}", lead());
                }
            }
            Block::Context { text } => {
                let _ = writeln!(out, "{}({text})", lead());
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
                    let _ = writeln!(out, "{}  • {item}", lead());
                }
            }
            Block::Choices { choices, input } => {
                for choice in choices {
                    if numbered.is_some() {
                        number += 1;
                        let _ = writeln!(out, "{}  [{number}] {}", lead(), choice.label);
                    } else {
                        let _ = writeln!(out, "{}  [{}]", lead(), choice.label);
                    }
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
/// as a transcript.
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
    }
    loop {
        if interactive {
            writer.write_all(console.prompt().as_bytes()).await?;
            writer.flush().await?;
        }
        let Some(line) = lines.next_line().await? else {
            break;
        };
        if !interactive && !line.trim().is_empty() {
            writer
                .write_all(format!("{}{}\n", console.prompt(), line.trim()).as_bytes())
                .await?;
        }
        let (output, flow) = console.handle_line(&line).await;
        writer.write_all(output.as_bytes()).await?;
        writer.flush().await?;
        if flow == Flow::Quit {
            break;
        }
    }
    Ok(())
}
