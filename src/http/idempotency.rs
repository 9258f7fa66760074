//! `Idempotency-Key` on commands (DESIGN.md guarantee 3): at most once per (user, key), the
//! same answer on every retry, and a 422 when the key comes back with a different request.
//!
//! A row is claimed before the command runs and completed with its answer. A command that
//! ended without an answer the edge can trust (its append's outcome unknown, a fault after
//! it) leaves its row unresolved; so does a process that died in between, once the claim is
//! stale. A retry then takes the row over and runs the command in resolving mode: it first
//! reads what the store recorded under the key (`command_keys`, written with the command's
//! events) and answers that, and only a command that stored nothing runs again. The store
//! refuses a second command under one key, so a late commit of the first try cannot double.

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

use super::error::{ApiError, ApiResult};
use crate::defects::{self, Defect};

/// How long an unanswered claim blocks retries before they may recover it.
const STALE_AFTER_SECS: f64 = 60.0;

pub enum Begin {
    /// Run the command, then call [`finish`].
    Fresh,
    /// An earlier try ended without a trusted answer: run the command resolving what that try
    /// stored ([`crate::commands::CommandContext::resolve`]), then call [`finish`].
    Resolve,
    /// Already answered: send this answer again ([`replay`]), its texts opened first (a
    /// recorded answer holds them sealed, as the read models do).
    Replay {
        status: u16,
        body: serde_json::Value,
    },
}

pub fn request_hash(method: &str, path: &str, body: &serde_json::Value) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(method.as_bytes());
    h.update([0]);
    h.update(path.as_bytes());
    h.update([0]);
    h.update(body.to_string().as_bytes());
    h.finalize().to_vec()
}

pub async fn begin(pool: &PgPool, user: Uuid, key: &str, hash: &[u8]) -> ApiResult<Begin> {
    let inserted = sqlx::query(
        "INSERT INTO idempotency_keys (user_id, key, request_hash) VALUES ($1, $2, $3) \
         ON CONFLICT DO NOTHING",
    )
    .bind(user)
    .bind(key)
    .bind(hash)
    .execute(pool)
    .await?
    .rows_affected();
    if inserted == 1 {
        return Ok(Begin::Fresh);
    }
    let (stored_hash, status, body, started_at, unresolved): (
        Vec<u8>,
        Option<i16>,
        Option<serde_json::Value>,
        DateTime<Utc>,
        bool,
    ) = sqlx::query_as(
        "SELECT request_hash, response_status, response_body, started_at, unresolved \
             FROM idempotency_keys WHERE user_id = $1 AND key = $2",
    )
    .bind(user)
    .bind(key)
    .fetch_one(pool)
    .await?;
    if stored_hash != hash {
        return Err(ApiError::invalid_field(
            "Idempotency-Key",
            "this key was already used with a different request",
        ));
    }
    if let (Some(status), Some(body)) = (status, body) {
        return Ok(Begin::Replay {
            status: status as u16,
            body,
        });
    }
    let in_progress = || ApiError::Conflict {
        kind: "request-in-progress",
        detail: "a request with this Idempotency-Key is still running; retry shortly".into(),
    };
    let age = (Utc::now() - started_at).num_milliseconds() as f64 / 1000.0;
    if !unresolved && age < STALE_AFTER_SECS {
        return Err(in_progress());
    }
    // One retry takes the row over; any other that comes at once still sees it in progress.
    let taken = sqlx::query(
        "UPDATE idempotency_keys SET started_at = now(), unresolved = false \
         WHERE user_id = $1 AND key = $2 AND started_at = $3 AND completed_at IS NULL",
    )
    .bind(user)
    .bind(key)
    .bind(started_at)
    .execute(pool)
    .await?
    .rows_affected();
    if taken == 1 && defects::on(Defect::ForgetUnknownOutcomes) {
        Ok(Begin::Fresh)
    } else if taken == 1 {
        Ok(Begin::Resolve)
    } else {
        Err(in_progress())
    }
}

pub async fn finish(
    pool: &PgPool,
    user: Uuid,
    key: &str,
    status: StatusCode,
    body: &serde_json::Value,
) -> ApiResult<()> {
    sqlx::query(
        "UPDATE idempotency_keys SET completed_at = now(), response_status = $3, \
         response_body = $4 WHERE user_id = $1 AND key = $2",
    )
    .bind(user)
    .bind(key)
    .bind(status.as_u16() as i16)
    .bind(body)
    .execute(pool)
    .await?;
    Ok(())
}

/// Leaves a claim for the next retry to resolve at once: its command ended without an answer
/// to trust, and may or may not have been stored.
pub async fn unresolved(pool: &PgPool, user: Uuid, key: &str) -> ApiResult<()> {
    sqlx::query(
        "UPDATE idempotency_keys SET unresolved = true \
         WHERE user_id = $1 AND key = $2 AND completed_at IS NULL",
    )
    .bind(user)
    .bind(key)
    .execute(pool)
    .await?;
    Ok(())
}

/// The recorded answer, marked as replayed.
pub fn replay(status: u16, body: &serde_json::Value) -> HttpResponse {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let mut res = HttpResponse::build(status);
    res.insert_header(("Idempotent-Replayed", "true"));
    if status.is_success() {
        if status == StatusCode::NO_CONTENT {
            return res.finish();
        }
        res.json(body)
    } else {
        res.content_type("application/problem+json").json(body)
    }
}
