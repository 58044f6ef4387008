//! Session-event throughput: messages typed into session threads, handled by the real engine and
//! committed to the real store, many threads at once (each thread's events in order).
//!
//! `cargo bench -p rf-tests --bench session_events` runs it on SQLite, and on PostgreSQL as well
//! when `RF_TEST_DATABASE_URL` names a server. Prints median throughput and latency percentiles
//! over several rounds.

use rf_core::domain::{ChatIdentity, Platform, Role, RoleAssignment, ThreadKey};
use rf_core::engine::{Engine, Input};
use rf_core::time::SystemClock;
use rf_tests::{TestDb, account_with_samples};
use std::sync::Arc;
use std::time::{Duration, Instant};

const THREADS: usize = 32;
const EVENTS_PER_THREAD: usize = 40;
const ROUNDS: usize = 5;

struct Round {
    events_per_second: f64,
    latencies: Vec<Duration>,
}

async fn round(db: &TestDb, round: usize) -> Round {
    let store = db.port();
    let (account, team) = account_with_samples(store.as_ref(), &format!("bench-{round}"))
        .await
        .unwrap();
    let engine = Engine::new(store.clone(), Arc::new(SystemClock));
    let user = store
        .upsert_user(
            account.id,
            team.id,
            &ChatIdentity {
                platform: Platform::Console,
                platform_user_id: "bench".into(),
                display_name: "Bench".into(),
                email: None,
            },
            RoleAssignment::IfNew(Role::Engineer),
            engine.now(),
        )
        .await
        .unwrap();
    let actor = rf_core::domain::Actor::from(&user);
    let threads: Vec<ThreadKey> = (0..THREADS)
        .map(|i| ThreadKey {
            platform: Platform::Console,
            workspace: format!("bench-{round}"),
            channel: "#bench".into(),
            thread: format!("{i}"),
        })
        .collect();
    for thread in &threads {
        engine
            .start(
                &actor,
                thread.clone(),
                "printer offline on the second floor",
            )
            .await
            .unwrap();
    }
    let started = Instant::now();
    let tasks: Vec<_> = threads
        .into_iter()
        .map(|thread| {
            let (engine, actor) = (engine.clone(), actor.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(EVENTS_PER_THREAD);
                for i in 0..EVENTS_PER_THREAD {
                    let at = Instant::now();
                    engine
                        .handle(
                            &actor,
                            &thread,
                            Input::Text(format!("checked cable and port, step {i}")),
                        )
                        .await
                        .unwrap();
                    latencies.push(at.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(THREADS * EVENTS_PER_THREAD);
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    let elapsed = started.elapsed();
    Round {
        events_per_second: latencies.len() as f64 / elapsed.as_secs_f64(),
        latencies,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

async fn bench(db: TestDb) {
    let mut rounds = Vec::new();
    for i in 0..ROUNDS {
        rounds.push(round(&db, i).await);
    }
    let mut rates: Vec<f64> = rounds.iter().map(|r| r.events_per_second).collect();
    rates.sort_by(f64::total_cmp);
    let mut all: Vec<Duration> = rounds.into_iter().flat_map(|r| r.latencies).collect();
    all.sort();
    println!(
        "session events on {:<8} {THREADS} threads x {EVENTS_PER_THREAD} events x {ROUNDS} rounds: \
         median {:>7.0} events/s (min {:.0}, max {:.0}); latency p50 {:.2} ms, p99 {:.2} ms",
        db.backend(),
        rates[rates.len() / 2],
        rates[0],
        rates[rates.len() - 1],
        percentile(&all, 0.50).as_secs_f64() * 1e3,
        percentile(&all, 0.99).as_secs_f64() * 1e3,
    );
}

fn main() {
    rf_tests::bench_on_backends(bench);
}
