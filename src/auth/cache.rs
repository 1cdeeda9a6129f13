//! The verified-token cache, in two levels, each entry kept until its token expires, so a
//! token seen a moment ago costs no RSA: per worker thread, the last tokens it verified or
//! found, by their exact bytes (a hit is one comparison, no digest, no lock); behind them,
//! a bounded cache shared by all workers, keyed by SHA-256(token) so it never holds a
//! token, whose eviction (quick_cache's CLOCK-Pro) keeps the hot entries and never scans.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::identity::Identity;

/// A token digest.
pub type TokenKey = [u8; 32];

/// Hashes a token into its shared-cache key (the token itself is never stored there).
pub fn key_of(token: &str) -> TokenKey {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    let mut key = [0u8; 32];
    key.copy_from_slice(digest.as_ref());
    key
}

/// Slots in each worker's table of recent tokens.
const RECENT_SLOTS: usize = 64;

/// One recently verified token on this thread.
struct Recent {
    /// The `TokenCache` it belongs to (a reload with other keys or rules makes another).
    cache: u64,
    token: Box<[u8]>,
    identity: Arc<Identity>,
}

thread_local! {
    static RECENT: RefCell<[Option<Recent>; RECENT_SLOTS]> = const { RefCell::new([const { None }; RECENT_SLOTS]) };
}

/// Where `token` sits in the recent table: its last bytes are signature, as good as random
/// (a client that forges tokens sharing a tail only makes its own lookups miss).
fn slot_of(token: &[u8]) -> usize {
    let tail = token.len().saturating_sub(8);
    let mut bytes = [0u8; 8];
    bytes[..token.len() - tail].copy_from_slice(&token[tail..]);
    let mixed = u64::from_le_bytes(bytes).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (mixed >> 58) as usize % RECENT_SLOTS
}

static NEXT_CACHE_ID: AtomicU64 = AtomicU64::new(1);

/// Verified tokens, each kept until it expires.
pub struct TokenCache {
    id: u64,
    shared: quick_cache::sync::Cache<TokenKey, Arc<Identity>>,
}

impl TokenCache {
    /// A cache holding at most `capacity` tokens (plus each worker's few recent ones).
    pub fn new(capacity: usize) -> Self {
        let id = NEXT_CACHE_ID.fetch_add(1, Ordering::Relaxed);
        TokenCache { id, shared: quick_cache::sync::Cache::new(capacity.max(1)) }
    }

    /// The identity of a cached `token` that is still valid at `now_ms`.
    pub fn get(&self, token: &str, now_ms: i64) -> Option<Arc<Identity>> {
        let slot = slot_of(token.as_bytes());
        let recent = RECENT.with_borrow(|table| {
            table[slot]
                .as_ref()
                .filter(|r| r.cache == self.id && *r.token == *token.as_bytes())
                .map(|r| r.identity.clone())
        });
        if let Some(identity) = recent {
            return (identity.valid_until_ms > now_ms).then_some(identity);
        }
        let key = key_of(token);
        let identity = self.shared.get(&key)?;
        if identity.valid_until_ms <= now_ms {
            self.shared.remove(&key);
            return None;
        }
        self.remember(token, &identity);
        Some(identity)
    }

    /// Remembers a verified `token` until its `valid_until_ms`.
    pub fn insert(&self, token: &str, identity: Arc<Identity>) {
        self.remember(token, &identity);
        self.shared.insert(key_of(token), identity);
    }

    /// Puts `token` in this thread's recent table.
    fn remember(&self, token: &str, identity: &Arc<Identity>) {
        let recent = Recent { cache: self.id, token: token.as_bytes().into(), identity: identity.clone() };
        RECENT.with_borrow_mut(|table| table[slot_of(token.as_bytes())] = Some(recent));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::claims::{ClaimRules, check};

    fn identity(user: &str, exp: i64) -> Arc<Identity> {
        let claims = serde_json::json!({"sub": user, "sid": "sess_1", "exp": exp});
        check(&claims, &ClaimRules::default(), 0).unwrap()
    }

    #[test]
    fn entries_expire_with_their_token() {
        let cache = TokenCache::new(10);
        cache.insert("token-a", identity("user_a", 100));
        assert_eq!(cache.get("token-a", 99_999).unwrap().user_id, "user_a");
        assert!(cache.get("token-a", 100_000).is_none());
        assert!(cache.get("token-b", 0).is_none());
    }

    #[test]
    fn a_hit_needs_the_exact_token_and_the_same_cache() {
        let cache = TokenCache::new(10);
        cache.insert("header.payload.signature-x", identity("user_a", 100));
        // Same tail, hence the same recent slot: only the exact bytes match.
        assert!(cache.get("header.payloaD.signature-x", 0).is_none());
        assert!(cache.get("header.payload.signature-x", 0).is_some());
        let other = TokenCache::new(10);
        assert!(other.get("header.payload.signature-x", 0).is_none(), "another cache's recent entry");
    }

    #[test]
    fn other_threads_find_tokens_in_the_shared_level() {
        let cache = Arc::new(TokenCache::new(10));
        cache.insert("token-a", identity("user_a", 100));
        let shared = cache.clone();
        let found = std::thread::spawn(move || shared.get("token-a", 0).map(|i| i.user_id.clone())).join().unwrap();
        assert_eq!(found.as_deref(), Some("user_a"));
    }

    #[test]
    fn the_shared_level_is_bounded_and_keeps_what_is_used() {
        let cache = Arc::new(TokenCache::new(100));
        let hot = "hot-token".to_owned();
        cache.insert(&hot, identity("user_hot", 100));
        for i in 0..1_000 {
            cache.insert(&format!("cold-{i}"), identity("user_cold", 100));
            assert!(cache.shared.get(&key_of(&hot)).is_some(), "the hot token survives churn ({i})");
        }
        assert!(cache.shared.len() <= 100);
    }
}
