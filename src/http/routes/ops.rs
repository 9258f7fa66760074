//! Operational endpoints: liveness, readiness (Postgres, NATS, migrations) and Prometheus
//! metrics (behind a token when `http.metrics_token` is set).

use actix_web::{web, HttpRequest, HttpResponse};
use secrecy::ExposeSecret;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::extractor::bearer;
use crate::http::error::{ApiError, ApiResult};
use crate::http::openapi::problems::Unauthenticated;
use crate::state::AppState;

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.route("/health/live", web::get().to(live))
        .route("/health/ready", web::get().to(ready))
        .route("/metrics", web::get().to(metrics));
}

#[derive(Serialize, ToSchema)]
struct Liveness {
    #[schema(example = "ok")]
    status: &'static str,
}

/// Whether the process answers at all.
#[utoipa::path(
    get, path = "/health/live", operation_id = "live", tag = "operations",
    responses((status = 200, description = "The process is up", body = Liveness)),
)]
async fn live() -> HttpResponse {
    HttpResponse::Ok().json(Liveness { status: "ok" })
}

#[derive(Serialize, ToSchema)]
struct Readiness {
    /// `ready` or `not ready`.
    #[schema(example = "ready")]
    status: &'static str,
    /// `ok`, `migrations pending` or `unreachable`.
    #[schema(example = "ok")]
    postgres: &'static str,
    /// `ok` or `disconnected`.
    #[schema(example = "ok")]
    nats: &'static str,
}

/// Ready when Postgres answers with every migration applied and NATS is connected.
#[utoipa::path(
    get, path = "/health/ready", operation_id = "ready", tag = "operations",
    responses(
        (status = 200, description = "Ready to serve", body = Readiness),
        (status = 503, description = "A dependency is not ready (this body, not a problem)",
            body = Readiness),
    ),
)]
async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let postgres = crate::db::migrations_applied(&state.pool).await;
    let nats = state.nats.connection_state() == async_nats::connection::State::Connected;
    let (db_ok, db_detail) = match postgres {
        Ok(true) => (true, "ok"),
        Ok(false) => (false, "migrations pending"),
        Err(_) => (false, "unreachable"),
    };
    let body = Readiness {
        status: if db_ok && nats { "ready" } else { "not ready" },
        postgres: db_detail,
        nats: if nats { "ok" } else { "disconnected" },
    };
    if db_ok && nats {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// Prometheus metrics; behind `http.metrics_token` when one is configured.
#[utoipa::path(
    get, path = "/metrics", operation_id = "metrics", tag = "operations",
    responses((status = 200, description = "The Prometheus text exposition format",
        content_type = "text/plain; version=0.0.4", body = String), Unauthenticated),
    security((), ("metrics_token" = [])),
)]
async fn metrics(state: web::Data<AppState>, req: HttpRequest) -> ApiResult<HttpResponse> {
    let token = state.settings.http.metrics_token.expose_secret();
    if !token.is_empty() && !bearer(&req)?.is_some_and(|given| same(&given, token)) {
        return Err(ApiError::Unauthenticated(
            "/metrics needs the configured metrics token".into(),
        ));
    }
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render()))
}

/// Equal strings, compared in time that does not depend on where they differ.
fn same(given: &str, token: &str) -> bool {
    given.len() == token.len()
        && given
            .bytes()
            .zip(token.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}
