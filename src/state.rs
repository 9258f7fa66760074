//! What request handlers share: configuration, the pool, the command bus, the SSE hub and
//! the read-your-writes tracker.

use actix_web::HttpRequest;
use bountyline_projections::bounties::BoardFilter;
use bytes::Bytes;
use metrics_exporter_prometheus::PrometheusHandle;
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;

use crate::commands::CommandBus;
use crate::config::Settings;
use crate::http::consistency::ProjectionProgress;
use crate::http::error::ApiResult;
use crate::http::extract::min_position;
use crate::http::limits::Limits;
use crate::http::read_cache::ReadCache;
use crate::sse::{Hub, StatsFeed};

pub struct AppState {
    pub settings: Arc<Settings>,
    pub pool: PgPool,
    pub commands: CommandBus,
    pub progress: ProjectionProgress,
    pub hub: Hub,
    pub stats: StatsFeed,
    pub nats: async_nats::Client,
    pub metrics: PrometheusHandle,
    pub limits: Limits,
    /// Board pages while the bounties read model has not moved.
    pub board: ReadCache<BoardFilter, Bytes>,
}

impl AppState {
    pub fn read_timeout(&self) -> Duration {
        Duration::from_millis(self.settings.http.read_your_writes_timeout_ms)
    }

    /// Read your writes: waits (bounded) until `projection` has applied the request's
    /// `X-Min-Position`, if it names one; a 503 with Retry-After if it cannot.
    pub async fn caught_up(&self, projection: &str, req: &HttpRequest) -> ApiResult<()> {
        self.progress
            .wait_for(projection, min_position(req)?, self.read_timeout())
            .await
    }
}
