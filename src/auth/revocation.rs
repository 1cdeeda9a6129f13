//! Revoked sessions, in memory: a `sid` on this list is signed out even while its token is
//! unexpired. Fed by `session.revoked` / `ended` / `removed` webhooks (and reloaded from the
//! mirror at start-up). Reads are lock-free; entries leave only when their retention ends,
//! never to make room, so the list fails closed.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Sessions and the instant (ms) their revocation entry expires.
pub struct RevokedSessions {
    map: papaya::HashMap<String, i64>,
    inserts: AtomicUsize,
}

impl Default for RevokedSessions {
    fn default() -> Self {
        RevokedSessions { map: papaya::HashMap::new(), inserts: AtomicUsize::new(0) }
    }
}

impl RevokedSessions {
    /// Revokes `session_id` until `until_ms`.
    pub fn insert(&self, session_id: &str, until_ms: i64, now_ms: i64) {
        let map = self.map.pin();
        map.insert(session_id.to_owned(), until_ms);
        if self.inserts.fetch_add(1, Ordering::Relaxed) % 1024 == 1023 {
            map.retain(|_, until| *until > now_ms);
        }
    }

    /// Whether `session_id` is revoked at `now_ms`.
    pub fn contains(&self, session_id: &str, now_ms: i64) -> bool {
        self.map.pin().get(session_id).is_some_and(|until| *until > now_ms)
    }

    /// Number of entries (expired ones included until pruned).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revocations_hold_until_their_retention_ends() {
        let revoked = RevokedSessions::default();
        revoked.insert("sess_1", 1_000, 0);
        assert!(revoked.contains("sess_1", 999));
        assert!(!revoked.contains("sess_1", 1_000));
        assert!(!revoked.contains("sess_2", 0));
    }

    #[test]
    fn expired_entries_are_pruned_as_new_ones_arrive() {
        let revoked = RevokedSessions::default();
        for i in 0..2048 {
            revoked.insert(&format!("sess_{i}"), if i < 1000 { 10 } else { 10_000 }, 100);
        }
        assert!(revoked.len() < 2048);
        assert!(revoked.contains("sess_2047", 100));
    }
}
