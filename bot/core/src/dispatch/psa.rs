//! PSA jobs: pulling a linked ticket's details into its session, and posting queued notes. A PSA
//! outage never blocks a session: the job retries on the backoff (or when the PSA says), the
//! thread is told once that the note is waiting, and again when it lands or why it could not.

use super::{Dispatcher, retry};
use crate::effect::{Block, Message};
use crate::ids::AccountId;
use crate::jobs::{JobRecord, JobResult};
use crate::ports::StoreError;
use crate::psa::{NoteOutcome, NoteStatus, Provider, PsaError, Ticket};
use crate::session::{NewStep, Session, StepKind};

impl Dispatcher {
    pub(super) async fn psa_ticket(
        &self,
        job: &JobRecord,
        session: crate::ids::SessionId,
        ticket: &str,
    ) -> JobResult {
        let account = job.account_id;
        let Some(desk) = &self.desk else {
            return JobResult::Done;
        };
        let session = match self.store.get_session(account, session).await {
            Ok(session) => session,
            Err(StoreError::NotFound { .. }) => return JobResult::Done,
            Err(e) => return retry(e),
        };
        if session.psa_ticket.as_deref() != Some(ticket) {
            // Another ticket was linked since: its own job pulls it.
            return JobResult::Done;
        }
        let provider = match desk.provider(account, session.team_id).await {
            Ok(provider) => provider,
            Err(PsaError::NotConnected) => return JobResult::Done,
            Err(e) => return self.psa_failed(job, &session, ticket, None, e).await,
        };
        match desk.ticket(account, session.team_id, ticket).await {
            Ok(details) => {
                self.record_ticket(account, session, details, provider)
                    .await
            }
            Err(e) => {
                self.psa_failed(job, &session, ticket, Some(provider), e)
                    .await
            }
        }
    }

    /// Records the pulled details in the session's timeline and shows them in its thread.
    async fn record_ticket(
        &self,
        account: AccountId,
        session: Session,
        details: Ticket,
        provider: Provider,
    ) -> JobResult {
        let details = self.redact_ticket(details);
        let reply = self.thread_reply(&session, ticket_message(&details, provider));
        let step = NewStep::bot(StepKind::TicketPulled {
            ticket: details,
            provider,
        });
        match self
            .commit_step(account, session.id, step, vec![reply])
            .await
        {
            Ok(()) => JobResult::Done,
            Err(e) => retry(e),
        }
    }

    fn redact_ticket(&self, ticket: Ticket) -> Ticket {
        let redact = |text: String| self.redactor.redact(&text).into_owned();
        Ticket {
            id: ticket.id,
            summary: redact(ticket.summary),
            company: ticket.company.map(redact),
            contact: ticket.contact.map(redact),
            board: ticket.board,
            status: ticket.status,
            priority: ticket.priority,
            description: ticket.description.map(redact),
        }
    }

    /// A pull that failed: retried while it may succeed, otherwise explained in the thread.
    async fn psa_failed(
        &self,
        job: &JobRecord,
        session: &Session,
        ticket: &str,
        provider: Option<Provider>,
        error: PsaError,
    ) -> JobResult {
        if error.is_transient() && job.attempts < job.max_attempts {
            return JobResult::Retry {
                error: error.to_string(),
                after: error.retry_after(),
            };
        }
        let psa = provider.map_or("the PSA", Provider::title);
        let text = format!(
            "I couldn't pull ticket #{ticket} from {psa}: {error}. The session goes on; the ticket stays linked for the note."
        );
        self.tell(session, text).await
    }

    /// Queues a message for the session's thread.
    async fn tell(&self, session: &Session, text: String) -> JobResult {
        let reply = self.thread_reply(session, Message::text(text));
        match self.store.enqueue(vec![reply], self.clock.now()).await {
            Ok(()) => JobResult::Done,
            Err(e) => retry(e),
        }
    }

    pub(super) async fn psa_note(&self, job: &JobRecord, note: uuid::Uuid) -> JobResult {
        let account = job.account_id;
        let note = match self.store.psa_note(account, note).await {
            Ok(note) => note,
            Err(StoreError::NotFound { .. }) => return JobResult::Done,
            Err(e) => return retry(e),
        };
        if note.status != NoteStatus::Queued {
            return JobResult::Done;
        }
        let session = match self.store.get_session(account, note.session_id).await {
            Ok(session) => session,
            Err(e) => return retry(e),
        };
        let Some(desk) = &self.desk else {
            return self
                .note_failed(
                    &session,
                    &note,
                    "PSA integration is not enabled on this server",
                )
                .await;
        };
        let provider = desk.provider(account, session.team_id).await;
        let psa = provider.as_ref().map_or("the PSA", |p| p.title());
        let posted = match &provider {
            Ok(_) => {
                desk.post_note(
                    account,
                    session.team_id,
                    &note.ticket,
                    &note.body,
                    note.requested_by,
                )
                .await
            }
            Err(e) => Err(e.clone()),
        };
        match posted {
            Ok((posted, member)) => {
                let credit = member
                    .as_ref()
                    .map(|m| format!(", credited to {}", m.name))
                    .unwrap_or_default();
                let text = format!(
                    "The session note is in ticket #{} ({psa} note {}{credit}).",
                    note.ticket, posted.id
                );
                let outcome = NoteOutcome::Posted {
                    psa_note_id: posted.id,
                    member: member.map(|m| m.id),
                };
                self.finish_note(&session, &note, outcome, text).await
            }
            Err(e) if e.is_transient() && job.attempts < job.max_attempts => {
                if job.attempts == 1 {
                    let text = format!(
                        "{psa} is not answering ({e}). The note for ticket #{} is queued and will be posted as soon as it is back; nothing is lost.",
                        note.ticket
                    );
                    if let JobResult::Retry { error, after } = self.tell(&session, text).await {
                        return JobResult::Retry { error, after };
                    }
                }
                JobResult::Retry {
                    error: e.to_string(),
                    after: e.retry_after(),
                }
            }
            Err(e) => {
                self.note_failed(&session, &note, &format!("{psa}: {e}"))
                    .await
            }
        }
    }

    async fn note_failed(
        &self,
        session: &Session,
        note: &crate::psa::PsaNoteRecord,
        error: &str,
    ) -> JobResult {
        let text = format!(
            "I couldn't post the note to ticket #{}: {error}. Fix that and press Push to ticket again, or `export txt` and paste it.",
            note.ticket
        );
        let outcome = NoteOutcome::Failed {
            error: error.to_owned(),
        };
        self.finish_note(session, note, outcome, text).await
    }

    async fn finish_note(
        &self,
        session: &Session,
        note: &crate::psa::PsaNoteRecord,
        outcome: NoteOutcome,
        text: String,
    ) -> JobResult {
        let now = self.clock.now();
        let tell = self.thread_reply(session, Message::text(text));
        match self
            .store
            .finish_psa_note(session.account_id, note.id, &outcome, &[tell], now)
            .await
        {
            Ok(_) => JobResult::Done,
            Err(e) => retry(e),
        }
    }
}

/// The pulled ticket, as shown in the thread.
pub(crate) fn ticket_message(ticket: &Ticket, provider: Provider) -> Message {
    let mut message = Message::new()
        .heading(format!("Ticket #{} from {}", ticket.id, provider.title()))
        .with(Block::Fields {
            fields: ticket.fields(),
        });
    if let Some(description) = ticket.description.as_ref().filter(|d| !d.trim().is_empty()) {
        message = message.paragraph(format!("Initial description: {description}"));
    }
    message.context("The ticket's details are part of this session now. Type `push` to post the session note to the ticket.")
}
