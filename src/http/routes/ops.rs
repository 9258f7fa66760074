//! Operational endpoints: liveness, readiness (Postgres, NATS, migrations) and Prometheus
//! metrics.

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::state::AppState;

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.route("/health/live", web::get().to(live))
        .route("/health/ready", web::get().to(ready))
        .route("/metrics", web::get().to(metrics));
}

async fn live() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Ready when Postgres answers with every migration applied and NATS is connected.
async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let postgres = crate::db::migrations_applied(&state.pool).await;
    let nats = state.nats.connection_state() == async_nats::connection::State::Connected;
    let (db_ok, db_detail) = match postgres {
        Ok(true) => (true, "ok"),
        Ok(false) => (false, "migrations pending"),
        Err(_) => (false, "unreachable"),
    };
    let body = json!({
        "status": if db_ok && nats { "ready" } else { "not ready" },
        "postgres": db_detail,
        "nats": if nats { "ok" } else { "disconnected" },
    });
    if db_ok && nats {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render())
}
