//! Feeds arbitrary bytes (as lossy UTF-8) to every model-output parser: none may panic, hang or
//! overflow the stack, whatever the model sends.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rf_ai::parse::{check_note, parse_assessment, parse_flow_draft, parse_turn};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(parsed) = parse_turn(&text) {
        let reply = parsed.value;
        assert!(reply.confidence <= 100);
        assert!(reply.questions.len() <= rf_ai::parse::MAX_ITEMS);
        assert!(reply.actions.len() <= rf_ai::parse::MAX_ITEMS);
        assert!(reply.facts.len() <= rf_ai::parse::MAX_ITEMS);
        assert!(reply.message.chars().count() <= rf_ai::parse::MAX_CHARS + 1);
        if let Some(fix) = reply.fix {
            assert!(!fix.title.is_empty());
            assert!(fix.confidence <= 100);
            assert!(fix.steps.len() <= rf_ai::parse::MAX_STEPS);
        }
    }
    if let Ok(assessment) = parse_assessment(&text, "fuzz") {
        assert!(assessment.confidence <= 100);
        assert!(!assessment.likely_cause.is_empty());
    }
    if let Ok((yaml, _rationale)) = parse_flow_draft(&text) {
        assert!(!yaml.trim().is_empty());
    }
    if let Ok(note) = check_note(&text) {
        assert!(note.starts_with("## Problem"));
    }
});
