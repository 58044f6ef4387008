//! Core forms as Slack modals, and modal submissions back as core form submissions.

use crate::blocks::plain;
use rf_core::effect::{FieldInput, Form, FormKind, FormSubmission, Place};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use slack_morphism::prelude::*;

/// The `callback_id` of every modal this app opens.
pub const CALLBACK_ID: &str = "rf_form";

/// What a modal carries back in `private_metadata`: the form and where it was opened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormContext {
    pub kind: FormKind,
    pub place: Place,
}

/// The modal for `form`, opened at `place`.
pub fn modal(form: &Form, place: &Place) -> SlackView {
    let blocks = form
        .fields
        .iter()
        .map(|field| {
            let element = match &field.input {
                FieldInput::Text {
                    multiline,
                    placeholder,
                } => SlackInputBlockElement::PlainTextInput(
                    SlackBlockPlainTextInputElement::new()
                        .with_action_id(SlackActionId(field.id.clone()))
                        .with_multiline(*multiline)
                        .with_placeholder(plain(placeholder, 150)),
                ),
                FieldInput::Select { options, default } => {
                    let items: Vec<_> = options
                        .iter()
                        .map(|(value, label)| {
                            SlackBlockChoiceItem::new(plain(label, 75), value.clone())
                        })
                        .collect();
                    let mut select = SlackBlockStaticSelectElement::new()
                        .with_action_id(SlackActionId(field.id.clone()));
                    if let Some(initial) = items.iter().find(|i| &i.value == default) {
                        select = select.with_initial_option(initial.clone());
                    }
                    SlackInputBlockElement::StaticSelect(select.with_options(items))
                }
            };
            SlackInputBlock::new(plain(&field.label, 2000), element)
                .with_block_id(SlackBlockId(field.id.clone()))
                .with_optional(!field.required)
                .into()
        })
        .collect();
    let context = FormContext {
        kind: form.kind.clone(),
        place: place.clone(),
    };
    SlackView::Modal(
        SlackModalView::new(plain(&form.title, 24), blocks)
            .with_submit(plain(&form.submit_label, 24))
            .with_close(plain("Cancel", 24))
            .with_callback_id(SlackCallbackId(CALLBACK_ID.to_owned()))
            .with_private_metadata(serde_json::to_string(&context).unwrap_or_default()),
    )
}

/// Reads a `view_submission` payload back: the form, where it was opened, and the values.
/// `None` for a modal that is not ours.
pub fn submission(payload: &Value) -> Option<(FormSubmission, Place)> {
    let view = payload.get("view")?;
    if view.get("callback_id")?.as_str()? != CALLBACK_ID {
        return None;
    }
    let context: FormContext =
        serde_json::from_str(view.get("private_metadata")?.as_str()?).ok()?;
    let mut values = Vec::new();
    if let Some(state) = view.pointer("/state/values").and_then(Value::as_object) {
        for (block_id, actions) in state {
            let Some(action) = actions.get(block_id) else {
                continue;
            };
            let value = action
                .get("value")
                .and_then(Value::as_str)
                .or_else(|| action.pointer("/selected_option/value")?.as_str());
            if let Some(value) = value {
                values.push((block_id.clone(), value.to_owned()));
            }
        }
    }
    values.sort();
    Some((
        FormSubmission {
            kind: context.kind,
            values,
        },
        context.place,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rf_core::domain::{ChannelRef, Platform};
    use rf_core::effect::escalate_form;
    use rf_core::ids::SessionId;

    fn place() -> Place {
        Place {
            channel: ChannelRef {
                platform: Platform::Slack,
                workspace: "T111".into(),
                channel: "C111".into(),
            },
            thread: Some("1595926230.009600".into()),
        }
    }

    #[test]
    fn the_escalation_modal_renders_and_reads_back() {
        let session = SessionId::from_uuid(uuid::Uuid::from_u128(7));
        let view = modal(&escalate_form(session), &place());
        let json = serde_json::to_value(&view).unwrap();
        insta::assert_json_snapshot!("escalate_modal", json);
        // What Slack sends back when the tech fills it in.
        let metadata = json["private_metadata"].clone();
        let payload = serde_json::json!({
            "type": "view_submission",
            "view": {
                "callback_id": CALLBACK_ID,
                "private_metadata": metadata,
                "state": { "values": {
                    "reason": { "reason": { "type": "plain_text_input", "value": "Still locked out" } },
                    "priority": { "priority": { "type": "static_select",
                        "selected_option": { "text": { "type": "plain_text", "text": "High" }, "value": "high" } } }
                } }
            }
        });
        let (submission, at) = submission(&payload).unwrap();
        assert_eq!(at, place());
        assert_eq!(submission.kind, FormKind::Escalate { session });
        assert_eq!(submission.value("reason"), Some("Still locked out"));
        assert_eq!(submission.value("priority"), Some("high"));
    }

    #[test]
    fn other_apps_modals_are_not_ours() {
        let fixture: Value =
            serde_json::from_str(include_str!("../fixtures/view_submission.json")).unwrap();
        assert!(submission(&fixture).is_none());
    }
}
