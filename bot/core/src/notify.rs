//! Ports for reaching people outside the thread they are in: chat platforms and e-mail.

use crate::domain::{ChannelRef, Platform, ThreadKey};
use crate::effect::{Block, Document, Message, Place};
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
    /// Shows a message to one person where they are (Slack's ephemeral messages); by default, a
    /// direct message.
    async fn ephemeral(
        &self,
        place: &Place,
        platform_user_id: &str,
        message: &Message,
    ) -> Result<(), NotifyError> {
        self.direct(&place.channel.workspace, platform_user_id, message)
            .await
    }
    /// Hands a document over in the thread; by default, as a message with the text verbatim.
    async fn document(&self, thread: &ThreadKey, document: &Document) -> Result<(), NotifyError> {
        let message = Message::new()
            .heading(document.filename.clone())
            .with(Block::Code {
                text: document.content.clone(),
            });
        self.reply(thread, &message).await
    }
}

/// Handles the events a chat platform sends, after they were recorded and acknowledged.
#[async_trait]
pub trait InboundHandler: Send + Sync + std::fmt::Debug {
    /// Handles one event of `account`. `attempt` counts from 1.
    async fn handle(
        &self,
        account: crate::ids::AccountId,
        event: &serde_json::Value,
        attempt: i32,
    ) -> crate::jobs::JobResult;
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

/// Carries out `effect` through `notifier`. A form can only be opened while the person's click is
/// fresh, so a form that reaches this point becomes a private hint to type the command instead.
pub async fn perform(
    notifier: &dyn Notifier,
    effect: &crate::effect::Effect,
) -> Result<(), NotifyError> {
    use crate::effect::Effect;
    match effect {
        Effect::Reply { thread, message } => notifier.reply(thread, message).await,
        Effect::Post { channel, message } => notifier.post(channel, message).await.map(drop),
        Effect::Private {
            place,
            platform_user_id,
            message,
            ..
        } => notifier.ephemeral(place, platform_user_id, message).await,
        Effect::OpenForm {
            place,
            platform_user_id,
            form,
            ..
        } => {
            let hint = Message::text(format!(
                "I couldn't open the \"{}\" form in time. Type `escalate <reason>` in the session thread instead.",
                form.title
            ));
            notifier.ephemeral(place, platform_user_id, &hint).await
        }
        Effect::Acknowledge { .. } => Ok(()),
        Effect::Document { thread, document } => notifier.document(thread, document).await,
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
