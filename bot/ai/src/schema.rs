//! JSON Schemas for structured output, one per kind of answer.
//!
//! They are written for the strictest consumer that uses them:
//! - OpenAI's strict `json_schema` mode: every property is listed in `required`, every object
//!   has `additionalProperties: false`, and optional values are a union with `null`;
//! - Anthropic's structured outputs, which refuse numeric bounds (`minimum`/`maximum`) and array
//!   lengths beyond 0/1, so ranges and limits are stated in `description`s instead (and enforced
//!   by [`crate::parse`], which clamps and caps whatever comes back).
//!
//! A nullable value is written `anyOf: [{…}, {"type": "null"}]`, which both providers accept
//! (OpenAI also takes `type: ["object", "null"]`; Anthropic's grammar compiler does not).

use serde_json::{Value, json};

/// A string property.
fn text(description: &str) -> Value {
    json!({ "type": "string", "description": description })
}

/// A list of strings.
fn list(description: &str) -> Value {
    json!({ "type": "array", "items": { "type": "string" }, "description": description })
}

/// An integer percentage.
fn confidence(description: &str) -> Value {
    json!({ "type": "integer", "description": format!("{description} An integer from 0 to 100.") })
}

/// A strict object: every property required, nothing else allowed.
fn object(properties: &[(&str, Value)]) -> Value {
    let required: Vec<&str> = properties.iter().map(|(name, _)| *name).collect();
    let properties: serde_json::Map<String, Value> = properties
        .iter()
        .map(|(name, schema)| ((*name).to_owned(), schema.clone()))
        .collect();
    json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    })
}

/// `schema` or `null`.
fn nullable(schema: Value, description: &str) -> Value {
    json!({ "anyOf": [schema, { "type": "null" }], "description": description })
}

/// A suggested fix, as in [`rf_core::ai::FixProposal`].
pub fn fix_schema() -> Value {
    object(&[
        (
            "title",
            text("What the fix is, in a few words (shown on a button)."),
        ),
        (
            "rationale",
            text("Why it should fix it, in a sentence or two."),
        ),
        ("steps", list("What to do, in order. At most 12 steps.")),
        (
            "script",
            nullable(
                json!({ "type": "string" }),
                "A script to run (PowerShell, bash), or null when the fix is not one.",
            ),
        ),
        (
            "confidence",
            confidence("How sure you are that this fixes it."),
        ),
    ])
}

/// One copilot turn, as in [`rf_core::ai::TurnReply`].
pub fn turn_schema() -> Value {
    object(&[
        (
            "message",
            text("What to say in the thread: brief, plain, no greeting."),
        ),
        (
            "questions",
            list("One or two targeted questions for the technician; empty when none. At most 8."),
        ),
        (
            "actions",
            list("Things to check or do next; empty when none. At most 8."),
        ),
        (
            "facts",
            list(
                "New facts the conversation established (not guesses); empty when none. At most 8.",
            ),
        ),
        (
            "suggested_fix",
            nullable(
                fix_schema(),
                "A fix to propose now, replacing any earlier one; null when there is no new fix.",
            ),
        ),
        (
            "confidence",
            confidence("How sure you are of your reading of the problem."),
        ),
    ])
}

/// An escalation assessment, as in [`rf_core::handoff::Assessment`] (the source is not asked
/// for: it is the model's name).
pub fn assessment_schema() -> Value {
    object(&[
        (
            "likely_cause",
            text("The most likely cause, in one or two sentences, grounded in the session."),
        ),
        (
            "next_steps",
            list("What the senior should do next, most useful first. At most 8."),
        ),
        (
            "confidence",
            confidence("How sure you are of the likely cause."),
        ),
    ])
}

/// A drafted flow: the YAML file and why it is proposed.
pub fn flow_draft_schema() -> Value {
    object(&[
        (
            "yaml",
            text("The flow file, in the library's YAML format, without code fences."),
        ),
        (
            "rationale",
            text("Why this flow, and what it is based on, in two or three sentences."),
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every object in the schema is strict: all properties required, nothing else allowed.
    fn assert_strict(schema: &Value, path: &str) {
        if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
            assert_eq!(schema["type"], "object", "{path}");
            assert_eq!(schema["additionalProperties"], false, "{path}");
            let required: Vec<&str> = schema["required"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap())
                .collect();
            let names: Vec<&str> = properties.keys().map(String::as_str).collect();
            let mut sorted_required = required.clone();
            sorted_required.sort_unstable();
            let mut sorted_names = names.clone();
            sorted_names.sort_unstable();
            assert_eq!(sorted_required, sorted_names, "{path}");
            for (name, property) in properties {
                assert_strict(property, &format!("{path}.{name}"));
            }
        }
        if let Some(branches) = schema.get("anyOf").and_then(Value::as_array) {
            for branch in branches {
                assert_strict(branch, path);
            }
        }
        if let Some(items) = schema.get("items") {
            assert_strict(items, &format!("{path}[]"));
        }
        for unsupported in ["minimum", "maximum", "maxItems", "minLength", "maxLength"] {
            assert!(schema.get(unsupported).is_none(), "{path}: {unsupported}");
        }
    }

    #[test]
    fn every_schema_is_strict() {
        for (name, schema) in [
            ("turn", turn_schema()),
            ("assessment", assessment_schema()),
            ("flow_draft", flow_draft_schema()),
            ("fix", fix_schema()),
        ] {
            assert_strict(&schema, name);
        }
    }

    #[test]
    fn the_turn_schema_matches_the_parser() {
        let schema = turn_schema();
        let required = schema["required"].as_array().unwrap();
        assert_eq!(
            required,
            &[
                "message",
                "questions",
                "actions",
                "facts",
                "suggested_fix",
                "confidence"
            ]
        );
        let fix = &schema["properties"]["suggested_fix"]["anyOf"];
        assert_eq!(fix[1]["type"], "null");
        assert_eq!(
            fix[0]["required"],
            json!(["title", "rationale", "steps", "script", "confidence"])
        );
        assert_eq!(schema["properties"]["confidence"]["type"], "integer");
        // What the schema describes parses.
        let answer = json!({
            "message": "m", "questions": [], "actions": [], "facts": [],
            "suggested_fix": { "title": "t", "rationale": "r", "steps": [], "script": null, "confidence": 50 },
            "confidence": 60
        });
        let parsed = crate::parse::parse_turn(&answer.to_string()).unwrap();
        assert!(parsed.warnings.is_empty());
    }

    #[test]
    fn schemas_snapshot() {
        insta::assert_json_snapshot!("turn_schema", turn_schema());
        insta::assert_json_snapshot!("assessment_schema", assessment_schema());
        insta::assert_json_snapshot!("flow_draft_schema", flow_draft_schema());
    }
}
