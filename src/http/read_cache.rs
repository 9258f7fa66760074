//! Answers kept in memory while their read model has not moved: the bounty board's pages,
//! the most read and most repeated query of the marketplace.
//!
//! An entry is tagged with the read model's position as this process knew it *before* the
//! read, so what it holds is at least that new. It is served only while that is still the
//! newest position the process knows, and for at most the cache's time to live. Positions
//! arrive with the projections' announcements on NATS (and with every read-your-writes check),
//! so an entry goes as soon as its read model applies anything; with the announcements lost,
//! the time to live bounds how old an answer can be. `X-Min-Position` is waited for before
//! the cache is asked, so a hit is never older than the position a client named.

use std::hash::Hash;
use std::time::Duration;

use crate::kept::Kept;

/// A bounded map from a query to its answer at a read model's position.
pub struct ReadCache<K, V> {
    /// The read model's name in metrics.
    read: &'static str,
    answers: Kept<K, (i64, V)>,
}

impl<K: Hash + Eq, V: Clone> ReadCache<K, V> {
    pub fn new(read: &'static str, capacity: usize, ttl: Duration) -> Self {
        Self {
            read,
            answers: Kept::new(capacity, ttl),
        }
    }

    /// The answer to `key` if it was read at `position`, still the newest known, and lately.
    pub fn get(&self, key: &K, position: i64) -> Option<V> {
        let hit = self
            .answers
            .get(key)
            .and_then(|(read_at, value)| (read_at == position).then_some(value));
        let outcome = if hit.is_some() { "hit" } else { "miss" };
        metrics::counter!("bountyline_read_cache_total", "read" => self.read, "outcome" => outcome)
            .increment(1);
        hit
    }

    /// Keeps the answer to `key` read after the read model was known at `position`.
    pub fn put(&self, key: K, position: i64, value: V) {
        self.answers.put(key, (position, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_served_only_at_the_position_it_was_read_at() {
        let cache = ReadCache::new("test", 8, Duration::from_secs(60));
        cache.put("page", 10, "ten");
        assert_eq!(cache.get(&"page", 10), Some("ten"));
        assert_eq!(cache.get(&"page", 11), None, "the read model moved");
        assert_eq!(cache.get(&"other", 10), None);
    }

    #[test]
    fn an_answer_is_forgotten_after_its_time_to_live() {
        let cache = ReadCache::new("test", 8, Duration::from_millis(30));
        cache.put("page", 10, "ten");
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(
            cache.get(&"page", 10),
            None,
            "no announcement may have arrived"
        );
    }

    #[test]
    fn a_full_cache_starts_again_rather_than_grow() {
        let cache = ReadCache::new("test", 2, Duration::from_secs(60));
        cache.put(1, 10, "a");
        cache.put(2, 10, "b");
        cache.put(3, 10, "c");
        assert_eq!(cache.get(&1, 10), None, "emptied before the third page");
        assert_eq!(cache.get(&3, 10), Some("c"));
    }
}
