//! ResolutionFlow's platform-neutral core.
//!
//! Domain types, the flow library, the session engine, documentation and redaction, and the ports
//! (traits) the outside world implements. Nothing here knows a chat platform, an SQL dialect, an
//! HTTP framework or an LLM vendor.
#![forbid(unsafe_code)]

pub mod ai;
pub mod command;
pub mod counters;
pub mod dispatch;
pub mod domain;
pub mod effect;
pub mod engine;
pub mod escalation;
pub mod export;
pub mod flow;
pub mod handoff;
pub mod ids;
pub mod jobs;
pub mod keyed;
pub mod links;
pub mod metrics;
pub mod notify;
pub mod outbox;
pub mod ports;
pub mod psa;
pub mod redact;
pub mod session;
pub mod team;
pub mod time;

pub use engine::{CommandOutcome, Engine, EngineError, EngineResult, Input};
pub use ports::{Store, StoreError, StoreResult};
