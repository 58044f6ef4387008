//! Autotask (REST API v1.0): the API user's zone is discovered (or set), every call carries the
//! `ApiIntegrationCode`, `UserName` and `Secret` headers, queries page through
//! `pageDetails.nextPageUrl`, and errors come as `{"errors": ["…"]}`.

use crate::http::{Answer, Body, HttpClient, host};
use crate::{
    Complaint, Config, Member, NoteKind, NoteRequest, PostedNote, Provider, Psa, PsaError, Ticket,
    endpoint, failure, full_name, id_text, is_number, parse_url, trim_text, with_trailing_slash,
};
use hyper::Method;
use hyper::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::collections::HashMap;
use tokio::sync::OnceCell;
use url::Url;

/// Autotask refuses a ticket note's description longer than this; longer notes are split.
pub(crate) const MAX_NOTE_CHARS: usize = 32_000;

/// Where zones are looked up unless a connection says otherwise.
pub(crate) const DEFAULT_DISCOVERY_URL: &str = "https://webservices.autotask.net/atservicesrest/";

const MAX_DESCRIPTION_CHARS: usize = 2_000;

/// A guard against a server that never stops paging (Autotask pages hold 500 records).
const MAX_PAGES: usize = 200;

const CREDENTIALS: &str =
    "Autotask rejected the API user (check the user name, secret and integration code)";

const NOTE_TITLE: &str = "ResolutionFlow session notes";

/// An Autotask connection.
pub(crate) struct Autotask {
    http: HttpClient,
    username: String,
    /// The three credential headers (secrets marked sensitive), Accept and Content-Type.
    headers: HeaderMap,
    discovery: Url,
    zone: OnceCell<Zone>,
    /// Picklist labels of ticket fields: field name (lowercase) → value → label.
    labels: OnceCell<HashMap<String, HashMap<String, String>>>,
}

#[derive(Debug)]
struct Zone {
    /// `{zone url}v1.0/`.
    base: Url,
    name: Option<String>,
}

impl std::fmt::Debug for Autotask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Autotask")
            .field("username", &self.username)
            .field("discovery", &self.discovery.as_str())
            .field("zone", &self.zone.get())
            .field("credentials", &"[REDACTED]")
            .finish_non_exhaustive()
    }
}

impl Autotask {
    pub(crate) fn new(config: &Config<'_>, http: HttpClient) -> Result<Self, PsaError> {
        let username = config.required("username")?;
        let integration_code = config.secret("integration_code")?;
        let secret = config.secret("secret")?;
        let discovery = match config.url("discovery_url")? {
            Some(url) => with_trailing_slash(url),
            None => Url::parse(DEFAULT_DISCOVERY_URL)
                .map_err(|e| PsaError::Misconfigured(format!("Autotask discovery address: {e}")))?,
        };
        let zone = match config.url("zone_url")? {
            Some(url) => OnceCell::new_with(Some(Zone {
                base: zone_base(url)?,
                name: None,
            })),
            None => OnceCell::new(),
        };
        let header = |value: &str, key: &str, sensitive: bool| {
            let mut value = HeaderValue::from_str(value).map_err(|_| {
                PsaError::Misconfigured(format!(
                    "Autotask `{key}` contains characters that cannot be sent"
                ))
            })?;
            value.set_sensitive(sensitive);
            Ok::<_, PsaError>(value)
        };
        let mut headers = HeaderMap::new();
        headers.insert(
            HeaderName::from_static("apiintegrationcode"),
            header(integration_code.expose(), "integration_code", true)?,
        );
        headers.insert(
            HeaderName::from_static("username"),
            header(&username, "username", false)?,
        );
        headers.insert(
            HeaderName::from_static("secret"),
            header(secret.expose(), "secret", true)?,
        );
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Ok(Self {
            http,
            username,
            headers,
            discovery,
            zone,
            labels: OnceCell::new(),
        })
    }

    async fn zone(&self) -> Result<&Zone, PsaError> {
        self.zone.get_or_try_init(|| self.discover()).await
    }

    /// Asks Autotask which zone the API user lives in.
    async fn discover(&self) -> Result<Zone, PsaError> {
        let mut url = self
            .discovery
            .join("v1.0/zoneInformation")
            .map_err(|e| PsaError::Misconfigured(format!("Autotask discovery address: {e}")))?;
        url.query_pairs_mut().append_pair("user", &self.username);
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        let answer = self
            .http
            .send(Provider::Autotask, Method::GET, &url, headers, Body::Empty)
            .await?;
        let unknown = || {
            PsaError::Misconfigured(format!(
                "Autotask does not know the API user `{}`",
                self.username
            ))
        };
        if answer.status.as_u16() == 404 {
            return Err(unknown());
        }
        if !answer.is_success() {
            return Err(error(&answer, None));
        }
        let info: ZoneInformation = answer.json()?;
        let zone_url = info
            .url
            .filter(|u| !u.trim().is_empty())
            .ok_or_else(unknown)?;
        let zone = Zone {
            base: zone_base(parse_url(Provider::Autotask, "zone url", &zone_url)?)?,
            name: info.zone_name,
        };
        tracing::debug!(base = zone.base.as_str(), "discovered the Autotask zone");
        Ok(zone)
    }

    async fn call(
        &self,
        method: Method,
        path: &[&str],
        body: Body,
        extra: Option<(HeaderName, HeaderValue)>,
    ) -> Result<Answer, PsaError> {
        let url = endpoint(&self.zone().await?.base, path);
        let mut headers = self.headers.clone();
        if let Some((name, value)) = extra {
            headers.insert(name, value);
        }
        self.http
            .send(Provider::Autotask, method, &url, headers, body)
            .await
    }

    async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &[&str],
        body: Body,
        not_found: Option<String>,
    ) -> Result<T, PsaError> {
        let answer = self.call(method, path, body, None).await?;
        if !answer.is_success() {
            return Err(error(&answer, not_found));
        }
        answer.json()
    }

    /// Every record a query finds, following `pageDetails.nextPageUrl`.
    async fn query<T: DeserializeOwned>(
        &self,
        entity: &str,
        filter: Value,
    ) -> Result<Vec<T>, PsaError> {
        let mut page: Items<T> = self
            .json(
                Method::POST,
                &[entity, "query"],
                Body::Json(json!({ "filter": filter })),
                None,
            )
            .await?;
        let mut records = std::mem::take(&mut page.items);
        for _ in 1..MAX_PAGES {
            let Some(next) = page.next_page() else {
                return Ok(records);
            };
            let base = &self.zone().await?.base;
            let next = Url::parse(&next)
                .ok()
                .filter(|url| url.origin() == base.origin())
                .ok_or_else(|| {
                    PsaError::Unavailable(format!(
                        "Autotask pointed the next page of {entity} away from {}",
                        host(base)
                    ))
                })?;
            let answer = self
                .http
                .send(
                    Provider::Autotask,
                    Method::GET,
                    &next,
                    self.headers.clone(),
                    Body::Empty,
                )
                .await?;
            if !answer.is_success() {
                return Err(error(&answer, None));
            }
            page = answer.json()?;
            records.append(&mut page.items);
        }
        tracing::warn!(entity, pages = MAX_PAGES, "Autotask kept paging; stopped");
        Ok(records)
    }

    /// A ticket by id (digits) or ticket number (T20240101.0001).
    async fn find_ticket(&self, id: &str) -> Result<AtTicket, PsaError> {
        let id = id.trim().trim_start_matches('#');
        let found = if is_number(id) {
            let answer: Item<AtTicket> = self
                .json(
                    Method::GET,
                    &["Tickets", id],
                    Body::Empty,
                    Some(crate::ticket_not_found(id, Provider::Autotask)),
                )
                .await?;
            answer.item
        } else if is_ticket_number(id) {
            let tickets: Items<AtTicket> = self
                .json(
                    Method::POST,
                    &["Tickets", "query"],
                    Body::Json(
                        json!({ "filter": [{ "op": "eq", "field": "ticketNumber", "value": id }] }),
                    ),
                    None,
                )
                .await?;
            tickets.items.into_iter().next()
        } else {
            return Err(PsaError::Rejected(
                "Autotask tickets are a number (12345) or a ticket number (T20240101.0001)"
                    .to_owned(),
            ));
        };
        found.ok_or_else(|| PsaError::NotFound(crate::ticket_not_found(id, Provider::Autotask)))
    }

    async fn labels(&self) -> Result<&HashMap<String, HashMap<String, String>>, PsaError> {
        self.labels
            .get_or_try_init(|| async {
                let info: FieldsInformation = self
                    .json(
                        Method::GET,
                        &["Tickets", "entityInformation", "fields"],
                        Body::Empty,
                        None,
                    )
                    .await?;
                Ok(info
                    .fields
                    .into_iter()
                    .map(|field| {
                        let labels = field
                            .picklist_values
                            .unwrap_or_default()
                            .into_iter()
                            .filter_map(|v| Some((id_text(&v.value)?, v.label?)))
                            .collect();
                        (field.name.to_ascii_lowercase(), labels)
                    })
                    .collect())
            })
            .await
    }

    async fn company(&self, id: Option<i64>) -> Result<Option<String>, PsaError> {
        let Some(id) = id else { return Ok(None) };
        let id = id.to_string();
        let found: Item<Value> = self
            .json(Method::GET, &["Companies", &id], Body::Empty, None)
            .await?;
        Ok(found
            .item
            .and_then(|c| c["companyName"].as_str().map(str::to_owned)))
    }

    async fn contact(&self, id: Option<i64>) -> Result<Option<String>, PsaError> {
        let Some(id) = id else { return Ok(None) };
        let id = id.to_string();
        let found: Item<Value> = self
            .json(Method::GET, &["Contacts", &id], Body::Empty, None)
            .await?;
        Ok(found.item.map(|c| {
            full_name(
                c["firstName"].as_str(),
                c["lastName"].as_str(),
                &format!("contact {id}"),
            )
        }))
    }

    async fn resources(&self, filter: Value) -> Result<Vec<Member>, PsaError> {
        let found: Vec<AtResource> = self.query("Resources", filter).await?;
        Ok(found.into_iter().map(AtResource::into_member).collect())
    }
}

#[async_trait::async_trait]
impl Psa for Autotask {
    fn provider(&self) -> Provider {
        Provider::Autotask
    }

    async fn test(&self) -> Result<String, PsaError> {
        let threshold: Threshold = self
            .json(Method::GET, &["ThresholdInformation"], Body::Empty, None)
            .await?;
        let zone = self.zone().await?;
        let place = match &zone.name {
            Some(name) => format!("zone {name}"),
            None => host(&zone.base),
        };
        Ok(
            match (
                threshold.current_timeframe_request_count,
                threshold.external_request_threshold,
            ) {
                (Some(used), Some(limit)) => {
                    format!("Autotask ({place}; {used} of {limit} API requests used)")
                }
                _ => format!("Autotask ({place})"),
            },
        )
    }

    async fn ticket(&self, id: &str) -> Result<Ticket, PsaError> {
        let ticket = self.find_ticket(id).await?;
        let (company, contact, labels) = tokio::join!(
            self.company(ticket.company_id),
            self.contact(ticket.contact_id),
            self.labels()
        );
        let company = or_raw(company, ticket.company_id, "company")?;
        let contact = or_raw(contact, ticket.contact_id, "contact")?;
        let labels = match labels {
            Ok(labels) => Some(labels),
            Err(error) if error.is_transient() => return Err(error),
            Err(error) => {
                tracing::warn!(%error, "could not read Autotask's ticket field labels");
                None
            }
        };
        let label = |field: &str, value: &Option<Value>| {
            let value = value.as_ref().and_then(id_text)?;
            Some(
                labels
                    .and_then(|l| l.get(field))
                    .and_then(|l| l.get(&value))
                    .cloned()
                    .unwrap_or(value),
            )
        };
        Ok(Ticket {
            id: ticket
                .ticket_number
                .clone()
                .filter(|n| !n.trim().is_empty())
                .unwrap_or_else(|| ticket.id.to_string()),
            summary: ticket.title.clone().unwrap_or_default(),
            company,
            contact,
            board: label("queueid", &ticket.queue_id),
            status: label("status", &ticket.status),
            priority: label("priority", &ticket.priority),
            description: ticket
                .description
                .as_deref()
                .map(|d| trim_text(d, MAX_DESCRIPTION_CHARS))
                .filter(|d| !d.is_empty()),
        })
    }

    async fn post_note(&self, note: &NoteRequest) -> Result<PostedNote, PsaError> {
        let ticket = note.ticket.trim().trim_start_matches('#');
        let id = match ticket.parse::<i64>() {
            Ok(id) if is_number(ticket) => id,
            _ => self.find_ticket(ticket).await?.id,
        };
        let impersonate = match &note.member {
            Some(member) if is_number(member.id.trim()) => Some((
                HeaderName::from_static("impersonationresourceid"),
                HeaderValue::from_str(member.id.trim()).map_err(|_| {
                    PsaError::Rejected("Autotask resource ids are digits".to_owned())
                })?,
            )),
            Some(member) => {
                return Err(PsaError::Rejected(format!(
                    "Autotask credits notes to a resource id (digits), not `{}`",
                    member.id
                )));
            }
            None => None,
        };
        let id_text = id.to_string();
        let mut first = None;
        for text in crate::split_note(&note.text, MAX_NOTE_CHARS) {
            let answer = self
                .call(
                    Method::POST,
                    &["Tickets", &id_text, "Notes"],
                    Body::Json(note_body(id, &text, note.kind)),
                    impersonate.clone(),
                )
                .await?;
            if !answer.is_success() {
                return Err(error(
                    &answer,
                    Some(crate::ticket_not_found(ticket, Provider::Autotask)),
                ));
            }
            let created: Created = answer.json()?;
            let created = id_text_or_unexpected(&created.item_id)?;
            first.get_or_insert(created);
        }
        Ok(PostedNote {
            id: first.unwrap_or_default(),
        })
    }

    async fn members(&self) -> Result<Vec<Member>, PsaError> {
        self.resources(json!([{ "op": "eq", "field": "isActive", "value": true }]))
            .await
    }

    async fn member_by_email(&self, email: &str) -> Result<Option<Member>, PsaError> {
        Ok(self
            .resources(json!([
                { "op": "eq", "field": "email", "value": email.trim() },
                { "op": "eq", "field": "isActive", "value": true }
            ]))
            .await?
            .into_iter()
            .next())
    }

    async fn member(&self, id: &str) -> Result<Option<Member>, PsaError> {
        let id = id.trim();
        if is_number(id) {
            let answer = self
                .call(Method::GET, &["Resources", id], Body::Empty, None)
                .await?;
            if answer.status.as_u16() == 404 {
                return Ok(None);
            }
            if !answer.is_success() {
                return Err(error(&answer, None));
            }
            let found: Item<AtResource> = answer.json()?;
            return Ok(found.item.map(AtResource::into_member));
        }
        Ok(self
            .resources(json!([{ "op": "eq", "field": "userName", "value": id }]))
            .await?
            .into_iter()
            .next())
    }
}

/// `{zone url}v1.0/`, whether or not the setting already ends in `v1.0`.
fn zone_base(url: Url) -> Result<Url, PsaError> {
    let url = with_trailing_slash(url);
    if url.path().to_ascii_lowercase().ends_with("/v1.0/") {
        return Ok(url);
    }
    url.join("v1.0/")
        .map_err(|e| PsaError::Misconfigured(format!("Autotask zone address: {e}")))
}

/// "T20240101.0001".
fn is_ticket_number(id: &str) -> bool {
    let mut chars = id.chars();
    chars.next().is_some_and(|c| c.eq_ignore_ascii_case(&'T'))
        && id.len() > 1
        && chars.all(|c| c.is_ascii_digit() || c == '.')
}

/// A lookup's answer, or the raw id when it failed for good (a transient failure fails the
/// ticket, so it is retried whole).
fn or_raw(
    found: Result<Option<String>, PsaError>,
    id: Option<i64>,
    what: &str,
) -> Result<Option<String>, PsaError> {
    let raw = || id.map(|id| id.to_string());
    match found {
        Ok(Some(name)) => Ok(Some(name)),
        Ok(None) => Ok(raw()),
        Err(error) if error.is_transient() => Err(error),
        Err(error) => {
            tracing::warn!(%error, what, "could not look up a ticket's {what}");
            Ok(raw())
        }
    }
}

fn note_body(ticket: i64, text: &str, kind: NoteKind) -> Value {
    let (title, publish) = match kind {
        NoteKind::Discussion => (NOTE_TITLE, 1),
        NoteKind::Internal => (NOTE_TITLE, 2),
        NoteKind::Resolution => ("Resolution", 1),
    };
    json!({
        "ticketID": ticket,
        "title": title,
        "description": text,
        "noteType": 1,
        "publish": publish,
    })
}

fn id_text_or_unexpected(value: &Value) -> Result<String, PsaError> {
    id_text(value).ok_or_else(|| {
        PsaError::Unavailable("unexpected answer from Autotask: no itemId".to_owned())
    })
}

/// The error for a failed call, from Autotask's `{"errors": [...]}`.
fn error(answer: &Answer, not_found: Option<String>) -> PsaError {
    let detail = match serde_json::from_slice::<AtError>(&answer.body) {
        Ok(body) => {
            let errors: Vec<String> = body
                .errors
                .iter()
                .filter_map(|e| match e {
                    Value::String(s) => Some(s.trim().to_owned()),
                    Value::Object(o) => o.get("message").and_then(Value::as_str).map(str::to_owned),
                    _ => None,
                })
                .filter(|s| !s.is_empty())
                .collect();
            (!errors.is_empty()).then(|| errors.join("; "))
        }
        Err(_) => answer.text(),
    };
    failure(answer, Complaint { detail, not_found }, CREDENTIALS)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ZoneInformation {
    zone_name: Option<String>,
    url: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Threshold {
    external_request_threshold: Option<u64>,
    current_timeframe_request_count: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct Item<T> {
    item: Option<T>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Items<T> {
    #[serde(default = "Vec::new")]
    items: Vec<T>,
    page_details: Option<PageDetails>,
}

impl<T> Items<T> {
    fn next_page(&self) -> Option<String> {
        self.page_details
            .as_ref()?
            .next_page_url
            .clone()
            .filter(|u| !u.trim().is_empty())
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PageDetails {
    next_page_url: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AtTicket {
    id: i64,
    ticket_number: Option<String>,
    title: Option<String>,
    description: Option<String>,
    #[serde(rename = "companyID")]
    company_id: Option<i64>,
    #[serde(rename = "contactID")]
    contact_id: Option<i64>,
    #[serde(rename = "queueID")]
    queue_id: Option<Value>,
    status: Option<Value>,
    priority: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct FieldsInformation {
    #[serde(default)]
    fields: Vec<FieldInformation>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FieldInformation {
    name: String,
    picklist_values: Option<Vec<PicklistValue>>,
}

#[derive(Debug, Deserialize)]
struct PicklistValue {
    value: Value,
    label: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AtResource {
    id: i64,
    first_name: Option<String>,
    last_name: Option<String>,
    email: Option<String>,
    user_name: Option<String>,
}

impl AtResource {
    fn into_member(self) -> Member {
        let fallback = self
            .user_name
            .clone()
            .unwrap_or_else(|| format!("resource {}", self.id));
        Member {
            id: self.id.to_string(),
            name: full_name(
                self.first_name.as_deref(),
                self.last_name.as_deref(),
                &fallback,
            ),
            email: self.email.filter(|e| !e.trim().is_empty()),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Created {
    #[serde(default)]
    item_id: Value,
}

#[derive(Debug, Deserialize)]
struct AtError {
    #[serde(default)]
    errors: Vec<Value>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::StatusCode;
    use hyper::body::Bytes;

    fn answer(status: u16, body: &str) -> Answer {
        Answer {
            provider: Provider::Autotask,
            status: StatusCode::from_u16(status).unwrap(),
            retry_after: None,
            body: Bytes::copy_from_slice(body.as_bytes()),
        }
    }

    #[test]
    fn zone_addresses_end_in_the_api_version() {
        for zone in [
            "https://webservices2.autotask.net/ATServicesRest",
            "https://webservices2.autotask.net/ATServicesRest/",
            "https://webservices2.autotask.net/ATServicesRest/V1.0",
        ] {
            let base = zone_base(Url::parse(zone).unwrap()).unwrap();
            assert!(
                base.as_str()
                    .to_ascii_lowercase()
                    .ends_with("/atservicesrest/v1.0/"),
                "{zone} → {base}"
            );
        }
    }

    #[test]
    fn ticket_numbers_are_told_apart_from_ids() {
        assert!(is_ticket_number("T20240101.0001"));
        assert!(!is_ticket_number("T"));
        assert!(!is_ticket_number("20240101"));
        assert!(!is_ticket_number("T2024 or 1=1"));
    }

    #[test]
    fn internal_notes_are_published_internally() {
        let body = note_body(12345, "text", NoteKind::Internal);
        assert_eq!(body["publish"], 2);
        assert_eq!(body["ticketID"], 12345);
        assert_eq!(note_body(1, "t", NoteKind::Discussion)["publish"], 1);
        assert_eq!(
            note_body(1, "t", NoteKind::Resolution)["title"],
            "Resolution"
        );
    }

    #[test]
    fn error_bodies_become_messages() {
        let body = r#"{"errors":["Value for field Title is required.","Bad thing"]}"#;
        assert_eq!(
            error(&answer(400, body), None),
            PsaError::Rejected("Value for field Title is required.; Bad thing".to_owned())
        );
        assert!(matches!(
            error(&answer(500, body), None),
            PsaError::Unavailable(m) if m.contains("Bad thing")
        ));
        assert!(matches!(
            error(&answer(401, ""), None),
            PsaError::Unauthorized(m) if m.contains("integration code")
        ));
    }

    #[test]
    fn a_resource_is_a_member() {
        let resource: AtResource = serde_json::from_value(json!({
            "id": 29682885, "firstName": "Jane", "lastName": "Doe",
            "email": "jane@msp.example", "userName": "jdoe", "isActive": true
        }))
        .unwrap();
        assert_eq!(
            resource.into_member(),
            Member {
                id: "29682885".into(),
                name: "Jane Doe".into(),
                email: Some("jane@msp.example".into())
            }
        );
    }

    #[tokio::test]
    async fn debug_hides_the_credentials() {
        let settings = json!({ "username": "api@msp.example" });
        let credentials = json!({ "integration_code": "CODE-SECRET", "secret": "PW-SECRET" });
        let config = Config::new(Provider::Autotask, &settings, &credentials).unwrap();
        let client = Autotask::new(
            &config,
            crate::http_client(std::time::Duration::from_secs(5)).unwrap(),
        )
        .unwrap();
        let debug = format!("{client:?}");
        assert!(!debug.contains("SECRET"), "{debug}");
    }
}
