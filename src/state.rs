//! What request handlers share: configuration, the pool, the command bus, the SSE hub, the
//! read-your-writes tracker and the keyring of people's texts.

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
use crate::http::routes::queues::KnownQueues;
use crate::privacy::Opener;
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
    /// Board pages while the bounties read model has not moved, their texts opened (kept no
    /// longer than data keys are).
    pub board: ReadCache<BoardFilter, Bytes>,
    /// Seals the texts people write and opens them in answers (ADR 7).
    pub privacy: Opener,
    /// Queues known to have an owner, so that posting a task to one asks nothing more.
    pub queues: KnownQueues,
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
