//! Compressed request bodies (issue 23): a few kilobytes of gzip that inflate to 100 MB, sent
//! by anyone to the routes that read a body before any credentials (login, the payment
//! webhook), are refused before they are inflated. Checked on the real binary, by its peak
//! memory (VmHWM) before and after sixteen bombs at once.

mod common;

use common::*;
use flate2::write::GzEncoder;
use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

/// 100 MB of zeros, gzipped (about 100 KB).
fn bomb() -> Vec<u8> {
    let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..100 {
        gz.write_all(&zeros).expect("gzip");
    }
    gz.finish().expect("gzip")
}

/// The process's peak resident memory so far, in KiB.
fn peak_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

#[tokio::test]
async fn compressed_bodies_are_refused_before_they_are_inflated() {
    let settings = test_settings(
        &fresh_database().await,
        &std::env::var("NATS_URL").expect("NATS_URL"),
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_bountyline"));
    let child = KillOnDrop(
        bountyline_command(bin, "serve", &settings, port)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start bountyline serve"),
    );
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    wait_ready(&client, &base, Duration::from_secs(20)).await;
    let before = peak_kib(child.0.id());

    let bomb = bomb();
    assert!(
        bomb.len() < 256 * 1024,
        "under the body limit: {}",
        bomb.len()
    );
    let sends = (0..16).map(|i| {
        let path = ["/v1/auth/login", "/v1/webhooks/payments"][i % 2];
        client
            .post(format!("{base}{path}"))
            .header("content-type", "application/json")
            .header("content-encoding", "gzip")
            .body(bomb.clone())
            .send()
    });
    for answer in futures::future::join_all(sends).await {
        let answer = answer.expect("an answer");
        assert_eq!(answer.status(), 415, "{}", answer.url());
        let problem: serde_json::Value = answer.json().await.expect("a problem");
        assert_eq!(
            problem["type"],
            "https://bountyline.dev/problems/unsupported-media-type"
        );
    }
    let grew_mib = peak_kib(child.0.id()).saturating_sub(before) / 1024;
    assert!(grew_mib < 32, "peak memory grew by {grew_mib} MiB");
}
