//! `loadgen hold`: a held load (issue 8, part 3). Commands of the benchmark's mix are sent
//! open loop at `--rate` per second for `--seconds`, with `--subscribers` SSE clients
//! attached, and every `--window-seconds` the tool records what that window saw: answers by
//! status (5xx counted apart), latency percentiles (from when each send was due, so a stalled
//! server cannot hide its own delay), SSE messages received, and the API process's resident
//! memory. Bounded in time; every target is the URL it is given (loopback in bench/run).

use anyhow::Context;
use futures::StreamExt;
use serde_json::{json, Value};
use sqlx::Connection;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

use crate::client::{self, User};
use crate::mix::{Kind, Mix, Rng};
use crate::stats::Measured;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long)]
    url: String,
    #[arg(long)]
    users: PathBuf,
    /// Commands per second.
    #[arg(long)]
    rate: f64,
    #[arg(long, default_value_t = 600.0)]
    seconds: f64,
    #[arg(long, default_value_t = 10.0)]
    window_seconds: f64,
    /// Windows before this many seconds are warm-up: memory growth counts from its end.
    #[arg(long, default_value_t = 60.0)]
    warmup_seconds: f64,
    /// SSE clients kept attached (tasks, bounties and stats streams in turn).
    #[arg(long, default_value_t = 8)]
    subscribers: usize,
    /// The API process whose resident memory is sampled (from /proc).
    #[arg(long)]
    api_pid: Option<u32>,
    /// `NAME=PID`, repeatable: CPU used by that process and its descendants, per window
    /// (from /proc), so a slow window shows which process was busy. This tool is always
    /// watched as `loadgen`.
    #[arg(long = "watch", value_parser = parse_watch)]
    watch: Vec<(String, u32)>,
    /// The run's database: per window, the read side's lag behind the store's head.
    #[arg(long)]
    database_url: Option<String>,
    #[arg(long, default_value = "task=6,deposit=2,bounty=2")]
    mix: Mix,
    #[arg(
        long,
        env = "BOUNTYLINE_PAYMENTS__WEBHOOK_SECRET",
        hide_env_values = true
    )]
    webhook_secret: String,
    /// Sends in flight at most; a send due beyond it is skipped and counted.
    #[arg(long, default_value_t = 4096)]
    max_in_flight: usize,
    #[arg(long, default_value_t = 30)]
    timeout_seconds: u64,
}

/// What one window saw.
#[derive(Default)]
struct Window {
    measured: Measured,
    server_errors: u64,
}

pub async fn run(args: Args) -> anyhow::Result<Value> {
    let users: Arc<Vec<User>> = Arc::new(client::read_json(&args.users)?);
    anyhow::ensure!(!users.is_empty(), "no users in {}", args.users.display());
    anyhow::ensure!(args.rate > 0.0, "--rate must be positive");
    anyhow::ensure!(
        args.window_seconds > 0.0,
        "--window-seconds must be positive"
    );
    let http = client::http(512, Some(Duration::from_secs(args.timeout_seconds)))?;
    let secret = Arc::new(args.webhook_secret.into_bytes());
    let run_id = Uuid::new_v4().simple().to_string()[..12].to_owned();

    // Every user gets money first, unmeasured, so that bounties are funded.
    for (i, user) in users.iter().enumerate() {
        let mut ignored = Measured::default();
        let req = deposit(
            &http,
            &args.url,
            &secret,
            user,
            &format!("{run_id}-fund-{i}"),
        )?;
        client::exchange(req, &[200], &mut ignored, false).await;
    }

    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(args.seconds);
    let messages = Arc::new(AtomicU64::new(0));
    let reconnects = Arc::new(AtomicU64::new(0));
    let subscribers: Vec<_> = (0..args.subscribers)
        .map(|i| {
            let topic = ["tasks", "bounties", "stats"][i % 3];
            tokio::spawn(subscribe(
                format!("{}/v1/streams/{topic}", args.url),
                users[i % users.len()].access_token.clone(),
                deadline,
                messages.clone(),
                reconnects.clone(),
            ))
        })
        .collect();

    let window_count = (args.seconds / args.window_seconds).ceil() as usize;
    let windows: Arc<Vec<Mutex<Window>>> =
        Arc::new((0..window_count).map(|_| Mutex::default()).collect());
    let mut watched = args.watch.clone();
    watched.push(("loadgen".to_owned(), std::process::id()));
    let run_db = match &args.database_url {
        Some(url) => Some(
            sqlx::PgConnection::connect(url)
                .await
                .context("connecting to the run's database")?,
        ),
        None => None,
    };
    let sampler = tokio::spawn(sample_windows(
        Sampling {
            api_pid: args.api_pid,
            url: args.url.clone(),
            watched,
            run_db,
            messages: messages.clone(),
        },
        started,
        Duration::from_secs_f64(args.window_seconds),
        window_count,
    ));

    let total = (args.rate * args.seconds).ceil() as u64;
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let in_flight = Arc::new(AtomicUsize::new(0));
    let mut skipped = 0u64;
    let mut rng = Rng::new(11);
    let mut sends = Vec::new();
    for k in 0..total {
        let due = tick.tick().await.into_std();
        if Instant::now() >= deadline {
            break;
        }
        if in_flight.load(Ordering::Relaxed) >= args.max_in_flight {
            skipped += 1;
            continue;
        }
        let user = &users[(k as usize) % users.len()];
        let tag = format!("{run_id}-{k}");
        let (req, expect) = match args.mix.pick(&mut rng) {
            Kind::Task => (
                http.post(format!("{}/v1/tasks", args.url))
                    .bearer_auth(&user.access_token)
                    .json(&json!({"queue": format!("hold-{}", k % 8),
                        "title": format!("held load {tag}"), "priority": (k % 10) as i64})),
                201,
            ),
            Kind::Deposit => (deposit(&http, &args.url, &secret, user, &tag)?, 200),
            Kind::Bounty => (
                http.post(format!("{}/v1/bounties", args.url))
                    .bearer_auth(&user.access_token)
                    .json(&json!({"title": format!("held load {tag}"),
                        "description": "posted by loadgen hold",
                        "reward": {"amount": 100, "currency": "USD"}})),
                201,
            ),
        };
        let window =
            (due.saturating_duration_since(started).as_secs_f64() / args.window_seconds) as usize;
        let (windows, in_flight) = (windows.clone(), in_flight.clone());
        in_flight.fetch_add(1, Ordering::Relaxed);
        sends.push(tokio::spawn(async move {
            let mut m = Measured::default();
            client::exchange(req, &[expect], &mut m, true).await;
            in_flight.fetch_sub(1, Ordering::Relaxed);
            // Latency from when the send was due, not from when it went out.
            let mut measured = Measured {
                tally: m.tally,
                ..Default::default()
            };
            measured.latency.record(due.elapsed());
            let server_errors = measured
                .tally
                .failed
                .iter()
                .filter(|(what, _)| what.starts_with('5'))
                .map(|(_, n)| n)
                .sum::<u64>();
            if let Some(slot) = windows.get(window.min(windows.len() - 1)) {
                if let Ok(mut w) = slot.lock() {
                    w.measured.merge(measured);
                    w.server_errors += server_errors;
                }
            }
        }));
    }
    for s in sends {
        s.await.context("a send panicked")?;
    }
    let samples = sampler.await.context("the sampler panicked")?;
    for s in subscribers {
        s.abort();
    }

    let warm_windows = (args.warmup_seconds / args.window_seconds).ceil() as usize;
    let mut rows = Vec::new();
    let mut all = Measured::default();
    let mut server_errors = 0;
    for (i, (slot, sample)) in windows.iter().zip(&samples).enumerate() {
        let w = slot.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
        let latency = w.measured.latency.summary();
        rows.push(json!({
            "window": i,
            "end_seconds": (i + 1) as f64 * args.window_seconds,
            "warmup": i < warm_windows,
            "sent": latency.count,
            "ok": w.measured.tally.ok,
            "failed": w.measured.tally.failed,
            "server_errors": w.server_errors,
            "p50_ms": latency.p50_ms,
            "p99_ms": latency.p99_ms,
            "max_ms": latency.max_ms,
            "rss_kb": sample.rss_kb,
            "sse_messages": sample.messages,
            "cpu_pct": sample.cpu_pct,
            "lag_events": sample.lag_events,
            "wal": sample.wal,
            "server": sample.server,
        }));
        all.merge(w.measured.clone());
        server_errors += w.server_errors;
    }
    let rss = |i: usize| samples.get(i).and_then(|s| s.rss_kb);
    let rss_warm = rss(warm_windows.saturating_sub(1));
    let rss_end = samples.last().and_then(|s| s.rss_kb);
    let rss_max = samples.iter().filter_map(|s| s.rss_kb).max();
    let growth = match (rss_warm, rss_end) {
        (Some(a), Some(b)) if a > 0 => Some((b as f64 - a as f64) * 100.0 / a as f64),
        _ => None,
    };
    let steady_p99 = rows
        .iter()
        .skip(warm_windows)
        .filter_map(|r| r["p99_ms"].as_f64())
        .fold(0.0, f64::max);
    Ok(json!({
        "phase": "hold",
        "rate_target": args.rate,
        "rate_achieved": all.latency.len() as f64 / args.seconds,
        "seconds": args.seconds,
        "window_seconds": args.window_seconds,
        "warmup_seconds": args.warmup_seconds,
        "subscribers": args.subscribers,
        "sse_reconnects": reconnects.load(Ordering::Relaxed),
        "sse_messages": messages.load(Ordering::Relaxed),
        "sent": all.latency.len(),
        "ok": all.tally.ok,
        "failed": all.tally.failed,
        "failure_samples": all.tally.failure_samples,
        "server_errors": server_errors,
        "skipped_over_in_flight_cap": skipped,
        "latency_ms": all.latency.summary(),
        "worst_window_p99_ms_after_warmup": steady_p99,
        "rss_kb_after_warmup": rss_warm,
        "rss_kb_end": rss_end,
        "rss_kb_max": rss_max,
        "rss_growth_pct_after_warmup": growth,
        "windows": rows,
    }))
}

fn deposit(
    http: &reqwest::Client,
    url: &str,
    secret: &[u8],
    user: &User,
    reference: &str,
) -> anyhow::Result<reqwest::RequestBuilder> {
    let body = serde_json::to_vec(&json!({
        "event": "deposit.succeeded",
        "reference": format!("hold-{reference}"),
        "user_id": user.id,
        "amount": 10_000,
        "currency": "USD",
    }))?;
    Ok(http
        .post(format!("{url}/v1/webhooks/payments"))
        .header("content-type", "application/json")
        .header("x-signature", client::sign(secret, &body)?)
        .body(body))
}

/// Follows one stream until `deadline`, counting messages (blank-line-ended blocks) and
/// reconnecting (after a second) when it ends.
async fn subscribe(
    url: String,
    token: String,
    deadline: Instant,
    messages: Arc<AtomicU64>,
    reconnects: Arc<AtomicU64>,
) {
    let Ok(http) = client::http(1, None) else {
        return;
    };
    while Instant::now() < deadline {
        if let Ok(res) = http.get(&url).bearer_auth(&token).send().await {
            let mut body = res.bytes_stream();
            let mut tail = Vec::new();
            while let Some(Ok(chunk)) = body.next().await {
                tail.extend_from_slice(&chunk);
                let blocks = tail.windows(2).filter(|w| w == b"\n\n").count() as u64;
                if let Some(last) = tail.windows(2).rposition(|w| w == b"\n\n") {
                    tail.drain(..last + 2);
                }
                messages.fetch_add(blocks, Ordering::Relaxed);
                if Instant::now() >= deadline {
                    return;
                }
            }
        }
        reconnects.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

struct Sample {
    rss_kb: Option<u64>,
    messages: u64,
    /// Per watched name: CPU seconds used in the window per wall second, in percent (200%
    /// is both cores of this machine).
    cpu_pct: serde_json::Map<String, Value>,
    /// The store's head minus the lowest checkpoint (projections and relay) at the window's end.
    lag_events: Option<i64>,
    /// The cluster's WAL in the window: fsyncs and MB written per second, from `pg_stat_wal`.
    /// Commits wait on these fsyncs, so fewer of them at the same load is a slower disk.
    wal: Option<Value>,
    /// What the API process did in the window, from its `/metrics` and /proc: see `Server`.
    server: Option<Value>,
}

struct Sampling {
    api_pid: Option<u32>,
    /// The API, whose `/metrics` is read at each window's end.
    url: String,
    watched: Vec<(String, u32)>,
    /// The run's database: its lag and the cluster's WAL figures are read here.
    /// One connection, not a pool (see `catchup::run`).
    run_db: Option<sqlx::PgConnection>,
    messages: Arc<AtomicU64>,
}

/// At the end of each window: the API's resident memory, the SSE messages received in it,
/// the CPU each watched process tree used, and the read side's lag.
async fn sample_windows(
    mut how: Sampling,
    started: Instant,
    window: Duration,
    count: usize,
) -> Vec<Sample> {
    let ticks = clock_ticks_per_second();
    let mut samples = Vec::with_capacity(count);
    let mut seen = 0;
    let mut cpu_before: Vec<Option<u64>> = how
        .watched
        .iter()
        .map(|(_, pid)| tree_ticks(*pid))
        .collect();
    let mut steal_before = steal_ticks();
    let mut wal_before = match how.run_db.as_mut() {
        Some(db) => wal_totals(db).await,
        None => None,
    };
    let metrics = client::http(1, Some(Duration::from_secs(2))).ok();
    let mut server_before = Server::read(metrics.as_ref(), &how.url).await;
    let mut at_before = Instant::now();
    for i in 1..=count {
        tokio::time::sleep_until((started + window * i as u32).into()).await;
        let total = how.messages.load(Ordering::Relaxed);
        let now = Instant::now();
        let wall = now.duration_since(at_before).as_secs_f64().max(1e-3);
        let mut cpu_pct = serde_json::Map::new();
        // Ticks between two readings as a share of one core over the window, to 0.1%.
        let mut record = |name: &str, before: Option<u64>, after: Option<u64>| {
            if let (Some(a), Some(b)) = (before, after) {
                let pct = b.saturating_sub(a) as f64 / ticks / wall * 100.0;
                cpu_pct.insert(name.to_owned(), json!((pct * 10.0).round() / 10.0));
            }
        };
        for ((name, pid), before) in how.watched.iter().zip(cpu_before.iter_mut()) {
            let after = tree_ticks(*pid);
            record(name, *before, after);
            *before = after;
        }
        // CPU time the host gave to others while this machine wanted it: load the run did not
        // cause, and the likeliest cause of a window where every process used less.
        let steal_after = steal_ticks();
        record("steal", steal_before, steal_after);
        steal_before = steal_after;
        at_before = now;
        let (lag_events, wal_after) = match how.run_db.as_mut() {
            Some(db) => (lag_events(db).await, wal_totals(db).await),
            None => (None, None),
        };
        let wal = match (wal_before, wal_after) {
            (Some((syncs_a, bytes_a)), Some((syncs_b, bytes_b))) => Some(json!({
                "syncs_per_sec": ((syncs_b - syncs_a) as f64 / wall).round(),
                "mb_per_sec": ((bytes_b - bytes_a) / 1e6 / wall * 10.0).round() / 10.0,
            })),
            _ => None,
        };
        wal_before = wal_after;
        let server_after = Server::read(metrics.as_ref(), &how.url).await;
        let server = match (&server_before, &server_after) {
            (Some(a), Some(b)) => Some(b.since(a, wall, how.api_pid.and_then(sockets))),
            _ => None,
        };
        server_before = server_after;
        samples.push(Sample {
            rss_kb: how.api_pid.and_then(rss_kb),
            messages: total - seen,
            cpu_pct,
            lag_events,
            wal,
            server,
        });
        seen = total;
    }
    samples
}

/// The API's own counters, as its `/metrics` shows them: the group commits (how many, how
/// many commands, how long the committer spent in them) and the requests that waited for a
/// place or were shed (`guard::shed_load`). A window where commands slow down shows here
/// whether the committer was busy (the store) or idle (waiting on something else).
struct Server {
    groups: f64,
    grouped_commands: f64,
    committing_seconds: f64,
    waited: f64,
    shed: f64,
}

impl Server {
    async fn read(http: Option<&reqwest::Client>, url: &str) -> Option<Self> {
        let text = crate::ops::metrics_text(http?, url).await.ok()?;
        let total = |name: &str| series_total(&text, name);
        Some(Self {
            groups: total("bountyline_append_group_commands_count"),
            grouped_commands: total("bountyline_append_group_commands_sum"),
            committing_seconds: total("bountyline_append_commit_duration_seconds_sum"),
            waited: total("bountyline_http_waited_total"),
            shed: total("bountyline_http_shed_total"),
        })
    }

    /// The window between `before` and `self`, `wall` seconds long.
    fn since(&self, before: &Self, wall: f64, sockets: Option<usize>) -> Value {
        let groups = self.groups - before.groups;
        let commands = self.grouped_commands - before.grouped_commands;
        let busy = (self.committing_seconds - before.committing_seconds) / wall * 100.0;
        json!({
            "groups_per_sec": (groups / wall).round(),
            "commands_per_group": if groups > 0.0 { (commands / groups * 10.0).round() / 10.0 } else { 0.0 },
            "committer_busy_pct": busy.round(),
            "waited": self.waited - before.waited,
            "shed": self.shed - before.shed,
            "sockets": sockets,
        })
    }
}

/// The sum of every series of `name` in a Prometheus text exposition (0 if it has none yet:
/// a counter appears with its first increment).
fn series_total(text: &str, name: &str) -> f64 {
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?;
            if !(rest.starts_with(' ') || rest.starts_with('{')) {
                return None;
            }
            rest.rsplit(' ').next()?.parse::<f64>().ok()
        })
        .sum()
}

/// Open sockets of `pid` (its client connections, and its pools' and listeners'), from
/// /proc/PID/fd.
fn sockets(pid: u32) -> Option<usize> {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    Some(
        fds.flatten()
            .filter_map(|fd| std::fs::read_link(fd.path()).ok())
            .filter(|target| target.to_string_lossy().starts_with("socket:"))
            .count(),
    )
}

/// The cluster's WAL fsyncs and bytes written since its statistics were reset.
async fn wal_totals(db: &mut sqlx::PgConnection) -> Option<(i64, f64)> {
    sqlx::query_as::<_, (i64, f64)>("SELECT wal_sync, wal_bytes::float8 FROM pg_stat_wal")
        .fetch_one(db)
        .await
        .ok()
}

/// The store's head minus the lowest checkpoint, read as `loadgen catchup` reads them.
async fn lag_events(db: &mut sqlx::PgConnection) -> Option<i64> {
    let head = crate::catchup::head(db).await.ok()?;
    let lowest = crate::catchup::checkpoints(db)
        .await
        .ok()?
        .into_iter()
        .map(|(_, position)| position)
        .min()?;
    Some(head - lowest)
}

fn parse_watch(s: &str) -> Result<(String, u32), String> {
    let (name, pid) = s.split_once('=').ok_or("expected NAME=PID")?;
    let pid = pid.parse().map_err(|_| format!("not a pid: {pid}"))?;
    Ok((name.to_owned(), pid))
}

/// The kernel's clock ticks per second (`getconf CLK_TCK`; 100 on Linux when it cannot say).
fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// The machine's stolen CPU ticks, all CPUs together (the `steal` field of /proc/stat).
fn steal_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    line.split_whitespace().nth(8)?.parse().ok()
}

/// User plus system CPU ticks of `root` and every live descendant (Postgres's backends are
/// the postmaster's children), from /proc/PID/stat; `None` if `root` is gone.
fn tree_ticks(root: u32) -> Option<u64> {
    let mut parents = std::collections::HashMap::new();
    let mut ticks = std::collections::HashMap::new();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the command name, which is in parentheses and may hold spaces.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // rest[0] is the state (field 3): ppid is field 4, utime 14, stime 15.
        let num = |i: usize| fields.get(i - 3).and_then(|v| v.parse::<u64>().ok());
        if let (Some(ppid), Some(u), Some(s)) = (num(4), num(14), num(15)) {
            parents.insert(pid, ppid as u32);
            ticks.insert(pid, u + s);
        }
    }
    ticks.get(&root)?;
    let in_tree = |mut pid: u32| loop {
        if pid == root {
            return true;
        }
        match parents.get(&pid) {
            Some(&p) if p != 0 && p != pid => pid = p,
            _ => return false,
        }
    };
    Some(
        ticks
            .iter()
            .filter(|(pid, _)| in_tree(**pid))
            .map(|(_, t)| t)
            .sum(),
    )
}
/// VmRSS of `pid` in kB, from /proc.
fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::series_total;

    #[test]
    fn a_series_total_adds_every_label_set_of_that_name_only() {
        let text = "# TYPE bountyline_http_shed_total counter\n\
                    bountyline_http_shed_total 3\n\
                    bountyline_append_group_commands_sum 40\n\
                    bountyline_append_group_commands_count{process=\"a\"} 4\n\
                    bountyline_append_group_commands_count{process=\"b\"} 6\n\
                    bountyline_append_group_commands_count_other 100\n";
        assert_eq!(
            series_total(text, "bountyline_append_group_commands_count"),
            10.0
        );
        assert_eq!(series_total(text, "bountyline_http_shed_total"), 3.0);
        assert_eq!(series_total(text, "bountyline_http_waited_total"), 0.0);
    }
}
