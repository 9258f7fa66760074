//! Read your writes (DESIGN.md guarantee 12): a query with `X-Min-Position` waits, bounded,
//! until the projection it reads has applied that position, and otherwise answers 503 rather
//! than stale data.
//!
//! Projections announce progress with NOTIFY; one listener per API process keeps the latest
//! checkpoints in a watch channel. Waiters also re-read the checkpoint table now and then, so
//! a lost notification costs a little latency, never a wrong answer.

use sqlx::postgres::PgListener;
use sqlx::PgPool;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

use super::error::{ApiError, ApiResult};

#[derive(Clone)]
pub struct ProjectionProgress {
    pool: PgPool,
    positions: Arc<watch::Sender<HashMap<String, i64>>>,
}

impl ProjectionProgress {
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            positions: Arc::new(watch::channel(HashMap::new()).0),
        }
    }

    /// Follows the projections' NOTIFY channel until shutdown.
    pub async fn listen(self, mut shutdown: watch::Receiver<bool>) {
        while !*shutdown.borrow() {
            if let Err(e) = self.follow(&mut shutdown).await {
                tracing::warn!(error = %e, "projection progress listener failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = shutdown.changed() => {}
                }
            }
        }
    }

    async fn follow(&self, shutdown: &mut watch::Receiver<bool>) -> Result<(), sqlx::Error> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen("bountyline_projection").await?;
        loop {
            tokio::select! {
                n = listener.recv() => {
                    let n = n?;
                    if let Some((name, pos)) = n.payload().rsplit_once(':') {
                        if let Ok(pos) = pos.parse::<i64>() {
                            self.advance(name, pos);
                        }
                    }
                }
                _ = shutdown.changed() => return Ok(()),
            }
        }
    }

    fn advance(&self, projection: &str, position: i64) {
        self.positions.send_if_modified(|m| {
            let entry = m.entry(projection.to_owned()).or_insert(0);
            if position > *entry {
                *entry = position;
                true
            } else {
                false
            }
        });
    }

    /// Every projection's latest checkpoint, changing as they advance.
    pub fn changes(&self) -> watch::Receiver<HashMap<String, i64>> {
        self.positions.subscribe()
    }

    fn known(&self, projection: &str) -> i64 {
        self.positions
            .borrow()
            .get(projection)
            .copied()
            .unwrap_or(0)
    }

    /// Returns once `projection` has applied `position`, or 503 after `timeout`.
    pub async fn wait_for(
        &self,
        projection: &str,
        position: Option<i64>,
        timeout: Duration,
    ) -> ApiResult<()> {
        let Some(position) = position else {
            return Ok(());
        };
        if self.known(projection) >= position {
            return Ok(());
        }
        // A position past the store's head was never answered by a command: refuse it at once
        // rather than hold the request (and a worker) for the whole wait.
        let head: i64 = sqlx::query_scalar("SELECT coalesce(max(position), 0) FROM events")
            .fetch_one(&self.pool)
            .await?;
        if position > head {
            return Err(ApiError::invalid_field(
                "X-Min-Position",
                format!("is past the newest event ({head}); send a position a command answered"),
            ));
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let mut rx = self.positions.subscribe();
        loop {
            if self.known(projection) >= position {
                return Ok(());
            }
            let stored = bountyline_projections::checkpoint::read(&self.pool, projection).await?;
            self.advance(projection, stored);
            if stored >= position {
                return Ok(());
            }
            let poll = tokio::time::Instant::now() + Duration::from_millis(250);
            tokio::select! {
                _ = rx.changed() => {}
                _ = tokio::time::sleep_until(poll.min(deadline)) => {}
            }
            if tokio::time::Instant::now() >= deadline && self.known(projection) < position {
                return Err(ApiError::Unavailable {
                    detail: format!(
                        "the {projection} read model has not reached position {position} yet"
                    ),
                    retry_after: 1,
                });
            }
        }
    }
}
