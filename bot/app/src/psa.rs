//! The teams' PSA connections: credentials sealed at rest, one client per connection kept warm
//! (ConnectWise's codebase, Autotask's zone and Halo's token are discovered once), and chat users
//! credited as their PSA members.

use crate::keys::{MasterKey, Sealer};
use rf_core::Store;
use rf_core::domain::User;
use rf_core::ids::{AccountId, TeamId, UserId};
use rf_core::psa::{
    MappingSource, Member, MemberMapping, PostedNote, Provider, PsaConnection, PsaError, Ticket,
    TicketDesk,
};
use rf_core::time::Clock;
use rf_psa::{NoteRequest, Psa};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The key purpose of PSA credentials.
pub const PSA_CREDENTIALS: &str = "psa-credentials-v1";

/// What sealed credentials are bound to: the account and the connection. Copied to another
/// connection or account, they do not open.
pub fn credentials_owner(account: AccountId, connection: uuid::Uuid) -> String {
    format!("psa:{account}:{connection}")
}

/// A database failure, as a PSA call's failure: transient, so the job retries.
fn database(e: rf_core::StoreError) -> PsaError {
    PsaError::Unavailable(format!("the database: {e}"))
}

/// Reaches each team's PSA.
#[derive(Debug, Clone)]
pub struct Desk {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    sealer: Sealer,
    timeout: Duration,
    clients: Clients,
}

/// Clients by connection, with the connection's `updated_at` (ms) they were built from.
type Clients = Arc<Mutex<HashMap<uuid::Uuid, (i64, Arc<dyn Psa>)>>>;

impl Desk {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        master: &MasterKey,
        timeout: Duration,
    ) -> Self {
        Self {
            store,
            clock,
            sealer: Sealer::new(master, PSA_CREDENTIALS),
            timeout,
            clients: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Checks settings and credentials against the PSA without saving anything.
    pub async fn try_connection(
        &self,
        provider: Provider,
        settings: &serde_json::Value,
        credentials: &serde_json::Value,
    ) -> Result<String, PsaError> {
        rf_psa::connect(provider, settings, credentials, self.timeout)?
            .test()
            .await
    }

    /// Saves a team's connection, credentials sealed (a team that had one keeps its id, and its
    /// member mapping).
    pub async fn save(
        &self,
        account: AccountId,
        team: TeamId,
        provider: Provider,
        settings: serde_json::Value,
        credentials: &serde_json::Value,
    ) -> anyhow::Result<PsaConnection> {
        rf_psa::note_kind(&settings)?;
        let now = self.clock.now();
        let existing = self.store.psa_connection(account, team).await?;
        let id = existing.as_ref().map_or_else(uuid::Uuid::now_v7, |c| c.id);
        let connection = PsaConnection {
            id,
            account_id: account,
            team_id: team,
            provider,
            settings,
            sealed_credentials: self
                .sealer
                .seal(&credentials.to_string(), &credentials_owner(account, id)),
            created_at: existing.map_or(now, |c| c.created_at),
            updated_at: now,
        };
        self.store.save_psa_connection(&connection).await?;
        Ok(connection)
    }

    /// The team's connection and a client for it.
    async fn client(
        &self,
        account: AccountId,
        team: TeamId,
    ) -> Result<(PsaConnection, Arc<dyn Psa>), PsaError> {
        let connection = self
            .store
            .psa_connection(account, team)
            .await
            .map_err(database)?
            .ok_or(PsaError::NotConnected)?;
        let stamp = connection.updated_at.as_millis();
        if let Some((built, client)) = self.cached(connection.id)
            && built == stamp
        {
            return Ok((connection, client));
        }
        let credentials = self
            .sealer
            .open(
                &connection.sealed_credentials,
                &credentials_owner(account, connection.id),
            )
            .map_err(|e| {
                PsaError::Misconfigured(format!("the stored credentials can't be opened: {e}"))
            })?;
        let credentials: serde_json::Value = serde_json::from_str(&credentials).map_err(|_| {
            PsaError::Misconfigured("the stored credentials are not readable".to_owned())
        })?;
        let client = rf_psa::connect(
            connection.provider,
            &connection.settings,
            &credentials,
            self.timeout,
        )?;
        if let Ok(mut clients) = self.clients.lock() {
            clients.insert(connection.id, (stamp, client.clone()));
        }
        Ok((connection, client))
    }

    fn cached(&self, connection: uuid::Uuid) -> Option<(i64, Arc<dyn Psa>)> {
        self.clients
            .lock()
            .ok()
            .and_then(|clients| clients.get(&connection).cloned())
    }

    /// Tests a team's saved connection.
    pub async fn test(&self, account: AccountId, team: TeamId) -> Result<String, PsaError> {
        self.client(account, team).await?.1.test().await
    }

    /// Credits `user`'s notes to the PSA member `member` (an identifier, id or name), checked
    /// against the PSA. A mapping set this way is never replaced by e-mail matching.
    pub async fn map_member(
        &self,
        account: AccountId,
        team: TeamId,
        user: UserId,
        member: &str,
    ) -> Result<Member, PsaError> {
        let (connection, client) = self.client(account, team).await?;
        let found = client.member(member.trim()).await?.ok_or_else(|| {
            PsaError::NotFound(format!(
                "no active {} member {:?}",
                connection.provider.title(),
                member.trim()
            ))
        })?;
        self.remember(account, &connection, user, &found, MappingSource::Manual)
            .await?;
        Ok(found)
    }

    async fn remember(
        &self,
        account: AccountId,
        connection: &PsaConnection,
        user: UserId,
        member: &Member,
        source: MappingSource,
    ) -> Result<(), PsaError> {
        self.store
            .save_psa_member(
                account,
                &MemberMapping {
                    connection_id: connection.id,
                    user_id: user,
                    member: member.clone(),
                    source,
                    updated_at: self.clock.now(),
                },
            )
            .await
            .map_err(database)
    }

    /// Who `user`'s notes are credited to: the stored mapping, else the member with their e-mail
    /// address (remembered). `None`: posted as the API member.
    async fn member_for(
        &self,
        account: AccountId,
        connection: &PsaConnection,
        client: &dyn Psa,
        user: &User,
    ) -> Result<Option<Member>, PsaError> {
        let mapped = self
            .store
            .psa_member(account, connection.id, user.id)
            .await
            .map_err(database)?;
        if let Some(mapping) = mapped {
            return Ok(Some(mapping.member));
        }
        let Some(email) = user.email.as_deref().filter(|e| e.contains('@')) else {
            return Ok(None);
        };
        let found = client.member_by_email(email).await?;
        if let Some(member) = &found {
            self.remember(account, connection, user.id, member, MappingSource::Email)
                .await?;
        }
        Ok(found)
    }
}

#[async_trait::async_trait]
impl TicketDesk for Desk {
    async fn provider(&self, account: AccountId, team: TeamId) -> Result<Provider, PsaError> {
        Ok(self.client(account, team).await?.0.provider)
    }

    async fn ticket(
        &self,
        account: AccountId,
        team: TeamId,
        ticket: &str,
    ) -> Result<Ticket, PsaError> {
        self.client(account, team).await?.1.ticket(ticket).await
    }

    async fn post_note(
        &self,
        account: AccountId,
        team: TeamId,
        ticket: &str,
        text: &str,
        author: UserId,
    ) -> Result<(PostedNote, Option<Member>), PsaError> {
        let (connection, client) = self.client(account, team).await?;
        let user = self
            .store
            .get_user(account, author)
            .await
            .map_err(database)?;
        let member = self
            .member_for(account, &connection, client.as_ref(), &user)
            .await?;
        let note = NoteRequest {
            ticket: ticket.to_owned(),
            kind: rf_psa::note_kind(&connection.settings)?,
            text: text.to_owned(),
            member: member.clone(),
        };
        let posted = client.post_note(&note).await?;
        Ok((posted, member))
    }

    async fn map_member(
        &self,
        account: AccountId,
        team: TeamId,
        user: UserId,
        member: &str,
    ) -> Result<Member, PsaError> {
        Desk::map_member(self, account, team, user, member).await
    }
}

#[async_trait::async_trait]
impl rf_companion::psa::PsaSettings for Desk {
    async fn try_connection(
        &self,
        provider: Provider,
        settings: &serde_json::Value,
        credentials: &serde_json::Value,
    ) -> Result<String, PsaError> {
        Desk::try_connection(self, provider, settings, credentials).await
    }

    async fn save(
        &self,
        account: AccountId,
        team: TeamId,
        provider: Provider,
        settings: serde_json::Value,
        credentials: &serde_json::Value,
    ) -> Result<(), String> {
        Desk::save(self, account, team, provider, settings, credentials)
            .await
            .map(drop)
            .map_err(|e| format!("{e:#}"))
    }

    async fn test(&self, account: AccountId, team: TeamId) -> Result<String, PsaError> {
        Desk::test(self, account, team).await
    }

    async fn map_member(
        &self,
        account: AccountId,
        team: TeamId,
        user: UserId,
        member: &str,
    ) -> Result<Member, PsaError> {
        Desk::map_member(self, account, team, user, member).await
    }
}
