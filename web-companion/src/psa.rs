//! The team's PSA settings page: connect ConnectWise Manage, Autotask or HaloPSA, test the
//! connection, and credit chat users' notes to PSA members. Owners and admins only; credentials
//! are write-only (never shown, never put back into the form).

use crate::escalations::{require_account, same_origin};
use crate::{CompanionError, CompanionState, Viewer};
use axum::Form;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Html;
use minijinja::context;
use minijinja::value::Serde;
use rf_core::domain::{Actor, Role};
use rf_core::ids::{AccountId, TeamId, UserId};
use rf_core::psa::{Member, Provider, PsaError};
use serde::Serialize;
use std::collections::HashMap;

/// What the companion needs to manage PSA connections (the application holds the master key).
#[async_trait::async_trait]
pub trait PsaSettings: Send + Sync + std::fmt::Debug {
    /// Checks settings and credentials against the PSA without saving them.
    async fn try_connection(
        &self,
        provider: Provider,
        settings: &serde_json::Value,
        credentials: &serde_json::Value,
    ) -> Result<String, PsaError>;

    /// Saves the team's connection (credentials sealed).
    async fn save(
        &self,
        account: AccountId,
        team: TeamId,
        provider: Provider,
        settings: serde_json::Value,
        credentials: &serde_json::Value,
    ) -> Result<(), String>;

    /// Tests the team's saved connection.
    async fn test(&self, account: AccountId, team: TeamId) -> Result<String, PsaError>;

    /// Credits `user`'s notes to the PSA member `member`.
    async fn map_member(
        &self,
        account: AccountId,
        team: TeamId,
        user: UserId,
        member: &str,
    ) -> Result<Member, PsaError>;
}

#[derive(Debug, Serialize)]
struct FieldView {
    name: &'static str,
    label: &'static str,
    required: bool,
    secret: bool,
    help: &'static str,
    value: String,
}

#[derive(Debug, Serialize)]
struct ProviderView {
    id: &'static str,
    title: &'static str,
    fields: Vec<FieldView>,
    current: bool,
}

async fn admin(state: &CompanionState, viewer: &Viewer) -> Result<Actor, CompanionError> {
    require_account(viewer)?;
    let actor = viewer.actor(state).await?;
    if !matches!(actor.role, Role::Owner | Role::Admin | Role::SuperAdmin) {
        return Err(CompanionError::Forbidden(
            "Only owners and admins can manage the PSA connection.",
        ));
    }
    Ok(actor)
}

fn settings_port(state: &CompanionState) -> Result<&dyn PsaSettings, CompanionError> {
    state.psa.as_deref().ok_or(CompanionError::Forbidden(
        "PSA integration is not enabled on this server.",
    ))
}

/// Renders the page with an optional outcome line (`ok`: success, else a problem).
async fn page(
    state: &CompanionState,
    actor: &Actor,
    notice: Option<(bool, String)>,
) -> Result<Html<String>, CompanionError> {
    let connection = state
        .store
        .psa_connection(actor.account_id, actor.team_id)
        .await?;
    let providers: Vec<ProviderView> = Provider::ALL
        .iter()
        .map(|&provider| {
            let current = connection.as_ref().filter(|c| c.provider == provider);
            ProviderView {
                id: provider.as_str(),
                title: provider.title(),
                current: current.is_some(),
                fields: rf_psa::fields(provider)
                    .iter()
                    .map(|f| FieldView {
                        name: f.name,
                        label: f.label,
                        required: f.required,
                        secret: f.secret,
                        help: f.help,
                        // Secrets are write-only: never sent back to the browser.
                        value: match current {
                            Some(c) if !f.secret => c
                                .settings
                                .get(f.name)
                                .and_then(|v| v.as_str())
                                .unwrap_or_default()
                                .to_owned(),
                            _ => String::new(),
                        },
                    })
                    .collect(),
            }
        })
        .collect();
    let users = state.store.list_users(actor.account_id).await?;
    let mut mappings = Vec::new();
    if let Some(connection) = &connection {
        for mapping in state
            .store
            .psa_members(actor.account_id, connection.id)
            .await?
        {
            let name = users
                .iter()
                .find(|u| u.id == mapping.user_id)
                .map_or_else(|| "?".to_owned(), |u| u.display_name.clone());
            mappings.push((
                name,
                mapping.member.id,
                mapping.member.name,
                mapping.source.as_str(),
            ));
        }
    }
    let people: Vec<(String, String)> = users
        .iter()
        .map(|u| (u.id.to_string(), u.display_name.clone()))
        .collect();
    state.render(
        "psa.html",
        context! {
            connected => connection.as_ref().map(|c| c.provider.title()),
            updated => connection.as_ref().map(|c| c.updated_at.display_utc()),
            providers => Serde(&providers),
            mappings => Serde(&mappings),
            people => Serde(&people),
            notice => notice.as_ref().map(|(_, text)| text.clone()),
            notice_ok => notice.as_ref().is_some_and(|(ok, _)| *ok),
        },
    )
}

pub(crate) async fn settings_page(
    State(state): State<CompanionState>,
    viewer: Viewer,
) -> Result<Html<String>, CompanionError> {
    let actor = admin(&state, &viewer).await?;
    page(&state, &actor, None).await
}

/// Tests (`action=test`) or tests and saves (`action=save`) a connection from the form.
pub(crate) async fn connect(
    State(state): State<CompanionState>,
    viewer: Viewer,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Html<String>, CompanionError> {
    same_origin(&state, &headers)?;
    let actor = admin(&state, &viewer).await?;
    let port = settings_port(&state)?;
    let value = |name: &str| form.get(name).map(|v| v.trim()).unwrap_or_default();
    let Ok(provider) = value("provider").parse::<Provider>() else {
        return page(&state, &actor, Some((false, "Choose a PSA.".to_owned()))).await;
    };
    let prefix = format!("{}.", provider.as_str());
    let (mut settings, mut credentials) = (serde_json::Map::new(), serde_json::Map::new());
    for field in rf_psa::fields(provider) {
        let entered = value(&format!("{prefix}{}", field.name));
        if entered.is_empty() {
            continue;
        }
        let target = if field.secret {
            &mut credentials
        } else {
            &mut settings
        };
        target.insert(field.name.to_owned(), entered.into());
    }
    let (settings, credentials) = (settings.into(), credentials.into());
    let tested = port.try_connection(provider, &settings, &credentials).await;
    let notice = match (tested, value("action")) {
        (Err(e), _) => (
            false,
            format!("The connection test failed: {e}. Nothing was saved."),
        ),
        (Ok(about), "save") => match port
            .save(
                actor.account_id,
                actor.team_id,
                provider,
                settings,
                &credentials,
            )
            .await
        {
            Ok(()) => (
                true,
                format!("Connected and saved: {about}. Credentials are stored encrypted."),
            ),
            Err(e) => (
                false,
                format!("The connection works but was not saved: {e}"),
            ),
        },
        (Ok(about), _) => (
            true,
            format!("The connection works: {about}. Press Save to keep it."),
        ),
    };
    page(&state, &actor, Some(notice)).await
}

/// Tests the saved connection.
pub(crate) async fn test_saved(
    State(state): State<CompanionState>,
    viewer: Viewer,
    headers: HeaderMap,
) -> Result<Html<String>, CompanionError> {
    same_origin(&state, &headers)?;
    let actor = admin(&state, &viewer).await?;
    let notice = match settings_port(&state)?
        .test(actor.account_id, actor.team_id)
        .await
    {
        Ok(about) => (true, format!("The saved connection works: {about}.")),
        Err(e) => (false, format!("The saved connection failed: {e}.")),
    };
    page(&state, &actor, Some(notice)).await
}

/// Credits a user's notes to a PSA member.
pub(crate) async fn map_member(
    State(state): State<CompanionState>,
    viewer: Viewer,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Html<String>, CompanionError> {
    same_origin(&state, &headers)?;
    let actor = admin(&state, &viewer).await?;
    let user = form
        .get("user")
        .and_then(|u| u.parse::<uuid::Uuid>().ok())
        .map(UserId::from_uuid);
    let member = form.get("member").map(|m| m.trim()).unwrap_or_default();
    let notice = match user {
        Some(user) if !member.is_empty() => {
            // The user must be in the viewer's account.
            let person = state.store.get_user(actor.account_id, user).await?;
            match settings_port(&state)?
                .map_member(actor.account_id, actor.team_id, user, member)
                .await
            {
                Ok(found) => (
                    true,
                    format!(
                        "{}'s notes are credited to {} ({}).",
                        person.display_name, found.name, found.id
                    ),
                ),
                Err(e) => (false, format!("Not mapped: {e}.")),
            }
        }
        _ => (false, "Choose a person and a PSA member.".to_owned()),
    };
    page(&state, &actor, Some(notice)).await
}
