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
//! a server; retrieval with embeddings as well when `RF_BENCH_EMBEDDINGS_URL` names an
//! OpenAI-compatible endpoint, such as `tests/benches/minilm_server.py`).

use rf_core::ai::Copilot;
use rf_core::ai::retrieve::retrieve;
use rf_core::flow::FlowQuery;
use rf_tests::{TestDb, account_with_samples};
use std::collections::HashMap;
use std::sync::Arc;
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
    let mut score = Score::default();
    for (problem, expected) in &cases {
        let started = Instant::now();
        let hits = store
            .search_flows(account.id, &FlowQuery::from_problem(problem), 3)
            .await
            .unwrap();
        let slugs: Vec<&str> = hits.iter().map(|h| h.summary.slug.as_str()).collect();
        score.record(problem, expected, &slugs, started.elapsed());
    }
    score.print(&format!(
        "flow matching on {} ({} labelled problems)",
        db.backend(),
        cases.len()
    ));
    bench_retrieval(&db).await;
}

/// Retrieval with the other labelled problems as resolved history: full-text search alone, and
/// with an embedding ranking when `RF_BENCH_EMBEDDINGS_URL` names an OpenAI-compatible
/// `/embeddings` endpoint (`tests/benches/minilm_server.py` serves all-MiniLM-L6-v2 offline).
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
        sessions.push(session);
    }
    let mut variants: Vec<(String, Option<Arc<dyn Copilot>>)> = vec![(
        format!("FTS + {} resolved sessions, RRF", cases.len() - 1),
        None,
    )];
    if let Some((model, copilot)) = embedding_copilot() {
        // The first pass embeds the library and the history; the measured pass reads the cache.
        for (problem, session) in cases.iter().map(|(p, _)| p).zip(&sessions) {
            retrieve(
                store.as_ref(),
                Some(copilot.as_ref()),
                account.id,
                problem,
                Some(*session),
            )
            .await
            .unwrap();
        }
        variants.push((
            format!(
                "FTS + {model} embeddings + {} resolved sessions, RRF",
                cases.len() - 1
            ),
            Some(copilot),
        ));
    }
    for (label, copilot) in variants {
        let mut score = Score::default();
        for ((problem, expected), session) in cases.iter().zip(&sessions) {
            let started = Instant::now();
            let found = retrieve(
                store.as_ref(),
                copilot.as_deref(),
                account.id,
                problem,
                Some(*session),
            )
            .await
            .unwrap();
            let elapsed = started.elapsed();
            let slugs: Vec<&str> = found
                .flows
                .iter()
                .take(3)
                .map(|f| f.slug.as_str())
                .collect();
            score.record(problem, expected, &slugs, elapsed);
        }
        score.print(&format!("retrieval on {} ({label})", db.backend()));
    }
}

/// Top-1 and top-3 hits, the misses and the time each search took.
#[derive(Default)]
struct Score {
    top1: usize,
    top3: usize,
    misses: Vec<String>,
    times: Vec<Duration>,
}

impl Score {
    /// One labelled problem: the best three flows found for it, and how long that took.
    fn record(&mut self, problem: &str, expected: &str, slugs: &[&str], took: Duration) {
        self.times.push(took);
        if slugs.first() == Some(&expected) {
            self.top1 += 1;
        }
        if slugs.contains(&expected) {
            self.top3 += 1;
        } else {
            self.misses.push(format!(
                "    {problem:?}: expected {expected}, got {slugs:?}"
            ));
        }
    }

    fn print(mut self, label: &str) {
        self.times.sort();
        let n = self.times.len() as f64;
        println!(
            "{label}: top-1 {:.1}% ({}), top-3 {:.1}% ({}), median {:.2} ms",
            100.0 * self.top1 as f64 / n,
            self.top1,
            100.0 * self.top3 as f64 / n,
            self.top3,
            self.times[self.times.len() / 2].as_secs_f64() * 1e3
        );
        if !self.misses.is_empty() {
            println!("  not in the top 3:\n{}", self.misses.join("\n"));
        }
    }
}

/// The offline copilot with the embedding endpoint `RF_BENCH_EMBEDDINGS_URL` (model
/// `RF_BENCH_EMBEDDINGS_MODEL`, default `all-MiniLM-L6-v2`), when it is set.
fn embedding_copilot() -> Option<(String, Arc<dyn Copilot>)> {
    let url = std::env::var("RF_BENCH_EMBEDDINGS_URL")
        .ok()
        .filter(|url| !url.is_empty())?;
    let model = std::env::var("RF_BENCH_EMBEDDINGS_MODEL")
        .unwrap_or_else(|_| "all-MiniLM-L6-v2".to_owned());
    let config = resolutionflow::config::AiConfig {
        embedding_model: model.clone(),
        embedding_base_url: url,
        ..Default::default()
    };
    let copilot = resolutionflow::ai::build(&config)
        .expect("the embedding endpoint can be used")
        .expect("a copilot");
    Some((model, copilot))
}

fn main() {
    rf_tests::bench_on_backends(bench);
}
