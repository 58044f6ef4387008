//! Escalation metrics on a seeded dataset, checked against figures computed by hand.

use rf_core::Store;
use rf_core::domain::{
    ChatIdentity, InstallationRef, Platform, Priority, Role, RoleAssignment, ThreadKey,
};
use rf_core::engine::Engine;
use rf_core::handoff::{Assessment, HandoffIntent, NewHandoff, Snapshot};
use rf_core::ids::{AccountId, HandoffId, UserId};
use rf_core::metrics::{Period, Stats};
use rf_core::ports::ClaimPlan;
use rf_core::session::{Conversation, NewSession, NewStep, SessionChange, SessionStatus, StepKind};
use rf_core::time::{ManualClock, Timestamp};
use rf_tests::TestDb;
use std::sync::Arc;

const DAY: i64 = 86_400_000;
const S: i64 = 1000;
/// "Now" for the metrics: a fixed point, so the windows are exact.
const NOW: Timestamp = Timestamp::from_millis(1_795_000_000_000 + 100 * DAY);

struct Seed<'a> {
    store: &'a dyn Store,
    account: AccountId,
    team: rf_core::ids::TeamId,
}

impl Seed<'_> {
    async fn user(&self, name: &str) -> UserId {
        self.store
            .upsert_user(
                self.account,
                self.team,
                &ChatIdentity {
                    platform: Platform::Console,
                    platform_user_id: name.into(),
                    display_name: name.into(),
                    email: None,
                },
                RoleAssignment::Always(Role::Engineer),
                NOW,
            )
            .await
            .unwrap()
            .id
    }

    /// A session escalated by `by` at `created`, optionally on a flow of `category`.
    async fn escalation(
        &self,
        by: UserId,
        created: Timestamp,
        category: Option<&str>,
    ) -> HandoffId {
        let thread = ThreadKey {
            platform: Platform::Console,
            workspace: "seed".into(),
            channel: "#seed".into(),
            thread: rf_core::ids::StepId::new().to_string(),
        };
        let session = self
            .store
            .create_session(
                NewSession {
                    account_id: self.account,
                    team_id: self.team,
                    thread,
                    owner_id: by,
                    problem: "seeded problem".into(),
                    conversation: Conversation::FreeForm,
                    status: SessionStatus::Active,
                    steps: vec![NewStep::by(
                        by,
                        StepKind::SessionStarted {
                            problem: "seeded problem".into(),
                        },
                    )],
                },
                created.plus_millis(-60 * S),
            )
            .await
            .unwrap();
        let mut lock = session.lock_version;
        if let Some(category) = category {
            let flow = rf_core::flow::parse_flow_yaml(
                "seed.yaml",
                &format!("id: seed-{}\ntitle: Seed\nkind: procedural\ncategory: {category}\nsections:\n  - title: S\n    steps: [{{text: x}}]\n", category.to_lowercase()),
            )
            .unwrap();
            let (summary, _) = self
                .store
                .save_flow(
                    self.account,
                    &flow,
                    rf_core::flow::FlowSource::Authored,
                    created,
                )
                .await
                .unwrap();
            let change = SessionChange {
                flow: Some((summary.id, flow)),
                ..SessionChange::default()
            };
            lock = self
                .store
                .commit_session(self.account, session.id, lock, change, created)
                .await
                .unwrap()
                .lock_version;
        }
        let handoff = NewHandoff {
            id: HandoffId::new(),
            intent: HandoffIntent::Escalate,
            requested_by: by,
            reason: "seeded".into(),
            priority: Priority::Normal,
            snapshot: Snapshot::default(),
            assessment: Assessment {
                likely_cause: "seed".into(),
                next_steps: vec![],
                confidence: 10,
                source: "offline".into(),
            },
        };
        let id = handoff.id;
        let change = SessionChange {
            status: Some(SessionStatus::Escalated),
            handoff: Some(handoff),
            ..SessionChange::default()
        };
        self.store
            .commit_session(self.account, session.id, lock, change, created)
            .await
            .unwrap();
        id
    }

    async fn claim(&self, handoff: HandoffId, user: UserId, at: Timestamp) {
        let outcome = self
            .store
            .claim_handoff(self.account, handoff, user, at, ClaimPlan::default())
            .await
            .unwrap();
        assert!(
            matches!(outcome, rf_core::handoff::ClaimOutcome::Won(_)),
            "{outcome:?}"
        );
    }

    /// `user` does something in the handoff's session at `at`.
    async fn act(&self, handoff: HandoffId, user: UserId, at: Timestamp) {
        let h = self.store.get_handoff(self.account, handoff).await.unwrap();
        let session = self
            .store
            .get_session(self.account, h.session_id)
            .await
            .unwrap();
        let change = SessionChange::default().step(NewStep::by(
            user,
            StepKind::Message {
                text: "checked".into(),
            },
        ));
        self.store
            .commit_session(self.account, session.id, session.lock_version, change, at)
            .await
            .unwrap();
    }

    async fn resolve(&self, handoff: HandoffId, user: UserId, at: Timestamp) {
        let h = self.store.get_handoff(self.account, handoff).await.unwrap();
        let session = self
            .store
            .get_session(self.account, h.session_id)
            .await
            .unwrap();
        let change = SessionChange {
            status: Some(SessionStatus::Resolved),
            close_handoff: true,
            ..SessionChange::default()
        }
        .step(NewStep::by(
            user,
            StepKind::Resolved {
                summary: "fixed".into(),
            },
        ));
        self.store
            .commit_session(self.account, session.id, session.lock_version, change, at)
            .await
            .unwrap();
    }
}

async fn seed_account<'a>(store: &'a dyn Store, name: &str) -> Seed<'a> {
    let (account, team) = store
        .ensure_installation(
            &InstallationRef {
                platform: Platform::Console,
                external_id: name.into(),
            },
            name,
            "Desk",
            NOW,
        )
        .await
        .unwrap();
    Seed {
        store,
        account: account.id,
        team: team.id,
    }
}

fn stats(avg: f64, median: f64, p95: f64, count: usize) -> Stats {
    Stats {
        count,
        avg_seconds: Some(avg),
        median_seconds: Some(median),
        p95_seconds: Some(p95),
    }
}

#[tokio::test]
async fn metrics_match_hand_computed_figures() {
    let db = TestDb::new().await;
    let store = db.port();
    let a = seed_account(store.as_ref(), "acme").await;
    let jane = a.user("jane").await;
    let sam = a.user("sam").await;
    let olga = a.user("olga").await;

    // H1, 2 days ago, flow category Printing: Sam claims after 60 s. Sam wrote something 30 s
    // *before* claiming (excluded), then acts 120 s after the claim, and again later. Resolved
    // one hour after the escalation.
    let t1 = NOW.plus_millis(-2 * DAY);
    let h1 = a.escalation(jane, t1, Some("Printing")).await;
    a.act(h1, sam, t1.plus_millis(30 * S)).await;
    a.claim(h1, sam, t1.plus_millis(60 * S)).await;
    a.act(h1, sam, t1.plus_millis(180 * S)).await;
    a.act(h1, sam, t1.plus_millis(360 * S)).await;
    a.resolve(h1, sam, t1.plus_millis(3600 * S)).await;

    // H2, 3 days ago: Sam claims at 100 s and never acts; released at 800 s; Olga re-claims at
    // 900 s; Jane (not the claimer) writes at 905 s (excluded); Olga acts at 930 s.
    let t2 = NOW.plus_millis(-3 * DAY);
    let h2 = a.escalation(jane, t2, None).await;
    a.claim(h2, sam, t2.plus_millis(100 * S)).await;
    let released = store
        .release_handoff(
            a.account,
            h2,
            1,
            t2.plus_millis(800 * S),
            ClaimPlan::default(),
        )
        .await
        .unwrap();
    assert!(released.is_some());
    a.claim(h2, olga, t2.plus_millis(900 * S)).await;
    a.act(h2, jane, t2.plus_millis(905 * S)).await;
    a.act(h2, olga, t2.plus_millis(930 * S)).await;

    // H3, 4 days ago: nobody claims.
    a.escalation(jane, NOW.plus_millis(-4 * DAY), None).await;

    // H4, 20 days ago: Sam claims at 600 s, acts 60 s later.
    let t4 = NOW.plus_millis(-20 * DAY);
    let h4 = a.escalation(jane, t4, None).await;
    a.claim(h4, sam, t4.plus_millis(600 * S)).await;
    a.act(h4, sam, t4.plus_millis(660 * S)).await;

    // H5, 60 days ago: Sam claims at 120 s and never acts.
    let t5 = NOW.plus_millis(-60 * DAY);
    let h5 = a.escalation(jane, t5, None).await;
    a.claim(h5, sam, t5.plus_millis(120 * S)).await;

    // Another account's escalation: never counted here.
    let b = seed_account(store.as_ref(), "beta").await;
    let bob = b.user("bob").await;
    let t6 = NOW.plus_millis(-DAY);
    let h6 = b.escalation(bob, t6, None).await;
    b.claim(h6, bob, t6.plus_millis(10 * S)).await;
    b.act(h6, bob, t6.plus_millis(20 * S)).await;

    let engine = Engine::new(store.clone(), Arc::new(ManualClock::starting_at(NOW)));

    let week = engine.metrics(a.account, Period::Days7).await.unwrap();
    assert_eq!((week.escalations, week.claimed, week.unclaimed), (3, 2, 1));
    assert_eq!(week.time_to_claim, stats(480.0, 480.0, 900.0, 2));
    assert_eq!(week.time_to_first_action, stats(75.0, 75.0, 120.0, 2));
    assert_eq!(week.claimed_with_action_rate, Some(1.0));
    assert_eq!((week.releases, week.reclaims), (1, 1));
    assert_eq!(week.time_to_resolve, stats(3600.0, 3600.0, 3600.0, 1));
    let techs: Vec<(&str, usize, Option<f64>)> = week
        .per_tech
        .iter()
        .map(|t| {
            (
                t.name.as_str(),
                t.claimed,
                t.time_to_first_action.median_seconds,
            )
        })
        .collect();
    assert_eq!(techs, [("olga", 1, Some(30.0)), ("sam", 1, Some(120.0))]);
    let domains: Vec<(&str, usize, usize)> = week
        .per_domain
        .iter()
        .map(|d| (d.domain.as_str(), d.escalations, d.claimed))
        .collect();
    assert_eq!(domains, [("No flow (free-form)", 2, 1), ("Printing", 1, 1)]);

    let month = engine.metrics(a.account, Period::Days30).await.unwrap();
    assert_eq!((month.escalations, month.claimed), (4, 3));
    assert_eq!(month.time_to_claim, stats(520.0, 600.0, 900.0, 3));
    assert_eq!(month.time_to_first_action, stats(70.0, 60.0, 120.0, 3));

    let quarter = engine.metrics(a.account, Period::Days90).await.unwrap();
    assert_eq!(
        (quarter.escalations, quarter.claimed, quarter.unclaimed),
        (5, 4, 1)
    );
    assert_eq!(quarter.time_to_claim, stats(420.0, 360.0, 900.0, 4));
    assert_eq!(quarter.time_to_first_action, stats(70.0, 60.0, 120.0, 3));
    assert_eq!(quarter.claimed_with_action_rate, Some(0.75));
    assert_eq!(
        quarter.weekly.iter().map(|w| w.escalations).sum::<usize>(),
        5
    );

    let beta = engine.metrics(b.account, Period::Days7).await.unwrap();
    assert_eq!((beta.escalations, beta.claimed), (1, 1));
    assert_eq!(beta.time_to_first_action.median_seconds, Some(10.0));

    let csv = rf_core::metrics::to_csv(&week);
    assert!(
        csv.contains("escalations,3\n") && csv.contains("first_action_median_s,75.0\n"),
        "{csv}"
    );
}
