//! One command at a time per aggregate, within a process.
//!
//! Two commands on one aggregate that overlap in one process could only end one way: the
//! second loads while the first has its cached state checked out (a miss, so it replays the
//! aggregate's whole history), decides on the version before the first's events, and loses
//! at the append with a conflict. Under the held load that was a wallet's thousand events
//! replayed, and a 409, for about one deposit in twenty. Waiting for the first to finish
//! instead costs the second nothing it would not have spent anyway, and it then decides on
//! the cached state, current and complete. Commands from other processes still meet at the
//! append's optimistic concurrency check, as before.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::{Mutex as TurnLock, OwnedMutexGuard};
use uuid::Uuid;

/// An aggregate: its type and id.
type Key = (&'static str, Uuid);

/// The aggregates with a command running or waiting, each with the lock its commands take
/// in arrival order. An entry lives only while some command holds or waits for it.
#[derive(Default)]
pub struct Turns {
    locks: Mutex<HashMap<Key, Arc<TurnLock<()>>>>,
}

/// A command's turn on its aggregate; the next waiting command goes when it is dropped.
pub struct Turn<'a> {
    turns: &'a Turns,
    key: Key,
    guard: Option<OwnedMutexGuard<()>>,
}

impl Turns {
    /// Waits until no other command of this process runs on the aggregate.
    pub async fn take(&self, aggregate_type: &'static str, id: Uuid) -> Turn<'_> {
        let key = (aggregate_type, id);
        let lock = self.locks().entry(key).or_default().clone();
        Turn {
            turns: self,
            key,
            guard: Some(lock.lock_owned().await),
        }
    }

    /// The map, also after a panic while it was held: each operation on it is whole.
    fn locks(&self) -> MutexGuard<'_, HashMap<Key, Arc<TurnLock<()>>>> {
        self.locks.lock().unwrap_or_else(|poisoned| {
            self.locks.clear_poison();
            poisoned.into_inner()
        })
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.locks().len()
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut locks = self.turns.locks();
        // Only the map holds it: nobody waits (waiters clone it under this same map lock).
        if locks
            .get(&self.key)
            .is_some_and(|l| Arc::strong_count(l) == 1)
        {
            locks.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test]
    async fn commands_on_one_aggregate_take_turns_and_leave_nothing_behind() {
        let turns = Arc::new(Turns::default());
        let (running, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let id = Uuid::new_v4();
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let (turns, running, most) = (turns.clone(), running.clone(), most.clone());
                tokio::spawn(async move {
                    let _turn = turns.take("Wallet", id).await;
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    running.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("task");
        }
        assert_eq!(most.load(Ordering::SeqCst), 1);
        assert_eq!(turns.len(), 0);
    }

    #[tokio::test]
    async fn commands_on_different_aggregates_run_side_by_side() {
        let turns = Turns::default();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let _first = turns.take("Wallet", a).await;
        let second = tokio::time::timeout(Duration::from_secs(1), turns.take("Wallet", b)).await;
        assert!(second.is_ok(), "another aggregate's command waited");
    }
}
