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
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

use super::error::ApiError;
use super::login_throttle::LoginThrottle;
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
    /// Failed logins per account (the lower-cased email) and address: growing waits.
    pub login_failures: LoginThrottle,
    /// Places for requests being worked on; `None` without a limit.
    pub in_flight: Option<Admission>,
}

impl Limits {
    pub fn new(settings: &LimitSettings, max_in_flight: usize, admission_wait: Duration) -> Self {
        let rate = |per_minute, burst| Rate { per_minute, burst };
        Self {
            auth: Limiter::new(rate(settings.auth_per_minute, settings.auth_burst)),
            commands: Limiter::new(rate(settings.commands_per_minute, settings.commands_burst)),
            login_failures: LoginThrottle::new(
                match settings.login_failures_per_minute {
                    0 => 0,
                    _ => settings.login_failures_burst,
                },
                Duration::from_secs(60) / settings.login_failures_per_minute.max(1),
            ),
            in_flight: (max_in_flight > 0).then(|| Admission::new(max_in_flight, admission_wait)),
        }
    }
}

/// Requests that may wait for a place, per place.
const WAITING_PER_PLACE: usize = 4;

/// Places for the requests one process works on at once, and a waiting room before them.
///
/// A request that finds every place taken waits for one, first come first served, for at
/// most `wait`; one that finds the room full, or waits that long, is shed. A short stall
/// (a slow fsync, the host taking the CPU away for a moment) so costs some latency rather
/// than a burst of 503s, while a sustained overload is still shed after a bounded wait. The
/// room holds `WAITING_PER_PLACE` requests per place, which bounds the memory they keep.
pub struct Admission {
    places: Arc<Semaphore>,
    room: Arc<Semaphore>,
    wait: Duration,
}

/// A request's place (and its spot in the room), given back when it is dropped.
pub struct Place {
    _working: OwnedSemaphorePermit,
    _room: OwnedSemaphorePermit,
}

impl Admission {
    pub fn new(places: usize, wait: Duration) -> Self {
        Self {
            places: Arc::new(Semaphore::new(places)),
            room: Arc::new(Semaphore::new(places * (1 + WAITING_PER_PLACE))),
            wait,
        }
    }

    /// A place at once, or after a wait in the room; `None`: the request is to be shed.
    pub async fn enter(&self) -> Option<Place> {
        let room = self.room.clone().try_acquire_owned().ok()?;
        let working = match self.places.clone().try_acquire_owned() {
            Ok(place) => place,
            Err(_) => {
                metrics::counter!("bountyline_http_waited_total").increment(1);
                tokio::time::timeout(self.wait, self.places.clone().acquire_owned())
                    .await
                    .ok()?
                    .ok()?
            }
        };
        Some(Place {
            _working: working,
            _room: room,
        })
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

    #[tokio::test]
    async fn a_request_beyond_the_places_waits_for_one_and_is_shed_past_the_wait() {
        let admission = Admission::new(1, Duration::from_millis(300));
        let first = admission.enter().await.expect("a free place");
        let started = Instant::now();
        assert!(admission.enter().await.is_none(), "no place freed in time");
        assert!(started.elapsed() >= Duration::from_millis(250), "it waited");

        // A place given back within the wait goes to the one waiting for it.
        let waiting = tokio::spawn(async move {
            let place = admission.enter().await;
            (place.is_some(), admission)
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(first);
        let (admitted, _) = waiting.await.unwrap();
        assert!(admitted, "served once the first request ended");
    }

    #[tokio::test]
    async fn a_request_finding_the_waiting_room_full_is_shed_at_once() {
        let admission = Arc::new(Admission::new(1, Duration::from_secs(30)));
        let _working = admission.enter().await.expect("a free place");
        let mut waiting = Vec::new();
        for _ in 0..WAITING_PER_PLACE {
            let admission = admission.clone();
            waiting.push(tokio::spawn(
                async move { admission.enter().await.is_some() },
            ));
        }
        // Let every waiter take its spot in the room (and keep it: their wait is long).
        for _ in 0..200 {
            if admission.room.available_permits() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(
            admission.room.available_permits(),
            0,
            "the waiters fill the room"
        );
        let started = Instant::now();
        assert!(admission.enter().await.is_none());
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "shed without waiting"
        );
        for waiter in waiting {
            waiter.abort();
        }
    }
}
