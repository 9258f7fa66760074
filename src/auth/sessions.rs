//! Whether an access token's session still stands, asked on every authenticated request.
//!
//! The answer comes from `refresh_tokens` (see [`refresh::session_is_live`]); a live answer is
//! kept for `auth.session_cache_ms` so that a busy client costs one look-up per interval, not
//! one per request. The process that ends a session forgets it at once (a refresh forgets the
//! spent session; a logout or a detected reuse forgets every session), so there the old token
//! is refused at once; other API processes refuse it once their kept answer is older than the
//! interval (1 s by default). 0 asks the database every time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sqlx::PgPool;
use uuid::Uuid;

use crate::auth::refresh;
use crate::http::error::ApiResult;

/// Beyond this many kept answers the cache starts again empty: its memory stays bounded.
const MAX_KEPT: usize = 100_000;

pub struct Sessions {
    pool: PgPool,
    keep_for: Duration,
    live: Mutex<HashMap<Uuid, Instant>>,
}

impl Sessions {
    pub fn new(pool: PgPool, keep_for: Duration) -> Self {
        Self {
            pool,
            keep_for,
            live: Mutex::default(),
        }
    }

    pub async fn is_live(&self, session: Uuid) -> ApiResult<bool> {
        if self.kept(session) {
            return Ok(true);
        }
        let live = refresh::session_is_live(&self.pool, session).await?;
        if live && !self.keep_for.is_zero() {
            let mut kept = self.lock();
            if kept.len() >= MAX_KEPT {
                kept.clear();
            }
            kept.insert(session, Instant::now());
        }
        Ok(live)
    }

    /// A session this process just ended (its refresh token was rotated).
    pub fn forget(&self, session: Uuid) {
        self.lock().remove(&session);
    }

    /// Sessions ended whose ids this process does not know (a logout or a reuse revokes a
    /// whole family): forget every kept answer.
    pub fn forget_all(&self) {
        self.lock().clear();
    }

    fn kept(&self, session: Uuid) -> bool {
        self.lock()
            .get(&session)
            .is_some_and(|at| at.elapsed() < self.keep_for)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Instant>> {
        // A panic while holding the lock cannot leave the map half-changed in a way that
        // matters: every entry is a whole answer.
        self.live
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
