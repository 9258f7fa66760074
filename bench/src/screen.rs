//! `loadgen screen`: command-to-screen latency, open loop. One SSE client follows
//! `/v1/streams/tasks`; task creations are sent on a fixed schedule (`--rate` per second,
//! each on a task of its own, never waiting for earlier answers), and each task's latency is
//! the time from its send to the arrival of the SSE message naming its id. Messages are
//! matched by id, so an SSE message that beats its HTTP answer still counts.

use anyhow::Context;
use futures::StreamExt;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::client::{self, User};
use crate::stats::{Measured, Samples};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long)]
    url: String,
    #[arg(long)]
    users: PathBuf,
    /// Task creations per second.
    #[arg(long)]
    rate: f64,
    #[arg(long, default_value_t = 20.0)]
    seconds: f64,
    /// After the last send, how long to wait for the messages still missing.
    #[arg(long, default_value_t = 10.0)]
    drain_seconds: f64,
    /// Sends in flight at most; a send due beyond it is skipped and counted.
    #[arg(long, default_value_t = 2048)]
    max_in_flight: usize,
    #[arg(long, default_value_t = 30)]
    timeout_seconds: u64,
}

type Seen = Arc<Mutex<HashMap<String, Instant>>>;

pub async fn run(args: Args) -> anyhow::Result<Value> {
    let users: Vec<User> = client::read_json(&args.users)?;
    anyhow::ensure!(!users.is_empty(), "no users in {}", args.users.display());
    anyhow::ensure!(args.rate > 0.0, "--rate must be positive");
    let seen: Seen = Arc::default();
    let sse = follow(&args.url, &users[0], seen.clone()).await?;

    let http = client::http(256, Some(Duration::from_secs(args.timeout_seconds)))?;
    let total = (args.rate * args.seconds).ceil() as u64;
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate));
    // Keep the schedule: a late tick is sent at once, not dropped.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let in_flight = Arc::new(AtomicUsize::new(0));
    let mut skipped = 0u64;
    let mut sends = Vec::with_capacity(total as usize);
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(args.seconds);
    for k in 0..total {
        // Latency counts from when the send was due, not from when it went out, so a stalled
        // sender cannot hide its own delay (coordinated omission).
        let due = tick.tick().await.into_std();
        if Instant::now() > deadline + Duration::from_secs(1) {
            break;
        }
        if in_flight.load(Ordering::Relaxed) >= args.max_in_flight {
            skipped += 1;
            continue;
        }
        let user = &users[(k as usize) % users.len()];
        let req = http
            .post(format!("{}/v1/tasks", args.url))
            .bearer_auth(&user.access_token)
            .json(&json!({"queue": "bench-screen", "title": format!("screen {k}")}));
        let in_flight = in_flight.clone();
        in_flight.fetch_add(1, Ordering::Relaxed);
        sends.push(tokio::spawn(async move {
            let sent = due;
            let mut m = Measured::default();
            let answer = client::exchange(req, &[201], &mut m, true).await;
            in_flight.fetch_sub(1, Ordering::Relaxed);
            let id = answer.and_then(|body| {
                serde_json::from_slice::<Value>(&body)
                    .ok()
                    .and_then(|v| v["id"].as_str().map(str::to_owned))
            });
            (sent, id, m)
        }));
    }
    let send_seconds = started.elapsed().as_secs_f64();

    let mut command = Measured::default();
    let mut sent_ids: Vec<(Instant, String)> = Vec::new();
    for s in sends {
        let (sent, id, m) = s.await.context("a send panicked")?;
        command.merge(m);
        if let Some(id) = id {
            sent_ids.push((sent, id));
        }
    }
    // Wait (bounded) for the messages still on their way.
    let drain_until = Instant::now() + Duration::from_secs_f64(args.drain_seconds);
    loop {
        let missing = {
            let seen = seen.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
            sent_ids
                .iter()
                .filter(|(_, id)| !seen.contains_key(id))
                .count()
        };
        if missing == 0 || Instant::now() >= drain_until {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sse.abort();

    let seen = seen.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
    let mut screen = Samples::default();
    let mut missing = 0u64;
    for (sent, id) in &sent_ids {
        match seen.get(id) {
            Some(at) => screen.record(at.saturating_duration_since(*sent)),
            None => missing += 1,
        }
    }
    Ok(json!({
        "phase": "screen",
        "rate_target": args.rate,
        "rate_achieved": command.latency.len() as f64 / send_seconds.max(1e-9),
        "seconds": send_seconds,
        "sent": command.latency.len(),
        "skipped_over_in_flight_cap": skipped,
        "created": sent_ids.len(),
        "seen_on_stream": screen.len(),
        "missing_on_stream": missing,
        "latency_ms": screen.summary(),
        "command": command.report(send_seconds),
    }))
}

/// Subscribes to the tasks stream and records when each task id first appears in it.
async fn follow(url: &str, user: &User, seen: Seen) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let http = client::http(1, None)?;
    let res = tokio::time::timeout(
        Duration::from_secs(10),
        http.get(format!("{url}/v1/streams/tasks"))
            .bearer_auth(&user.access_token)
            .send(),
    )
    .await
    .context("the stream did not answer within 10 s")??;
    anyhow::ensure!(res.status() == 200, "subscribe: {}", res.status());
    let mut body = res.bytes_stream();
    Ok(tokio::spawn(async move {
        let mut buffer: Vec<u8> = Vec::new();
        while let Some(Ok(chunk)) = body.next().await {
            let at = Instant::now();
            buffer.extend_from_slice(&chunk);
            let mut ids = Vec::new();
            while let Some(end) = find_block_end(&buffer) {
                let block: Vec<u8> = buffer.drain(..end.1).collect();
                if let Some(id) = task_id(&block[..end.0]) {
                    ids.push(id);
                }
            }
            if let Ok(mut seen) = seen.lock() {
                for id in ids {
                    seen.entry(id).or_insert(at);
                }
            }
        }
    }))
}

/// The end of the first complete SSE block: (end of its text, end including the blank line).
fn find_block_end(buffer: &[u8]) -> Option<(usize, usize)> {
    let lf = buffer
        .windows(2)
        .position(|w| w == b"\n\n")
        .map(|i| (i, i + 2));
    let crlf = buffer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, i + 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 < b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

/// The `task_id` in a block's `data:` JSON, if it has one.
fn task_id(block: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(block).ok()?;
    let data: String = text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|d| d.strip_prefix(' ').unwrap_or(d))
        .collect::<Vec<_>>()
        .join("\n");
    if data.is_empty() {
        return None;
    }
    let value: Value = serde_json::from_str(&data).ok()?;
    value["task_id"].as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_with_data_names_its_task() {
        let block = b"id: 7\nevent: TaskCreated\ndata: {\"task_id\":\"abc\",\"version\":1}";
        assert_eq!(task_id(block).as_deref(), Some("abc"));
        assert_eq!(task_id(b": keep-alive"), None);
    }

    #[test]
    fn blocks_end_at_a_blank_line() {
        assert_eq!(find_block_end(b"id: 1\ndata: {}\n\nid: 2"), Some((14, 16)));
        assert_eq!(find_block_end(b"id: 1\ndata: {}\n"), None);
    }
}
