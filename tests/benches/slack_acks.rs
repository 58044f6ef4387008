//! Slack acknowledgement benchmark (not a timed test): 200 signed `block_actions` requests sent at
//! once to `/slack/interactions`, while the job worker handles them against a fake Slack Web API.
//! Measured per request: time to Slack's 200. Four conditions, five rounds each:
//! - baseline: 200 concurrent `GET /healthz` (the HTTP stack alone);
//! - Slack answering normally;
//! - Slack stalling every call for 30 s (the ack must not notice);
//! - 200 messages typed in a session thread (each asks the copilot) while the model stalls every
//!   call for 30 s (the ack must not notice that either).
//!
//! `cargo bench -p rf-tests --bench slack_acks` (PostgreSQL as well when `RF_TEST_DATABASE_URL`
//! names a server). Prints medians and percentiles.

use rf_core::time::SystemClock;
use rf_tests::llm::{FakeAnthropic, Reply};
use rf_tests::slack::{Call, FakeSlack, SlackSender, unix_now};
use rf_tests::{TestApp, TestDb};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

const SECRET: &str = "bench-signing-secret";
const CLICKS: usize = 200;
const ROUNDS: usize = 5;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[(((sorted.len() as f64) * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

struct Summary {
    p50: Duration,
    p99: Duration,
    max: Duration,
    wall: Duration,
}

fn summarise(mut latencies: Vec<Duration>, wall: Duration) -> Summary {
    latencies.sort();
    Summary {
        p50: percentile(&latencies, 0.50),
        p99: percentile(&latencies, 0.99),
        max: *latencies.last().unwrap(),
        wall,
    }
}

fn print(label: &str, rounds: &[Summary]) {
    let median = |f: fn(&Summary) -> Duration| {
        let mut values: Vec<Duration> = rounds.iter().map(f).collect();
        values.sort();
        values[values.len() / 2]
    };
    let wall = median(|s| s.wall);
    println!(
        "  {label:<28} p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms  {:>6.0} acks/s (medians of {ROUNDS} rounds)",
        ms(median(|s| s.p50)),
        ms(median(|s| s.p99)),
        ms(median(|s| s.max)),
        CLICKS as f64 / wall.as_secs_f64()
    );
}

/// A click on the first button of `message`, by `user`, with its own trigger id.
fn click(message: &Call, user: &str, trigger: &str) -> serde_json::Value {
    let button = message.body["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|b| b["elements"].as_array().cloned().unwrap_or_default())
        .find(|e| e["type"] == "button")
        .expect("a button");
    json!({
        "type": "block_actions",
        "user": { "id": user, "team_id": "T111" },
        "team": { "id": "T111" },
        "trigger_id": trigger,
        "channel": { "id": "C111" },
        "container": { "type": "message", "channel_id": "C111",
                       "message_ts": message.response["ts"], "thread_ts": message.body["thread_ts"] },
        "message": { "ts": message.response["ts"], "thread_ts": message.body["thread_ts"] },
        "actions": [{ "action_id": button["action_id"], "type": "button", "value": button["value"],
                      "action_ts": format!("{}.000001", unix_now()) }]
    })
}

async fn burst(requests: Vec<reqwest::RequestBuilder>) -> (Vec<Duration>, Duration) {
    let barrier = Arc::new(tokio::sync::Barrier::new(requests.len()));
    let started = Instant::now();
    let tasks: Vec<_> = requests
        .into_iter()
        .map(|request| {
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                let at = Instant::now();
                let response = request.send().await.expect("answered");
                assert_eq!(response.status(), 200);
                at.elapsed()
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.push(task.await.unwrap());
    }
    (latencies, started.elapsed())
}

async fn bench(db: TestDb) {
    let fake = FakeSlack::start("T111").await;
    for i in 0..CLICKS {
        fake.add_user(&format!("U{i:04}"), &format!("Tech {i}"), false);
    }
    let api_url = fake.api_url.clone();
    let model = FakeAnthropic::start("sk-ant-bench").await;
    model.set_default(Reply::slow(
        Duration::from_secs(30),
        Reply::Text("{\"message\": \"late\", \"confidence\": 50}".to_owned()),
    ));
    let model_url = model.url();
    let app = TestApp::start_with(&db, Arc::new(SystemClock), move |config| {
        config.ai.provider = "anthropic".to_owned();
        config.ai.base_url = model_url;
        config.ai.api_key = Some("sk-ant-bench".into());
        config.jobs.enabled = true;
        config.slack.signing_secret = Some(SECRET.into());
        config.slack.bot_token = Some("xoxb-bench".into());
        config.slack.api_url = api_url;
        config.slack.rate_control = false;
        config.slack.timeout_seconds = 2;
        config.log.level = "error".into();
    })
    .await;
    let send = SlackSender::new(&app.base_url, SECRET);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(CLICKS)
        .build()
        .unwrap();

    let mut baseline = Vec::new();
    let mut normal = Vec::new();
    let mut stalled = Vec::new();
    let mut thinking = Vec::new();
    for round in 0..ROUNDS {
        // A fresh session and its first step, to click on.
        fake.stall(None);
        let before = fake.calls_to("chat.postMessage").len();
        send.command(&[
            ("team_id", "T111"),
            ("channel_id", "C111"),
            ("user_id", "U0000"),
            ("command", "/rf"),
            ("text", "printer shows offline"),
            ("trigger_id", &format!("cmd-{round}")),
        ])
        .await;
        let step = fake
            .wait_for(
                "chat.postMessage",
                before + 2,
                |_| true,
                Duration::from_secs(30),
            )
            .await
            .pop()
            .unwrap();

        let requests = (0..CLICKS)
            .map(|_| http.get(format!("{}/healthz", app.base_url)))
            .collect();
        let (latencies, wall) = burst(requests).await;
        baseline.push(summarise(latencies, wall));

        for (stall, results) in [
            (None, &mut normal),
            (Some(Duration::from_secs(30)), &mut stalled),
        ] {
            fake.stall(stall);
            let requests = (0..CLICKS)
                .map(|i| {
                    let payload = click(
                        &step,
                        &format!("U{i:04}"),
                        &format!("r{round}-{stall:?}-{i}"),
                    );
                    let body =
                        serde_urlencoded::to_string([("payload", payload.to_string())]).unwrap();
                    let ts = unix_now();
                    http.post(format!("{}/slack/interactions", app.base_url))
                        .header("content-type", "application/x-www-form-urlencoded")
                        .header("x-slack-request-timestamp", ts.to_string())
                        .header(
                            "x-slack-signature",
                            rf_tests::slack::sign(SECRET, ts, body.as_bytes()),
                        )
                        .body(body)
                })
                .collect();
            let (latencies, wall) = burst(requests).await;
            results.push(summarise(latencies, wall));
        }

        // Messages in the session's thread: each is recorded and asks the copilot, which stalls.
        fake.stall(None);
        let thread = step.body["thread_ts"].as_str().unwrap().to_owned();
        let requests = (0..CLICKS)
            .map(|i| {
                let ts = format!("{}.{:06}", unix_now(), round * CLICKS + i);
                let body = json!({
                    "type": "event_callback", "team_id": "T111", "api_app_id": "A111",
                    "event_id": format!("Ev{round}x{i}"), "event_time": unix_now(),
                    "event": { "type": "message", "user": format!("U{i:04}"), "channel": "C111",
                               "text": format!("tried step {i}, still offline"), "ts": ts,
                               "thread_ts": thread, "channel_type": "channel" }
                })
                .to_string();
                let at = unix_now();
                http.post(format!("{}/slack/events", app.base_url))
                    .header("content-type", "application/json")
                    .header("x-slack-request-timestamp", at.to_string())
                    .header(
                        "x-slack-signature",
                        rf_tests::slack::sign(SECRET, at, body.as_bytes()),
                    )
                    .body(body)
            })
            .collect();
        let (latencies, wall) = burst(requests).await;
        thinking.push(summarise(latencies, wall));
    }
    assert!(
        !model.requests().is_empty(),
        "the messages asked the (stalled) model"
    );
    // Let the worker finish (stalled calls time out after 2 s and are retried later).
    fake.stall(None);
    println!(
        "slack acks on {} ({CLICKS} concurrent requests):",
        db.backend()
    );
    print("GET /healthz (baseline)", &baseline);
    print("block_actions, Slack ok", &normal);
    print("block_actions, Slack stalled", &stalled);
    print("messages, model stalled", &thinking);
    let p50 = |rounds: &[Summary]| {
        let mut v: Vec<Duration> = rounds.iter().map(|s| s.p50).collect();
        v.sort();
        ms(v[v.len() / 2])
    };
    println!(
        "  ratios: ack/baseline p50 {:.2}x, Slack stalled/ok p50 {:.2}x, messages with the model stalled/clicks p50 {:.2}x",
        p50(&normal) / p50(&baseline),
        p50(&stalled) / p50(&normal),
        p50(&thinking) / p50(&normal)
    );
}

fn main() {
    rf_tests::bench_on_backends(bench);
}
