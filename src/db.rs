//! The Postgres pool and the migrations embedded in the binary.

use secrecy::ExposeSecret;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use std::time::Duration;

use crate::config::Settings;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// How long a connection serves before it is closed on its way back to the pool, so a
/// backend's caches do not grow for the life of the process.
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(30 * 60);

pub async fn connect(settings: &Settings) -> Result<PgPool, sqlx::Error> {
    pool_options(settings.db_pool_size, CONNECTION_LIFETIME)
        .connect(settings.database_url.expose_secret())
        .await
}

/// The pool every process uses: at most `size` connections, each closed when it comes back
/// older than `lifetime`.
///
/// No idle timeout and no maximum lifetime of sqlx's own: either one starts sqlx 0.8's
/// maintenance task, which sweeps `0..num_idle()` without awaiting, and `num_idle` can be read
/// as `usize::MAX` while a connection is being returned and taken at once; the task then spins
/// a runtime thread for good (launchbadge/sqlx#3645, fixed after 0.8.6). Idle connections stay
/// open instead (the pool is bounded), and the lifetime is kept by the `after_release` check.
pub fn pool_options(size: u32, lifetime: Duration) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(size)
        .min_connections(0)
        .idle_timeout(None)
        .max_lifetime(None)
        .acquire_timeout(Duration::from_secs(5))
        .after_release(move |_connection, meta| Box::pin(async move { Ok(meta.age < lifetime) }))
}

pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    MIGRATOR.run(pool).await
}

/// Whether every embedded migration has been applied.
pub async fn migrations_applied(pool: &PgPool) -> Result<bool, sqlx::Error> {
    let applied: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM _sqlx_migrations WHERE success AND version = ANY($1)",
    )
    .bind(MIGRATOR.iter().map(|m| m.version).collect::<Vec<_>>())
    .fetch_one(pool)
    .await?;
    Ok(applied as usize == MIGRATOR.iter().count())
}
