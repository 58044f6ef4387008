//! E-mail over SMTP with lettre.

use crate::config::SmtpConfig;
use anyhow::Context;
use async_trait::async_trait;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use rf_core::notify::{Email, Mailer, NotifyError};
use secrecy::ExposeSecret;
use std::time::Duration;

/// Sends e-mail through the configured SMTP server.
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl std::fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpMailer")
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

impl SmtpMailer {
    /// `None` when no SMTP host is configured.
    pub fn from_config(config: &SmtpConfig) -> anyhow::Result<Option<Self>> {
        if config.host.trim().is_empty() {
            return Ok(None);
        }
        let host = config.host.trim();
        let mut builder = match config.tls.as_str() {
            "starttls" => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)
                .with_context(|| format!("SMTP host {host}"))?,
            "tls" => AsyncSmtpTransport::<Tokio1Executor>::relay(host)
                .with_context(|| format!("SMTP host {host}"))?,
            "none" => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
            other => anyhow::bail!("smtp.tls must be starttls, tls or none, not `{other}`"),
        }
        .port(config.port)
        .timeout(Some(Duration::from_secs(config.timeout_seconds)));
        if let (Some(user), Some(password)) = (&config.username, &config.password) {
            builder = builder.credentials(Credentials::new(
                user.clone(),
                password.expose_secret().to_owned(),
            ));
        }
        let from: Mailbox = config
            .from
            .parse()
            .with_context(|| format!("smtp.from `{}` is not an e-mail address", config.from))?;
        Ok(Some(Self {
            transport: builder.build(),
            from,
        }))
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, email: &Email) -> Result<(), NotifyError> {
        let to: Mailbox = email.to.parse().map_err(|e| {
            NotifyError::Permanent(format!("bad recipient address {}: {e}", email.to))
        })?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(email.subject.clone())
            .multipart(MultiPart::alternative_plain_html(
                email.text.clone(),
                email.html.clone(),
            ))
            .map_err(|e| NotifyError::Permanent(format!("could not build the e-mail: {e}")))?;
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() => Err(NotifyError::Permanent(format!(
                "the mail server refused it: {e}"
            ))),
            Err(e) => Err(NotifyError::Transient(format!("mail server: {e}"))),
        }
    }
}
