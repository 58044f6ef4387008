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
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *map.entry(labels.iter().map(|l| (*l).to_owned()).collect())
            .or_default() += 1;
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
