//! The `stats` topic: snapshots of the stats read model, not events. One feed per API process
//! takes a snapshot when the stats projection advances (and every few seconds, since "per
//! minute" figures move with the clock), at most [`MIN_INTERVAL`] apart, and only while
//! someone is watching; each subscriber gets the current snapshot at once and every later one
//! that differs. A snapshot's `id` is the position it includes, so a resuming client simply
//! gets the current figures: a state is never replayed.

use actix_web_lab::sse;
use bountyline_projections::stats::query::{snapshot, Stats};
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch, Notify};

use super::hub::{Ends, Slot, Stream};
use crate::http::consistency::ProjectionProgress;

/// Coalescing: at most this often (a few per second).
const MIN_INTERVAL: Duration = Duration::from_millis(500);
/// Without new events the per-minute figures still decay: refresh this often.
const IDLE_REFRESH: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct StatsFeed {
    latest: watch::Sender<Option<Arc<Stats>>>,
    /// A subscriber arrived to find no snapshot: take one now.
    wanted: Arc<Notify>,
    shutdown: watch::Receiver<bool>,
}

impl StatsFeed {
    pub fn new(shutdown: watch::Receiver<bool>) -> Self {
        Self {
            latest: watch::channel(None).0,
            wanted: Arc::new(Notify::new()),
            shutdown,
        }
    }

    /// Takes snapshots until shutdown.
    pub async fn run(self, pool: PgPool, progress: ProjectionProgress) {
        let mut shutdown = self.shutdown.clone();
        let mut advanced = progress.changes();
        let mut seen = 0;
        loop {
            tokio::select! {
                _ = advanced.changed() => {
                    let stats = advanced.borrow_and_update().get("stats").copied().unwrap_or(0);
                    if stats == seen {
                        continue;
                    }
                    seen = stats;
                }
                _ = self.wanted.notified() => {}
                _ = tokio::time::sleep(IDLE_REFRESH) => {}
                _ = shutdown.changed() => return,
            }
            if self.latest.receiver_count() == 0 {
                // Nobody watching: drop the old figures rather than serve them stale later.
                self.latest.send_replace(None);
                continue;
            }
            match snapshot(&pool).await {
                Ok(stats) => {
                    self.latest.send_if_modified(|latest| {
                        let changed = latest
                            .as_deref()
                            .is_none_or(|old| !same_figures(old, &stats));
                        if changed {
                            *latest = Some(Arc::new(stats));
                        }
                        changed
                    });
                }
                Err(e) => tracing::warn!(error = %e, "stats snapshot failed"),
            }
            tokio::select! {
                _ = tokio::time::sleep(MIN_INTERVAL) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// A subscriber: the current snapshot, then each new one, until the client goes.
    pub fn subscribe(&self, slot: Slot, buffer: usize, mut until: Ends) -> Stream {
        let (tx, rx) = mpsc::channel(buffer);
        let mut latest = self.latest.subscribe();
        let wanted = self.wanted.clone();
        let mut shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let gauge = metrics::gauge!("bountyline_sse_clients");
            gauge.increment(1.0);
            if latest.borrow().is_none() {
                wanted.notify_one();
            }
            loop {
                let current = latest.borrow_and_update().clone();
                if let Some(stats) = current {
                    if tx.send(message(&stats)).await.is_err() {
                        break;
                    }
                }
                tokio::select! {
                    changed = latest.changed() => if changed.is_err() { break },
                    _ = tx.closed() => break,
                    _ = shutdown.changed() => break,
                    _ = &mut until => break,
                }
            }
            gauge.decrement(1.0);
        });
        sse::Sse::from_infallible_receiver(rx)
    }
}

/// Whether two snapshots show the same figures (the time they were taken aside).
fn same_figures(a: &Stats, b: &Stats) -> bool {
    Stats {
        at: b.at,
        ..a.clone()
    } == *b
}

fn message(stats: &Stats) -> sse::Event {
    match sse::Data::new_json(stats) {
        Ok(data) => sse::Event::Data(data.id(stats.position.to_string()).event("stats")),
        // Plain numbers and strings always serialise; say so rather than send nothing.
        Err(e) => sse::Event::Comment(format!("stats unavailable: {e}").into()),
    }
}
