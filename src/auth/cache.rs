//! The verified-token cache: SHA-256(token) → identity, until the token's own expiry, so a
//! token seen a moment ago costs a hash and a lock-free map read instead of an RSA verify.

use std::sync::Arc;

use crate::cache::ExpiringMap;
use crate::identity::Identity;

/// A token digest.
pub type TokenKey = [u8; 32];

/// Hashes a token into its cache key (the token itself is never stored).
pub fn key_of(token: &str) -> TokenKey {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    let mut key = [0u8; 32];
    key.copy_from_slice(digest.as_ref());
    key
}

/// Verified tokens, each kept until it expires.
pub struct TokenCache {
    map: ExpiringMap<TokenKey, Arc<Identity>>,
}

impl TokenCache {
    /// A cache holding at most about `capacity` tokens.
    pub fn new(capacity: usize) -> Self {
        TokenCache { map: ExpiringMap::new(capacity) }
    }

    /// The identity of a cached token that is still valid at `now_ms`.
    pub fn get(&self, key: &TokenKey, now_ms: i64) -> Option<Arc<Identity>> {
        self.map.get(key, now_ms)
    }

    /// Remembers a verified token until its `valid_until_ms`.
    pub fn insert(&self, key: TokenKey, identity: Arc<Identity>, now_ms: i64) {
        let until = identity.valid_until_ms;
        self.map.insert(key, identity, until, now_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::claims::{ClaimRules, check};

    #[test]
    fn entries_expire_with_their_token() {
        let claims = serde_json::json!({"sub": "user_a", "sid": "sess_1", "exp": 100});
        let identity = check(&claims, &ClaimRules::default(), 0).unwrap();
        let cache = TokenCache::new(10);
        let key = key_of("token-a");
        cache.insert(key, identity, 0);
        assert_eq!(cache.get(&key, 99_999).unwrap().user_id, "user_a");
        assert!(cache.get(&key, 100_000).is_none());
        assert!(cache.get(&key_of("token-b"), 0).is_none());
    }
}
