//! The background worker: takes due jobs from the database and runs them with the dispatcher.
//! Any number of workers, in any number of replicas, share the queue safely.

use rf_core::Store;
use rf_core::dispatch::Dispatcher;
use rf_core::jobs::{JobRecord, JobResult};
use rf_core::time::Clock;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// How many jobs one claim takes.
const BATCH: i64 = 16;

#[derive(Debug, Clone)]
pub struct Worker {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    dispatcher: Dispatcher,
    id: String,
    lease_millis: i64,
    poll: Duration,
    wake: Arc<Notify>,
    counters: rf_core::counters::Counters,
    /// When inbound de-duplication keys were last purged (ms since the epoch).
    purged_at: Arc<std::sync::atomic::AtomicI64>,
}

/// How long inbound de-duplication keys are kept: Slack retries for an hour at most.
const INBOUND_KEPT_MILLIS: i64 = 24 * 3_600_000;
/// How often they are purged.
const PURGE_EVERY_MILLIS: i64 = 3_600_000;

impl Worker {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        dispatcher: Dispatcher,
        lease: Duration,
        poll: Duration,
    ) -> Self {
        Self {
            store,
            clock,
            dispatcher,
            id: format!("{}-{}", hostname(), uuid::Uuid::now_v7().simple()),
            lease_millis: lease.as_millis() as i64,
            poll,
            wake: Arc::new(Notify::new()),
            counters: rf_core::counters::Counters::new(),
            purged_at: Arc::new(std::sync::atomic::AtomicI64::new(0)),
        }
    }

    /// Counts job results into `counters`.
    pub fn with_counters(mut self, counters: rf_core::counters::Counters) -> Self {
        self.counters = counters;
        self
    }

    /// Shares `wake` as the signal that new work was committed.
    pub fn with_waker(mut self, wake: Arc<Notify>) -> Self {
        self.wake = wake;
        self
    }

    /// Wakes the worker now (new work was committed).
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Runs every job that is due now, then returns how many ran.
    pub async fn run_due(&self) -> usize {
        let mut ran = 0;
        // Bounded: jobs that schedule more due jobs cannot keep this loop going forever.
        for _ in 0..32 {
            let now = self.clock.now();
            let jobs = match self
                .store
                .claim_jobs(&self.id, now, self.lease_millis, BATCH)
                .await
            {
                Ok(jobs) => jobs,
                Err(e) => {
                    tracing::warn!(error = %e, "could not take jobs; retrying shortly");
                    break;
                }
            };
            if jobs.is_empty() {
                break;
            }
            ran += jobs.len();
            // One lane's jobs in order; lanes side by side, so one slow platform call does not
            // hold up every other channel.
            let mut lanes: Vec<(String, Vec<JobRecord>)> = Vec::new();
            for job in jobs {
                let lane = job.job.lane();
                match lanes.iter_mut().find(|(l, _)| *l == lane) {
                    Some((_, queue)) => queue.push(job),
                    None => lanes.push((lane, vec![job])),
                }
            }
            futures::future::join_all(lanes.into_iter().map(|(_, queue)| async move {
                for job in queue {
                    self.run_one(job).await;
                }
            }))
            .await;
        }
        ran
    }

    async fn run_one(&self, job: JobRecord) {
        let result = if job.attempts > job.max_attempts {
            JobResult::Failed {
                error: "too many attempts".to_owned(),
            }
        } else {
            self.dispatcher.run(&job).await
        };
        self.counters.job(
            job.job.kind(),
            match &result {
                JobResult::Done => "done",
                JobResult::Retry { .. } => "retry",
                JobResult::Failed { .. } => "failed",
            },
        );
        match &result {
            JobResult::Done => tracing::debug!(job.kind = job.job.kind(), "job done"),
            JobResult::Retry { error, .. } => {
                tracing::warn!(job.kind = job.job.kind(), attempt = job.attempts, %error, "job will be retried");
            }
            JobResult::Failed { error } => {
                tracing::error!(job.kind = job.job.kind(), %error, "job failed")
            }
        }
        if let Err(e) = self
            .store
            .finish_job(job.id, &self.id, &result, self.clock.now())
            .await
        {
            // The lease runs out and another worker (or this one) retries the job.
            tracing::warn!(error = %e, "could not record a job's outcome");
        }
    }

    /// Forgets old inbound de-duplication keys, at most once an hour.
    async fn purge(&self) {
        use std::sync::atomic::Ordering;
        let now = self.clock.now();
        let last = self.purged_at.load(Ordering::Relaxed);
        if now.as_millis() - last < PURGE_EVERY_MILLIS
            || self
                .purged_at
                .compare_exchange(last, now.as_millis(), Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        match self
            .store
            .purge_inbound(now.plus_millis(-INBOUND_KEPT_MILLIS))
            .await
        {
            Ok(0) => {}
            Ok(purged) => tracing::debug!(purged, "forgot old inbound delivery keys"),
            Err(e) => tracing::warn!(error = %e, "could not purge old inbound delivery keys"),
        }
    }

    /// Runs until `shutdown` resolves: due jobs at once, then waits for new work or the poll interval.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            self.purge().await;
            self.run_due().await;
            tokio::select! {
                () = &mut shutdown => break,
                () = self.wake.notified() => {},
                () = tokio::time::sleep(self.poll) => {},
            }
        }
        tracing::info!(worker = %self.id, "job worker stopped");
    }
}

fn hostname() -> String {
    std::env::var("HOSTNAME").unwrap_or_else(|_| "rf".to_owned())
}
