//! Flow matching accuracy (a benchmark, not a tuning target): the plain-language problem statements
//! in `tests/data/problems.yaml`, each labelled with the sample flow it should match, searched
//! against the sample library the way `/rf <problem>` does. Reports top-1 and top-3 accuracy, the
//! misses, and the median search time.
//!
//! `cargo bench -p rf-tests --bench matching` (PostgreSQL as well when `RF_TEST_DATABASE_URL` names
//! a server).

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
}

fn main() {
    rf_tests::bench_on_backends(bench);
}
