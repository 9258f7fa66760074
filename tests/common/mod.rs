//! The test harness: every test gets the real server (API and workers) on a random port, its
//! own freshly migrated database and its own NATS stream and subject prefix, so tests run in
//! parallel without sharing state. Postgres and NATS are the real ones `scripts/test` starts.
#![allow(dead_code)]

pub mod accounts;
pub mod sse;
pub mod texts;

pub use accounts::TestUser;

use bountyline::config::{
    AuthSettings, HttpSettings, LimitSettings, PaymentsSettings, PrivacySettings, Settings,
    SseSettings, WorkerSettings,
};
use bountyline::startup::{Application, Parts, Shutdown};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use sqlx::{Connection, PgConnection, PgPool};
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;
use uuid::Uuid;

pub struct TestApp {
    pub address: String,
    pub port: u16,
    pub client: reqwest::Client,
    pub pool: PgPool,
    pub settings: Settings,
    pub shutdown: Shutdown,
    /// Shared by every app of one test (same database and prefix): the last one dropped
    /// removes the test's database and NATS stream.
    _cleanup: Arc<Cleanup>,
}

/// Removes a test's database and JetStream stream, so that test runs do not pile up gigabytes
/// on a developer's machine.
struct Cleanup {
    database_url: String,
    nats_url: String,
    stream: String,
}

impl Cleanup {
    /// The one cleanup for this database, shared by all the apps a test starts on it.
    fn for_settings(settings: &Settings) -> Arc<Cleanup> {
        static LIVE: OnceLock<Mutex<HashMap<String, Weak<Cleanup>>>> = OnceLock::new();
        let url = settings.database_url.expose_secret().to_owned();
        let mut live = LIVE.get_or_init(Default::default).lock().unwrap();
        live.retain(|_, weak| weak.strong_count() > 0);
        if let Some(existing) = live.get(&url).and_then(Weak::upgrade) {
            return existing;
        }
        let cleanup = Arc::new(Cleanup {
            database_url: url.clone(),
            nats_url: settings.nats_url.clone(),
            stream: bountyline::nats::Names::new(&settings.nats_prefix).stream(),
        });
        live.insert(url, Arc::downgrade(&cleanup));
        cleanup
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let Some((_, name)) = self.database_url.rsplit_once('/') else {
            return;
        };
        let (name, stream, nats) = (name.to_owned(), self.stream.clone(), self.nats_url.clone());
        // Drop runs inside the test's runtime, which must not be blocked on: use a thread of
        // its own with a small runtime, bounded in time.
        let worker = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                let work = async {
                    if let Ok(mut admin) = PgConnection::connect(&env("DATABASE_URL")).await {
                        let _ =
                            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                                .execute(&mut admin)
                                .await;
                    }
                    if let Ok(client) = async_nats::connect(&nats).await {
                        let _ = async_nats::jetstream::new(client)
                            .delete_stream(&stream)
                            .await;
                    }
                };
                let _ = tokio::time::timeout(Duration::from_secs(10), work).await;
            });
        });
        let _ = worker.join();
    }
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests with scripts/test, which starts Postgres and NATS")
    })
}

/// A new, migrated database of its own; returns its URL.
pub async fn fresh_database() -> String {
    let base = env("DATABASE_URL");
    let name = format!("bl_test_{}", Uuid::new_v4().simple());
    let mut admin = PgConnection::connect(&base)
        .await
        .expect("connect to Postgres");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .expect("create test database");
    let url = match base.rsplit_once('/') {
        Some((server, _)) => format!("{server}/{name}"),
        None => panic!("DATABASE_URL has no database name"),
    };
    let pool = PgPool::connect(&url)
        .await
        .expect("connect to test database");
    bountyline::db::migrate(&pool).await.expect("migrate");
    pool.close().await;
    url
}

/// Settings for a test instance: its own database, NATS prefix, random port, fast timers.
pub fn test_settings(database_url: &str, nats_url: &str) -> Settings {
    Settings {
        database_url: SecretString::from(database_url.to_owned()),
        nats_url: nats_url.to_owned(),
        nats_prefix: format!("t{}", &Uuid::new_v4().simple().to_string()[..12]),
        // A test's stream is left behind when it ends; let NATS drop its messages soon after.
        nats_stream_max_age_secs: 3600,
        nats_duplicate_window_secs: 120,
        db_pool_size: 10,
        http: HttpSettings {
            host: "127.0.0.1".into(),
            port: 0,
            body_limit_bytes: 256 * 1024,
            shutdown_timeout_secs: 5,
            read_your_writes_timeout_ms: 5000,
            request_timeout_secs: 30,
            max_in_flight: 256,
            admission_wait_ms: 2000,
            cors_origins: String::new(),
            allowed_origins: String::new(),
            metrics_token: SecretString::from(String::new()),
            docs: true,
        },
        auth: AuthSettings {
            jwt_secret: SecretString::from(format!("test-secret-{}", Uuid::new_v4())),
            issuer: "bountyline".into(),
            audience: "bountyline-api".into(),
            access_ttl_secs: 900,
            refresh_ttl_secs: 3600,
            session_cache_ms: 1000,
            hashing_concurrency: 1,
        },
        sse: SseSettings {
            keep_alive_secs: 1,
            hub_capacity: 4096,
            client_buffer: 64,
            max_streams_per_user: 8,
            session_recheck_secs: 1,
        },
        worker: WorkerSettings {
            lease_scan_interval_ms: 200,
            projection_batch: 500,
            projection_catch_up_batch: 5000,
            relay_batch: 1000,
            relay_idle_poll_ms: 2000,
            ack_wait_secs: 30,
        },
        payments: PaymentsSettings {
            webhook_secret: SecretString::from(format!("whsec-{}", Uuid::new_v4())),
        },
        // Tests register many users and send bursts of commands from one address; the
        // limits' own tests switch them on.
        limits: LimitSettings {
            auth_per_minute: 0,
            auth_burst: 0,
            commands_per_minute: 0,
            commands_burst: 0,
            login_failures_burst: 0,
            login_failures_per_minute: 0,
            leases_per_worker: 0,
        },
        privacy: PrivacySettings {
            key: SecretString::from(test_privacy_key()),
            key_cache_ms: 1000,
        },
        log_format: "pretty".into(),
    }
}

/// A key-encryption key of people's texts for one test: 32 bytes (two random UUIDs'), base64.
pub fn test_privacy_key() -> String {
    use base64::Engine;
    let bytes: Vec<u8> = Uuid::new_v4()
        .into_bytes()
        .into_iter()
        .chain(Uuid::new_v4().into_bytes())
        .collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// An opener of people's texts under `settings`' key, over `pool`: what a rebuild of the
/// bounties' search vector opens with.
pub fn opener_for(pool: &PgPool, settings: &Settings) -> bountyline::privacy::Opener {
    let keyring = bountyline::privacy::Keyring::new(pool.clone(), settings).expect("keyring");
    bountyline::privacy::Opener::new(keyring)
}

impl TestApp {
    /// This app's opener of people's texts (its keyring, its key).
    pub fn opener(&self) -> bountyline::privacy::Opener {
        opener_for(&self.pool, &self.settings)
    }
}

impl TestApp {
    /// API and workers in one process, on the shared test services.
    pub async fn spawn() -> TestApp {
        let db = fresh_database().await;
        Self::spawn_with(test_settings(&db, &env("NATS_URL")), Parts::ALL).await
    }

    pub async fn spawn_with(settings: Settings, parts: Parts) -> TestApp {
        bountyline::telemetry::init_tracing("pretty");
        let app = Application::build(settings.clone(), parts)
            .await
            .expect("build application");
        let port = app.port().unwrap_or(0);
        let shutdown = app.shutdown_handle();
        tokio::spawn(app.run_until_stopped());
        let pool = PgPool::connect(settings.database_url.expose_secret())
            .await
            .expect("connect test pool");
        let cleanup = Cleanup::for_settings(&settings);
        TestApp {
            address: format!("http://127.0.0.1:{port}"),
            port,
            client: reqwest::Client::new(),
            pool,
            settings,
            shutdown,
            _cleanup: cleanup,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn post(&self, user: &TestUser, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(&user.access_token)
            .json(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn get(&self, user: &TestUser, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(&user.access_token)
            .send()
            .await
            .expect("request")
    }

    /// `GET path` as `user`, seeing at least `position` (`X-Min-Position`: read your writes).
    pub async fn get_at(
        &self,
        user: &TestUser,
        path: &str,
        position: impl ToString,
    ) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(&user.access_token)
            .header("X-Min-Position", position.to_string())
            .send()
            .await
            .expect("request")
    }

    /// Creates a task and returns the command's answer (`{id, version, position}`).
    pub async fn create_task(
        &self,
        user: &TestUser,
        queue: &str,
        title: &str,
        priority: i64,
    ) -> Value {
        let res = self
            .post(
                user,
                "/v1/tasks",
                &serde_json::json!({"queue": queue, "title": title, "priority": priority}),
            )
            .await;
        assert_eq!(res.status(), 201, "create task");
        res.json().await.expect("json")
    }

    /// `owner` (the member who first posted to `queue`) grants `worker` the queue: they may
    /// claim from it.
    pub async fn grant_queue(&self, owner: &TestUser, queue: &str, worker: &TestUser) {
        let res = self
            .client
            .put(self.url(&format!("/v1/queues/{queue}/workers/{}", worker.id)))
            .bearer_auth(&owner.access_token)
            .send()
            .await
            .expect("grant a queue");
        assert_eq!(res.status(), 204, "grant {queue} to {}", worker.email);
    }

    /// `worker` may claim from `queue` (which a posted task made): granted in the database, as
    /// `auditor()` grants its role, for tests about something else than queue access.
    pub async fn may_work(&self, queue: &str, worker: &TestUser) {
        sqlx::query(
            "INSERT INTO queue_workers (queue, user_id, granted_by) \
             SELECT name, $2, owner FROM queues WHERE name = $1 ON CONFLICT DO NOTHING",
        )
        .bind(queue)
        .bind(worker.id)
        .execute(&self.pool)
        .await
        .expect("grant a queue");
    }

    /// Waits until `projection` has applied `position`.
    pub async fn wait_for_projection(&self, projection: &str, position: i64) {
        let pool = self.pool.clone();
        let name = projection.to_owned();
        wait_until(
            Duration::from_secs(20),
            &format!("{projection} to reach {position}"),
            || {
                let (pool, name) = (pool.clone(), name.clone());
                async move {
                    bountyline_projections::checkpoint::read(&pool, &name)
                        .await
                        .map(|p| p >= position)
                        .unwrap_or(false)
                }
            },
        )
        .await;
    }

    /// The highest position in the event store.
    /// How many events the store holds (a refused request must not change it).
    pub async fn event_count(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(&self.pool)
            .await
            .expect("count events")
    }

    /// A counter's value in this process's `/metrics` (`series` with its labels, as the
    /// exposition writes them); 0 when it was never incremented.
    pub async fn counter(&self, series: &str) -> u64 {
        self.sample(series)
            .await
            .map_or(0, |count| count.trim().parse().expect("a count"))
    }

    /// One series' value in `/metrics` as a number (a histogram's sum, say), if present.
    pub async fn value(&self, series: &str) -> Option<f64> {
        let sample = self.sample(series).await?;
        Some(sample.trim().parse().expect("a number"))
    }

    /// The value of one series in `/metrics` (name and labels as rendered), if present.
    pub async fn sample(&self, series: &str) -> Option<String> {
        let metrics = self
            .client
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics text");
        metrics
            .lines()
            .find_map(|line| Some(line.strip_prefix(series)?.strip_prefix(' ')?.to_owned()))
    }

    pub async fn head(&self) -> i64 {
        sqlx::query_scalar("SELECT coalesce(max(position), 0)::bigint FROM events")
            .fetch_one(&self.pool)
            .await
            .expect("head")
    }

    /// Where the relay's checkpoint on `stream` stands (0 before its first publish).
    pub async fn relay_at(&self, stream: &str) -> i64 {
        sqlx::query_scalar::<_, i64>("SELECT position FROM relay_checkpoints WHERE stream = $1")
            .bind(stream)
            .fetch_optional(&self.pool)
            .await
            .expect("relay checkpoint")
            .unwrap_or(0)
    }

    /// Waits until the relay has published up to `position` to this app's stream.
    pub async fn wait_for_relay(&self, position: i64, limit: Duration) {
        let stream = bountyline::nats::Names::new(&self.settings.nats_prefix).stream();
        wait_until(
            limit,
            &format!("the relay to publish up to {position}"),
            || async { self.relay_at(&stream).await >= position },
        )
        .await;
    }

    /// Waits until every projection and the process managers have applied everything in the
    /// store, and the store has stopped growing (process managers append follow-ups).
    pub async fn settle(&self) {
        let mut names: Vec<&str> = bountyline::workers::projections(&self.opener())
            .iter()
            .map(|p| p.name())
            .collect();
        names.push("process-managers");
        loop {
            let head = self.head().await;
            for name in &names {
                self.wait_for_projection(name, head).await;
            }
            if self.head().await == head {
                return;
            }
        }
    }
}

/// Polls `check` until it is true, failing the test after `limit`.
pub async fn wait_until<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check().await {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

impl TestApp {
    /// Sends a webhook signed with this app's secret (or unsigned when `sign` is false).
    pub async fn webhook(&self, body: &Value, sign: bool) -> reqwest::Response {
        let raw = serde_json::to_vec(body).expect("json");
        let mut req = self
            .client
            .post(self.url("/v1/webhooks/payments"))
            .header("content-type", "application/json");
        if sign {
            let secret = self.settings.payments.webhook_secret.expose_secret();
            req = req.header(
                "X-Signature",
                bountyline::http::signature::sign(secret.as_bytes(), &raw),
            );
        }
        req.body(raw).send().await.expect("request")
    }

    /// Deposits through a signed `deposit.succeeded` webhook and returns its answer.
    pub async fn deposit(&self, user: &TestUser, amount: i64, currency: &str) -> Value {
        let reference = format!("dep-{}", Uuid::new_v4());
        let body = deposit_body(&reference, user.id, amount, currency);
        let res = self.webhook(&body, true).await;
        assert_eq!(res.status(), 200, "deposit");
        res.json().await.expect("json")
    }

    /// `(available, held)` of `user` in USD once the wallets read model has caught up, 0 where
    /// the wallet has none.
    pub async fn usd(&self, user: &TestUser) -> (i64, i64) {
        let balances = self.balances(user).await;
        balances["balances"]
            .as_array()
            .and_then(|all| all.iter().find(|b| b["currency"] == "USD"))
            .map(|b| {
                (
                    b["available"].as_i64().unwrap(),
                    b["held"].as_i64().unwrap(),
                )
            })
            .unwrap_or((0, 0))
    }

    /// `GET /v1/wallets/me` once the wallets read model has caught up with the store.
    pub async fn balances(&self, user: &TestUser) -> Value {
        let head = self.head().await;
        let res = self.get_at(user, "/v1/wallets/me", head).await;
        assert_eq!(res.status(), 200);
        res.json().await.expect("json")
    }
}

impl TestApp {
    /// Publishes a copy of every stored event again under a NEW message id (so JetStream's
    /// deduplication cannot drop it), as a relay would after its dedupe window passed.
    pub async fn republish_everything(&self) {
        use bountyline_projections::wire::{HEADER_MSG_ID, HEADER_POSITION, HEADER_PREV_POSITION};
        let js = self.jetstream().await;
        let names = bountyline::nats::Names::new(&self.settings.nats_prefix);
        let events = bountyline_projections::EventReader::new(self.pool.clone())
            .after(0, 100_000)
            .await
            .expect("events");
        let mut prev = 0;
        let mut acks = Vec::new();
        for event in &events {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert(HEADER_MSG_ID, Uuid::new_v4().to_string().as_str());
            headers.insert(HEADER_POSITION, event.position.to_string().as_str());
            headers.insert(HEADER_PREV_POSITION, prev.to_string().as_str());
            let payload = serde_json::to_vec(event).expect("encode event");
            let ack = js
                .publish_with_headers(
                    names.subject(&event.aggregate_type),
                    headers,
                    payload.into(),
                )
                .await
                .expect("republish");
            acks.push(ack);
            prev = event.position;
        }
        for ack in acks {
            let ack = ack.await.expect("republish ack");
            assert!(
                !ack.duplicate,
                "a copy under a new id is not a duplicate to JetStream"
            );
        }
    }

    /// A projection runner on this app's stream feeding `projections` through the durable
    /// consumer `<prefix>-<durable>`, taking live batches of up to 2,000 (the workers' default).
    /// A JetStream context on this app's NATS.
    pub async fn jetstream(&self) -> async_nats::jetstream::Context {
        async_nats::jetstream::new(
            async_nats::connect(&self.settings.nats_url)
                .await
                .expect("connect to NATS"),
        )
    }

    pub fn runner(
        &self,
        js: async_nats::jetstream::Context,
        durable: &str,
        projections: Vec<Arc<dyn bountyline_projections::Projection>>,
    ) -> bountyline_projections::runner::ProjectionRunner {
        bountyline::workers::projection_runner(
            &self.pool,
            &js,
            &bountyline::nats::Names::new(&self.settings.nats_prefix),
            &WorkerSettings {
                projection_batch: 2_000,
                ..self.settings.worker.clone()
            },
            format!("{}-{durable}", self.settings.nats_prefix),
            projections,
        )
    }

    /// Waits until the durable consumer that feeds the projections has nothing pending or
    /// unacknowledged.
    pub async fn wait_for_consumer_to_drain(&self) {
        let js = self.jetstream().await;
        let names = bountyline::nats::Names::new(&self.settings.nats_prefix);
        let stream = js.get_stream(names.stream()).await.expect("stream");
        let durable = names.projections_durable();
        wait_until(
            Duration::from_secs(30),
            "the projections' consumer to drain",
            || {
                let (stream, durable) = (&stream, &durable);
                async move {
                    match stream.consumer_info(durable).await {
                        Ok(info) => info.num_pending == 0 && info.num_ack_pending == 0,
                        Err(_) => false,
                    }
                }
            },
        )
        .await;
    }
}

/// A child process the test started, killed when the test ends however it ends (a failed
/// assertion must not leave a server running).
pub struct KillOnDrop(pub std::process::Child);

impl KillOnDrop {
    /// Kills it now (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The real `bountyline` binary (`bin`), set to run `subcommand` on the test's database, NATS
/// prefix and keys, serving on `port` when it serves. Output and logging are the caller's.
pub fn bountyline_command(
    bin: &std::path::Path,
    subcommand: &str,
    settings: &Settings,
    port: u16,
) -> std::process::Command {
    let mut command = std::process::Command::new(bin);
    command
        .arg(subcommand)
        .env("DATABASE_URL", settings.database_url.expose_secret())
        .env("NATS_URL", &settings.nats_url)
        .env("BOUNTYLINE_NATS_PREFIX", &settings.nats_prefix)
        .env(
            "BOUNTYLINE_AUTH__JWT_SECRET",
            settings.auth.jwt_secret.expose_secret(),
        )
        .env(
            "BOUNTYLINE_PAYMENTS__WEBHOOK_SECRET",
            settings.payments.webhook_secret.expose_secret(),
        )
        .env(
            "BOUNTYLINE_PRIVACY__KEY",
            settings.privacy.key.expose_secret(),
        )
        .env("BOUNTYLINE_HTTP__HOST", "127.0.0.1")
        .env("BOUNTYLINE_HTTP__PORT", port.to_string())
        .stdin(std::process::Stdio::null());
    command
}

/// Waits (bounded) until the server at `base` answers `/health/ready`.
pub async fn wait_ready(client: &reqwest::Client, base: &str, limit: Duration) {
    let url = format!("{base}/health/ready");
    wait_until(limit, "the server to be ready", || {
        let (client, url) = (client.clone(), url.clone());
        async move {
            client
                .get(url)
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        }
    })
    .await;
}

/// A projection runner running in the background until [`RunningRunner::stop`].
pub struct RunningRunner {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningRunner {
    pub fn start(runner: bountyline_projections::runner::ProjectionRunner) -> Self {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(runner.run(stopped));
        Self { stop, task }
    }

    /// Asks the runner to stop and waits until it has.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// The payment provider's `deposit.succeeded` delivery of `amount` to `user_id`.
pub fn deposit_body(reference: &str, user_id: Uuid, amount: i64, currency: &str) -> Value {
    serde_json::json!({
        "event": "deposit.succeeded",
        "reference": reference,
        "user_id": user_id,
        "amount": amount,
        "currency": currency,
    })
}

/// A PostgreSQL server of one test's own, for a test that must crash and restart Postgres
/// without touching the server every other test shares. It is the campaign's `Postgres`
/// (campaign/src/cluster.rs), which tests cannot call (the campaign is a binary crate that
/// depends on this one): a fresh cluster under `target/tmp`, its own port, loopback only, no
/// socket file, durable by default (fsync and synchronous_commit on). PostgreSQL refuses to
/// run as root, so as root it runs as the `postgres` user. Dropping it stops it (immediately)
/// and removes its files, however the test ends.
pub struct PrivatePostgres {
    bin: std::path::PathBuf,
    dir: std::path::PathBuf,
    pub port: u16,
    /// `-c` settings beyond the defaults, kept for every start.
    settings: Vec<String>,
    as_user: Vec<&'static str>,
}

impl PrivatePostgres {
    /// Creates the cluster and starts it, with `settings` (`name=value`) after the defaults.
    pub fn start(settings: &[&str]) -> PrivatePostgres {
        let bin = std::path::PathBuf::from(
            std::env::var("PG_BIN").unwrap_or_else(|_| "/usr/lib/postgresql/15/bin".into()),
        );
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("pg-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("create the private cluster's directory");
        let is_root = std::process::Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        let as_user = if is_root {
            vec!["runuser", "-u", "postgres", "--"]
        } else {
            Vec::new()
        };
        let pg = PrivatePostgres {
            bin,
            dir,
            port: std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port(),
            settings: settings.iter().map(|s| s.to_string()).collect(),
            as_user,
        };
        if is_root {
            let chown = std::process::Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&pg.dir)
                .status()
                .expect("chown");
            assert!(chown.success(), "chown the cluster's directory to postgres");
        }
        pg.run(
            pg.tool("initdb")
                .args(["-U", "bountyline", "--auth=trust", "-E", "UTF8"])
                .args(["--no-instructions", "--no-sync", "-D"])
                .arg(pg.dir.join("data")),
        );
        pg.start_again();
        pg
    }

    /// Starts the stopped server again on the same port and files; waits until it is ready.
    pub fn start_again(&self) {
        let mut options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' \
             -c fsync=on -c synchronous_commit=on",
            self.port
        );
        for setting in &self.settings {
            options.push_str(&format!(" -c {setting}"));
        }
        self.run(
            self.tool("pg_ctl")
                .args(["-w", "-t", "60", "-o", &options, "-l"])
                .arg(self.dir.join("postgres.log"))
                .arg("-D")
                .arg(self.dir.join("data"))
                .arg("start"),
        );
    }

    /// Stops the server: `immediate` is a crash as far as the data is concerned (no
    /// checkpoint; the next start recovers from the WAL).
    pub fn stop(&self, mode: &str) {
        self.run(
            self.tool("pg_ctl")
                .args(["-w", "-t", "60", "-m", mode, "-D"])
                .arg(self.dir.join("data"))
                .arg("stop"),
        );
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("postgres.log")).unwrap_or_default()
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://bountyline@127.0.0.1:{}/{database}", self.port)
    }

    /// A new, migrated database on this server; returns its URL. Its name is unique like
    /// [`fresh_database`]'s: a `TestApp`'s cleanup drops a database of that name on the
    /// shared server too.
    pub async fn fresh_database(&self) -> String {
        let name = format!("bl_test_{}", Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&self.url("postgres"))
            .await
            .expect("connect to the private Postgres");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("create the database");
        let url = self.url(&name);
        let pool = PgPool::connect(&url)
            .await
            .expect("connect to the database");
        bountyline::db::migrate(&pool).await.expect("migrate");
        pool.close().await;
        url
    }

    /// `tool` of the server's binaries, run as the server's user, from `/` (which that user
    /// can enter, unlike perhaps the working directory).
    fn tool(&self, tool: &str) -> std::process::Command {
        let path = self.bin.join(tool);
        let mut command = match self.as_user.split_first() {
            Some((first, rest)) => {
                let mut command = std::process::Command::new(first);
                command.args(rest).arg(path);
                command
            }
            None => std::process::Command::new(path),
        };
        command.current_dir("/");
        command
    }

    fn run(&self, command: &mut std::process::Command) {
        let out = command
            .output()
            .unwrap_or_else(|e| panic!("run {command:?}: {e}"));
        assert!(
            out.status.success(),
            "{command:?} failed: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = self
            .tool("pg_ctl")
            .args(["-w", "-t", "30", "-m", "immediate", "-D"])
            .arg(self.dir.join("data"))
            .arg("stop")
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
