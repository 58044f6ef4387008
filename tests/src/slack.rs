//! A local Slack: a Web API server that answers like Slack and records every call, able to
//! rate-limit (with and without `Retry-After`), fail with 5xx and stall; and requests signed exactly
//! as Slack signs them, for sending to the product's endpoints.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One Web API call the fake received.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    /// The JSON body (or query parameters of a GET, as an object).
    pub body: Value,
    pub authorization: Option<String>,
    pub at: Instant,
    /// What the fake answered: 200, 429 or 5xx.
    pub status: u16,
    /// The JSON it answered with (`ts` of a posted message…).
    pub response: Value,
}

impl Call {
    /// Whether Slack accepted it.
    pub fn ok(&self) -> bool {
        self.status == 200
    }

    /// Every `text` in the call's blocks and its fallback text, joined.
    pub fn text(&self) -> String {
        let mut out = String::new();
        collect_text(&self.body, &mut out);
        out
    }

    /// The buttons in the call's blocks: (label, action value).
    pub fn buttons(&self) -> Vec<(String, String)> {
        let mut found = Vec::new();
        if let Some(blocks) = self.body["blocks"].as_array() {
            for block in blocks {
                for element in block["elements"].as_array().into_iter().flatten() {
                    if element["type"] == "button" {
                        found.push((
                            element["text"]["text"]
                                .as_str()
                                .unwrap_or_default()
                                .to_owned(),
                            element["value"].as_str().unwrap_or_default().to_owned(),
                        ));
                    }
                }
            }
        }
        found
    }
}

fn collect_text(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                if key == "text"
                    && let Some(text) = value.as_str()
                {
                    out.push_str(text);
                    out.push('\n');
                } else {
                    collect_text(value, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_text(v, out)),
        _ => {}
    }
}

/// What the fake does instead of answering normally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// HTTP 429, with `Retry-After: n` if given.
    RateLimited { retry_after: Option<u64> },
    /// HTTP 503.
    Unavailable,
}

#[derive(Debug, Default)]
struct Inner {
    calls: Vec<Call>,
    /// Per method: (only in this channel, fault), in turn.
    faults: HashMap<String, VecDeque<(Option<String>, Fault)>>,
    stall: Option<Duration>,
    users: HashMap<String, Value>,
    /// OAuth codes that can be exchanged once: code → (team, team name, bot token).
    grants: HashMap<String, (String, String, String)>,
    /// Socket Mode acknowledgements received.
    acks: Vec<Value>,
    next_ts: u64,
}

/// The fake Slack Web API.
#[derive(Debug, Clone)]
pub struct FakeSlack {
    /// The base URL to configure as `RF_SLACK_API_URL`.
    pub api_url: String,
    /// The workspace the bot token belongs to.
    pub team: String,
    /// Where `apps.connections.open` sends Socket Mode clients.
    pub socket_url: String,
    /// A command's `response_url` (calls to it are recorded as method `response_url`).
    pub hooks: String,
    /// What every `response_url` of this fake starts with.
    pub hooks_prefix: String,
    inner: Arc<Mutex<Inner>>,
    envelopes: tokio::sync::broadcast::Sender<String>,
}

impl FakeSlack {
    /// Starts the fake on a free local port, serving workspace `team`.
    pub async fn start(team: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let sockets = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let fake = Self {
            api_url: format!("http://{address}/api"),
            team: team.to_owned(),
            socket_url: format!("ws://{}/link", sockets.local_addr().unwrap()),
            hooks: format!("http://{address}/hooks/commands/{team}/1/secret"),
            hooks_prefix: format!("http://{address}/hooks/"),
            inner: Arc::new(Mutex::new(Inner {
                next_ts: 1_700_000_000_000_100,
                ..Inner::default()
            })),
            envelopes: tokio::sync::broadcast::channel(64).0,
        };
        let socket_fake = fake.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = sockets.accept().await {
                tokio::spawn(socket_fake.clone().socket_session(stream));
            }
        });
        let app = Router::new()
            .route("/api/{method}", axum::routing::any(answer))
            .route("/upload/{file}", axum::routing::post(upload))
            .route("/hooks/{*path}", axum::routing::post(hook))
            .with_state(fake.clone());
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        fake
    }

    /// A workspace member, as `users.info` will describe them.
    pub fn add_user(&self, id: &str, name: &str, is_admin: bool) {
        self.inner.lock().unwrap().users.insert(
            id.to_owned(),
            json!({
                "id": id, "team_id": self.team, "name": name.to_lowercase(), "real_name": name,
                "is_admin": is_admin, "is_owner": false, "is_bot": false, "deleted": false,
                "tz": "Europe/London",
                "profile": { "display_name": name, "real_name": name,
                             "email": format!("{}@acme.test", name.to_lowercase()) }
            }),
        );
    }

    /// An OAuth `code` that `oauth.v2.access` exchanges (once) for `token` in workspace `team`.
    pub fn grant(&self, code: &str, team: &str, team_name: &str, token: &str) {
        self.inner.lock().unwrap().grants.insert(
            code.to_owned(),
            (team.to_owned(), team_name.to_owned(), token.to_owned()),
        );
    }

    /// Sends a Socket Mode envelope to every connected client.
    pub fn send_envelope(&self, envelope: &Value) {
        let _ = self.envelopes.send(envelope.to_string());
    }

    /// Waits until the envelope `id` was acknowledged; `false` after `timeout`.
    pub async fn acknowledged(&self, id: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self
                .inner
                .lock()
                .unwrap()
                .acks
                .iter()
                .any(|a| a["envelope_id"] == id)
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    /// One Socket Mode connection: `hello`, then envelopes out and acknowledgements in.
    async fn socket_session(self, stream: tokio::net::TcpStream) {
        use futures::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::Message;
        let Ok(mut socket) = tokio_tungstenite::accept_async(stream).await else {
            return;
        };
        let mut envelopes = self.envelopes.subscribe();
        let hello = json!({ "type": "hello", "num_connections": 1,
            "debug_info": { "host": "applink-fake", "approximate_connection_time": 18060 },
            "connection_info": { "app_id": "A111" } });
        if socket.send(Message::text(hello.to_string())).await.is_err() {
            return;
        }
        loop {
            tokio::select! {
                envelope = envelopes.recv() => match envelope {
                    Ok(text) => if socket.send(Message::text(text)).await.is_err() { return },
                    Err(_) => return,
                },
                incoming = socket.next() => match incoming {
                    Some(Ok(Message::Text(text))) => {
                        if let Ok(ack) = serde_json::from_str::<Value>(&text) {
                            self.inner.lock().unwrap().acks.push(ack);
                        }
                    }
                    Some(Ok(_)) => {}
                    _ => return,
                },
            }
        }
    }

    /// The next call of `method` fails with `fault` (queued: several calls fail in turn).
    pub fn fail_next(&self, method: &str, fault: Fault) {
        self.queue_fault(method, None, fault);
    }

    /// The next call of `method` about `channel` fails with `fault`.
    pub fn fail_next_in(&self, method: &str, channel: &str, fault: Fault) {
        self.queue_fault(method, Some(channel.to_owned()), fault);
    }

    fn queue_fault(&self, method: &str, channel: Option<String>, fault: Fault) {
        self.inner
            .lock()
            .unwrap()
            .faults
            .entry(method.to_owned())
            .or_default()
            .push_back((channel, fault));
    }

    /// Every call waits `stall` before it is answered (`None`: answer at once).
    pub fn stall(&self, stall: Option<Duration>) {
        self.inner.lock().unwrap().stall = stall;
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<Call> {
        self.inner.lock().unwrap().calls.clone()
    }

    /// The calls of `method` so far.
    pub fn calls_to(&self, method: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.method == method)
            .collect()
    }

    /// Waits until `method` was called successfully `count` times (with `matching`), and returns
    /// those calls; panics with every call recorded after `timeout`.
    pub async fn wait_for(
        &self,
        method: &str,
        count: usize,
        matching: impl Fn(&Call) -> bool,
        timeout: Duration,
    ) -> Vec<Call> {
        let deadline = Instant::now() + timeout;
        loop {
            let found: Vec<Call> = self
                .calls_to(method)
                .into_iter()
                .filter(|c| c.ok() && matching(c))
                .collect();
            if found.len() >= count {
                return found;
            }
            if Instant::now() > deadline {
                let seen: Vec<String> = self
                    .calls()
                    .iter()
                    .map(|c| format!("{} {} {}", c.status, c.method, c.body))
                    .collect();
                panic!(
                    "expected {count} successful {method} calls, saw {}:\n{}",
                    found.len(),
                    seen.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn answer(
    State(fake): State<FakeSlack>,
    Path(method): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut parsed: Value = if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(&body).unwrap_or_else(|_| {
            let fields: Vec<(String, String)> =
                serde_urlencoded::from_bytes(&body).unwrap_or_default();
            Value::Object(
                fields
                    .into_iter()
                    .map(|(k, v)| (k, Value::String(v)))
                    .collect(),
            )
        })
    };
    if let Some(query) = query {
        let fields: Vec<(String, String)> = serde_urlencoded::from_str(&query).unwrap_or_default();
        for (k, v) in fields {
            parsed[k] = Value::String(v);
        }
    }
    let (fault, stall) = {
        let mut inner = fake.inner.lock().unwrap();
        let channel = parsed["channel"].as_str().unwrap_or_default();
        let fault = inner.faults.get_mut(&method).and_then(|queue| {
            let at = queue
                .iter()
                .position(|(only, _)| only.as_deref().is_none_or(|c| c == channel))?;
            queue.remove(at).map(|(_, fault)| fault)
        });
        (fault, inner.stall)
    };
    if let Some(stall) = stall {
        tokio::time::sleep(stall).await;
    }
    let mut answered = Value::Null;
    let (status, response) = match fault {
        Some(Fault::RateLimited { retry_after }) => {
            let mut response = (
                StatusCode::TOO_MANY_REQUESTS,
                [(
                    axum::http::header::CONTENT_TYPE,
                    "application/json; charset=utf-8",
                )],
                json!({ "ok": false, "error": "ratelimited" }).to_string(),
            )
                .into_response();
            if let Some(seconds) = retry_after {
                response
                    .headers_mut()
                    .insert("retry-after", seconds.to_string().parse().unwrap());
            }
            (429, response)
        }
        Some(Fault::Unavailable) => (
            503,
            (StatusCode::SERVICE_UNAVAILABLE, "upstream unavailable").into_response(),
        ),
        None => {
            answered = fake.reply(&method, &parsed);
            (200, axum::Json(answered.clone()).into_response())
        }
    };
    fake.inner.lock().unwrap().calls.push(Call {
        method,
        body: parsed,
        authorization: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        at: Instant::now(),
        status,
        response: answered,
    });
    response
}

impl FakeSlack {
    /// Slack's answer to a successful call.
    fn reply(&self, method: &str, body: &Value) -> Value {
        let mut inner = self.inner.lock().unwrap();
        inner.next_ts += 100;
        let ts = format!(
            "{}.{:06}",
            inner.next_ts / 1_000_000,
            inner.next_ts % 1_000_000
        );
        let channel = body["channel"].as_str().unwrap_or_default().to_owned();
        match method {
            "files.getUploadURLExternal" => {
                let file = format!("F{}", inner.next_ts);
                json!({ "ok": true, "file_id": file,
                        "upload_url": self.api_url.replace("/api", &format!("/upload/{file}")) })
            }
            "files.completeUploadExternal" => json!({
                "ok": true,
                "files": body["files"].as_array().cloned().unwrap_or_default().iter()
                    .map(|f| json!({ "id": f["id"], "title": f["title"] })).collect::<Vec<_>>()
            }),
            "apps.connections.open" => json!({ "ok": true, "url": self.socket_url }),
            "auth.test" => json!({
                "ok": true, "url": "https://acme.slack.com/", "team": "Acme", "user": "resolutionflow",
                "team_id": self.team, "user_id": "UBOT", "bot_id": "BBOT", "is_enterprise_install": false
            }),
            "chat.postMessage" => json!({
                "ok": true, "channel": channel, "ts": ts,
                "message": { "type": "message", "subtype": "bot_message", "text": body["text"],
                             "ts": ts, "bot_id": "BBOT", "blocks": body["blocks"] }
            }),
            "chat.update" => json!({
                "ok": true, "channel": channel, "ts": body["ts"], "text": body["text"],
                "message": { "text": body["text"], "blocks": body["blocks"] }
            }),
            "chat.postEphemeral" => json!({ "ok": true, "message_ts": ts }),
            "conversations.open" => {
                let user = body["users"]
                    .as_str()
                    .map(str::to_owned)
                    .or_else(|| body["users"][0].as_str().map(str::to_owned));
                json!({ "ok": true, "no_op": false, "already_open": false,
                        "channel": { "id": format!("D{}", user.unwrap_or_default()) } })
            }
            "conversations.invite" => json!({
                "ok": true, "channel": { "id": channel, "name": "helpdesk", "is_channel": true }
            }),
            "views.open" => json!({
                "ok": true,
                "view": { "id": "V0001", "team_id": self.team, "type": "modal",
                          "callback_id": body["view"]["callback_id"], "hash": ts }
            }),
            "oauth.v2.access" => match body["code"].as_str().and_then(|c| inner.grants.remove(c)) {
                Some((team, name, token)) => json!({
                    "ok": true, "access_token": token, "token_type": "bot",
                    "scope": "commands,chat:write", "bot_user_id": "UBOT", "app_id": "A111",
                    "team": { "id": team, "name": name }, "enterprise": null,
                    "is_enterprise_install": false, "authed_user": { "id": "UINSTALLER" }
                }),
                None => json!({ "ok": false, "error": "invalid_code" }),
            },
            "users.info" => {
                let user = body["user"].as_str().unwrap_or_default();
                match inner.users.get(user) {
                    Some(record) => json!({ "ok": true, "user": record }),
                    None => json!({ "ok": false, "error": "user_not_found" }),
                }
            }
            _ => json!({ "ok": false, "error": "unknown_method" }),
        }
    }
}

/// A message sent to a command's `response_url`.
async fn hook(State(fake): State<FakeSlack>, body: Bytes) -> Response {
    let fault = fake
        .inner
        .lock()
        .unwrap()
        .faults
        .get_mut("response_url")
        .and_then(VecDeque::pop_front)
        .map(|(_, fault)| fault);
    let status = match fault {
        Some(Fault::RateLimited { .. }) => StatusCode::TOO_MANY_REQUESTS,
        Some(Fault::Unavailable) => StatusCode::SERVICE_UNAVAILABLE,
        None => StatusCode::OK,
    };
    fake.inner.lock().unwrap().calls.push(Call {
        method: "response_url".to_owned(),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        authorization: None,
        at: Instant::now(),
        status: status.as_u16(),
        response: Value::Null,
    });
    (status, "ok").into_response()
}

/// A file's bytes sent to the upload URL `files.getUploadURLExternal` handed out.
async fn upload(State(fake): State<FakeSlack>, Path(file): Path<String>, body: Bytes) -> Response {
    fake.inner.lock().unwrap().calls.push(Call {
        method: "upload".to_owned(),
        body: json!({ "file_id": file, "content": String::from_utf8_lossy(&body) }),
        authorization: None,
        at: Instant::now(),
        status: 200,
        response: Value::Null,
    });
    (StatusCode::OK, format!("OK - {}", body.len())).into_response()
}

/// Slack's `v0` signature of `body` at `timestamp`.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("v0:{timestamp}:").as_bytes());
    mac.update(body);
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

/// Seconds since the epoch, as Slack stamps requests.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Sends requests to the product as Slack does.
#[derive(Debug, Clone)]
pub struct SlackSender {
    pub base_url: String,
    pub secret: String,
    pub http: reqwest::Client,
}

impl SlackSender {
    pub fn new(base_url: &str, secret: &str) -> Self {
        Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            secret: secret.to_owned(),
            http: reqwest::Client::new(),
        }
    }

    /// Posts `body` to `path`, signed at `timestamp` with `secret`, with extra headers.
    pub async fn send_as(
        &self,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
        secret: &str,
        timestamp: i64,
        headers: &[(&str, String)],
    ) -> reqwest::Response {
        self.try_send_as(path, content_type, body, secret, timestamp, headers)
            .await
            .unwrap()
    }

    /// [`Self::send_as`], returning a transport error instead of panicking on it.
    pub async fn try_send_as(
        &self,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
        secret: &str,
        timestamp: i64,
        headers: &[(&str, String)],
    ) -> reqwest::Result<reqwest::Response> {
        let mut request = self
            .http
            .post(format!("{}{path}", self.base_url))
            .header("content-type", content_type)
            .header("x-slack-request-timestamp", timestamp.to_string())
            .header("x-slack-signature", sign(secret, timestamp, &body));
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        request.body(body).send().await
    }

    /// An Events API request, signed now.
    pub async fn event(&self, body: &Value) -> reqwest::Response {
        self.send_as(
            "/slack/events",
            "application/json",
            serde_json::to_vec(body).unwrap(),
            &self.secret,
            unix_now(),
            &[],
        )
        .await
    }

    /// A slash command, signed now.
    pub async fn command(&self, fields: &[(&str, &str)]) -> reqwest::Response {
        self.send_as(
            "/slack/commands",
            "application/x-www-form-urlencoded",
            serde_urlencoded::to_string(fields).unwrap().into_bytes(),
            &self.secret,
            unix_now(),
            &[],
        )
        .await
    }

    /// An interaction payload, signed now.
    pub async fn interaction(&self, payload: &Value) -> reqwest::Response {
        let body = serde_urlencoded::to_string([("payload", payload.to_string())]).unwrap();
        self.send_as(
            "/slack/interactions",
            "application/x-www-form-urlencoded",
            body.into_bytes(),
            &self.secret,
            unix_now(),
            &[],
        )
        .await
    }
}
