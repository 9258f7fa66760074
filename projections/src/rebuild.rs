//! Rebuilding a projection from the event store through its own apply code, beside the live
//! tables, then swapping it in atomically (DESIGN.md guarantee 7).
//!
//! The shadow tables live in a schema of their own, created `LIKE` the live ones, and the
//! apply runs with `search_path` pointing there first. They are loaded with only the indexes
//! the apply reads through; the rest ([`Projection::deferred_indexes`]) are built once the load
//! is done, under their live names. The swap happens in one transaction that holds the
//! projection's checkpoint row, so the live runner pauses and queries see either the old
//! tables or the new ones, never half of either.

use futures::future::{try_join, try_join_all};
use futures::{StreamExt, TryFutureExt, TryStreamExt};
use sqlx::{PgPool, Postgres, Transaction};
use std::time::{Duration, Instant};

use crate::fan_out::fan_out;
use crate::projection::{share_of, types_read};
use crate::{checkpoint, EventReader, Projection, ProjectionError};

/// Events read from the store at a time, building or swapping in: what bounds a rebuild's
/// memory however long the history.
pub const PAGE: i64 = 5_000;

pub fn shadow_schema(projection: &dyn Projection) -> String {
    format!("rebuild_{}", projection.name())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RebuildReport {
    pub events: u64,
    pub position: i64,
    /// Time spent applying this projection's events (reading the store is shared).
    pub applying: Duration,
    /// Time spent building its deferred indexes once the shadow tables were loaded
    /// ([`Projection::deferred_indexes`]).
    pub indexing: Duration,
}

/// Rebuilds `projection` from position 0 and swaps it in. `progress(position, head)` is
/// called after every page with the position reached.
pub async fn rebuild(
    pool: &PgPool,
    projection: &dyn Projection,
    progress: &(dyn Fn(i64, i64) + Sync),
) -> Result<RebuildReport, ProjectionError> {
    let report = build_shadow(pool, projection, None, progress).await?;
    swap_in(pool, projection, report.position).await?;
    Ok(report)
}

/// Rebuilds every projection of `projections` from one read of the store (see
/// [`build_shadows`]) and swaps each in; the reports are in the same order.
pub async fn rebuild_all(
    pool: &PgPool,
    projections: &[&dyn Projection],
    progress: &(dyn Fn(i64, i64) + Sync),
) -> Result<Vec<RebuildReport>, ProjectionError> {
    let reports = build_shadows(pool, projections, None, progress).await?;
    try_join_all(
        projections
            .iter()
            .zip(&reports)
            .map(|(projection, report)| swap_in(pool, *projection, report.position)),
    )
    .await?;
    Ok(reports)
}

/// Builds the shadow tables of one projection from scratch up to `until` (or the current
/// head); see [`build_shadows`].
pub async fn build_shadow(
    pool: &PgPool,
    projection: &dyn Projection,
    until: Option<i64>,
    progress: &(dyn Fn(i64, i64) + Sync),
) -> Result<RebuildReport, ProjectionError> {
    let mut reports = build_shadows(pool, &[projection], until, progress).await?;
    Ok(reports.remove(0))
}

/// Builds the shadow tables of several projections from scratch up to `until` (or the
/// current head). The store is read once for all of them, [`PAGE`] events of the types they
/// read at a time, and each applies its share of every page to its shadow tables in a
/// transaction of its own, at its own pace ([`fan_out`]); then each builds its deferred
/// indexes. `progress` hears of every page read.
pub async fn build_shadows(
    pool: &PgPool,
    projections: &[&dyn Projection],
    until: Option<i64>,
    progress: &(dyn Fn(i64, i64) + Sync),
) -> Result<Vec<RebuildReport>, ProjectionError> {
    let mut deferred = Vec::with_capacity(projections.len());
    for projection in projections {
        deferred.push(create_shadow(pool, *projection).await?);
    }
    let reader = EventReader::in_database(pool.clone());
    let head = match until {
        Some(until) => until,
        None => reader.head().await?,
    };
    let types = types_read(projections);
    let pages = reader.pages(types.as_deref(), 0, head, PAGE);
    let mut reports = vec![
        RebuildReport {
            events: 0,
            position: 0,
            applying: Duration::ZERO,
            indexing: Duration::ZERO,
        };
        projections.len()
    ];
    let (read, queues) = fan_out(pages, projections.len(), |through| progress(through, head));
    let built = try_join_all(
        projections
            .iter()
            .zip(reports.iter_mut())
            .zip(queues.into_iter().zip(deferred))
            .map(
                |((projection, report), (mut queue, statements))| async move {
                    let shadow = shadow_schema(*projection);
                    while let Some(page) = queue.recv().await {
                        let started = Instant::now();
                        let share = share_of(*projection, &page.events);
                        if !share.is_empty() {
                            let mut tx = pool.begin().await?;
                            point_at_shadow(&mut tx, &shadow).await?;
                            projection.apply_batch(&mut tx, &share).await?;
                            tx.commit().await?;
                        }
                        report.events += share.len() as u64;
                        report.applying += started.elapsed();
                    }
                    // Loaded: its indexes now, while the others may still be loading; two at a
                    // time (one build leaves a core idle between its sort and its writes).
                    let started = Instant::now();
                    futures::stream::iter(statements)
                        .map(|statement| async move { build_index(pool, &statement).await })
                        .buffer_unordered(2)
                        .try_collect::<Vec<()>>()
                        .await?;
                    report.indexing = started.elapsed();
                    report.position = head;
                    Ok::<_, ProjectionError>(())
                },
            ),
    );
    try_join(read.map_err(ProjectionError::from), built).await?;
    Ok(reports)
}

/// Empty shadow tables for `projection`, in its shadow schema (made anew): the live tables'
/// columns, defaults and constraints, and their indexes under their live names, all but the
/// projection's deferred indexes. Returns the statements that build those on the shadow
/// tables, for after the load.
async fn create_shadow(
    pool: &PgPool,
    projection: &dyn Projection,
) -> Result<Vec<String>, ProjectionError> {
    let shadow = shadow_schema(projection);
    let mut tx = pool.begin().await?;
    sqlx::query(&format!("DROP SCHEMA IF EXISTS {shadow} CASCADE"))
        .execute(&mut *tx)
        .await?;
    sqlx::query(&format!("CREATE SCHEMA {shadow}"))
        .execute(&mut *tx)
        .await?;
    let mut deferred = Vec::new();
    let mut unknown = projection.deferred_indexes().to_vec();
    for table in projection.tables() {
        sqlx::query(&format!(
            "CREATE TABLE {shadow}.{table} \
             (LIKE public.{table} INCLUDING ALL EXCLUDING INDEXES)"
        ))
        .execute(&mut *tx)
        .await?;
        for index in live_indexes(&mut tx, table).await? {
            let statement = index.statement(&shadow, table)?;
            if index.constraint.is_none() && unknown.contains(&index.name.as_str()) {
                unknown.retain(|name| *name != index.name);
                deferred.push(statement);
            } else {
                sqlx::query(&statement).execute(&mut *tx).await?;
            }
        }
    }
    if !unknown.is_empty() {
        // Renamed since, or named by an older rebuild (which let `LIKE` choose the names):
        // built with the table, as before. `tests/rebuild.rs` holds the names to the schema.
        tracing::warn!(projection = projection.name(), indexes = ?unknown,
            "deferred indexes not found on the live tables; whatever they are now named is \
             built with the table");
    }
    tx.commit().await?;
    Ok(deferred)
}

/// An index of a live table: its name, its definition, and the constraint it belongs to.
#[derive(sqlx::FromRow)]
struct LiveIndex {
    name: String,
    definition: String,
    /// `ADD CONSTRAINT ...` for a primary key, unique or exclusion constraint's index.
    constraint: Option<String>,
}

async fn live_indexes(
    tx: &mut Transaction<'static, Postgres>,
    table: &str,
) -> Result<Vec<LiveIndex>, sqlx::Error> {
    sqlx::query_as(
        "SELECT i.relname AS name, pg_get_indexdef(x.indexrelid) AS definition, \
           CASE WHEN c.oid IS NOT NULL \
             THEN format('ADD CONSTRAINT %I %s', c.conname, pg_get_constraintdef(c.oid)) \
           END AS \"constraint\" \
         FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid \
         LEFT JOIN pg_constraint c ON c.conindid = x.indexrelid AND c.conrelid = x.indrelid \
           AND c.contype IN ('p', 'u', 'x') \
         WHERE x.indrelid = format('public.%I', $1::text)::regclass \
         ORDER BY i.relname",
    )
    .bind(table)
    .fetch_all(&mut **tx)
    .await
}

impl LiveIndex {
    /// The statement that makes this index (or its constraint) on the shadow of `table`.
    fn statement(&self, shadow: &str, table: &str) -> Result<String, ProjectionError> {
        if let Some(constraint) = &self.constraint {
            return Ok(format!("ALTER TABLE {shadow}.{table} {constraint}"));
        }
        // `pg_get_indexdef` always names the table with its schema.
        let live = format!(" ON public.{table} USING ");
        if !self.definition.contains(&live) {
            return Err(ProjectionError::Invalid(format!(
                "index {} of {table}: unexpected definition {}",
                self.name, self.definition
            )));
        }
        Ok(self
            .definition
            .replacen(&live, &format!(" ON {shadow}.{table} USING "), 1))
    }
}

/// Builds one deferred index, with room to sort in memory. Committed without waiting for
/// the flush, as every write to a shadow is (see [`point_at_shadow`]).
async fn build_index(pool: &PgPool, statement: &str) -> Result<(), ProjectionError> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "SELECT set_config('maintenance_work_mem', '256MB', true), \
           set_config('synchronous_commit', 'off', true)",
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query(statement).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(())
}

/// Rows that differ between the live tables and the shadow ones, per table (0 everywhere
/// means the rebuild equals live).
pub async fn diff(
    pool: &PgPool,
    projection: &dyn Projection,
) -> Result<Vec<(String, i64)>, ProjectionError> {
    let shadow = shadow_schema(projection);
    let mut out = Vec::new();
    for table in projection.tables() {
        let differing: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM ( \
               (SELECT * FROM public.{table} EXCEPT ALL SELECT * FROM {shadow}.{table}) \
               UNION ALL \
               (SELECT * FROM {shadow}.{table} EXCEPT ALL SELECT * FROM public.{table})) d"
        ))
        .fetch_one(pool)
        .await?;
        out.push(((*table).to_owned(), differing));
    }
    Ok(out)
}

/// Catches the shadow up with whatever the live projection applied meanwhile and swaps it in.
pub async fn swap_in(
    pool: &PgPool,
    projection: &dyn Projection,
    built_to: i64,
) -> Result<(), ProjectionError> {
    let shadow = shadow_schema(projection);
    let name = projection.name();
    let mut tx = pool.begin().await?;
    let live = checkpoint::lock(&mut tx, name).await?;
    if live > built_to {
        // However far live went meanwhile, a page at a time: all in this one transaction, which
        // holds the checkpoint, but never the whole range in memory.
        point_at(&mut tx, &shadow).await?;
        let reader = EventReader::in_database(pool.clone());
        let mut pages = reader.pages(projection.aggregate_types(), built_to, live, PAGE);
        while let Some(page) = pages.next().await? {
            if !page.events.is_empty() {
                projection.apply_batch(&mut tx, &page.events).await?;
            }
        }
        sqlx::query("SET LOCAL search_path TO public")
            .execute(&mut *tx)
            .await?;
    }
    let retired = format!("retired_{name}");
    sqlx::query(&format!("DROP SCHEMA IF EXISTS {retired} CASCADE"))
        .execute(&mut *tx)
        .await?;
    sqlx::query(&format!("CREATE SCHEMA {retired}"))
        .execute(&mut *tx)
        .await?;
    for table in projection.tables() {
        sqlx::query(&format!("ALTER TABLE public.{table} SET SCHEMA {retired}"))
            .execute(&mut *tx)
            .await?;
        sqlx::query(&format!("ALTER TABLE {shadow}.{table} SET SCHEMA public"))
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query(&format!("DROP SCHEMA {retired} CASCADE"))
        .execute(&mut *tx)
        .await?;
    sqlx::query(&format!("DROP SCHEMA {shadow} CASCADE"))
        .execute(&mut *tx)
        .await?;
    checkpoint::store(&mut tx, name, live.max(built_to)).await?;
    tx.commit().await?;
    Ok(())
}

/// Points unqualified table names at the shadow schema for the rest of a transaction that
/// builds it, and lets that transaction commit without waiting for its flush: a shadow counts
/// only once it is swapped in, by a transaction that commits synchronously, and the WAL is
/// flushed in order, so the swap's flush covers every write to the shadow before it. A crash
/// before the swap loses a shadow that the next rebuild makes anew anyway.
async fn point_at_shadow(
    tx: &mut Transaction<'static, Postgres>,
    shadow: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "SELECT set_config('search_path', $1, true), \
           set_config('synchronous_commit', 'off', true)",
    )
    .bind(format!("{shadow}, public"))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Points unqualified table names at the shadow schema for the rest of the transaction.
async fn point_at(
    tx: &mut Transaction<'static, Postgres>,
    shadow: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(&format!("SET LOCAL search_path TO {shadow}, public"))
        .execute(&mut **tx)
        .await?;
    Ok(())
}
