//! `Idempotency-Key` on commands (DESIGN.md guarantee 3): at most once per (user, key), the
//! same answer on every retry, and a 422 when the key comes back with a different request.
//!
//! A row is claimed before the command runs and completed with its answer. If a process died
//! in between, the row stays "in progress"; after a grace period a retry looks for the
//! command's events by the key recorded in their metadata and, if they exist, answers from
//! them; otherwise it takes the row over and runs the command.

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

use super::error::{ApiError, ApiResult};

/// How long an unanswered claim blocks retries before they may recover it.
const STALE_AFTER_SECS: f64 = 60.0;

pub enum Begin {
    /// Run the command, then call [`finish`].
    Fresh,
    /// Already answered: send this.
    Replay(HttpResponse),
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
    let (stored_hash, status, body, started_at): (
        Vec<u8>,
        Option<i16>,
        Option<serde_json::Value>,
        DateTime<Utc>,
    ) = sqlx::query_as(
        "SELECT request_hash, response_status, response_body, started_at \
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
        return Ok(Begin::Replay(replay(status as u16, &body)));
    }
    let age = (Utc::now() - started_at).num_milliseconds() as f64 / 1000.0;
    if age < STALE_AFTER_SECS {
        return Err(ApiError::Conflict {
            kind: "request-in-progress",
            detail: "a request with this Idempotency-Key is still running; retry shortly".into(),
        });
    }
    if let Some((status, body)) = recover_from_events(pool, user, key).await? {
        finish(pool, user, key, status, &body).await?;
        return Ok(Begin::Replay(replay(status.as_u16(), &body)));
    }
    let taken = sqlx::query(
        "UPDATE idempotency_keys SET started_at = now() \
         WHERE user_id = $1 AND key = $2 AND started_at = $3 AND completed_at IS NULL",
    )
    .bind(user)
    .bind(key)
    .bind(started_at)
    .execute(pool)
    .await?
    .rows_affected();
    if taken == 1 {
        Ok(Begin::Fresh)
    } else {
        Err(ApiError::Conflict {
            kind: "request-in-progress",
            detail: "a request with this Idempotency-Key is still running; retry shortly".into(),
        })
    }
}

/// The answer of a command whose process died before it could record it.
async fn recover_from_events(
    pool: &PgPool,
    user: Uuid,
    key: &str,
) -> ApiResult<Option<(StatusCode, serde_json::Value)>> {
    let row: Option<(String, i64, i64, i64)> = sqlx::query_as(
        "SELECT aggregate_id, max(sequence), max(position), min(sequence) FROM events \
         WHERE metadata ? 'idempotency_key' AND metadata ->> 'idempotency_key' = $1 \
           AND metadata ->> 'actor' = $2 GROUP BY aggregate_id ORDER BY max(position) DESC LIMIT 1",
    )
    .bind(key)
    .bind(user.to_string())
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|(id, version, position, first)| {
        let status = if first == 1 {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        let body = serde_json::json!({"id": id, "version": version, "position": position});
        (status, body)
    }))
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

/// Forgets a claim whose command failed unexpectedly, so that a retry runs it again.
pub async fn abandon(pool: &PgPool, user: Uuid, key: &str) -> ApiResult<()> {
    sqlx::query(
        "DELETE FROM idempotency_keys WHERE user_id = $1 AND key = $2 AND completed_at IS NULL",
    )
    .bind(user)
    .bind(key)
    .execute(pool)
    .await?;
    Ok(())
}

fn replay(status: u16, body: &serde_json::Value) -> HttpResponse {
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
