//! Answers kept in memory for a while, in a bounded map: what the session check and the board
//! cache (`http::read_cache`) share. An entry is good for `keep_for` after it was put; when
//! the map is full, a new key empties it first (its entries are at most `keep_for` from
//! useless anyway), so its memory stays bounded without an eviction order to keep.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

pub struct Kept<K, V> {
    entries: Mutex<HashMap<K, (Instant, V)>>,
    capacity: usize,
    keep_for: Duration,
}

impl<K: Hash + Eq, V: Clone> Kept<K, V> {
    pub fn new(capacity: usize, keep_for: Duration) -> Self {
        Self {
            entries: Mutex::default(),
            capacity,
            keep_for,
        }
    }

    /// The value kept for `key`, if it was put less than `keep_for` ago.
    pub fn get(&self, key: &K) -> Option<V> {
        self.lock()
            .get(key)
            .filter(|(at, _)| at.elapsed() < self.keep_for)
            .map(|(_, value)| value.clone())
    }

    pub fn put(&self, key: K, value: V) {
        let mut entries = self.lock();
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            entries.clear();
        }
        entries.insert(key, (Instant::now(), value));
    }

    pub fn forget(&self, key: &K) {
        self.lock().remove(key);
    }

    /// Forgets every entry whose value `matches`.
    pub fn forget_where(&self, matches: impl Fn(&V) -> bool) {
        self.lock().retain(|_, (_, value)| !matches(value));
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<K, (Instant, V)>> {
        // A panic while holding the lock cannot leave the map half-changed in a way that
        // matters: every entry is a whole answer.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_kept_for_its_time_only() {
        let kept = Kept::new(8, Duration::from_millis(30));
        kept.put("page", 10);
        assert_eq!(kept.get(&"page"), Some(10));
        assert_eq!(kept.get(&"other"), None);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(kept.get(&"page"), None);
    }

    #[test]
    fn a_full_map_starts_again_rather_than_grow() {
        let kept = Kept::new(2, Duration::from_secs(60));
        kept.put(1, "a");
        kept.put(2, "b");
        kept.put(2, "b again");
        assert_eq!(
            kept.lock().len(),
            2,
            "a key already kept is replaced in place"
        );
        kept.put(3, "c");
        assert_eq!(kept.lock().len(), 1);
        assert_eq!(kept.get(&3), Some("c"));
    }
}
