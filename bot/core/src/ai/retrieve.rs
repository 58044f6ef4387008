//! Retrieval for the copilot: full-text search over the flow library and the account's resolved
//! sessions, optionally an embedding ranking, fused by reciprocal rank. The same words are matched
//! on both database backends ([`FlowQuery`] decides them), so results do not depend on the store.

use super::{Citation, CitationKind, CitedStep, Copilot};
use crate::flow::{Flow, FlowBody, FlowQuery, FlowStatus, FlowSummary};
use crate::ids::{AccountId, FlowId, SessionId};
use crate::ports::{Store, StoreResult};
use crate::session::{SessionFilter, SessionStatus};
use std::collections::HashMap;

/// The constant of reciprocal rank fusion (Cormack et al. use 60).
const RRF_K: f64 = 60.0;
/// How many recent resolved sessions are searched.
const SESSION_POOL: i64 = 1_000;
/// How many flows full-text search proposes.
const FLOW_POOL: i64 = 10;
/// How many of the best flows are searched for the step closest to the problem.
const STEP_FLOWS: usize = 3;
/// How many of the library's flows an embedding ranking compares (each is embedded once, then
/// cached by its text).
const EMBED_FLOWS: usize = 500;
/// How many resolved sessions an embedding ranking compares per turn, so that the embedding request
/// stays small however many sessions the account has resolved.
const EMBED_SESSIONS: usize = 50;

/// What retrieval found: flows best first, and resolved sessions best first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Retrieved {
    pub flows: Vec<RetrievedFlow>,
    pub sessions: Vec<RetrievedSession>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RetrievedFlow {
    pub id: FlowId,
    pub slug: String,
    pub title: String,
    pub summary: String,
    pub score: f64,
    /// The flow's step closest to the problem, for the best few flows.
    pub step: Option<CitedStep>,
}

impl RetrievedFlow {
    /// Not ranked yet.
    fn from_summary(summary: &FlowSummary) -> Self {
        Self {
            id: summary.id,
            slug: summary.slug.clone(),
            title: summary.title.clone(),
            summary: summary.category.clone(),
            score: 0.0,
            step: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RetrievedSession {
    pub id: SessionId,
    pub problem: String,
    pub resolution: String,
    /// The flow the session followed, if any.
    pub flow: Option<FlowId>,
    pub score: f64,
}

impl Retrieved {
    /// The top `n` of each kind as citations (without links).
    pub fn citations(&self, n: usize) -> Vec<Citation> {
        let flows = self.flows.iter().take(n).map(|f| Citation {
            kind: CitationKind::Flow,
            id: f.slug.clone(),
            title: f.title.clone(),
            summary: f.summary.clone(),
            url: None,
            step: f.step.clone(),
        });
        let sessions = self.sessions.iter().take(n).map(|s| Citation {
            kind: CitationKind::Session,
            id: s.id.to_string(),
            title: s.problem.clone(),
            summary: s.resolution.clone(),
            url: None,
            step: None,
        });
        flows.chain(sessions).collect()
    }
}

/// Searches the account's flows and resolved sessions for `text`. `copilot` adds an embedding
/// ranking when its provider offers embeddings; `exclude` leaves out the asking session.
pub async fn retrieve(
    store: &dyn Store,
    copilot: Option<&dyn Copilot>,
    account: AccountId,
    text: &str,
    exclude: Option<SessionId>,
) -> StoreResult<Retrieved> {
    let query = FlowQuery::from_problem(text);
    if query.is_empty() {
        return Ok(Retrieved::default());
    }
    let flow_hits = store.search_flows(account, &query, FLOW_POOL).await?;
    let resolved = store
        .list_sessions(
            account,
            &SessionFilter {
                status: Some(SessionStatus::Resolved),
                limit: SESSION_POOL,
            },
        )
        .await?;
    let resolved: Vec<_> = resolved
        .into_iter()
        .filter(|s| Some(s.id) != exclude)
        .collect();
    let documents: Vec<String> = resolved
        .iter()
        .map(|s| format!("{} {}", s.problem, s.resolution.as_deref().unwrap_or("")))
        .collect();
    let session_ranking = bm25_rank(&query, &documents);

    let mut flows: Vec<RetrievedFlow> = flow_hits
        .iter()
        .map(|hit| RetrievedFlow::from_summary(&hit.summary))
        .collect();
    // Flows the most similar resolved sessions followed, in order of those sessions.
    let voted = followed_flows(&resolved, session_ranking.iter().map(|(i, _)| *i));
    add_flows(store, account, &mut flows, &voted).await;
    let fts_order: Vec<FlowId> = flow_hits.iter().map(|h| h.summary.id).collect();
    let mut lists: Vec<Vec<FlowId>> = vec![fts_order, voted];
    let mut session_lists: Vec<Vec<usize>> =
        vec![session_ranking.iter().map(|(i, _)| *i).collect()];

    if let Some(copilot) = copilot {
        // Meaning is compared with the whole library, not only with what the words found: a flow
        // the words miss can still rank first. Vectors are cached, so each flow is embedded once.
        let library: Vec<FlowSummary> = store
            .list_flows(account)
            .await?
            .into_iter()
            .filter(|f| f.status == FlowStatus::Published)
            .take(EMBED_FLOWS)
            .collect();
        let mut texts = vec![text.to_owned()];
        texts.extend(
            library
                .iter()
                .map(|f| format!("{}. {}. {}", f.title, f.category, f.tags.join(", "))),
        );
        let candidates = embedding_candidates(&session_ranking, documents.len());
        texts.extend(candidates.iter().map(|&i| documents[i].clone()));
        if let Some(vectors) = copilot.embed(&texts).await
            && vectors.len() == texts.len()
        {
            let query_vector = &vectors[0];
            let mut flow_sim: Vec<(&FlowSummary, f64)> = library
                .iter()
                .zip(&vectors[1..=library.len()])
                .map(|(f, v)| (f, cosine(query_vector, v)))
                .collect();
            flow_sim.sort_by(|a, b| b.1.total_cmp(&a.1));
            flow_sim.truncate(FLOW_POOL as usize);
            for (summary, _) in &flow_sim {
                if !flows.iter().any(|f| f.id == summary.id) {
                    flows.push(RetrievedFlow::from_summary(summary));
                }
            }
            lists.push(flow_sim.iter().map(|(f, _)| f.id).collect());
            let mut session_sim: Vec<(usize, f64)> = candidates
                .iter()
                .zip(&vectors[library.len() + 1..])
                .map(|(&i, v)| (i, cosine(query_vector, v)))
                .collect();
            session_sim.sort_by(|a, b| b.1.total_cmp(&a.1));
            let nearest: Vec<usize> = session_sim.into_iter().take(20).map(|(i, _)| i).collect();
            // The sessions nearest in meaning vote for the flows they followed, as the
            // full-text matches do: a flow the words miss can still come from the history.
            let meant = followed_flows(&resolved, nearest.iter().copied());
            add_flows(store, account, &mut flows, &meant).await;
            lists.push(meant);
            session_lists.push(nearest);
        }
    }

    let flow_scores = rrf(&lists);
    for flow in &mut flows {
        flow.score = flow_scores.get(&flow.id).copied().unwrap_or(0.0);
    }
    flows.retain(|f| f.score > 0.0);
    flows.sort_by(|a, b| b.score.total_cmp(&a.score));
    for flow in flows.iter_mut().take(STEP_FLOWS) {
        if let Ok(record) = store.get_flow(account, flow.id).await {
            flow.step = closest_step(&query, &record.flow);
        }
    }

    let session_scores = rrf(&session_lists);
    let mut sessions: Vec<RetrievedSession> = session_scores
        .into_iter()
        .map(|(index, score)| {
            let s = &resolved[index];
            RetrievedSession {
                id: s.id,
                problem: s.problem.clone(),
                resolution: s.resolution.clone().unwrap_or_default(),
                flow: s.flow_id,
                score,
            }
        })
        .collect();
    sessions.sort_by(|a, b| b.score.total_cmp(&a.score));
    sessions.truncate(10);
    Ok(Retrieved { flows, sessions })
}

/// The flows the first ten of `ranked` sessions followed, each once, in the sessions' order.
fn followed_flows(
    resolved: &[crate::session::Session],
    ranked: impl Iterator<Item = usize>,
) -> Vec<FlowId> {
    let mut flows: Vec<FlowId> = Vec::new();
    for index in ranked.take(10) {
        if let Some(flow) = resolved[index].flow_id.filter(|f| !flows.contains(f)) {
            flows.push(flow);
        }
    }
    flows
}

/// Adds the flows of `ids` that `flows` does not hold yet (a flow since deleted is skipped).
async fn add_flows(
    store: &dyn Store,
    account: AccountId,
    flows: &mut Vec<RetrievedFlow>,
    ids: &[FlowId],
) {
    for id in ids {
        if !flows.iter().any(|f| f.id == *id)
            && let Ok(record) = store.get_flow(account, *id).await
        {
            flows.push(RetrievedFlow::from_summary(&record.summary));
        }
    }
}

/// The step of `flow` whose words best match the query (its title, text, help and expected result:
/// commands are left out, their paths and switches would drown the words), if any matches at all.
fn closest_step(query: &FlowQuery, flow: &Flow) -> Option<CitedStep> {
    let fields = |parts: [Option<&String>; 4]| {
        parts
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(" ")
    };
    let steps: Vec<(String, String, String)> = match &flow.body {
        FlowBody::Tree(tree) => tree
            .nodes
            .iter()
            .map(|n| {
                let text = n.title.clone().unwrap_or_else(|| n.text.clone());
                let words = fields([
                    n.title.as_ref(),
                    Some(&n.text),
                    n.help.as_ref(),
                    n.expect.as_ref(),
                ]);
                (n.id.clone(), text, words)
            })
            .collect(),
        FlowBody::Checklist(checklist) | FlowBody::Maintenance { checklist, .. } => checklist
            .items()
            .map(|item| {
                let s = item.step;
                let words = fields([
                    Some(&item.section.title),
                    Some(&s.text),
                    s.help.as_ref(),
                    s.expect.as_ref(),
                ]);
                (s.id.clone(), s.text.clone(), words)
            })
            .collect(),
    };
    let documents: Vec<String> = steps.iter().map(|(_, _, words)| words.clone()).collect();
    let (best, _) = *bm25_rank(query, &documents).first()?;
    let (id, text, _) = &steps[best];
    Some(CitedStep {
        id: id.clone(),
        text: text.clone(),
    })
}

/// The resolved sessions (indexes, most recent first) an embedding ranking compares: the best
/// full-text matches, topped up with the most recent sessions, at most [`EMBED_SESSIONS`].
fn embedding_candidates(ranking: &[(usize, f64)], total: usize) -> Vec<usize> {
    let mut picked: Vec<usize> = ranking
        .iter()
        .take(EMBED_SESSIONS)
        .map(|(i, _)| *i)
        .collect();
    for i in 0..total {
        if picked.len() >= EMBED_SESSIONS {
            break;
        }
        if !picked.contains(&i) {
            picked.push(i);
        }
    }
    picked
}

/// Reciprocal rank fusion of several rankings: each item scores Σ 1 / (k + rank).
pub fn rrf<T: Copy + Eq + std::hash::Hash>(rankings: &[Vec<T>]) -> HashMap<T, f64> {
    let mut scores: HashMap<T, f64> = HashMap::new();
    for ranking in rankings {
        for (rank, item) in ranking.iter().enumerate() {
            *scores.entry(*item).or_default() += 1.0 / (RRF_K + rank as f64 + 1.0);
        }
    }
    scores
}

/// Okapi BM25 of `documents` for the query's terms (a term of four letters or more also matches
/// words it starts), best first; documents matching nothing are left out.
pub fn bm25_rank(query: &FlowQuery, documents: &[String]) -> Vec<(usize, f64)> {
    const K1: f64 = 1.2;
    const B: f64 = 0.75;
    if documents.is_empty() {
        return Vec::new();
    }
    let tokenised: Vec<Vec<String>> = documents.iter().map(|d| tokens(d)).collect();
    let average = tokenised.iter().map(Vec::len).sum::<usize>() as f64 / documents.len() as f64;
    let n = documents.len() as f64;
    let matches = |term: &crate::flow::QueryTerm, word: &str| {
        word == term.text || (term.prefix && word.starts_with(term.text.as_str()))
    };
    let mut scores = vec![0.0; documents.len()];
    for term in &query.terms {
        let df = tokenised
            .iter()
            .filter(|words| words.iter().any(|w| matches(term, w)))
            .count() as f64;
        if df == 0.0 {
            continue;
        }
        let idf = ((n - df + 0.5) / (df + 0.5) + 1.0).ln();
        for (i, words) in tokenised.iter().enumerate() {
            let tf = words.iter().filter(|w| matches(term, w)).count() as f64;
            if tf > 0.0 {
                let norm = 1.0 - B + B * words.len() as f64 / average.max(1.0);
                scores[i] += idf * tf * (K1 + 1.0) / (tf + K1 * norm);
            }
        }
    }
    let mut ranked: Vec<(usize, f64)> = scores
        .into_iter()
        .enumerate()
        .filter(|(_, s)| *s > 0.0)
        .collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked
}

fn tokens(text: &str) -> Vec<String> {
    text.to_lowercase()
        .replace(['\'', '’'], "")
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Cosine similarity; 0 for empty or mismatched vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    if a.len() != b.len() || a.is_empty() {
        return 0.0;
    }
    let (mut dot, mut na, mut nb) = (0.0f64, 0.0f64, 0.0f64);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (f64::from(*x), f64::from(*y));
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na.sqrt() * nb.sqrt())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embeddings_compare_the_best_matches_then_the_most_recent_and_no_more() {
        let ranking: Vec<(usize, f64)> = vec![(700, 3.0), (5, 2.0), (0, 1.0)];
        let picked = embedding_candidates(&ranking, 1_000);
        assert_eq!(picked.len(), EMBED_SESSIONS);
        assert_eq!(&picked[..5], &[700, 5, 0, 1, 2]);
        let unique: std::collections::HashSet<_> = picked.iter().collect();
        assert_eq!(unique.len(), picked.len());
        assert_eq!(embedding_candidates(&[], 3), vec![0, 1, 2]);
        let many: Vec<(usize, f64)> = (0..80).rev().map(|i| (i, i as f64)).collect();
        assert_eq!(embedding_candidates(&many, 80)[0], 79);
        assert_eq!(embedding_candidates(&many, 80).len(), EMBED_SESSIONS);
    }

    #[test]
    fn the_closest_step_is_found_in_trees_and_checklists() {
        let printer = crate::flow::parse_flow_yaml(
            "printer-offline.yaml",
            include_str!("../../../../flows/printer-offline.yaml"),
        )
        .unwrap();
        let step = closest_step(
            &FlowQuery::from_problem("print spooler keeps stopping"),
            &printer,
        )
        .unwrap();
        assert!(step.id.contains("spooler"), "{step:?}");
        let patching = crate::flow::parse_flow_yaml(
            "monthly-patch-compliance.yaml",
            include_str!("../../../../flows/monthly-patch-compliance.yaml"),
        )
        .unwrap();
        for (problem, expected) in [
            (
                "updates failed to install on the file server",
                "failed-updates",
            ),
            (
                "server stuck waiting for reboot after updates",
                "pending-reboot",
            ),
            ("backups did not run last night", "backups"),
        ] {
            let step = closest_step(&FlowQuery::from_problem(problem), &patching).unwrap();
            assert_eq!(step.id, expected, "{problem}: {step:?}");
        }
        assert_eq!(
            closest_step(&FlowQuery::from_problem("zebra"), &printer),
            None
        );
    }

    #[test]
    fn bm25_prefers_the_document_about_the_problem() {
        let docs = vec![
            "printer shows offline, restarted the spooler".to_owned(),
            "outlook keeps asking for the password".to_owned(),
            "vpn drops every hour".to_owned(),
        ];
        let ranked = bm25_rank(&FlowQuery::from_problem("Outlook password prompt"), &docs);
        assert_eq!(ranked[0].0, 1);
        assert!(ranked.iter().all(|(i, _)| *i != 2));
    }

    #[test]
    fn rrf_rewards_agreement() {
        let scores = rrf(&[vec!['a', 'b', 'c'], vec!['b', 'a'], vec!['b']]);
        assert!(scores[&'b'] > scores[&'a']);
        assert!(scores[&'a'] > scores[&'c']);
    }

    #[test]
    fn cosine_handles_edges() {
        assert_eq!(cosine(&[], &[]), 0.0);
        assert_eq!(cosine(&[1.0, 0.0], &[0.0, 0.0]), 0.0);
        assert!((cosine(&[1.0, 2.0], &[2.0, 4.0]) - 1.0).abs() < 1e-9);
    }
}
