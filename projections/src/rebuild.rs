//! Rebuilding a projection from the event store through its own apply code, beside the live
//! tables, then swapping it in atomically (DESIGN.md guarantee 7).
//!
//! The shadow tables live in a schema of their own, created `LIKE` the live ones, and the
//! apply runs with `search_path` pointing there first. The swap happens in one transaction
//! that holds the projection's checkpoint row, so the live runner pauses and queries see
//! either the old tables or the new ones, never half of either.

use futures::future::try_join_all;
use sqlx::{PgPool, Postgres, Transaction};
use std::time::{Duration, Instant};

use crate::event::Page;
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
/// read at a time (the next page is read while this one is applied), and each applies its
/// share of a page to its shadow tables in a transaction of its own, side by side.
pub async fn build_shadows(
    pool: &PgPool,
    projections: &[&dyn Projection],
    until: Option<i64>,
    progress: &(dyn Fn(i64, i64) + Sync),
) -> Result<Vec<RebuildReport>, ProjectionError> {
    for projection in projections {
        create_shadow(pool, *projection).await?;
    }
    let reader = EventReader::new(pool.clone());
    let head = match until {
        Some(until) => until,
        None => reader.head().await?,
    };
    let types = types_read(projections);
    let mut pages = reader.pages(types.as_deref(), 0, head, PAGE);
    let mut reports = vec![
        RebuildReport {
            events: 0,
            position: 0,
            applying: Duration::ZERO,
        };
        projections.len()
    ];
    let mut page = pages.next().await?;
    while let Some(Page { events, through }) = page {
        let applied = try_join_all(projections.iter().zip(reports.iter_mut()).map(
            |(projection, report)| {
                let events = &events;
                async move {
                    let started = Instant::now();
                    let share = share_of(*projection, events);
                    if !share.is_empty() {
                        let mut tx = pool.begin().await?;
                        point_at(&mut tx, &shadow_schema(*projection)).await?;
                        projection.apply_batch(&mut tx, &share).await?;
                        tx.commit().await?;
                    }
                    report.events += share.len() as u64;
                    report.applying += started.elapsed();
                    Ok::<_, ProjectionError>(())
                }
            },
        ));
        let (applied, following) = tokio::join!(applied, pages.next());
        applied?;
        page = following?;
        progress(through, head);
    }
    for report in &mut reports {
        report.position = head;
    }
    Ok(reports)
}

/// Empty shadow tables for `projection`, in its shadow schema (made anew).
async fn create_shadow(pool: &PgPool, projection: &dyn Projection) -> Result<(), ProjectionError> {
    let shadow = shadow_schema(projection);
    let mut tx = pool.begin().await?;
    sqlx::query(&format!("DROP SCHEMA IF EXISTS {shadow} CASCADE"))
        .execute(&mut *tx)
        .await?;
    sqlx::query(&format!("CREATE SCHEMA {shadow}"))
        .execute(&mut *tx)
        .await?;
    for table in projection.tables() {
        sqlx::query(&format!(
            "CREATE TABLE {shadow}.{table} (LIKE public.{table} INCLUDING ALL)"
        ))
        .execute(&mut *tx)
        .await?;
    }
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
        let reader = EventReader::new(pool.clone());
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
