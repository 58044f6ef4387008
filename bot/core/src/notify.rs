//! Ports for reaching people outside the thread they are in: chat platforms and e-mail.

use crate::domain::{ChannelRef, Platform, ThreadKey};
use crate::effect::Message;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Where a posted message lives, so it can be updated later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRef {
    pub channel: ChannelRef,
    /// The platform's id of the message (Slack `ts`, Discord message id, Teams activity id).
    pub id: String,
}

/// Why a platform call failed, as far as retrying is concerned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotifyError {
    #[error("rate limited; retry after {retry_after:?}")]
    RateLimited { retry_after: Option<Duration> },
    #[error("temporary failure: {0}")]
    Transient(String),
    #[error("{0}")]
    Permanent(String),
}

/// A chat platform, as the escalation machinery needs it.
#[async_trait]
pub trait Notifier: Send + Sync + std::fmt::Debug {
    /// Posts at the top level of a channel.
    async fn post(
        &self,
        channel: &ChannelRef,
        message: &Message,
    ) -> Result<MessageRef, NotifyError>;
    /// Replaces a posted message, for everyone who sees it.
    async fn update(&self, posted: &MessageRef, message: &Message) -> Result<(), NotifyError>;
    /// Posts in a thread.
    async fn reply(&self, thread: &ThreadKey, message: &Message) -> Result<(), NotifyError>;
    /// Messages one person privately.
    async fn direct(
        &self,
        workspace: &str,
        platform_user_id: &str,
        message: &Message,
    ) -> Result<(), NotifyError>;
    /// Adds a person to the thread's channel.
    async fn invite(&self, thread: &ThreadKey, platform_user_id: &str) -> Result<(), NotifyError>;
}

/// The notifiers of the platforms this server is connected to.
#[derive(Debug, Clone, Default)]
pub struct Notifiers(HashMap<Platform, Arc<dyn Notifier>>);

impl Notifiers {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with(mut self, platform: Platform, notifier: Arc<dyn Notifier>) -> Self {
        self.0.insert(platform, notifier);
        self
    }

    pub fn get(&self, platform: Platform) -> Option<&Arc<dyn Notifier>> {
        self.0.get(&platform)
    }
}

/// An e-mail to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Outgoing e-mail.
#[async_trait]
pub trait Mailer: Send + Sync + std::fmt::Debug {
    async fn send(&self, email: &Email) -> Result<(), NotifyError>;
}
