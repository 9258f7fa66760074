//! Reads by id gathered into shared queries: lookups that arrive while earlier ones are under
//! way go to Postgres together (`WHERE id = ANY($1)`), so a burst of `GET /v1/tasks/{id}` costs
//! a few statements, not one each. Nothing waits to fill a batch: a lookup that finds a free
//! slot goes at once, alone if it is alone; only while every slot is busy do lookups gather.
//! The price is a hand-over to the gathering task on the same thread: about 0.04 ms more for
//! a lookup on an idle server (0.23 → 0.27 ms at one connection), against 10,500 → 29,000
//! lookups/s at 64 (a release build on this machine's two cores).
//! A batch reads the read model as any single lookup would, after the request's
//! `X-Min-Position` was waited for, so an answer is never older than the position named.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, Semaphore};
use uuid::Uuid;

/// Lookups waiting for a slot; beyond it, requests wait to queue.
const QUEUE: usize = 4096;

/// The answer to one lookup: the row, if there is one; `Err` when its batch failed, and the
/// caller should read on its own (so that the error it answers with is its own).
type Answer<V> = oneshot::Sender<Result<Option<V>, BatchFailed>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchFailed;

pub struct Batched<V> {
    queue: mpsc::Sender<(Uuid, Answer<V>)>,
}

impl<V: Clone + Send + 'static> Batched<V> {
    /// Starts the gathering task; must be called within the Tokio runtime. `fetch` reads the
    /// rows of some ids (those that exist, in any order), `id` tells a row's id; at most
    /// `slots` fetches run at once, each of at most `max` ids. The task ends when the last
    /// handle is dropped.
    pub fn start<F, Fut>(slots: usize, max: usize, id: fn(&V) -> Uuid, fetch: F) -> Self
    where
        F: Fn(Vec<Uuid>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<V>, sqlx::Error>> + Send + 'static,
    {
        let (queue, mut waiting) = mpsc::channel::<(Uuid, Answer<V>)>(QUEUE);
        let (fetch, slots) = (Arc::new(fetch), Arc::new(Semaphore::new(slots)));
        tokio::spawn(async move {
            // A slot first, then whatever queued meanwhile: while every slot is busy, the
            // lookups that arrive gather for the next one.
            while let Ok(slot) = slots.clone().acquire_owned().await {
                let mut batch = Vec::with_capacity(max);
                if waiting.recv_many(&mut batch, max).await == 0 {
                    return;
                }
                let fetch = fetch.clone();
                tokio::spawn(async move {
                    let ids = batch.iter().map(|(id, _)| *id).collect();
                    let rows = fetch(ids).await;
                    drop(slot);
                    answer(batch, id, rows);
                });
            }
        });
        Self { queue }
    }

    /// The row of `id`, if there is one.
    pub async fn get(&self, id: Uuid) -> Result<Option<V>, BatchFailed> {
        let (answer, answered) = oneshot::channel();
        self.queue
            .send((id, answer))
            .await
            .map_err(|_| BatchFailed)?;
        answered.await.map_err(|_| BatchFailed)?
    }
}

fn answer<V: Clone>(
    batch: Vec<(Uuid, Answer<V>)>,
    id: fn(&V) -> Uuid,
    rows: Result<Vec<V>, sqlx::Error>,
) {
    match rows {
        Ok(rows) => {
            let rows: HashMap<Uuid, V> = rows.into_iter().map(|row| (id(&row), row)).collect();
            for (id, answer) in batch {
                let _ = answer.send(Ok(rows.get(&id).cloned()));
            }
        }
        Err(error) => {
            tracing::debug!(%error, lookups = batch.len(), "a batched lookup failed");
            for (_, answer) in batch {
                let _ = answer.send(Err(BatchFailed));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    /// The test rows are their ids, as text.
    const ROW_ID: fn(&String) -> Uuid = |row| row.parse().expect("a row is its id");

    #[tokio::test]
    async fn lookups_that_arrive_while_the_slot_is_busy_share_one_fetch() {
        let fetches = Arc::new(AtomicUsize::new(0));
        let counted = fetches.clone();
        let batched = Arc::new(Batched::start(1, 64, ROW_ID, move |ids: Vec<Uuid>| {
            counted.fetch_add(1, Ordering::SeqCst);
            async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                // Every id but the nil one has a row: itself, as text.
                Ok(ids
                    .into_iter()
                    .filter(|id| !id.is_nil())
                    .map(|id| id.to_string())
                    .collect())
            }
        }));
        let first = Uuid::new_v4();
        let busy = tokio::spawn({
            let batched = batched.clone();
            async move { batched.get(first).await }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        let ids: Vec<Uuid> = (0..20).map(|_| Uuid::new_v4()).collect();
        let answers = futures::future::join_all(
            ids.iter()
                .map(|id| batched.get(*id))
                .chain([batched.get(Uuid::nil())]),
        )
        .await;
        assert_eq!(busy.await.unwrap(), Ok(Some(first.to_string())));
        for (id, answer) in ids.iter().zip(&answers) {
            assert_eq!(answer, &Ok(Some(id.to_string())), "each gets its own row");
        }
        assert_eq!(answers[20], Ok(None), "an id without a row gets none");
        assert_eq!(
            fetches.load(Ordering::SeqCst),
            2,
            "the first alone, the rest together"
        );
    }

    #[tokio::test]
    async fn a_failed_batch_tells_each_of_its_lookups() {
        let batched = Batched::<String>::start(2, 8, ROW_ID, |_ids: Vec<Uuid>| async {
            Err(sqlx::Error::PoolTimedOut)
        });
        assert_eq!(batched.get(Uuid::new_v4()).await, Err(BatchFailed));
    }
}
