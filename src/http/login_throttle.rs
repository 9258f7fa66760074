//! Login throttling that a stranger cannot turn against an account's owner (issue 23).
//!
//! Failed logins are counted per account and address together: after `free` failures from one
//! address for one account, each further try from that address must wait, and the wait
//! doubles with every failure (`base`, 2 × `base`, 4 × `base`, … up to an hour). A correct
//! password resets the count. The owner signing in from another address is not slowed at all:
//! five wrong passwords for someone else's email lock out only the one who typed them.
//! Guessing across many accounts from one address meets the per-address limit on every
//! `/v1/auth/*` request (`limits.auth_per_minute`); guessing one account from many addresses
//! meets the cost of argon2id per try. Counts are kept per process, in bounded memory.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The longest wait between two tries.
const MAX_WAIT: Duration = Duration::from_secs(3600);
/// Pairs kept at most; past it, pairs whose wait is long over are dropped first.
const CAPACITY: usize = 100_000;

pub struct LoginThrottle {
    free: u32,
    base: Duration,
    failures: Mutex<HashMap<(String, IpAddr), (u32, Instant)>>,
}

impl LoginThrottle {
    /// `free` failures without a wait, then `base` doubling; `free` 0 switches it off.
    pub fn new(free: u32, base: Duration) -> Self {
        Self {
            free,
            base,
            failures: Mutex::default(),
        }
    }

    /// The wait left before `account` may be tried again from `address`, if any.
    pub fn check(&self, account: &str, address: IpAddr) -> Result<(), Duration> {
        if self.free == 0 {
            return Ok(());
        }
        let failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        let Some((count, last)) = failures.get(&(account.to_owned(), address)) else {
            return Ok(());
        };
        let wait = self.wait_after(*count);
        match wait.checked_sub(last.elapsed()) {
            Some(left) if !left.is_zero() => Err(left),
            _ => Ok(()),
        }
    }

    /// A failed try of `account` from `address`.
    pub fn failed(&self, account: &str, address: IpAddr) {
        if self.free == 0 {
            return;
        }
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        if failures.len() >= CAPACITY {
            failures.retain(|_, (_, last)| last.elapsed() < MAX_WAIT);
            if failures.len() >= CAPACITY {
                failures.clear();
            }
        }
        let entry = failures
            .entry((account.to_owned(), address))
            .or_insert((0, Instant::now()));
        *entry = (entry.0.saturating_add(1), Instant::now());
    }

    /// A correct password: the pair starts again.
    pub fn succeeded(&self, account: &str, address: IpAddr) {
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        failures.remove(&(account.to_owned(), address));
    }

    /// The wait after `count` failures: none up to `free`, then `base` doubling.
    fn wait_after(&self, count: u32) -> Duration {
        match count.checked_sub(self.free) {
            None => Duration::ZERO,
            Some(over) => self
                .base
                .checked_mul(1u32.checked_shl(over).unwrap_or(u32::MAX))
                .unwrap_or(MAX_WAIT)
                .min(MAX_WAIT),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HERE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1));
    const THERE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));

    #[test]
    fn waits_double_after_the_free_failures_and_are_per_account_and_address() {
        let throttle = LoginThrottle::new(2, Duration::from_secs(10));
        let waits: Vec<Duration> = (0..6).map(|n| throttle.wait_after(n)).collect();
        let secs = |s| Duration::from_secs(s);
        assert_eq!(
            waits,
            [secs(0), secs(0), secs(10), secs(20), secs(40), secs(80)]
        );
        assert_eq!(throttle.wait_after(40), MAX_WAIT);

        for _ in 0..2 {
            assert_eq!(throttle.check("ann", HERE), Ok(()));
            throttle.failed("ann", HERE);
        }
        assert!(throttle.check("ann", HERE).is_err(), "the third try waits");
        assert_eq!(throttle.check("ann", THERE), Ok(()), "the owner elsewhere");
        assert_eq!(throttle.check("bob", HERE), Ok(()), "another account");
        throttle.succeeded("ann", HERE);
        assert_eq!(throttle.check("ann", HERE), Ok(()));
    }

    #[test]
    fn switched_off_it_never_waits() {
        let throttle = LoginThrottle::new(0, Duration::from_secs(10));
        for _ in 0..10 {
            throttle.failed("ann", HERE);
        }
        assert_eq!(throttle.check("ann", HERE), Ok(()));
    }
}
