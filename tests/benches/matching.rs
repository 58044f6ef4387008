//! Flow matching accuracy (a benchmark, not a tuning target): the plain-language problem statements
//! in `tests/data/problems.yaml`, each labelled with the sample flow it should match, searched
//! against the sample library the way `/rf <problem>` does. Reports top-1 and top-3 accuracy, the
//! misses, and the median search time.
//!
//! Then the copilot's retrieval, leave-one-out: every other labelled problem is a resolved session
//! that followed its flow (the team's history), and retrieval fuses full-text search over the
//! flows with the flows of the most similar resolved sessions (reciprocal rank fusion). The asking
//! problem's own session is left out.
//!
//! `cargo bench -p rf-tests --bench matching` (PostgreSQL as well when `RF_TEST_DATABASE_URL` names
//! a server).

use rf_core::ai::retrieve::retrieve;
use rf_core::flow::FlowQuery;
use rf_tests::{TestDb, account_with_samples};
use std::collections::HashMap;
use std::time::{Duration, Instant};

fn labelled() -> Vec<(String, String)> {
    let text = include_str!("../data/problems.yaml");
    let rows: Vec<HashMap<String, String>> =
        serde_norway::from_str(text).expect("tests/data/problems.yaml is valid");
    rows.into_iter()
        .map(|mut row| {
            (
                row.remove("problem").expect("a problem"),
                row.remove("flow").expect("a flow"),
            )
        })
        .collect()
}

async fn bench(db: TestDb) {
    let store = db.port();
    let (account, _) = account_with_samples(store.as_ref(), "matching")
        .await
        .unwrap();
    let cases = labelled();
    let (mut top1, mut top3) = (0, 0);
    let mut misses = Vec::new();
    let mut times = Vec::new();
    for (problem, expected) in &cases {
        let started = Instant::now();
        let hits = store
            .search_flows(account.id, &FlowQuery::from_problem(problem), 3)
            .await
            .unwrap();
        times.push(started.elapsed());
        let slugs: Vec<&str> = hits.iter().map(|h| h.summary.slug.as_str()).collect();
        if slugs.first() == Some(&expected.as_str()) {
            top1 += 1;
        }
        if slugs.contains(&expected.as_str()) {
            top3 += 1;
        } else {
            misses.push(format!(
                "    {problem:?}: expected {expected}, got {slugs:?}"
            ));
        }
    }
    times.sort();
    let median: Duration = times[times.len() / 2];
    let n = cases.len() as f64;
    println!(
        "flow matching on {} ({} labelled problems): top-1 {:.1}% ({top1}), top-3 {:.1}% ({top3}), median search {:.2} ms",
        db.backend(),
        cases.len(),
        100.0 * top1 as f64 / n,
        100.0 * top3 as f64 / n,
        median.as_secs_f64() * 1e3
    );
    if !misses.is_empty() {
        println!("  not in the top 3:\n{}", misses.join("\n"));
    }
    bench_retrieval(&db).await;
}

/// Retrieval with the other labelled problems as resolved history.
async fn bench_retrieval(db: &TestDb) {
    let store = db.port();
    let (account, team) = account_with_samples(store.as_ref(), "retrieval")
        .await
        .unwrap();
    let owner = rf_tests::user(store.as_ref(), &account, &team, "Tess").await;
    let cases = labelled();
    let mut sessions = Vec::new();
    for (i, (problem, slug)) in cases.iter().enumerate() {
        let flow = store
            .get_flow_by_slug(account.id, slug)
            .await
            .unwrap()
            .expect("a sample flow");
        let session = rf_tests::resolved_session(
            store.as_ref(),
            &team,
            owner,
            &format!("history-{i}"),
            problem,
            Some((flow.summary.id, flow.flow.clone())),
            &format!("Followed {}", flow.flow.meta.title),
        )
        .await;
        sessions.push((session, flow.summary.id));
    }
    let (mut top1, mut top3) = (0, 0);
    let mut times = Vec::new();
    let mut misses = Vec::new();
    for ((problem, expected), (session, _)) in cases.iter().zip(&sessions) {
        let started = Instant::now();
        let found = retrieve(store.as_ref(), None, account.id, problem, Some(*session))
            .await
            .unwrap();
        times.push(started.elapsed());
        let slugs: Vec<&str> = found
            .flows
            .iter()
            .take(3)
            .map(|f| f.slug.as_str())
            .collect();
        if slugs.first() == Some(&expected.as_str()) {
            top1 += 1;
        }
        if slugs.contains(&expected.as_str()) {
            top3 += 1;
        } else {
            misses.push(format!(
                "    {problem:?}: expected {expected}, got {slugs:?}"
            ));
        }
    }
    times.sort();
    let n = cases.len() as f64;
    println!(
        "retrieval on {} (FTS + {} resolved sessions, RRF): top-1 {:.1}% ({top1}), top-3 {:.1}% ({top3}), median {:.2} ms",
        db.backend(),
        cases.len() - 1,
        100.0 * top1 as f64 / n,
        100.0 * top3 as f64 / n,
        times[times.len() / 2].as_secs_f64() * 1e3
    );
    if !misses.is_empty() {
        println!("  not in the top 3:\n{}", misses.join("\n"));
    }
}

fn main() {
    rf_tests::bench_on_backends(bench);
}
