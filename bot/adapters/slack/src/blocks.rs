//! Block Kit rendering of the core's neutral messages.
//!
//! Buttons carry the core [`Action`](rf_core::effect::Action) as their value, so a click comes back
//! as exactly the action the engine offered. Text is escaped for Slack's mrkdwn (`&`, `<`, `>`)
//! and cut to Slack's limits, so no message the engine produces is ever refused for its shape.

use rf_core::effect::{Block, ChoiceStyle, Message, TextPiece, text_pieces};
use slack_morphism::prelude::*;

/// The `block_id` of the optional text input under checklist buttons.
pub const INPUT_BLOCK: &str = "rf_input";
/// The `action_id` of that input.
pub const INPUT_ACTION: &str = "rf_output";
/// Every button's `action_id` starts with this (the rest is its position).
pub const ACTION_PREFIX: &str = "rf:";

/// Slack's limits (characters): section text, field text, button label, plain-text label,
/// message fallback text, buttons per actions block, fields per section.
const SECTION_TEXT: usize = 3000;
const FIELD_TEXT: usize = 2000;
const BUTTON_LABEL: usize = 75;
const FALLBACK_TEXT: usize = 3000;
const BUTTONS_PER_BLOCK: usize = 25;
const FIELDS_PER_SECTION: usize = 10;

/// `&`, `<` and `>` are Slack's control characters in mrkdwn. A reference to a Slack channel
/// (`<#C123>`) stays a Slack channel link; one to a channel elsewhere shows its name. A link
/// (`<https://…|label>`) becomes Slack's own link, its label shown.
pub fn escape(text: &str) -> String {
    let control = |text: &str| {
        text.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    text_pieces(text)
        .into_iter()
        .map(|piece| match piece {
            TextPiece::Channel(id)
                if id
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()) =>
            {
                format!("<#{id}>")
            }
            TextPiece::Link { url, label } => format!("<{}|{}>", control(url), control(label)),
            TextPiece::Channel(name) | TextPiece::Text(name) => control(name),
        })
        .collect()
}

/// Cuts text to at most `max` characters, marking the cut.
fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut out: String = text.chars().take(max - 1).collect();
        out.push('…');
        out
    }
}

fn mrkdwn(text: &str) -> SlackBlockText {
    SlackBlockText::MarkDown(SlackBlockMarkDownText::new(cut(text, SECTION_TEXT)))
}

pub(crate) fn plain(text: &str, max: usize) -> SlackBlockPlainTextOnly {
    SlackBlockPlainText::new(cut(text, max)).into()
}

fn section(text: String) -> SlackBlock {
    SlackSectionBlock::new().with_text(mrkdwn(&text)).into()
}

/// The blocks of a message.
pub fn render(message: &Message) -> Vec<SlackBlock> {
    let mut blocks = Vec::new();
    let mut button = 0usize;
    for block in &message.blocks {
        match block {
            Block::Heading { text } => blocks.push(section(format!("*{}*", escape(text)))),
            Block::Text { text } => blocks.push(section(escape(text))),
            Block::Code { text } => blocks.push(section(format!("```{}```", escape(text)))),
            Block::Context { text } => blocks.push(
                SlackContextBlock::new(vec![SlackContextBlockElement::MarkDown(
                    SlackBlockMarkDownText::new(cut(&escape(text), SECTION_TEXT)),
                )])
                .into(),
            ),
            Block::List { items } => {
                let text = items
                    .iter()
                    .map(|i| format!("• {}", escape(i)))
                    .collect::<Vec<_>>()
                    .join("\n");
                blocks.push(section(text));
            }
            Block::Fields { fields } => {
                for chunk in fields.chunks(FIELDS_PER_SECTION) {
                    let texts = chunk
                        .iter()
                        .map(|(label, value)| {
                            SlackBlockText::MarkDown(SlackBlockMarkDownText::new(cut(
                                &format!("*{}*\n{}", escape(label), escape(value)),
                                FIELD_TEXT,
                            )))
                        })
                        .collect();
                    blocks.push(SlackSectionBlock::new().with_fields(texts).into());
                }
            }
            Block::Choices { choices, input } => {
                if let Some(label) = input {
                    let element = SlackBlockPlainTextInputElement::new()
                        .with_action_id(SlackActionId(INPUT_ACTION.to_owned()))
                        .with_placeholder(plain(label, 150));
                    blocks.push(
                        SlackInputBlock::new(
                            plain(label, 2000),
                            SlackInputBlockElement::PlainTextInput(element),
                        )
                        .with_block_id(SlackBlockId(INPUT_BLOCK.to_owned()))
                        .with_optional(true)
                        .into(),
                    );
                }
                for chunk in choices.chunks(BUTTONS_PER_BLOCK) {
                    let elements = chunk
                        .iter()
                        .map(|choice| {
                            button += 1;
                            let mut element =
                                SlackBlockButtonElement::new(plain(&choice.label, BUTTON_LABEL))
                                    .with_action_id(SlackActionId(format!(
                                        "{ACTION_PREFIX}{button}"
                                    )))
                                    .with_value(choice.action.encode());
                            match choice.style {
                                ChoiceStyle::Primary => {
                                    element = element.with_style(SlackBlockButtonStyle::Primary)
                                }
                                ChoiceStyle::Danger => {
                                    element = element.with_style(SlackBlockButtonStyle::Danger)
                                }
                                ChoiceStyle::Default => {}
                            }
                            SlackActionBlockElement::Button(element)
                        })
                        .collect();
                    blocks.push(SlackActionsBlock::new(elements).into());
                }
            }
        }
    }
    blocks
}

/// The plain text Slack shows in notifications and where blocks cannot be shown.
pub fn fallback_text(message: &Message) -> String {
    cut(&message.plain_text(), FALLBACK_TEXT)
}

/// The message as Slack message content (blocks plus fallback text).
pub fn content(message: &Message) -> SlackMessageContent {
    SlackMessageContent::new()
        .with_text(fallback_text(message))
        .with_blocks(render(message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rf_core::domain::{Priority, ThreadKey};
    use rf_core::effect::{Action, Choice};
    use rf_core::handoff::{
        Assessment, CardMood, Handoff, HandoffIntent, Snapshot, escalation_card, read_in,
    };
    use rf_core::ids::{AccountId, HandoffId, SessionId, TeamId, UserId};
    use rf_core::time::Timestamp;
    use uuid::Uuid;

    fn handoff() -> Handoff {
        let id = |n: u128| Uuid::from_u128(n);
        Handoff {
            id: HandoffId::from_uuid(id(1)),
            account_id: AccountId::from_uuid(id(2)),
            team_id: TeamId::from_uuid(id(3)),
            session_id: SessionId::from_uuid(id(4)),
            thread: ThreadKey {
                platform: rf_core::domain::Platform::Slack,
                workspace: "T0001".into(),
                channel: "C0HELP".into(),
                thread: "1795000000.000100".into(),
            },
            intent: HandoffIntent::Escalate,
            requested_by: UserId::from_uuid(id(5)),
            requested_by_name: "Jane".into(),
            reason: "Lockouts continue after clearing the phone's <mail> profile & cache".into(),
            priority: Priority::High,
            snapshot: Snapshot {
                problem: "User locked out again".into(),
                flow: Some("AD account lockout".into()),
                ticket: Some("12345".into()),
                steps_attempted: vec![
                    "Unlocked the account".into(),
                    "Checked event 4740 → phone".into(),
                ],
                dead_ends: vec!["\"Stale mail profile\" did not fix it".into()],
                facts: vec!["Caller computer is MOBILE-JD".into()],
                active_fix: None,
                latest_state: "Waiting on: Which device shows in event 4740?".into(),
            },
            assessment: Assessment {
                likely_cause: "Probably Stale credentials in a scheduled task".into(),
                next_steps: vec!["Try: Stale credentials in a scheduled task".into()],
                confidence: 40,
                source: "offline".into(),
            },
            claimed_by: None,
            claimed_by_name: None,
            claimed_at: None,
            acknowledged_at: None,
            claim_count: 0,
            release_count: 0,
            closed_at: None,
            created_at: Timestamp::from_millis(1_795_000_000_000),
        }
    }

    fn json(blocks: &[SlackBlock]) -> serde_json::Value {
        serde_json::to_value(blocks).unwrap()
    }

    #[test]
    fn the_escalation_card_renders_as_block_kit() {
        let card = escalation_card(
            &handoff(),
            Timestamp::from_millis(1_795_000_040_000),
            CardMood::New,
        );
        insta::assert_json_snapshot!("escalation_card", json(&render(&card)));
    }

    #[test]
    fn a_claimed_card_keeps_only_view_handoff() {
        let mut claimed = handoff();
        claimed.claimed_by = Some(UserId::from_uuid(Uuid::from_u128(9)));
        claimed.claimed_by_name = Some("Sam".into());
        claimed.claimed_at = Some(Timestamp::from_millis(1_795_000_040_000));
        let blocks = json(&render(&escalation_card(
            &claimed,
            Timestamp::from_millis(1_795_000_041_000),
            CardMood::New,
        )));
        insta::assert_json_snapshot!("claimed_card", blocks);
    }

    #[test]
    fn the_read_in_renders_with_quick_replies() {
        let message = read_in(&handoff(), Timestamp::from_millis(1_795_000_040_000));
        insta::assert_json_snapshot!("read_in", json(&render(&message)));
    }

    #[test]
    fn a_checklist_step_has_an_optional_output_input_and_three_buttons() {
        let session = SessionId::from_uuid(Uuid::from_u128(4));
        let message = rf_core::engine::prompt_message(
            session,
            None,
            &rf_core::session::Conversation::FreeForm,
        )
        .with(Block::Choices {
            choices: vec![
                Choice::new(
                    "Done",
                    Action::Checklist {
                        session,
                        cursor: 0,
                        outcome: rf_core::session::StepOutcome::Done,
                    },
                )
                .primary(),
                Choice::new(
                    "Skipped",
                    Action::Checklist {
                        session,
                        cursor: 0,
                        outcome: rf_core::session::StepOutcome::Skipped,
                    },
                ),
                Choice::new(
                    "Failed",
                    Action::Checklist {
                        session,
                        cursor: 0,
                        outcome: rf_core::session::StepOutcome::Failed,
                    },
                )
                .danger(),
            ],
            input: Some("Output or notes (optional)".into()),
        });
        insta::assert_json_snapshot!("checklist_step", json(&render(&message)));
    }

    #[test]
    fn buttons_carry_the_action_and_labels_fit() {
        let session = SessionId::new();
        let long = "x".repeat(200);
        let action = Action::Resume { session };
        let message = Message::new().choices(vec![Choice::new(long, action.clone())]);
        let blocks = json(&render(&message));
        let element = &blocks[0]["elements"][0];
        assert_eq!(
            element["text"]["text"].as_str().unwrap().chars().count(),
            BUTTON_LABEL
        );
        assert_eq!(
            Action::decode(element["value"].as_str().unwrap()),
            Some(action)
        );
        assert_eq!(element["action_id"], "rf:1");
    }

    #[test]
    fn text_is_escaped_for_mrkdwn() {
        let blocks = json(&render(&Message::text("<@U123> & <!channel>")));
        assert_eq!(
            blocks[0]["text"]["text"],
            "&lt;@U123&gt; &amp; &lt;!channel&gt;"
        );
    }

    #[test]
    fn channel_mentions_stay_links_and_nothing_else_does() {
        assert_eq!(escape("posted in <#C0ESC42>."), "posted in <#C0ESC42>.");
        assert_eq!(
            escape("<#C1> & <##escalations> <#>"),
            "<#C1> &amp; #escalations &lt;#&gt;"
        );
        assert_eq!(escape("<#C1|x> <@U1>"), "C1|x &lt;@U1&gt;");
        assert_eq!(escape("a <#C1"), "a &lt;#C1");
    }

    #[test]
    fn links_become_slack_links_with_their_label() {
        let text = format!(
            "{} (flow) & more",
            rf_core::effect::link(
                "https://rf.example/auth/link?token=a.b#step-x",
                "Printer & co"
            )
        );
        assert_eq!(
            escape(&text),
            "<https://rf.example/auth/link?token=a.b#step-x|Printer &amp; co> (flow) &amp; more"
        );
        assert_eq!(escape("<javascript:x|y>"), "&lt;javascript:x|y&gt;");
    }

    #[test]
    fn many_buttons_are_split_into_blocks_of_twenty_five() {
        let session = SessionId::new();
        let choices = (0..30)
            .map(|i| Choice::new(format!("{i}"), Action::Resume { session }))
            .collect();
        let blocks = render(&Message::new().choices(choices));
        assert_eq!(blocks.len(), 2);
    }
}
