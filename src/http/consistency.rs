//! Read your writes (DESIGN.md guarantee 12): a query with `X-Min-Position` waits, bounded,
//! until the projection it reads has applied that position, and otherwise answers 503 rather
//! than stale data.
//!
//! Projections announce each checkpoint on core NATS (`bountyline_projections::signal`); one
//! subscription per API process keeps the latest in a watch channel. Waiters also re-read the
//! checkpoint table now and then, so a lost announcement costs a little latency, never a wrong
//! answer.

use async_nats::Client;
use bountyline_projections::signal::position_of;
use futures::StreamExt;
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

    /// Follows the projections' announcements on `subjects` (their last token names the
    /// projection) until shutdown.
    pub async fn listen(self, nats: Client, subjects: String, mut shutdown: watch::Receiver<bool>) {
        while !*shutdown.borrow() {
            let failure = match nats.subscribe(subjects.clone()).await {
                Ok(mut announcements) => loop {
                    tokio::select! {
                        next = announcements.next() => match next {
                            Some(message) => self.announced(&message.subject, &message.payload),
                            None => break "the subscription ended".to_owned(),
                        },
                        _ = shutdown.changed() => return,
                    }
                },
                Err(e) => e.to_string(),
            };
            tracing::warn!(error = %failure, "projection progress subscription failed; retrying");
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    fn announced(&self, subject: &str, payload: &[u8]) {
        if let (Some((_, projection)), Some(position)) =
            (subject.rsplit_once('.'), position_of(payload))
        {
            self.advance(projection, position);
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

    /// The newest checkpoint of `projection` this process knows of (0: none yet).
    pub fn position(&self, projection: &str) -> i64 {
        self.positions
            .borrow()
            .get(projection)
            .copied()
            .unwrap_or(0)
    }

    /// Returns once `projection` has applied `position`, or 503 after `timeout`. The wait is
    /// the request's read-model time in `Server-Timing`.
    pub async fn wait_for(
        &self,
        projection: &str,
        position: Option<i64>,
        timeout: Duration,
    ) -> ApiResult<()> {
        crate::timing::waiting_for_read_model(self.wait(projection, position, timeout)).await
    }

    async fn wait(
        &self,
        projection: &str,
        position: Option<i64>,
        timeout: Duration,
    ) -> ApiResult<()> {
        let Some(position) = position else {
            return Ok(());
        };
        if self.position(projection) >= position {
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
            if self.position(projection) >= position {
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
            if tokio::time::Instant::now() >= deadline && self.position(projection) < position {
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
