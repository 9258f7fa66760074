//! Small chores for `bench/run`, so that it needs neither curl nor a NATS client: wait for the
//! API to be ready, save a `/metrics` snapshot, delete the run's JetStream stream.

use anyhow::Context;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Debug, clap::Args)]
pub struct ReadyArgs {
    #[arg(long)]
    url: String,
    #[arg(long, default_value_t = 60)]
    timeout_seconds: u64,
}

/// Polls `/health/ready` until it answers 200.
pub async fn wait_ready(args: ReadyArgs) -> anyhow::Result<Value> {
    let http = crate::client::http(1, Some(Duration::from_secs(2)))?;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.timeout_seconds);
    loop {
        if let Ok(res) = http.get(format!("{}/health/ready", args.url)).send().await {
            if res.status() == 200 {
                return Ok(json!({"phase": "ready", "seconds": started.elapsed().as_secs_f64()}));
            }
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{} was not ready within {} s",
            args.url,
            args.timeout_seconds
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[derive(Debug, clap::Args)]
pub struct ScrapeArgs {
    #[arg(long)]
    url: String,
    #[arg(long)]
    out: PathBuf,
}

/// The API's `/metrics` exposition, as text.
pub async fn metrics_text(http: &reqwest::Client, url: &str) -> anyhow::Result<String> {
    Ok(http
        .get(format!("{url}/metrics"))
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?)
}

/// Saves `/metrics` to a file.
pub async fn scrape(args: ScrapeArgs) -> anyhow::Result<Value> {
    let http = crate::client::http(1, Some(Duration::from_secs(10)))?;
    let text = metrics_text(&http, &args.url).await?;
    std::fs::write(&args.out, &text).with_context(|| format!("writing {}", args.out.display()))?;
    Ok(json!({"phase": "scrape", "bytes": text.len()}))
}

#[derive(Debug, clap::Args)]
pub struct DropStreamArgs {
    #[arg(long, env = "NATS_URL")]
    nats_url: String,
    /// The run's BOUNTYLINE_NATS_PREFIX.
    #[arg(long)]
    prefix: String,
}

/// Deletes the run's JetStream stream. Its name follows `bountyline::nats::Names::stream`
/// (the prefix upper-cased, `-` as `_`, then `_EVENTS`); the loader does not link the server
/// crate just for that line.
pub async fn drop_stream(args: DropStreamArgs) -> anyhow::Result<Value> {
    let stream = format!("{}_EVENTS", args.prefix.to_uppercase().replace('-', "_"));
    let client = async_nats::connect(&args.nats_url).await?;
    let deleted = async_nats::jetstream::new(client)
        .delete_stream(&stream)
        .await
        .map(|status| status.success)
        .unwrap_or(false);
    Ok(json!({"phase": "drop-stream", "stream": stream, "deleted": deleted}))
}
