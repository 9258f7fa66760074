//! `loadgen commands`: closed-loop command throughput. Each of `--connections` workers owns
//! one keep-alive connection and a disjoint share of the users, and sends a weighted mix of
//! task creations, signed deposit webhooks and bounty posts, each answered before the next
//! is sent. Every user's first command is a deposit, so bounties are funded. Bounded by
//! `--seconds` and `--max-requests`, whichever comes first.

use anyhow::Context;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

use crate::client::{self, OwnedTask, User};
use crate::mix::{Kind, Mix, Rng};
use crate::stats::Measured;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long)]
    url: String,
    #[arg(long)]
    users: PathBuf,
    #[arg(long, default_value_t = 64)]
    connections: usize,
    #[arg(long, default_value_t = 20.0)]
    seconds: f64,
    /// Not measured at the start (connections open, caches and pools warm up).
    #[arg(long, default_value_t = 2.0)]
    warmup_seconds: f64,
    #[arg(long, default_value_t = 10_000_000)]
    max_requests: u64,
    /// Weights, e.g. `task=6,deposit=2,bounty=2`.
    #[arg(long, default_value = "task=6,deposit=2,bounty=2")]
    mix: Mix,
    /// The payment provider's secret, to sign deposit webhooks.
    #[arg(
        long,
        env = "BOUNTYLINE_PAYMENTS__WEBHOOK_SECRET",
        hide_env_values = true
    )]
    webhook_secret: String,
    /// Where to write (a sample of) the created tasks and their owners.
    #[arg(long)]
    tasks_out: Option<PathBuf>,
    #[arg(long, default_value_t = 20_000)]
    tasks_kept: usize,
    /// Per-request timeout.
    #[arg(long, default_value_t = 30)]
    timeout_seconds: u64,
}

struct Shared {
    url: String,
    users: Vec<User>,
    connections: usize,
    mix: Mix,
    secret: Vec<u8>,
    run_id: String,
    measure_from: Instant,
    deadline: Instant,
    issued: AtomicU64,
    max_requests: u64,
    tasks_per_worker: usize,
    timeout: Duration,
}

#[derive(Default)]
struct WorkerResult {
    by_kind: BTreeMap<Kind, Measured>,
    tasks: Vec<OwnedTask>,
    unmeasured: u64,
}

pub async fn run(args: Args) -> anyhow::Result<Value> {
    let users: Vec<User> = client::read_json(&args.users)?;
    anyhow::ensure!(!users.is_empty(), "no users in {}", args.users.display());
    let connections = args.connections.max(1);
    let start = Instant::now();
    let shared = Arc::new(Shared {
        url: args.url.clone(),
        users,
        connections,
        mix: args.mix.clone(),
        secret: args.webhook_secret.into_bytes(),
        run_id: Uuid::new_v4().simple().to_string()[..12].to_owned(),
        measure_from: start + Duration::from_secs_f64(args.warmup_seconds),
        deadline: start + Duration::from_secs_f64(args.warmup_seconds + args.seconds),
        issued: AtomicU64::new(0),
        max_requests: args.max_requests,
        tasks_per_worker: args.tasks_kept.div_ceil(connections),
        timeout: Duration::from_secs(args.timeout_seconds),
    });
    let workers: Vec<_> = (0..connections)
        .map(|i| tokio::spawn(worker(shared.clone(), i)))
        .collect();
    let mut total = WorkerResult::default();
    for w in workers {
        let r = w.await.context("a worker panicked")??;
        for (kind, m) in r.by_kind {
            total.by_kind.entry(kind).or_default().merge(m);
        }
        total.tasks.extend(r.tasks);
        total.unmeasured += r.unmeasured;
    }
    let ended = Instant::now();
    let seconds = ended
        .saturating_duration_since(shared.measure_from)
        .as_secs_f64();
    if let Some(path) = &args.tasks_out {
        client::write_json(path, &total.tasks)?;
    }
    let mut all = Measured::default();
    let mut kinds = serde_json::Map::new();
    for (kind, m) in &total.by_kind {
        kinds.insert(kind.name().to_owned(), m.report(seconds));
        all.merge(m.clone());
    }
    Ok(json!({
        "phase": "commands",
        "connections": connections,
        "users": shared.users.len(),
        "mix": args.mix.to_string(),
        "seconds": seconds,
        "warmup_seconds": args.warmup_seconds,
        "requests": all.latency.len(),
        "unmeasured_requests": total.unmeasured,
        "ok": all.tally.ok,
        "failed": all.tally.failed,
        "failure_samples": all.tally.failure_samples,
        "commands_per_sec": all.tally.ok as f64 / seconds.max(1e-9),
        "latency_ms": all.latency.summary(),
        "by_kind": kinds,
    }))
}

async fn worker(shared: Arc<Shared>, index: usize) -> anyhow::Result<WorkerResult> {
    let http = client::http(1, Some(shared.timeout))?;
    // Disjoint shares, so that this tool never races itself on one wallet.
    let mine: Vec<usize> = (0..shared.users.len())
        .filter(|u| u % shared.connections == index)
        .collect();
    let mine = if mine.is_empty() {
        vec![index % shared.users.len()]
    } else {
        mine
    };
    let mut funded = vec![false; mine.len()];
    let mut rng = Rng::new(index as u64 + 1);
    let mut result = WorkerResult::default();
    let mut n: u64 = 0;
    loop {
        let now = Instant::now();
        if now >= shared.deadline
            || shared.issued.fetch_add(1, Ordering::Relaxed) >= shared.max_requests
        {
            break;
        }
        let slot = (n as usize) % mine.len();
        let user_index = mine[slot];
        let user = &shared.users[user_index];
        let kind = if funded[slot] {
            shared.mix.pick(&mut rng)
        } else {
            Kind::Deposit
        };
        let record = now >= shared.measure_from;
        if !record {
            result.unmeasured += 1;
        }
        let into = result.by_kind.entry(kind).or_default();
        let tag = format!("{index}-{n}");
        match kind {
            Kind::Task => {
                let body = json!({
                    "queue": format!("bench-{}", n % 8),
                    "title": format!("bench task {tag}"),
                    "description": "created by bench/run",
                    "priority": (n % 10) as i64,
                });
                let req = http
                    .post(format!("{}/v1/tasks", shared.url))
                    .bearer_auth(&user.access_token)
                    .json(&body);
                if let Some(answer) = client::exchange(req, &[201], into, record).await {
                    if result.tasks.len() < shared.tasks_per_worker {
                        if let Some(id) = serde_json::from_slice::<Value>(&answer)
                            .ok()
                            .and_then(|v| v["id"].as_str().map(str::to_owned))
                        {
                            result.tasks.push(OwnedTask {
                                user: user_index,
                                id,
                            });
                        }
                    }
                }
            }
            Kind::Deposit => {
                let body = serde_json::to_vec(&json!({
                    "event": "deposit.succeeded",
                    "reference": format!("bench-{}-{tag}", shared.run_id),
                    "user_id": user.id,
                    "amount": 10_000,
                    "currency": "USD",
                }))?;
                let req = http
                    .post(format!("{}/v1/webhooks/payments", shared.url))
                    .header("content-type", "application/json")
                    .header("x-signature", client::sign(&shared.secret, &body)?)
                    .body(body);
                if client::exchange(req, &[200], into, record).await.is_some() {
                    funded[slot] = true;
                }
            }
            Kind::Bounty => {
                let body = json!({
                    "title": format!("bench bounty {tag}"),
                    "description": "posted by bench/run",
                    "reward": {"amount": 100, "currency": "USD"},
                    "tags": ["bench"],
                });
                let req = http
                    .post(format!("{}/v1/bounties", shared.url))
                    .bearer_auth(&user.access_token)
                    .json(&body);
                client::exchange(req, &[201], into, record).await;
            }
        }
        n += 1;
    }
    Ok(result)
}
