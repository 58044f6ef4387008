//! ConnectWise Manage (REST API 3.0): the codebase is discovered from the site's company info
//! (or set), every call carries Basic auth (`company+public:private`) and the integration's
//! `clientId`, and errors come as `{"code", "message", "errors": [{"message", …}]}`.

use crate::http::{Answer, Body, HttpClient};
use crate::{
    Complaint, Config, Member, NoteKind, NoteRequest, PostedNote, Provider, Psa, PsaError, Ticket,
    endpoint, failure, full_name, trim_text,
};
use base64::Engine;
use hyper::Method;
use hyper::header::{ACCEPT, AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use tokio::sync::OnceCell;
use url::Url;

/// The longest note posted as one: ConnectWise documents no limit for note text, but very long
/// notes are slow in the UI and have been refused by some versions, so longer notes are split.
pub(crate) const MAX_NOTE_CHARS: usize = 30_000;

/// The longest initial description carried in a [`Ticket`].
const MAX_DESCRIPTION_CHARS: usize = 2_000;

/// Members per page: ConnectWise's maximum.
const PAGE_SIZE: usize = 1_000;

/// A guard against a server that never stops paging.
const MAX_PAGES: usize = 100;

const ACCEPT_API: &str = "application/vnd.connectwise.com+json; version=2022.1";

const CREDENTIALS: &str =
    "ConnectWise rejected the API keys (check company, public/private key and clientId)";

/// A ConnectWise Manage connection.
pub(crate) struct ConnectWise {
    http: HttpClient,
    site: Url,
    company: String,
    /// Authorization and clientId (marked sensitive) and Accept.
    headers: HeaderMap,
    /// `{site}/{codebase}apis/3.0`, discovered on first use unless set.
    api: OnceCell<Url>,
}

impl std::fmt::Debug for ConnectWise {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectWise")
            .field("site", &self.site.as_str())
            .field("company", &self.company)
            .field("api", &self.api.get().map(Url::as_str))
            .field("credentials", &"[REDACTED]")
            .finish_non_exhaustive()
    }
}

impl ConnectWise {
    pub(crate) fn new(config: &Config<'_>, http: HttpClient) -> Result<Self, PsaError> {
        let site = config
            .url("site")?
            .ok_or_else(|| PsaError::Misconfigured("ConnectWise needs `site`".to_owned()))?;
        let company = config.required("company")?;
        let public_key = config.secret("public_key")?;
        let private_key = config.secret("private_key")?;
        let client_id = config.secret("client_id")?;
        let basic = base64::engine::general_purpose::STANDARD.encode(format!(
            "{company}+{}:{}",
            public_key.expose(),
            private_key.expose()
        ));
        let mut authorization = HeaderValue::from_str(&format!("Basic {basic}"))
            .map_err(|_| PsaError::Misconfigured("ConnectWise keys cannot be sent".to_owned()))?;
        authorization.set_sensitive(true);
        let mut client_header = HeaderValue::from_str(client_id.expose()).map_err(|_| {
            PsaError::Misconfigured(
                "ConnectWise `client_id` contains characters that cannot be sent".to_owned(),
            )
        })?;
        client_header.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, authorization);
        headers.insert(HeaderName::from_static("clientid"), client_header);
        headers.insert(ACCEPT, HeaderValue::from_static(ACCEPT_API));
        let api = match config.setting("codebase")? {
            Some(codebase) => OnceCell::new_with(Some(api_url(&site, &codebase)?)),
            None => OnceCell::new(),
        };
        Ok(Self {
            http,
            site,
            company,
            headers,
            api,
        })
    }

    async fn api(&self) -> Result<&Url, PsaError> {
        self.api.get_or_try_init(|| self.discover()).await
    }

    /// Asks the site which codebase the company is on.
    async fn discover(&self) -> Result<Url, PsaError> {
        let url = endpoint(&self.site, &["login", "companyinfo", &self.company]);
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        let answer = self
            .http
            .send(
                Provider::ConnectWise,
                Method::GET,
                &url,
                headers,
                Body::Empty,
            )
            .await?;
        let unknown = || {
            PsaError::Misconfigured(format!(
                "the ConnectWise site {} does not know company `{}`",
                crate::http::host(&self.site),
                self.company
            ))
        };
        if answer.status.as_u16() == 404 {
            return Err(unknown());
        }
        if !answer.is_success() {
            return Err(error(&answer, None));
        }
        let info: Option<CompanyInfo> = answer.json()?;
        let codebase = info
            .and_then(|info| info.codebase)
            .filter(|c| !c.trim_matches('/').is_empty())
            .ok_or_else(unknown)?;
        let api = api_url(&self.site, &codebase)?;
        tracing::debug!(api = api.as_str(), "discovered the ConnectWise codebase");
        Ok(api)
    }

    async fn call(
        &self,
        method: Method,
        path: &[&str],
        query: &[(&str, &str)],
        body: Body,
    ) -> Result<Answer, PsaError> {
        let mut url = endpoint(self.api().await?, path);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        self.http
            .send(
                Provider::ConnectWise,
                method,
                &url,
                self.headers.clone(),
                body,
            )
            .await
    }

    async fn get<T: DeserializeOwned>(
        &self,
        path: &[&str],
        query: &[(&str, &str)],
        not_found: Option<String>,
    ) -> Result<T, PsaError> {
        let answer = self.call(Method::GET, path, query, Body::Empty).await?;
        if !answer.is_success() {
            return Err(error(&answer, not_found));
        }
        answer.json()
    }

    /// Members matching `conditions`, every page.
    async fn members_where(&self, conditions: &str) -> Result<Vec<Member>, PsaError> {
        let mut members = Vec::new();
        let page_size = PAGE_SIZE.to_string();
        for page in 1..=MAX_PAGES {
            let page = page.to_string();
            let batch: Vec<CwMember> = self
                .get(
                    &["system", "members"],
                    &[
                        ("conditions", conditions),
                        ("pageSize", &page_size),
                        ("page", &page),
                    ],
                    None,
                )
                .await?;
            let last = batch.len() < PAGE_SIZE;
            members.extend(batch.into_iter().map(CwMember::into_member));
            if last {
                return Ok(members);
            }
        }
        tracing::warn!(
            pages = MAX_PAGES,
            "ConnectWise kept paging members; stopped"
        );
        Ok(members)
    }

    async fn description(&self, id: &str) -> Result<Option<String>, PsaError> {
        let notes: Vec<CwNote> = self
            .get(
                &["service", "tickets", id, "notes"],
                &[
                    ("conditions", "detailDescriptionFlag=true"),
                    ("orderBy", "id asc"),
                    ("pageSize", "1"),
                ],
                None,
            )
            .await?;
        Ok(notes
            .into_iter()
            .find_map(|n| n.text)
            .map(|t| trim_text(&t, MAX_DESCRIPTION_CHARS))
            .filter(|t| !t.is_empty()))
    }
}

#[async_trait::async_trait]
impl Psa for ConnectWise {
    fn provider(&self) -> Provider {
        Provider::ConnectWise
    }

    async fn test(&self) -> Result<String, PsaError> {
        let info: SystemInfo = self.get(&["system", "info"], &[], None).await?;
        let version = info
            .version
            .unwrap_or_else(|| "(version unknown)".to_owned());
        let hosting = match info.is_cloud {
            Some(true) => " (cloud)",
            Some(false) => " (on-premises)",
            None => "",
        };
        Ok(format!("ConnectWise Manage {version}{hosting}"))
    }

    async fn ticket(&self, id: &str) -> Result<Ticket, PsaError> {
        let id = crate::numeric_ticket(id, Provider::ConnectWise)?;
        let ticket: CwTicket = self
            .get(
                &["service", "tickets", id],
                &[],
                Some(crate::ticket_not_found(id, Provider::ConnectWise)),
            )
            .await?;
        let description = match self.description(id).await {
            Ok(description) => description,
            Err(error) => {
                tracing::warn!(%error, ticket = id, "could not read the ticket's description");
                None
            }
        };
        Ok(ticket.into_ticket(description))
    }

    async fn post_note(&self, note: &NoteRequest) -> Result<PostedNote, PsaError> {
        let id = crate::numeric_ticket(&note.ticket, Provider::ConnectWise)?;
        let mut first = None;
        for text in crate::split_note(&note.text, MAX_NOTE_CHARS) {
            let answer = self
                .call(
                    Method::POST,
                    &["service", "tickets", id, "notes"],
                    &[],
                    Body::Json(note_body(&text, note)),
                )
                .await?;
            if !answer.is_success() {
                return Err(error(
                    &answer,
                    Some(crate::ticket_not_found(id, Provider::ConnectWise)),
                ));
            }
            let posted: CwPosted = answer.json()?;
            first.get_or_insert(posted.id.to_string());
        }
        Ok(PostedNote {
            id: first.unwrap_or_default(),
        })
    }

    async fn members(&self) -> Result<Vec<Member>, PsaError> {
        self.members_where("inactiveFlag=false").await
    }

    async fn member_by_email(&self, email: &str) -> Result<Option<Member>, PsaError> {
        let conditions = format!(
            "primaryEmail=\"{}\" and inactiveFlag=false",
            quote(email.trim())
        );
        Ok(self.members_where(&conditions).await?.into_iter().next())
    }

    async fn member(&self, id: &str) -> Result<Option<Member>, PsaError> {
        let conditions = format!("identifier=\"{}\"", quote(id.trim()));
        Ok(self.members_where(&conditions).await?.into_iter().next())
    }
}

/// The API base for a codebase ("v4_6_release/" or "v2024_1").
fn api_url(site: &Url, codebase: &str) -> Result<Url, PsaError> {
    let codebase = codebase.trim().trim_matches('/');
    if codebase.is_empty() || codebase.contains(['?', '#', '\\']) {
        return Err(PsaError::Misconfigured(format!(
            "ConnectWise `codebase` is not usable: {codebase}"
        )));
    }
    let mut path: Vec<&str> = codebase.split('/').filter(|s| !s.is_empty()).collect();
    path.extend(["apis", "3.0"]);
    Ok(endpoint(site, &path))
}

/// A value inside a quoted `conditions` string.
fn quote(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"")
}

fn note_body(text: &str, note: &NoteRequest) -> serde_json::Value {
    let mut body = json!({
        "text": text,
        "detailDescriptionFlag": note.kind == NoteKind::Discussion,
        "internalAnalysisFlag": note.kind == NoteKind::Internal,
        "resolutionFlag": note.kind == NoteKind::Resolution,
        "processNotifications": false,
    });
    if let Some(member) = &note.member {
        body["member"] = json!({ "identifier": member.id });
    }
    body
}

/// The error for a failed call, from ConnectWise's error body.
fn error(answer: &Answer, not_found: Option<String>) -> PsaError {
    failure(
        answer,
        Complaint {
            detail: error_detail(answer),
            not_found,
        },
        CREDENTIALS,
    )
}

/// "{message}: {errors[].message; …}" from ConnectWise's error body.
fn error_detail(answer: &Answer) -> Option<String> {
    let Ok(body) = serde_json::from_slice::<CwError>(&answer.body) else {
        return answer.text();
    };
    let details: Vec<String> = body
        .errors
        .into_iter()
        .filter_map(|e| e.message)
        .map(|m| m.trim().to_owned())
        .filter(|m| !m.is_empty())
        .collect();
    match (body.message.filter(|m| !m.trim().is_empty()), details) {
        (Some(message), details) if details.is_empty() => Some(message),
        (Some(message), details) => Some(format!("{message}: {}", details.join("; "))),
        (None, details) if !details.is_empty() => Some(details.join("; ")),
        (None, _) => body.code,
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CompanyInfo {
    codebase: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SystemInfo {
    version: Option<String>,
    is_cloud: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
struct Named {
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CwTicket {
    id: u64,
    #[serde(default)]
    summary: String,
    company: Option<Named>,
    contact: Option<Named>,
    contact_name: Option<String>,
    board: Option<Named>,
    status: Option<Named>,
    priority: Option<Named>,
}

impl CwTicket {
    fn into_ticket(self, description: Option<String>) -> Ticket {
        let name = |n: Option<Named>| n.and_then(|n| n.name).filter(|s| !s.trim().is_empty());
        Ticket {
            id: self.id.to_string(),
            summary: self.summary,
            company: name(self.company),
            contact: self
                .contact_name
                .filter(|s| !s.trim().is_empty())
                .or_else(|| name(self.contact)),
            board: name(self.board),
            status: name(self.status),
            priority: name(self.priority),
            description,
        }
    }
}

#[derive(Debug, Deserialize)]
struct CwNote {
    text: Option<String>,
}

#[derive(Debug, Deserialize)]
struct CwPosted {
    id: u64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CwMember {
    identifier: String,
    first_name: Option<String>,
    last_name: Option<String>,
    primary_email: Option<String>,
}

impl CwMember {
    fn into_member(self) -> Member {
        Member {
            name: full_name(
                self.first_name.as_deref(),
                self.last_name.as_deref(),
                &self.identifier,
            ),
            email: self.primary_email.filter(|e| !e.trim().is_empty()),
            id: self.identifier,
        }
    }
}

#[derive(Debug, Deserialize)]
struct CwError {
    code: Option<String>,
    message: Option<String>,
    #[serde(default)]
    errors: Vec<CwErrorDetail>,
}

#[derive(Debug, Deserialize)]
struct CwErrorDetail {
    message: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::StatusCode;
    use hyper::body::Bytes;
    use std::time::Duration;

    const TICKET: &str = include_str!("../fixtures/connectwise/ticket.json");
    const NOT_FOUND: &str = include_str!("../fixtures/connectwise/error_not_found.json");
    const INVALID: &str = include_str!("../fixtures/connectwise/error_invalid_object.json");

    fn answer(status: u16, body: &str) -> Answer {
        Answer {
            provider: Provider::ConnectWise,
            status: StatusCode::from_u16(status).unwrap(),
            retry_after: None,
            body: Bytes::copy_from_slice(body.as_bytes()),
        }
    }

    fn client() -> ConnectWise {
        let settings = json!({ "site": "na.myconnectwise.net", "company": "acme" });
        let credentials = json!({ "public_key": "pubkey1", "private_key": "privkey-SECRET",
                                  "client_id": "client-SECRET" });
        let config = Config::new(Provider::ConnectWise, &settings, &credentials).unwrap();
        ConnectWise::new(&config, crate::http_client(Duration::from_secs(5)).unwrap()).unwrap()
    }

    #[test]
    fn the_fixture_ticket_reads() {
        let ticket: CwTicket = serde_json::from_str(TICKET).unwrap();
        let ticket = ticket.into_ticket(Some("It broke.".to_owned()));
        assert_eq!(ticket.id, "493");
        assert_eq!(ticket.summary, "Check Remote Backup");
        assert_eq!(ticket.company.as_deref(), Some("IndigoStrawberry, Co."));
        assert_eq!(ticket.contact.as_deref(), Some("Ramon Stawiarz"));
        assert_eq!(ticket.board.as_deref(), Some("Professional Services"));
        assert_eq!(ticket.status.as_deref(), Some("New (not responded)"));
        assert_eq!(
            ticket.priority.as_deref(),
            Some("Priority 3 - Normal Response")
        );
        assert_eq!(ticket.description.as_deref(), Some("It broke."));
    }

    #[test]
    fn error_bodies_become_messages() {
        assert_eq!(
            error(&answer(404, NOT_FOUND), None),
            PsaError::NotFound("Ticket 1255787 not found".to_owned())
        );
        assert_eq!(
            error(
                &answer(404, NOT_FOUND),
                Some(crate::ticket_not_found("1255787", Provider::ConnectWise))
            ),
            PsaError::NotFound("ticket 1255787 not found in ConnectWise".to_owned())
        );
        assert_eq!(
            error(&answer(400, INVALID), None),
            PsaError::Rejected(
                "configuration object is invalid: id or deviceIdentifier is required.".to_owned()
            )
        );
        assert!(matches!(
            error(&answer(401, "{}"), None),
            PsaError::Unauthorized(m) if m.contains("clientId")
        ));
        assert!(matches!(
            error(&answer(502, "<html>bad gateway</html>"), None),
            PsaError::Unavailable(m) if m == "ConnectWise answered HTTP 502"
        ));
    }

    #[test]
    fn codebases_make_api_addresses() {
        let site = Url::parse("https://na.myconnectwise.net").unwrap();
        assert_eq!(
            api_url(&site, "v4_6_release/").unwrap().as_str(),
            "https://na.myconnectwise.net/v4_6_release/apis/3.0"
        );
        assert_eq!(
            api_url(&site, "/v2024_1").unwrap().as_str(),
            "https://na.myconnectwise.net/v2024_1/apis/3.0"
        );
        assert!(api_url(&site, "/").is_err());
    }

    #[test]
    fn ticket_numbers_are_digits() {
        assert_eq!(
            crate::numeric_ticket(" #493 ", Provider::ConnectWise).unwrap(),
            "493"
        );
        assert_eq!(
            crate::numeric_ticket("493; drop", Provider::ConnectWise),
            Err(PsaError::Rejected(
                "ConnectWise ticket numbers are digits".to_owned()
            ))
        );
    }

    #[test]
    fn notes_carry_the_kind_and_the_member() {
        let note = NoteRequest {
            ticket: "493".into(),
            kind: NoteKind::Internal,
            text: "Checked the backup".into(),
            member: Some(Member {
                id: "jdoe".into(),
                name: "Jane Doe".into(),
                email: None,
            }),
        };
        let body = note_body(&note.text, &note);
        assert_eq!(body["internalAnalysisFlag"], true);
        assert_eq!(body["detailDescriptionFlag"], false);
        assert_eq!(body["processNotifications"], false);
        assert_eq!(body["member"]["identifier"], "jdoe");
        let body = note_body(
            "x",
            &NoteRequest {
                member: None,
                ..note
            },
        );
        assert!(body.get("member").is_none());
    }

    #[test]
    fn conditions_values_are_quoted() {
        assert_eq!(quote(r#"a"b\c"#), r#"a\"b\\c"#);
    }

    #[tokio::test]
    async fn debug_hides_the_keys() {
        let debug = format!("{:?}", client());
        assert!(!debug.contains("SECRET"), "{debug}");
        assert!(!debug.contains("pubkey1"), "{debug}");
        assert!(debug.contains("[REDACTED]"));
    }
}
