//! A bounded, expiring, lock-free map (papaya underneath) for the request path: readers
//! never block. When full, expired entries are swept, and if that is not enough, arbitrary
//! entries are evicted down to three quarters of the capacity, so a sweep happens at most
//! once per quarter-capacity of inserts. Used for verified tokens and mirrored users.

use std::borrow::Borrow;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, Ordering};

/// Entries that expire at a given instant (ms since the epoch).
pub struct ExpiringMap<K, V> {
    map: papaya::HashMap<K, (V, i64)>,
    capacity: usize,
    sweeping: AtomicBool,
}

impl<K: Hash + Eq + Send + Sync, V: Clone + Send + Sync> ExpiringMap<K, V> {
    /// A map holding at most about `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        ExpiringMap { map: papaya::HashMap::new(), capacity: capacity.max(1), sweeping: AtomicBool::new(false) }
    }

    /// The value under `key` if it has not expired at `now_ms`.
    pub fn get<Q>(&self, key: &Q, now_ms: i64) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let map = self.map.pin();
        let (value, expires_at) = map.get(key)?;
        if *expires_at > now_ms {
            Some(value.clone())
        } else {
            map.remove(key);
            None
        }
    }

    /// Stores `value` until `expires_at_ms`.
    pub fn insert(&self, key: K, value: V, expires_at_ms: i64, now_ms: i64) {
        if self.map.len() >= self.capacity {
            self.make_room(now_ms);
        }
        self.map.pin().insert(key, (value, expires_at_ms));
    }

    /// Stores `value` until `expires_at_ms` unless an unexpired entry is there that
    /// `keep_old` says must stay (e.g. a newer version). Atomic against concurrent writers.
    pub fn insert_unless(&self, key: K, value: V, expires_at_ms: i64, now_ms: i64, keep_old: impl Fn(&V) -> bool) {
        if self.map.len() >= self.capacity {
            self.make_room(now_ms);
        }
        self.map.pin().compute(key, |old| match old {
            Some((_, (current, expires))) if *expires > now_ms && keep_old(current) => papaya::Operation::Abort(()),
            _ => papaya::Operation::Insert((value.clone(), expires_at_ms)),
        });
    }

    /// Forgets `key`.
    pub fn remove<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.pin().remove(key);
    }

    /// Forgets every entry.
    pub fn clear(&self) {
        self.map.pin().clear();
    }

    /// Number of entries, expired ones included until they are swept.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    fn make_room(&self, now_ms: i64) {
        if self.sweeping.swap(true, Ordering::AcqRel) {
            return;
        }
        let map = self.map.pin();
        map.retain(|_, (_, expires_at)| *expires_at > now_ms);
        let low_water = self.capacity - self.capacity / 4;
        let mut excess = map.len().saturating_sub(low_water);
        if excess > 0 {
            // papaya's iteration order is arbitrary: this evicts a random-ish sample.
            map.retain(|_, _| {
                let keep = excess == 0;
                excess = excess.saturating_sub(1);
                keep
            });
        }
        self.sweeping.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire() {
        let map = ExpiringMap::new(10);
        map.insert("a".to_owned(), 1, 100, 0);
        assert_eq!(map.get("a", 99), Some(1));
        assert_eq!(map.get("a", 100), None);
        assert!(map.is_empty(), "an expired entry is dropped when seen");
    }

    #[test]
    fn capacity_is_a_bound() {
        let map = ExpiringMap::new(4);
        for i in 0..4 {
            map.insert(i, i, 1, 0);
        }
        map.insert(100, 100, 1_000, 5);
        assert_eq!(map.len(), 1, "expired entries were swept");
        for i in 0..10 {
            map.insert(200 + i, i, 1_000, 5);
            assert!(map.len() <= 4);
        }
        assert!(map.len() >= 2, "eviction keeps most live entries instead of starting over");
        map.remove(&209);
        assert_eq!(map.get(&209, 5), None);
    }

    #[test]
    fn conditional_inserts_keep_what_they_are_told_to() {
        let map = ExpiringMap::new(10);
        map.insert_unless("u", 20, 100, 0, |_| false);
        map.insert_unless("u", 10, 100, 0, |old| *old > 10);
        assert_eq!(map.get("u", 1), Some(20), "an older version does not replace a newer one");
        map.insert_unless("u", 30, 100, 0, |old| *old > 30);
        assert_eq!(map.get("u", 1), Some(30));
        map.insert_unless("u", 5, 200, 150, |old| *old > 5);
        assert_eq!(map.get("u", 151), Some(5), "an expired entry never blocks");
    }
}
