//! `loadgen queries`: closed-loop query throughput against one target: `health`
//! (`GET /health/live`, the server's ceiling), `task` (`GET /v1/tasks/{id}` of tasks the
//! caller created) or `board` (`GET /v1/bounties`, the first page of the bounty board).

use anyhow::Context;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::client::{self, OwnedTask, User};
use crate::stats::Measured;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    Health,
    Task,
    Board,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long)]
    url: String,
    #[arg(long, value_enum)]
    target: Target,
    #[arg(long)]
    users: PathBuf,
    /// Tasks written by `loadgen commands --tasks-out` (for `--target task`).
    #[arg(long)]
    tasks: Option<PathBuf>,
    #[arg(long, default_value_t = 64)]
    connections: usize,
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    #[arg(long, default_value_t = 1.0)]
    warmup_seconds: f64,
    #[arg(long, default_value_t = 50_000_000)]
    max_requests: u64,
    #[arg(long, default_value_t = 30)]
    timeout_seconds: u64,
}

pub async fn run(args: Args) -> anyhow::Result<Value> {
    let users: Arc<Vec<User>> = Arc::new(client::read_json(&args.users)?);
    anyhow::ensure!(!users.is_empty(), "no users in {}", args.users.display());
    let tasks: Arc<Vec<OwnedTask>> = Arc::new(match (&args.tasks, args.target) {
        (Some(path), _) => client::read_json(path)?,
        (None, Target::Task) => anyhow::bail!("--target task needs --tasks"),
        (None, _) => Vec::new(),
    });
    anyhow::ensure!(
        args.target != Target::Task || !tasks.is_empty(),
        "no tasks to read"
    );
    let connections = args.connections.max(1);
    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(args.warmup_seconds);
    let deadline = measure_from + Duration::from_secs_f64(args.seconds);
    let issued = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for index in 0..connections {
        let (users, tasks, issued) = (users.clone(), tasks.clone(), issued.clone());
        let url = args.url.clone();
        let (target, max) = (args.target, args.max_requests);
        let http = client::http(1, Some(Duration::from_secs(args.timeout_seconds)))?;
        workers.push(tokio::spawn(async move {
            let mut m = Measured::default();
            let mut n = index;
            loop {
                let now = Instant::now();
                if now >= deadline || issued.fetch_add(1, Ordering::Relaxed) >= max {
                    break;
                }
                let req = match target {
                    Target::Health => http.get(format!("{url}/health/live")),
                    Target::Task => {
                        let task = &tasks[n % tasks.len()];
                        http.get(format!("{url}/v1/tasks/{}", task.id))
                            .bearer_auth(&users[task.user].access_token)
                    }
                    Target::Board => http
                        .get(format!("{url}/v1/bounties"))
                        .bearer_auth(&users[n % users.len()].access_token),
                };
                client::exchange(req, &[200], &mut m, now >= measure_from).await;
                n += connections;
            }
            m
        }));
    }
    let mut all = Measured::default();
    for w in workers {
        all.merge(w.await.context("a worker panicked")?);
    }
    let seconds = Instant::now()
        .saturating_duration_since(measure_from)
        .as_secs_f64();
    let name = match args.target {
        Target::Health => "health",
        Target::Task => "task",
        Target::Board => "board",
    };
    Ok(json!({
        "phase": "queries",
        "target": name,
        "connections": connections,
        "seconds": seconds,
        "requests": all.latency.len(),
        "ok": all.tally.ok,
        "failed": all.tally.failed,
        "failure_samples": all.tally.failure_samples,
        "requests_per_sec": all.tally.ok as f64 / seconds.max(1e-9),
        "latency_ms": all.latency.summary(),
    }))
}
