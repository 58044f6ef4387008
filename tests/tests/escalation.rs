//! Escalation Mode end to end through the real engine, store, job worker and console notifier.

use rf_core::domain::{Actor, Platform, Role, ThreadKey};
use rf_core::engine::Input;
use rf_core::escalation::ClaimView;
use rf_core::ids::HandoffId;
use rf_core::outbox::{DeliveryChannel, DeliveryStatus};
use rf_core::session::SessionStatus;
use rf_core::team::{LadderAction, LadderStep, When};
use rf_core::time::{ManualClock, Timestamp};
use rf_tests::smtp::SmtpSink;
use rf_tests::{TestApp, TestDb};
use std::sync::Arc;
use std::time::Duration;

/// Wednesday 2026-11-18 11:06:40 UTC: inside the default working hours.
fn clock() -> ManualClock {
    ManualClock::starting_at(Timestamp::from_millis(1_795_000_000_000))
}

async fn person(app: &TestApp, name: &str, role: Role, email: Option<&str>) -> Actor {
    app.member(
        &resolutionflow::app::console_installation(),
        name,
        role,
        email,
    )
    .await
}

/// Jane starts a session and escalates it (priority high).
async fn escalate(app: &TestApp, jane: &Actor, problem: &str) -> (ThreadKey, HandoffId) {
    let lines = [
        "note checked the cable and the port",
        "escalate high user is a VIP printing payroll",
    ];
    let (thread, handoff) = app.session(jane, problem, &lines).await;
    let session = app
        .app
        .engine
        .store()
        .session_for_thread(jane.account_id, &thread)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(session.status, SessionStatus::Escalated);
    (thread, handoff.expect("an open handoff"))
}

fn board_text(app: &TestApp, channel: &str) -> String {
    app.app
        .console
        .board()
        .channel(channel)
        .iter()
        .map(|m| m.plain_text())
        .collect::<Vec<_>>()
        .join("\n---\n")
}

fn arrivals(app: &TestApp) -> String {
    app.app
        .console
        .board()
        .take_arrivals()
        .iter()
        .map(|a| format!("[{}] {}", a.label, a.message.plain_text()))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn fifty_concurrent_claims_have_exactly_one_winner() {
    let db = TestDb::new().await;
    let app = TestApp::start(&db, Arc::new(clock())).await;
    let jane = person(&app, "Jane", Role::Engineer, None).await;
    let (_, handoff) = escalate(&app, &jane, "printer offline").await;
    let mut seniors = Vec::new();
    for i in 0..50 {
        seniors.push(person(&app, &format!("Senior{i:02}"), Role::Engineer, None).await);
    }
    let tasks: Vec<_> = seniors
        .into_iter()
        .map(|senior| {
            let engine = app.app.engine.clone();
            tokio::spawn(async move {
                (
                    senior.display_name.clone(),
                    engine.claim(&senior, handoff).await.unwrap(),
                )
            })
        })
        .collect();
    let mut winners = Vec::new();
    let mut losers = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            (name, ClaimView::Won(_)) => winners.push(name),
            (
                _,
                ClaimView::Lost {
                    by, by_you: false, ..
                },
            ) => losers.push(by),
            (name, other) => panic!("{name}: unexpected {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one winner on {}", db.backend());
    assert_eq!(losers.len(), 49);
    assert!(
        losers.iter().all(|by| *by == winners[0]),
        "every loser is told who won: {losers:?}"
    );
    let store = app.app.engine.store();
    let stored = store.get_handoff(jane.account_id, handoff).await.unwrap();
    assert_eq!(stored.claimed_by_name.as_deref(), Some(winners[0].as_str()));
    assert_eq!(stored.claim_count, 1);
    assert_eq!(
        store
            .claim_history(jane.account_id, handoff)
            .await
            .unwrap()
            .len(),
        1
    );
    let session = store
        .get_session(jane.account_id, stored.session_id)
        .await
        .unwrap();
    assert_eq!(
        session.status,
        SessionStatus::Active,
        "the claimed session is worked again"
    );
    assert_eq!(
        Some(session.owner_id),
        stored.claimed_by,
        "ownership moved to the claimer"
    );
}

#[tokio::test]
async fn a_viewer_cannot_claim_and_nothing_changes() {
    let db = TestDb::new().await;
    let app = TestApp::start(&db, Arc::new(clock())).await;
    let jane = person(&app, "Jane", Role::Engineer, None).await;
    let vic = person(&app, "Vic", Role::Viewer, None).await;
    let (_, handoff) = escalate(&app, &jane, "printer offline").await;
    let store = app.app.engine.store();
    let before = store.get_handoff(jane.account_id, handoff).await.unwrap();
    let jobs_before = store.pending_jobs().await.unwrap().len();
    match app.app.engine.claim(&vic, handoff).await.unwrap() {
        ClaimView::Refused(reason) => assert!(reason.contains("viewer role"), "{reason}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(
        store.get_handoff(jane.account_id, handoff).await.unwrap(),
        before
    );
    assert_eq!(store.pending_jobs().await.unwrap().len(), jobs_before);
    assert!(
        store
            .claim_history(jane.account_id, handoff)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn the_card_is_posted_then_updated_for_everyone_on_claim() {
    let db = TestDb::new().await;
    let app = TestApp::start(&db, Arc::new(clock())).await;
    let jane = person(&app, "Jane", Role::Engineer, None).await;
    let sam = person(&app, "Sam", Role::Engineer, None).await;
    let olga = person(&app, "Olga", Role::Owner, None).await;
    let (thread, handoff) = escalate(&app, &jane, "printer offline").await;
    assert_eq!(app.app.worker.run_due().await, 1, "one card delivery");
    let card = board_text(&app, "#escalations");
    assert!(card.contains("High escalation: printer offline"), "{card}");
    assert!(
        card.contains("Requested by: Jane") && card.contains("Steps tried: 1"),
        "{card}"
    );
    assert!(
        card.contains("Reason: user is a VIP printing payroll"),
        "{card}"
    );
    assert!(card.contains("AI may be wrong"), "{card}");
    assert!(
        card.ends_with("[Claim] [View handoff]"),
        "only two buttons: {card}"
    );

    let place = rf_core::effect::Place::from(&rf_core::domain::ChannelRef {
        platform: Platform::Console,
        workspace: "local".into(),
        channel: "#escalations".into(),
    });
    let won = app
        .app
        .engine
        .press(
            &sam,
            &place,
            rf_core::effect::Action::Claim { handoff },
            None,
        )
        .await
        .unwrap();
    let read_in = format!("{won:?}");
    for part in [
        "You claimed: printer offline",
        "What's been tried",
        "Assessment",
        "AI may be wrong",
        "Start here",
    ] {
        assert!(read_in.contains(part), "read-in lacks {part}: {read_in}");
    }
    let lost = app
        .app
        .engine
        .press(
            &olga,
            &place,
            rf_core::effect::Action::Claim { handoff },
            None,
        )
        .await
        .unwrap();
    assert!(
        format!("{lost:?}").contains("Already claimed by Sam 0 s ago"),
        "{lost:?}"
    );

    app.app.worker.run_due().await;
    let card = board_text(&app, "#escalations");
    assert!(
        card.contains("Claimed by Sam · 0 s after escalation"),
        "the card shows the claim: {card}"
    );
    assert!(!card.contains("[Claim]"), "{card}");
    let news = arrivals(&app);
    assert!(
        news.contains("Sam claimed this escalation"),
        "the thread is told: {news}"
    );
    assert!(
        news.contains("sam was added to the thread"),
        "the claimer is invited: {news}"
    );
    let timeline = app
        .app
        .engine
        .store()
        .timeline(
            jane.account_id,
            app.app
                .engine
                .store()
                .session_for_thread(jane.account_id, &thread)
                .await
                .unwrap()
                .unwrap()
                .id,
        )
        .await
        .unwrap();
    assert!(
        timeline
            .iter()
            .any(|s| matches!(s.kind, rf_core::session::StepKind::Claimed { .. }))
    );
}

async fn set_ladder(app: &TestApp, account: rf_core::ids::AccountId, steps: Vec<LadderStep>) {
    let store = app.app.engine.store();
    let mut team = store.get_team(account, app.app.team.id).await.unwrap();
    team.settings.ladder.steps = steps;
    team.settings.ladder.cap = 10;
    store
        .save_team_settings(account, team.id, &team.settings)
        .await
        .unwrap();
}

#[tokio::test]
async fn nobody_claims_so_the_ladder_climbs_and_stops_once_claimed() {
    let db = TestDb::new().await;
    let clock = clock();
    let sink = SmtpSink::start().await;
    let app = TestApp::start_with(&db, Arc::new(clock.clone()), |config| {
        config.smtp.host = "127.0.0.1".into();
        config.smtp.port = sink.address.port();
        config.smtp.tls = "none".into();
    })
    .await;
    let jane = person(&app, "Jane", Role::Engineer, None).await;
    let sam = person(&app, "Sam", Role::Engineer, Some("sam@acme.test")).await;
    let _olga = person(&app, "Olga", Role::Owner, Some("olga@acme.test")).await;
    let _vic = person(&app, "Vic", Role::Viewer, Some("vic@acme.test")).await;
    // The default ladder: repost at 5 min, DM seniors at 15 (working hours), e-mail seniors at 15
    // (off hours), e-mail owners at 30. High priority: not halved.
    let (_, handoff) = escalate(&app, &jane, "vpn down for the whole office").await;
    app.app.worker.run_due().await;
    arrivals(&app);

    clock.advance_millis(5 * 60_000);
    app.app.worker.run_due().await;
    let news = arrivals(&app);
    assert!(
        news.contains("@here still unclaimed after 5 min"),
        "the card is re-posted: {news}"
    );

    clock.advance_millis(10 * 60_000);
    app.app.worker.run_due().await;
    let news = arrivals(&app);
    assert!(
        news.contains("[private to sam]"),
        "seniors on shift get a DM: {news}"
    );
    assert!(news.contains("[private to olga]"), "{news}");
    assert!(
        !news.contains("private to jane"),
        "not the requester: {news}"
    );
    assert!(!news.contains("private to vic"), "not viewers: {news}");
    let store = app.app.engine.store();
    let deliveries = store.deliveries(jane.account_id, handoff).await.unwrap();
    let off_hours_emails: Vec<_> = deliveries
        .iter()
        .filter(|d| d.channel == DeliveryChannel::Email)
        .collect();
    assert!(
        !off_hours_emails.is_empty()
            && off_hours_emails
                .iter()
                .all(|d| d.status == DeliveryStatus::Suppressed),
        "off-hours e-mail is suppressed during working hours: {off_hours_emails:?}"
    );

    clock.advance_millis(15 * 60_000);
    app.app.worker.run_due().await;
    let mail = sink.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(mail.len(), 1, "only the owner is e-mailed: {mail:?}");
    assert_eq!(mail[0].to, ["olga@acme.test"]);

    // Claimed: nothing more is sent, even when later rungs come due.
    app.app.engine.claim(&sam, handoff).await.unwrap();
    set_ladder(
        &app,
        jane.account_id,
        vec![LadderStep::new(60, LadderAction::Repost, When::Always)],
    )
    .await;
    clock.advance_millis(60 * 60_000);
    app.app.worker.run_due().await;
    assert!(!arrivals(&app).contains("still unclaimed"));
    for delivery in store.deliveries(jane.account_id, handoff).await.unwrap() {
        assert_ne!(
            delivery.status,
            DeliveryStatus::Queued,
            "nothing left hanging: {delivery:?}"
        );
    }
}

#[tokio::test]
async fn the_smtp_server_receives_the_escalation_email_with_a_working_link() {
    let db = TestDb::new().await;
    let sink = SmtpSink::start().await;
    let clock = clock();
    let app = TestApp::start_with(&db, Arc::new(clock.clone()), |config| {
        config.smtp.host = "127.0.0.1".into();
        config.smtp.port = sink.address.port();
        config.smtp.tls = "none".into();
        config.smtp.from = "ResolutionFlow <rf@acme.test>".into();
    })
    .await;
    let jane = person(&app, "Jane", Role::Engineer, None).await;
    let _sam = person(&app, "Sam", Role::Engineer, Some("sam@acme.test")).await;
    set_ladder(
        &app,
        jane.account_id,
        vec![LadderStep::new(0, LadderAction::EmailSeniors, When::Always)],
    )
    .await;
    let (_, handoff) = escalate(&app, &jane, "password=Hunter2! Outlook keeps prompting").await;
    app.app.worker.run_due().await;
    let mail = sink.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(mail.len(), 1);
    let body = mail[0].decoded();
    assert_eq!(mail[0].to, ["sam@acme.test"]);
    assert_eq!(mail[0].from, "rf@acme.test");
    assert!(body.contains("Subject: [High] Escalation:"), "{body}");
    assert!(
        body.contains("Reason: user is a VIP printing payroll"),
        "{body}"
    );
    assert!(body.contains("Priority: High"), "{body}");
    assert!(!body.contains("Hunter2"), "the e-mail is redacted: {body}");
    let link = body
        .split_whitespace()
        .find(|w| w.contains("/auth/link?token="))
        .expect("a link in the e-mail")
        .trim_end_matches(['.', ',', '"', '<', '>'])
        .to_owned();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let opened = client.get(&link).send().await.unwrap();
    assert_eq!(opened.status(), 303, "the link works");
    let cookie = opened.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let location = opened.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(location, format!("/handoffs/{handoff}"));
    let page = client
        .get(format!("{}{location}", app.base_url))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    for section in ["What's been tried", "Assessment", "Start here", "Claim"] {
        assert!(html.contains(section), "handoff page lacks {section}");
    }
    let delivery = app
        .app
        .engine
        .store()
        .deliveries(jane.account_id, handoff)
        .await
        .unwrap();
    assert!(
        delivery
            .iter()
            .any(|d| d.channel == DeliveryChannel::Email && d.status == DeliveryStatus::Sent)
    );
}

#[tokio::test]
async fn an_idle_claim_is_reminded_then_released_unless_acknowledged() {
    let db = TestDb::new().await;
    let clock = clock();
    let app = TestApp::start(&db, Arc::new(clock.clone())).await;
    let jane = person(&app, "Jane", Role::Engineer, None).await;
    let sam = person(&app, "Sam", Role::Engineer, None).await;
    let olga = person(&app, "Olga", Role::Engineer, None).await;
    set_ladder(&app, jane.account_id, Vec::new()).await;
    let (_, handoff) = escalate(&app, &jane, "printer offline").await;
    app.app.engine.claim(&sam, handoff).await.unwrap();
    app.app.worker.run_due().await;
    arrivals(&app);

    clock.advance_millis(10 * 60_000);
    app.app.worker.run_due().await;
    let news = arrivals(&app);
    assert!(
        news.contains("[private to sam]") && news.contains("nothing has been recorded"),
        "{news}"
    );

    clock.advance_millis(10 * 60_000);
    app.app.worker.run_due().await;
    let store = app.app.engine.store();
    let released = store.get_handoff(jane.account_id, handoff).await.unwrap();
    assert_eq!(released.claimed_by, None);
    assert_eq!(released.release_count, 1);
    let card = board_text(&app, "#escalations");
    assert!(
        card.contains("Released back to the queue"),
        "the card says so: {card}"
    );
    assert!(card.contains("[Claim]"), "{card}");
    assert!(arrivals(&app).contains("Sam's claim lapsed"));
    let history = store.claim_history(jane.account_id, handoff).await.unwrap();
    assert_eq!(history.len(), 1);
    assert!(history[0].released_at.is_some());

    // Olga re-claims and says she is on it: no release this time.
    assert!(matches!(
        app.app.engine.claim(&olga, handoff).await.unwrap(),
        ClaimView::Won(_)
    ));
    let place = rf_core::effect::Place::from(&released.thread);
    let ack = app
        .app
        .engine
        .press(
            &olga,
            &place,
            rf_core::effect::Action::Acknowledge { handoff },
            None,
        )
        .await
        .unwrap();
    assert!(format!("{ack:?}").contains("stays yours"));
    clock.advance_millis(30 * 60_000);
    app.app.worker.run_due().await;
    let kept = store.get_handoff(jane.account_id, handoff).await.unwrap();
    assert_eq!(kept.claimed_by_name.as_deref(), Some("Olga"));
    assert_eq!(kept.claim_count, 2);
    let metrics = app
        .app
        .engine
        .metrics(jane.account_id, rf_core::metrics::Period::Days7)
        .await
        .unwrap();
    assert_eq!((metrics.releases, metrics.reclaims), (1, 1));
}

#[tokio::test]
async fn a_claimer_who_acts_is_never_reminded() {
    let db = TestDb::new().await;
    let clock = clock();
    let app = TestApp::start(&db, Arc::new(clock.clone())).await;
    let jane = person(&app, "Jane", Role::Engineer, None).await;
    let sam = person(&app, "Sam", Role::Engineer, None).await;
    set_ladder(&app, jane.account_id, Vec::new()).await;
    let (thread, handoff) = escalate(&app, &jane, "printer offline").await;
    app.app.engine.claim(&sam, handoff).await.unwrap();
    clock.advance_millis(60_000);
    app.app
        .engine
        .handle(
            &sam,
            &thread,
            Input::Text("checked the spooler on PRINT01".into()),
        )
        .await
        .unwrap();
    clock.advance_millis(30 * 60_000);
    app.app.worker.run_due().await;
    assert!(!arrivals(&app).contains("private to sam"));
    assert_eq!(
        app.app
            .engine
            .store()
            .get_handoff(jane.account_id, handoff)
            .await
            .unwrap()
            .claimed_by,
        Some(sam.user_id)
    );
}

#[tokio::test]
async fn resolving_closes_the_escalation_and_its_card() {
    let db = TestDb::new().await;
    let app = TestApp::start(&db, Arc::new(clock())).await;
    let jane = person(&app, "Jane", Role::Engineer, None).await;
    let sam = person(&app, "Sam", Role::Engineer, None).await;
    let (thread, handoff) = escalate(&app, &jane, "printer offline").await;
    app.app.worker.run_due().await;
    app.app.engine.claim(&sam, handoff).await.unwrap();
    app.app
        .engine
        .handle(
            &sam,
            &thread,
            Input::Text("resolve replaced the toner".into()),
        )
        .await
        .unwrap();
    app.app.worker.run_due().await;
    let store = app.app.engine.store();
    assert!(
        store
            .get_handoff(jane.account_id, handoff)
            .await
            .unwrap()
            .closed_at
            .is_some()
    );
    assert!(
        board_text(&app, "#escalations").contains("Closed"),
        "{}",
        board_text(&app, "#escalations")
    );
    let late = app.app.engine.claim(&jane, handoff).await.unwrap();
    assert!(
        matches!(late, ClaimView::Lost { .. } | ClaimView::Refused(_)),
        "{late:?}"
    );
    let export = rf_core::engine::export_session(
        store.as_ref(),
        &rf_core::redact::Redactor::new(),
        jane.account_id,
        store
            .session_for_thread(jane.account_id, &thread)
            .await
            .unwrap()
            .unwrap()
            .id,
        rf_core::effect::ExportFormat::Markdown,
    )
    .await
    .unwrap();
    assert!(
        export.content.contains("escalated to a senior"),
        "{}",
        export.content
    );
    assert!(
        export.content.contains("Sam claimed the escalation"),
        "{}",
        export.content
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_racing_a_resolve_never_deadlocks() {
    let db = TestDb::new().await;
    let app = TestApp::start(&db, Arc::new(clock())).await;
    let jane = person(&app, "Jane", Role::Engineer, None).await;
    let sam = person(&app, "Sam", Role::Engineer, None).await;
    for round in 0..20 {
        let (thread, handoff) = escalate(&app, &jane, &format!("race {round}")).await;
        let (engine_a, engine_b) = (app.app.engine.clone(), app.app.engine.clone());
        let (sam, jane_for_resolve, thread_b) = (sam.clone(), jane.clone(), thread.clone());
        let claim = tokio::spawn(async move { engine_a.claim(&sam, handoff).await });
        let resolve = tokio::spawn(async move {
            engine_b
                .handle(
                    &jane_for_resolve,
                    &thread_b,
                    Input::Text("resolve fixed it myself".into()),
                )
                .await
        });
        claim
            .await
            .unwrap()
            .expect("the claim completes without a database error");
        resolve
            .await
            .unwrap()
            .expect("the resolve completes without a database error");
        let store = app.app.engine.store();
        let h = store.get_handoff(jane.account_id, handoff).await.unwrap();
        assert!(
            h.closed_at.is_some(),
            "round {round}: resolved sessions close their escalation"
        );
    }
}
