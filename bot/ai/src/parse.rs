//! Total parsers for what a model answers: a turn (structured JSON, possibly fenced or wrapped in
//! prose, plus the original product's `[SUGGEST_FIX]{…}[/SUGGEST_FIX]` blocks), an escalation
//! assessment, a drafted flow, and the four-section resolution note.
//!
//! Every function here takes any text and never panics: the input is capped at
//! [`MAX_INPUT_BYTES`] (cut on a character boundary), JSON objects are found by an iterative
//! scanner with a bounded nesting depth and a bounded amount of work, and every string kept is
//! trimmed and cut on a character boundary.
//!
//! Field reading is lenient, because models drift from the schema:
//! - a list given as a single string becomes one item per line (bullets stripped); numbers and
//!   booleans in lists become their text; empty strings are dropped; each list keeps at most
//!   [`MAX_ITEMS`] items ([`MAX_STEPS`] for a fix's steps);
//! - a confidence may be a number, a string (`"85"`, `"85%"`), a 0–1 fraction written with a
//!   decimal point (`0.72` → 72) or a word (`high`, `medium`, `low`); it is clamped to 0–100 with
//!   [`clamp_confidence`];
//! - strings are trimmed, stripped of control characters (bar newlines and tabs) and cut at
//!   [`MAX_CHARS`] characters (a fix's title at [`MAX_TITLE_CHARS`], its script at
//!   [`MAX_SCRIPT_CHARS`]).
//!
//! What could not be used (a malformed fix block, a field of the wrong type, a list cut short) is
//! reported in [`Parsed::warnings`], short and without the model's whole output, for the logs.

use rf_core::ai::{FixProposal, TurnReply, clamp_confidence};
use rf_core::handoff::Assessment;
use serde_json::{Map, Value};

/// The most input read; anything after it is ignored (with a warning).
pub const MAX_INPUT_BYTES: usize = 256 * 1024;
/// The most items kept in a list (questions, actions, facts, next steps).
pub const MAX_ITEMS: usize = 8;
/// The most steps kept in a fix.
pub const MAX_STEPS: usize = 12;
/// The most characters kept in a string.
pub const MAX_CHARS: usize = 1_500;
/// The most characters kept in a fix's title.
pub const MAX_TITLE_CHARS: usize = 200;
/// The most characters kept in a fix's script.
pub const MAX_SCRIPT_CHARS: usize = 8_000;
/// The longest resolution note accepted, in characters.
pub const MAX_NOTE_CHARS: usize = 20_000;
/// The deepest nesting of `{`/`[` a JSON candidate may have.
const MAX_DEPTH: usize = 64;
/// The most candidate objects handed to the JSON parser per text.
const MAX_PARSE_ATTEMPTS: usize = 256;
/// Characters of the model's output quoted in an error.
const EXCERPT_CHARS: usize = 60;
/// The most warnings kept (a pathological answer must not make an unbounded log line).
const MAX_WARNINGS: usize = 16;

/// The fields that make a JSON object a turn.
const TURN_FIELDS: &[&str] = &[
    "message",
    "questions",
    "actions",
    "facts",
    "suggested_fix",
    "suggestedFix",
    "fix",
];
const OPEN_TAG: &[u8] = b"[suggest_fix]";
const CLOSE_TAG: &[u8] = b"[/suggest_fix]";
/// The four sections of a resolution note, in order.
pub const NOTE_SECTIONS: [&str; 4] = ["Problem", "What we confirmed", "Root cause", "Resolution"];

/// A parsed value and what could not be used on the way (short, log-safe descriptions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed<T> {
    pub value: T,
    pub warnings: Vec<String>,
}

/// Why an answer could not be used. The messages quote at most a short excerpt of the answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("the answer was empty")]
    Empty,
    #[error("no JSON object in the answer ({len} bytes, starting {excerpt:?})")]
    NoStructuredOutput { len: usize, excerpt: String },
    #[error(
        "the answer's JSON has none of the expected fields ({expected}); it starts {excerpt:?}"
    )]
    MissingFields {
        expected: &'static str,
        excerpt: String,
    },
    #[error("the answer's JSON has nothing usable: {0}")]
    NothingUsable(&'static str),
    #[error("the note lacks the section(s): {}", .missing.join(", "))]
    MissingSections { missing: Vec<&'static str> },
    #[error(
        "the note's sections are out of order (expected Problem, What we confirmed, Root cause, Resolution)"
    )]
    SectionsOutOfOrder,
    #[error("the note is too long ({chars} characters, at most {MAX_NOTE_CHARS})")]
    TooLong { chars: usize },
}

/// Reads a copilot turn.
///
/// The turn is the last JSON object in the text carrying one of the schema's fields (`message`,
/// `questions`, `actions`, `facts`, `suggested_fix`); an object wrapping one under a single key is
/// unwrapped. Suggested fixes come from the object's `suggested_fix` and from
/// `[SUGGEST_FIX]{…}[/SUGGEST_FIX]` blocks anywhere in the text; the last valid one by position
/// wins (the object's own fix counts at the object's position). Invalid fixes (no title, not JSON)
/// are skipped with a warning. Text with fix blocks but no turn object is read the original
/// product's way: the prose around the blocks is the message, and the fix's confidence the turn's.
///
/// Errors: empty text, no JSON object at all, JSON without any expected field, or a turn with
/// nothing in it (no message, questions, actions, facts or fix).
pub fn parse_turn(text: &str) -> Result<Parsed<TurnReply>, ParseError> {
    let mut warnings = Warnings::default();
    let text = cap_input(text, &mut warnings);
    if text.trim().is_empty() {
        return Err(ParseError::Empty);
    }
    let blocks = fix_blocks(text);
    let objects = json_objects(text);
    let inside_block = |pos: usize| blocks.iter().any(|b| pos >= b.start && pos < b.end);
    let turn = objects
        .iter()
        .rev()
        .filter(|o| !inside_block(o.start))
        .find_map(|o| turn_fields(&o.value).map(|fields| (o, fields)));

    // Every fix candidate with its position; the last valid one wins.
    let mut candidates: Vec<(usize, Result<FixDraft, String>)> = Vec::new();
    for block in &blocks {
        if turn.is_some_and(|(o, _)| block.start >= o.start && block.start < o.end) {
            // Inside the turn object's strings: read from the unescaped message below.
            continue;
        }
        candidates.push((block.start, block_fix(text, block)));
    }

    let mut reply = TurnReply::default();
    let mut confidence = None;
    match turn {
        Some((object, fields)) => {
            let raw_message = fields.get("message").map_or_else(String::new, |value| {
                read_text(value, "message", usize::MAX, &mut warnings)
            });
            // Fix blocks written inside the message count at the object's position, before the
            // object's own fix.
            let inner = fix_blocks(&raw_message);
            for block in &inner {
                candidates.push((object.start, block_fix(&raw_message, block)));
            }
            reply.message = clean(&without_blocks(&raw_message, &inner), MAX_CHARS);
            reply.questions = read_list(
                fields.get("questions"),
                "questions",
                MAX_ITEMS,
                &mut warnings,
            );
            reply.actions = read_list(fields.get("actions"), "actions", MAX_ITEMS, &mut warnings);
            reply.facts = read_list(fields.get("facts"), "facts", MAX_ITEMS, &mut warnings);
            confidence = read_confidence(fields.get("confidence"), "confidence", &mut warnings);
            if fields.get("confidence").is_none() {
                warnings.push("confidence: missing".to_owned());
            }
            let fix = ["suggested_fix", "suggestedFix", "fix"]
                .iter()
                .find_map(|key| fields.get(*key));
            match fix {
                None | Some(Value::Null) => {}
                Some(Value::Object(map)) => candidates.push((object.start, read_fix(map))),
                Some(Value::String(s)) if is_nothing(s) => {}
                Some(Value::String(s)) => {
                    // Double-encoded JSON, now and then.
                    let parsed = json_objects(s)
                        .into_iter()
                        .next()
                        .ok_or_else(|| "suggested_fix: a string, not an object".to_owned())
                        .and_then(|o| read_fix(&o.value));
                    candidates.push((object.start, parsed));
                }
                Some(other) => candidates.push((
                    object.start,
                    Err(format!("suggested_fix: {}, not an object", kind(other))),
                )),
            }
        }
        None => {
            if !candidates.iter().any(|(_, fix)| fix.is_ok()) {
                return Err(if objects.is_empty() {
                    ParseError::NoStructuredOutput {
                        len: text.len(),
                        excerpt: excerpt(text),
                    }
                } else {
                    ParseError::MissingFields {
                        expected: "message, questions, actions, facts, suggested_fix",
                        excerpt: excerpt(text),
                    }
                });
            }
            warnings.push(
                "no turn object: read the prose around the fix block as the message".to_owned(),
            );
            reply.message = clean(&without_blocks(text, &blocks), MAX_CHARS);
        }
    }

    candidates.sort_by_key(|(pos, _)| *pos);
    let mut winner = None;
    for (_, fix) in candidates {
        match fix {
            Ok(fix) => winner = Some(fix),
            Err(problem) => warnings.push(format!("fix skipped: {problem}")),
        }
    }
    let confidence = match (confidence, &winner) {
        (Some(c), _) => c,
        (None, Some(fix)) if turn.is_none() => fix.proposal.confidence,
        (None, _) => 0,
    };
    reply.confidence = confidence;
    reply.fix = winner.map(|fix| {
        let mut proposal = fix.proposal;
        if !fix.confidence_given {
            proposal.confidence = confidence;
        }
        proposal
    });
    if reply.message.is_empty()
        && reply.questions.is_empty()
        && reply.actions.is_empty()
        && reply.facts.is_empty()
        && reply.fix.is_none()
    {
        return Err(ParseError::NothingUsable(
            "no message, questions, actions, facts or fix",
        ));
    }
    Ok(Parsed {
        value: reply,
        warnings: warnings.into_vec(),
    })
}

/// Reads an escalation assessment: the last JSON object with `likely_cause` or `next_steps`.
/// `source` (the model's name) is recorded as the assessment's source. A missing cause with next
/// steps present reads as "Not determined yet"; missing confidence is 0.
pub fn parse_assessment(text: &str, source: &str) -> Result<Assessment, ParseError> {
    let mut warnings = Warnings::default();
    let text = cap_input(text, &mut warnings);
    if text.trim().is_empty() {
        return Err(ParseError::Empty);
    }
    let objects = json_objects(text);
    let fields = objects.iter().rev().find_map(|o| {
        with_fields(
            &o.value,
            &[
                "likely_cause",
                "likelyCause",
                "cause",
                "next_steps",
                "nextSteps",
            ],
        )
    });
    let Some(fields) = fields else {
        return Err(if objects.is_empty() {
            ParseError::NoStructuredOutput {
                len: text.len(),
                excerpt: excerpt(text),
            }
        } else {
            ParseError::MissingFields {
                expected: "likely_cause, next_steps, confidence",
                excerpt: excerpt(text),
            }
        });
    };
    let cause = ["likely_cause", "likelyCause", "cause"]
        .iter()
        .find_map(|key| fields.get(*key))
        .map_or_else(String::new, |v| {
            read_text(v, "likely_cause", MAX_CHARS, &mut warnings)
        });
    let next_steps = read_list(
        ["next_steps", "nextSteps"]
            .iter()
            .find_map(|key| fields.get(*key)),
        "next_steps",
        MAX_ITEMS,
        &mut warnings,
    );
    if cause.is_empty() && next_steps.is_empty() {
        return Err(ParseError::NothingUsable(
            "no likely cause and no next steps",
        ));
    }
    let likely_cause = if cause.is_empty() {
        warnings.push("likely_cause: missing".to_owned());
        "Not determined yet.".to_owned()
    } else {
        cause
    };
    let confidence =
        read_confidence(fields.get("confidence"), "confidence", &mut warnings).unwrap_or(0);
    if !warnings.is_empty() {
        tracing::debug!(warnings = ?warnings.0, "the assessment had unusable parts");
    }
    Ok(Assessment {
        likely_cause,
        next_steps,
        confidence,
        source: clean(source, MAX_TITLE_CHARS),
    })
}

/// Reads a drafted flow: `(yaml, rationale)`. The answer is a JSON object `{yaml, rationale}`
/// (the YAML may itself be fenced, or given as an object, which is written out as YAML); failing
/// that, a fenced YAML block (```` ```yaml ````), with the prose around it as the rationale; failing
/// that, an answer that is bare YAML starting `id:`. The YAML is not cut (the flow validator judges
/// it); the rationale is cut at [`MAX_CHARS`].
pub fn parse_flow_draft(text: &str) -> Result<(String, String), ParseError> {
    let mut warnings = Warnings::default();
    let text = cap_input(text, &mut warnings);
    if text.trim().is_empty() {
        return Err(ParseError::Empty);
    }
    let objects = json_objects(text);
    if let Some(fields) = objects
        .iter()
        .rev()
        .find_map(|o| with_fields(&o.value, &["yaml", "flow"]))
    {
        let yaml = match ["yaml", "flow"].iter().find_map(|key| fields.get(*key)) {
            Some(Value::String(s)) => tidy_yaml(strip_fence(s)),
            Some(value @ Value::Object(_)) => serde_norway::to_string(value).unwrap_or_default(),
            _ => String::new(),
        };
        if !yaml.trim().is_empty() {
            let rationale = fields.get("rationale").map_or_else(String::new, |v| {
                read_text(v, "rationale", MAX_CHARS, &mut warnings)
            });
            return Ok((yaml, rationale));
        }
    }
    if let Some(fence) = yaml_fence(text) {
        let prose = format!("{}\n{}", &text[..fence.start], &text[fence.end..]);
        return Ok((tidy_yaml(fence.body), clean(&prose, MAX_CHARS)));
    }
    let bare = tidy_yaml(text);
    if bare.starts_with("id:") {
        return Ok((bare, String::new()));
    }
    Err(if objects.is_empty() {
        ParseError::NoStructuredOutput {
            len: text.len(),
            excerpt: excerpt(text),
        }
    } else {
        ParseError::MissingFields {
            expected: "yaml, rationale",
            excerpt: excerpt(text),
        }
    })
}

/// Checks a resolution note and returns it tidied: an outer code fence is removed, anything before
/// the Problem heading dropped, and the four section headings (`#`/`##`… headings, bold lines such
/// as `**Root cause:**`, or a line that is just the name with an optional colon; any case) are
/// written as `## Problem`, `## What we confirmed`, `## Root cause` and `## Resolution`. The four
/// must appear in that order.
pub fn check_note(markdown: &str) -> Result<String, ParseError> {
    let mut warnings = Warnings::default();
    let text = cap_input(markdown, &mut warnings);
    let text = strip_fence(text);
    if text.trim().is_empty() {
        return Err(ParseError::Empty);
    }
    let chars = text.chars().count();
    if chars > MAX_NOTE_CHARS {
        return Err(ParseError::TooLong { chars });
    }
    let mut out = String::with_capacity(text.len() + 32);
    let mut next = 0;
    let mut seen = [false; 4];
    for line in text.lines() {
        let heading = section_heading(line);
        if let Some((index, _)) = heading
            && let Some(flag) = seen.get_mut(index)
        {
            *flag = true;
        }
        match heading {
            Some((index, rest)) if index == next => {
                if !out.is_empty() && !out.ends_with("\n\n") {
                    out.push('\n');
                }
                out.push_str("## ");
                out.push_str(NOTE_SECTIONS[index]);
                out.push('\n');
                if !rest.is_empty() {
                    out.push_str(rest);
                    out.push('\n');
                }
                next += 1;
            }
            // Preamble before the Problem heading is dropped.
            _ if next == 0 => {}
            _ => {
                out.push_str(line.trim_end());
                out.push('\n');
            }
        }
    }
    if next < NOTE_SECTIONS.len() {
        let missing: Vec<&'static str> = NOTE_SECTIONS
            .iter()
            .zip(seen)
            .filter(|(_, seen)| !seen)
            .map(|(name, _)| *name)
            .collect();
        return Err(if missing.is_empty() {
            ParseError::SectionsOutOfOrder
        } else {
            ParseError::MissingSections { missing }
        });
    }
    Ok(out.trim().to_owned())
}

/// YAML without leading blank lines or trailing whitespace (the first line's indentation stays).
fn tidy_yaml(text: &str) -> String {
    let start = text
        .char_indices()
        .take_while(|(_, c)| c.is_whitespace())
        .filter(|(_, c)| *c == '\n')
        .last()
        .map_or(0, |(i, _)| i + 1);
    text.get(start..).unwrap_or_default().trim_end().to_owned()
}

/// Warnings, bounded.
#[derive(Debug, Default)]
struct Warnings(Vec<String>);

impl Warnings {
    fn push(&mut self, warning: String) {
        match self.0.len() {
            n if n < MAX_WARNINGS => self.0.push(warning),
            n if n == MAX_WARNINGS => self.0.push("…more warnings left out".to_owned()),
            _ => {}
        }
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn into_vec(self) -> Vec<String> {
        self.0
    }
}

/// The input up to [`MAX_INPUT_BYTES`], cut on a character boundary.
fn cap_input<'a>(text: &'a str, warnings: &mut Warnings) -> &'a str {
    if text.len() <= MAX_INPUT_BYTES {
        return text;
    }
    let mut end = MAX_INPUT_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    warnings.push(format!(
        "the answer was {} bytes: only the first {end} were read",
        text.len()
    ));
    &text[..end]
}

/// A short, single-line excerpt of the start of `text` for error messages.
fn excerpt(text: &str) -> String {
    let mut out = String::new();
    let mut count = 0;
    let mut space = false;
    for c in text.trim_start().chars() {
        if count >= EXCERPT_CHARS {
            out.push('…');
            break;
        }
        if c.is_whitespace() || c.is_control() {
            if !space {
                out.push(' ');
                count += 1;
            }
            space = true;
        } else {
            out.push(c);
            count += 1;
            space = false;
        }
    }
    out.trim_end().to_owned()
}

/// Trimmed, without control characters (newlines and tabs stay, but never more than one blank
/// line in a row), at most `max` characters (then ending in `…`).
fn clean(text: &str, max: usize) -> String {
    let trimmed = text.trim();
    let mut out = String::with_capacity(trimmed.len().min(max.saturating_mul(4)));
    let mut count = 0;
    let mut newlines = 0;
    for c in trimmed.chars() {
        if c.is_control() && c != '\n' && c != '\t' {
            continue;
        }
        if c == '\n' {
            newlines += 1;
            if newlines > 2 {
                continue;
            }
        } else {
            newlines = 0;
        }
        if count == max {
            let kept = out.trim_end().len();
            out.truncate(kept);
            out.push('…');
            return out;
        }
        out.push(c);
        count += 1;
    }
    out.trim_end().to_owned()
}

/// What a JSON value is, for warnings.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Whether a string says "no fix".
fn is_nothing(text: &str) -> bool {
    matches!(
        text.trim().to_ascii_lowercase().as_str(),
        "" | "null" | "none" | "n/a" | "no" | "false"
    )
}

/// A string field, leniently: numbers and booleans become their text, a list of strings is
/// joined with newlines.
fn read_text(value: &Value, field: &str, max: usize, warnings: &mut Warnings) -> String {
    match value {
        Value::String(s) => clean(s, max),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => String::new(),
        Value::Array(items) => {
            let parts: Vec<String> = items
                .iter()
                .filter_map(|item| match item {
                    Value::String(s) => Some(s.trim().to_owned()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                })
                .filter(|s| !s.is_empty())
                .collect();
            warnings.push(format!("{field}: a list, joined into one text"));
            clean(&parts.join("\n"), max)
        }
        Value::Object(_) => {
            warnings.push(format!("{field}: an object, not text; ignored"));
            String::new()
        }
    }
}

/// A list of strings, leniently (see the module's documentation).
fn read_list(
    value: Option<&Value>,
    field: &str,
    max_items: usize,
    warnings: &mut Warnings,
) -> Vec<String> {
    let mut items = Vec::new();
    let mut total = 0usize;
    let mut keep = |text: String, items: &mut Vec<String>| {
        if text.is_empty() {
            return;
        }
        total += 1;
        if items.len() < max_items {
            items.push(text);
        }
    };
    match value {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => {
            for line in s.lines() {
                keep(clean(strip_bullet(line), MAX_CHARS), &mut items);
            }
        }
        Some(Value::Number(n)) => keep(n.to_string(), &mut items),
        Some(Value::Bool(b)) => keep(b.to_string(), &mut items),
        Some(Value::Array(values)) => {
            let mut skipped = 0usize;
            for item in values {
                match item {
                    Value::String(s) => keep(clean(s, MAX_CHARS), &mut items),
                    Value::Number(n) => keep(n.to_string(), &mut items),
                    Value::Bool(b) => keep(b.to_string(), &mut items),
                    Value::Null => {}
                    Value::Array(_) | Value::Object(_) => skipped += 1,
                }
            }
            if skipped > 0 {
                warnings.push(format!("{field}: {skipped} item(s) not text; skipped"));
            }
        }
        Some(Value::Object(_)) => warnings.push(format!("{field}: an object, not a list; ignored")),
    }
    if total > items.len() {
        warnings.push(format!(
            "{field}: kept the first {} of {total}",
            items.len()
        ));
    }
    items
}

/// A line without a leading list marker (`-`, `*`, `•`, `1.`, `2)`).
fn strip_bullet(line: &str) -> &str {
    let trimmed = line.trim_start();
    for marker in ["- ", "* ", "• "] {
        if let Some(rest) = trimmed.strip_prefix(marker) {
            return rest;
        }
    }
    let digits = trimmed.len()
        - trimmed
            .trim_start_matches(|c: char| c.is_ascii_digit())
            .len();
    if digits > 0 && digits <= 3 {
        let rest = &trimmed[digits..];
        for marker in [". ", ") "] {
            if let Some(rest) = rest.strip_prefix(marker) {
                return rest;
            }
        }
    }
    trimmed
}

/// A confidence, leniently (see the module's documentation); `None` when absent or unreadable.
fn read_confidence(value: Option<&Value>, field: &str, warnings: &mut Warnings) -> Option<u8> {
    let raw = match value? {
        Value::Null => return None,
        Value::Number(n) => {
            let v = n.as_f64()?;
            // Written with a decimal point or an exponent, and at most 1: a fraction.
            if n.is_f64() && v <= 1.0 { v * 100.0 } else { v }
        }
        Value::String(s) => {
            let t = s.trim();
            let lowered = t.to_ascii_lowercase();
            match lowered.as_str() {
                "very high" => 90.0,
                "high" => 80.0,
                "medium" | "moderate" => 50.0,
                "low" => 20.0,
                "very low" => 10.0,
                _ => {
                    let percent = t.ends_with('%');
                    let number = t.trim_end_matches('%').trim();
                    match number.parse::<f64>() {
                        Ok(v) if !percent && number.contains('.') && v <= 1.0 => v * 100.0,
                        Ok(v) => v,
                        Err(_) => {
                            warnings.push(format!("{field}: {:?} is not a number", excerpt(t)));
                            return None;
                        }
                    }
                }
            }
        }
        other => {
            warnings.push(format!("{field}: {}, not a number", kind(other)));
            return None;
        }
    };
    Some(clamp_confidence(raw))
}

/// A fix as read, and whether it said how sure it is (otherwise it takes the turn's confidence).
#[derive(Debug)]
struct FixDraft {
    proposal: FixProposal,
    confidence_given: bool,
}

/// A fix from a JSON object; an error (for the warnings) when it has no title.
fn read_fix(map: &Map<String, Value>) -> Result<FixDraft, String> {
    let mut scratch = Warnings::default();
    let title = map.get("title").map_or_else(String::new, |v| {
        read_text(v, "title", MAX_TITLE_CHARS, &mut scratch)
    });
    if title.is_empty() {
        return Err("a fix without a title".to_owned());
    }
    let rationale = map.get("rationale").map_or_else(String::new, |v| {
        read_text(v, "rationale", MAX_CHARS, &mut scratch)
    });
    let steps = read_list(map.get("steps"), "steps", MAX_STEPS, &mut scratch);
    let script = match map.get("script") {
        Some(Value::String(s)) => {
            Some(clean(strip_fence(s), MAX_SCRIPT_CHARS)).filter(|s| !s.is_empty())
        }
        Some(Value::Array(lines)) => {
            let joined: Vec<&str> = lines.iter().filter_map(Value::as_str).collect();
            Some(clean(&joined.join("\n"), MAX_SCRIPT_CHARS)).filter(|s| !s.is_empty())
        }
        _ => None,
    };
    let confidence = read_confidence(map.get("confidence"), "fix confidence", &mut scratch);
    Ok(FixDraft {
        proposal: FixProposal {
            title,
            rationale,
            steps,
            script,
            confidence: confidence.unwrap_or(0),
        },
        confidence_given: confidence.is_some(),
    })
}

/// The object's fields if it carries a turn field, or wraps (under a single key) an object that
/// does.
fn turn_fields(object: &Map<String, Value>) -> Option<&Map<String, Value>> {
    with_fields(object, TURN_FIELDS)
}

/// The object if it has any of `fields`, or the object it wraps under a single key if that one
/// has.
fn with_fields<'a>(
    object: &'a Map<String, Value>,
    fields: &[&str],
) -> Option<&'a Map<String, Value>> {
    if fields.iter().any(|f| object.contains_key(*f)) {
        return Some(object);
    }
    match object.values().next() {
        Some(Value::Object(inner))
            if object.len() == 1 && fields.iter().any(|f| inner.contains_key(*f)) =>
        {
            Some(inner)
        }
        _ => None,
    }
}

/// A balanced JSON object in the text, parsed.
#[derive(Debug)]
struct Found {
    start: usize,
    end: usize,
    value: Map<String, Value>,
}

enum Scan {
    /// A balanced candidate ends here (exclusive).
    Closed(usize),
    /// Never closes, closes on the wrong bracket, or nests too deep.
    Open,
    /// The work budget is spent.
    Spent,
}

/// The top-level JSON objects in `text`, in order. Candidates are balanced `{…}` spans (strings
/// and escapes respected, nesting at most [`MAX_DEPTH`]); one that does not parse is skipped and
/// the scan resumes at the next `{` after its start. The total work is bounded (a multiple of the
/// text's length, and [`MAX_PARSE_ATTEMPTS`] parses), so hostile input cannot make this
/// quadratic. Every index is at an ASCII byte, hence a character boundary.
fn json_objects(text: &str) -> Vec<Found> {
    let bytes = text.as_bytes();
    let mut budget = bytes.len().saturating_mul(16).saturating_add(4_096);
    let mut attempts = 0;
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(offset) = bytes
        .get(from..)
        .and_then(|rest| rest.iter().position(|&b| b == b'{'))
    {
        let start = from + offset;
        match balanced_end(bytes, start, &mut budget) {
            Scan::Closed(end) => {
                attempts += 1;
                if attempts > MAX_PARSE_ATTEMPTS {
                    break;
                }
                // Parsing costs the candidate's length from the same budget.
                budget = budget.saturating_sub(end - start);
                if let Some(Ok(Value::Object(value))) =
                    text.get(start..end).map(serde_json::from_str::<Value>)
                {
                    found.push(Found { start, end, value });
                    from = end;
                } else {
                    from = start + 1;
                }
            }
            Scan::Open => from = start + 1,
            Scan::Spent => break,
        }
    }
    found
}

/// Where the bracket opened at `start` closes.
fn balanced_end(bytes: &[u8], start: usize, budget: &mut usize) -> Scan {
    let Some(rest) = bytes.get(start..) else {
        return Scan::Open;
    };
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for (i, &b) in rest.iter().enumerate() {
        if *budget == 0 {
            return Scan::Spent;
        }
        *budget -= 1;
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Scan::Open;
                }
            }
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return if b == b'}' {
                        Scan::Closed(start + i + 1)
                    } else {
                        Scan::Open
                    };
                }
            }
            _ => {}
        }
    }
    Scan::Open
}

/// A `[SUGGEST_FIX]…[/SUGGEST_FIX]` block: from the opening tag to after the closing one (or, when
/// it is not closed, to the next opening tag or the end).
#[derive(Debug)]
struct Block {
    start: usize,
    body: (usize, usize),
    end: usize,
}

/// The fix blocks in `text`, in order (tags matched case-insensitively).
fn fix_blocks(text: &str) -> Vec<Block> {
    let bytes = text.as_bytes();
    // Every tag is found once, so many unclosed tags cost linear time, not quadratic.
    let opens = find_all_ci(bytes, OPEN_TAG);
    let closes = find_all_ci(bytes, CLOSE_TAG);
    let mut blocks = Vec::new();
    let mut close = 0;
    for (n, &start) in opens.iter().enumerate() {
        let body_start = start + OPEN_TAG.len();
        // Tags cannot overlap, so the next one starts after this one ends.
        let next_open = opens.get(n + 1).copied().unwrap_or(bytes.len());
        while closes.get(close).is_some_and(|&c| c < body_start) {
            close += 1;
        }
        let (body_end, end) = match closes.get(close) {
            Some(&at) if at < next_open => (at, at + CLOSE_TAG.len()),
            // Not closed: the block is the first JSON object after the tag, if any.
            _ => {
                let first = text
                    .get(body_start..next_open)
                    .and_then(|body| json_objects(body).into_iter().next());
                let end = first.map_or(next_open, |o| body_start + o.end);
                (end, end)
            }
        };
        blocks.push(Block {
            start,
            body: (body_start, body_end),
            end,
        });
    }
    blocks
}

/// The fix in a block: its first JSON object.
fn block_fix(text: &str, block: &Block) -> Result<FixDraft, String> {
    let body = text.get(block.body.0..block.body.1).unwrap_or_default();
    match json_objects(body).into_iter().next() {
        Some(found) => {
            read_fix(&found.value).map_err(|e| format!("fix block at byte {}: {e}", block.start))
        }
        None => Err(format!(
            "fix block at byte {}: no JSON object in it",
            block.start
        )),
    }
}

/// `text` with the blocks cut out.
fn without_blocks(text: &str, blocks: &[Block]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for block in blocks {
        out.push_str(text.get(at..block.start).unwrap_or_default());
        at = block.end;
    }
    out.push_str(text.get(at..).unwrap_or_default());
    out
}

/// Every position of ASCII `needle` in `haystack`, ignoring ASCII case. Matches start and end at
/// ASCII bytes, so they are character boundaries.
fn find_all_ci(haystack: &[u8], needle: &[u8]) -> Vec<usize> {
    if needle.is_empty() {
        return Vec::new();
    }
    haystack
        .windows(needle.len())
        .enumerate()
        .filter(|(_, window)| window.eq_ignore_ascii_case(needle))
        .map(|(i, _)| i)
        .collect()
}

/// `text` without an outer code fence: when it starts with ```` ``` ```` the first line goes, and
/// a closing fence at the end goes too.
fn strip_fence(text: &str) -> &str {
    let trimmed = text.trim();
    if !trimmed.starts_with("```") {
        return trimmed;
    }
    let Some(newline) = trimmed.find('\n') else {
        return trimmed.trim_start_matches('`').trim();
    };
    let inner = &trimmed[newline + 1..];
    inner
        .trim_end()
        .strip_suffix("```")
        .unwrap_or(inner)
        .trim_matches('\n')
}

/// A fenced YAML block: where the fence starts and ends in the text, and what is inside.
struct Fence<'a> {
    start: usize,
    end: usize,
    body: &'a str,
}

/// The first ```` ```yaml ```` / ```` ```yml ```` block, or a bare ```` ``` ```` block whose content starts
/// `id:`. An unclosed fence runs to the end.
fn yaml_fence(text: &str) -> Option<Fence<'_>> {
    let mut offset = 0;
    let mut open: Option<(usize, usize, bool)> = None;
    for line in text.split_inclusive('\n') {
        let line_start = offset;
        offset += line.len();
        let trimmed = line.trim();
        if !trimmed.starts_with("```") {
            continue;
        }
        match open {
            None => {
                let info = trimmed.trim_start_matches('`').trim().to_ascii_lowercase();
                open = Some((line_start, offset, info == "yaml" || info == "yml"));
            }
            Some((start, body_start, tagged)) => {
                let body = text.get(body_start..line_start).unwrap_or_default();
                if !body.trim().is_empty() && (tagged || body.trim_start().starts_with("id:")) {
                    return Some(Fence {
                        start,
                        end: offset,
                        body,
                    });
                }
                open = None;
            }
        }
    }
    match open {
        Some((start, body_start, tagged)) => {
            let body = text.get(body_start..).unwrap_or_default();
            (!body.trim().is_empty() && (tagged || body.trim_start().starts_with("id:"))).then_some(
                Fence {
                    start,
                    end: text.len(),
                    body,
                },
            )
        }
        None => None,
    }
}

/// Whether `line` is one of the note's section headings: its index, and any text that followed a
/// bold or `Name:` label on the same line.
fn section_heading(line: &str) -> Option<(usize, &str)> {
    let t = line.trim();
    if t.is_empty() {
        return None;
    }
    // `#`… headings: the whole line is the name.
    if t.starts_with('#') {
        let hashes = t.len() - t.trim_start_matches('#').len();
        if hashes > 6 {
            return None;
        }
        return section_index(&t[hashes..]).map(|i| (i, ""));
    }
    // `**Name**`, `**Name:**`, `__Name__`, possibly followed by text.
    for marker in ["**", "__"] {
        if let Some(inner) = t.strip_prefix(marker)
            && let Some(close) = inner.find(marker)
        {
            let name = &inner[..close];
            let rest = inner[close + marker.len()..].trim_start_matches(':').trim();
            return section_index(name).map(|i| (i, rest));
        }
    }
    // A line that is just the name, or `Name: text`.
    if let Some(i) = section_index(t) {
        return Some((i, ""));
    }
    let (name, rest) = t.split_once(':')?;
    section_index(name).map(|i| (i, rest.trim()))
}

/// Which section a heading's text names (case, numbering, bold markers and a colon ignored).
fn section_index(name: &str) -> Option<usize> {
    let name = name.trim().trim_matches(|c| c == '*' || c == '_').trim();
    let name = name.trim_end_matches(':').trim();
    // "1. Problem", "2) What we confirmed".
    let digits = name.len() - name.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let name = if digits > 0 {
        name[digits..].trim_start_matches(['.', ')']).trim()
    } else {
        name
    };
    let words: Vec<String> = name.split_whitespace().map(str::to_lowercase).collect();
    let normalised = words.join(" ");
    NOTE_SECTIONS
        .iter()
        .position(|section| section.to_lowercase() == normalised)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn turn(text: &str) -> Parsed<TurnReply> {
        parse_turn(text).unwrap_or_else(|e| panic!("{e}: {text}"))
    }

    fn full() -> Value {
        json!({
            "message": "Spooler looks stuck.",
            "questions": ["Do other users print?", "Any jobs in the queue?"],
            "actions": ["Open the print queue"],
            "facts": ["Printer pings"],
            "suggested_fix": {
                "title": "Restart the spooler",
                "rationale": "A stuck job blocks the queue.",
                "steps": ["Restart-Service Spooler -Force"],
                "script": "Restart-Service Spooler -Force",
                "confidence": 70
            },
            "confidence": 65
        })
    }

    #[test]
    fn a_well_formed_turn_is_read_whole() {
        let parsed = turn(&full().to_string());
        let reply = parsed.value;
        assert_eq!(reply.message, "Spooler looks stuck.");
        assert_eq!(reply.questions.len(), 2);
        assert_eq!(reply.actions, ["Open the print queue"]);
        assert_eq!(reply.facts, ["Printer pings"]);
        assert_eq!(reply.confidence, 65);
        let fix = reply.fix.unwrap();
        assert_eq!(fix.title, "Restart the spooler");
        assert_eq!(
            fix.script.as_deref(),
            Some("Restart-Service Spooler -Force")
        );
        assert_eq!(fix.confidence, 70);
        assert!(parsed.warnings.is_empty(), "{:?}", parsed.warnings);
    }

    #[test]
    fn fences_and_prose_around_the_object_are_ignored() {
        let fenced = format!("```json\n{}\n```", full());
        assert_eq!(turn(&fenced).value.message, "Spooler looks stuck.");
        let prose = format!(
            "Sure! Here is my answer {{as requested}}:\n\n{}\n\nLet me know if {{anything}} else.",
            serde_json::to_string_pretty(&full()).unwrap()
        );
        let reply = turn(&prose).value;
        assert_eq!(reply.message, "Spooler looks stuck.");
        assert_eq!(reply.confidence, 65);
        // An unclosed brace in the prose before the object does not hide it.
        let unclosed = format!("I think {{maybe. {}", full());
        assert_eq!(turn(&unclosed).value.confidence, 65);
        // Nor does a quote in the prose.
        let quoted = format!("He said \"{{ then: {}", full());
        assert_eq!(turn(&quoted).value.confidence, 65);
    }

    #[test]
    fn braces_and_quotes_inside_strings_do_not_confuse_the_scanner() {
        let value = json!({
            "message": "Run `Get-Printer | ? { $_.Name -eq \"HP\" }` and check } and {",
            "questions": [], "actions": [], "facts": [], "suggested_fix": null, "confidence": 50
        });
        let reply = turn(&format!("prefix {value} suffix")).value;
        assert!(reply.message.contains("$_.Name -eq \"HP\""));
        assert_eq!(reply.confidence, 50);
    }

    #[test]
    fn a_wrapped_turn_is_unwrapped() {
        let wrapped = json!({ "response": full() });
        assert_eq!(turn(&wrapped.to_string()).value.confidence, 65);
    }

    #[test]
    fn the_last_valid_fix_wins_across_blocks_and_the_object() {
        let block = |title: &str| {
            format!(
                "[SUGGEST_FIX]{{\"title\": \"{title}\", \"steps\": [\"x\"], \"confidence\": 40}}[/SUGGEST_FIX]"
            )
        };
        // Object first, then two blocks: the last block wins.
        let text = format!("{}\n{}\n{}", full(), block("Block one"), block("Block two"));
        let reply = turn(&text).value;
        assert_eq!(reply.fix.unwrap().title, "Block two");
        assert_eq!(
            reply.message, "Spooler looks stuck.",
            "the block's JSON is not the turn"
        );
        // A block, then the object: the object's fix is later.
        let text = format!("{}\n{}", block("Block one"), full());
        assert_eq!(turn(&text).value.fix.unwrap().title, "Restart the spooler");
        // A null fix in the object does not cancel an earlier block.
        let mut no_fix = full();
        no_fix["suggested_fix"] = Value::Null;
        let text = format!("{}\n{no_fix}", block("Block one"));
        assert_eq!(turn(&text).value.fix.unwrap().title, "Block one");
        // Tags in any case; an unclosed block ends after its object.
        let text = format!("{no_fix} [SUGGEST_FIX]{{\"title\": \"unclosed\"}} and then some prose");
        let parsed = turn(&text);
        assert_eq!(parsed.value.fix.unwrap().title, "unclosed");
        // Tags in any case.
        let text = format!("{no_fix} [suggest_fix]{{\"title\": \"lower\"}}[/Suggest_Fix]");
        assert_eq!(turn(&text).value.fix.unwrap().title, "lower");
    }

    #[test]
    fn a_malformed_fix_block_is_skipped_with_a_warning() {
        let text = format!(
            "{}\n[SUGGEST_FIX]{{\"rationale\": \"no title\"}}[/SUGGEST_FIX]\n[SUGGEST_FIX]not json at all[/SUGGEST_FIX]\n[SUGGEST_FIX]{{\"title\": broken",
            full()
        );
        let parsed = turn(&text);
        assert_eq!(parsed.value.fix.unwrap().title, "Restart the spooler");
        assert_eq!(parsed.warnings.len(), 3, "{:?}", parsed.warnings);
        assert!(parsed.warnings.iter().all(|w| w.starts_with("fix skipped")));
        assert!(parsed.warnings[0].contains("without a title"));
        // An object fix without a title is invalid too.
        let mut untitled = full();
        untitled["suggested_fix"]["title"] = json!("  ");
        let parsed = turn(&untitled.to_string());
        assert!(parsed.value.fix.is_none());
        assert_eq!(parsed.warnings.len(), 1);
    }

    #[test]
    fn the_original_products_prose_and_fix_block_is_understood() {
        let text = "The spooler is hung.\n\n[SUGGEST_FIX]\n```json\n{\"title\": \"Restart the spooler\", \"rationale\": \"Hung\", \"steps\": \"Open services.msc\\nRestart Print Spooler\", \"confidence\": \"80%\"}\n```\n[/SUGGEST_FIX]\nTell me how it goes.";
        let parsed = turn(text);
        let reply = parsed.value;
        assert_eq!(
            reply.message,
            "The spooler is hung.\n\nTell me how it goes."
        );
        let fix = reply.fix.unwrap();
        assert_eq!(fix.steps, ["Open services.msc", "Restart Print Spooler"]);
        assert_eq!(fix.confidence, 80);
        assert_eq!(
            reply.confidence, 80,
            "the fix's confidence stands for the turn's"
        );
        assert!(!parsed.warnings.is_empty());
    }

    #[test]
    fn a_fix_block_inside_the_message_string_counts() {
        let value = json!({
            "message": "Try this. [SUGGEST_FIX]{\"title\": \"Clear the queue\"}[/SUGGEST_FIX]",
            "confidence": 55
        });
        let reply = turn(&value.to_string()).value;
        assert_eq!(reply.message, "Try this.");
        let fix = reply.fix.unwrap();
        assert_eq!(fix.title, "Clear the queue");
        assert_eq!(
            fix.confidence, 55,
            "a fix without confidence takes the turn's"
        );
    }

    #[test]
    fn confidence_is_read_leniently_and_clamped() {
        let cases: &[(Value, u8)] = &[
            (json!(-5), 0),
            (json!(150), 100),
            (json!(0.72), 72),
            (json!(1.0), 100),
            (json!(1), 1),
            (json!(85), 85),
            (json!("85%"), 85),
            (json!("85"), 85),
            (json!(" 0.5 "), 50),
            (json!("0.5%"), 1),
            (json!("high"), 80),
            (json!(72.6), 73),
            (json!(-0.3), 0),
            (json!(1e300), 100),
        ];
        for (value, expected) in cases {
            let text = json!({ "message": "m", "confidence": value }).to_string();
            assert_eq!(turn(&text).value.confidence, *expected, "{value}");
        }
        for value in [json!("sure"), json!([1]), json!({ "v": 1 }), Value::Null] {
            let text = json!({ "message": "m", "confidence": value }).to_string();
            assert_eq!(turn(&text).value.confidence, 0, "{value}");
        }
        let text = json!({ "message": "m", "suggested_fix": { "title": "t", "confidence": 0.9 }, "confidence": 30 }).to_string();
        assert_eq!(turn(&text).value.fix.unwrap().confidence, 90);
    }

    #[test]
    fn wrong_types_are_coerced_or_dropped() {
        let text = json!({
            "message": ["Line one", "Line two"],
            "questions": "Is it on?\n- Is it plugged in?\n\n",
            "actions": [1, true, null, {"x": 1}, ["nested"], "  ", "Check it"],
            "facts": {"not": "a list"},
            "suggested_fix": 42,
            "confidence": "70"
        })
        .to_string();
        let parsed = turn(&text);
        let reply = parsed.value;
        assert_eq!(reply.message, "Line one\nLine two");
        assert_eq!(reply.questions, ["Is it on?", "Is it plugged in?"]);
        assert_eq!(reply.actions, ["1", "true", "Check it"]);
        assert!(reply.facts.is_empty());
        assert!(reply.fix.is_none());
        assert_eq!(reply.confidence, 70);
        assert!(parsed.warnings.len() >= 4, "{:?}", parsed.warnings);
        // A number as the message is its text.
        let text = json!({"message": 42, "questions": []}).to_string();
        assert_eq!(turn(&text).value.message, "42");
    }

    #[test]
    fn lists_and_strings_are_capped() {
        let many: Vec<String> = (0..20).map(|i| format!("Question {i}?")).collect();
        let long = "é".repeat(MAX_CHARS + 50);
        let text = json!({ "message": long, "questions": many, "confidence": 50 }).to_string();
        let parsed = turn(&text);
        assert_eq!(parsed.value.questions.len(), MAX_ITEMS);
        assert_eq!(parsed.value.message.chars().count(), MAX_CHARS + 1);
        assert!(parsed.value.message.ends_with('…'));
        assert!(parsed.warnings.iter().any(|w| w.contains("first 8 of 20")));
    }

    #[test]
    fn text_without_json_or_fields_is_an_error() {
        assert_eq!(parse_turn(""), Err(ParseError::Empty));
        assert_eq!(parse_turn("   \n\t"), Err(ParseError::Empty));
        assert!(matches!(
            parse_turn("I think maybe {not json"),
            Err(ParseError::NoStructuredOutput { .. })
        ));
        assert!(matches!(
            parse_turn("<html>502 Bad Gateway</html>"),
            Err(ParseError::NoStructuredOutput { .. })
        ));
        assert!(matches!(
            parse_turn("```json\n{\"message\": 42, \"questions\": \""),
            Err(ParseError::NoStructuredOutput { .. })
        ));
        assert!(matches!(
            parse_turn("{\"answer\": \"yes\", \"confidence\": 90}"),
            Err(ParseError::MissingFields { .. })
        ));
        assert!(matches!(
            parse_turn("{\"message\": \"  \", \"questions\": []}"),
            Err(ParseError::NothingUsable(_))
        ));
        assert!(matches!(
            parse_turn("[1, 2, 3]"),
            Err(ParseError::NoStructuredOutput { .. })
        ));
    }

    #[test]
    fn errors_quote_only_a_short_excerpt() {
        let text = format!("Lorem ipsum {}", "dolor sit amet ".repeat(1_000));
        let error = parse_turn(&text).unwrap_err().to_string();
        assert!(error.len() < 200, "{error}");
        assert!(error.contains("Lorem ipsum"));
    }

    #[test]
    fn deeply_nested_garbage_neither_overflows_nor_hangs() {
        for text in [
            "{".repeat(200_000),
            "[".repeat(200_000),
            "{\"a\":".repeat(50_000),
            format!(
                "{}{}",
                "{\"message\":".repeat(100),
                "\"x\"".to_owned() + &"}".repeat(100)
            ),
            "{\"".repeat(100_000),
            "}{".repeat(100_000),
            "{}".repeat(100_000),
            "[SUGGEST_FIX]".repeat(20_000),
            "[SUGGEST_FIX]{\"title\":".repeat(10_000),
            "[SUGGEST_FIX]{\"title\":\"t\"}".repeat(8_000),
            format!("{{\"message\":\"{}\"}}", "[SUGGEST_FIX]{}".repeat(15_000)),
            "```\n".repeat(60_000),
            "## Problem\n".repeat(20_000),
        ] {
            let started = std::time::Instant::now();
            let _ = parse_turn(&text);
            let _ = parse_assessment(&text, "m");
            let _ = parse_flow_draft(&text);
            let _ = check_note(&text);
            assert!(
                started.elapsed().as_secs() < 5,
                "too slow on {}",
                excerpt(&text)
            );
        }
    }

    #[test]
    fn huge_input_is_capped_and_the_object_at_its_start_still_read() {
        let text = format!("{}{}", full(), " padding".repeat(100_000));
        let parsed = turn(&text);
        assert_eq!(parsed.value.confidence, 65);
        assert!(parsed.warnings.iter().any(|w| w.contains("only the first")));
        // An object beyond the cap is not read.
        let text = format!("{}{}", "x".repeat(MAX_INPUT_BYTES), full());
        assert!(parse_turn(&text).is_err());
    }

    #[test]
    fn unicode_cut_points_are_safe() {
        // The cap falls inside multi-byte characters at every offset.
        for pad in 0..4 {
            let text = format!(
                "{}{}",
                "a".repeat(pad),
                "€😀".repeat(MAX_INPUT_BYTES / 7 + 10)
            );
            assert!(parse_turn(&text).is_err());
            assert!(check_note(&text).is_err());
        }
        // Strings cut inside a run of multi-byte characters.
        let text =
            json!({ "message": "😀".repeat(MAX_CHARS * 2), "questions": ["ü".repeat(5_000)] })
                .to_string();
        let reply = turn(&text).value;
        assert_eq!(reply.message.chars().count(), MAX_CHARS + 1);
        assert_eq!(reply.questions[0].chars().count(), MAX_CHARS + 1);
        // Excerpts of multi-byte text.
        let error = parse_turn(&"日本語".repeat(100)).unwrap_err().to_string();
        assert!(error.contains("日本語"));
        // Tags next to multi-byte characters.
        let text = "é[SUGGEST_FIX]é{\"title\":\"ü\"}é[/SUGGEST_FIX]é";
        assert_eq!(turn(text).value.fix.unwrap().title, "ü");
    }

    #[test]
    fn control_characters_are_stripped() {
        let text = json!({ "message": "a\u{0}b\u{7}c\nd\te", "confidence": 1 }).to_string();
        assert_eq!(turn(&text).value.message, "abc\nd\te");
    }

    #[test]
    fn assessments_are_read() {
        let text = "Here you go:\n```json\n{\"likely_cause\": \"Stale WSD port\", \"next_steps\": [\"Check the port\", \"Reserve the IP\"], \"confidence\": 0.6}\n```";
        let assessment = parse_assessment(text, "claude-sonnet-4-5").unwrap();
        assert_eq!(assessment.likely_cause, "Stale WSD port");
        assert_eq!(assessment.next_steps.len(), 2);
        assert_eq!(assessment.confidence, 60);
        assert_eq!(assessment.source, "claude-sonnet-4-5");
        let only_steps = parse_assessment("{\"next_steps\": \"Ping it\"}", "m").unwrap();
        assert_eq!(only_steps.next_steps, ["Ping it"]);
        assert_eq!(only_steps.confidence, 0);
        assert!(matches!(
            parse_assessment("no idea", "m"),
            Err(ParseError::NoStructuredOutput { .. })
        ));
        assert!(matches!(
            parse_assessment("{\"message\": \"hi\"}", "m"),
            Err(ParseError::MissingFields { .. })
        ));
        assert!(matches!(
            parse_assessment("{\"likely_cause\": \"\", \"next_steps\": []}", "m"),
            Err(ParseError::NothingUsable(_))
        ));
        assert_eq!(parse_assessment("", "m"), Err(ParseError::Empty));
    }

    const YAML: &str = "id: test-flow\ntitle: Test\nkind: troubleshooting\nnodes:\n  - id: a\n    type: solution\n    text: Done";

    #[test]
    fn flow_drafts_are_read_from_json_or_a_yaml_fence() {
        let text =
            json!({ "yaml": YAML, "rationale": "Three sessions ended the same way." }).to_string();
        let (yaml, rationale) = parse_flow_draft(&text).unwrap();
        assert_eq!(yaml, YAML);
        assert_eq!(rationale, "Three sessions ended the same way.");
        let fenced_inside =
            json!({ "yaml": format!("```yaml\n{YAML}\n```"), "rationale": "r" }).to_string();
        assert_eq!(parse_flow_draft(&fenced_inside).unwrap().0, YAML);
        let fenced =
            format!("Here is the flow.\n\n```yaml\n{YAML}\n```\n\nIt covers the common case.");
        let (yaml, rationale) = parse_flow_draft(&fenced).unwrap();
        assert_eq!(yaml, YAML);
        assert_eq!(rationale, "Here is the flow.\n\nIt covers the common case.");
        let bare_fence = format!("```\n{YAML}\n```");
        assert_eq!(parse_flow_draft(&bare_fence).unwrap().0, YAML);
        assert_eq!(parse_flow_draft(YAML).unwrap().0, YAML);
        let object = json!({ "yaml": { "id": "x", "title": "X" }, "rationale": "r" }).to_string();
        assert!(parse_flow_draft(&object).unwrap().0.contains("id: x"));
        assert!(matches!(
            parse_flow_draft("no flow here"),
            Err(ParseError::NoStructuredOutput { .. })
        ));
        assert!(matches!(
            parse_flow_draft("{\"yaml\": \"\", \"rationale\": \"r\"}"),
            Err(ParseError::MissingFields { .. })
        ));
        assert!(parse_flow_draft("```python\nprint(1)\n```").is_err());
        // An empty YAML fence is no draft (found by the fuzzer).
        assert!(parse_flow_draft("Here:\n```yaml\n\r```json\ny{\"a\": 1").is_err());
        assert!(parse_flow_draft("```yaml\n   \n").is_err());
        // An empty fence does not hide a later one.
        let later = format!("```yaml\n```\nthen\n```yaml\n{YAML}\n```");
        assert_eq!(parse_flow_draft(&later).unwrap().0, YAML);
    }

    const NOTE: &str = "## Problem\nPrinter offline.\n\n## What we confirmed\n- Pings\n\n## Root cause\nWSD port.\n\n## Resolution\nSwitched to TCP/IP.";

    #[test]
    fn a_note_with_the_four_sections_passes() {
        assert_eq!(check_note(NOTE).unwrap(), NOTE);
        let fenced = format!("```markdown\n{NOTE}\n```");
        assert_eq!(check_note(&fenced).unwrap(), NOTE);
        let with_preamble = format!("Here is the note:\n\n{NOTE}");
        assert_eq!(check_note(&with_preamble).unwrap(), NOTE);
    }

    #[test]
    fn note_headings_are_read_leniently() {
        let note = "# PROBLEM\nPrinter offline.\n**What we confirmed:**\n- Pings\n__Root Cause__: WSD port.\n1. resolution\nSwitched.";
        let checked = check_note(note).unwrap();
        assert_eq!(
            checked,
            "## Problem\nPrinter offline.\n\n## What we confirmed\n- Pings\n\n## Root cause\nWSD port.\n\n## Resolution\nSwitched."
        );
        let plain = "Problem: Printer offline.\nWhat we confirmed: it pings\nRoot cause: WSD\nResolution: TCP/IP port";
        assert!(check_note(plain).is_ok());
        // A code block inside a section survives.
        let with_code = "## Problem\np\n## What we confirmed\nc\n## Root cause\nr\n## Resolution\n```powershell\nRestart-Service Spooler\n```";
        assert!(
            check_note(with_code)
                .unwrap()
                .ends_with("```powershell\nRestart-Service Spooler\n```")
        );
    }

    #[test]
    fn notes_missing_sections_or_out_of_order_are_refused() {
        let missing = "## Problem\np\n## Root cause\nr\n## Resolution\nx";
        assert_eq!(
            check_note(missing),
            Err(ParseError::MissingSections {
                missing: vec!["What we confirmed"]
            })
        );
        let disordered =
            "## Problem\np\n## Root cause\nr\n## What we confirmed\nc\n## Resolution\nx";
        assert_eq!(check_note(disordered), Err(ParseError::SectionsOutOfOrder));
        assert_eq!(check_note("```\n```"), Err(ParseError::Empty));
        assert!(matches!(
            check_note("just some text"),
            Err(ParseError::MissingSections { .. })
        ));
        let long = format!("{NOTE}\n{}", "x".repeat(MAX_NOTE_CHARS));
        assert!(matches!(check_note(&long), Err(ParseError::TooLong { .. })));
    }

    #[test]
    fn error_messages_read_well() {
        let missing = ParseError::MissingSections {
            missing: vec!["Root cause", "Resolution"],
        };
        assert_eq!(
            missing.to_string(),
            "the note lacks the section(s): Root cause, Resolution"
        );
        let none = parse_turn("502 Bad Gateway").unwrap_err();
        assert_eq!(
            none.to_string(),
            "no JSON object in the answer (15 bytes, starting \"502 Bad Gateway\")"
        );
    }
}
