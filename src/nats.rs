//! NATS wiring: the connection, the JetStream stream that carries events, and the names and
//! headers every publisher and consumer agrees on.

use async_nats::jetstream::{self, stream};
use std::time::Duration;

/// Names derived from the configured prefix, so deployments and tests never share state.
#[derive(Debug, Clone)]
pub struct Names {
    pub prefix: String,
}

impl Names {
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }

    pub fn stream(&self) -> String {
        format!("{}_EVENTS", self.prefix.to_uppercase().replace('-', "_"))
    }

    pub fn subject(&self, aggregate_type: &str) -> String {
        format!("{}.events.{aggregate_type}", self.prefix)
    }

    pub fn all_subjects(&self) -> String {
        format!("{}.events.>", self.prefix)
    }

    /// The durable consumer of one projection.
    pub fn durable(&self, projection: &str) -> String {
        format!("{}-{projection}", self.prefix)
    }
}

pub async fn connect(url: &str) -> anyhow::Result<async_nats::Client> {
    let client = async_nats::ConnectOptions::new()
        .name("bountyline")
        .retry_on_initial_connect()
        .connection_timeout(Duration::from_secs(5))
        .connect(url)
        .await?;
    Ok(client)
}

/// Creates the event stream if it does not exist: file storage, and a deduplication window
/// that absorbs the relay's republishing after a crash.
pub async fn ensure_stream(
    js: &jetstream::Context,
    names: &Names,
    max_age: Duration,
    duplicate_window: Duration,
) -> anyhow::Result<()> {
    js.get_or_create_stream(stream::Config {
        name: names.stream(),
        subjects: vec![names.all_subjects()],
        storage: stream::StorageType::File,
        duplicate_window,
        max_age,
        ..Default::default()
    })
    .await
    .map_err(|e| anyhow::anyhow!("creating JetStream stream {}: {e}", names.stream()))?;
    Ok(())
}
