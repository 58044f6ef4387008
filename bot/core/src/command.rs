//! The words technicians type: `/rf …` commands and commands inside a session thread.
//!
//! Parsing lives here so every platform understands exactly the same commands.

use crate::domain::{Priority, Role};
use crate::effect::ExportFormat;

/// A command typed inside a session thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ThreadCommand {
    /// List the confirmed facts.
    Facts,
    Fact(String),
    Note(String),
    Ticket(String),
    /// Preview the session note for the linked ticket, with a button that posts it.
    Push,
    /// Preview the four-section resolution note.
    Preview,
    Park(Option<String>),
    /// Escalate to a senior; without a reason the form opens.
    Escalate {
        priority: Option<Priority>,
        reason: Option<String>,
    },
    Resume,
    Resolve(Option<String>),
    Export(ExportFormat),
    /// Show where the session stands again.
    Status,
    /// A private link to the session's page in the web companion.
    Link,
    Help,
}

/// A `/rf …` command (the text after the command name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopCommand {
    Help,
    /// Search the flow library.
    Flows(String),
    /// Change a user's role: `role @user engineer`.
    Role {
        user: String,
        role: Role,
    },
    /// Make this channel the team's escalation channel (admins).
    EscalationsHere,
    /// The open escalations.
    Queue,
    /// A private link to the metrics page.
    Metrics,
    /// Whether the team has a PSA connection.
    Psa,
    /// Credit a user's ticket notes to a PSA member: `psa map @user jdoe`.
    PsaMap {
        user: String,
        member: String,
    },
    /// Have the AI draft a flow from a description: `flow build <description>`.
    FlowBuild(String),
    /// Start a session about this problem.
    Start(String),
    /// The command was recognised but used wrongly; the text says how to use it.
    Invalid(String),
}

pub const THREAD_HELP: &str = "In a session thread you can type:\n\
• `note <text>`: add a note to the ticket documentation\n\
• `fact <text>`: record something you have confirmed\n\
• `facts`: list the confirmed facts\n\
• `ticket <number>`: link the PSA ticket (its details are pulled in)\n\
• `push`: preview the session note and post it to the linked ticket\n\
• `preview`: the resolution note (Problem / What we confirmed / Root cause / Resolution)\n\
• `park [reason]`: hand the session back to the team; anyone can `resume` it\n\
• `escalate [low|normal|high|urgent] [reason]`: ask a senior; without a reason, a form opens\n\
• `resume`: pick up a parked session\n\
• `resolve [summary]`: close the session as fixed\n\
• `export md|txt|html`: get the ticket note\n\
• `status`: show the current step again\n\
• `link`: a private link to this session's timeline in the web companion\n\
Anything else you type is recorded in the session timeline.";

/// Reads a thread message as a command. `None`: it is ordinary text, to be recorded.
/// `Some(Err(usage))`: it looked like a command but was used wrongly.
pub fn parse_thread_command(text: &str) -> Option<Result<ThreadCommand, String>> {
    let text = text.trim();
    let (word, rest) = match text.split_once(char::is_whitespace) {
        Some((word, rest)) => (word, rest.trim()),
        None => (text, ""),
    };
    let rest_opt = (!rest.is_empty()).then(|| rest.to_owned());
    let command = match word.to_ascii_lowercase().as_str() {
        "facts" if rest.is_empty() => ThreadCommand::Facts,
        "fact" if !rest.is_empty() => ThreadCommand::Fact(rest.to_owned()),
        "note" if !rest.is_empty() => ThreadCommand::Note(rest.to_owned()),
        "ticket" => {
            let number = rest.trim_start_matches('#');
            let plausible = number.chars().any(|c| c.is_ascii_digit())
                && number
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
            if !plausible {
                return Some(Err(
                    "Usage: `ticket <number>`, e.g. `ticket 12345`".to_owned()
                ));
            }
            ThreadCommand::Ticket(number.to_owned())
        }
        "push" if rest.is_empty() => ThreadCommand::Push,
        "preview" if rest.is_empty() => ThreadCommand::Preview,
        "park" => ThreadCommand::Park(rest_opt),
        "escalate" => {
            let (priority, reason) = match rest.split_once(char::is_whitespace) {
                Some((first, tail)) => match first.parse::<Priority>() {
                    Ok(priority) => (Some(priority), Some(tail.trim().to_owned())),
                    Err(_) => (None, Some(rest.to_owned())),
                },
                None => match rest.parse::<Priority>() {
                    Ok(priority) => (Some(priority), None),
                    Err(_) => (None, rest_opt.clone()),
                },
            };
            ThreadCommand::Escalate {
                priority,
                reason: reason.filter(|r| !r.is_empty()),
            }
        }
        "resume" if rest.is_empty() => ThreadCommand::Resume,
        "resolve" | "resolved" => ThreadCommand::Resolve(rest_opt),
        "export" => match rest {
            "" => ThreadCommand::Export(ExportFormat::Markdown),
            format => match ExportFormat::parse(format) {
                Some(format) => ThreadCommand::Export(format),
                None => {
                    return Some(Err(format!(
                        "I can export `md`, `txt` or `html`, not `{format}`."
                    )));
                }
            },
        },
        "status" if rest.is_empty() => ThreadCommand::Status,
        "link" if rest.is_empty() => ThreadCommand::Link,
        "help" if rest.is_empty() => ThreadCommand::Help,
        _ => return None,
    };
    Some(Ok(command))
}

/// Reads the text after `/rf`.
pub fn parse_top_command(text: &str) -> TopCommand {
    let text = text.trim();
    let (word, rest) = match text.split_once(char::is_whitespace) {
        Some((word, rest)) => (word, rest.trim()),
        None => (text, ""),
    };
    match word.to_ascii_lowercase().as_str() {
        "" | "help" if rest.is_empty() => TopCommand::Help,
        "flows" => TopCommand::Flows(rest.to_owned()),
        "flow" => match rest.split_once(char::is_whitespace) {
            Some((verb, description))
                if verb.eq_ignore_ascii_case("build") && !description.trim().is_empty() =>
            {
                TopCommand::FlowBuild(description.trim().to_owned())
            }
            _ => TopCommand::Invalid(
                "Usage: `flow build <what the procedure is for>`, e.g. `flow build reset a user's MFA in Entra ID`".to_owned(),
            ),
        },
        "queue" if rest.is_empty() => TopCommand::Queue,
        "metrics" if rest.is_empty() => TopCommand::Metrics,
        "escalations" if rest.eq_ignore_ascii_case("here") => TopCommand::EscalationsHere,
        "psa" if rest.is_empty() => TopCommand::Psa,
        "psa" => {
            let parts: Vec<&str> = rest.split_whitespace().collect();
            match parts.as_slice() {
                [verb, user, member] if verb.eq_ignore_ascii_case("map") => TopCommand::PsaMap {
                    user: (*user).to_owned(),
                    member: (*member).to_owned(),
                },
                _ => TopCommand::Invalid(
                    "Usage: `psa map @user <member>`, e.g. `psa map @jane jdoe`".to_owned(),
                ),
            }
        }
        "role" => {
            let mut parts = rest.split_whitespace();
            match (parts.next(), parts.next(), parts.next()) {
                (Some(user), Some(role), None) => match role.parse::<Role>() {
                    Ok(Role::SuperAdmin) => TopCommand::Invalid(
                        "`super_admin` is set by the operator, not from chat.".to_owned(),
                    ),
                    Ok(role) => TopCommand::Role {
                        user: user.to_owned(),
                        role,
                    },
                    Err(e) => TopCommand::Invalid(format!("{e}. Usage: `role @user engineer`")),
                },
                _ => TopCommand::Invalid(
                    "Usage: `role @user <owner|admin|engineer|viewer>`".to_owned(),
                ),
            }
        }
        _ => TopCommand::Start(text.to_owned()),
    }
}

pub fn top_help(command_name: &str) -> String {
    format!(
        "*ResolutionFlow*: guided troubleshooting that writes the ticket note for you.\n\
• `{c} <problem>`: start a session in a new thread, e.g. `{c} Outlook keeps asking for a password`\n\
• `{c} flows <search>`: search the flow library\n\
• `{c} queue`: escalations waiting for a senior\n\
• `{c} metrics`: a private link to the escalation metrics (admins)\n\
• `{c} escalations here`: send the team's escalation cards to this channel (admins)\n\
• `{c} role @user <role>`: set someone's role (admins)\n\
• `{c} psa`: the team's PSA connection; `{c} psa map @user <member>`: credit someone's ticket notes to a PSA member\n\
• `{c} help`: this help\n\n{THREAD_HELP}",
        c = command_name
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psa_commands_parse() {
        assert_eq!(parse_top_command("psa"), TopCommand::Psa);
        assert_eq!(
            parse_top_command("psa map <@U123|jane> jdoe"),
            TopCommand::PsaMap {
                user: "<@U123|jane>".into(),
                member: "jdoe".into()
            }
        );
        assert!(matches!(
            parse_top_command("psa map jdoe"),
            TopCommand::Invalid(_)
        ));
        assert_eq!(parse_thread_command("push"), Some(Ok(ThreadCommand::Push)));
    }

    #[test]
    fn thread_commands_parse() {
        assert_eq!(
            parse_thread_command("facts"),
            Some(Ok(ThreadCommand::Facts))
        );
        assert_eq!(
            parse_thread_command("note called the user back"),
            Some(Ok(ThreadCommand::Note("called the user back".into())))
        );
        assert_eq!(
            parse_thread_command("ticket #12345"),
            Some(Ok(ThreadCommand::Ticket("12345".into())))
        );
        assert_eq!(
            parse_thread_command("Export HTML"),
            Some(Ok(ThreadCommand::Export(ExportFormat::Html)))
        );
        assert_eq!(
            parse_thread_command("export"),
            Some(Ok(ThreadCommand::Export(ExportFormat::Markdown)))
        );
        assert_eq!(
            parse_thread_command("park waiting on user"),
            Some(Ok(ThreadCommand::Park(Some("waiting on user".into()))))
        );
        assert_eq!(
            parse_thread_command("resolve"),
            Some(Ok(ThreadCommand::Resolve(None)))
        );
    }

    #[test]
    fn ordinary_sentences_are_not_commands() {
        assert_eq!(parse_thread_command("the printer is back online"), None);
        assert_eq!(parse_thread_command("facts are facts"), None);
        assert_eq!(parse_thread_command("resume looks fine"), None);
        assert_eq!(parse_thread_command("note"), None);
    }

    #[test]
    fn misused_commands_explain_themselves() {
        assert!(
            matches!(parse_thread_command("export pdf"), Some(Err(msg)) if msg.contains("`md`"))
        );
        assert!(
            matches!(parse_thread_command("ticket please"), Some(Err(msg)) if msg.contains("ticket 12345"))
        );
    }

    #[test]
    fn top_commands_parse() {
        assert_eq!(parse_top_command(""), TopCommand::Help);
        assert_eq!(
            parse_top_command("flows vpn"),
            TopCommand::Flows("vpn".into())
        );
        assert_eq!(
            parse_top_command("role @jane admin"),
            TopCommand::Role {
                user: "@jane".into(),
                role: Role::Admin
            }
        );
        assert!(matches!(
            parse_top_command("role @jane boss"),
            TopCommand::Invalid(_)
        ));
        assert!(matches!(
            parse_top_command("role @jane super_admin"),
            TopCommand::Invalid(_)
        ));
        assert_eq!(
            parse_top_command("printer offline"),
            TopCommand::Start("printer offline".into())
        );
    }
}
