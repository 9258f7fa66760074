//! Rotating refresh tokens: opaque random strings, stored only as SHA-256 digests, grouped in
//! families (one family per login).
//!
//! Each refresh spends the presented token and issues its successor in the same family. A token
//! presented after it was spent means two parties hold the family (a thief and the user), and we
//! cannot tell which is which, so the whole family is revoked and both must log in again.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::http::error::{ApiError, ApiResult};

/// Random bytes per token: 256 bits, beyond guessing.
const TOKEN_BYTES: usize = 32;

/// A refresh token as handed to the client; the plain string exists only in this response.
pub struct IssuedRefresh {
    /// The token's row: the session that access tokens issued with it name (`sid`). It ends
    /// when this token is rotated, revoked or expires, and those access tokens with it.
    pub id: Uuid,
    pub token: String,
    pub family_id: Uuid,
    pub expires_at: DateTime<Utc>,
}

/// What presenting a refresh token came to.
pub enum Rotation {
    /// Spent, and its successor issued.
    Rotated(Rotated),
    /// Presented after it was spent: its whole family is revoked, these sessions with it.
    Reused { revoked: Vec<Uuid> },
}

/// The outcome of a successful rotation: whose token it was, and its successor.
pub struct Rotated {
    pub user_id: Uuid,
    /// The session that ended with the spent token.
    pub spent: Uuid,
    pub refresh: IssuedRefresh,
}

fn digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

fn new_token() -> String {
    let mut bytes = [0u8; TOKEN_BYTES];
    // ThreadRng is a CSPRNG seeded from the OS.
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Starts a new family for a login. Use [`Uuid::new_v4`] for `family_id` unless continuing one.
pub async fn issue(
    pool: &PgPool,
    user_id: Uuid,
    family_id: Uuid,
    ttl: Duration,
) -> ApiResult<IssuedRefresh> {
    let mut conn = pool.acquire().await?;
    insert(&mut conn, user_id, family_id, ttl).await
}

async fn insert(
    conn: &mut PgConnection,
    user_id: Uuid,
    family_id: Uuid,
    ttl: Duration,
) -> ApiResult<IssuedRefresh> {
    let (id, token) = (Uuid::new_v4(), new_token());
    let expires_at = Utc::now() + ttl;
    sqlx::query(
        "INSERT INTO refresh_tokens (id, family_id, user_id, token_hash, expires_at)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(family_id)
    .bind(user_id)
    .bind(digest(&token))
    .bind(expires_at)
    .execute(conn)
    .await?;
    Ok(IssuedRefresh {
        id,
        token,
        family_id,
        expires_at,
    })
}

#[derive(sqlx::FromRow)]
struct Stored {
    id: Uuid,
    family_id: Uuid,
    user_id: Uuid,
    expired: bool,
    spent: bool,
}

/// Spends `token` and issues its successor in the same family, all in one transaction. The row
/// is locked (`FOR UPDATE`) so that two concurrent refreshes with one token cannot both succeed:
/// the second sees the first's rotation and is treated as reuse.
///
/// A disabled account's token is refused like an expired one (its sessions were revoked when
/// it was disabled; this covers a token issued in the same instant).
pub async fn rotate(pool: &PgPool, token: &str, ttl: Duration) -> ApiResult<Rotation> {
    let mut tx = pool.begin().await?;
    let stored: Option<Stored> = sqlx::query_as(
        "SELECT r.id, r.family_id, r.user_id,
                r.expires_at <= now() OR u.disabled_at IS NOT NULL AS expired,
                (r.rotated_at IS NOT NULL OR r.revoked_at IS NOT NULL) AS spent
         FROM refresh_tokens r JOIN users u ON u.id = r.user_id
         WHERE r.token_hash = $1 FOR UPDATE OF r",
    )
    .bind(digest(token))
    .fetch_optional(&mut *tx)
    .await?;

    let Some(stored) = stored else {
        return Err(refused("the refresh token is not valid"));
    };
    if stored.spent {
        let revoked = revoke(&mut tx, stored.family_id).await?;
        tx.commit().await?;
        tracing::warn!(
            user_id = %stored.user_id,
            family_id = %stored.family_id,
            "a spent refresh token was presented again; its family is revoked"
        );
        metrics::counter!("bountyline_auth_refresh_reuse_total").increment(1);
        return Ok(Rotation::Reused { revoked });
    }
    if stored.expired {
        return Err(refused(
            "the refresh token has expired; please log in again",
        ));
    }

    sqlx::query("UPDATE refresh_tokens SET rotated_at = now() WHERE id = $1")
        .bind(stored.id)
        .execute(&mut *tx)
        .await?;
    let refresh = insert(&mut tx, stored.user_id, stored.family_id, ttl).await?;
    tx.commit().await?;
    Ok(Rotation::Rotated(Rotated {
        user_id: stored.user_id,
        spent: stored.id,
        refresh,
    }))
}

/// The refusal of a reused token, once its family is revoked.
pub fn reused() -> ApiError {
    refused("the refresh token has already been used; please log in again")
}

/// The family `token` belongs to, whatever its state; `None` for a token never issued. Reads
/// only: a cookie refresh or logout checks its CSRF token against this family before it
/// rotates or revokes anything.
pub async fn family_of(pool: &PgPool, token: &str) -> ApiResult<Option<Uuid>> {
    let family = sqlx::query_scalar("SELECT family_id FROM refresh_tokens WHERE token_hash = $1")
        .bind(digest(token))
        .fetch_optional(pool)
        .await?;
    Ok(family)
}

/// Revokes the family `token` belongs to (logout). An unknown token is not an error: logging
/// out twice, or with a token that already expired, leaves the caller logged out either way.
/// Returns the sessions it ended.
pub async fn revoke_family(pool: &PgPool, token: &str) -> ApiResult<Vec<Uuid>> {
    let revoked = sqlx::query_scalar(
        "UPDATE refresh_tokens SET revoked_at = now()
         WHERE family_id = (SELECT family_id FROM refresh_tokens WHERE token_hash = $1)
           AND revoked_at IS NULL RETURNING id",
    )
    .bind(digest(token))
    .fetch_all(pool)
    .await?;
    Ok(revoked)
}

/// Revokes every session of `user` (log out everywhere, an admin's revoke, a disable); returns
/// the sessions it ended.
pub async fn revoke_user(pool: &PgPool, user: Uuid) -> ApiResult<Vec<Uuid>> {
    let revoked = sqlx::query_scalar(
        "UPDATE refresh_tokens SET revoked_at = now()
         WHERE user_id = $1 AND revoked_at IS NULL RETURNING id",
    )
    .bind(user)
    .fetch_all(pool)
    .await?;
    Ok(revoked)
}

/// Who a live session is: its user, the roles the account holds now, and its family (the
/// sign-in it was rotated from). `None` when the session ended (rotated, revoked, expired) or
/// its account is disabled.
pub async fn session(pool: &PgPool, id: Uuid) -> ApiResult<Option<(Uuid, Vec<String>, Uuid)>> {
    let current = sqlx::query_as(
        "SELECT u.id, u.roles, r.family_id FROM refresh_tokens r JOIN users u ON u.id = r.user_id
         WHERE r.id = $1 AND r.rotated_at IS NULL AND r.revoked_at IS NULL
           AND r.expires_at > now() AND u.disabled_at IS NULL",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?;
    Ok(current)
}

/// Whether the session `id` (a refresh token's row) still stands: neither rotated, revoked
/// nor expired. An access token naming a session that ended is refused.
pub async fn session_is_live(pool: &PgPool, id: Uuid) -> ApiResult<bool> {
    Ok(session(pool, id).await?.is_some())
}

async fn revoke(conn: &mut PgConnection, family_id: Uuid) -> ApiResult<Vec<Uuid>> {
    let revoked = sqlx::query_scalar(
        "UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = $1 AND revoked_at IS NULL \
         RETURNING id",
    )
    .bind(family_id)
    .fetch_all(conn)
    .await?;
    Ok(revoked)
}

fn refused(why: &str) -> ApiError {
    ApiError::Unauthenticated(why.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_32_random_bytes_in_unpadded_base64url() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert_eq!(URL_SAFE_NO_PAD.decode(&a).unwrap().len(), TOKEN_BYTES);
        assert!(a
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert_eq!(digest(&a).len(), 32);
    }
}
