//! The companion's live queue over real HTTP: Server-Sent Events, tenant isolation, backfill, and
//! Claim through the API.

use futures::StreamExt;
use reqwest::header::{COOKIE, SET_COOKIE};
use rf_core::domain::{Actor, InstallationRef, Platform, Role};
use rf_core::links::LinkScope;
use rf_core::time::SystemClock;
use rf_tests::{TestApp, TestDb};
use std::sync::Arc;
use std::time::Duration;

/// How long a test waits for an event that must come.
const LIVE: Duration = Duration::from_secs(15);

#[derive(Debug, Clone, PartialEq)]
struct SseEvent {
    id: Option<String>,
    event: String,
    data: String,
}

/// Reads events off a `text/event-stream` response (comments are skipped).
struct SseReader {
    stream: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: String,
}

impl SseReader {
    fn new(response: reqwest::Response) -> Self {
        Self {
            stream: response.bytes_stream().boxed(),
            buffer: String::new(),
        }
    }

    async fn next(&mut self, timeout: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = SseEvent {
                    id: None,
                    event: "message".into(),
                    data: String::new(),
                };
                let mut has_field = false;
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        event.event = v.trim().into();
                        has_field = true;
                    } else if let Some(v) = line.strip_prefix("id:") {
                        event.id = Some(v.trim().into());
                        has_field = true;
                    } else if let Some(v) = line.strip_prefix("data:") {
                        event.data.push_str(v.trim());
                        has_field = true;
                    }
                }
                if has_field {
                    return Some(event);
                }
            }
            let chunk = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .ok()??
                .ok()?;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn person(app: &TestApp, installation: &InstallationRef, name: &str, role: Role) -> Actor {
    app.member(installation, name, role, None).await
}

/// Signs `actor` in to the companion with an account-wide link; returns the cookie header.
async fn sign_in(app: &TestApp, actor: &Actor) -> String {
    let url = app
        .app
        .engine
        .share_link(
            actor.account_id,
            actor.user_id,
            actor.role,
            LinkScope::Account,
        )
        .await
        .unwrap()
        .unwrap();
    let response = client().get(url).send().await.unwrap();
    assert_eq!(response.status(), 303);
    response.headers()[SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

async fn subscribe(app: &TestApp, cookie: &str, last_event_id: Option<&str>) -> SseReader {
    let mut request = client()
        .get(format!("{}/api/escalations/stream", app.base_url))
        .header(COOKIE, cookie);
    if let Some(id) = last_event_id {
        request = request.header("Last-Event-ID", id);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    SseReader::new(response)
}

async fn escalate(app: &TestApp, jane: &Actor) -> rf_core::ids::HandoffId {
    let lines = ["escalate urgent whole office is down"];
    app.session(jane, "vpn will not connect", &lines)
        .await
        .1
        .expect("an escalation")
}

#[tokio::test]
async fn subscribers_see_their_accounts_escalations_live_and_nothing_else() {
    let db = TestDb::new().await;
    let app = TestApp::start(&db, Arc::new(SystemClock)).await;
    let console = resolutionflow::app::console_installation();
    let other = InstallationRef {
        platform: Platform::Slack,
        external_id: "T-OTHER".into(),
    };
    let jane = person(&app, &console, "Jane", Role::Engineer).await;
    let sam = person(&app, &console, "Sam", Role::Engineer).await;
    let bob = person(&app, &other, "Bob", Role::Owner).await;
    let (jane_cookie, sam_cookie, bob_cookie) = (
        sign_in(&app, &jane).await,
        sign_in(&app, &sam).await,
        sign_in(&app, &bob).await,
    );

    let mut ours = subscribe(&app, &jane_cookie, None).await;
    let mut theirs = subscribe(&app, &bob_cookie, None).await;
    let ready = ours.next(LIVE).await.expect("a ready event");
    assert_eq!(ready.event, "ready");
    assert_eq!(theirs.next(LIVE).await.unwrap().event, "ready");

    // Deadlines here only bound a hang; the feed's latency is measured by the escalation bench.
    let handoff = escalate(&app, &jane).await;
    let created = ours.next(LIVE).await.expect("handoff_created");
    assert_eq!(created.event, "handoff_created");
    assert!(
        created.data.contains("vpn will not connect")
            && created.data.contains("\"priority\":\"urgent\""),
        "{created:?}"
    );
    assert_eq!(
        theirs.next(Duration::from_millis(1500)).await,
        None,
        "another account hears nothing"
    );

    // Claim from the queue page's API: same atomic path, and the stream follows.
    let claimed = client()
        .post(format!("{}/api/handoffs/{handoff}/claim", app.base_url))
        .header(COOKIE, &sam_cookie)
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = claimed.json().await.unwrap();
    assert_eq!(body["outcome"], "won", "{body}");
    let again = client()
        .post(format!("{}/api/handoffs/{handoff}/claim", app.base_url))
        .header(COOKIE, &jane_cookie)
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = again.json().await.unwrap();
    assert_eq!(body["outcome"], "already_claimed");
    assert_eq!(body["message"], "Already claimed by Sam 0 s ago.");
    let event = ours.next(LIVE).await.expect("handoff_claimed");
    assert_eq!(event.event, "handoff_claimed");
    assert!(event.data.contains("\"claimed_by\":\"Sam\""), "{event:?}");

    // Reconnecting with Last-Event-ID replays what was missed, in order.
    let mut again = subscribe(&app, &jane_cookie, ready_last(&ready).as_deref()).await;
    assert_eq!(again.next(LIVE).await.unwrap().event, "ready");
    let replay: Vec<String> = vec![
        again.next(LIVE).await.unwrap().event,
        again.next(LIVE).await.unwrap().event,
    ];
    assert_eq!(replay, ["handoff_created", "handoff_claimed"]);

    // Another account cannot claim it, nor read it.
    let foreign = client()
        .post(format!("{}/api/handoffs/{handoff}/claim", app.base_url))
        .header(COOKIE, &bob_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 404);
    let page = client()
        .get(format!("{}/handoffs/{handoff}", app.base_url))
        .header(COOKIE, &bob_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 404);

    // Prometheus sees what happened.
    let metrics = client()
        .get(format!("{}/metrics", app.base_url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("rf_escalations_total 1\n"), "{metrics}");
    assert!(
        metrics.contains("rf_claims_total{outcome=\"won\"} 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("rf_claims_total{outcome=\"lost\"} 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("# TYPE rf_jobs_pending gauge"),
        "{metrics}"
    );
}

fn ready_last(ready: &SseEvent) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(&ready.data).ok()?;
    Some(value["last_event_id"].to_string())
}

#[tokio::test]
async fn a_cross_site_form_is_refused() {
    let db = TestDb::new().await;
    let app = TestApp::start(&db, Arc::new(SystemClock)).await;
    let console = resolutionflow::app::console_installation();
    let jane = person(&app, &console, "Jane", Role::Engineer).await;
    let sam = person(&app, &console, "Sam", Role::Engineer).await;
    let handoff = escalate(&app, &jane).await;
    let cookie = sign_in(&app, &sam).await;
    let response = client()
        .post(format!("{}/api/handoffs/{handoff}/claim", app.base_url))
        .header(COOKIE, &cookie)
        .header("Origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let handoff = app
        .app
        .engine
        .store()
        .get_handoff(jane.account_id, handoff)
        .await
        .unwrap();
    assert_eq!(handoff.claimed_by, None);
}

#[tokio::test]
async fn the_queue_and_metrics_pages_render_for_the_right_roles() {
    let db = TestDb::new().await;
    let app = TestApp::start(&db, Arc::new(SystemClock)).await;
    let console = resolutionflow::app::console_installation();
    let jane = person(&app, &console, "Jane", Role::Engineer).await;
    let olga = person(&app, &console, "Olga", Role::Owner).await;
    escalate(&app, &jane).await;
    let jane_cookie = sign_in(&app, &jane).await;
    let olga_cookie = sign_in(&app, &olga).await;
    let queue = client()
        .get(format!("{}/queue", app.base_url))
        .header(COOKIE, &jane_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(queue.status(), 200);
    let html = queue.text().await.unwrap();
    assert!(
        html.contains("aria-live=\"polite\"")
            && html.contains("vpn will not connect")
            && html.contains("1 waiting"),
        "{html}"
    );
    let forbidden = client()
        .get(format!("{}/team/metrics", app.base_url))
        .header(COOKIE, &jane_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(
        forbidden.status(),
        403,
        "engineers do not see the owner metrics"
    );
    let metrics = client()
        .get(format!("{}/team/metrics?period=7d", app.base_url))
        .header(COOKIE, &olga_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
    let html = metrics.text().await.unwrap();
    assert!(
        html.contains("In-product") && html.contains("Manual baseline"),
        "the two metrics, labelled"
    );
    let saved = client()
        .post(format!("{}/team/metrics/baseline", app.base_url))
        .header(COOKIE, &olga_cookie)
        .form(&[("minutes", "12.5")])
        .send()
        .await
        .unwrap();
    assert_eq!(saved.status(), 303);
    let json: serde_json::Value = client()
        .get(format!("{}/api/metrics?period=7d", app.base_url))
        .header(COOKIE, &olga_cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(json["escalations"], 1);
    assert_eq!(json["manual_baseline_minutes"], 12.5);
    let csv = client()
        .get(format!("{}/api/metrics.csv?period=90d", app.base_url))
        .header(COOKIE, &olga_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    assert!(csv.text().await.unwrap().contains("escalations,1\n"));
}
