//! `loadgen users`: registers and logs in the users every other phase acts as, and writes
//! them (id, email, access token) to a file. Password hashing is deliberately expensive, so
//! this runs with little concurrency and is not itself measured.

use anyhow::Context;
use futures::{StreamExt, TryStreamExt};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use uuid::Uuid;

use crate::client::{self, User};

const PASSWORD: &str = "bench password, not a secret";

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long)]
    url: String,
    #[arg(long, default_value_t = 128)]
    count: usize,
    /// Registrations in flight at once (each costs an argon2 hash on the server, twice).
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    #[arg(long)]
    out: PathBuf,
    /// Give up after this long.
    #[arg(long, default_value_t = 300)]
    timeout_seconds: u64,
}

pub async fn run(args: Args) -> anyhow::Result<Value> {
    let http = client::http(args.concurrency, Some(Duration::from_secs(30)))?;
    let run_id = Uuid::new_v4().simple().to_string();
    let started = Instant::now();
    let work = futures::stream::iter(0..args.count)
        .map(|i| {
            let (http, url) = (http.clone(), args.url.clone());
            let email = format!("bench-{i}-{}@example.com", &run_id[..12]);
            async move { register(&http, &url, email).await }
        })
        .buffered(args.concurrency.max(1))
        .try_collect::<Vec<User>>();
    let users = tokio::time::timeout(Duration::from_secs(args.timeout_seconds), work)
        .await
        .context("registering users took too long")??;
    client::write_json(&args.out, &users)?;
    Ok(json!({
        "phase": "users",
        "users": users.len(),
        "seconds": started.elapsed().as_secs_f64(),
    }))
}

async fn register(http: &reqwest::Client, url: &str, email: String) -> anyhow::Result<User> {
    let res = http
        .post(format!("{url}/v1/auth/register"))
        .json(&json!({"email": email, "password": PASSWORD, "display_name": "Bench User"}))
        .send()
        .await?;
    anyhow::ensure!(
        res.status() == 201,
        "register {email}: {} {}",
        res.status(),
        res.text().await.unwrap_or_default()
    );
    let id: Uuid = res.json::<Value>().await?["id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .context("register answered no id")?;
    let res = http
        .post(format!("{url}/v1/auth/login"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await?;
    anyhow::ensure!(res.status() == 200, "login {email}: {}", res.status());
    let access_token = res.json::<Value>().await?["access_token"]
        .as_str()
        .context("login answered no access_token")?
        .to_owned();
    Ok(User {
        id,
        email,
        access_token,
    })
}
