//! Configuration, layered: built-in defaults, then an optional TOML file, then environment
//! variables (`BOUNTYLINE_SECTION__KEY`, plus the conventional `DATABASE_URL` and `NATS_URL`).
//! Secrets are wrapped so that they never print.

use secrecy::SecretString;
use serde::Deserialize;
use std::path::Path;
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub database_url: SecretString,
    pub nats_url: String,
    /// Prefix of every NATS subject and of the JetStream stream's name, so that several
    /// deployments (or tests) can share one NATS server without seeing each other.
    pub nats_prefix: String,
    /// Events older than this leave the JetStream stream (0: kept forever). The event store,
    /// not the stream, is the history; consumers that fall further behind catch up from it.
    pub nats_stream_max_age_secs: u64,
    /// How long JetStream remembers a message id to drop a republished duplicate. Consumers
    /// are idempotent, so a duplicate after it is harmless, only wasted work.
    pub nats_duplicate_window_secs: u64,
    pub db_pool_size: u32,
    pub http: HttpSettings,
    pub auth: AuthSettings,
    pub sse: SseSettings,
    pub worker: WorkerSettings,
    pub payments: PaymentsSettings,
    pub limits: LimitSettings,
    pub privacy: PrivacySettings,
    /// `pretty` for people, `json` for log shippers.
    pub log_format: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct HttpSettings {
    pub host: String,
    pub port: u16,
    pub body_limit_bytes: usize,
    pub shutdown_timeout_secs: u64,
    /// How long a query with `X-Min-Position` waits for the read model to catch up.
    pub read_your_writes_timeout_ms: u64,
    /// The longest a request may take to begin its answer (503 after).
    pub request_timeout_secs: u64,
    /// Requests one API process works on at once (streams, health and metrics aside); more
    /// wait for a place (0: no limit).
    pub max_in_flight: usize,
    /// How long a request beyond `max_in_flight` waits for a place before it is answered 503
    /// with Retry-After (0: at once). At most four requests per place wait.
    pub admission_wait_ms: u64,
    /// Browser origins allowed to call the API (CORS), comma-separated, exact: empty for none.
    pub cors_origins: String,
    /// Origins taken as this server's own by the CSRF defence of browser sessions (the
    /// `Origin` a cookie-authenticated command must carry; `auth::csrf`), besides the one the
    /// request shows (its scheme and `Host`): comma-separated, exact, empty for none. List the
    /// public origin (`https://bountyline.example`) when a proxy in front hides it (terminates
    /// TLS without `X-Forwarded-Proto`, or rewrites `Host`). Pages of other origins cannot use
    /// the session cookie whatever this says: CORS never allows credentials.
    pub allowed_origins: String,
    /// When set, `/metrics` answers only `Authorization: Bearer <this token>`.
    pub metrics_token: SecretString,
    /// Whether `/openapi.json` and `/docs` are served.
    pub docs: bool,
}

impl HttpSettings {
    pub fn allows_origin(&self, origin: &str) -> bool {
        self.cors_origins
            .split(',')
            .map(str::trim)
            .any(|allowed| !allowed.is_empty() && allowed != "*" && allowed == origin)
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct AuthSettings {
    /// HMAC key for access tokens; at least 32 bytes.
    pub jwt_secret: SecretString,
    pub issuer: String,
    pub audience: String,
    pub access_ttl_secs: i64,
    pub refresh_ttl_secs: i64,
    /// How long a session found live is taken as live without asking again (0: always ask).
    pub session_cache_ms: u64,
    /// Password hashes (argon2id, 19 MiB and a core each for tens of milliseconds) one API
    /// process computes at once; more sign-ins queue. Each one more buys sign-in throughput
    /// with 19 MiB of peak memory.
    pub hashing_concurrency: usize,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SseSettings {
    pub keep_alive_secs: u64,
    /// Events the fan-out keeps for subscribers that fall briefly behind.
    pub hub_capacity: usize,
    /// Messages buffered per client before it is treated as slow and caught up from the store.
    pub client_buffer: usize,
    /// Streams one user may hold open at once in one API process; more answer 429.
    pub max_streams_per_user: usize,
    /// How often an open stream checks that its session still stands (it ends once logged
    /// out or refreshed); it always ends when its access token expires.
    pub session_recheck_secs: u64,
}

/// Abuse limits per API process (see `http::limits`); a `per_minute` of 0 switches one off.
#[derive(Debug, Clone, Deserialize)]
pub struct LimitSettings {
    /// Requests to `/v1/auth/*` per client address.
    pub auth_per_minute: u32,
    pub auth_burst: u32,
    /// Commands per user.
    pub commands_per_minute: u32,
    pub commands_burst: u32,
    /// Failed logins per account before it is throttled, and how fast it recovers.
    pub login_failures_burst: u32,
    pub login_failures_per_minute: u32,
    /// Leases one worker may hold at once, so that nobody can starve a queue by hoarding
    /// claims (0: no cap).
    pub leases_per_worker: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PaymentsSettings {
    /// The secret the payment provider signs webhooks with. Empty refuses every webhook.
    pub webhook_secret: SecretString,
}

/// The keyring of people's texts (`crate::privacy`, ADR 7).
#[derive(Debug, Clone, Deserialize)]
pub struct PrivacySettings {
    /// The key-encryption key that wraps every person's data key: 32 bytes in base64. Kept in
    /// the deployment's secret store, never in the database; losing it loses every text.
    pub key: SecretString,
    /// How long an opened data key is kept in memory (0: read it every time). An erasure
    /// reaches every process within it.
    pub key_cache_ms: u64,
}

/// Bytes of `privacy.key`.
pub const PRIVACY_KEY_BYTES: usize = 32;

#[derive(Debug, Clone, Deserialize)]
pub struct WorkerSettings {
    pub lease_scan_interval_ms: u64,
    /// Messages from the stream applied in one transaction.
    pub projection_batch: usize,
    /// Positions read from the store at a time, for every projection at once, and applied in
    /// one transaction per projection when projections catch up (after a restart).
    pub projection_catch_up_batch: usize,
    pub relay_batch: i64,
    /// The longest the relay sleeps with nothing to publish; appends wake it at once (a core
    /// NATS signal), this only bounds the delay when a wake-up is lost.
    pub relay_idle_poll_ms: u64,
    /// How long a projection's unacknowledged message waits before JetStream redelivers it.
    pub ack_wait_secs: u64,
}

impl Settings {
    /// Loads defaults, then `file` (if given and present), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, config::ConfigError> {
        let mut builder = config::Config::builder()
            .set_default("nats_url", "nats://127.0.0.1:54222")?
            .set_default("nats_prefix", "bountyline")?
            .set_default("nats_stream_max_age_secs", 0)?
            .set_default("nats_duplicate_window_secs", 120)?
            .set_default("db_pool_size", 16)?
            .set_default("log_format", "pretty")?
            .set_default("http.host", "127.0.0.1")?
            .set_default("http.port", 8080)?
            .set_default("http.body_limit_bytes", 256 * 1024)?
            .set_default("http.shutdown_timeout_secs", 10)?
            .set_default("http.read_your_writes_timeout_ms", 5000)?
            .set_default("http.request_timeout_secs", 30)?
            .set_default("http.max_in_flight", 256)?
            .set_default("http.admission_wait_ms", 2000)?
            .set_default("http.cors_origins", "")?
            .set_default("http.allowed_origins", "")?
            .set_default("http.metrics_token", "")?
            .set_default("http.docs", true)?
            .set_default("auth.jwt_secret", "")?
            .set_default("auth.issuer", "bountyline")?
            .set_default("auth.audience", "bountyline-api")?
            .set_default("auth.access_ttl_secs", 900)?
            .set_default("auth.refresh_ttl_secs", 30 * 24 * 3600)?
            .set_default("auth.session_cache_ms", 1000)?
            .set_default("auth.hashing_concurrency", 1)?
            .set_default("sse.keep_alive_secs", 15)?
            .set_default("sse.hub_capacity", 4096)?
            .set_default("sse.client_buffer", 64)?
            .set_default("sse.max_streams_per_user", 8)?
            .set_default("sse.session_recheck_secs", 15)?
            .set_default("payments.webhook_secret", "")?
            .set_default("limits.auth_per_minute", 60)?
            .set_default("limits.auth_burst", 20)?
            .set_default("limits.commands_per_minute", 6000)?
            .set_default("limits.commands_burst", 200)?
            .set_default("limits.login_failures_burst", 5)?
            .set_default("limits.login_failures_per_minute", 1)?
            .set_default("limits.leases_per_worker", 100)?
            .set_default("privacy.key", "")?
            .set_default("privacy.key_cache_ms", 1000)?
            .set_default("worker.lease_scan_interval_ms", 1000)?
            .set_default("worker.projection_batch", 2000)?
            .set_default("worker.projection_catch_up_batch", 5000)?
            .set_default("worker.relay_batch", 1000)?
            .set_default("worker.relay_idle_poll_ms", 2000)?
            .set_default("worker.ack_wait_secs", 30)?;
        if let Some(path) = file {
            builder = builder.add_source(config::File::from(path).required(true));
        }
        builder = builder
            .add_source(
                config::Environment::with_prefix("BOUNTYLINE")
                    .prefix_separator("_")
                    .separator("__"),
            )
            .set_override_option("database_url", std::env::var("DATABASE_URL").ok())?
            .set_override_option("nats_url", std::env::var("NATS_URL").ok())?;
        let settings: Settings = builder.build()?.try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    /// The token signing key, required only by processes that serve the API.
    pub fn require_jwt_secret(&self) -> Result<(), config::ConfigError> {
        use secrecy::ExposeSecret;
        if self.auth.jwt_secret.expose_secret().len() < 32 {
            return Err(config::ConfigError::Message(
                "auth.jwt_secret (BOUNTYLINE_AUTH__JWT_SECRET) must be set, at least 32 bytes"
                    .into(),
            ));
        }
        Ok(())
    }

    /// The key-encryption key of people's texts, required by every process that seals or
    /// opens them (the API, the workers' search vector, rebuilds, exports).
    pub fn privacy_key(&self) -> Result<[u8; PRIVACY_KEY_BYTES], config::ConfigError> {
        use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
        use base64::Engine;
        use secrecy::ExposeSecret;
        let raw = self.privacy.key.expose_secret().trim();
        let refused = |what: &str| {
            config::ConfigError::Message(format!(
                "privacy.key (BOUNTYLINE_PRIVACY__KEY) {what}: it must be {PRIVACY_KEY_BYTES} \
                 random bytes in base64, e.g. `head -c {PRIVACY_KEY_BYTES} /dev/urandom | base64`"
            ))
        };
        if raw.is_empty() {
            return Err(refused("is not set"));
        }
        let bytes = STANDARD
            .decode(raw)
            .or_else(|_| STANDARD_NO_PAD.decode(raw))
            .map_err(|_| refused("is not base64"))?;
        <[u8; PRIVACY_KEY_BYTES]>::try_from(bytes.as_slice()).map_err(|_| {
            refused(&format!(
                "is {} bytes, not {PRIVACY_KEY_BYTES}",
                bytes.len()
            ))
        })
    }

    fn validate(&self) -> Result<(), config::ConfigError> {
        if self.nats_prefix.is_empty()
            || !self
                .nats_prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(config::ConfigError::Message(
                "nats_prefix must be letters, digits, '_' or '-'".into(),
            ));
        }
        Ok(())
    }

    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs(self.http.shutdown_timeout_secs)
    }
}
