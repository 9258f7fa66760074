//! Erasing a person (ADR 7, step 2): what follows their `PersonErased`. The handler that
//! appended it runs [`scrub`] at once; the process managers run it again for every
//! `PersonErased` they see, so a crash between the append and the scrub is finished by the
//! workers. Running it twice changes nothing more.

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::{legacy, Keyring};
use crate::auth::password::ERASED_HASH;

/// What an erased person's display name becomes.
pub const ERASED_NAME: &str = "Erased user";

/// What an erased person's email becomes: unique (the id), under the reserved `.invalid` top
/// level domain (RFC 2606), which never delivers. A dotted domain, so that it is an email the
/// API's own rules accept (admin answers show it, and the document calls it an email):
/// registering it again is a 409, never a 422.
pub fn erased_email(person: Uuid) -> String {
    format!("erased-{person}@erased.invalid")
}

/// In `tx`: destroys `person`'s data key (a row saying so if they never had one), records the
/// texts they wrote before sealing as erased (`legacy`), replaces their email and name by
/// placeholders, makes their password unusable, disables the account and revokes every
/// session. Answers the sessions revoked now, for the caller to forget in
/// its process. A person with no account (never one: an id an event names wrongly) has
/// nothing to scrub.
pub async fn scrub(
    tx: &mut Transaction<'_, Postgres>,
    keyring: &Keyring,
    person: Uuid,
    at: DateTime<Utc>,
) -> Result<Vec<Uuid>, sqlx::Error> {
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)")
        .bind(person)
        .fetch_one(&mut **tx)
        .await?;
    if !exists {
        return Ok(Vec::new());
    }
    sqlx::query(
        "INSERT INTO person_keys (user_id, wrapped_key, erased_at) VALUES ($1, NULL, $2) \
         ON CONFLICT (user_id) DO UPDATE SET wrapped_key = NULL, \
           erased_at = coalesce(person_keys.erased_at, EXCLUDED.erased_at)",
    )
    .bind(person)
    .bind(at)
    .execute(&mut **tx)
    .await?;
    legacy::record(tx, keyring.legacy().digester(), person).await?;
    sqlx::query(
        "UPDATE users SET email = $2, display_name = $3, password_hash = $4, \
           disabled_at = coalesce(disabled_at, $5) \
         WHERE id = $1",
    )
    .bind(person)
    .bind(erased_email(person))
    .bind(ERASED_NAME)
    .bind(ERASED_HASH)
    .bind(at)
    .execute(&mut **tx)
    .await?;
    sqlx::query_scalar(
        "UPDATE refresh_tokens SET revoked_at = now() \
         WHERE user_id = $1 AND revoked_at IS NULL RETURNING id",
    )
    .bind(person)
    .fetch_all(&mut **tx)
    .await
}

/// Whether `person`'s erasure is done: their key destroyed and their account scrubbed.
pub async fn done(pool: &PgPool, person: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM users u JOIN person_keys k ON k.user_id = u.id \
         WHERE u.id = $1 AND k.wrapped_key IS NULL AND u.password_hash = $2)",
    )
    .bind(person)
    .bind(ERASED_HASH)
    .fetch_one(pool)
    .await
}

/// Asks Postgres to drop the old row versions of `person_keys` and `users` (the wrapped key,
/// the email and name as they were) from the tables' pages. Outside any transaction; best
/// effort: a failure (a role that does not own the tables, a lock) is logged, and autovacuum
/// gets there later.
pub async fn vacuum(pool: &PgPool) {
    // The simple protocol: VACUUM runs in no transaction block, prepared or not.
    for (table, sql) in [
        ("person_keys", "VACUUM person_keys"),
        ("users", "VACUUM users"),
    ] {
        match sqlx::raw_sql(sql).execute(pool).await {
            Ok(_) => tracing::debug!(table, "vacuumed after an erasure"),
            Err(e) => tracing::warn!(table, error = %e, "vacuum after an erasure failed"),
        }
    }
}
