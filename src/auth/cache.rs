//! The verified-token cache: SHA-256(token) → identity, until the token's own expiry, so a
//! token seen a moment ago costs a hash and a lock-free map read instead of an RSA verify.
//! Bounded: when full, expired entries are swept, and if that is not enough it starts over.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::claims::Identity;

/// A token digest.
pub type TokenKey = [u8; 32];

/// Hashes a token into its cache key (the token itself is never stored).
pub fn key_of(token: &str) -> TokenKey {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    let mut key = [0u8; 32];
    key.copy_from_slice(digest.as_ref());
    key
}

/// Lock-free map of verified tokens.
pub struct TokenCache {
    map: papaya::HashMap<TokenKey, Arc<Identity>>,
    capacity: usize,
    sweeping: AtomicBool,
}

impl TokenCache {
    /// A cache holding at most `capacity` tokens.
    pub fn new(capacity: usize) -> Self {
        TokenCache { map: papaya::HashMap::new(), capacity: capacity.max(1), sweeping: AtomicBool::new(false) }
    }

    /// The identity of a cached token that is still valid at `now_ms`.
    pub fn get(&self, key: &TokenKey, now_ms: i64) -> Option<Arc<Identity>> {
        let map = self.map.pin();
        let identity = map.get(key)?;
        if identity.valid_until_ms > now_ms {
            Some(identity.clone())
        } else {
            map.remove(key);
            None
        }
    }

    /// Remembers a verified token.
    pub fn insert(&self, key: TokenKey, identity: Arc<Identity>, now_ms: i64) {
        if self.map.len() >= self.capacity {
            self.make_room(now_ms);
        }
        self.map.pin().insert(key, identity);
    }

    /// Number of cached tokens.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    fn make_room(&self, now_ms: i64) {
        if self.sweeping.swap(true, Ordering::AcqRel) {
            return;
        }
        let map = self.map.pin();
        map.retain(|_, identity| identity.valid_until_ms > now_ms);
        if self.map.len() >= self.capacity {
            map.clear();
        }
        self.sweeping.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::claims::{ClaimRules, check};

    fn identity(sub: &str, exp_secs: i64) -> Arc<Identity> {
        let claims = serde_json::json!({"sub": sub, "sid": "sess_1", "exp": exp_secs});
        check(&claims, &ClaimRules::default(), 0).unwrap()
    }

    #[test]
    fn entries_expire_with_their_token() {
        let cache = TokenCache::new(10);
        let key = key_of("token-a");
        cache.insert(key, identity("user_a", 100), 0);
        assert_eq!(cache.get(&key, 99_999).unwrap().user_id, "user_a");
        assert!(cache.get(&key, 100_000).is_none());
        assert!(cache.is_empty());
    }

    #[test]
    fn capacity_is_a_bound() {
        let cache = TokenCache::new(4);
        for i in 0..4 {
            cache.insert(key_of(&format!("old{i}")), identity("user_old", 1), 0);
        }
        cache.insert(key_of("new"), identity("user_new", 100), 5_000);
        assert_eq!(cache.len(), 1, "expired entries were swept");
        for i in 0..10 {
            cache.insert(key_of(&format!("live{i}")), identity("user_live", 100), 5_000);
            assert!(cache.len() <= 4);
        }
    }

    #[test]
    fn keys_differ_per_token() {
        assert_ne!(key_of("a.b.c"), key_of("a.b.d"));
    }
}
