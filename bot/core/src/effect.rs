//! What the engine asks adapters to do, in platform-neutral terms.
//!
//! Adapters render a [`Message`] as Block Kit, Discord components, an Adaptive Card or console text,
//! and turn a button press back into the [`Action`] it carries.

use crate::domain::{ChannelRef, Priority, ThreadKey};
use crate::ids::{FlowId, HandoffId, SessionId, UserId};
use crate::session::StepOutcome;
use serde::{Deserialize, Serialize};

/// A message: blocks of content, in order.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Message {
    pub blocks: Vec<Block>,
}

/// How a button looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChoiceStyle {
    #[default]
    Default,
    Primary,
    Danger,
}

/// A button.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Choice {
    pub label: String,
    pub action: Action,
    pub style: ChoiceStyle,
}

/// A piece of a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Block {
    /// A short bold line.
    Heading { text: String },
    /// A paragraph. `*bold*`, `` `code` ``, channel references `<#channel>` and links
    /// `<https://…|label>` (see [`TextPiece`]) are the only markup.
    Text { text: String },
    /// Label / value pairs.
    Fields { fields: Vec<(String, String)> },
    /// A bulleted list.
    List { items: Vec<String> },
    /// A command or output, shown verbatim.
    Code { text: String },
    /// Small print under the content.
    Context { text: String },
    /// Buttons. `input` asks for an optional line of text sent with the choice (checklist output).
    Choices {
        choices: Vec<Choice>,
        input: Option<String>,
    },
}

/// A piece of message text: plain text, a reference to a channel (`<#channel>` in the text),
/// which an adapter shows as a link where its platform has channel links, else as the channel, or
/// a link (`<https://…|label>`, see [`link`]), which an adapter shows as the label linked to the
/// URL where it can, else as the label followed by the URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextPiece<'a> {
    Text(&'a str),
    Channel(&'a str),
    Link { url: &'a str, label: &'a str },
}

/// Link markup for message text: `label`, linked to `url`. A URL that the markup cannot carry
/// (spaces, `|` or `>` in it) is written out after the label instead.
pub fn link(url: &str, label: &str) -> String {
    let label: String = label
        .chars()
        .map(|c| match c {
            '<' | '>' | '|' | '\n' => ' ',
            c => c,
        })
        .collect();
    let label = label.trim();
    if (url.starts_with("https://") || url.starts_with("http://"))
        && !url.contains(['|', '>', '<'])
        && !url.contains(char::is_whitespace)
        && !label.is_empty()
    {
        format!("<{url}|{label}>")
    } else {
        format!("{label} {url}")
    }
}

/// Splits `text` into plain pieces, channel references and links.
pub fn text_pieces(text: &str) -> Vec<TextPiece<'_>> {
    let mut pieces = Vec::new();
    let mut rest = text;
    let mut at = 0;
    while let Some(offset) = rest[at..].find('<') {
        let start = at + offset;
        let after = &rest[start + 1..];
        match after
            .find('>')
            .and_then(|end| Some((end, markup(&after[..end])?)))
        {
            Some((end, piece)) => {
                if start > 0 {
                    pieces.push(TextPiece::Text(&rest[..start]));
                }
                pieces.push(piece);
                rest = &after[end + 1..];
                at = 0;
            }
            None => at = start + 1,
        }
    }
    if !rest.is_empty() {
        pieces.push(TextPiece::Text(rest));
    }
    pieces
}

/// What is between `<` and `>`, when it is markup: `#channel` or `http(s)://url|label`.
fn markup(inner: &str) -> Option<TextPiece<'_>> {
    if let Some(channel) = inner.strip_prefix('#') {
        return (!channel.is_empty() && !channel.contains(['<', ' ', '\n']))
            .then_some(TextPiece::Channel(channel));
    }
    let (url, label) = inner.split_once('|')?;
    let linkable = (url.starts_with("https://") || url.starts_with("http://"))
        && !url.contains(char::is_whitespace)
        && !label.trim().is_empty()
        && !label.contains(['<', '|', '\n']);
    linkable.then_some(TextPiece::Link { url, label })
}

/// `text` with its markup written out plainly, for places without channel references or links
/// (the console, plain-text fallbacks): a channel reference as the channel, a link as its label
/// followed by the URL in angle brackets.
pub fn plain_markup(text: &str) -> String {
    text_pieces(text)
        .into_iter()
        .map(|piece| match piece {
            TextPiece::Text(text) | TextPiece::Channel(text) => text.to_owned(),
            TextPiece::Link { url, label } => format!("{label} <{url}>"),
        })
        .collect()
}

impl Message {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn text(text: impl Into<String>) -> Self {
        Self::new().with(Block::Text { text: text.into() })
    }

    pub fn with(mut self, block: Block) -> Self {
        self.blocks.push(block);
        self
    }

    /// This message followed by every block of `other`.
    pub fn extend_with(mut self, other: Message) -> Self {
        self.blocks.extend(other.blocks);
        self
    }

    pub fn heading(self, text: impl Into<String>) -> Self {
        self.with(Block::Heading { text: text.into() })
    }

    pub fn paragraph(self, text: impl Into<String>) -> Self {
        self.with(Block::Text { text: text.into() })
    }

    pub fn context(self, text: impl Into<String>) -> Self {
        self.with(Block::Context { text: text.into() })
    }

    pub fn code(self, text: impl Into<String>) -> Self {
        self.with(Block::Code { text: text.into() })
    }

    pub fn choices(self, choices: Vec<Choice>) -> Self {
        self.with(Block::Choices {
            choices,
            input: None,
        })
    }

    /// The buttons of the message, in order.
    pub fn all_choices(&self) -> impl Iterator<Item = &Choice> {
        self.blocks.iter().flat_map(|block| match block {
            Block::Choices { choices, .. } => choices.as_slice(),
            _ => &[],
        })
    }

    /// A plain-text rendering, for notification fallbacks and logs.
    pub fn plain_text(&self) -> String {
        let mut lines = Vec::new();
        for block in &self.blocks {
            match block {
                Block::Heading { text } | Block::Text { text } | Block::Context { text } => {
                    lines.push(plain_markup(text));
                }
                Block::Code { text } => lines.push(text.clone()),
                Block::Fields { fields } => {
                    lines.extend(fields.iter().map(|(k, v)| format!("{k}: {v}")));
                }
                Block::List { items } => {
                    lines.extend(items.iter().map(|i| format!("• {}", plain_markup(i))));
                }
                Block::Choices { choices, .. } => lines.push(
                    choices
                        .iter()
                        .map(|c| format!("[{}]", c.label))
                        .collect::<Vec<_>>()
                        .join(" "),
                ),
            }
        }
        lines.join("\n")
    }
}

impl Choice {
    pub fn new(label: impl Into<String>, action: Action) -> Self {
        Self {
            label: label.into(),
            action,
            style: ChoiceStyle::Default,
        }
    }

    pub fn primary(mut self) -> Self {
        self.style = ChoiceStyle::Primary;
        self
    }

    pub fn danger(mut self) -> Self {
        self.style = ChoiceStyle::Danger;
        self
    }
}

/// Export formats for session documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExportFormat {
    Markdown,
    Text,
    Html,
}

impl ExportFormat {
    /// `md`, `txt`, `html` (and the long names).
    pub fn parse(word: &str) -> Option<Self> {
        match word.trim().to_ascii_lowercase().as_str() {
            "md" | "markdown" => Some(Self::Markdown),
            "txt" | "text" | "plain" => Some(Self::Text),
            "html" | "htm" => Some(Self::Html),
            _ => None,
        }
    }

    pub const fn extension(self) -> &'static str {
        match self {
            Self::Markdown => "md",
            Self::Text => "txt",
            Self::Html => "html",
        }
    }

    pub const fn mime(self) -> &'static str {
        match self {
            Self::Markdown => "text/markdown; charset=utf-8",
            Self::Text => "text/plain; charset=utf-8",
            Self::Html => "text/html; charset=utf-8",
        }
    }
}

/// What a button does. Carried in the button's value and sent back by the adapter when pressed.
///
/// Every action names its session or handoff and, where it matters, the step it answers, so a late
/// or double click on an old button is recognised and acts at most once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "a", rename_all = "snake_case")]
pub enum Action {
    PickFlow {
        session: SessionId,
        flow: FlowId,
    },
    FreeForm {
        session: SessionId,
    },
    Answer {
        session: SessionId,
        node: String,
        branch: usize,
    },
    Checklist {
        session: SessionId,
        cursor: usize,
        outcome: StepOutcome,
    },
    /// The solution fixed it (`fixed`) or not.
    Solution {
        session: SessionId,
        node: String,
        fixed: bool,
    },
    Park {
        session: SessionId,
    },
    Resume {
        session: SessionId,
    },
    Resolve {
        session: SessionId,
    },
    Export {
        session: SessionId,
        format: ExportFormat,
    },
    /// Open the escalation form.
    Escalate {
        session: SessionId,
    },
    /// Preview the session note for the linked PSA ticket.
    PushPreview {
        session: SessionId,
    },
    /// Post the previewed note (`version` names the content that was previewed).
    PushNote {
        session: SessionId,
        version: String,
    },
    /// Decide on the copilot's suggested fix.
    Fix {
        session: SessionId,
        fix: uuid::Uuid,
        decision: crate::ai::FixDecision,
    },
    /// Preview the resolution note.
    NotePreview {
        session: SessionId,
    },
    /// Claim an escalation (first click wins).
    Claim {
        handoff: HandoffId,
    },
    /// A personal link to the handoff-context page.
    ViewHandoff {
        handoff: HandoffId,
    },
    /// "I'm on it": keeps an idle claim from being released.
    Acknowledge {
        handoff: HandoffId,
    },
    /// Start one of the assessment's suggested next steps (a quick reply).
    StartStep {
        handoff: HandoffId,
        step: usize,
    },
}

/// What an action is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionTarget {
    Session(SessionId),
    Handoff(HandoffId),
}

impl Action {
    pub fn target(&self) -> ActionTarget {
        match self {
            Action::PickFlow { session, .. }
            | Action::FreeForm { session }
            | Action::Answer { session, .. }
            | Action::Checklist { session, .. }
            | Action::Solution { session, .. }
            | Action::Park { session }
            | Action::Resume { session }
            | Action::Resolve { session }
            | Action::Export { session, .. }
            | Action::Escalate { session }
            | Action::PushPreview { session }
            | Action::PushNote { session, .. }
            | Action::Fix { session, .. }
            | Action::NotePreview { session } => ActionTarget::Session(*session),
            Action::Claim { handoff }
            | Action::ViewHandoff { handoff }
            | Action::Acknowledge { handoff }
            | Action::StartStep { handoff, .. } => ActionTarget::Handoff(*handoff),
        }
    }

    /// The session this action belongs to, for session actions.
    pub fn session(&self) -> Option<SessionId> {
        match self.target() {
            ActionTarget::Session(session) => Some(session),
            ActionTarget::Handoff(_) => None,
        }
    }

    /// The compact wire form for a button's value (well under Slack's 2,000 characters).
    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads a button's value back; `None` for anything that is not one of ours.
    pub fn decode(value: &str) -> Option<Self> {
        serde_json::from_str(value).ok()
    }
}

/// Where something is said: a channel, and the thread in it if any.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Place {
    pub channel: ChannelRef,
    pub thread: Option<String>,
}

impl From<&ThreadKey> for Place {
    fn from(key: &ThreadKey) -> Self {
        Self {
            channel: ChannelRef {
                platform: key.platform,
                workspace: key.workspace.clone(),
                channel: key.channel.clone(),
            },
            thread: Some(key.thread.clone()),
        }
    }
}

impl From<&ChannelRef> for Place {
    fn from(channel: &ChannelRef) -> Self {
        Self {
            channel: channel.clone(),
            thread: None,
        }
    }
}

/// A form the adapter shows (a Slack modal, a Discord modal, Adaptive Card inputs, console prompts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Form {
    pub kind: FormKind,
    pub title: String,
    pub submit_label: String,
    pub fields: Vec<FormField>,
}

/// What a form is for; submitted back with the values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "form", rename_all = "snake_case")]
pub enum FormKind {
    Escalate { session: SessionId },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormField {
    pub id: String,
    pub label: String,
    pub required: bool,
    pub input: FieldInput,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FieldInput {
    Text {
        multiline: bool,
        placeholder: String,
    },
    /// (value, label) pairs; `default` is a value.
    Select {
        options: Vec<(String, String)>,
        default: String,
    },
}

/// The escalation form: a reason and a priority.
pub fn escalate_form(session: SessionId) -> Form {
    Form {
        kind: FormKind::Escalate { session },
        title: "Escalate to a senior".to_owned(),
        submit_label: "Escalate".to_owned(),
        fields: vec![
            FormField {
                id: "reason".to_owned(),
                label: "Why are you escalating?".to_owned(),
                required: true,
                input: FieldInput::Text {
                    multiline: true,
                    placeholder: "e.g. Lockouts continue after clearing the phone's mail profile"
                        .to_owned(),
                },
            },
            FormField {
                id: "priority".to_owned(),
                label: "Priority".to_owned(),
                required: true,
                input: FieldInput::Select {
                    options: Priority::ALL
                        .iter()
                        .map(|p| (p.as_str().to_owned(), capitalise(p.as_str())))
                        .collect(),
                    default: Priority::Normal.as_str().to_owned(),
                },
            },
        ],
    }
}

fn capitalise(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// A submitted form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormSubmission {
    pub kind: FormKind,
    /// Field id → value.
    pub values: Vec<(String, String)>,
}

impl FormSubmission {
    pub fn value(&self, id: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(k, _)| k == id)
            .map(|(_, v)| v.as_str())
    }
}

/// A document produced for the technician (an export).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Document {
    pub format: ExportFormat,
    pub filename: String,
    pub content: String,
}

/// Something an adapter must do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "effect", rename_all = "snake_case")]
pub enum Effect {
    /// Post in the session's thread.
    Reply { thread: ThreadKey, message: Message },
    /// Post at the top level of a channel.
    Post {
        channel: ChannelRef,
        message: Message,
    },
    /// Show a message only to one user, where they are.
    Private {
        place: Place,
        user: UserId,
        platform_user_id: String,
        message: Message,
    },
    /// Ask one user to fill in a form.
    OpenForm {
        place: Place,
        user: UserId,
        platform_user_id: String,
        form: Form,
    },
    /// Acknowledge a message quietly (a reaction, a tick).
    Acknowledge { thread: ThreadKey },
    /// Hand over a file.
    Document {
        thread: ThreadKey,
        document: Document,
    },
}

impl Effect {
    /// The platform the effect happens on.
    pub fn platform(&self) -> crate::domain::Platform {
        match self {
            Effect::Reply { thread, .. }
            | Effect::Acknowledge { thread }
            | Effect::Document { thread, .. } => thread.platform,
            Effect::Post { channel, .. } => channel.platform,
            Effect::Private { place, .. } | Effect::OpenForm { place, .. } => {
                place.channel.platform
            }
        }
    }

    /// The channel the effect happens in, as a key: effects in one channel keep their order.
    pub fn place_key(&self) -> String {
        let channel = match self {
            Effect::Reply { thread, .. }
            | Effect::Acknowledge { thread }
            | Effect::Document { thread, .. } => {
                return format!(
                    "{}:{}:{}",
                    thread.platform, thread.workspace, thread.channel
                );
            }
            Effect::Post { channel, .. } => channel,
            Effect::Private { place, .. } | Effect::OpenForm { place, .. } => &place.channel,
        };
        format!(
            "{}:{}:{}",
            channel.platform, channel.workspace, channel.channel
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_references_and_links_are_found_and_nothing_else_is() {
        use TextPiece::{Channel, Link, Text};
        assert_eq!(
            text_pieces("posted in <#C0ESC>, and <##escalations>."),
            vec![
                Text("posted in "),
                Channel("C0ESC"),
                Text(", and "),
                Channel("#escalations"),
                Text(".")
            ]
        );
        assert_eq!(plain_markup("a <#> b <#x y> <#z"), "a <#> b <#x y> <#z");
        assert_eq!(plain_markup("in <##escalations>"), "in #escalations");
        assert_eq!(
            text_pieces("see <https://rf.example/f?t=x#step-a|Printer offline> (flow)"),
            vec![
                Text("see "),
                Link {
                    url: "https://rf.example/f?t=x#step-a",
                    label: "Printer offline"
                },
                Text(" (flow)")
            ]
        );
        assert_eq!(
            plain_markup("1 < 2 and <b> and <ftp://x|y> and <https://a b|c>"),
            "1 < 2 and <b> and <ftp://x|y> and <https://a b|c>",
            "only http(s) links and channels are markup"
        );
        assert_eq!(
            plain_markup(&link("https://rf.example/s", "The <timeline> | here")),
            "The  timeline    here <https://rf.example/s>"
        );
        assert_eq!(
            link("https://rf.example/a b", "Timeline"),
            "Timeline https://rf.example/a b",
            "a URL the markup cannot carry is written out"
        );
    }

    #[test]
    fn actions_round_trip_through_button_values() {
        let action = Action::Answer {
            session: SessionId::new(),
            node: "check-power".into(),
            branch: 1,
        };
        let value = action.encode();
        assert!(value.len() < 200, "{value}");
        assert_eq!(Action::decode(&value), Some(action));
        assert_eq!(Action::decode("not ours"), None);
    }

    #[test]
    fn export_formats_parse_from_short_words() {
        assert_eq!(ExportFormat::parse("MD"), Some(ExportFormat::Markdown));
        assert_eq!(ExportFormat::parse("txt"), Some(ExportFormat::Text));
        assert_eq!(ExportFormat::parse("pdf"), None);
    }
}
