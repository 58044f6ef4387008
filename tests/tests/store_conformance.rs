//! The storage conformance suite. Every test runs against the backend this run is for (SQLite by
//! default; PostgreSQL when `RF_TEST_DATABASE_URL` is set), so one suite covers both.

use rf_core::StoreError;
use rf_core::domain::{ChatIdentity, Platform, Role, RoleAssignment, ThreadKey};
use rf_core::flow::{FlowQuery, FlowSource, SaveOutcome, parse_flow_yaml};
use rf_core::ids::{LinkId, SessionId};
use rf_core::links::{LinkScope, ShareLink};
use rf_core::session::{
    Conversation, FactSource, NewFact, NewSession, NewStep, SessionChange, SessionFilter,
    SessionStatus, StepKind,
};
use rf_core::time::Timestamp;
use rf_tests::{TestDb, account, account_with_samples, sample_flows};
use std::sync::Arc;

const T0: Timestamp = Timestamp::from_millis(1_795_000_000_000);

fn identity(id: &str, name: &str) -> ChatIdentity {
    ChatIdentity {
        platform: Platform::Console,
        platform_user_id: id.into(),
        display_name: name.into(),
        email: None,
    }
}

/// Jane, an engineer of the account.
async fn jane(
    store: &dyn rf_core::Store,
    account: &rf_core::domain::Account,
    team: &rf_core::domain::Team,
) -> rf_core::domain::User {
    store
        .upsert_user(
            account.id,
            team.id,
            &identity("U1", "Jane"),
            RoleAssignment::IfNew(Role::Engineer),
            T0,
        )
        .await
        .unwrap()
}

fn thread(name: &str) -> ThreadKey {
    ThreadKey {
        platform: Platform::Console,
        workspace: "local".into(),
        channel: "#helpdesk".into(),
        thread: name.into(),
    }
}

#[tokio::test]
async fn installations_map_to_one_account_each() {
    let db = TestDb::new().await;
    let store = db.port();
    let install = rf_core::domain::InstallationRef {
        platform: Platform::Slack,
        external_id: "T0001".into(),
    };
    let (first, team) = store
        .ensure_installation(&install, "Acme MSP", "Service Desk", T0)
        .await
        .unwrap();
    let (again, team_again) = store
        .ensure_installation(&install, "Other name", "Other", T0)
        .await
        .unwrap();
    assert_eq!(first.id, again.id);
    assert_eq!(team.id, team_again.id);
    assert_eq!(again.name, "Acme MSP");
    assert_eq!(
        store.find_installation(&install).await.unwrap(),
        Some((first.id, team.id))
    );
    let (other, _) = account(store.as_ref(), "Beta IT").await.unwrap();
    assert_ne!(other.id, first.id);
}

#[tokio::test]
async fn upserting_users_respects_the_role_assignment() {
    let db = TestDb::new().await;
    let store = db.port();
    let (acct, team) = account(store.as_ref(), "Acme").await.unwrap();
    let jane = jane(store.as_ref(), &acct, &team).await;
    assert_eq!(jane.role, Role::Engineer);
    let promoted = store
        .upsert_user(
            acct.id,
            team.id,
            &identity("U1", "Jane D."),
            RoleAssignment::Always(Role::Admin),
            T0,
        )
        .await
        .unwrap();
    assert_eq!(
        (promoted.id, promoted.role, promoted.display_name.as_str()),
        (jane.id, Role::Admin, "Jane D.")
    );
    let seen_again = store
        .upsert_user(
            acct.id,
            team.id,
            &identity("U1", "Jane D."),
            RoleAssignment::IfNew(Role::Viewer),
            T0,
        )
        .await
        .unwrap();
    assert_eq!(
        seen_again.role,
        Role::Admin,
        "IfNew must not change an existing user's role"
    );
    let found = store
        .find_user(acct.id, Platform::Console, "U1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, jane.id);
    let demoted = store
        .set_role(acct.id, jane.id, Role::Viewer)
        .await
        .unwrap();
    assert_eq!(demoted.role, Role::Viewer);
    assert_eq!(store.list_users(acct.id).await.unwrap().len(), 1);
}

#[tokio::test]
async fn other_accounts_see_nothing() {
    let db = TestDb::new().await;
    let store = db.port();
    let (acme, acme_team) = account_with_samples(store.as_ref(), "Acme").await.unwrap();
    let (beta, _) = account(store.as_ref(), "Beta").await.unwrap();
    let jane = store
        .upsert_user(
            acme.id,
            acme_team.id,
            &identity("U1", "Jane"),
            RoleAssignment::IfNew(Role::Engineer),
            T0,
        )
        .await
        .unwrap();
    let session = store
        .create_session(new_session(&acme, &acme_team, jane.id, "t1"), T0)
        .await
        .unwrap();

    assert!(matches!(
        store.get_session(beta.id, session.id).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.get_user(beta.id, jane.id).await,
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(
        store
            .session_for_thread(beta.id, &thread("t1"))
            .await
            .unwrap(),
        None
    );
    assert!(
        store
            .timeline(beta.id, session.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .list_sessions(beta.id, &SessionFilter::default())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.list_flows(beta.id).await.unwrap().is_empty());
    let query = FlowQuery::from_problem("printer offline");
    assert!(
        store
            .search_flows(beta.id, &query, 5)
            .await
            .unwrap()
            .is_empty()
    );
    let flow = store.list_flows(acme.id).await.unwrap()[0].id;
    assert!(matches!(
        store.get_flow(beta.id, flow).await,
        Err(StoreError::NotFound { .. })
    ));
    let stale = store
        .commit_session(
            beta.id,
            session.id,
            0,
            SessionChange::default().step(NewStep::bot(StepKind::Resumed)),
            T0,
        )
        .await;
    assert!(
        matches!(stale, Err(StoreError::NotFound { .. })),
        "{stale:?}"
    );
}

fn new_session(
    account: &rf_core::domain::Account,
    team: &rf_core::domain::Team,
    owner: rf_core::ids::UserId,
    thread_name: &str,
) -> NewSession {
    NewSession {
        account_id: account.id,
        team_id: team.id,
        thread: thread(thread_name),
        owner_id: owner,
        problem: "printer offline".into(),
        conversation: Conversation::FreeForm,
        status: SessionStatus::Active,
        steps: vec![NewStep::by(
            owner,
            StepKind::SessionStarted {
                problem: "printer offline".into(),
            },
        )],
    }
}

#[tokio::test]
async fn saving_a_flow_creates_updates_or_leaves_it() {
    let db = TestDb::new().await;
    let store = db.port();
    let (acct, _) = account(store.as_ref(), "Acme").await.unwrap();
    let flow = sample_flows().into_iter().next().unwrap();
    let (created, outcome) = store
        .save_flow(acct.id, &flow, FlowSource::Imported, T0)
        .await
        .unwrap();
    assert_eq!((outcome, created.version), (SaveOutcome::Created, 1));
    let (same, outcome) = store
        .save_flow(acct.id, &flow, FlowSource::Imported, T0)
        .await
        .unwrap();
    assert_eq!(
        (outcome, same.version, same.id),
        (SaveOutcome::Unchanged, 1, created.id)
    );
    let mut edited = flow.clone();
    edited.meta.title.push_str(" (edited)");
    let (updated, outcome) = store
        .save_flow(acct.id, &edited, FlowSource::Authored, T0)
        .await
        .unwrap();
    assert_eq!(
        (outcome, updated.version, updated.id),
        (SaveOutcome::Updated, 2, created.id)
    );
    let record = store.get_flow(acct.id, created.id).await.unwrap();
    assert_eq!(record.flow, edited);
    let by_slug = store
        .get_flow_by_slug(acct.id, &flow.meta.slug)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_slug.summary.source, FlowSource::Authored);
    assert!(
        store
            .get_flow_by_slug(acct.id, "no-such-flow")
            .await
            .unwrap()
            .is_none()
    );
}

/// Plain-language problems, the way technicians type them, and the flow that should come first.
const PROBLEMS: &[(&str, &str)] = &[
    (
        "Outlook keeps asking for my password",
        "outlook-password-prompt",
    ),
    ("printer offline", "printer-offline"),
    ("can't print to the office printer", "printer-offline"),
    ("VPN won't connect from home", "vpn-wont-connect"),
    (
        "user locked out of their account again",
        "ad-account-lockout",
    ),
    ("my computer is really slow", "slow-pc"),
    (
        "websites won't load but ping to 8.8.8.8 works",
        "dns-resolution",
    ),
    ("S: drive is gone after login", "mapped-drive-missing"),
    ("lost phone, need to reset MFA", "mfa-reset"),
    (
        "new hire starting Monday needs accounts and a laptop",
        "new-user-onboarding",
    ),
    (
        "employee leaving, disable their account",
        "user-offboarding",
    ),
    ("laptop can't connect to wifi", "wifi-cant-connect"),
];

#[tokio::test]
async fn full_text_search_ranks_the_right_flow_first() {
    let db = TestDb::new().await;
    let store = db.port();
    let (acct, _) = account_with_samples(store.as_ref(), "Acme").await.unwrap();
    let mut misses = Vec::new();
    for (problem, expected) in PROBLEMS {
        let hits = store
            .search_flows(acct.id, &FlowQuery::from_problem(problem), 3)
            .await
            .unwrap();
        if hits.first().map(|h| h.summary.slug.as_str()) != Some(*expected) {
            misses.push(format!(
                "{problem:?}: expected {expected}, got {:?}",
                hits.iter().map(|h| &h.summary.slug).collect::<Vec<_>>()
            ));
        }
        assert!(
            hits.windows(2).all(|w| w[0].score >= w[1].score),
            "hits are not ranked: {hits:?}"
        );
    }
    assert!(
        misses.is_empty(),
        "{} on {}:\n{}",
        misses.len(),
        db.backend(),
        misses.join("\n")
    );
}

#[tokio::test]
async fn search_ignores_drafts_and_survives_hostile_text() {
    let db = TestDb::new().await;
    let store = db.port();
    let (acct, _) = account(store.as_ref(), "Acme").await.unwrap();
    let draft = parse_flow_yaml(
        "draft.yaml",
        "id: draft-printer\ntitle: Printer draft\nkind: procedural\nstatus: draft\nsymptoms: [printer offline]\nsections:\n  - title: S\n    steps: [{text: x}]\n",
    )
    .unwrap();
    store
        .save_flow(acct.id, &draft, FlowSource::Authored, T0)
        .await
        .unwrap();
    assert!(
        store
            .search_flows(acct.id, &FlowQuery::from_problem("printer offline"), 5)
            .await
            .unwrap()
            .is_empty()
    );
    let hostile = FlowQuery::from_problem(r#"printer" OR 1=1; -- NEAR(a b) 'x' :* & | !"#);
    assert!(store.search_flows(acct.id, &hostile, 5).await.is_ok());
    assert!(
        store
            .search_flows(acct.id, &FlowQuery::default(), 5)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn sessions_commit_with_optimistic_locking() {
    let db = TestDb::new().await;
    let store = db.port();
    let (acct, team) = account(store.as_ref(), "Acme").await.unwrap();
    let jane = jane(store.as_ref(), &acct, &team).await;
    let session = store
        .create_session(new_session(&acct, &team, jane.id, "t1"), T0)
        .await
        .unwrap();
    assert_eq!((session.lock_version, session.state_version), (0, 0));

    let later = T0.plus_millis(5_000);
    let change = SessionChange {
        status: Some(SessionStatus::Resolved),
        resolution: Some("Restarted the spooler".into()),
        facts: vec![NewFact {
            text: "Printer IP is 10.0.20.15".into(),
            source: FactSource::Technician,
            author: Some(jane.id),
        }],
        ..SessionChange::default()
    }
    .step(NewStep::by(
        jane.id,
        StepKind::FactAdded {
            text: "Printer IP is 10.0.20.15".into(),
        },
    ))
    .step(NewStep::by(
        jane.id,
        StepKind::Resolved {
            summary: "Restarted the spooler".into(),
        },
    ));
    let committed = store
        .commit_session(acct.id, session.id, 0, change.clone(), later)
        .await
        .unwrap();
    assert_eq!(committed.lock_version, 1);
    assert_eq!(committed.state_version, 1, "a new fact bumps state_version");
    assert_eq!(committed.status, SessionStatus::Resolved);
    assert_eq!(committed.resolved_at, Some(later));

    // A writer that read version 0 loses, and writes nothing.
    let stale = store
        .commit_session(acct.id, session.id, 0, change, later)
        .await;
    assert!(
        matches!(stale, Err(StoreError::Conflict { .. })),
        "{stale:?}"
    );

    let reloaded = store.get_session(acct.id, session.id).await.unwrap();
    assert_eq!(reloaded, committed);
    let timeline = store.timeline(acct.id, session.id).await.unwrap();
    let seqs: Vec<i64> = timeline.iter().map(|s| s.seq).collect();
    assert_eq!(seqs, [1, 2, 3]);
    assert_eq!(timeline[1].actor_name.as_deref(), Some("Jane"));
    assert!(matches!(timeline[2].kind, StepKind::Resolved { .. }));
    assert_eq!(store.facts(acct.id, session.id).await.unwrap().len(), 1);
}

#[tokio::test]
async fn concurrent_writers_at_one_version_have_exactly_one_winner() {
    let db = TestDb::new().await;
    let store = db.port();
    let (acct, team) = account(store.as_ref(), "Acme").await.unwrap();
    let jane = jane(store.as_ref(), &acct, &team).await;
    let session = store
        .create_session(new_session(&acct, &team, jane.id, "t1"), T0)
        .await
        .unwrap();
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let change = SessionChange::default().step(NewStep::by(
                    jane.id,
                    StepKind::Message {
                        text: format!("writer {i}"),
                    },
                ));
                store
                    .commit_session(acct.id, session.id, 0, change, T0)
                    .await
            })
        })
        .collect();
    let mut wins = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => wins += 1,
            Err(StoreError::Conflict { .. }) => {}
            Err(other) => panic!("unexpected error: {other}"),
        }
    }
    assert_eq!(wins, 1);
    assert_eq!(store.timeline(acct.id, session.id).await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_thread_holds_one_session() {
    let db = TestDb::new().await;
    let store = db.port();
    let (acct, team) = account(store.as_ref(), "Acme").await.unwrap();
    let jane = jane(store.as_ref(), &acct, &team).await;
    let first = store
        .create_session(new_session(&acct, &team, jane.id, "t1"), T0)
        .await
        .unwrap();
    let second = store
        .create_session(new_session(&acct, &team, jane.id, "t1"), T0)
        .await;
    assert!(
        matches!(second, Err(StoreError::Conflict { .. })),
        "{second:?}"
    );
    let found = store
        .session_for_thread(acct.id, &thread("t1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, first.id);
    let listed = store
        .list_sessions(
            acct.id,
            &SessionFilter {
                status: Some(SessionStatus::Active),
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    let none = store
        .list_sessions(
            acct.id,
            &SessionFilter {
                status: Some(SessionStatus::Resolved),
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert!(none.is_empty());
    assert!(matches!(
        store.get_session(acct.id, SessionId::new()).await,
        Err(StoreError::NotFound { what: "session" })
    ));
}

#[tokio::test]
async fn share_links_are_scoped_and_revocable() {
    let db = TestDb::new().await;
    let store = db.port();
    let (acct, team) = account(store.as_ref(), "Acme").await.unwrap();
    let (other, _) = account(store.as_ref(), "Beta").await.unwrap();
    let jane = jane(store.as_ref(), &acct, &team).await;
    let link = ShareLink {
        id: LinkId::new(),
        account_id: acct.id,
        user_id: jane.id,
        role: Role::Engineer,
        scope: LinkScope::Session(SessionId::new()),
        created_at: T0,
        expires_at: T0.plus_millis(3_600_000),
        revoked_at: None,
    };
    store.create_link(&link).await.unwrap();
    assert_eq!(store.get_link(acct.id, link.id).await.unwrap(), link);
    assert!(matches!(
        store.get_link(other.id, link.id).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.revoke_link(other.id, link.id, T0).await,
        Err(StoreError::NotFound { .. })
    ));
    store
        .revoke_link(acct.id, link.id, T0.plus_millis(1))
        .await
        .unwrap();
    assert_eq!(
        store.get_link(acct.id, link.id).await.unwrap().revoked_at,
        Some(T0.plus_millis(1))
    );
}

#[tokio::test]
async fn inbound_deliveries_are_recorded_once() {
    let db = TestDb::new().await;
    let store = db.port();
    let account = rf_core::ids::AccountId::new();
    let job = |n: u32| {
        rf_core::jobs::NewJob::now(
            account,
            rf_core::jobs::Job::Inbound {
                platform: rf_core::domain::Platform::Slack,
                lane: "slack:T1:C1".to_owned(),
                event: serde_json::json!({ "n": n }),
            },
            T0,
        )
    };
    let keys = |event: &str, ts: &str| vec![format!("event:{event}"), format!("message:C1:{ts}")];
    assert!(
        store
            .accept_inbound("slack", &keys("Ev0001", "1.1"), job(1), T0)
            .await
            .unwrap()
    );
    // A retry of the same event, and a redelivery of the same message under a new event id.
    assert!(
        !store
            .accept_inbound("slack", &keys("Ev0001", "1.1"), job(2), T0)
            .await
            .unwrap()
    );
    assert!(
        !store
            .accept_inbound("slack", &keys("Ev0002", "1.1"), job(3), T0)
            .await
            .unwrap()
    );
    assert!(
        store
            .accept_inbound("discord", &keys("Ev0001", "1.1"), job(4), T0)
            .await
            .unwrap()
    );
    let jobs = store.claim_jobs("w", T0, 1000, 10).await.unwrap();
    let seen: Vec<_> = jobs
        .iter()
        .map(|j| match &j.job {
            rf_core::jobs::Job::Inbound { event, .. } => event["n"].as_u64().unwrap(),
            other => panic!("unexpected job {other:?}"),
        })
        .collect();
    assert_eq!(
        seen,
        vec![1, 4],
        "only first deliveries have jobs, in order"
    );
    // Old keys are forgotten: the same event is new again.
    assert_eq!(store.purge_inbound(T0.plus_millis(1)).await.unwrap(), 4);
    assert!(
        store
            .accept_inbound("slack", &keys("Ev0001", "1.1"), job(5), T0)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn a_lane_runs_one_job_at_a_time_and_live_leases_are_never_taken_over() {
    use rf_core::jobs::{Job, JobResult, NewJob};
    let db = TestDb::new().await;
    let store = db.port();
    let account = rf_core::ids::AccountId::new();
    let job = |lane: &str, n: u32| {
        NewJob::now(
            account,
            Job::Inbound {
                platform: Platform::Slack,
                lane: lane.to_owned(),
                event: serde_json::json!({ "n": n }),
            },
            T0,
        )
    };
    let numbers = |jobs: &[rf_core::jobs::JobRecord]| -> Vec<u64> {
        jobs.iter()
            .map(|j| match &j.job {
                Job::Inbound { event, .. } => event["n"].as_u64().unwrap(),
                other => panic!("unexpected job {other:?}"),
            })
            .collect()
    };
    for (lane, n) in [("channel:A", 1), ("channel:A", 2), ("channel:B", 3)] {
        store.enqueue(vec![job(lane, n)], T0).await.unwrap();
    }
    // One worker takes lane A's first job; another is not given lane A's second while it runs.
    let first = store.claim_jobs("w1", T0, 1_000, 1).await.unwrap();
    assert_eq!(numbers(&first), vec![1]);
    let other = store.claim_jobs("w2", T0, 1_000, 10).await.unwrap();
    assert_eq!(numbers(&other), vec![3], "lane A is busy; lane B is not");
    store
        .finish_job(other[0].id, "w2", &JobResult::Done, T0)
        .await
        .unwrap();
    // The first job outlives its lease, but its worker renews it: nobody takes it over.
    let ids: Vec<uuid::Uuid> = first.iter().chain(&other).map(|j| j.id).collect();
    assert_eq!(
        store
            .renew_job_leases("w1", &ids, T0.plus_millis(5_000), T0.plus_millis(900))
            .await
            .unwrap(),
        1,
        "only the jobs w1 still runs (the other is w2's and done)"
    );
    assert!(
        store
            .claim_jobs("w2", T0.plus_millis(1_500), 1_000, 10)
            .await
            .unwrap()
            .is_empty(),
        "a renewed lease is live, and its lane waits"
    );
    // Done: the lane's next job is free.
    store
        .finish_job(first[0].id, "w1", &JobResult::Done, T0.plus_millis(2_000))
        .await
        .unwrap();
    let second = store
        .claim_jobs("w2", T0.plus_millis(2_000), 1_000, 10)
        .await
        .unwrap();
    assert_eq!(numbers(&second), vec![2]);
    // A worker that dies stops renewing: once its lease runs out, another takes the job over.
    assert!(
        store
            .claim_jobs("w3", T0.plus_millis(2_500), 1_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let taken_over = store
        .claim_jobs("w3", T0.plus_millis(3_001), 1_000, 10)
        .await
        .unwrap();
    assert_eq!(numbers(&taken_over), vec![2]);
    assert_eq!(taken_over[0].attempts, 2);
}

#[tokio::test]
async fn installations_attach_disable_and_keep_sealed_secrets() {
    let db = TestDb::new().await;
    let store = db.port();
    let (acct, team) = rf_tests::account(store.as_ref(), "Acme").await.unwrap();
    let slack = rf_core::domain::InstallationRef {
        platform: rf_core::domain::Platform::Slack,
        external_id: "T777".into(),
    };
    assert!(store.find_installation(&slack).await.unwrap().is_none());
    store
        .attach_installation(&slack, acct.id, team.id, T0)
        .await
        .unwrap();
    assert_eq!(
        store.find_installation(&slack).await.unwrap(),
        Some((acct.id, team.id))
    );
    store
        .save_installation_secret(&slack, "bot_token", "v1:k:one", T0)
        .await
        .unwrap();
    store
        .save_installation_secret(&slack, "bot_token", "v1:k:two", T0)
        .await
        .unwrap();
    assert_eq!(
        store
            .installation_secret(&slack, "bot_token")
            .await
            .unwrap()
            .as_deref(),
        Some("v1:k:two")
    );
    // Uninstalled: not found, and its secret is not handed out.
    assert!(store.disable_installation(&slack, T0).await.unwrap());
    assert!(!store.disable_installation(&slack, T0).await.unwrap());
    assert!(store.find_installation(&slack).await.unwrap().is_none());
    assert!(
        store
            .installation_secret(&slack, "bot_token")
            .await
            .unwrap()
            .is_none()
    );
    // Re-installed into the same account; another account cannot take it over.
    store
        .attach_installation(&slack, acct.id, team.id, T0)
        .await
        .unwrap();
    assert!(store.find_installation(&slack).await.unwrap().is_some());
    let (other, other_team) = rf_tests::account(store.as_ref(), "Other").await.unwrap();
    store
        .attach_installation(&slack, other.id, other_team.id, T0)
        .await
        .unwrap();
    assert_eq!(
        store.find_installation(&slack).await.unwrap(),
        Some((acct.id, team.id))
    );
}

#[tokio::test]
async fn psa_connections_mappings_and_the_post_log() {
    use rf_core::jobs::{Job, NewJob};
    use rf_core::psa::{
        MappingSource, Member, MemberMapping, NewPsaNote, NoteOutcome, NoteStatus, Provider,
        PsaConnection,
    };
    let db = TestDb::new().await;
    let store = db.port();
    let (acct, team) = account(store.as_ref(), "Acme").await.unwrap();
    let (other, other_team) = account(store.as_ref(), "Other").await.unwrap();
    let jane = jane(store.as_ref(), &acct, &team).await;

    // One connection per team; saving again replaces it and keeps its id.
    let connection = PsaConnection {
        id: uuid::Uuid::now_v7(),
        account_id: acct.id,
        team_id: team.id,
        provider: Provider::ConnectWise,
        settings: serde_json::json!({"site": "na.myconnectwise.net", "company": "acme"}),
        sealed_credentials: "v1:abcd:first".into(),
        created_at: T0,
        updated_at: T0,
    };
    store.save_psa_connection(&connection).await.unwrap();
    let replaced = PsaConnection {
        id: uuid::Uuid::now_v7(),
        provider: Provider::Halo,
        sealed_credentials: "v1:abcd:second".into(),
        updated_at: T0.plus_millis(1),
        ..connection.clone()
    };
    store.save_psa_connection(&replaced).await.unwrap();
    let stored = store
        .psa_connection(acct.id, team.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.id, connection.id, "the id is kept");
    assert_eq!(stored.provider, Provider::Halo);
    assert_eq!(stored.sealed_credentials, "v1:abcd:second");
    assert!(
        store
            .psa_connection(other.id, other_team.id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        !store
            .reseal_psa_credentials(stored.id, "v1:abcd:first", "v1:ef01:x")
            .await
            .unwrap(),
        "a stale expectation changes nothing"
    );
    assert!(
        store
            .reseal_psa_credentials(stored.id, "v1:abcd:second", "v1:ef01:x")
            .await
            .unwrap()
    );
    assert_eq!(store.all_psa_connections().await.unwrap().len(), 1);

    // A manual mapping is never replaced by an e-mail match; another account cannot write one.
    let mapping = |id: &str, source| MemberMapping {
        connection_id: stored.id,
        user_id: jane.id,
        member: Member {
            id: id.into(),
            name: "Jane Doe".into(),
            email: Some("jane@msp.example".into()),
        },
        source,
        updated_at: T0,
    };
    store
        .save_psa_member(acct.id, &mapping("jdoe", MappingSource::Manual))
        .await
        .unwrap();
    store
        .save_psa_member(acct.id, &mapping("jane.d", MappingSource::Email))
        .await
        .unwrap();
    store
        .save_psa_member(other.id, &mapping("intruder", MappingSource::Manual))
        .await
        .unwrap();
    let found = store
        .psa_member(acct.id, stored.id, jane.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (found.member.id.as_str(), found.source),
        ("jdoe", MappingSource::Manual)
    );
    assert!(
        store
            .psa_member(other.id, stored.id, jane.id)
            .await
            .unwrap()
            .is_none()
    );

    // The same note queued twice is one row and one job.
    let session = store
        .create_session(new_session(&acct, &team, jane.id, "psa"), T0)
        .await
        .unwrap();
    let queue = |lock_version| {
        let note = uuid::Uuid::now_v7();
        let change = SessionChange {
            psa_note: Some(NewPsaNote {
                id: note,
                idempotency_key: format!("{}:12345:v1", session.id),
                ticket: "12345".into(),
                version: "v1".into(),
                body: "Checked the cable.".into(),
                requested_by: jane.id,
            }),
            jobs: vec![NewJob::now(
                acct.id,
                Job::PsaNote {
                    session: session.id,
                    note,
                },
                T0,
            )],
            ..SessionChange::default()
        };
        let store = store.clone();
        async move {
            store
                .commit_session(acct.id, session.id, lock_version, change, T0)
                .await
                .unwrap()
        }
    };
    let after = queue(session.lock_version).await;
    queue(after.lock_version).await;
    let log = store.psa_notes(acct.id, session.id).await.unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].status, NoteStatus::Queued);
    let jobs = store.claim_jobs("w", T0, 60_000, 10).await.unwrap();
    assert_eq!(
        jobs.iter()
            .filter(|j| matches!(j.job, Job::PsaNote { .. }))
            .count(),
        1
    );

    // A note ends once: a later outcome changes nothing and adds no jobs.
    let posted = NoteOutcome::Posted {
        psa_note_id: "777".into(),
        member: Some("jdoe".into()),
    };
    assert!(
        store
            .finish_psa_note(acct.id, log[0].id, &posted, &[], T0.plus_millis(9))
            .await
            .unwrap()
    );
    let failed = NoteOutcome::Failed {
        error: "late".into(),
    };
    assert!(
        !store
            .finish_psa_note(acct.id, log[0].id, &failed, &[], T0)
            .await
            .unwrap()
    );
    let note = store.psa_note(acct.id, log[0].id).await.unwrap();
    assert_eq!(note.status, NoteStatus::Posted);
    assert_eq!(note.psa_note_id.as_deref(), Some("777"));
    assert_eq!(note.member.as_deref(), Some("jdoe"));
    assert!(matches!(
        store.psa_note(other.id, log[0].id).await,
        Err(StoreError::NotFound { .. })
    ));

    // Disconnecting removes the mapping too.
    assert!(store.delete_psa_connection(acct.id, team.id).await.unwrap());
    assert!(!store.delete_psa_connection(acct.id, team.id).await.unwrap());
}

#[tokio::test]
async fn suggested_fixes_supersede_and_proposals_are_reviewed_once() {
    use rf_core::ai::{FixChange, FixDecision, FixProposal};
    use rf_core::flow::proposal::{
        NewFlowProposal, ProposalOrigin, ProposalReview, ProposalStatus,
    };
    let db = TestDb::new().await;
    let store = db.port();
    let (acme, team) = account(store.as_ref(), "acme").await.unwrap();
    let (other, _) = account(store.as_ref(), "other").await.unwrap();
    let jane = jane(store.as_ref(), &acme, &team).await;
    let session = rf_tests::resolved_session(
        store.as_ref(),
        &team,
        jane.id,
        "t1",
        "VPN drops",
        None,
        "Raised the lifetime",
    )
    .await;
    let fix = |title: &str| FixProposal {
        title: title.to_owned(),
        rationale: "because".to_owned(),
        steps: vec!["do it".to_owned()],
        script: None,
        confidence: 70,
    };
    let suggest = |id, title: &str| SessionChange {
        fix: Some(FixChange::Suggest {
            id,
            proposal: fix(title),
        }),
        ..SessionChange::default()
    };
    let (first, second) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    let s = store.get_session(acme.id, session).await.unwrap();
    let s = store
        .commit_session(acme.id, s.id, s.lock_version, suggest(first, "Rekey"), T0)
        .await
        .unwrap();
    let version = s.state_version;
    let s = store
        .commit_session(
            acme.id,
            s.id,
            s.lock_version,
            suggest(second, "Lifetime"),
            T0,
        )
        .await
        .unwrap();
    assert_eq!(
        s.state_version,
        version + 1,
        "a new fix bumps state_version"
    );
    let fixes = store.suggested_fixes(acme.id, s.id).await.unwrap();
    assert_eq!(fixes.len(), 2);
    assert!(
        fixes[0].superseded_at.is_some(),
        "the older fix is superseded"
    );
    assert!(fixes[1].is_active());
    assert!(
        store
            .suggested_fixes(other.id, s.id)
            .await
            .unwrap()
            .is_empty()
    );

    // Deciding on a superseded fix is refused and changes nothing.
    let decide = |fix, decision| SessionChange {
        fix: Some(FixChange::Decide {
            fix,
            decision,
            by: jane.id,
        }),
        ..SessionChange::default()
    };
    let refused = store
        .commit_session(
            acme.id,
            s.id,
            s.lock_version,
            decide(first, FixDecision::Dismissed),
            T0,
        )
        .await;
    assert!(
        matches!(refused, Err(StoreError::Constraint(_))),
        "{refused:?}"
    );
    let s = store.get_session(acme.id, s.id).await.unwrap();
    let s = store
        .commit_session(
            acme.id,
            s.id,
            s.lock_version,
            decide(second, FixDecision::Dismissed),
            T0,
        )
        .await
        .unwrap();
    let fixes = store.suggested_fixes(acme.id, s.id).await.unwrap();
    assert_eq!(fixes[1].decision, Some(FixDecision::Dismissed));
    assert!(
        fixes.iter().all(|f| !f.is_active()),
        "dismissing supersedes"
    );

    // Proposals: one per fingerprint, reviewed once, scoped to the account.
    let proposal = NewFlowProposal {
        id: uuid::Uuid::now_v7(),
        account_id: acme.id,
        title: "VPN drops hourly".to_owned(),
        yaml: "id: vpn\n".to_owned(),
        rationale: "Three sessions".to_owned(),
        origin: ProposalOrigin::Flywheel,
        source_sessions: vec![session],
        requested_by: None,
        fingerprint: "flywheel:x".to_owned(),
    };
    let added = store
        .add_flow_proposal(&proposal, T0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(added.status, ProposalStatus::Pending);
    assert_eq!(added.source_sessions, vec![session]);
    let again = NewFlowProposal {
        id: uuid::Uuid::now_v7(),
        ..proposal.clone()
    };
    assert!(store.add_flow_proposal(&again, T0).await.unwrap().is_none());
    assert!(store.flow_proposal(other.id, added.id).await.is_err());
    let review = ProposalReview {
        status: ProposalStatus::Rejected,
        reviewer: jane.id,
        yaml: None,
        flow_id: None,
    };
    let reviewed = store
        .review_flow_proposal(acme.id, added.id, &review, T0)
        .await
        .unwrap();
    assert_eq!(reviewed.status, ProposalStatus::Rejected);
    assert_eq!(reviewed.reviewer_id, Some(jane.id));
    let twice = store
        .review_flow_proposal(acme.id, added.id, &review, T0)
        .await;
    assert!(
        matches!(twice, Err(StoreError::Conflict { .. })),
        "{twice:?}"
    );
    assert_eq!(
        store
            .flow_proposals(acme.id, Some(ProposalStatus::Pending))
            .await
            .unwrap()
            .len(),
        0
    );
}
