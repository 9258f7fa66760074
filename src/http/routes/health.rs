//! `GET /health/detailed` (admin): what an operator looks at first when something is slow or
//! stuck. Each component with the time it took to answer, the database pool's use, how far the
//! relay and each projection trail the store, the events parked, and which build and migration
//! this process runs. `/health/ready` stays the load balancer's yes or no.

use actix_web::{web, HttpResponse};
use bountyline_domain::Role;
use serde::Serialize;
use std::time::{Duration, Instant};
use utoipa::ToSchema;

use crate::auth::{require_role, Authenticated};
use crate::http::error::ApiResult;
use crate::http::openapi::problems::{Forbidden, Unauthenticated};
use crate::nats::Names;
use crate::state::AppState;

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.route("/health/detailed", web::get().to(detailed));
}

/// How long a component may take to answer before it counts as down.
const PROBE_LIMIT: Duration = Duration::from_secs(2);

#[derive(Serialize, ToSchema)]
struct Detailed {
    /// `ok`, or `degraded` when a component is down, a migration is pending or events are
    /// parked.
    #[schema(example = "ok")]
    status: &'static str,
    build: Build,
    postgres: Postgres,
    nats: Component,
    /// The newest position in the event store.
    head: i64,
    relay: Trailing,
    projections: Vec<Projection>,
}

#[derive(Serialize, ToSchema)]
struct Build {
    /// The package version of this process's binary.
    #[schema(example = "0.1.0")]
    version: &'static str,
    /// The newest migration this binary knows.
    migration: i64,
}

#[derive(Serialize, ToSchema)]
struct Component {
    /// `ok` or `down`.
    #[schema(example = "ok")]
    status: &'static str,
    /// How long a round trip took (`SELECT 1`, a NATS flush); absent when it failed.
    latency_ms: Option<f64>,
}

#[derive(Serialize, ToSchema)]
struct Postgres {
    #[serde(flatten)]
    component: Component,
    /// The newest migration applied to the database.
    migration: Option<i64>,
    /// Migrations of this binary not applied yet.
    pending_migrations: Option<i64>,
    pool: Pool,
}

#[derive(Serialize, ToSchema)]
struct Pool {
    /// Connections open now.
    size: u32,
    /// Of them, waiting for work.
    idle: usize,
    /// The most the pool opens.
    max: u32,
}

#[derive(Serialize, ToSchema)]
struct Trailing {
    /// The position its checkpoint stands at.
    position: i64,
    /// Events between it and the head.
    lag: i64,
}

#[derive(Serialize, ToSchema)]
struct Projection {
    #[schema(example = "tasks")]
    name: String,
    #[serde(flatten)]
    trailing: Trailing,
    /// Events it parked after its retries ran out.
    parked: i64,
}

/// Each component's latency, pool use, relay and projection lag, parked events, build and
/// migration version (admin).
#[utoipa::path(
    get, path = "/health/detailed", operation_id = "healthDetailed", tag = "operations",
    responses((status = 200, description = "The process and what it depends on", body = Detailed),
        Unauthenticated, Forbidden),
    security(("bearer" = [])),
)]
async fn detailed(
    state: web::Data<AppState>,
    Authenticated(actor): Authenticated,
) -> ApiResult<HttpResponse> {
    require_role(&actor, Role::Admin)?;
    let known = crate::db::MIGRATOR
        .iter()
        .map(|m| m.version)
        .max()
        .unwrap_or(0);
    let (postgres, nats) = tokio::join!(postgres(&state), nats(&state));
    let (head, relay, projections) = if postgres.component.status == "ok" {
        trailing(&state).await?
    } else {
        (
            0,
            Trailing {
                position: 0,
                lag: 0,
            },
            Vec::new(),
        )
    };
    let degraded = postgres.component.status != "ok"
        || nats.status != "ok"
        || postgres.pending_migrations != Some(0)
        || projections.iter().any(|p| p.parked > 0);
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(Detailed {
            status: if degraded { "degraded" } else { "ok" },
            build: Build {
                version: env!("CARGO_PKG_VERSION"),
                migration: known,
            },
            postgres,
            nats,
            head,
            relay,
            projections,
        }))
}

async fn postgres(state: &AppState) -> Postgres {
    let started = Instant::now();
    let applied = tokio::time::timeout(
        PROBE_LIMIT,
        sqlx::query_as::<_, (Option<i64>, i64)>(
            "SELECT max(version), count(*) FILTER (WHERE success AND version = ANY($1)) \
             FROM _sqlx_migrations",
        )
        .bind(
            crate::db::MIGRATOR
                .iter()
                .map(|m| m.version)
                .collect::<Vec<_>>(),
        )
        .fetch_one(&state.pool),
    )
    .await;
    let pool = Pool {
        size: state.pool.size(),
        idle: state.pool.num_idle(),
        max: state.pool.options().get_max_connections(),
    };
    match applied {
        Ok(Ok((migration, applied))) => Postgres {
            component: up(started),
            migration,
            pending_migrations: Some(crate::db::MIGRATOR.iter().count() as i64 - applied),
            pool,
        },
        _ => Postgres {
            component: down(),
            migration: None,
            pending_migrations: None,
            pool,
        },
    }
}

async fn nats(state: &AppState) -> Component {
    let started = Instant::now();
    match tokio::time::timeout(PROBE_LIMIT, state.nats.flush()).await {
        Ok(Ok(())) => up(started),
        _ => down(),
    }
}

fn up(started: Instant) -> Component {
    Component {
        status: "ok",
        latency_ms: Some((started.elapsed().as_secs_f64() * 1000.0 * 100.0).round() / 100.0),
    }
}

fn down() -> Component {
    Component {
        status: "down",
        latency_ms: None,
    }
}

/// The head, the relay's checkpoint and every projection's, with their parked events.
async fn trailing(state: &AppState) -> ApiResult<(i64, Trailing, Vec<Projection>)> {
    let head: i64 = sqlx::query_scalar("SELECT coalesce(max(position), 0)::bigint FROM events")
        .fetch_one(&state.pool)
        .await?;
    let stream = Names::new(&state.settings.nats_prefix).stream();
    let relay: i64 = sqlx::query_scalar(
        "SELECT coalesce(max(position), 0) FROM relay_checkpoints WHERE stream = $1",
    )
    .bind(&stream)
    .fetch_one(&state.pool)
    .await?;
    let rows: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT c.projection, c.position, \
                (SELECT count(*) FROM parked_events p WHERE p.projection = c.projection) \
           FROM projection_checkpoints c ORDER BY c.projection",
    )
    .fetch_all(&state.pool)
    .await?;
    let projections = rows
        .into_iter()
        .map(|(name, position, parked)| Projection {
            name,
            trailing: Trailing {
                position,
                lag: head - position,
            },
            parked,
        })
        .collect();
    let relay = Trailing {
        position: relay,
        lag: head - relay,
    };
    Ok((head, relay, projections))
}
