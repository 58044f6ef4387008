//! The Slack adapter. Thin by design: it turns Slack payloads into core inputs and core effects
//! into Slack Web API calls, and nothing else.
#![forbid(unsafe_code)]

pub mod blocks;
pub mod verify;
