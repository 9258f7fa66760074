//! What request handlers share: configuration, the pool, the command bus, the SSE hub and
//! the read-your-writes tracker.

use metrics_exporter_prometheus::PrometheusHandle;
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;

use crate::commands::CommandBus;
use crate::config::Settings;
use crate::http::consistency::ProjectionProgress;
use crate::sse::Hub;

pub struct AppState {
    pub settings: Arc<Settings>,
    pub pool: PgPool,
    pub commands: CommandBus,
    pub progress: ProjectionProgress,
    pub hub: Hub,
    pub nats: async_nats::Client,
    pub metrics: PrometheusHandle,
}

impl AppState {
    pub fn read_timeout(&self) -> Duration {
        Duration::from_millis(self.settings.http.read_your_writes_timeout_ms)
    }
}
