//! HaloPSA: an OAuth client-credentials token from the authorisation server (kept until a minute
//! before it expires, and fetched again once when the API answers 401), then bearer calls to the
//! resource server's `/api`.

use crate::http::{Answer, Body, HttpClient, host};
use crate::{
    Complaint, Config, Member, NoteKind, NoteRequest, PostedNote, Provider, Psa, PsaError, Secret,
    Ticket, endpoint, failure, id_text, is_number, trim_text,
};
use hyper::Method;
use hyper::header::{ACCEPT, AUTHORIZATION, HeaderMap, HeaderValue};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use url::Url;

const MAX_DESCRIPTION_CHARS: usize = 2_000;

/// A token is fetched again this long before Halo said it expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(60);

const CREDENTIALS: &str = "HaloPSA rejected the client id and secret (check the API application, its \
     client credentials and, for hosted Halo, the tenant)";

/// A HaloPSA connection.
pub(crate) struct Halo {
    http: HttpClient,
    /// The resource server.
    url: Url,
    /// `{auth_url}/token[?tenant=…]`.
    token_url: Url,
    client_id: Secret,
    client_secret: Secret,
    token: tokio::sync::Mutex<Option<Token>>,
}

#[derive(Debug, Clone)]
struct Token {
    value: Secret,
    renew_at: Instant,
}

impl std::fmt::Debug for Halo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Halo")
            .field("url", &self.url.as_str())
            .field("token_url", &self.token_url.as_str())
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .finish_non_exhaustive()
    }
}

impl Halo {
    pub(crate) fn new(config: &Config<'_>, http: HttpClient) -> Result<Self, PsaError> {
        let url = config
            .url("url")?
            .ok_or_else(|| PsaError::Misconfigured("HaloPSA needs `url`".to_owned()))?;
        let auth_url = match config.url("auth_url")? {
            Some(auth) => auth,
            None => endpoint(&url, &["auth"]),
        };
        let mut token_url = endpoint(&auth_url, &["token"]);
        if let Some(tenant) = config.setting("tenant")? {
            token_url.query_pairs_mut().append_pair("tenant", &tenant);
        }
        Ok(Self {
            http,
            url,
            token_url,
            client_id: config.secret("client_id")?,
            client_secret: config.secret("client_secret")?,
            token: tokio::sync::Mutex::new(None),
        })
    }

    /// A token that is still good, fetched when there is none.
    async fn token(&self) -> Result<Secret, PsaError> {
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_ref()
            && Instant::now() < token.renew_at
        {
            return Ok(token.value.clone());
        }
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("client_id", self.client_id.expose())
            .append_pair("client_secret", self.client_secret.expose())
            .append_pair("scope", "all")
            .finish();
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        let answer = self
            .http
            .send(
                Provider::Halo,
                Method::POST,
                &self.token_url,
                headers,
                Body::Form(form),
            )
            .await?;
        if matches!(answer.status.as_u16(), 400 | 401 | 403) {
            return Err(PsaError::Unauthorized(CREDENTIALS.to_owned()));
        }
        if !answer.is_success() {
            return Err(error(&answer, None));
        }
        let granted: Granted = answer.json()?;
        let value = granted
            .access_token
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                PsaError::Unavailable("unexpected answer from HaloPSA: no access token".to_owned())
            })?;
        let lifetime = Duration::from_secs(granted.expires_in.unwrap_or(3_600));
        let token = Token {
            value: Secret(value),
            renew_at: Instant::now() + lifetime.saturating_sub(TOKEN_MARGIN),
        };
        *cached = Some(token.clone());
        Ok(token.value)
    }

    /// Forgets `used` unless another call already replaced it.
    async fn forget(&self, used: &Secret) {
        let mut cached = self.token.lock().await;
        if cached
            .as_ref()
            .is_some_and(|t| t.value.expose() == used.expose())
        {
            *cached = None;
        }
    }

    /// An API call with a bearer token; a 401 drops the token and tries once more with a new one.
    async fn call(
        &self,
        method: Method,
        path: &[&str],
        query: &[(&str, &str)],
        body: Body,
    ) -> Result<Answer, PsaError> {
        let mut segments = vec!["api"];
        segments.extend_from_slice(path);
        let mut url = endpoint(&self.url, &segments);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let mut retried = false;
        loop {
            let token = self.token().await?;
            let mut bearer =
                HeaderValue::from_str(&format!("Bearer {}", token.expose())).map_err(|_| {
                    PsaError::Unavailable("HaloPSA issued a token that cannot be sent".to_owned())
                })?;
            bearer.set_sensitive(true);
            let mut headers = HeaderMap::new();
            headers.insert(AUTHORIZATION, bearer);
            headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
            let answer = self
                .http
                .send(Provider::Halo, method.clone(), &url, headers, body.clone())
                .await?;
            if answer.status.as_u16() == 401 && !retried {
                tracing::debug!("HaloPSA refused the token; fetching a new one");
                self.forget(&token).await;
                retried = true;
                continue;
            }
            return Ok(answer);
        }
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

    async fn agents(&self) -> Result<Vec<HaloAgent>, PsaError> {
        let agents: Agents = self
            .get(&["Agent"], &[("includeenabled", "true")], None)
            .await?;
        Ok(match agents {
            Agents::List(list) | Agents::Wrapped { agents: list } => list,
        }
        .into_iter()
        .filter(|a| !a.isdisabled.unwrap_or(false))
        .collect())
    }
}

#[async_trait::async_trait]
impl Psa for Halo {
    fn provider(&self) -> Provider {
        Provider::Halo
    }

    async fn test(&self) -> Result<String, PsaError> {
        let me: Value = self.get(&["Agent", "me"], &[], None).await?;
        Ok(match me["name"].as_str().filter(|n| !n.trim().is_empty()) {
            Some(name) => format!("HaloPSA at {} (as {name})", host(&self.url)),
            None => format!("HaloPSA at {}", host(&self.url)),
        })
    }

    async fn ticket(&self, id: &str) -> Result<Ticket, PsaError> {
        let id = crate::numeric_ticket(id, Provider::Halo)?;
        let ticket: HaloTicket = self
            .get(
                &["Tickets", id],
                &[("includedetails", "true")],
                Some(crate::ticket_not_found(id, Provider::Halo)),
            )
            .await?;
        Ok(ticket.into_ticket(id))
    }

    async fn post_note(&self, note: &NoteRequest) -> Result<PostedNote, PsaError> {
        let id = crate::numeric_ticket(&note.ticket, Provider::Halo)?;
        let body = note_body(id, note)?;
        let answer = self
            .call(Method::POST, &["Actions"], &[], Body::Json(body))
            .await?;
        if !answer.is_success() {
            return Err(error(
                &answer,
                Some(crate::ticket_not_found(id, Provider::Halo)),
            ));
        }
        let created: Value = answer.json()?;
        let created = match &created {
            Value::Array(items) => items.first().unwrap_or(&Value::Null),
            other => other,
        };
        let id = id_text(&created["id"]).ok_or_else(|| {
            PsaError::Unavailable("unexpected answer from HaloPSA: no action id".to_owned())
        })?;
        Ok(PostedNote { id })
    }

    async fn members(&self) -> Result<Vec<Member>, PsaError> {
        Ok(self
            .agents()
            .await?
            .into_iter()
            .filter_map(HaloAgent::into_member)
            .collect())
    }

    async fn member_by_email(&self, email: &str) -> Result<Option<Member>, PsaError> {
        let email = email.trim();
        Ok(self.members().await?.into_iter().find(|m| {
            m.email
                .as_deref()
                .is_some_and(|e| e.trim().eq_ignore_ascii_case(email))
        }))
    }

    async fn member(&self, id: &str) -> Result<Option<Member>, PsaError> {
        let id = id.trim();
        Ok(self.members().await?.into_iter().find(|m| {
            if is_number(id) {
                m.id == id
            } else {
                m.name.trim().eq_ignore_ascii_case(id)
            }
        }))
    }
}

fn note_body(ticket: &str, note: &NoteRequest) -> Result<Value, PsaError> {
    let ticket: u64 = ticket
        .parse()
        .map_err(|_| PsaError::Rejected("HaloPSA ticket numbers are digits".to_owned()))?;
    let outcome = match note.kind {
        NoteKind::Internal => "Private Note",
        NoteKind::Discussion => "Note",
        NoteKind::Resolution => "Resolution",
    };
    let mut action = json!({
        "ticket_id": ticket,
        "outcome": outcome,
        "note": to_html(&note.text),
        "hiddenfromuser": note.kind != NoteKind::Discussion,
    });
    if let Some(member) = &note.member {
        let agent: u64 = member.id.trim().parse().map_err(|_| {
            PsaError::Rejected(format!(
                "HaloPSA credits notes to an agent id (digits), not `{}`",
                member.id
            ))
        })?;
        action["who_agentid"] = json!(agent);
    }
    Ok(json!([action]))
}

/// Plain text as HTML: escaped, line breaks kept.
fn to_html(text: &str) -> String {
    let mut html = String::with_capacity(text.len() + text.len() / 8);
    for c in text.chars() {
        match c {
            '&' => html.push_str("&amp;"),
            '<' => html.push_str("&lt;"),
            '>' => html.push_str("&gt;"),
            '"' => html.push_str("&quot;"),
            '\'' => html.push_str("&#39;"),
            '\n' => html.push_str("<br>"),
            '\r' => {}
            c => html.push(c),
        }
    }
    html
}

/// HTML as plain text: tags dropped (block ends and `<br>` become line breaks), common entities
/// decoded, blank runs collapsed.
fn html_to_text(html: &str) -> String {
    let mut text = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(start) = rest.find(['<', '&']) {
        text.push_str(&rest[..start]);
        rest = &rest[start..];
        if rest.starts_with('<') {
            let end = rest.find('>').map_or(rest.len(), |e| e + 1);
            let tag = rest[1..end.saturating_sub(1).max(1)]
                .trim()
                .to_ascii_lowercase();
            let name: String = tag
                .trim_start_matches('/')
                .chars()
                .take_while(char::is_ascii_alphanumeric)
                .collect();
            let closing = tag.starts_with('/');
            if name == "br"
                || (closing
                    && matches!(
                        name.as_str(),
                        "p" | "div" | "li" | "tr" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6"
                    ))
            {
                text.push('\n');
            }
            rest = &rest[end..];
        } else {
            let end = rest
                .char_indices()
                .take(10)
                .find(|(_, c)| *c == ';')
                .map(|(i, _)| i);
            let decoded = end.and_then(|end| decode_entity(&rest[1..end]).map(|c| (c, end)));
            match decoded {
                Some((c, end)) => {
                    text.push(c);
                    rest = &rest[end + 1..];
                }
                None => {
                    text.push('&');
                    rest = &rest[1..];
                }
            }
        }
    }
    text.push_str(rest);
    let mut out = String::with_capacity(text.len());
    let mut blank = 0;
    for line in text.lines().map(str::trim_end) {
        if line.trim().is_empty() {
            blank += 1;
            if blank > 1 {
                continue;
            }
        } else {
            blank = 0;
        }
        out.push_str(line);
        out.push('\n');
    }
    out.trim().to_owned()
}

fn decode_entity(entity: &str) -> Option<char> {
    match entity {
        "amp" => Some('&'),
        "lt" => Some('<'),
        "gt" => Some('>'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        "nbsp" => Some(' '),
        _ => {
            let number = entity.strip_prefix('#')?;
            let code = match number.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => number.parse().ok()?,
            };
            char::from_u32(code)
        }
    }
}

/// The error for a failed call, from Halo's body (`{"ClassName", "Message"}`, an OAuth error or
/// plain text).
fn error(answer: &Answer, not_found: Option<String>) -> PsaError {
    let detail = match serde_json::from_slice::<Value>(&answer.body) {
        Ok(Value::Object(body)) => ["Message", "message", "error_description", "error"]
            .iter()
            .find_map(|key| body.get(*key).and_then(Value::as_str))
            .map(|m| m.trim().to_owned())
            .filter(|m| !m.is_empty()),
        Ok(Value::String(message)) => Some(message),
        _ => answer.text(),
    };
    failure(answer, Complaint { detail, not_found }, CREDENTIALS)
}

#[derive(Debug, Deserialize)]
struct Granted {
    access_token: Option<String>,
    expires_in: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct HaloTicket {
    id: Option<Value>,
    summary: Option<String>,
    details: Option<String>,
    client_name: Option<String>,
    user_name: Option<String>,
    team: Option<String>,
    status_id: Option<Value>,
    status_name: Option<String>,
    priority_id: Option<Value>,
    priority_name: Option<String>,
}

impl HaloTicket {
    fn into_ticket(self, asked: &str) -> Ticket {
        let text = |s: Option<String>| s.filter(|s| !s.trim().is_empty());
        Ticket {
            id: self
                .id
                .as_ref()
                .and_then(id_text)
                .unwrap_or_else(|| asked.to_owned()),
            summary: self.summary.unwrap_or_default(),
            company: text(self.client_name),
            contact: text(self.user_name),
            board: text(self.team),
            status: text(self.status_name).or_else(|| self.status_id.as_ref().and_then(id_text)),
            priority: text(self.priority_name)
                .or_else(|| self.priority_id.as_ref().and_then(id_text)),
            description: self
                .details
                .as_deref()
                .map(html_to_text)
                .map(|d| trim_text(&d, MAX_DESCRIPTION_CHARS))
                .filter(|d| !d.is_empty()),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Agents {
    List(Vec<HaloAgent>),
    Wrapped { agents: Vec<HaloAgent> },
}

#[derive(Debug, Deserialize)]
struct HaloAgent {
    id: Value,
    name: Option<String>,
    email: Option<String>,
    isdisabled: Option<bool>,
}

impl HaloAgent {
    fn into_member(self) -> Option<Member> {
        let id = id_text(&self.id)?;
        Some(Member {
            name: self
                .name
                .filter(|n| !n.trim().is_empty())
                .unwrap_or_else(|| format!("agent {id}")),
            email: self.email.filter(|e| !e.trim().is_empty()),
            id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_details_become_text() {
        let html = "<p>Outlook keeps asking for the password.</p><p>Since <b>Monday</b> &amp; \
                    after the move&nbsp;to&#32;M365.<br/>User: J&lt;D&gt;</p>\n\n\n<div></div>";
        assert_eq!(
            html_to_text(html),
            "Outlook keeps asking for the password.\nSince Monday & after the move to M365.\nUser: J<D>"
        );
        assert_eq!(html_to_text("fish & chips"), "fish & chips");
    }

    #[test]
    fn notes_are_escaped_html() {
        assert_eq!(
            to_html("a < b\n\"c\" & d"),
            "a &lt; b<br>&quot;c&quot; &amp; d"
        );
    }

    #[test]
    fn internal_notes_are_hidden_and_credited() {
        let note = NoteRequest {
            ticket: "12345".into(),
            kind: NoteKind::Internal,
            text: "Reset the profile".into(),
            member: Some(Member {
                id: "5".into(),
                name: "Jane Doe".into(),
                email: None,
            }),
        };
        let body = note_body("12345", &note).unwrap();
        assert_eq!(body[0]["ticket_id"], 12345);
        assert_eq!(body[0]["outcome"], "Private Note");
        assert_eq!(body[0]["hiddenfromuser"], true);
        assert_eq!(body[0]["who_agentid"], 5);
        let discussion = NoteRequest {
            kind: NoteKind::Discussion,
            member: None,
            ..note
        };
        let body = note_body("12345", &discussion).unwrap();
        assert_eq!(body[0]["hiddenfromuser"], false);
        assert!(body[0].get("who_agentid").is_none());
    }

    #[test]
    fn tickets_fall_back_to_ids_for_names() {
        let ticket: HaloTicket = serde_json::from_value(json!({
            "id": 12345, "summary": "Printer", "details": "<p>Jammed</p>", "client_name": "Acme",
            "user_name": "Sam", "team": "1st Line", "status_id": 1, "priority_id": 3,
            "status_name": "New"
        }))
        .unwrap();
        let ticket = ticket.into_ticket("12345");
        assert_eq!(ticket.status.as_deref(), Some("New"));
        assert_eq!(ticket.priority.as_deref(), Some("3"));
        assert_eq!(ticket.description.as_deref(), Some("Jammed"));
        assert_eq!(ticket.board.as_deref(), Some("1st Line"));
    }

    #[test]
    fn agents_come_as_a_list_or_wrapped() {
        let list: Agents = serde_json::from_value(json!([{ "id": 5, "name": "Jane" }])).unwrap();
        let wrapped: Agents =
            serde_json::from_value(json!({ "agents": [{ "id": 5, "name": "Jane" }] })).unwrap();
        for agents in [list, wrapped] {
            let (Agents::List(a) | Agents::Wrapped { agents: a }) = agents;
            assert_eq!(a.len(), 1);
        }
    }

    #[tokio::test]
    async fn debug_hides_the_credentials() {
        let settings = json!({ "url": "https://acme.halopsa.com", "tenant": "acme" });
        let credentials = json!({ "client_id": "ID-SECRET", "client_secret": "PW-SECRET" });
        let config = Config::new(Provider::Halo, &settings, &credentials).unwrap();
        let client =
            Halo::new(&config, crate::http_client(Duration::from_secs(5)).unwrap()).unwrap();
        let debug = format!("{client:?}");
        assert!(!debug.contains("SECRET"), "{debug}");
        assert!(debug.contains("https://acme.halopsa.com/auth/token?tenant=acme"));
    }
}
