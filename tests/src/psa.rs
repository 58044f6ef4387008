//! Local PSAs: one fake server per product (ConnectWise Manage, Autotask, HaloPSA) that speaks its
//! wire format — codebase discovery, zone discovery and OAuth tokens included — checks credentials
//! exactly as the real one does, serves one seeded ticket and a few members, records every call and
//! every note, and can rate-limit, fail, go down and stall.
//!
//! ```text
//! let fake = FakePsa::start(Provider::ConnectWise).await;
//! let psa = rf_psa::connect(fake.provider, &fake.settings(), &fake.credentials(), timeout)?;
//! psa.ticket(psa::TICKET).await?;
//! assert_eq!(fake.notes().len(), 0);
//! ```

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use rf_core::psa::Provider;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The seeded ticket (the ConnectWise ticket id, the Autotask ticket id, the Halo ticket id).
pub const TICKET: &str = "12345";
/// The seeded ticket's Autotask ticket number.
pub const TICKET_NUMBER: &str = "T20240101.0001";
/// A ticket no fake knows.
pub const MISSING_TICKET: &str = "99999";
pub const SUMMARY: &str = "Outlook keeps prompting for password";
pub const COMPANY: &str = "IndigoStrawberry, Co.";
pub const CONTACT: &str = "Ramon Stawiarz";
pub const BOARD: &str = "Help Desk";
pub const STATUS: &str = "New";
pub const PRIORITY: &str = "Priority 3 - Normal Response";
pub const DESCRIPTION: &str = "Since the mailbox moved to Microsoft 365 on Monday, Outlook asks \
     for the password every few minutes. Webmail works fine.";

pub const JANE_EMAIL: &str = "jane@msp.example";
pub const BOB_EMAIL: &str = "bob@msp.example";
/// An inactive member: never listed, never found by e-mail.
pub const CARL_EMAIL: &str = "carl@msp.example";

/// ConnectWise: the company id, keys and clientId the fake accepts.
pub const CW_COMPANY: &str = "acme";
pub const CW_PUBLIC_KEY: &str = "pub-test";
pub const CW_PRIVATE_KEY: &str = "priv-test-secret";
pub const CW_CLIENT_ID: &str = "client-test-id";
/// `Basic base64("acme+pub-test:priv-test-secret")`.
const CW_AUTHORIZATION: &str = "Basic YWNtZStwdWItdGVzdDpwcml2LXRlc3Qtc2VjcmV0";
/// The codebase the fake's company is on; the API is served only under it.
pub const CW_CODEBASE: &str = "v4_6_release/";

/// Autotask: the API user the fake accepts.
pub const AT_USERNAME: &str = "api@msp.example";
pub const AT_INTEGRATION_CODE: &str = "INTEGRATION-TEST-CODE";
pub const AT_SECRET: &str = "at-test-secret";
/// Where the fake's zone serves the API (the zone answer names it).
pub const AT_ZONE_PATH: &str = "/zone2/ATServicesRest/";
/// Autotask's page size.
const AT_PAGE: usize = 500;

/// HaloPSA: the API application the fake accepts.
pub const HALO_CLIENT_ID: &str = "halo-test-client";
pub const HALO_CLIENT_SECRET: &str = "halo-test-secret";

/// A credential value no fake accepts, for tests that look for it in error messages.
pub const WRONG_SECRET: &str = "wrong-secret-9f8e7d";

/// A note the fake accepted.
#[derive(Debug, Clone)]
pub struct RecordedNote {
    /// The ticket id in the path (Autotask, ConnectWise) or body (Halo).
    pub ticket: String,
    /// The note as posted: ConnectWise's note object, Autotask's TicketNote, one Halo action.
    pub body: Value,
    /// Who it was credited to: the ConnectWise member identifier, the Autotask
    /// `ImpersonationResourceId` header, the Halo `who_agentid`.
    pub member: Option<String>,
    /// The id the fake gave the note.
    pub id: String,
}

/// A person in the fake PSA.
#[derive(Debug, Clone)]
pub struct FakeMember {
    /// The provider's id: ConnectWise identifier, Autotask resource id, Halo agent id.
    pub id: String,
    pub user_name: String,
    pub first_name: String,
    pub last_name: String,
    pub email: String,
    pub active: bool,
}

impl FakeMember {
    pub fn name(&self) -> String {
        format!("{} {}", self.first_name, self.last_name)
    }
}

/// A canned failure for the next calls.
#[derive(Debug, Clone)]
struct Fault {
    status: u16,
    retry_after: Option<u64>,
    /// The body to answer; the provider's usual error body when `None`.
    body: Option<Value>,
}

#[derive(Debug, Default)]
struct Inner {
    calls: Vec<(String, String, u16)>,
    notes: Vec<RecordedNote>,
    faults: VecDeque<Fault>,
    down: bool,
    stall: Duration,
    members: Vec<FakeMember>,
    /// Halo bearer tokens that are still good.
    tokens: HashSet<String>,
    issued: u64,
    next_note: u64,
}

/// A fake PSA of one product on a free local port.
#[derive(Debug, Clone)]
pub struct FakePsa {
    pub provider: Provider,
    /// `http://127.0.0.1:{port}`.
    pub base_url: String,
    inner: Arc<Mutex<Inner>>,
}

/// What a handler answers.
struct Reply {
    status: u16,
    body: Value,
    retry_after: Option<u64>,
}

impl Reply {
    fn ok(body: Value) -> Self {
        Self::status(200, body)
    }

    fn status(status: u16, body: Value) -> Self {
        Self {
            status,
            body,
            retry_after: None,
        }
    }
}

impl FakePsa {
    /// Starts a fake `provider` on a free local port, seeded with [`TICKET`] and the members Jane
    /// Doe, Bob Smith and (inactive) Carl Gone.
    pub async fn start(provider: Provider) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let seeded = [
            ("jdoe", 29_682_885, 5, "Jane", "Doe", JANE_EMAIL, true),
            ("bsmith", 29_682_886, 6, "Bob", "Smith", BOB_EMAIL, true),
            ("cgone", 29_682_887, 7, "Carl", "Gone", CARL_EMAIL, false),
        ];
        let members = seeded
            .into_iter()
            .map(
                |(user, resource, agent, first, last, email, active)| FakeMember {
                    id: match provider {
                        Provider::ConnectWise => user.to_owned(),
                        Provider::Autotask => resource.to_string(),
                        Provider::Halo => agent.to_string(),
                    },
                    user_name: user.to_owned(),
                    first_name: first.to_owned(),
                    last_name: last.to_owned(),
                    email: email.to_owned(),
                    active,
                },
            )
            .collect();
        let fake = Self {
            provider,
            base_url: format!("http://{address}"),
            inner: Arc::new(Mutex::new(Inner {
                members,
                next_note: 1_000,
                ..Inner::default()
            })),
        };
        let app = Router::new().fallback(handle).with_state(fake.clone());
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        fake
    }

    /// The non-secret settings that reach this fake.
    pub fn settings(&self) -> Value {
        match self.provider {
            Provider::ConnectWise => json!({ "site": self.base_url, "company": CW_COMPANY }),
            Provider::Autotask => json!({
                "username": AT_USERNAME,
                "discovery_url": format!("{}/atservicesrest/", self.base_url),
            }),
            Provider::Halo => json!({ "url": self.base_url }),
        }
    }

    /// The credentials this fake accepts.
    pub fn credentials(&self) -> Value {
        match self.provider {
            Provider::ConnectWise => json!({
                "public_key": CW_PUBLIC_KEY, "private_key": CW_PRIVATE_KEY, "client_id": CW_CLIENT_ID,
            }),
            Provider::Autotask => {
                json!({ "integration_code": AT_INTEGRATION_CODE, "secret": AT_SECRET })
            }
            Provider::Halo => {
                json!({ "client_id": HALO_CLIENT_ID, "client_secret": HALO_CLIENT_SECRET })
            }
        }
    }

    /// The credentials with the secret part (private key, secret, client secret) replaced by
    /// [`WRONG_SECRET`].
    pub fn wrong_credentials(&self) -> Value {
        let mut credentials = self.credentials();
        let key = match self.provider {
            Provider::ConnectWise => "private_key",
            Provider::Autotask => "secret",
            Provider::Halo => "client_secret",
        };
        credentials[key] = json!(WRONG_SECRET);
        credentials
    }

    /// The provider's id of the seeded member with `email` ("jdoe", "29682885", "5").
    pub fn member_id(&self, email: &str) -> String {
        self.inner
            .lock()
            .unwrap()
            .members
            .iter()
            .find(|m| m.email == email)
            .map(|m| m.id.clone())
            .unwrap_or_else(|| panic!("no seeded member {email}"))
    }

    /// Adds `count` more active members (for paging).
    pub fn add_members(&self, count: usize) {
        let mut inner = self.inner.lock().unwrap();
        for i in 0..count {
            let id = match self.provider {
                Provider::ConnectWise => format!("member{i}"),
                Provider::Autotask => (29_700_000 + i).to_string(),
                Provider::Halo => (100 + i).to_string(),
            };
            inner.members.push(FakeMember {
                id,
                user_name: format!("member{i}"),
                first_name: "Member".to_owned(),
                last_name: i.to_string(),
                email: format!("member{i}@msp.example"),
                active: true,
            });
        }
    }

    /// Every note accepted so far.
    pub fn notes(&self) -> Vec<RecordedNote> {
        self.inner.lock().unwrap().notes.clone()
    }

    /// Every call so far: method, path and query, status answered.
    pub fn calls(&self) -> Vec<(String, String, u16)> {
        self.inner.lock().unwrap().calls.clone()
    }

    /// How many calls so far had a path starting with `prefix`.
    pub fn count(&self, prefix: &str) -> usize {
        self.calls()
            .iter()
            .filter(|(_, path, _)| path.starts_with(prefix))
            .count()
    }

    /// The next `n` calls (any endpoint, discovery and token calls included) answer `status` with
    /// the provider's error body, and `Retry-After` if given.
    pub fn fail_next(&self, n: usize, status: u16, retry_after: Option<u64>) {
        self.queue(n, status, retry_after, None);
    }

    /// The next `n` calls answer `status` with `body`.
    pub fn fail_next_with(&self, n: usize, status: u16, body: Value) {
        self.queue(n, status, None, Some(body));
    }

    fn queue(&self, n: usize, status: u16, retry_after: Option<u64>, body: Option<Value>) {
        let mut inner = self.inner.lock().unwrap();
        for _ in 0..n {
            inner.faults.push_back(Fault {
                status,
                retry_after,
                body: body.clone(),
            });
        }
    }

    /// While down, every call answers 503.
    pub fn set_down(&self, down: bool) {
        self.inner.lock().unwrap().down = down;
    }

    /// Every call waits `stall` before it is answered (`Duration::ZERO`: answer at once).
    pub fn stall(&self, stall: Duration) {
        self.inner.lock().unwrap().stall = stall;
    }

    /// Halo: every issued token stops working (as when Halo restarts or a token is revoked).
    pub fn revoke_tokens(&self) {
        self.inner.lock().unwrap().tokens.clear();
    }

    /// The provider's error body for `status`.
    fn error_body(&self, status: u16, message: &str) -> Value {
        match self.provider {
            Provider::ConnectWise => {
                let code = match status {
                    400 => "InvalidObject",
                    401 => "Unauthorized",
                    403 => "Forbidden",
                    404 => "NotFound",
                    429 => "TooManyRequests",
                    _ => "UnexpectedServerError",
                };
                json!({ "code": code, "message": message })
            }
            Provider::Autotask => json!({ "errors": [message] }),
            Provider::Halo => json!({ "ClassName": "HaloException", "Message": message }),
        }
    }

    fn error(&self, status: u16, message: &str) -> Reply {
        Reply::status(status, self.error_body(status, message))
    }

    fn note_id(&self) -> u64 {
        let mut inner = self.inner.lock().unwrap();
        inner.next_note += 1;
        inner.next_note
    }

    fn record_note(&self, ticket: &str, body: Value, member: Option<String>, id: u64) {
        self.inner.lock().unwrap().notes.push(RecordedNote {
            ticket: ticket.to_owned(),
            body,
            member,
            id: id.to_string(),
        });
    }

    fn members(&self) -> Vec<FakeMember> {
        self.inner.lock().unwrap().members.clone()
    }
}

/// Every request: faults first, then the provider's answer; recorded either way.
async fn handle(
    State(fake): State<FakePsa>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path_and_query = uri
        .path_and_query()
        .map_or_else(|| uri.path().to_owned(), |p| p.as_str().to_owned());
    let (fault, down, stall) = {
        let mut inner = fake.inner.lock().unwrap();
        let fault = if inner.down {
            None
        } else {
            inner.faults.pop_front()
        };
        (fault, inner.down, inner.stall)
    };
    if !stall.is_zero() {
        tokio::time::sleep(stall).await;
    }
    let query: HashMap<String, String> = uri
        .query()
        .map(|q| serde_urlencoded::from_str(q).unwrap_or_default())
        .unwrap_or_default();
    let reply = if down {
        fake.error(503, "Service Unavailable")
    } else if let Some(fault) = fault {
        Reply {
            status: fault.status,
            body: fault
                .body
                .unwrap_or_else(|| fake.error_body(fault.status, "injected failure")),
            retry_after: fault.retry_after,
        }
    } else {
        let request = Request {
            method: &method,
            path: uri.path(),
            query: &query,
            headers: &headers,
            body: &body,
        };
        match fake.provider {
            Provider::ConnectWise => fake.connectwise(&request),
            Provider::Autotask => fake.autotask(&request),
            Provider::Halo => fake.halo(&request),
        }
    };
    fake.inner
        .lock()
        .unwrap()
        .calls
        .push((method.to_string(), path_and_query, reply.status));
    let status = StatusCode::from_u16(reply.status).unwrap();
    let mut response = if reply.body.is_null() {
        status.into_response()
    } else {
        (status, axum::Json(reply.body)).into_response()
    };
    if let Some(seconds) = reply.retry_after {
        response
            .headers_mut()
            .insert("retry-after", seconds.to_string().parse().unwrap());
    }
    response
}

struct Request<'a> {
    method: &'a Method,
    path: &'a str,
    query: &'a HashMap<String, String>,
    headers: &'a HeaderMap,
    body: &'a Bytes,
}

impl Request<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(self.body).unwrap_or(Value::Null)
    }

    fn query(&self, key: &str) -> Option<&str> {
        self.query.get(key).map(String::as_str)
    }
}

// ConnectWise Manage.
impl FakePsa {
    fn connectwise(&self, request: &Request<'_>) -> Reply {
        let method = request.method.as_str();
        if let Some(company) = request.path.strip_prefix("/login/companyinfo/") {
            return if method == "GET" && company.eq_ignore_ascii_case(CW_COMPANY) {
                Reply::ok(json!({
                    "CompanyName": "Acme MSP", "Codebase": CW_CODEBASE, "VersionCode": "v2024.1",
                    "VersionNumber": "v4.6", "CompanyID": CW_COMPANY, "IsCloud": true,
                    "SiteUrl": self.base_url.trim_start_matches("http://"),
                }))
            } else {
                Reply::status(404, Value::Null)
            };
        }
        let api = format!("/{CW_CODEBASE}apis/3.0/");
        let Some(rest) = request.path.strip_prefix(api.as_str()) else {
            return Reply::status(404, Value::Null);
        };
        if request.header("authorization") != Some(CW_AUTHORIZATION)
            || request.header("clientid") != Some(CW_CLIENT_ID)
        {
            return self.error(401, "Authentication failed.");
        }
        let segments: Vec<&str> = rest.split('/').collect();
        match (method, segments.as_slice()) {
            ("GET", ["system", "info"]) => Reply::ok(json!({
                "version": "v2024.1.12345", "isCloud": true,
                "serverTimeZone": "Eastern Standard Time", "licenseBits": [], "cloudRegion": "NA",
            })),
            ("GET", ["service", "tickets", id]) if *id == TICKET => Reply::ok(cw_ticket()),
            ("GET", ["service", "tickets", id]) => {
                self.error(404, &format!("Ticket {id} not found"))
            }
            ("GET", ["service", "tickets", id, "notes"]) if *id == TICKET => {
                let conditions = request.query("conditions").unwrap_or_default();
                let mut notes = vec![json!({
                    "id": 1, "ticketId": 12345, "text": DESCRIPTION, "detailDescriptionFlag": true,
                    "internalAnalysisFlag": false, "resolutionFlag": false,
                    "contact": { "id": 48, "name": CONTACT },
                })];
                if !conditions.contains("detailDescriptionFlag=true") {
                    notes.extend(self.notes().into_iter().map(|n| n.body));
                }
                Reply::ok(Value::Array(notes))
            }
            ("POST", ["service", "tickets", id, "notes"]) => self.cw_post_note(id, request),
            ("GET", ["system", "members"]) => self.cw_members(request),
            ("GET", ["service", "tickets", id, ..]) => {
                self.error(404, &format!("Ticket {id} not found"))
            }
            _ => self.error(404, &format!("{method} {} is not served", request.path)),
        }
    }

    fn cw_post_note(&self, id: &str, request: &Request<'_>) -> Reply {
        if id != TICKET {
            return self.error(404, &format!("Ticket {id} not found"));
        }
        let body = request.json();
        if body["text"].as_str().is_none_or(|t| t.trim().is_empty()) {
            return Reply::status(
                400,
                json!({ "code": "InvalidObject", "message": "note object is invalid",
                        "errors": [{ "code": "MissingRequiredField", "message": "text is required.",
                                     "resource": "note", "field": "text" }] }),
            );
        }
        let member = body["member"]["identifier"].as_str().map(str::to_owned);
        if let Some(identifier) = &member
            && !self.members().iter().any(|m| &m.id == identifier)
        {
            return Reply::status(
                400,
                json!({ "code": "InvalidObject", "message": "note object is invalid",
                        "errors": [{ "code": "InvalidField",
                                     "message": format!("Member {identifier} was not found."),
                                     "resource": "note", "field": "member" }] }),
            );
        }
        let note_id = self.note_id();
        let mut note = body.clone();
        note["id"] = json!(note_id);
        note["ticketId"] = json!(12345);
        self.record_note(id, body, member, note_id);
        Reply::status(201, note)
    }

    fn cw_members(&self, request: &Request<'_>) -> Reply {
        let conditions = request.query("conditions").unwrap_or_default();
        let email = quoted(conditions, "primaryEmail=");
        let identifier = quoted(conditions, "identifier=");
        let only_active = conditions.contains("inactiveFlag=false");
        let page: usize = request
            .query("page")
            .and_then(|p| p.parse().ok())
            .unwrap_or(1);
        let size: usize = request
            .query("pageSize")
            .and_then(|p| p.parse().ok())
            .unwrap_or(25)
            .min(1_000);
        let found: Vec<Value> = self
            .members()
            .into_iter()
            .filter(|m| !only_active || m.active)
            .filter(|m| {
                email
                    .as_deref()
                    .is_none_or(|e| e.eq_ignore_ascii_case(&m.email))
            })
            .filter(|m| identifier.as_deref().is_none_or(|i| i == m.id))
            .skip(page.saturating_sub(1) * size)
            .take(size)
            .map(|m| {
                json!({
                    "id": 100, "identifier": m.id, "firstName": m.first_name,
                    "lastName": m.last_name, "primaryEmail": m.email, "inactiveFlag": !m.active,
                    "licenseClass": "F",
                })
            })
            .collect();
        Reply::ok(Value::Array(found))
    }
}

/// The fixture ticket, renumbered and retitled.
fn cw_ticket() -> Value {
    let mut ticket: Value = serde_json::from_str(include_str!(
        "../../bot/psa/fixtures/connectwise/ticket.json"
    ))
    .unwrap();
    ticket["id"] = json!(12345);
    ticket["summary"] = json!(SUMMARY);
    ticket["board"]["name"] = json!(BOARD);
    ticket["status"]["name"] = json!(STATUS);
    ticket["priority"]["name"] = json!(PRIORITY);
    ticket["company"]["name"] = json!(COMPANY);
    ticket["contactName"] = json!(CONTACT);
    ticket
}

/// The value of `key="…"` in a ConnectWise conditions string, unescaped.
fn quoted(conditions: &str, key: &str) -> Option<String> {
    let start = conditions.find(&format!("{key}\""))? + key.len() + 1;
    let mut value = String::new();
    let mut chars = conditions[start..].chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => value.extend(chars.next()),
            '"' => return Some(value),
            c => value.push(c),
        }
    }
    None
}

// Autotask.
impl FakePsa {
    fn autotask(&self, request: &Request<'_>) -> Reply {
        let method = request.method.as_str();
        if request.path == "/atservicesrest/v1.0/zoneInformation" {
            return if request.query("user") == Some(AT_USERNAME) {
                Reply::ok(json!({
                    "zoneName": "Fake Zone",
                    "url": format!("{}{AT_ZONE_PATH}", self.base_url),
                    "webUrl": format!("{}/", self.base_url),
                    "ci": 12345,
                }))
            } else {
                self.error(404, "Zone information could not be determined")
            };
        }
        let api = format!("{AT_ZONE_PATH}v1.0/");
        let Some(rest) = request.path.strip_prefix(api.as_str()) else {
            return Reply::status(404, Value::Null);
        };
        if request.header("apiintegrationcode") != Some(AT_INTEGRATION_CODE)
            || request.header("username") != Some(AT_USERNAME)
            || request.header("secret") != Some(AT_SECRET)
        {
            return Reply::status(401, Value::Null);
        }
        let segments: Vec<&str> = rest.split('/').collect();
        match (method, segments.as_slice()) {
            ("GET", ["ThresholdInformation"]) => Reply::ok(json!({
                "externalRequestThreshold": 10000, "requestThresholdTimeframe": 60,
                "currentTimeframeRequestCount": 12,
            })),
            ("GET", ["Tickets", "entityInformation", "fields"]) => Reply::ok(at_fields()),
            ("POST", ["Tickets", "query"]) => {
                let tickets = vec![at_ticket()];
                Reply::ok(json!({
                    "items": at_filter(tickets, &request.json()["filter"]),
                    "pageDetails": { "count": 1, "requestCount": 500, "prevPageUrl": null,
                                     "nextPageUrl": null },
                }))
            }
            ("GET", ["Tickets", id]) => Reply::ok(json!({
                "item": if *id == TICKET { at_ticket() } else { Value::Null }
            })),
            ("POST", ["Tickets", id, "Notes"]) => self.at_post_note(id, request),
            ("GET", ["Companies", "29683616"]) => Reply::ok(json!({
                "item": { "id": 29683616, "companyName": COMPANY, "companyType": 1 }
            })),
            ("GET", ["Contacts", "30682882"]) => Reply::ok(json!({
                "item": { "id": 30682882, "firstName": "Ramon", "lastName": "Stawiarz",
                          "companyID": 29683616 }
            })),
            ("GET", ["Companies" | "Contacts", _]) => Reply::ok(json!({ "item": null })),
            ("POST", ["Resources", "query"]) => self.at_resources(&request.json()["filter"], 0),
            ("GET", ["Resources", "query", "next"]) => {
                let search: Value = request
                    .query("search")
                    .and_then(|s| serde_json::from_str(s).ok())
                    .unwrap_or(Value::Null);
                let offset = request
                    .query("paging")
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(0);
                self.at_resources(&search["filter"], offset)
            }
            ("GET", ["Resources", id]) => {
                let found = self
                    .at_resource_list()
                    .into_iter()
                    .find(|r| r["id"].as_u64().is_some_and(|n| id.parse() == Ok(n)));
                Reply::ok(json!({ "item": found }))
            }
            _ => self.error(404, &format!("{method} {} is not served", request.path)),
        }
    }

    fn at_post_note(&self, id: &str, request: &Request<'_>) -> Reply {
        if id != TICKET {
            return self.error(404, &format!("Ticket {id} was not found."));
        }
        let body = request.json();
        let missing = ["title", "description", "noteType", "publish"]
            .into_iter()
            .find(|field| body[*field].is_null());
        if let Some(field) = missing {
            return self.error(500, &format!("Value for field {field} is required."));
        }
        if body["ticketID"].as_u64() != id.parse().ok() {
            return self.error(500, "ticketID does not match the parent ticket.");
        }
        let member = request.header("impersonationresourceid").map(str::to_owned);
        if let Some(resource) = &member
            && !self.members().iter().any(|m| &m.id == resource)
        {
            return self.error(
                500,
                &format!("Impersonation resource {resource} does not exist."),
            );
        }
        let note_id = self.note_id();
        self.record_note(id, body, member, note_id);
        Reply::ok(json!({ "itemId": note_id }))
    }

    fn at_resource_list(&self) -> Vec<Value> {
        self.members()
            .into_iter()
            .map(|m| {
                json!({
                    "id": m.id.parse::<u64>().unwrap(), "firstName": m.first_name,
                    "lastName": m.last_name, "email": m.email, "userName": m.user_name,
                    "isActive": m.active, "resourceType": "Employee",
                })
            })
            .collect()
    }

    /// One page of resources matching `filter`, from `offset`, with the next page's address.
    fn at_resources(&self, filter: &Value, offset: usize) -> Reply {
        let found = at_filter(self.at_resource_list(), filter);
        let page: Vec<Value> = found.iter().skip(offset).take(AT_PAGE).cloned().collect();
        let next = (offset + AT_PAGE < found.len()).then(|| {
            let query = serde_urlencoded::to_string([
                ("paging", (offset + AT_PAGE).to_string()),
                ("search", json!({ "filter": filter }).to_string()),
            ])
            .unwrap();
            format!(
                "{}{AT_ZONE_PATH}v1.0/Resources/query/next?{query}",
                self.base_url
            )
        });
        Reply::ok(json!({
            "items": page,
            "pageDetails": { "count": page.len(), "requestCount": AT_PAGE,
                             "prevPageUrl": null, "nextPageUrl": next },
        }))
    }
}

/// The records matching every `eq` condition of an Autotask filter (text compared without case).
fn at_filter(records: Vec<Value>, filter: &Value) -> Vec<Value> {
    let conditions = filter.as_array().cloned().unwrap_or_default();
    records
        .into_iter()
        .filter(|record| {
            conditions.iter().all(|c| {
                assert_eq!(c["op"], "eq", "the fake only knows eq");
                let field = c["field"].as_str().unwrap_or_default();
                let actual = record
                    .as_object()
                    .and_then(|o| o.iter().find(|(k, _)| k.eq_ignore_ascii_case(field)))
                    .map(|(_, v)| v);
                match (actual, &c["value"]) {
                    (Some(Value::String(a)), Value::String(b)) => a.eq_ignore_ascii_case(b),
                    (Some(a), b) => a == b,
                    (None, _) => false,
                }
            })
        })
        .collect()
}

fn at_ticket() -> Value {
    json!({
        "id": 12345, "ticketNumber": TICKET_NUMBER, "title": SUMMARY, "description": DESCRIPTION,
        "companyID": 29683616, "contactID": 30682882, "queueID": 29682833, "status": 1,
        "priority": 2, "ticketType": 1, "createDate": "2024-01-01T09:12:00Z",
    })
}

fn at_fields() -> Value {
    json!({ "fields": [
        { "name": "id", "dataType": "long", "isPickList": false, "picklistValues": null },
        { "name": "status", "dataType": "integer", "isPickList": true, "picklistValues": [
            { "value": "1", "label": STATUS, "isDefaultValue": true, "isActive": true },
            { "value": "5", "label": "Complete", "isDefaultValue": false, "isActive": true },
        ]},
        { "name": "priority", "dataType": "integer", "isPickList": true, "picklistValues": [
            { "value": "1", "label": "Priority 1 - Critical", "isActive": true },
            { "value": "2", "label": PRIORITY, "isActive": true },
        ]},
        { "name": "queueID", "dataType": "integer", "isPickList": true, "picklistValues": [
            { "value": "29682833", "label": BOARD, "isActive": true },
            { "value": "29682969", "label": "Level II Support", "isActive": true },
        ]},
    ]})
}

// HaloPSA.
impl FakePsa {
    fn halo(&self, request: &Request<'_>) -> Reply {
        let method = request.method.as_str();
        if request.path == "/auth/token" {
            return self.halo_token(request);
        }
        let Some(rest) = request.path.strip_prefix("/api/") else {
            return Reply::status(404, Value::Null);
        };
        let token = request
            .header("authorization")
            .and_then(|h| h.strip_prefix("Bearer "));
        if !token.is_some_and(|t| self.inner.lock().unwrap().tokens.contains(t)) {
            return Reply::status(401, Value::Null);
        }
        let segments: Vec<&str> = rest.split('/').collect();
        match (method, segments.as_slice()) {
            ("GET", ["Agent", "me"]) => Reply::ok(json!({ "id": 1, "name": "API" })),
            ("GET", ["Agent"]) => Reply::ok(Value::Array(
                self.members()
                    .into_iter()
                    .map(|m| {
                        json!({
                            "id": m.id.parse::<u64>().unwrap(), "name": m.name(),
                            "email": m.email, "isdisabled": !m.active, "team": BOARD,
                        })
                    })
                    .collect(),
            )),
            ("GET", ["Tickets", id]) if *id == TICKET => Reply::ok(json!({
                "id": 12345, "summary": SUMMARY, "details": format!("<p>{DESCRIPTION}</p>"),
                "client_id": 12, "client_name": COMPANY, "user_id": 48, "user_name": CONTACT,
                "team": BOARD, "status_id": 1, "status_name": STATUS, "priority_id": 3,
                "priority_name": PRIORITY, "tickettype_id": 1,
            })),
            ("GET", ["Tickets", id]) => self.error(404, &format!("Ticket {id} not found")),
            ("POST", ["Actions"]) => self.halo_actions(request),
            _ => self.error(404, &format!("{method} {} is not served", request.path)),
        }
    }

    fn halo_token(&self, request: &Request<'_>) -> Reply {
        let form: HashMap<String, String> =
            serde_urlencoded::from_bytes(request.body).unwrap_or_default();
        let field = |key: &str| form.get(key).map(String::as_str);
        if request.method != Method::POST || field("grant_type") != Some("client_credentials") {
            return Reply::status(400, json!({ "error": "unsupported_grant_type" }));
        }
        if field("client_id") != Some(HALO_CLIENT_ID)
            || field("client_secret") != Some(HALO_CLIENT_SECRET)
        {
            return Reply::status(401, json!({ "error": "invalid_client" }));
        }
        let mut inner = self.inner.lock().unwrap();
        inner.issued += 1;
        let token = format!("halo-token-{}", inner.issued);
        inner.tokens.insert(token.clone());
        Reply::ok(json!({
            "scope": "all", "token_type": "Bearer", "access_token": token, "expires_in": 3600,
        }))
    }

    fn halo_actions(&self, request: &Request<'_>) -> Reply {
        let Value::Array(actions) = request.json() else {
            return self.error(400, "Expected an array of actions");
        };
        let mut created = Vec::new();
        for action in actions {
            let ticket = action["ticket_id"].to_string();
            if ticket != TICKET {
                return self.error(404, &format!("Ticket {ticket} not found"));
            }
            let member = action
                .get("who_agentid")
                .filter(|v| !v.is_null())
                .map(Value::to_string);
            if let Some(agent) = &member
                && !self.members().iter().any(|m| &m.id == agent)
            {
                return self.error(400, &format!("Agent {agent} not found"));
            }
            let id = self.note_id();
            let mut answer = action.clone();
            answer["id"] = json!(id);
            self.record_note(&ticket, action, member, id);
            created.push(answer);
        }
        match created.len() {
            1 => Reply::status(201, created.remove(0)),
            _ => Reply::status(201, Value::Array(created)),
        }
    }
}
