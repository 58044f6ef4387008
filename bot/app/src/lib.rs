//! The `resolutionflow` binary's library: configuration, keys, wiring and the command line.
//!
//! `main` is thin: everything here is reachable from tests, which build an [`app::App`] on a
//! temporary database and serve it on a port-0 listener.
#![forbid(unsafe_code)]

pub mod ai;
pub mod app;
pub mod cli;
pub mod config;
pub mod feed;
pub mod flows;
pub mod jobs;
pub mod keys;
pub mod mail;
pub mod psa;
pub mod slack;
