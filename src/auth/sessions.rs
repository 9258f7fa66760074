//! Whether an access token's session still stands, asked on every authenticated request.
//!
//! The answer comes from `refresh_tokens` (see [`refresh::session_is_live`]); a live answer is
//! kept for `auth.session_cache_ms` so that a busy client costs one look-up per interval, not
//! one per request. The process that ends a session forgets it at once (a refresh forgets the
//! spent session; a logout or a detected reuse forgets every session), so there the old token
//! is refused at once; other API processes refuse it once their kept answer is older than the
//! interval (1 s by default). 0 asks the database every time.

use std::time::Duration;

use sqlx::PgPool;
use uuid::Uuid;

use crate::auth::refresh;
use crate::http::error::ApiResult;
use crate::kept::Kept;

/// Beyond this many kept answers the cache starts again empty: its memory stays bounded.
const MAX_KEPT: usize = 100_000;

pub struct Sessions {
    pool: PgPool,
    live: Option<Kept<Uuid, ()>>,
}

impl Sessions {
    pub fn new(pool: PgPool, keep_for: Duration) -> Self {
        Self {
            pool,
            live: (!keep_for.is_zero()).then(|| Kept::new(MAX_KEPT, keep_for)),
        }
    }

    pub async fn is_live(&self, session: Uuid) -> ApiResult<bool> {
        if self
            .live
            .as_ref()
            .is_some_and(|kept| kept.get(&session).is_some())
        {
            return Ok(true);
        }
        let live = refresh::session_is_live(&self.pool, session).await?;
        if let (true, Some(kept)) = (live, &self.live) {
            kept.put(session, ());
        }
        Ok(live)
    }

    /// A session this process just ended (its refresh token was rotated).
    pub fn forget(&self, session: Uuid) {
        if let Some(kept) = &self.live {
            kept.forget(&session);
        }
    }

    /// Sessions ended whose ids this process does not know (a logout or a reuse revokes a
    /// whole family): forget every kept answer.
    pub fn forget_all(&self) {
        if let Some(kept) = &self.live {
            kept.forget_all();
        }
    }
}
