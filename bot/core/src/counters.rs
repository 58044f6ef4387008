//! Operational counters (what the product did, since this process started), rendered by the app
//! in the Prometheus text format. Plain atomics: the core stays free of any metrics library.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A counter family with label values.
#[derive(Debug, Default)]
struct Family(Mutex<BTreeMap<Vec<String>, u64>>);

impl Family {
    fn add(&self, labels: &[&str]) {
        self.add_n(labels, 1);
    }

    fn add_n(&self, labels: &[&str], n: u64) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *map.entry(labels.iter().map(|l| (*l).to_owned()).collect())
            .or_default() += n;
    }

    fn snapshot(&self) -> Vec<(Vec<String>, u64)> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }
}

#[derive(Debug, Default)]
struct Inner {
    sessions_started: AtomicU64,
    session_events: AtomicU64,
    escalations: AtomicU64,
    claims: Family,
    deliveries: Family,
    jobs: Family,
    ai_calls: Family,
    ai_tokens: Family,
    ai_cost: Family,
}

/// Shared counters. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Counters(Arc<Inner>);

impl Counters {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn session_started(&self) {
        self.0.sessions_started.fetch_add(1, Ordering::Relaxed);
    }

    pub fn session_event(&self) {
        self.0.session_events.fetch_add(1, Ordering::Relaxed);
    }

    pub fn escalated(&self) {
        self.0.escalations.fetch_add(1, Ordering::Relaxed);
    }

    /// `won`, `lost` or `refused`.
    pub fn claim(&self, outcome: &str) {
        self.0.claims.add(&[outcome]);
    }

    pub fn delivery(&self, channel: &str, status: &str) {
        self.0.deliveries.add(&[channel, status]);
    }

    /// `done`, `retry` or `failed`.
    pub fn job(&self, kind: &str, result: &str) {
        self.0.jobs.add(&[kind, result]);
    }

    /// Model calls made for `purpose` (`turn`, `resolution_note`, `assessment`, `flow_draft`):
    /// how many, their tokens and their estimated cost. Offline "calls" are not model calls and
    /// are not counted.
    pub fn ai_calls(&self, purpose: &str, calls: &[crate::ai::ModelCall]) {
        for call in calls.iter().filter(|c| c.tier != crate::ai::Tier::Offline) {
            let outcome = if call.problem.is_some() {
                "unused"
            } else {
                "used"
            };
            let model = [call.provider.as_str(), call.model.as_str()];
            self.0
                .ai_calls
                .add(&[model[0], model[1], call.tier.as_str(), purpose, outcome]);
            for (kind, n) in [
                ("input", call.input_tokens),
                ("output", call.output_tokens),
                ("cache_read", call.cached_tokens),
                ("cache_write", call.cache_write_tokens),
            ] {
                if n > 0 {
                    self.0.ai_tokens.add_n(&[model[0], model[1], kind], n);
                }
            }
            self.0.ai_cost.add_n(&model, call.cost_micros);
        }
    }

    /// The counters in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, value: u64| {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n"
            ));
        };
        counter(
            "rf_sessions_started_total",
            "Troubleshooting sessions started.",
            self.0.sessions_started.load(Ordering::Relaxed),
        );
        counter(
            "rf_session_events_total",
            "Session events committed (messages, answers, commands).",
            self.0.session_events.load(Ordering::Relaxed),
        );
        counter(
            "rf_escalations_total",
            "Sessions escalated to a senior.",
            self.0.escalations.load(Ordering::Relaxed),
        );
        family(
            &mut out,
            "rf_claims_total",
            "Claim attempts by outcome.",
            &["outcome"],
            &self.0.claims,
        );
        family(
            &mut out,
            "rf_deliveries_total",
            "Notification deliveries by channel and final status.",
            &["channel", "status"],
            &self.0.deliveries,
        );
        family(
            &mut out,
            "rf_jobs_total",
            "Background jobs run, by kind and result.",
            &["kind", "result"],
            &self.0.jobs,
        );
        family(
            &mut out,
            "rf_ai_calls_total",
            "Model calls, by provider, model, tier, purpose and whether the answer was used.",
            &["provider", "model", "tier", "purpose", "outcome"],
            &self.0.ai_calls,
        );
        family(
            &mut out,
            "rf_ai_tokens_total",
            "Tokens the model calls used, by kind (input, output, cache_read, cache_write).",
            &["provider", "model", "kind"],
            &self.0.ai_tokens,
        );
        family(
            &mut out,
            "rf_ai_cost_microdollars_total",
            "Estimated cost of the model calls, in millionths of a US dollar.",
            &["provider", "model"],
            &self.0.ai_cost,
        );
        out
    }
}

fn family(out: &mut String, name: &str, help: &str, labels: &[&str], values: &Family) {
    out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} counter\n"));
    for (label_values, value) in values.snapshot() {
        let labels: Vec<String> = labels
            .iter()
            .zip(&label_values)
            .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
            .collect();
        out.push_str(&format!("{name}{{{}}} {value}\n", labels.join(",")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_in_prometheus_format() {
        let counters = Counters::new();
        counters.escalated();
        counters.claim("won");
        counters.claim("lost");
        counters.claim("lost");
        counters.delivery("chat_card", "sent");
        let text = counters.render();
        assert!(
            text.contains("# TYPE rf_escalations_total counter\nrf_escalations_total 1\n"),
            "{text}"
        );
        assert!(
            text.contains("rf_claims_total{outcome=\"lost\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("rf_deliveries_total{channel=\"chat_card\",status=\"sent\"} 1\n"),
            "{text}"
        );
    }
}
