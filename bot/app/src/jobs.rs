//! The background worker: takes due jobs from the database and runs them with the dispatcher.
//! Any number of workers, in any number of replicas, share the queue safely.

use rf_core::Store;
use rf_core::dispatch::Dispatcher;
use rf_core::jobs::{JobRecord, JobResult};
use rf_core::time::Clock;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinSet;

/// How many jobs one claim takes.
const BATCH: usize = 16;
/// How many jobs one worker runs at once, at most.
const CONCURRENCY: usize = 32;
/// How long a stopping worker waits for the jobs it is running.
const DRAIN_LIMIT: Duration = Duration::from_secs(20);

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

    /// Runs every job that is due now, then returns how many ran (the console runs this between
    /// lines, so scripted sessions are deterministic).
    pub async fn run_due(&self) -> usize {
        let mut ran = 0;
        // Bounded: jobs that schedule more due jobs cannot keep this loop going forever.
        for _ in 0..32 {
            let jobs = self.claim(BATCH).await;
            if jobs.is_empty() {
                break;
            }
            ran += jobs.len();
            futures::future::join_all(
                by_lane(jobs)
                    .into_iter()
                    .map(|queue| self.clone().run_lane(queue)),
            )
            .await;
        }
        ran
    }

    /// Takes up to `limit` due jobs (none when the database fails; the caller tries again later).
    async fn claim(&self, limit: usize) -> Vec<JobRecord> {
        let limit = i64::try_from(limit.min(BATCH)).unwrap_or(1);
        match self
            .store
            .claim_jobs(&self.id, self.clock.now(), self.lease_millis, limit)
            .await
        {
            Ok(jobs) => jobs,
            Err(e) => {
                tracing::warn!(error = %e, "could not take jobs; retrying shortly");
                Vec::new()
            }
        }
    }

    /// Runs one lane's jobs in order; returns how many ran.
    async fn run_lane(self, queue: Vec<JobRecord>) -> usize {
        let count = queue.len();
        for job in queue {
            self.run_one(job).await;
        }
        count
    }

    /// Keeps the leases of the jobs this worker is running alive (only those: a job whose task
    /// died is left to its lease, and retried when that runs out).
    async fn renew_leases(&self, running: &HashMap<tokio::task::Id, Vec<uuid::Uuid>>) {
        let jobs: Vec<uuid::Uuid> = running.values().flatten().copied().collect();
        if jobs.is_empty() {
            return;
        }
        let now = self.clock.now();
        if let Err(e) = self
            .store
            .renew_job_leases(&self.id, &jobs, now.plus_millis(self.lease_millis), now)
            .await
        {
            tracing::warn!(error = %e, "could not renew the leases of running jobs");
        }
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

    /// Runs until `shutdown` resolves. Jobs are taken as they come due, up to [`CONCURRENCY`] at
    /// a time, each lane's in order and lanes side by side; a slow job (a model that takes a
    /// minute, a PSA outage) holds up its own lane and nothing else, and its lease is renewed
    /// while it runs so that no other worker takes it over. On shutdown, what is running is
    /// given [`DRAIN_LIMIT`] to finish; anything still running then is left to its lease, and
    /// another worker retries it once that runs out.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut running: JoinSet<usize> = JoinSet::new();
        // What each lane task is running, by task.
        let mut lanes: HashMap<tokio::task::Id, Vec<uuid::Uuid>> = HashMap::new();
        let mut renew = tokio::time::interval(self.renew_every());
        renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            self.purge().await;
            loop {
                let in_flight: usize = lanes.values().map(Vec::len).sum();
                if in_flight >= CONCURRENCY {
                    break;
                }
                let jobs = self.claim(CONCURRENCY - in_flight).await;
                if jobs.is_empty() {
                    break;
                }
                for queue in by_lane(jobs) {
                    let ids = queue.iter().map(|job| job.id).collect();
                    let task = running.spawn(self.clone().run_lane(queue));
                    lanes.insert(task.id(), ids);
                }
            }
            tokio::select! {
                () = &mut shutdown => break,
                Some(done) = running.join_next_with_id() => finished(&mut lanes, done),
                () = self.wake.notified() => {},
                () = tokio::time::sleep(self.poll) => {},
                _ = renew.tick(), if !running.is_empty() => self.renew_leases(&lanes).await,
            }
        }
        let drain = tokio::time::sleep(DRAIN_LIMIT);
        tokio::pin!(drain);
        while !running.is_empty() {
            tokio::select! {
                Some(done) = running.join_next_with_id() => finished(&mut lanes, done),
                _ = renew.tick() => self.renew_leases(&lanes).await,
                () = &mut drain => {
                    tracing::warn!(
                        jobs = lanes.values().map(Vec::len).sum::<usize>(),
                        "jobs still running at shutdown; another worker retries them when their lease runs out"
                    );
                    running.abort_all();
                    break;
                }
            }
        }
        tracing::info!(worker = %self.id, "job worker stopped");
    }

    /// How often running jobs' leases are renewed: three times a lease.
    fn renew_every(&self) -> Duration {
        Duration::from_millis(u64::try_from(self.lease_millis / 3).unwrap_or(0).max(100))
    }
}

/// Jobs grouped by lane, each group in the order taken (due first, then oldest first).
fn by_lane(jobs: Vec<JobRecord>) -> Vec<Vec<JobRecord>> {
    let mut lanes: Vec<(String, Vec<JobRecord>)> = Vec::new();
    for job in jobs {
        let lane = job.job.lane();
        match lanes.iter_mut().find(|(l, _)| *l == lane) {
            Some((_, queue)) => queue.push(job),
            None => lanes.push((lane, vec![job])),
        }
    }
    lanes.into_iter().map(|(_, queue)| queue).collect()
}

/// Forgets a finished lane task. One that panicked is logged; the jobs it had not finished keep
/// their leases, which are no longer renewed, so they are retried once those run out.
fn finished(
    lanes: &mut HashMap<tokio::task::Id, Vec<uuid::Uuid>>,
    done: Result<(tokio::task::Id, usize), tokio::task::JoinError>,
) {
    let id = match &done {
        Ok((id, _)) => *id,
        Err(error) => {
            if error.is_panic() {
                tracing::error!("a job panicked; it is retried when its lease runs out");
            }
            error.id()
        }
    };
    lanes.remove(&id);
}

fn hostname() -> String {
    std::env::var("HOSTNAME").unwrap_or_else(|_| "rf".to_owned())
}
