//! The Slack adapter: Events API, slash commands and interactivity over HTTP, Block Kit rendering
//! and the Web API, over slack-morphism. Thin by design: it turns Slack's requests into engine
//! calls and the engine's effects into Web API calls; every decision stays in the core.

pub mod blocks;
pub mod client;
pub mod forms;
pub mod handler;
pub mod inbound;
pub mod oauth;
pub mod routes;
pub mod socket;
pub mod verify;
