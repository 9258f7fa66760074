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

    /// Where each process that appends announces the store's new head (core NATS, outside the
    /// stream's subjects): the relay's wake-up.
    pub fn appended(&self) -> String {
        format!("{}.signal.appended", self.prefix)
    }

    /// Where projection `name` announces each checkpoint it stores (core NATS): what
    /// read-your-writes waiters follow.
    pub fn progress(&self, projection: &str) -> String {
        format!("{}.signal.progress.{projection}", self.prefix)
    }

    /// Every projection's progress announcements.
    pub fn all_progress(&self) -> String {
        self.progress("*")
    }

    /// The durable consumer that feeds every projection (and the process managers).
    pub fn projections_durable(&self) -> String {
        format!("{}-projections", self.prefix)
    }

    /// The durable consumer one projection had to itself before they shared one.
    pub fn own_durable(&self, projection: &str) -> String {
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

/// Creates the event stream if it does not exist: file storage, a deduplication window that
/// absorbs the relay's republishing after a crash, and atomic batch publishing allowed (the
/// relay's fast path, see `crate::relay`). A stream made before atomic batches were used gets
/// them turned on; a server too old for them (before 2.12) keeps the stream as it is, and the
/// relay publishes one message at a time.
pub async fn ensure_stream(
    js: &jetstream::Context,
    names: &Names,
    max_age: Duration,
    duplicate_window: Duration,
) -> anyhow::Result<()> {
    let stream = js
        .get_or_create_stream(stream::Config {
            name: names.stream(),
            subjects: vec![names.all_subjects()],
            storage: stream::StorageType::File,
            duplicate_window,
            max_age,
            allow_atomic_publish: true,
            ..Default::default()
        })
        .await
        .map_err(|e| anyhow::anyhow!("creating JetStream stream {}: {e}", names.stream()))?;
    let config = stream.cached_info().config.clone();
    if !config.allow_atomic_publish {
        let update = stream::Config {
            allow_atomic_publish: true,
            ..config
        };
        if let Err(e) = js.update_stream(update).await {
            tracing::warn!(stream = %names.stream(), error = %e,
                "could not allow atomic batches on the event stream; the relay publishes one message at a time");
        }
    }
    Ok(())
}
