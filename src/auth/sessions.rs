//! Who an access token's session is now, asked on every authenticated request: whether the
//! session still stands, whether its account is enabled, and which roles the account holds.
//! The token's own claims name the session; its roles are not trusted past this check, so a
//! demotion or a disable reaches every token at once.
//!
//! The answer comes from `refresh_tokens` and `users` (see [`refresh::session`]); a live answer
//! is kept for `auth.session_cache_ms` so that a busy client costs one look-up per interval,
//! not one per request. The process that ends sessions forgets them at once (a refresh, a
//! logout, a detected reuse, a revoke or disable: exactly the sessions ended, no one else's),
//! so there they are refused at once; other API processes refuse them once their kept answer
//! is older than the interval (1 s by default). 0 asks the database every time.

use std::time::Duration;

use bountyline_domain::Role;
use sqlx::PgPool;
use uuid::Uuid;

use crate::auth::{refresh, users};
use crate::http::error::ApiResult;
use crate::kept::Kept;

/// Beyond this many kept answers the cache starts again empty: its memory stays bounded.
const MAX_KEPT: usize = 100_000;

/// A live session's account, as it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Current {
    pub user: Uuid,
    pub roles: Vec<Role>,
    /// The sign-in the session belongs to: what a cookie session's CSRF token is bound to.
    pub family: Uuid,
}

pub struct Sessions {
    pool: PgPool,
    live: Option<Kept<Uuid, Current>>,
}

impl Sessions {
    pub fn new(pool: PgPool, keep_for: Duration) -> Self {
        Self {
            pool,
            live: (!keep_for.is_zero()).then(|| Kept::new(MAX_KEPT, keep_for)),
        }
    }

    /// The session's account as it stands, or `None` when the session ended or the account
    /// is disabled.
    pub async fn current(&self, session: Uuid) -> ApiResult<Option<Current>> {
        if let Some(current) = self.live.as_ref().and_then(|kept| kept.get(&session)) {
            metrics::counter!("bountyline_session_checks_total", "cache" => "hit").increment(1);
            return Ok(Some(current));
        }
        metrics::counter!("bountyline_session_checks_total", "cache" => "miss").increment(1);
        let current = refresh::session(&self.pool, session)
            .await?
            .map(|(user, roles, family)| Current {
                roles: users::roles_of(user, &roles),
                user,
                family,
            });
        if let (Some(current), Some(kept)) = (&current, &self.live) {
            kept.put(session, current.clone());
        }
        Ok(current)
    }

    /// Sessions this process just ended.
    pub fn forget(&self, sessions: &[Uuid]) {
        if let Some(kept) = &self.live {
            for session in sessions {
                kept.forget(session);
            }
        }
    }

    /// Every kept session of `user`, whose account just changed (a role, a disable).
    pub fn forget_user(&self, user: Uuid) {
        if let Some(kept) = &self.live {
            kept.forget_where(|current| current.user == user);
        }
    }
}
