//! Slack end to end: the real binary, requests signed exactly as Slack signs them, and a local fake
//! of the Slack Web API that records every call.

use rf_tests::TestDb;
use rf_tests::process::{Server, serve};
use rf_tests::slack::{Call, FakeSlack, Fault, SlackSender, unix_now};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
const TEAM: &str = "T111";
const HELPDESK: &str = "C111";
const ESCALATIONS: &str = "CESC";
const WAIT: Duration = Duration::from_secs(20);

struct Slack {
    fake: FakeSlack,
    send: SlackSender,
    server: Server,
    _db: TestDb,
    _dir: tempfile::TempDir,
}

async fn start() -> Slack {
    start_with(&[]).await
}

/// The binary against the fake Slack, with `extra` settings.
async fn start_with(extra: &[(&str, &str)]) -> Slack {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeSlack::start(TEAM).await;
    fake.add_user("UADMIN", "Dana", true);
    fake.add_user("UJANE", "Jane", false);
    fake.add_user("USAM", "Sam", false);
    fake.add_user("UALEX", "Alex", false);
    let mut env = vec![
        ("RF_SLACK_SIGNING_SECRET", SECRET),
        ("RF_SLACK_BOT_TOKEN", "xoxb-test-token"),
        ("RF_SLACK_API_URL", &fake.api_url),
        ("RF_SLACK__RATE_CONTROL", "false"),
        ("RF_SLACK__TIMEOUT_SECONDS", "2"),
        ("RF_SLACK__RESPONSE_URL_PREFIX", &fake.hooks_prefix),
    ];
    env.extend_from_slice(extra);
    let server = serve(&db, dir.path(), &env).await;
    let send = SlackSender::new(&server.url, SECRET);
    Slack {
        fake,
        send,
        server,
        _db: db,
        _dir: dir,
    }
}

fn command_fields<'a>(
    hooks: &'a str,
    user: &'a str,
    channel: &'a str,
    text: &'a str,
    trigger: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("token", "verification_token"),
        ("team_id", TEAM),
        ("team_domain", "acme"),
        ("channel_id", channel),
        ("channel_name", "helpdesk"),
        ("user_id", user),
        ("user_name", user),
        ("command", "/rf"),
        ("text", text),
        ("api_app_id", "A111"),
        ("response_url", hooks),
        ("trigger_id", trigger),
    ]
}

/// A click on `value` in the message `message` (a posted call), as Slack sends it.
fn click(user: &str, message: &Call, ts: &str, value: &str, trigger: &str) -> Value {
    let channel = message.body["channel"].as_str().unwrap();
    let mut container = json!({
        "type": "message", "message_ts": ts, "channel_id": channel, "is_ephemeral": false
    });
    let mut posted = json!({ "type": "message", "ts": ts, "text": message.body["text"], "blocks": message.body["blocks"] });
    if let Some(thread) = message.body["thread_ts"].as_str() {
        container["thread_ts"] = json!(thread);
        posted["thread_ts"] = json!(thread);
    }
    let action_id = message.body["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|b| b["elements"].as_array().cloned().unwrap_or_default())
        .find(|e| e["value"] == value)
        .map(|e| e["action_id"].clone())
        .expect("the button is in the message");
    json!({
        "type": "block_actions",
        "user": { "id": user, "username": user, "name": user, "team_id": TEAM },
        "api_app_id": "A111",
        "token": "verification_token",
        "container": container,
        "trigger_id": trigger,
        "team": { "id": TEAM, "domain": "acme" },
        "channel": { "id": channel, "name": "helpdesk" },
        "message": posted,
        "state": { "values": {} },
        "response_url": "https://hooks.slack.com/actions/T111/1/x",
        "actions": [{
            "action_id": action_id, "block_id": "b1", "type": "button", "value": value,
            "text": { "type": "plain_text", "text": "button" }, "action_ts": format!("{}.000100", unix_now())
        }]
    })
}

/// The `ts` Slack gave a posted message.
fn ts_of(call: &Call) -> String {
    call.response["ts"].as_str().unwrap().to_owned()
}

fn button(call: &Call, action: &str) -> Option<String> {
    call.buttons()
        .into_iter()
        .map(|(_, value)| value)
        .find(|value| value.contains(&format!("\"a\":\"{action}\"")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_full_journey_over_signed_http() {
    let slack = start().await;
    let (fake, send) = (&slack.fake, &slack.send);

    // An admin points the team's escalations at #escalations.
    let r = send
        .command(&command_fields(
            &fake.hooks,
            "UADMIN",
            ESCALATIONS,
            "escalations here",
            "t-1",
        ))
        .await;
    assert_eq!(r.status(), 200);
    // Commands are answered through their response_url.
    let said = fake.wait_for("response_url", 1, |_| true, WAIT).await;
    assert!(
        said[0].text().contains("Escalation cards") && said[0].text().contains("<#CESC>"),
        "{}",
        said[0].text()
    );

    // Jane starts a session: a root message in the channel, the first step in its thread.
    let r = send
        .command(&command_fields(
            &fake.hooks,
            "UJANE",
            HELPDESK,
            "Outlook keeps asking for my password",
            "t-2",
        ))
        .await;
    assert_eq!(r.status(), 200);
    let root = fake
        .wait_for(
            "chat.postMessage",
            1,
            |c| c.body["thread_ts"].is_null() && c.body["channel"] == HELPDESK,
            WAIT,
        )
        .await
        .remove(0);
    assert!(
        root.text().contains("Outlook keeps asking for my password"),
        "{}",
        root.text()
    );
    assert_eq!(
        root.authorization.as_deref(),
        Some("Bearer xoxb-test-token")
    );
    let first = fake
        .wait_for(
            "chat.postMessage",
            1,
            |c| !c.body["thread_ts"].is_null(),
            WAIT,
        )
        .await
        .remove(0);
    let thread = first.body["thread_ts"].as_str().unwrap().to_owned();
    assert!(first.text().contains("Troubleshooting"), "{}", first.text());

    // Clicking buttons walks the flow: pick the suggested flow, then answer its first question.
    let pick = button(&first, "pick_flow").expect("a flow is suggested");
    let ts = ts_of(&first);
    // A double click: two deliveries of the same button, each with its own trigger id.
    let (once, twice) = (
        click("UJANE", &first, &ts, &pick, "t-3"),
        click("UJANE", &first, &ts, &pick, "t-3b"),
    );
    let (a, b) = tokio::join!(send.interaction(&once), send.interaction(&twice));
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (200, 200));
    let step = fake
        .wait_for(
            "chat.postMessage",
            2,
            |c| c.body["thread_ts"] == thread.as_str(),
            WAIT,
        )
        .await
        .remove(1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        fake.calls_to("chat.postMessage")
            .iter()
            .filter(|c| c.body["thread_ts"] == thread.as_str())
            .count(),
        2,
        "the double click picked the flow once: {:#?}",
        fake.calls_to("chat.postMessage")
            .iter()
            .map(|c| c.text())
            .collect::<Vec<_>>()
    );
    let answer = step
        .buttons()
        .into_iter()
        .map(|(_, v)| v)
        .find(|v| v.contains("\"a\":\"answer\"") || v.contains("\"a\":\"checklist\""))
        .expect("the flow's first step has answers");
    let ts = ts_of(&step);
    send.interaction(&click("UJANE", &step, &ts, &answer, "t-4"))
        .await;
    let next = fake
        .wait_for(
            "chat.postMessage",
            3,
            |c| c.body["thread_ts"] == thread.as_str(),
            WAIT,
        )
        .await
        .remove(2);

    // The suggested fix did not help: the bot offers to escalate.
    let broken = next
        .buttons()
        .into_iter()
        .map(|(_, v)| v)
        .find(|v| v.contains("\"fixed\":false"))
        .unwrap_or_else(|| panic!("a Still broken button in {}", next.body));
    send.interaction(&click("UJANE", &next, &ts_of(&next), &broken, "t-4b"))
        .await;
    let next = fake
        .wait_for(
            "chat.postMessage",
            4,
            |c| c.body["thread_ts"] == thread.as_str(),
            WAIT,
        )
        .await
        .remove(3);

    // Escalate: the modal opens with the click's trigger id; submitting it posts the card.
    let escalate =
        button(&next, "escalate").unwrap_or_else(|| panic!("an Escalate button in {}", next.body));
    let ts = ts_of(&next);
    send.interaction(&click("UJANE", &next, &ts, &escalate, "t-5"))
        .await;
    let view = fake
        .wait_for("views.open", 1, |_| true, WAIT)
        .await
        .remove(0);
    assert_eq!(view.body["trigger_id"], "t-5");
    assert_eq!(view.body["view"]["callback_id"], "rf_form");
    let submission = json!({
        "type": "view_submission",
        "team": { "id": TEAM, "domain": "acme" },
        "user": { "id": "UJANE", "username": "jane", "name": "jane", "team_id": TEAM },
        "api_app_id": "A111",
        "trigger_id": "t-6",
        "view": {
            "id": "V0001", "team_id": TEAM, "type": "modal",
            "callback_id": "rf_form",
            "private_metadata": view.body["view"]["private_metadata"],
            "state": { "values": {
                "reason": { "reason": { "type": "plain_text_input", "value": "Prompts continue after a new profile" } },
                "priority": { "priority": { "type": "static_select",
                    "selected_option": { "text": { "type": "plain_text", "text": "High" }, "value": "high" } } }
            } },
            "hash": "1", "title": { "type": "plain_text", "text": "Escalate" }
        },
        "response_urls": []
    });
    assert_eq!(send.interaction(&submission).await.status(), 200);
    let card = fake
        .wait_for(
            "chat.postMessage",
            1,
            |c| c.body["channel"] == ESCALATIONS,
            WAIT,
        )
        .await
        .remove(0);
    assert!(
        card.text().contains("Prompts continue after a new profile"),
        "{}",
        card.text()
    );
    let claim = button(&card, "claim").expect("a Claim button");

    // Two seniors click Claim at the same moment: one wins.
    let card_ts = ts_of(&card);
    let (sam, alex) = (
        click("USAM", &card, &card_ts, &claim, "t-7"),
        click("UALEX", &card, &card_ts, &claim, "t-8"),
    );
    let (a, b) = tokio::join!(send.interaction(&sam), send.interaction(&alex));
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (200, 200));
    let updated = fake
        .wait_for("chat.update", 1, |c| c.text().contains("Claimed by"), WAIT)
        .await;
    let winner = if updated[0].text().contains("Sam") {
        "USAM"
    } else {
        "UALEX"
    };
    let loser = if winner == "USAM" { "UALEX" } else { "USAM" };
    let lost = fake
        .wait_for(
            "chat.postEphemeral",
            1,
            |c| c.body["user"] == loser && c.text().contains("Already claimed by"),
            WAIT,
        )
        .await;
    assert_eq!(lost.len(), 1);
    let invited = fake
        .wait_for("conversations.invite", 1, |_| true, WAIT)
        .await;
    assert_eq!(invited[0].body["channel"], HELPDESK);
    assert!(
        invited[0].body["users"].to_string().contains(winner),
        "{}",
        invited[0].body
    );
    let read_in = fake
        .wait_for("chat.postEphemeral", 1, |c| c.body["user"] == winner, WAIT)
        .await;
    assert!(
        read_in[0].text().contains("Prompts continue"),
        "{}",
        read_in[0].text()
    );
    // Only one claim won: the card says one name, and nobody else was told they won.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let updates = fake.calls_to("chat.update");
    assert!(
        updates.iter().all(|c| !c.text().contains("Claimed by")
            || c.text()
                .contains(if winner == "USAM" { "Sam" } else { "Alex" })),
        "every card update names the one winner"
    );
    assert!(
        fake.calls_to("chat.postEphemeral")
            .iter()
            .filter(|c| c.body["user"] == loser)
            .all(|c| c.text().contains("Already claimed")),
        "the loser was never read in"
    );

    // `/rf metrics` answers privately with a link that opens the companion.
    send.command(&command_fields(
        &fake.hooks,
        "UADMIN",
        HELPDESK,
        "metrics",
        "t-9",
    ))
    .await;
    let metrics = fake
        .wait_for("response_url", 1, |c| c.text().contains("/auth/link"), WAIT)
        .await
        .remove(0);
    let text = metrics.text();
    let start = text.find(&slack.server.url).expect("a link to this server");
    let link: String = text[start..]
        .chars()
        .take_while(|c| !c.is_whitespace() && !matches!(c, '>' | '|' | ')'))
        .collect();
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let opened = browser.get(&link).send().await.unwrap();
    assert_eq!(opened.status(), 303, "{link}");
    assert!(opened.headers().get("set-cookie").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_stale_requests_get_401_and_do_nothing() {
    let slack = start().await;
    let body = serde_json::to_vec(&json!({
        "type": "event_callback", "team_id": TEAM, "event_id": "EvForged",
        "event": { "type": "app_mention", "user": "UJANE", "text": "<@UBOT> printer offline",
                   "ts": "1700000000.000001", "channel": HELPDESK, "event_ts": "1700000000.000001" }
    }))
    .unwrap();
    let forged = slack
        .send
        .send_as(
            "/slack/events",
            "application/json",
            body.clone(),
            "not-the-secret",
            unix_now(),
            &[],
        )
        .await;
    assert_eq!(forged.status(), 401);
    assert!(
        forged.text().await.unwrap().is_empty(),
        "no detail for a forger"
    );
    let stale = slack
        .send
        .send_as(
            "/slack/events",
            "application/json",
            body.clone(),
            SECRET,
            unix_now() - 6 * 60,
            &[],
        )
        .await;
    assert_eq!(stale.status(), 401);
    let unsigned = reqwest::Client::new()
        .post(format!("{}/slack/commands", slack.server.url))
        .body("text=hi")
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 401);
    // The one properly signed copy is handled.
    let good = slack
        .send
        .send_as(
            "/slack/events",
            "application/json",
            body,
            SECRET,
            unix_now(),
            &[],
        )
        .await;
    assert_eq!(good.status(), 200);
    slack
        .fake
        .wait_for("chat.postMessage", 1, |_| true, WAIT)
        .await;
    assert!(slack.fake.calls_to("chat.postMessage").len() == 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_verification_is_answered_and_garbage_is_a_400() {
    let slack = start().await;
    let r = slack
        .send
        .event(&json!({ "token": "x", "challenge": "3eZbrw1aBm2rZgRNFdxV", "type": "url_verification" }))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap()["challenge"],
        "3eZbrw1aBm2rZgRNFdxV"
    );
    let garbage = slack
        .send
        .send_as(
            "/slack/events",
            "application/json",
            b"{not json".to_vec(),
            SECRET,
            unix_now(),
            &[],
        )
        .await;
    assert_eq!(garbage.status(), 400);
    let unknown = slack
        .send
        .event(&json!({ "type": "event_callback", "team_id": TEAM, "event_id": "EvNew",
                        "event": { "type": "brand_new_event", "blocks": [{ "type": "future_block" }] } }))
        .await;
    assert_eq!(
        unknown.status(),
        200,
        "unknown events are acknowledged and ignored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_delivered_three_times_is_handled_once() {
    let slack = start().await;
    let event = |event_id: &str| {
        json!({
            "token": "verification_token", "team_id": TEAM, "api_app_id": "A111",
            "type": "event_callback", "event_id": event_id, "event_time": unix_now(),
            "event": { "type": "app_mention", "user": "UJANE", "text": "<@UBOT> the printer shows offline",
                       "ts": "1700000000.000200", "channel": HELPDESK, "event_ts": "1700000000.000200" }
        })
    };
    let body = serde_json::to_vec(&event("Ev0001")).unwrap();
    for retry in ["", "1", "2"] {
        let headers: Vec<(&str, String)> = if retry.is_empty() {
            vec![]
        } else {
            vec![
                ("x-slack-retry-num", retry.to_owned()),
                ("x-slack-retry-reason", "http_timeout".to_owned()),
            ]
        };
        let r = slack
            .send
            .send_as(
                "/slack/events",
                "application/json",
                body.clone(),
                SECRET,
                unix_now(),
                &headers,
            )
            .await;
        assert_eq!(r.status(), 200);
    }
    // Slack also re-sends the same message under a new event id.
    assert_eq!(slack.send.event(&event("Ev0002")).await.status(), 200);
    slack
        .fake
        .wait_for(
            "chat.postMessage",
            1,
            |c| c.body["thread_ts"] == "1700000000.000200",
            WAIT,
        )
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let replies = slack
        .fake
        .calls_to("chat.postMessage")
        .into_iter()
        .filter(|c| c.body["thread_ts"] == "1700000000.000200")
        .count();
    assert_eq!(replies, 1, "one session, one first step");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_post_is_delivered_once_after_retry_after() {
    let slack = start().await;
    slack.fake.fail_next(
        "chat.postMessage",
        Fault::RateLimited {
            retry_after: Some(2),
        },
    );
    slack
        .send
        .command(&command_fields(
            &slack.fake.hooks,
            "UJANE",
            HELPDESK,
            "vpn will not connect",
            "t-1",
        ))
        .await;
    let root = slack
        .fake
        .wait_for(
            "chat.postMessage",
            1,
            |c| c.body["thread_ts"].is_null(),
            WAIT,
        )
        .await;
    let attempts = slack.fake.calls_to("chat.postMessage");
    let limited = attempts
        .iter()
        .find(|c| c.status == 429)
        .expect("the first post was rate-limited");
    assert!(
        root[0].at.duration_since(limited.at) >= Duration::from_secs(2),
        "waited for Retry-After"
    );
    slack
        .fake
        .wait_for(
            "chat.postMessage",
            1,
            |c| !c.body["thread_ts"].is_null(),
            WAIT,
        )
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let roots = slack
        .fake
        .calls_to("chat.postMessage")
        .into_iter()
        .filter(|c| c.ok() && c.body["thread_ts"].is_null())
        .count();
    assert_eq!(roots, 1, "delivered once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_webhook_answers_within_3_s_while_slack_stalls() {
    let slack = start().await;
    slack.fake.stall(Some(Duration::from_secs(30)));
    let timed = |started: Instant| started.elapsed();
    let started = Instant::now();
    let r = slack
        .send
        .command(&command_fields(
            &slack.fake.hooks,
            "UJANE",
            HELPDESK,
            "printer offline",
            "t-1",
        ))
        .await;
    assert_eq!(r.status(), 200);
    assert!(timed(started) < Duration::from_secs(3));
    let started = Instant::now();
    let r = slack
        .send
        .event(
            &json!({ "type": "event_callback", "team_id": TEAM, "event_id": "EvStall",
            "event": { "type": "app_mention", "user": "UJANE", "text": "<@UBOT> dns fails",
                       "ts": "1700000000.000900", "channel": HELPDESK } }),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert!(timed(started) < Duration::from_secs(3));
    let started = Instant::now();
    let r = slack
        .send
        .interaction(&json!({ "type": "block_actions", "team": { "id": TEAM }, "user": { "id": "UJANE", "team_id": TEAM },
            "trigger_id": "t-2", "channel": { "id": HELPDESK }, "container": { "type": "message", "message_ts": "1.1", "channel_id": HELPDESK },
            "actions": [{ "action_id": "rf:1", "type": "button", "value": "{\"a\":\"claim\",\"handoff\":\"0191e0a0-0000-7000-8000-000000000000\"}" }] }))
        .await;
    assert_eq!(r.status(), 200);
    assert!(timed(started) < Duration::from_secs(3));
}

/// A message typed in a thread, as the Events API delivers it.
fn typed(event_id: &str, user: &str, thread: &str, ts: &str, text: &str) -> Value {
    json!({
        "token": "verification_token", "team_id": TEAM, "api_app_id": "A111",
        "type": "event_callback", "event_id": event_id, "event_time": unix_now(),
        "event": { "type": "message", "user": user, "text": text, "ts": ts,
                   "thread_ts": thread, "channel": HELPDESK, "channel_type": "channel",
                   "event_ts": ts, "client_msg_id": event_id }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shortcut_starts_a_session_and_a_rate_limited_escalation_tells_the_thread() {
    let slack = start().await;
    let (fake, send) = (&slack.fake, &slack.send);
    send.command(&command_fields(
        &fake.hooks,
        "UADMIN",
        ESCALATIONS,
        "escalations here",
        "t-1",
    ))
    .await;
    fake.wait_for("response_url", 1, |_| true, WAIT).await;

    // "Troubleshoot this" on a user's message starts a session in that message's thread.
    let shortcut = json!({
        "type": "message_action", "callback_id": "rf_troubleshoot", "trigger_id": "t-2",
        "team": { "id": TEAM, "domain": "acme" },
        "user": { "id": "UJANE", "username": "jane", "team_id": TEAM },
        "channel": { "id": HELPDESK, "name": "helpdesk" },
        "message": { "type": "message", "user": "UCLIENT", "ts": "1700000100.000100",
                     "text": "my mapped drive is missing since this morning" },
        "response_url": "https://hooks.slack.com/app/T111/1/x"
    });
    assert_eq!(send.interaction(&shortcut).await.status(), 200);
    let thread = "1700000100.000100";
    let first = fake
        .wait_for(
            "chat.postMessage",
            1,
            |c| c.body["thread_ts"] == thread,
            WAIT,
        )
        .await
        .remove(0);
    assert!(first.text().contains("mapped drive"), "{}", first.text());

    // Typed messages in the thread are recorded; chatter elsewhere is not looked at.
    send.event(&typed(
        "Ev10",
        "UJANE",
        thread,
        "1700000100.000200",
        "fact the drive maps fine for other users",
    ))
    .await;
    send.event(&typed(
        "Ev11",
        "UJANE",
        "1600000000.000001",
        "1700000100.000250",
        "unrelated chatter",
    ))
    .await;
    fake.wait_for(
        "chat.postMessage",
        1,
        |c| c.text().contains("Fact recorded: the drive maps fine"),
        WAIT,
    )
    .await;
    fake.wait_for(
        "chat.postMessage",
        1,
        |c| c.text().contains("Fact recorded: the drive maps fine"),
        WAIT,
    )
    .await;
    // The ticket note goes into the thread as a file.
    send.event(&typed(
        "Ev13",
        "UJANE",
        thread,
        "1700000100.000260",
        "export md",
    ))
    .await;
    let complete = fake
        .wait_for("files.completeUploadExternal", 1, |_| true, WAIT)
        .await
        .remove(0);
    assert_eq!(complete.body["channel_id"], HELPDESK);
    assert_eq!(complete.body["thread_ts"], thread);
    let upload = fake.calls_to("upload").remove(0);
    assert_eq!(upload.body["file_id"], complete.body["files"][0]["id"]);
    assert!(
        upload.body["content"]
            .as_str()
            .unwrap()
            .contains("the drive maps fine for other users"),
        "{}",
        upload.body["content"]
    );
    // Slack rate-limits the escalation card once, asking for a 1 s wait.
    fake.fail_next_in(
        "chat.postMessage",
        ESCALATIONS,
        Fault::RateLimited {
            retry_after: Some(1),
        },
    );
    send.event(&typed(
        "Ev12",
        "UJANE",
        thread,
        "1700000100.000300",
        "escalate high GPO drive mapping fails for one user",
    ))
    .await;
    let notice = fake
        .wait_for(
            "chat.postMessage",
            1,
            |c| c.body["thread_ts"] == thread && c.text().contains("delayed"),
            WAIT,
        )
        .await;
    assert!(
        notice[0].text().contains("rate-limiting"),
        "{}",
        notice[0].text()
    );
    let card = fake
        .wait_for(
            "chat.postMessage",
            1,
            |c| c.body["channel"] == ESCALATIONS,
            WAIT,
        )
        .await;
    assert!(
        card[0].text().contains("GPO drive mapping fails"),
        "{}",
        card[0].text()
    );
    let limited = fake
        .calls_to("chat.postMessage")
        .into_iter()
        .find(|c| c.status == 429)
        .unwrap();
    assert!(card[0].at.duration_since(limited.at) >= Duration::from_secs(1));
    let escalated = fake
        .wait_for(
            "chat.postMessage",
            1,
            |c| c.body["thread_ts"] == thread && c.text().contains("Escalated by"),
            WAIT,
        )
        .await;
    let said = escalated[0].text();
    assert!(
        said.contains("notified in <#CESC>") && !said.contains("#escalations"),
        "only the Slack channel is named: {said}"
    );
    assert_eq!(
        fake.calls_to("chat.postMessage")
            .iter()
            .filter(|c| c.ok() && c.body["channel"] == ESCALATIONS)
            .count(),
        1,
        "the card is posted once"
    );
    assert!(
        fake.calls_to("users.info")
            .iter()
            .all(|c| c.body["user"] != "UCLIENT"),
        "nobody is looked up for chatter"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_to_slack_installs_a_workspace_with_its_token_sealed_and_uninstall_disconnects_it() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeSlack::start(TEAM).await;
    fake.add_user("UINSTALLER", "Iris", true);
    let token = "xoxb-globex-bot-token-0123456789";
    fake.grant("code-1", "T222", "Globex", token);
    let server = serve(
        &db,
        dir.path(),
        &[
            ("RF_SLACK_SIGNING_SECRET", SECRET),
            ("RF_SLACK_CLIENT_ID", "111.222"),
            ("RF_SLACK_CLIENT_SECRET", "client-secret"),
            ("RF_SLACK__RESPONSE_URL_PREFIX", &fake.hooks_prefix),
            ("RF_SLACK_API_URL", &fake.api_url),
            ("RF_SLACK__RATE_CONTROL", "false"),
        ],
    )
    .await;
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    // "Add to Slack" sends the browser to Slack's consent page with a state bound to a cookie.
    let start = browser
        .get(format!("{}/slack/install", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), 303);
    let location = url::Url::parse(start.headers()["location"].to_str().unwrap()).unwrap();
    assert!(
        location
            .as_str()
            .starts_with("https://slack.com/oauth/v2/authorize?")
    );
    let query: std::collections::HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert_eq!(query["client_id"], "111.222");
    assert!(query["scope"].contains("chat:write") && query["scope"].contains("commands"));
    assert_eq!(
        query["redirect_uri"],
        format!("{}/slack/oauth/callback", server.url)
    );
    let state = query["state"].clone();
    let cookie = start.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let callback = |state: &str, cookie: Option<&str>| {
        let mut request = browser.get(format!(
            "{}/slack/oauth/callback?code=code-1&state={}",
            server.url,
            url::form_urlencoded::byte_serialize(state.as_bytes()).collect::<String>()
        ));
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        request.send()
    };
    // Without the browser's cookie, or with a tampered state: refused, and no code is spent.
    assert_eq!(callback(&state, None).await.unwrap().status(), 400);
    let flipped = if state.ends_with('0') { '1' } else { '0' };
    let tampered = format!("{}{flipped}", &state[..state.len() - 1]);
    assert_eq!(
        callback(&tampered, Some(&cookie)).await.unwrap().status(),
        400
    );
    assert!(fake.calls_to("oauth.v2.access").is_empty());
    let done = callback(&state, Some(&cookie)).await.unwrap();
    assert_eq!(done.status(), 200);
    assert!(done.text().await.unwrap().contains("Globex is connected"));
    let exchange = fake.calls_to("oauth.v2.access").remove(0);
    assert_eq!(exchange.body["code"], "code-1");
    assert!(exchange.authorization.unwrap().starts_with("Basic "));

    // The new workspace works with its own token.
    let send = SlackSender::new(&server.url, SECRET);
    let mut fields = command_fields(&fake.hooks, "UINSTALLER", "CG1", "printer offline", "t-1");
    fields[1] = ("team_id", "T222");
    assert_eq!(send.command(&fields).await.status(), 200);
    let help = fake
        .wait_for("chat.postMessage", 1, |c| c.body["channel"] == "CG1", WAIT)
        .await;
    assert_eq!(
        help[0].authorization.as_deref(),
        Some(format!("Bearer {token}").as_str())
    );

    // The token is stored sealed: not in the database in plain text.
    let store = db.port();
    let place = rf_core::domain::InstallationRef {
        platform: rf_core::domain::Platform::Slack,
        external_id: "T222".into(),
    };
    let sealed = store
        .installation_secret(&place, "slack_bot_token")
        .await
        .unwrap()
        .expect("a stored token");
    assert!(sealed.starts_with("v1:") && !sealed.contains(token));
    if let Some(path) = db.url.strip_prefix("sqlite://") {
        for file in [path.to_owned(), format!("{path}-wal")] {
            if let Ok(bytes) = std::fs::read(&file) {
                assert!(
                    !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
                    "plaintext token in {file}"
                );
            }
        }
    }

    // A user's token revoked: the workspace stays connected.
    let user_revoked = json!({
        "token": "verification_token", "team_id": "T222", "api_app_id": "A111",
        "type": "event_callback", "event_id": "EvRevokedUser", "event_time": unix_now(),
        "event": { "type": "tokens_revoked", "tokens": { "oauth": ["UINSTALLER"] } }
    });
    assert_eq!(send.event(&user_revoked).await.status(), 200);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(store.find_installation(&place).await.unwrap().is_some());

    // Uninstalled: the workspace is disconnected and its requests are no longer handled.
    let uninstalled = json!({
        "token": "verification_token", "team_id": "T222", "api_app_id": "A111",
        "type": "event_callback", "event_id": "EvUninstall", "event_time": unix_now(),
        "event": { "type": "app_uninstalled" }
    });
    assert_eq!(send.event(&uninstalled).await.status(), 200);
    let deadline = Instant::now() + WAIT;
    while store.find_installation(&place).await.unwrap().is_some() {
        assert!(
            Instant::now() < deadline,
            "the workspace was not disconnected"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = fake.calls().len();
    let mut fields = command_fields(&fake.hooks, "UINSTALLER", "CG1", "help", "t-2");
    fields[1] = ("team_id", "T222");
    let answer = send.command(&fields).await;
    assert_eq!(answer.status(), 200);
    assert!(answer.text().await.unwrap().contains("not connected"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        fake.calls().len(),
        before,
        "nothing sent for an uninstalled workspace"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slack_outage_is_retried_and_oversized_bodies_are_refused() {
    let slack = start().await;
    // The response_url fails, and so does the ephemeral message that replaces it: the private
    // answer is retried from the job queue and arrives once.
    slack.fake.fail_next("response_url", Fault::Unavailable);
    slack
        .fake
        .fail_next("chat.postEphemeral", Fault::Unavailable);
    let r = slack
        .send
        .command(&command_fields(
            &slack.fake.hooks,
            "UJANE",
            HELPDESK,
            "help",
            "t-1",
        ))
        .await;
    assert_eq!(r.status(), 200);
    let help = slack
        .fake
        .wait_for("chat.postEphemeral", 1, |c| c.body["user"] == "UJANE", WAIT)
        .await;
    assert!(help[0].text().contains("/rf"), "{}", help[0].text());
    let attempts = slack.fake.calls_to("chat.postEphemeral");
    assert_eq!(attempts.len(), 2, "one failure, one delivery");
    assert_eq!(attempts[0].status, 503);

    // A 429 without Retry-After: retried on the fallback backoff, delivered once.
    slack.fake.fail_next("response_url", Fault::Unavailable);
    slack.fake.fail_next(
        "chat.postEphemeral",
        Fault::RateLimited { retry_after: None },
    );
    slack
        .send
        .command(&command_fields(
            &slack.fake.hooks,
            "UALEX",
            HELPDESK,
            "flows vpn",
            "t-2",
        ))
        .await;
    let flows = slack
        .fake
        .wait_for("chat.postEphemeral", 1, |c| c.body["user"] == "UALEX", WAIT)
        .await;
    assert!(flows[0].text().contains("VPN"), "{}", flows[0].text());
    let to_alex: Vec<_> = slack
        .fake
        .calls_to("chat.postEphemeral")
        .into_iter()
        .filter(|c| c.body["user"] == "UALEX")
        .collect();
    assert_eq!(to_alex.len(), 2);
    assert_eq!(to_alex[0].status, 429);
    assert!(to_alex[1].at.duration_since(to_alex[0].at) >= Duration::from_secs(1));

    // The crate reads bodies unbounded; the server does not: it answers 413 once it has seen too
    // much and hangs up, so a client still writing the rest may see the connection close first.
    let huge = vec![b'a'; 3 * 1024 * 1024];
    let sent = slack
        .send
        .try_send_as(
            "/slack/events",
            "application/json",
            huge,
            SECRET,
            unix_now(),
            &[],
        )
        .await;
    match sent {
        Ok(r) => {
            assert_eq!(r.status(), 413);
            assert_eq!(
                r.headers()["connection"],
                "close",
                "a client must not send its next request on this connection"
            );
        }
        Err(e) => assert!(hung_up(&e), "{e:?}"),
    }
    let r = slack
        .send
        .event(&json!({ "type": "url_verification", "challenge": "still-up" }))
        .await;
    assert_eq!(r.status(), 200, "the server carries on");
}

/// Whether the server closed the connection while the request was being written.
fn hung_up(error: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
            )
        {
            return true;
        }
        source = e.source();
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_mode_receives_the_same_requests_and_acknowledges_them() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeSlack::start(TEAM).await;
    fake.add_user("UJANE", "Jane", false);
    let server = serve(
        &db,
        dir.path(),
        &[
            ("RF_SLACK_APP_TOKEN", "xapp-1-test"),
            ("RF_SLACK_BOT_TOKEN", "xoxb-test-token"),
            ("RF_SLACK_API_URL", &fake.api_url),
            ("RF_SLACK__RATE_CONTROL", "false"),
        ],
    )
    .await;
    // Connected with the app-level token; no HTTP endpoints without a signing secret.
    let open = fake
        .wait_for("apps.connections.open", 1, |_| true, WAIT)
        .await;
    assert_eq!(open[0].authorization.as_deref(), Some("Bearer xapp-1-test"));
    let http = reqwest::Client::new()
        .post(format!("{}/slack/events", server.url))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(http.status(), 404);

    // The connection may still be saying hello: resend until the first envelope is acknowledged.
    let command = json!({
        "envelope_id": "env-1", "type": "slash_commands", "accepts_response_payload": true,
        "payload": {
            "token": "x", "team_id": TEAM, "team_domain": "acme", "channel_id": HELPDESK,
            "channel_name": "helpdesk", "user_id": "UJANE", "user_name": "jane", "command": "/rf",
            "text": "vpn will not connect", "api_app_id": "A111", "is_enterprise_install": "false",
            "response_url": "https://hooks.slack.com/commands/T111/1/x", "trigger_id": "t-socket-1"
        }
    });
    let deadline = Instant::now() + WAIT;
    loop {
        fake.send_envelope(&command);
        if fake.acknowledged("env-1", Duration::from_millis(500)).await {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the command was never acknowledged"
        );
    }
    let root = fake
        .wait_for(
            "chat.postMessage",
            1,
            |c| c.body["thread_ts"].is_null(),
            WAIT,
        )
        .await;
    assert!(
        root[0].text().contains("vpn will not connect"),
        "{}",
        root[0].text()
    );
    fake.wait_for(
        "chat.postMessage",
        1,
        |c| !c.body["thread_ts"].is_null(),
        WAIT,
    )
    .await;

    // An event delivered twice over the socket (Slack's retry) is acknowledged twice, handled once.
    let mention = |envelope: &str, retry: u32| {
        json!({
            "envelope_id": envelope, "type": "events_api", "accepts_response_payload": false,
            "retry_attempt": retry, "retry_reason": if retry > 0 { "timeout" } else { "" },
            "payload": {
                "token": "x", "team_id": TEAM, "api_app_id": "A111", "type": "event_callback",
                "event_id": "EvSocket1", "event_time": unix_now(),
                "event": { "type": "app_mention", "user": "UJANE", "text": "<@UBOT> printer offline",
                           "ts": "1700000300.000100", "channel": HELPDESK, "event_ts": "1700000300.000100" }
            }
        })
    };
    fake.send_envelope(&mention("env-2", 0));
    assert!(fake.acknowledged("env-2", WAIT).await);
    fake.send_envelope(&mention("env-3", 1));
    assert!(fake.acknowledged("env-3", WAIT).await);
    fake.wait_for(
        "chat.postMessage",
        1,
        |c| c.body["thread_ts"] == "1700000300.000100",
        WAIT,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let replies = fake
        .calls_to("chat.postMessage")
        .into_iter()
        .filter(|c| c.body["thread_ts"] == "1700000300.000100")
        .count();
    assert_eq!(replies, 1);
}

/// Waits for the bot to say something containing `text` in `thread`.
async fn said(fake: &FakeSlack, thread: &str, text: &str) -> Call {
    fake.wait_for(
        "chat.postMessage",
        1,
        |c| c.body["thread_ts"] == thread && c.text().contains(text),
        WAIT,
    )
    .await
    .remove(0)
}

/// Waits until the fake model has been asked `count` times (it records a call as it arrives).
async fn asked_at_least(ai: &rf_tests::llm::FakeAnthropic, count: usize) {
    let started = Instant::now();
    while ai.requests().len() < count {
        assert!(started.elapsed() < WAIT, "the model was not asked");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Starts a session with `/rf {problem}` and returns its thread's first message.
async fn open_session(slack: &Slack, problem: &str, trigger: &str) -> Call {
    let r = slack
        .send
        .command(&command_fields(
            &slack.fake.hooks,
            "UJANE",
            HELPDESK,
            problem,
            trigger,
        ))
        .await;
    assert_eq!(r.status(), 200);
    let root = slack
        .fake
        .wait_for(
            "chat.postMessage",
            1,
            |c| c.body["thread_ts"].is_null() && c.text().contains(problem),
            WAIT,
        )
        .await
        .remove(0);
    let thread = ts_of(&root);
    slack
        .fake
        .wait_for(
            "chat.postMessage",
            1,
            |c| c.body["thread_ts"] == thread.as_str(),
            WAIT,
        )
        .await
        .remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_copilot_answers_in_slack_threads_and_a_slow_model_holds_up_nobody_else() {
    use rf_tests::llm::{FakeAnthropic, Reply};
    const KEY: &str = "sk-ant-test-key";
    let ai = FakeAnthropic::start(KEY).await;
    let ai_url = ai.url();
    let slack = start_with(&[
        ("RF_AI__PROVIDER", "anthropic"),
        ("RF_AI__API_KEY", KEY),
        ("RF_AI__BASE_URL", &ai_url),
        ("RF_AI__FAST_MODEL", "claude-haiku-4-5"),
        ("RF_AI__DEEP_MODEL", "claude-sonnet-4-5"),
    ])
    .await;
    let (fake, send) = (&slack.fake, &slack.send);
    let stall = Duration::from_secs(6);

    // Session A: the model takes its time over the first thing Jane types.
    let a = open_session(&slack, "printer on floor 2 prints blank pages", "t-1").await;
    let thread_a = a.body["thread_ts"].as_str().unwrap().to_owned();
    ai.push(Reply::slow(
        stall,
        Reply::Text(
            json!({
                "message": "Blank pages with toner left usually mean the transfer roller or a sealed cartridge.",
                "questions": ["Was the cartridge replaced recently?"],
                "actions": ["Print the printer's own configuration page"],
                "facts": ["The printer prints blank pages"],
                "suggested_fix": {
                    "title": "Remove the cartridge's sealing tape",
                    "rationale": "A new cartridge with its tape on prints blank pages.",
                    "steps": ["Open the front door", "Pull the orange tape out of the cartridge"],
                    "script": null, "confidence": 70
                },
                "confidence": 65
            })
            .to_string(),
        ),
    ));
    let started = Instant::now();
    let r = send
        .event(&typed(
            "EvA1",
            "UJANE",
            &thread_a,
            "1700000200.000100",
            "toner is full, config page prints fine. the admin password: Pr1nt3rAdm!n is unchanged",
        ))
        .await;
    assert_eq!(r.status(), 200);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the ack never waits on the model"
    );

    // While the model thinks about A, session B in the same channel goes ahead.
    asked_at_least(&ai, 1).await;
    let b = open_session(&slack, "vpn will not connect from home", "t-2").await;
    let thread_b = b.body["thread_ts"].as_str().unwrap().to_owned();
    let reply_a = said(fake, &thread_a, "Copilot").await;
    assert!(
        b.at < reply_a.at,
        "session B was answered before the slow model answered A"
    );
    assert!(reply_a.at.duration_since(started) >= stall);

    // The copilot's answer in Block Kit: questions, the fix with its decision buttons, the
    // "AI may be wrong" line; the secret never reached the model.
    let text = reply_a.text();
    for expected in [
        "Was the cartridge replaced recently?",
        "Remove the cartridge's sealing tape",
        "AI may be wrong",
    ] {
        assert!(text.contains(expected), "{expected}: {text}");
    }
    // What it cites is a Slack link to the companion, labelled with the flow's title.
    let cited = format!("<{}/auth/link?token=", slack.server.url);
    assert!(
        text.contains(&cited) && text.contains("|Printer shows offline or won't print>"),
        "{text}"
    );
    for body in ai.bodies() {
        assert!(
            !body.contains("Pr1nt3rAdm!n"),
            "a secret reached the model: {body}"
        );
    }
    let apply = reply_a
        .buttons()
        .into_iter()
        .find(|(label, value)| label.contains("Apply (one-off)") && value.contains("\"a\":\"fix\""))
        .map(|(_, value)| value)
        .expect("the fix has an Apply button");
    let ts = ts_of(&reply_a);
    assert_eq!(
        send.interaction(&click("UJANE", &reply_a, &ts, &apply, "t-3"))
            .await
            .status(),
        200
    );
    said(fake, &thread_a, "is applying the fix").await;

    // The resolution note needs the model: the thread hears it is being written, and session B
    // is not held up meanwhile.
    ai.push(Reply::slow(
        stall,
        Reply::Text(
            "## Problem\nBlank pages.\n\n## What we confirmed\n- The printer prints blank pages\n\n## Root cause\nSealing tape left on a new cartridge.\n\n## Resolution\nRemoved the tape.".to_owned(),
        ),
    ));
    let asked = ai.requests().len();
    send.event(&typed(
        "EvA2",
        "UJANE",
        &thread_a,
        "1700000200.000200",
        "preview",
    ))
    .await;
    said(fake, &thread_a, "Writing the resolution note").await;
    asked_at_least(&ai, asked + 1).await;
    send.event(&typed(
        "EvB1",
        "UJANE",
        &thread_b,
        "1700000300.000100",
        "fact the user is on the 5G hotspot",
    ))
    .await;
    let fact_b = said(fake, &thread_b, "Fact recorded").await;
    let note = said(fake, &thread_a, "## Root cause").await;
    assert!(
        fact_b.at < note.at,
        "B's fact was recorded while A's note was being written"
    );
    assert_eq!(ai.requests().len(), asked + 1);

    // Unchanged: the second preview is answered at once from the cache, with no model call.
    send.event(&typed(
        "EvA3",
        "UJANE",
        &thread_a,
        "1700000200.000300",
        "preview",
    ))
    .await;
    let again = said(fake, &thread_a, "no AI call was made").await;
    assert!(again.text().contains("## Root cause"), "{}", again.text());
    assert_eq!(
        ai.requests().len(),
        asked + 1,
        "an unchanged session costs no call"
    );
}
