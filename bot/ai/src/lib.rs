//! The copilot behind [`rf_core::ai::Copilot`]: model providers (Anthropic Messages, any
//! OpenAI-compatible endpoint, and the offline provider that needs no key), tiered routing between
//! a fast and a deep model, prompts as files, a total parser for structured output, and the
//! resolution-note cache.

pub mod anthropic;
pub mod copilot;
pub mod llm;
pub mod offline;
pub mod openai;
pub mod parse;
pub mod prompts;
pub mod schema;
