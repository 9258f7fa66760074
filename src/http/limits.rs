//! Abuse limits (OWASP API4): token buckets keyed by client address, by user or by account
//! name. Each API process keeps its own buckets in memory, so N processes allow up to N times
//! a limit; that bounds abuse without a shared store on the hot path.
//!
//! A bucket holds up to `burst` tokens and gains `per_minute / 60` a second. A request takes
//! one; without one it is refused with the time until the next token (`Retry-After`). Memory
//! is bounded: when the table is full, buckets that have refilled completely (idle keys) are
//! dropped, and if none has, the oldest half goes.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use uuid::Uuid;

use super::error::ApiError;
use crate::config::LimitSettings;

/// Keys one limiter remembers at most.
const MAX_KEYS: usize = 100_000;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_minute: u32,
    pub burst: u32,
}

impl Rate {
    /// Zero `per_minute` switches the limit off.
    pub fn is_off(&self) -> bool {
        self.per_minute == 0
    }

    fn per_second(&self) -> f64 {
        f64::from(self.per_minute) / 60.0
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

pub struct Limiter<K> {
    rate: Rate,
    buckets: Mutex<HashMap<K, Bucket>>,
}

impl<K: Eq + Hash + Clone> Limiter<K> {
    pub fn new(rate: Rate) -> Self {
        Self {
            rate,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `key`, or says how long until one is due.
    pub fn take(&self, key: &K) -> Result<(), Duration> {
        self.take_at(key, Instant::now())
    }

    /// Whether `key` has a token, without taking it.
    pub fn check(&self, key: &K) -> Result<(), Duration> {
        if self.rate.is_off() {
            return Ok(());
        }
        let buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        match buckets.get(key) {
            Some(bucket) => self.wait(self.refilled(*bucket, Instant::now()).tokens),
            None => Ok(()),
        }
    }

    fn take_at(&self, key: &K, now: Instant) -> Result<(), Duration> {
        if self.rate.is_off() {
            return Ok(());
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= MAX_KEYS && !buckets.contains_key(key) {
            self.forget_idle(&mut buckets, now);
        }
        let full = Bucket {
            tokens: f64::from(self.rate.burst),
            at: now,
        };
        let bucket = buckets.entry(key.clone()).or_insert(full);
        *bucket = self.refilled(*bucket, now);
        self.wait(bucket.tokens)?;
        bucket.tokens -= 1.0;
        Ok(())
    }

    fn refilled(&self, bucket: Bucket, now: Instant) -> Bucket {
        let gained =
            now.saturating_duration_since(bucket.at).as_secs_f64() * self.rate.per_second();
        Bucket {
            tokens: (bucket.tokens + gained).min(f64::from(self.rate.burst)),
            at: now,
        }
    }

    /// `Ok` when a token is there, else the time until one is.
    fn wait(&self, tokens: f64) -> Result<(), Duration> {
        if tokens >= 1.0 {
            return Ok(());
        }
        let seconds = (1.0 - tokens) / self.rate.per_second();
        Err(Duration::from_secs_f64(seconds.max(0.001)))
    }

    fn forget_idle(&self, buckets: &mut HashMap<K, Bucket>, now: Instant) {
        let burst = f64::from(self.rate.burst);
        buckets.retain(|_, b| self.refilled(*b, now).tokens < burst);
        if buckets.len() >= MAX_KEYS {
            let mut ages: Vec<Instant> = buckets.values().map(|b| b.at).collect();
            ages.sort_unstable();
            let cut = ages[ages.len() / 2];
            buckets.retain(|_, b| b.at > cut);
        }
    }
}

/// The limits one API process applies.
pub struct Limits {
    /// `/v1/auth/*` requests per client address.
    pub auth: Limiter<IpAddr>,
    /// Commands per user.
    pub commands: Limiter<Uuid>,
    /// Failed logins per account (the lower-cased email): taken only when a login fails.
    pub login_failures: Limiter<String>,
    /// Places for requests being worked on; `None` without a limit.
    pub in_flight: Option<std::sync::Arc<tokio::sync::Semaphore>>,
}

impl Limits {
    pub fn new(settings: &LimitSettings, max_in_flight: usize) -> Self {
        let rate = |per_minute, burst| Rate { per_minute, burst };
        Self {
            auth: Limiter::new(rate(settings.auth_per_minute, settings.auth_burst)),
            commands: Limiter::new(rate(settings.commands_per_minute, settings.commands_burst)),
            login_failures: Limiter::new(rate(
                settings.login_failures_per_minute,
                settings.login_failures_burst,
            )),
            in_flight: (max_in_flight > 0)
                .then(|| std::sync::Arc::new(tokio::sync::Semaphore::new(max_in_flight))),
        }
    }
}

/// A refusal as the API answers it: 429 with `Retry-After`.
pub fn too_many(wait: Duration) -> ApiError {
    ApiError::TooManyRequests {
        retry_after: retry_after_secs(wait),
    }
}

/// Whole seconds for `Retry-After`, at least one.
pub fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(per_minute: u32, burst: u32) -> Limiter<&'static str> {
        Limiter::new(Rate { per_minute, burst })
    }

    #[test]
    fn a_burst_is_allowed_then_refused_until_a_token_is_due() {
        let limits = limiter(60, 3);
        let now = Instant::now();
        for _ in 0..3 {
            assert_eq!(limits.take_at(&"ip", now), Ok(()));
        }
        let wait = limits.take_at(&"ip", now).unwrap_err();
        assert!(wait > Duration::from_millis(900) && wait <= Duration::from_secs(1));
        assert_eq!(retry_after_secs(wait), 1);
        assert_eq!(limits.take_at(&"ip", now + Duration::from_secs(1)), Ok(()));
    }

    #[test]
    fn keys_do_not_share_buckets() {
        let limits = limiter(60, 1);
        let now = Instant::now();
        assert_eq!(limits.take_at(&"a", now), Ok(()));
        assert!(limits.take_at(&"a", now).is_err());
        assert_eq!(limits.take_at(&"b", now), Ok(()));
    }

    #[test]
    fn check_does_not_take_a_token() {
        let limits = limiter(60, 1);
        assert_eq!(limits.check(&"a"), Ok(()));
        assert_eq!(limits.check(&"a"), Ok(()));
        assert_eq!(limits.take(&"a"), Ok(()));
        assert!(limits.check(&"a").is_err());
    }

    #[test]
    fn zero_per_minute_is_no_limit() {
        let limits = limiter(0, 0);
        for _ in 0..1000 {
            assert_eq!(limits.take(&"a"), Ok(()));
        }
    }

    #[test]
    fn the_table_stays_bounded() {
        let limits: Limiter<usize> = Limiter::new(Rate {
            per_minute: 60,
            burst: 2,
        });
        let now = Instant::now();
        for key in 0..MAX_KEYS + 10 {
            let _ = limits.take_at(&key, now + Duration::from_micros(key as u64));
        }
        assert!(limits.buckets.lock().unwrap().len() <= MAX_KEYS);
    }
}
