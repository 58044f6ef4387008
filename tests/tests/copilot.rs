//! The copilot end to end through the console: the real app (engine, job worker, store) with a
//! fake Anthropic or OpenAI-compatible server speaking their real JSON and SSE, and with no model
//! at all (the offline provider, the default).

use rf_console::Console;
use rf_core::Store as _;
use rf_core::ai::{AiPurpose, FixDecision, Tier};
use rf_core::domain::Role;
use rf_core::session::{FactSource, Session, StepKind};
use rf_core::time::{Clock, ManualClock, Timestamp};
use rf_tests::llm::{FakeAnthropic, FakeOpenAi, Reply};
use rf_tests::{TestApp, TestDb};
use serde_json::json;
use std::sync::Arc;

const FAST: &str = "claude-haiku-4-5";
const DEEP: &str = "claude-sonnet-4-5";
const KEY: &str = "sk-ant-test-key-0123456789";

fn clock() -> ManualClock {
    ManualClock::starting_at(Timestamp::from_millis(1_795_000_000_000))
}

/// A technician at the console; the worker runs what came due after each line.
struct Tech {
    console: Console,
    clock: ManualClock,
}

impl Tech {
    async fn new(app: &TestApp, clock: ManualClock) -> Self {
        let console = Console::new(
            app.app.engine.clone(),
            app.app.console.clone(),
            "Jane",
            Role::Engineer,
        )
        .await
        .unwrap()
        .with_settle(app.app.console_settle());
        Self { console, clock }
    }

    /// Says `line`, then lets the worker run (the copilot's turn is a job) and shows everything.
    async fn say(&mut self, line: &str) -> String {
        self.clock.advance_millis(5_000);
        let (mut out, _) = self.console.handle_line(line).await;
        out.push_str(&self.console.handle_line("").await.0);
        out
    }

    /// Starts a session worked free-form (choosing "without a flow" if the library offers some).
    async fn start_free_form(&mut self, problem: &str) -> String {
        let out = self.say(&format!("/rf {problem}")).await;
        if out.contains("Troubleshoot without a flow") {
            return self.say("Troubleshoot without a flow").await;
        }
        out
    }
}

/// The app with the copilot on a fake Anthropic (fast and deep models named), and its clock.
async fn with_anthropic(db: &TestDb) -> (FakeAnthropic, ManualClock, TestApp) {
    let fake = FakeAnthropic::start(KEY).await;
    let clock = clock();
    let app = on_anthropic(db, &fake, &clock).await;
    (fake, clock, app)
}

/// An app (a replica, when the database already has one) with the copilot on `fake`.
async fn on_anthropic(db: &TestDb, fake: &FakeAnthropic, clock: &ManualClock) -> TestApp {
    let url = fake.url();
    TestApp::start_with(db, Arc::new(clock.clone()), |config| {
        config.ai.provider = "anthropic".to_owned();
        config.ai.base_url = url;
        config.ai.api_key = Some(KEY.into());
        config.ai.fast_model = FAST.to_owned();
        config.ai.deep_model = DEEP.to_owned();
    })
    .await
}

/// The model's four-section note about Zorbix, with what was confirmed and how it was resolved.
fn note(confirmed: &str, resolution: &str) -> Reply {
    Reply::Text(format!(
        "## Problem\nZorbix dies at launch.\n\n## What we confirmed\n- {confirmed}\n\n## Root cause\nBroken VC++ runtime.\n\n## Resolution\n{resolution}"
    ))
}

fn turn(value: serde_json::Value) -> Reply {
    Reply::Text(value.to_string())
}

async fn session(app: &TestApp) -> Session {
    app.app
        .store
        .list_sessions(app.app.account.id, &Default::default())
        .await
        .unwrap()
        .remove(0)
}

/// Jane presses a button of the session's thread; what the engine answers, as text.
async fn press_as_jane(
    app: &TestApp,
    session: &Session,
    action: rf_core::effect::Action,
) -> String {
    let jane = app.person("Jane", Role::Engineer).await;
    let effects = app
        .app
        .engine
        .press(
            &jane,
            &rf_core::effect::Place::from(&session.thread),
            action,
            None,
        )
        .await
        .unwrap();
    format!("{effects:?}")
}

/// Every AI turn on the session's timeline: (tier of the call that answered, models called).
async fn ai_turns(app: &TestApp, session: &Session) -> Vec<(Tier, Vec<String>, bool)> {
    app.app
        .store
        .timeline(app.app.account.id, session.id)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|step| match step.kind {
            StepKind::AiTurn { reply, calls, .. } => Some((
                calls.last().map_or(Tier::Offline, |c| c.tier),
                calls.iter().map(|c| c.model.clone()).collect(),
                reply.is_some(),
            )),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_copilot_routes_parses_suggests_fixes_and_caches_the_note() {
    let db = TestDb::new().await;
    let (fake, clock, app) = with_anthropic(&db).await;
    let mut tech = Tech::new(&app, clock).await;

    // Discovery: no flow matches, so the deep model starts, with questions, facts and a fix.
    fake.push(turn(json!({
        "message": "Zorbix failing at launch with 0xc0000142 usually means a DLL initialisation failure.",
        "questions": ["Did it start after the last Windows update?", "Does it fail for every user on this PC?"],
        "actions": ["Check Event Viewer > Application for the Zorbix crash entry"],
        "facts": ["Zorbix fails at launch"],
        "suggested_fix": {
            "title": "Repair the Visual C++ runtime",
            "rationale": "0xc0000142 at launch points at a broken runtime DLL.",
            "steps": ["Run the VC++ 2015-2022 redistributable installer with Repair", "Reboot"],
            "script": null,
            "confidence": 55
        },
        "confidence": 60
    })));
    let out = tech
        .start_free_form("Zorbix accounting app dies at launch with error 0xc0000142")
        .await;
    assert!(out.contains("Copilot"), "{out}");
    assert!(
        out.contains("Did it start after the last Windows update?"),
        "{out}"
    );
    assert!(out.contains("Repair the Visual C++ runtime"), "{out}");
    assert!(out.contains("AI may be wrong"), "{out}");
    let s = session(&app).await;
    assert_eq!(
        ai_turns(&app, &s).await,
        vec![(Tier::Deep, vec![DEEP.to_owned()], true)]
    );
    let facts = app.app.store.facts(app.app.account.id, s.id).await.unwrap();
    assert!(
        facts
            .iter()
            .any(|f| f.text == "Zorbix fails at launch" && f.source == FactSource::Ai)
    );

    // A secret typed by the tech: redacted before it is stored, and never sent to the model.
    fake.push(turn(json!({
        "message": "Thanks. The service account matters here.",
        "questions": ["Is Zorbix started by that service account?"],
        "actions": [], "facts": ["The Zorbix service account password was changed"],
        "suggested_fix": {
            "title": "Update the stored service account credentials",
            "rationale": "The service cannot start with the old password.",
            "steps": ["services.msc > Zorbix > Log On: enter the new password"],
            "script": null, "confidence": 75
        },
        "confidence": 80
    })));
    let out = tech
        .say("Found it: the svc-zorbix password: Sup3rS3cret!42 was changed last week")
        .await;
    assert!(
        out.contains("Update the stored service account credentials"),
        "{out}"
    );
    for body in fake.bodies() {
        assert!(
            !body.contains("Sup3rS3cret!42"),
            "a secret reached the model: {body}"
        );
    }
    assert!(fake.bodies().last().unwrap().contains("[REDACTED"));

    // The first fix was superseded: deciding on it is a clear conflict; the new one is applied.
    let fixes = app
        .app
        .store
        .suggested_fixes(app.app.account.id, s.id)
        .await
        .unwrap();
    assert_eq!(fixes.len(), 2);
    assert!(fixes[0].superseded_at.is_some() && fixes[1].superseded_at.is_none());
    let stale = press_as_jane(
        &app,
        &s,
        rf_core::effect::Action::Fix {
            session: s.id,
            fix: fixes[0].id,
            decision: FixDecision::Dismissed,
        },
    )
    .await;
    assert!(
        stale.contains("superseded by a newer suggestion"),
        "{stale}"
    );

    // A short confirmation goes to the fast model.
    fake.push(turn(json!({
        "message": "Good: start the service and try Zorbix again.",
        "questions": [], "actions": ["Start the Zorbix service"], "facts": [],
        "suggested_fix": null, "confidence": 85
    })));
    let out = tech.say("yes done").await;
    assert!(out.contains("Start the Zorbix service"), "{out}");

    // An unsure fast answer is asked again of the deep model, whose answer is the one shown.
    fake.push(turn(json!({
        "message": "Maybe it is the service.", "questions": [], "actions": [], "facts": [],
        "suggested_fix": null, "confidence": 20
    })));
    fake.push(turn(json!({
        "message": "The service account cannot log on: check event 7000.", "questions": [],
        "actions": [], "facts": [], "suggested_fix": null, "confidence": 75
    })));
    let out = tech.say("no").await;
    assert!(out.contains("check event 7000"), "{out}");
    assert!(!out.contains("Maybe it is the service."), "{out}");

    // Garbage from the fast model: the deep model is asked; garbage from both leaves the session
    // working and the thread told.
    fake.push(Reply::Text("I think maybe {not json".to_owned()));
    fake.push(turn(json!({
        "message": "Then it is the runtime after all.", "questions": [], "actions": [],
        "facts": [], "suggested_fix": null, "confidence": 70
    })));
    let out = tech.say("ok same error").await;
    assert!(out.contains("Then it is the runtime after all."), "{out}");
    fake.push(Reply::Text(
        "```json\n{\"message\": 42, \"questions\": \"".to_owned(),
    ));
    let out = tech.say("still the same, now what").await;
    assert!(out.contains("couldn't answer this time"), "{out}");
    let out = tech.say("fact Event 1000 names vcruntime140.dll").await;
    assert!(
        out.contains("Fact recorded"),
        "the session carries on: {out}"
    );

    let turns = ai_turns(&app, &s).await;
    assert_eq!(
        turns,
        vec![
            (Tier::Deep, vec![DEEP.to_owned()], true),
            (Tier::Deep, vec![DEEP.to_owned()], true),
            (Tier::Fast, vec![FAST.to_owned()], true),
            (Tier::Deep, vec![FAST.to_owned(), DEEP.to_owned()], true),
            (Tier::Deep, vec![FAST.to_owned(), DEEP.to_owned()], true),
            (Tier::Deep, vec![DEEP.to_owned()], false),
        ],
        "deep for discovery and questions, fast for confirmations, deep when the fast one is unsure or fails"
    );
    // Each call records tokens, latency and an estimated cost.
    let timeline = app
        .app
        .store
        .timeline(app.app.account.id, s.id)
        .await
        .unwrap();
    let calls: Vec<_> = timeline
        .iter()
        .filter_map(|step| match &step.kind {
            StepKind::AiTurn { calls, .. } => Some(calls.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    assert!(
        calls
            .iter()
            .all(|c| c.input_tokens > 0 && c.output_tokens > 0)
    );
    assert!(
        calls.iter().any(|c| c.tier == Tier::Fast
            && c.problem.as_deref() == Some("low confidence (20%): asked the deep model")),
        "why the fast answer was not used is on the record"
    );
    assert!(
        calls.iter().any(|c| c.cached_tokens > 0),
        "prompt caching is reported"
    );
    assert!(calls.iter().all(|c| c.cost_micros > 0));

    // The resolution note: one model call; unchanged state → served from the cache, no request.
    fake.push(note(
        "Event 1000 names vcruntime140.dll",
        "Repaired the runtime.",
    ));
    let before = fake.requests().len();
    let out = tech.say("preview").await;
    assert!(out.contains("Writing the resolution note"), "{out}");
    assert!(out.contains("## Root cause"), "{out}");
    assert_eq!(fake.requests().len(), before + 1);
    assert_eq!(
        other_calls(&app, &s).await,
        vec![(AiPurpose::ResolutionNote, vec![DEEP.to_owned()])],
        "the note's call is on the record"
    );
    let link = tech.say("link").await;
    let page = open_cited(&app, &link, "This session's timeline").await;
    assert!(
        page.contains("<td>resolution note</td>") && page.contains("<td>turn</td>"),
        "the session page lists every call with what it was for: {page}"
    );
    let out = tech.say("preview").await;
    assert!(out.contains("no AI call was made"), "{out}");
    assert_eq!(
        fake.requests().len(),
        before + 1,
        "an unchanged session costs no call"
    );
    // Another replica (or this one after a restart) finds the note on the timeline.
    let replica = on_anthropic(&db, &fake, &tech.clock).await;
    let shown = press_as_jane(
        &replica,
        &s,
        rf_core::effect::Action::NotePreview { session: s.id },
    )
    .await;
    assert!(
        shown.contains("no AI call was made") && shown.contains("## Root cause"),
        "{shown}"
    );
    assert_eq!(fake.requests().len(), before + 1, "no replica pays twice");
    // Any change regenerates it.
    fake.push(note("The runtime repair worked", "Repaired."));
    tech.say("fact The runtime repair worked").await;
    let out = tech.say("preview").await;
    assert!(out.contains("The runtime repair worked"), "{out}");
    assert_eq!(fake.requests().len(), before + 2);
    // After resolving, the note is written once more, for the resolved session.
    fake.push(note(
        "The runtime repair worked",
        "Repaired the runtime; Zorbix starts.",
    ));
    tech.say("resolve Repaired the runtime").await;
    let out = tech.say("preview").await;
    assert!(out.contains("Zorbix starts"), "{out}");
    assert_eq!(fake.requests().len(), before + 3);

    // Operators see the calls, tokens and cost in Prometheus.
    let metrics = reqwest::get(format!("{}/metrics", app.base_url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for expected in [
        format!(
            "rf_ai_calls_total{{provider=\"anthropic\",model=\"{DEEP}\",tier=\"deep\",purpose=\"turn\",outcome=\"used\"}}"
        ),
        format!(
            "rf_ai_calls_total{{provider=\"anthropic\",model=\"{FAST}\",tier=\"fast\",purpose=\"turn\",outcome=\"unused\"}} 2"
        ),
        format!(
            "rf_ai_calls_total{{provider=\"anthropic\",model=\"{DEEP}\",tier=\"deep\",purpose=\"resolution_note\",outcome=\"used\"}} 3"
        ),
        format!(
            "rf_ai_tokens_total{{provider=\"anthropic\",model=\"{DEEP}\",kind=\"cache_read\"}}"
        ),
        format!("rf_ai_cost_microdollars_total{{provider=\"anthropic\",model=\"{DEEP}\"}}"),
    ] {
        assert!(metrics.contains(&expected), "{expected} in:\n{metrics}");
    }

    // Every request carried the key and the cacheable system prompt.
    for request in fake.requests() {
        assert_eq!(request.header("x-api-key").as_deref(), Some(KEY));
        assert!(request.body["system"][0]["cache_control"].is_object());
    }
}

#[tokio::test]
async fn with_no_key_the_offline_copilot_matches_flows_and_writes_the_note() {
    let db = TestDb::new().await;
    let clock = clock();
    let app = TestApp::start(&db, Arc::new(clock.clone())).await;
    let mut tech = Tech::new(&app, clock).await;

    // A problem the library covers: the matching flow is offered first.
    let out = tech.say("/rf the printer on floor 2 shows offline").await;
    assert!(out.contains("[1] Printer shows offline"), "{out}");

    // One it doesn't: free-form, and the offline copilot starts discovery.
    let mut other = Tech::new(&app, tech.clock.clone()).await;
    let out = other
        .start_free_form("Zorbix accounting app dies at launch with error 0xc0000142")
        .await;
    assert!(out.contains("Copilot"), "{out}");
    assert!(out.contains("working offline"), "{out}");
    assert!(out.contains("When did it start"), "{out}");
    other.say("fact Event 1000 names vcruntime140.dll").await;
    other.say("resolve Repaired the VC++ runtime").await;
    let out = other.say("preview").await;
    for section in [
        "## Problem",
        "## What we confirmed",
        "## Root cause",
        "## Resolution",
    ] {
        assert!(out.contains(section), "{out}");
    }
    assert!(out.contains("Event 1000 names vcruntime140.dll"), "{out}");
    assert!(out.contains("Repaired the VC++ runtime"), "{out}");

    // What a turn cites links to the companion: the flow's page, the resolved session's timeline.
    let mut third = Tech::new(&app, tech.clock.clone()).await;
    let out = third
        .start_free_form("Zorbix dies at launch again, and the printer on floor 3 shows offline")
        .await;
    // The flow's citation names its step closest to the problem and links to it on the flow page.
    let line = out
        .lines()
        .find(|l| {
            l.contains("Printer shows offline or won't print <") && l.contains("(flow, step ")
        })
        .unwrap_or_else(|| panic!("{out}"));
    assert!(line.contains("#step-"), "{line}");
    let flow = open_cited(&app, &out, "Printer shows offline or won't print <").await;
    assert!(
        flow.contains("<h1 id=\"flow-title\">Printer shows offline or won")
            && flow.contains("href=\"#step-"),
        "{flow}"
    );
    let session = open_cited(&app, &out, "(resolved session)").await;
    assert!(session.contains("Repaired the VC++ runtime"), "{session}");
}

/// Follows the companion link on the line of a turn's output that holds `label` (a signed link:
/// 303 and a cookie), and returns the page it leads to.
async fn open_cited(app: &TestApp, out: &str, label: &str) -> String {
    let url = out
        .lines()
        .find(|line| line.contains(label))
        .and_then(|line| {
            line.split_whitespace()
                .find(|word| word.starts_with("<http"))
        })
        .map(|word| word.trim_matches(['<', '>']))
        .unwrap_or_else(|| panic!("no link with {label:?} in {out}"));
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = http.get(url).send().await.unwrap();
    assert_eq!(response.status(), 303, "{url}");
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let page = http
        .get(format!("{}{location}", app.base_url))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200, "{location}");
    page.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_openai_compatible_model_answers_turns_too() {
    let db = TestDb::new().await;
    let fake = FakeOpenAi::start("sk-openai-test").await;
    let clock = clock();
    let url = fake.url();
    let app = TestApp::start_with(&db, Arc::new(clock.clone()), |config| {
        config.ai.provider = "openai".to_owned();
        config.ai.base_url = url;
        config.ai.api_key = Some("sk-openai-test".into());
        config.ai.fast_model = "gpt-4o-mini".to_owned();
        config.ai.deep_model = "gpt-4o".to_owned();
        config.ai.max_tokens_field = "max_completion_tokens".to_owned();
        config.ai.embedding_model = "text-embedding-3-small".to_owned();
    })
    .await;
    let mut tech = Tech::new(&app, clock).await;
    fake.push(turn(json!({
        "message": "Let's narrow it down.",
        "questions": ["Which Windows build is the PC on?"],
        "actions": [], "facts": [], "suggested_fix": null, "confidence": 50
    })));
    let out = tech
        .start_free_form("Zorbix accounting app dies at launch with error 0xc0000142")
        .await;
    assert!(out.contains("Which Windows build is the PC on?"), "{out}");
    // Retrieval asked the embedding endpoint (ranks fused with full-text search), then the turn.
    let requests = fake.requests();
    assert!(
        requests.iter().any(|r| r.path.ends_with("/embeddings")
            && r.body["model"] == "text-embedding-3-small"),
        "{:?}",
        requests.iter().map(|r| &r.path).collect::<Vec<_>>()
    );
    let request = requests
        .iter()
        .find(|r| r.path.ends_with("/chat/completions"))
        .expect("a chat completion");
    assert_eq!(request.body["model"], "gpt-4o");
    assert!(request.body["max_completion_tokens"].is_number());
    assert_eq!(request.body["response_format"]["type"], "json_schema");
}

const ZORBIX_FLOW: &str = r#"id: zorbix-launch-crash
title: Zorbix crashes at launch
kind: troubleshooting
description: Zorbix accounting fails to start with 0xc0000142.
category: Line-of-business apps
symptoms:
  - zorbix crashes at launch
  - zorbix won't start
nodes:
  - id: runtime
    type: action
    text: Repair the Visual C++ 2015-2022 runtime and reboot.
    branches:
      - { label: "Starts now", next: fixed }
      - { label: "Still crashes", next: reinstall }
  - id: reinstall
    type: solution
    title: Reinstall Zorbix
    text: Uninstall, delete C:\ProgramData\Zorbix, reinstall.
  - id: fixed
    type: solution
    title: Runtime repaired
    text: The broken runtime was the cause.
"#;

/// Runs the knowledge flywheel now (as the job scheduled after resolutions does).
async fn run_flywheel(app: &TestApp, clock: &ManualClock) {
    app.app
        .store
        .enqueue(
            vec![rf_core::jobs::NewJob::now(
                app.app.account.id,
                rf_core::jobs::Job::Flywheel,
                clock.now(),
            )],
            clock.now(),
        )
        .await
        .unwrap();
    app.app.worker.run_due().await;
}

fn draft(yaml: &str) -> Reply {
    Reply::Text(json!({"yaml": yaml, "rationale": "Three resolved sessions did this."}).to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_flow_builder_and_the_flywheel_propose_flows_for_review() {
    let db = TestDb::new().await;
    let (fake, clock, app) = with_anthropic(&db).await;
    let mut tech = Tech::new(&app, clock.clone()).await;

    // The builder: an invalid draft is sent back with the validator's errors, once.
    fake.push(draft(
        "id: zorbix\ntitle: Zorbix\nkind: troubleshooting\nnodes: []\n",
    ));
    fake.push(draft(ZORBIX_FLOW));
    let out = tech
        .say("/rf flow build what to do when Zorbix crashes at launch")
        .await;
    assert!(out.contains("Drafting a flow"), "{out}");
    assert!(out.contains("waiting for review"), "{out}");
    let bodies = fake.bodies();
    assert!(
        bodies.last().unwrap().contains("no solution")
            || bodies.last().unwrap().contains("draft.yaml"),
        "the retry carries the validator's errors: {}",
        bodies.last().unwrap()
    );
    let proposals = app
        .app
        .store
        .flow_proposals(app.app.account.id, None)
        .await
        .unwrap();
    assert_eq!(proposals.len(), 1);
    assert_eq!(proposals[0].title, "Zorbix crashes at launch");

    // The flywheel: three resolved free-form sessions about one problem become one proposal.
    let owner = rf_tests::user(
        app.app.store.as_ref(),
        &app.app.account,
        &app.app.team,
        "Jane",
    )
    .await;
    for (i, problem) in [
        "Timesheet sync to Payfast fails overnight",
        "Payfast timesheet sync failed again",
        "timesheet sync with Payfast failing",
    ]
    .iter()
    .enumerate()
    {
        rf_tests::resolved_session(
            app.app.store.as_ref(),
            &app.app.team,
            owner,
            &format!("payfast-{i}"),
            problem,
            None,
            "Renewed the Payfast API token",
        )
        .await;
    }
    fake.push(draft(
        &ZORBIX_FLOW
            .replace("zorbix-launch-crash", "payfast-sync")
            .replace("Zorbix crashes at launch", "Payfast timesheet sync fails"),
    ));
    run_flywheel(&app, &clock).await;
    let proposals = app
        .app
        .store
        .flow_proposals(app.app.account.id, None)
        .await
        .unwrap();
    assert_eq!(proposals.len(), 2, "{proposals:?}");
    let flywheel = proposals
        .iter()
        .find(|p| p.origin == rf_core::flow::proposal::ProposalOrigin::Flywheel)
        .unwrap();
    assert_eq!(flywheel.source_sessions.len(), 3);
    assert!(
        fake.bodies()
            .last()
            .unwrap()
            .contains("Renewed the Payfast API token")
    );
    // Running it again proposes nothing new: those sessions are behind a proposal now.
    let before = fake.requests().len();
    run_flywheel(&app, &clock).await;
    assert_eq!(fake.requests().len(), before);

    // Review in the companion: engineers may not; an owner accepts (after an edit) and rejects.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let cookie = |actor: rf_core::domain::Actor| {
        let (app, http) = (&app, &http);
        async move {
            let url = app
                .app
                .engine
                .share_link(
                    actor.account_id,
                    actor.user_id,
                    actor.role,
                    rf_core::links::LinkScope::Account,
                )
                .await
                .unwrap()
                .unwrap();
            let response = http.get(url).send().await.unwrap();
            response.headers()[reqwest::header::SET_COOKIE]
                .to_str()
                .unwrap()
                .split(';')
                .next()
                .unwrap()
                .to_owned()
        }
    };
    let page = format!("{}/team/proposals", app.base_url);
    let engineer = cookie(app.person("Eric", Role::Engineer).await).await;
    let refused = http
        .get(&page)
        .header(reqwest::header::COOKIE, engineer)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), reqwest::StatusCode::FORBIDDEN);
    let owner = cookie(app.person("Olga", Role::Owner).await).await;
    let listed = http
        .get(&page)
        .header(reqwest::header::COOKIE, &owner)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        listed.contains("Payfast timesheet sync fails") && listed.contains("knowledge flywheel"),
        "{listed}"
    );
    let edited = flywheel.yaml.replace(
        "Payfast timesheet sync fails",
        "Payfast timesheet sync failing",
    );
    let accepted = http
        .post(format!("{page}/{}", flywheel.id))
        .header(reqwest::header::COOKIE, &owner)
        .form(&[("action", "accept"), ("yaml", edited.as_str())])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(accepted.contains("Published"), "{accepted}");
    let flow = app
        .app
        .store
        .get_flow_by_slug(app.app.account.id, "payfast-sync")
        .await
        .unwrap()
        .expect("published");
    assert_eq!(flow.summary.title, "Payfast timesheet sync failing");
    assert_eq!(flow.summary.source, rf_core::flow::FlowSource::AiProposed);
    let builder = proposals.iter().find(|p| p.id != flywheel.id).unwrap();
    let rejected = http
        .post(format!("{page}/{}", builder.id))
        .header(reqwest::header::COOKIE, &owner)
        .form(&[("action", "reject")])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(rejected.contains("Rejected"), "{rejected}");
    let twice = http
        .post(format!("{page}/{}", builder.id))
        .header(reqwest::header::COOKIE, &owner)
        .form(&[("action", "accept")])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(twice.contains("was already rejected"), "{twice}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_assesses_escalations_after_the_card_went_out() {
    let db = TestDb::new().await;
    let (fake, clock, app) = with_anthropic(&db).await;
    let mut tech = Tech::new(&app, clock).await;
    fake.push(turn(json!({
        "message": "Let's look.", "questions": ["Since when?"], "actions": [], "facts": [],
        "suggested_fix": null, "confidence": 40
    })));
    tech.start_free_form("Zorbix accounting app dies at launch with error 0xc0000142")
        .await;
    fake.push(turn(json!({
        "likely_cause": "A broken Visual C++ runtime (0xc0000142 is a DLL initialisation failure).",
        "next_steps": ["Repair the VC++ runtime", "Check Event 1000 for the faulting module"],
        "confidence": 72
    })));
    let out = tech.say("escalate high stuck after two hours").await;
    assert!(out.contains("Escalated by Jane"), "{out}");
    let s = session(&app).await;
    let handoff = app
        .app
        .store
        .get_handoff(app.app.account.id, s.handoff_id.expect("an escalation"))
        .await
        .unwrap();
    assert_eq!(
        handoff.assessment.confidence, 72,
        "{:?}",
        handoff.assessment
    );
    assert!(
        handoff
            .assessment
            .likely_cause
            .contains("Visual C++ runtime")
    );
    assert_eq!(handoff.assessment.next_steps.len(), 2);
    assert_eq!(handoff.assessment.source, DEEP);
    // What the assessment cost is on the session's record.
    assert_eq!(
        other_calls(&app, &s).await,
        vec![(AiPurpose::Assessment, vec![DEEP.to_owned()])]
    );
}

/// The model calls made for a session outside its turns: (what for, models called).
async fn other_calls(app: &TestApp, session: &Session) -> Vec<(AiPurpose, Vec<String>)> {
    app.app
        .store
        .timeline(app.app.account.id, session.id)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|step| match step.kind {
            StepKind::AiCalls { purpose, calls, .. } => {
                Some((purpose, calls.iter().map(|c| c.model.clone()).collect()))
            }
            _ => None,
        })
        .collect()
}

/// An embedding model that knows what the words don't say: zebra handhelds live on the WLAN,
/// which is the Wi-Fi.
#[derive(Debug)]
struct Synonyms;

#[async_trait::async_trait]
impl rf_ai::copilot::Embedder for Synonyms {
    async fn embed(&self, inputs: &[String]) -> Result<Vec<Vec<f32>>, rf_ai::llm::LlmError> {
        Ok(inputs
            .iter()
            .map(|text| {
                let text = text.to_lowercase();
                if ["wlan", "handhelds", "wi-fi"]
                    .iter()
                    .any(|w| text.contains(w))
                {
                    vec![1.0, 0.0]
                } else {
                    vec![0.0, 1.0]
                }
            })
            .collect())
    }
}

#[tokio::test]
async fn resolved_sessions_near_in_meaning_bring_the_flow_they_followed() {
    let db = TestDb::new().await;
    let store = db.port();
    let (account, team) = rf_tests::account_with_samples(store.as_ref(), "meaning")
        .await
        .unwrap();
    let owner = rf_tests::user(store.as_ref(), &account, &team, "Tess").await;
    let wifi = store
        .get_flow_by_slug(account.id, "wifi-cant-connect")
        .await
        .unwrap()
        .unwrap();
    rf_tests::resolved_session(
        store.as_ref(),
        &team,
        owner,
        "history-wlan",
        "WLAN keeps dropping in the warehouse",
        Some((wifi.summary.id, wifi.flow.clone())),
        "Forgot the profile and rejoined",
    )
    .await;
    // Not one word in common with that session, or with the flow's own text.
    let problem = "the zebra handhelds go dark during picking";
    let words = rf_core::ai::retrieve::retrieve(store.as_ref(), None, account.id, problem, None)
        .await
        .unwrap();
    assert!(
        words.flows.iter().all(|f| f.slug != "wifi-cant-connect"),
        "full-text search alone does not find it: {:?}",
        words.flows
    );
    let copilot = rf_ai::offline::Offline::new().with_embedder(Arc::new(Synonyms));
    let meaning = rf_core::ai::retrieve::retrieve(
        store.as_ref(),
        Some(&copilot as &dyn rf_core::ai::Copilot),
        account.id,
        problem,
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        meaning.flows.first().map(|f| f.slug.as_str()),
        Some("wifi-cant-connect"),
        "{:?}",
        meaning.flows
    );
    assert_eq!(
        meaning.sessions[0].problem,
        "WLAN keeps dropping in the warehouse"
    );
}
