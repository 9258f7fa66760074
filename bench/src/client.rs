//! What every phase shares: the HTTP client, the users file, webhook signing and turning a
//! response into a success or a named failure.

use anyhow::Context;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::path::Path;
use std::time::Duration;
use uuid::Uuid;

use crate::stats::Measured;

/// A registered, logged-in user, as `loadgen users` writes them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub access_token: String,
}

/// A task a user created, as `loadgen commands` writes them (for the query phase).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OwnedTask {
    /// Index into the users file.
    pub user: usize,
    pub id: String,
}

/// A client for loopback HTTP/1.1: no proxy, no TLS, Nagle off. `connections` caps the idle
/// pool, so a worker that owns its client holds exactly one keep-alive connection.
pub fn http(connections: usize, timeout: Option<Duration>) -> anyhow::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(connections)
        // The server closes a connection idle for 5 s (actix-web's keep-alive); a client that
        // keeps it longer may send a request on it just as it closes, and see an I/O error.
        .pool_idle_timeout(Duration::from_secs(4))
        .connect_timeout(Duration::from_secs(5));
    if let Some(timeout) = timeout {
        builder = builder.timeout(timeout);
    }
    Ok(builder.build()?)
}

pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> anyhow::Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

pub fn write_json(path: &Path, value: &impl Serialize) -> anyhow::Result<()> {
    let text = serde_json::to_string(value)?;
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// `sha256=<hex HMAC-SHA256 of body>`, the payment provider's `X-Signature`.
pub fn sign(secret: &[u8], body: &[u8]) -> anyhow::Result<String> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret)
        .map_err(|e| anyhow::anyhow!("webhook secret: {e}"))?;
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(format!("sha256={hex}"))
}

/// Sends `request`, reads the whole body and records the outcome in `into` (when `record`).
/// Returns the body of a success.
pub async fn exchange(
    request: reqwest::RequestBuilder,
    expect: &[u16],
    into: &mut Measured,
    record: bool,
) -> Option<Bytes> {
    let started = std::time::Instant::now();
    let result = match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            match response.bytes().await {
                Ok(body) => Ok((status, body)),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    };
    let latency = started.elapsed();
    if record {
        into.latency.record(latency);
    }
    match result {
        Ok((status, body)) if expect.contains(&status) => {
            if record {
                into.tally.ok();
            }
            Some(body)
        }
        Ok((status, body)) => {
            if record {
                into.tally.fail(status.to_string(), || {
                    format!(
                        "{status}: {}",
                        String::from_utf8_lossy(&body[..body.len().min(300)])
                    )
                });
            }
            None
        }
        Err(e) => {
            if record {
                into.tally.fail(error_kind(&e).to_owned(), || e.to_string());
            }
            None
        }
    }
}

pub fn error_kind(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else {
        "io"
    }
}
