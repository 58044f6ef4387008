//! Linking PSA tickets and pushing the session note to them. The note is previewed first; the
//! button that posts it names the previewed content (its version), so what is posted is what was
//! seen, and the same note is queued for the same ticket once however often it is clicked.

use super::{Engine, EngineResult, Turn};
use crate::effect::{Action, Choice, ExportFormat, Message};
use crate::ids::SessionId;
use crate::jobs::{Job, NewJob};
use crate::psa::{NewPsaNote, NoteStatus, PsaConnection, note_version};
use crate::session::{Session, SessionChange};

/// How much of the note a preview shows in the thread.
const PREVIEW_CHARS: usize = 2_500;

/// What a push decision needs, loaded before deciding.
#[derive(Debug)]
pub(crate) struct PushContext {
    pub(crate) connection: Option<PsaConnection>,
    /// The note as it stands now.
    pub(crate) note: Option<String>,
    pub(crate) log: Vec<crate::psa::PsaNoteRecord>,
}

impl Engine {
    /// The team's PSA connection, if it has one.
    pub(super) async fn psa_connection(
        &self,
        session: &Session,
    ) -> EngineResult<Option<PsaConnection>> {
        Ok(self
            .store
            .psa_connection(session.account_id, session.team_id)
            .await?)
    }

    /// The note that would be posted: the session's plain-text documentation, redacted.
    pub(super) async fn note_text(&self, session: &Session) -> EngineResult<String> {
        let document = super::export_session(
            self.store.as_ref(),
            &self.redactor,
            session.account_id,
            session.id,
            ExportFormat::Text,
        )
        .await?;
        Ok(document.content)
    }

    /// `push` / "Push to ticket": shows the note and the button that posts it.
    pub(super) async fn push_preview(&self, turn: &Turn<'_>) -> EngineResult<Message> {
        let session = turn.session;
        let Some(ticket) = &session.psa_ticket else {
            return Ok(Message::text(
                "Link the ticket first: `ticket <number>`. Then `push` posts the note to it.",
            ));
        };
        let Some(connection) = self.psa_connection(session).await? else {
            return Ok(Message::text(no_connection()));
        };
        let note = self.note_text(session).await?;
        Ok(preview(session.id, ticket, &connection, &note, None))
    }

    /// `/rf psa`: whether the team is connected, and to what.
    pub(super) async fn psa_status(&self, actor: &crate::domain::Actor) -> EngineResult<String> {
        let connection = self
            .store
            .psa_connection(actor.account_id, actor.team_id)
            .await?;
        Ok(match connection {
            Some(c) => format!(
                "Your team is connected to {}. In a session thread, `ticket <number>` pulls a ticket in and `push` posts the note to it.",
                c.provider.title()
            ),
            None => no_connection().to_owned(),
        })
    }

    /// `/rf psa map @user <member>`: admins map anyone; everyone may map themselves.
    pub(super) async fn psa_map(
        &self,
        actor: &crate::domain::Actor,
        mention: &str,
        member: &str,
    ) -> EngineResult<String> {
        let (platform_user_id, _) = super::parse_mention(mention);
        if platform_user_id != actor.platform_user_id && !actor.role.is_admin() {
            return Ok(
                "Only admins can map other people; you can map yourself: `psa map @you <member>`."
                    .to_owned(),
            );
        }
        let Some(desk) = &self.desk else {
            return Ok("PSA integration is not enabled on this server.".to_owned());
        };
        let Some(user) = self
            .store
            .find_user(actor.account_id, actor.platform, &platform_user_id)
            .await?
        else {
            return Ok(format!(
                "I haven't met {mention} yet: they need to use ResolutionFlow once first."
            ));
        };
        Ok(
            match desk
                .map_member(actor.account_id, actor.team_id, user.id, member)
                .await
            {
                Ok(found) => format!(
                    "{}'s ticket notes are now credited to {} ({}).",
                    user.display_name, found.name, found.id
                ),
                Err(crate::psa::PsaError::NotConnected) => no_connection().to_owned(),
                Err(e) => format!("I couldn't map {}: {e}.", user.display_name),
            },
        )
    }

    pub(super) async fn push_context(&self, session: &Session) -> EngineResult<PushContext> {
        let connection = self.psa_connection(session).await?;
        let note = match (&connection, &session.psa_ticket) {
            (Some(_), Some(_)) => Some(self.note_text(session).await?),
            _ => None,
        };
        let log = self.store.psa_notes(session.account_id, session.id).await?;
        Ok(PushContext {
            connection,
            note,
            log,
        })
    }
}

impl Turn<'_> {
    /// "Post to ticket": queues the previewed note, once.
    pub(super) fn push_note(&self, version: &str) -> super::Decision {
        let session = self.session;
        let Some(ticket) = &session.psa_ticket else {
            return self.refuse("Link the ticket first: `ticket <number>`.");
        };
        let Some(context) = &self.loaded.push else {
            return self.refuse("Please try again.");
        };
        let (Some(connection), Some(note)) = (&context.connection, &context.note) else {
            return self.refuse(no_connection());
        };
        let current = note_version(ticket, note);
        if current != version {
            return super::Decision {
                effects: vec![self.reply(preview(
                    session.id,
                    ticket,
                    connection,
                    note,
                    Some("The session changed since that preview. This is the note as it stands now:"),
                ))],
                ..super::Decision::default()
            };
        }
        let key = format!("{}:{ticket}:{current}", session.id);
        let earlier: Vec<_> = context
            .log
            .iter()
            .filter(|n| n.idempotency_key.starts_with(&key))
            .collect();
        if let Some(done) = earlier.iter().find(|n| n.status == NoteStatus::Posted) {
            return self.refuse(format!(
                "This note is already in ticket #{ticket} (note {}).",
                done.psa_note_id.as_deref().unwrap_or("?")
            ));
        }
        if earlier.iter().any(|n| n.status == NoteStatus::Queued) {
            return self.refuse(format!(
                "This note is already on its way to ticket #{ticket}; I'll say here when it lands."
            ));
        }
        // Every earlier attempt failed: this is a new attempt, under its own key.
        let key = match earlier.len() {
            0 => key,
            n => format!("{key}:retry{n}"),
        };
        let id = uuid::Uuid::now_v7();
        let psa = connection.provider.title();
        super::Decision {
            change: SessionChange {
                psa_note: Some(NewPsaNote {
                    id,
                    idempotency_key: key,
                    ticket: ticket.clone(),
                    version: current,
                    body: note.clone(),
                    requested_by: self.actor.user_id,
                }),
                jobs: vec![NewJob::now(
                    session.account_id,
                    Job::PsaNote {
                        session: session.id,
                        note: id,
                    },
                    self.now,
                )],
                ..SessionChange::default()
            },
            effects: vec![self.reply(Message::text(format!(
                "Posting the session note to ticket #{ticket} in {psa} for {}…",
                self.actor.display_name
            )))],
        }
    }

    /// What linking a ticket says, and the job that pulls its details when a PSA is connected.
    pub(super) fn link_ticket(&self, ticket: &str) -> (Message, Vec<NewJob>) {
        let connection = self
            .loaded
            .push
            .as_ref()
            .and_then(|c| c.connection.as_ref());
        match connection {
            Some(connection) => (
                Message::text(format!(
                    "Linked to ticket #{ticket}. Pulling its details from {}…",
                    connection.provider.title()
                )),
                vec![NewJob::now(
                    self.session.account_id,
                    Job::PsaTicket {
                        session: self.session.id,
                        ticket: ticket.to_owned(),
                    },
                    self.now,
                )],
            ),
            None => (
                Message::text(format!(
                    "Linked to ticket #{ticket}. The ticket note will reference it. (No PSA is connected for your team, so its details can't be pulled; an admin can connect one in the companion's settings.)"
                )),
                Vec::new(),
            ),
        }
    }
}

/// The preview: the note (shortened if long), and the button that posts exactly this version.
fn preview(
    session: SessionId,
    ticket: &str,
    connection: &PsaConnection,
    note: &str,
    lead: Option<&str>,
) -> Message {
    let kind = connection
        .settings
        .get("note_kind")
        .and_then(|k| k.as_str())
        .unwrap_or("internal");
    let shown = match note.char_indices().nth(PREVIEW_CHARS) {
        Some((cut, _)) => format!(
            "{}\n… ({} more characters)",
            &note[..cut],
            note[cut..].chars().count()
        ),
        None => note.to_owned(),
    };
    let mut message = Message::new();
    if let Some(lead) = lead {
        message = message.paragraph(lead);
    }
    message
        .heading(format!(
            "Note for ticket #{ticket} ({}, {kind} note)",
            connection.provider.title()
        ))
        .code(shown)
        .choices(vec![
            Choice::new(
                format!("Post to ticket #{ticket}"),
                Action::PushNote {
                    session,
                    version: note_version(ticket, note),
                },
            )
            .primary(),
        ])
        .context("Sensitive values are redacted. Nothing is posted until you press the button.")
}

fn no_connection() -> &'static str {
    "No PSA is connected for your team. An admin can connect ConnectWise, Autotask or HaloPSA in the companion's settings (or `resolutionflow psa add`)."
}
