//! Fans the event stream out to live subscribers in this process. Events are rows in the database,
//! so every replica sees every event: on PostgreSQL a `NOTIFY` in the writing transaction wakes
//! all replicas' feeders at commit; on one node a local wake-up does.

use rf_core::Store;
use rf_core::outbox::HandoffEvent;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, broadcast};

/// How often the feeder looks for events when nothing wakes it (a missed notification).
const POLL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct EventFeed {
    sender: broadcast::Sender<HandoffEvent>,
    wake: Arc<Notify>,
}

impl EventFeed {
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity);
        Self {
            sender,
            wake: Arc::new(Notify::new()),
        }
    }

    pub fn sender(&self) -> broadcast::Sender<HandoffEvent> {
        self.sender.clone()
    }

    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Reads new events and broadcasts them, in order, until `shutdown`.
    pub async fn run(
        self,
        store: Arc<dyn Store>,
        postgres: Option<sqlx::PgPool>,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        if let Some(pool) = postgres {
            let wake = self.wake.clone();
            tokio::spawn(async move { listen(pool, wake).await });
        }
        let mut last = match store.latest_event_seq().await {
            Ok(seq) => seq,
            Err(e) => {
                tracing::error!(error = %e, "event feed could not start");
                0
            }
        };
        tokio::pin!(shutdown);
        loop {
            // The store makes `seq` visible in order (see `insert_events`), so a hole is a rollback:
            // nothing to wait for.
            match store.events_after(last, 500).await {
                Ok(events) => {
                    for event in events {
                        last = event.seq;
                        // No subscribers is fine.
                        let _ = self.sender.send(event);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "event feed read failed; retrying"),
            }
            tokio::select! {
                () = &mut shutdown => break,
                () = self.wake.notified() => {},
                () = tokio::time::sleep(POLL) => {},
            }
        }
    }
}

/// Wakes the feeder whenever any replica commits events.
async fn listen(pool: sqlx::PgPool, wake: Arc<Notify>) {
    loop {
        match sqlx::postgres::PgListener::connect_with(&pool).await {
            Ok(mut listener) => {
                if let Err(e) = listener.listen("rf_events").await {
                    tracing::warn!(error = %e, "LISTEN rf_events failed");
                } else {
                    while listener.recv().await.is_ok() {
                        wake.notify_one();
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not open the PostgreSQL listener"),
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}
