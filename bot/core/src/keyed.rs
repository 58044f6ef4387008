//! One-at-a-time processing per key (a chat thread), concurrent across keys.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

/// Hands out one async lock per key; locks nobody holds are forgotten.
#[derive(Debug, Clone, Default)]
pub struct KeyedLocks {
    locks: Arc<Mutex<HashMap<String, Weak<AsyncMutex<()>>>>>,
}

/// Stale entries are swept once the map grows past this.
const SWEEP_AT: usize = 1024;

impl KeyedLocks {
    pub fn new() -> Self {
        Self::default()
    }

    /// Waits for the key's lock; events holding the same key run strictly in arrival order.
    pub async fn lock(&self, key: &str) -> OwnedMutexGuard<()> {
        let lock = {
            let mut map = self
                .locks
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            match map.get(key).and_then(Weak::upgrade) {
                Some(lock) => lock,
                None => {
                    if map.len() >= SWEEP_AT {
                        map.retain(|_, weak| weak.strong_count() > 0);
                    }
                    let lock = Arc::new(AsyncMutex::new(()));
                    map.insert(key.to_owned(), Arc::downgrade(&lock));
                    lock
                }
            }
        };
        lock.lock_owned().await
    }

    /// How many keys are currently tracked (for tests and metrics).
    pub fn tracked(&self) -> usize {
        self.locks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .values()
            .filter(|weak| weak.strong_count() > 0)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn same_key_is_serialised() {
        let locks = KeyedLocks::new();
        let order = Arc::new(Mutex::new(Vec::new()));
        let first = locks.lock("thread-a").await;
        let (l2, o2) = (locks.clone(), order.clone());
        let waiter = tokio::spawn(async move {
            let _g = l2.lock("thread-a").await;
            o2.lock().unwrap().push("second");
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        order.lock().unwrap().push("first");
        drop(first);
        waiter.await.unwrap();
        assert_eq!(*order.lock().unwrap(), ["first", "second"]);
    }

    #[tokio::test]
    async fn different_keys_do_not_wait() {
        let locks = KeyedLocks::new();
        let _a = locks.lock("thread-a").await;
        let b = tokio::time::timeout(Duration::from_millis(100), locks.lock("thread-b")).await;
        assert!(b.is_ok());
        assert_eq!(locks.tracked(), 2);
    }

    #[tokio::test]
    async fn released_keys_are_forgotten() {
        let locks = KeyedLocks::new();
        drop(locks.lock("gone").await);
        assert_eq!(locks.tracked(), 0);
    }
}
