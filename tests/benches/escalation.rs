//! Escalation Mode benchmarks (not timed tests):
//! - claim under contention: 100 seniors claim one escalation at the same instant, 20 rounds;
//! - SSE fan-out: one escalation reaches 1,000 live-queue subscribers over real HTTP;
//! - metrics: the 7/30/90-day metrics over 100,000 escalations and 1,000,000 timeline steps.
//!
//! `cargo bench -p rf-tests --bench escalation` (PostgreSQL as well when `RF_TEST_DATABASE_URL`
//! names a server). Prints medians and percentiles.

use futures::StreamExt;
use rf_core::domain::{Actor, ChatIdentity, Platform, Role, RoleAssignment};
use rf_core::escalation::ClaimView;
use rf_core::links::LinkScope;
use rf_core::metrics::Period;
use rf_core::time::{Clock, SystemClock};
use rf_tests::{TestApp, TestDb};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[(((sorted.len() as f64) * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

async fn person(app: &TestApp, name: &str, role: Role) -> Actor {
    app.person(name, role).await
}

async fn escalate(app: &TestApp, jane: &Actor) -> rf_core::ids::HandoffId {
    let lines = ["escalate high payroll is printing"];
    app.session(jane, "printer offline on floor two", &lines)
        .await
        .1
        .expect("an escalation")
}

async fn claim_contention(db: TestDb) {
    let app = TestApp::start(&db, Arc::new(SystemClock)).await;
    let jane = person(&app, "Jane", Role::Engineer).await;
    let mut seniors = Vec::new();
    for i in 0..100 {
        seniors.push(person(&app, &format!("Senior{i:03}"), Role::Engineer).await);
    }
    let mut latencies = Vec::new();
    let mut rounds = Vec::new();
    for _ in 0..20 {
        let handoff = escalate(&app, &jane).await;
        let barrier = Arc::new(tokio::sync::Barrier::new(seniors.len()));
        let started = Instant::now();
        let tasks: Vec<_> = seniors
            .iter()
            .cloned()
            .map(|senior| {
                let (engine, barrier) = (app.app.engine.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    let at = Instant::now();
                    let view = engine.claim(&senior, handoff).await.unwrap();
                    (at.elapsed(), matches!(view, ClaimView::Won(_)))
                })
            })
            .collect();
        let mut winners = 0;
        for task in tasks {
            let (latency, won) = task.await.unwrap();
            latencies.push(latency);
            winners += usize::from(won);
        }
        assert_eq!(winners, 1);
        rounds.push(started.elapsed());
    }
    latencies.sort();
    rounds.sort();
    println!(
        "claim contention on {:<8} 100 concurrent claims x 20 rounds (1 winner each): per-claim p50 {:.1} ms, p99 {:.1} ms; all 100 answered in median {:.1} ms",
        db.backend(),
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.99)),
        ms(rounds[rounds.len() / 2]),
    );
}

async fn fan_out(db: TestDb, subscribers: usize) {
    let app = TestApp::start(&db, Arc::new(SystemClock)).await;
    let jane = person(&app, "Jane", Role::Engineer).await;
    let olga = person(&app, "Olga", Role::Owner).await;
    let url = app
        .app
        .engine
        .share_link(olga.account_id, olga.user_id, olga.role, LinkScope::Account)
        .await
        .unwrap()
        .unwrap();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let opened = client.get(url).send().await.unwrap();
    let cookie = opened.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let (got_tx, mut got_rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    for _ in 0..subscribers {
        let (client, cookie, ready_tx, got_tx) = (
            client.clone(),
            cookie.clone(),
            ready_tx.clone(),
            got_tx.clone(),
        );
        let stream_url = format!("{}/api/escalations/stream", app.base_url);
        tokio::spawn(async move {
            let response = client
                .get(stream_url)
                .header("cookie", cookie)
                .send()
                .await
                .unwrap();
            let mut body = response.bytes_stream();
            let mut buffer = String::new();
            while let Some(Ok(chunk)) = body.next().await {
                buffer.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buffer.find("\n\n") {
                    let event: String = buffer.drain(..end + 2).collect();
                    if event.contains("event: ready") {
                        let _ = ready_tx.send(());
                    } else if event.contains("event: handoff_created") {
                        let _ = got_tx.send(Instant::now());
                    }
                }
            }
        });
    }
    for _ in 0..subscribers {
        ready_rx.recv().await.unwrap();
    }
    let mut p50s = Vec::new();
    let mut p99s = Vec::new();
    for _ in 0..5 {
        let sent = Instant::now();
        escalate(&app, &jane).await;
        let mut delays = Vec::with_capacity(subscribers);
        for _ in 0..subscribers {
            let at = tokio::time::timeout(Duration::from_secs(10), got_rx.recv())
                .await
                .expect("every subscriber hears it")
                .unwrap();
            delays.push(at.duration_since(sent));
        }
        delays.sort();
        p50s.push(percentile(&delays, 0.5));
        p99s.push(percentile(&delays, 0.99));
    }
    p50s.sort();
    p99s.sort();
    println!(
        "SSE fan-out on {:<8} 1 escalation -> {subscribers} subscribers over HTTP, 5 rounds: delivery p50 {:.1} ms, p99 {:.1} ms (median of rounds; worst round p99 {:.1} ms)",
        db.backend(),
        ms(p50s[2]),
        ms(p99s[2]),
        ms(p99s[4]),
    );
}

/// Seeds 100,000 escalations with 10 steps each directly in SQL, then times the metrics.
async fn large_metrics(db: TestDb) {
    let store = db.port();
    let now = SystemClock.now();
    let (account, team) = rf_tests::account(store.as_ref(), "large").await.unwrap();
    let mut users = Vec::new();
    for name in ["jane", "sam", "olga"] {
        let user = store
            .upsert_user(
                account.id,
                team.id,
                &ChatIdentity {
                    platform: Platform::Console,
                    platform_user_id: name.into(),
                    display_name: name.into(),
                    email: None,
                },
                RoleAssignment::Always(Role::Engineer),
                now,
            )
            .await
            .unwrap();
        users.push(user.id.as_uuid());
    }
    let (a, t, jane, sam, olga) = (
        account.id.as_uuid(),
        team.id.as_uuid(),
        users[0],
        users[1],
        users[2],
    );
    let seeded = Instant::now();
    if db.url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
        let claimer = "CASE WHEN i % 10 = 0 THEN NULL WHEN i % 3 = 0 THEN $4 WHEN i % 3 = 1 THEN $5 ELSE $3 END";
        let created = "($6 - (i % 90) * 86400000 - 3600000)";
        for sql in [
            format!(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000) \
              INSERT INTO sessions (id, account_id, team_id, platform, workspace, channel, thread, owner_id, created_by, problem, status, conversation, state_version, lock_version, next_seq, created_at, updated_at) \
              SELECT unhex(printf('%032x', i)), $1, $2, 'console', 'large', '#large', 't' || i, $3, $3, 'seeded', 'resolved', '{{\"state\":\"free_form\"}}', 0, 0, 11, {created}, $6 FROM n"
            ),
            format!(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000) \
              INSERT INTO handoffs (id, account_id, team_id, session_id, intent, requested_by, reason, priority, snapshot, assessment, claimed_by, claimed_at, claim_count, release_count, created_at) \
              SELECT unhex(printf('%032x', 1000000000 + i)), $1, $2, unhex(printf('%032x', i)), 'escalate', $3, 'seed', 'normal', '{{}}', '{{}}', \
                     {claimer}, CASE WHEN i % 10 = 0 THEN NULL ELSE {created} + (i % 600) * 1000 END, CASE WHEN i % 10 = 0 THEN 0 ELSE 1 END, 0, {created} FROM n"
            ),
            format!(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000), k(j) AS (SELECT 1 UNION ALL SELECT j + 1 FROM k WHERE j < 10) \
              INSERT INTO timeline_steps (id, account_id, session_id, seq, actor_id, kind, detail, created_at) \
              SELECT unhex(printf('%032x', 2000000000 + i * 10 + j)), $1, unhex(printf('%032x', i)), j, CASE WHEN j <= 3 THEN $3 ELSE COALESCE({claimer}, $3) END, 'message', '{{\"kind\":\"message\",\"text\":\"x\"}}', {created} + j * 60000 FROM n, k"
            ),
        ] {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(a)
                .bind(t)
                .bind(jane)
                .bind(sam)
                .bind(olga)
                .bind(now.as_millis())
                .execute(&pool)
                .await
                .unwrap();
        }
        pool.close().await;
    } else {
        let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
        let claimer = "CASE WHEN i % 10 = 0 THEN NULL WHEN i % 3 = 0 THEN $4::uuid WHEN i % 3 = 1 THEN $5::uuid ELSE $3::uuid END";
        let created = "($6::bigint - (i::bigint % 90) * 86400000 - 3600000)";
        let id = |offset: &str| format!("lpad(to_hex({offset}), 32, '0')::uuid");
        for sql in [
            format!(
                "INSERT INTO sessions (id, account_id, team_id, platform, workspace, channel, thread, owner_id, created_by, problem, status, conversation, state_version, lock_version, next_seq, created_at, updated_at) \
              SELECT {}, $1, $2, 'console', 'large', '#large', 't' || i, $3, $3, 'seeded', 'resolved', '{{\"state\":\"free_form\"}}', 0, 0, 11, {created}, $6 FROM generate_series(1, 100000) AS i",
                id("i")
            ),
            format!(
                "INSERT INTO handoffs (id, account_id, team_id, session_id, intent, requested_by, reason, priority, snapshot, assessment, claimed_by, claimed_at, claim_count, release_count, created_at) \
              SELECT {}, $1, $2, {}, 'escalate', $3, 'seed', 'normal', '{{}}', '{{}}', {claimer}, CASE WHEN i % 10 = 0 THEN NULL ELSE {created} + (i % 600) * 1000 END, CASE WHEN i % 10 = 0 THEN 0 ELSE 1 END, 0, {created} FROM generate_series(1, 100000) AS i",
                id("1000000000 + i"),
                id("i")
            ),
            format!(
                "INSERT INTO timeline_steps (id, account_id, session_id, seq, actor_id, kind, detail, created_at) \
              SELECT {}, $1, {}, j, CASE WHEN j <= 3 THEN $3::uuid ELSE COALESCE({claimer}, $3::uuid) END, 'message', '{{\"kind\":\"message\",\"text\":\"x\"}}', {created} + j * 60000 FROM generate_series(1, 100000) AS i, generate_series(1, 10) AS j",
                id("2000000000::bigint + i * 10 + j"),
                id("i")
            ),
        ] {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(a)
                .bind(t)
                .bind(jane)
                .bind(sam)
                .bind(olga)
                .bind(now.as_millis())
                .execute(&pool)
                .await
                .unwrap();
        }
        sqlx::query("ANALYZE").execute(&pool).await.unwrap();
        pool.close().await;
    }
    let seed_time = seeded.elapsed();
    let engine = rf_core::engine::Engine::new(store.clone(), Arc::new(SystemClock));
    let mut report = Vec::new();
    for period in [Period::Days7, Period::Days30, Period::Days90] {
        let mut times = Vec::new();
        let mut escalations = 0;
        for _ in 0..5 {
            let at = Instant::now();
            let m = engine.metrics(account.id, period).await.unwrap();
            times.push(at.elapsed());
            escalations = m.escalations;
        }
        times.sort();
        report.push(format!(
            "{} ({} escalations) median {:.0} ms",
            period.label(),
            escalations,
            ms(times[2])
        ));
    }
    println!(
        "metrics on {:<8} 100,000 escalations / 1,000,000 steps (seeded in {:.1} s): {}",
        db.backend(),
        seed_time.as_secs_f64(),
        report.join("; ")
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let postgres = std::env::var(rf_tests::POSTGRES_ENV).is_ok_and(|v| !v.is_empty());
    runtime.block_on(async {
        claim_contention(TestDb::sqlite().await).await;
        if postgres {
            claim_contention(TestDb::new().await).await;
        }
        fan_out(TestDb::sqlite().await, 1000).await;
        if postgres {
            fan_out(TestDb::new().await, 1000).await;
        }
        large_metrics(TestDb::sqlite().await).await;
        if postgres {
            large_metrics(TestDb::new().await).await;
        }
        if !postgres {
            println!(
                "(set {} to benchmark PostgreSQL too)",
                rf_tests::POSTGRES_ENV
            );
        }
    });
}
