//! Whole conversations through the console adapter, against the real engine and store.

use rf_console::Console;
use rf_core::domain::Role;
use rf_core::time::{ManualClock, Timestamp};
use rf_tests::{TestApp, TestDb};
use std::sync::Arc;

struct Script {
    console: Console,
    clock: ManualClock,
    transcript: String,
}

impl Script {
    async fn new(app: &TestApp, clock: ManualClock, user: &str, role: Role) -> Self {
        let console = Console::new(app.app.engine.clone(), app.app.console.clone(), user, role)
            .await
            .unwrap();
        Self {
            console,
            clock,
            transcript: String::new(),
        }
    }

    /// Types a line seven seconds after the previous one; returns what the console printed.
    async fn say(&mut self, line: &str) -> String {
        self.clock.advance_millis(7_000);
        let (out, _) = self.console.handle_line(line).await;
        self.transcript.push_str(&format!("> {line}\n{out}"));
        out
    }
}

async fn jane(engine: &rf_core::engine::Engine) -> rf_core::domain::Actor {
    engine
        .identify(
            &resolutionflow::app::console_installation(),
            &rf_core::domain::ChatIdentity {
                platform: rf_core::domain::Platform::Console,
                platform_user_id: "jane".into(),
                display_name: "Jane".into(),
                email: None,
            },
            rf_core::domain::RoleAssignment::IfNew(Role::Engineer),
        )
        .await
        .unwrap()
}

fn clock() -> ManualClock {
    ManualClock::starting_at(Timestamp::from_millis(1_795_000_000_000))
}

async fn start() -> (TestDb, TestApp, ManualClock) {
    let db = TestDb::new().await;
    let clock = clock();
    let app = TestApp::start(&db, Arc::new(clock.clone())).await;
    (db, app, clock)
}

/// The text of the lines between the export's markers.
fn exported(out: &str) -> String {
    let start = out.find("────").expect("an export");
    out[start..].to_owned()
}

#[tokio::test]
async fn printer_offline_walked_to_a_solution_and_exported_redacted() {
    let (_db, app, clock) = start().await;
    let mut tech = Script::new(&app, clock, "Jane", Role::Engineer).await;

    let out = tech.say("/rf printer offline").await;
    assert!(
        out.contains("[1] Printer"),
        "the printer flow is offered first:\n{out}"
    );
    tech.say("1").await;
    // Walk the tree taking the first answer until it proposes a fix.
    let mut steps = 0;
    while !tech.transcript.contains("Suggested fix") {
        steps += 1;
        assert!(steps < 30, "no solution reached:\n{}", tech.transcript);
        tech.say("1").await;
    }
    let out = tech
        .say("tried password=Hunter2! on the printer's web page")
        .await;
    assert!(out.contains("recorded"), "{out}");
    let out = tech.say("That fixed it").await;
    assert!(out.contains("Resolved by Jane"), "{out}");
    let out = tech.say("export md").await;
    let doc = exported(&out);

    assert!(doc.contains("[REDACTED:password]"), "{doc}");
    assert!(!doc.contains("Hunter2"), "the password leaked:\n{doc}");
    assert!(doc.contains("chose the flow \"Printer"), "{doc}");
    assert!(doc.contains("→ **"), "answers are recorded:\n{doc}");
    assert!(doc.contains("Suggested fix \""), "{doc}");
    assert!(doc.contains("Jane resolved the session"), "{doc}");
    assert!(doc.contains("- **Status:** Resolved"), "{doc}");
    // Every timeline line carries its time, in order (the clock moved 7 s per typed line; the fix
    // a flow proposes is stamped with the answer that led to it).
    let times: Vec<&str> = doc
        .lines()
        .filter_map(|l| l.strip_prefix("- `"))
        .map(|l| &l[..8])
        .collect();
    assert!(times.len() >= steps + 3, "{doc}");
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "timeline out of order: {times:?}\n{doc}"
    );
    assert!(times.first() < times.last(), "{times:?}");
}

#[tokio::test]
async fn exports_come_in_three_formats() {
    let (_db, app, clock) = start().await;
    let mut tech = Script::new(&app, clock, "Jane", Role::Engineer).await;
    tech.say("/rf the <script> tag & printer").await;
    tech.say("resolve swapped the toner").await;
    let text = tech.say("export txt").await;
    assert!(text.contains("Timeline (UTC)\n--------------"), "{text}");
    let html = tech.say("export html").await;
    assert!(html.contains("<!DOCTYPE html>"), "{html}");
    assert!(
        html.contains("the &lt;script&gt; tag &amp; printer"),
        "HTML is escaped:\n{html}"
    );
    assert!(!html.contains("<script>"), "{html}");
}

#[tokio::test]
async fn a_parked_session_is_resumed_by_a_teammate() {
    let (_db, app, clock) = start().await;
    let mut tech = Script::new(&app, clock, "Jane", Role::Engineer).await;
    tech.say("/rf vpn won't connect").await;
    let out = tech.say("park waiting for the user to get home").await;
    assert!(
        out.contains("Parked by Jane: waiting for the user to get home"),
        "{out}"
    );
    let out = tech.say("1").await;
    assert!(
        out.contains("resumed the session"),
        "the Resume button works:\n{out}"
    );
    tech.say("park").await;
    let out = tech.say("1").await;
    assert!(out.contains("resumed"), "{out}");
    tech.say("park").await;

    let out = tech.say("/as Sam engineer").await;
    assert!(out.contains("You are now Sam (engineer)"), "{out}");
    let out = tech.say("resume").await;
    assert!(
        out.contains("Sam resumed the session and now owns it"),
        "{out}"
    );
    let out = tech.say("resume").await;
    assert!(out.contains("already in progress"), "{out}");
    let out = tech.say("export md").await;
    assert!(
        out.contains("**Technician:** Sam"),
        "ownership moved to Sam:\n{out}"
    );
}

#[tokio::test]
async fn a_new_console_picks_up_an_earlier_runs_thread_by_its_number() {
    let (_db, app, clock) = start().await;
    let mut first = Script::new(&app, clock.clone(), "Jane", Role::Engineer).await;
    first.say("/rf vpn won't connect").await;
    // A console started later (a restart) knows the thread by the number /threads would show.
    let mut later = Script::new(&app, clock, "Jane", Role::Engineer).await;
    let out = later.say("/thread 1").await;
    assert!(out.contains("Now in thread 1: vpn won't connect"), "{out}");
    let out = later.say("fact the user is on hotel Wi-Fi").await;
    assert!(out.contains("Fact recorded"), "{out}");
    let out = later.say("/thread 2").await;
    assert!(out.contains("There is no thread 2"), "{out}");
}

#[tokio::test]
async fn viewers_watch_but_cannot_act() {
    let (_db, app, clock) = start().await;
    let mut tech = Script::new(&app, clock, "Jane", Role::Engineer).await;
    tech.say("/rf printer offline").await;
    tech.say("/as Vic viewer").await;
    for line in ["1", "note hello", "resolve", "park"] {
        let out = tech.say(line).await;
        assert!(out.contains("viewer role"), "{line}: {out}");
    }
    let out = tech.say("/rf new problem").await;
    assert!(out.contains("viewer role"), "{out}");
    let out = tech.say("status").await;
    assert!(
        out.contains("Status: In progress"),
        "viewers can look:\n{out}"
    );
    let out = tech.say("export md").await;
    assert!(
        !out.contains("Vic"),
        "nothing the viewer tried was recorded:\n{out}"
    );
}

#[tokio::test]
async fn a_double_click_acts_once() {
    let (_db, app, clock) = start().await;
    let mut tech = Script::new(&app, clock, "Jane", Role::Engineer).await;
    tech.say("/rf printer offline").await;
    tech.say("1").await; // pick the flow
    let question = tech.say("1").await; // answer the first question, showing the second
    assert!(question.contains("[1]"), "{question}");
    // The buttons of the first question are gone; pressing an old one is recognised.
    let store = app.app.engine.store().clone();
    let sessions = store
        .list_sessions(app.app.account.id, &Default::default())
        .await
        .unwrap();
    let before = store
        .timeline(app.app.account.id, sessions[0].id)
        .await
        .unwrap()
        .len();
    let session = &sessions[0];
    let stale = rf_core::effect::Action::PickFlow {
        session: session.id,
        flow: session.flow_id.unwrap(),
    };
    let actor = jane(&app.app.engine).await;
    let input = rf_core::engine::Input::Action {
        action: stale,
        input: None,
    };
    let effects = app
        .app
        .engine
        .handle(&actor, &session.thread, input)
        .await
        .unwrap();
    let text = format!("{effects:?}");
    assert!(text.contains("already been answered"), "{text}");
    let after = store
        .timeline(app.app.account.id, session.id)
        .await
        .unwrap()
        .len();
    assert_eq!(before, after, "a stale click writes nothing");
}

#[tokio::test]
async fn checklists_record_outcomes_and_output() {
    let (_db, app, clock) = start().await;
    let mut tech = Script::new(&app, clock, "Jane", Role::Engineer).await;
    let out = tech
        .say("/rf new hire starting Monday needs accounts and a laptop")
        .await;
    assert!(
        out.contains("[1] New"),
        "onboarding is offered first:\n{out}"
    );
    let out = tech.say("1").await;
    assert!(out.contains("step 1 of"), "{out}");
    assert!(
        out.contains("[1] Done") && out.contains("[2] Skipped") && out.contains("[3] Failed"),
        "{out}"
    );
    tech.say("1 created jdoe in OU=Users").await;
    tech.say("2").await;
    tech.say("3 licence pool empty").await;
    let out = tech.say("export md").await;
    assert!(out.contains("**Done**"), "{out}");
    assert!(out.contains("**Skipped**"), "{out}");
    assert!(out.contains("**Failed**"), "{out}");
    assert!(
        out.contains("created jdoe in OU=Users"),
        "checklist output is kept:\n{out}"
    );
}

#[tokio::test]
async fn admins_set_roles_and_others_cannot() {
    let (_db, app, clock) = start().await;
    let mut admin = Script::new(&app, clock, "Olga", Role::Owner).await;
    let out = admin.say("/rf role @sam viewer").await;
    assert!(out.contains("sam is now a viewer"), "{out}");
    let out = admin.say("/rf role @olga engineer").await;
    assert!(out.contains("own role"), "{out}");
    admin.say("/as Jane engineer").await;
    let out = admin.say("/rf role @sam admin").await;
    assert!(out.contains("Only admins and owners"), "{out}");
    let out = admin.say("/rf flows vpn").await;
    assert!(out.contains("VPN"), "{out}");
}

#[tokio::test]
async fn one_thread_processes_events_in_order_while_threads_run_concurrently() {
    let (_db, app, _clock) = start().await;
    let engine = app.app.engine.clone();
    let actor = jane(&engine).await;
    let threads: Vec<_> = (0..4)
        .map(|t| rf_core::domain::ThreadKey {
            platform: rf_core::domain::Platform::Console,
            workspace: "local".into(),
            channel: "#load".into(),
            thread: format!("t{t}"),
        })
        .collect();
    for thread in &threads {
        engine
            .start(&actor, thread.clone(), "something odd")
            .await
            .unwrap();
    }
    let mut tasks = Vec::new();
    for thread in &threads {
        for i in 0..15 {
            let (engine, actor, thread) = (engine.clone(), actor.clone(), thread.clone());
            tasks.push(tokio::spawn(async move {
                engine
                    .handle(
                        &actor,
                        &thread,
                        rf_core::engine::Input::Text(format!("message {i}")),
                    )
                    .await
            }));
        }
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let store = engine.store();
    for thread in &threads {
        let session = store
            .session_for_thread(actor.account_id, thread)
            .await
            .unwrap()
            .unwrap();
        let timeline = store.timeline(actor.account_id, session.id).await.unwrap();
        let messages = timeline
            .iter()
            .filter(|s| matches!(s.kind, rf_core::session::StepKind::Message { .. }))
            .count();
        assert_eq!(
            messages, 15,
            "every event of the thread was applied exactly once"
        );
        let seqs: Vec<i64> = timeline.iter().map(|s| s.seq).collect();
        assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
    }
}

#[tokio::test]
async fn a_maintenance_flow_runs_every_step_against_every_target() {
    let (_db, app, clock) = start().await;
    let mut tech = Script::new(&app, clock, "Jane", Role::Engineer).await;
    let out = tech.say("/rf monthly patch compliance check").await;
    assert!(out.contains("[1] Monthly patch compliance"), "{out}");
    let out = tech.say("1").await;
    assert!(
        out.contains("(DC01 · Patch status · step 1 of 11)"),
        "{out}"
    );
    assert!(
        out.contains("On DC01, check the most recently installed updates"),
        "{{target}} is filled in:\n{out}"
    );
    for _ in 0..10 {
        tech.say("1").await;
    }
    let out = tech.say("2").await;
    assert!(
        out.contains("(FS01 · Patch status · step 1 of 11)"),
        "the next target starts:\n{out}"
    );
    let out = tech.say("export md").await;
    assert!(
        out.contains("[DC01] On DC01, check the most recently installed updates"),
        "{out}"
    );
    assert!(
        out.contains("[DC01] Record exceptions for DC01 in the ticket"),
        "{out}"
    );
}
