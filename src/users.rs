//! The user directory: mirrored users as the request path sees them. A bounded in-memory
//! cache sits in front of SQLite (a user seen recently costs no disk read), header values
//! are computed once per user version, users missing from the mirror are fetched from the
//! Backend API once (single-flight, 404s remembered), and every in-process write to the
//! mirror passes through here so the cache and the revocation list follow it; with a shared
//! mirror, so do the other replicas' writes (`follow_fleet`).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::ascii;
use crate::auth::revocation::RevokedSessions;
use crate::cache::ExpiringMap;
use crate::clerk_api::ClerkApi;
use crate::clock::{self, Clock};
use crate::identity::UserValues;
use crate::metrics::Metrics;
use crate::mirror::records::UserRecord;
use crate::mirror::{Applied, BatchCounts, Delivery, Effect, FleetEvent, Mirror, MirrorError, StoredUser, Write};

/// How long "not in the mirror, and nobody to ask" is remembered.
const ABSENT_TTL: Duration = Duration::from_secs(60);
/// How long a failed Backend API lookup is remembered (so an outage is not hammered).
const FAILED_FETCH_TTL: Duration = Duration::from_secs(10);

/// A mirrored user with its header values ready.
#[derive(Debug)]
pub struct UserProfile {
    /// The record.
    pub record: UserRecord,
    /// `X-User-Email`, `X-User-Metadata` and `X-User`.
    pub values: UserValues,
}

impl UserProfile {
    /// Computes the header values of `record`.
    pub fn new(record: UserRecord) -> Self {
        let profile = json!({
            "id": record.id,
            "username": record.username,
            "first_name": record.first_name,
            "last_name": record.last_name,
            "email": record.primary_email,
            "image_url": record.image_url,
            "public_metadata": record.public_metadata,
        });
        let values = UserValues {
            email: record.primary_email.as_deref().map(ascii::header_value),
            metadata: ascii::header_value(&record.public_metadata.to_string()),
            profile: ascii::header_value(&profile.to_string()),
        };
        UserProfile { record, values }
    }
}

/// Where a lookup was answered, in `metrics::USER_SOURCES` order.
#[derive(Clone, Copy)]
enum Source {
    Memory = 0,
    Mirror = 1,
    BackendApi = 2,
    None = 3,
}

/// A cached lookup: `Some(profile)` for a live user, `None` for one known to be absent or
/// deleted. `version` orders writes that race each other into the cache: a live user's
/// `updated_at`, `i64::MAX` for a tombstone (nothing revives it), `i64::MIN` for "not
/// found" (anything may replace it).
#[derive(Clone)]
struct Entry {
    profile: Option<Arc<UserProfile>>,
    version: i64,
}

/// The directory.
pub struct Directory {
    mirror: Mirror,
    api: Option<ClerkApi>,
    cache: ExpiringMap<String, Entry>,
    revoked: Arc<RevokedSessions>,
    clock: Clock,
    ttl: Duration,
    fetch_timeout: Duration,
    revocation_retention: Duration,
    fetching: Mutex<HashMap<String, Arc<Notify>>>,
    metrics: Arc<Metrics>,
}

/// Settings for `Directory::new`.
pub struct DirectorySettings {
    /// Most users kept in memory.
    pub cache_size: usize,
    /// How long a cached user is trusted before SQLite is read again.
    pub ttl: Duration,
    /// How long a request waits for a Backend API fill.
    pub fetch_timeout: Duration,
    /// How long a revoked session stays revoked.
    pub revocation_retention: Duration,
}

impl Directory {
    /// A directory over `mirror`; `api` enables lazy fills.
    pub fn new(
        mirror: Mirror,
        api: Option<ClerkApi>,
        revoked: Arc<RevokedSessions>,
        clock: Clock,
        metrics: Arc<Metrics>,
        settings: DirectorySettings,
    ) -> Self {
        Directory {
            mirror,
            api,
            cache: ExpiringMap::new(settings.cache_size),
            revoked,
            clock,
            ttl: settings.ttl,
            fetch_timeout: settings.fetch_timeout,
            revocation_retention: settings.revocation_retention,
            fetching: Mutex::new(HashMap::new()),
            metrics,
        }
    }

    /// The mirror underneath.
    pub fn mirror(&self) -> &Mirror {
        &self.mirror
    }

    /// The user `user_id`, from memory, else SQLite, else (once, with a deadline) the
    /// Backend API. `None` when the user is unknown, deleted, or not fetched in time.
    pub async fn lookup(self: &Arc<Self>, user_id: &str) -> Option<Arc<UserProfile>> {
        let (found, source) = self.find(user_id).await;
        let source = if found.is_some() { source } else { Source::None };
        self.metrics.user_lookup(source as usize);
        found
    }

    async fn find(self: &Arc<Self>, user_id: &str) -> (Option<Arc<UserProfile>>, Source) {
        if let Some(entry) = self.cache.get(user_id, self.clock.now_ms()) {
            return (entry.profile, Source::Memory);
        }
        match self.mirror.user(user_id).await {
            Ok(Some(StoredUser::Live(record))) => (Some(self.remember(*record)), Source::Mirror),
            Ok(Some(StoredUser::Deleted)) => {
                self.remember_deleted(user_id);
                (None, Source::Mirror)
            }
            Ok(None) if self.api.is_some() => (self.fill(user_id).await, Source::BackendApi),
            Ok(None) => {
                self.remember_absent(user_id, ABSENT_TTL);
                (None, Source::None)
            }
            Err(error) => {
                tracing::warn!(%error, "mirror read failed; forwarding without user headers");
                (None, Source::None)
            }
        }
    }

    /// Caches a user version, unless a newer version (or its tombstone) got there first:
    /// concurrent deliveries finish in any order, the cache must end where the mirror does.
    fn remember(&self, record: UserRecord) -> Arc<UserProfile> {
        let version = record.updated_at;
        let profile = Arc::new(UserProfile::new(record));
        let entry = Entry { profile: Some(profile.clone()), version };
        self.put(profile.record.id.clone(), entry, self.ttl);
        profile
    }

    fn remember_deleted(&self, user_id: &str) {
        self.put(user_id.to_owned(), Entry { profile: None, version: i64::MAX }, self.ttl);
    }

    fn remember_absent(&self, user_id: &str, ttl: Duration) {
        self.put(user_id.to_owned(), Entry { profile: None, version: i64::MIN }, ttl);
    }

    fn put(&self, user_id: String, entry: Entry, ttl: Duration) {
        let now = self.clock.now_ms();
        let version = entry.version;
        self.cache.insert_unless(user_id, entry, now + clock::millis(ttl), now, |old| old.version > version);
    }

    /// Waits (at most `fetch_timeout`) for the one Backend API fill of `user_id`, starting
    /// it if nobody has. The fill finishes in the background even when the wait ends.
    async fn fill(self: &Arc<Self>, user_id: &str) -> Option<Arc<UserProfile>> {
        let (done, leader) = {
            let Ok(mut fetching) = self.fetching.lock() else { return None };
            // A fill that finished since this request missed the cache has already stored
            // its answer there (before leaving `fetching`): use it rather than fetch again.
            if let Some(entry) = self.cache.get(user_id, self.clock.now_ms()) {
                return entry.profile;
            }
            match fetching.get(user_id) {
                Some(done) => (done.clone(), false),
                None => {
                    let done = Arc::new(Notify::new());
                    fetching.insert(user_id.to_owned(), done.clone());
                    (done, true)
                }
            }
        };
        let finished = done.notified();
        tokio::pin!(finished);
        finished.as_mut().enable();
        if leader {
            let directory = self.clone();
            let id = user_id.to_owned();
            tokio::spawn(async move { directory.fetch_and_store(id).await });
        } else if let Some(entry) = self.cache.get(user_id, self.clock.now_ms()) {
            return entry.profile;
        }
        let _ = tokio::time::timeout(self.fetch_timeout, finished).await;
        self.cache.get(user_id, self.clock.now_ms()).and_then(|e| e.profile)
    }

    async fn fetch_and_store(self: Arc<Self>, user_id: String) {
        let Some(api) = &self.api else { return };
        match api.user(&user_id).await {
            Ok(Some(user)) => {
                let record = UserRecord::from(user);
                match self.mirror.upsert_users(vec![record.clone()]).await {
                    Ok(_) => {
                        self.remember(record);
                    }
                    Err(error) => tracing::warn!(%error, "could not store a fetched user"),
                }
            }
            Ok(None) => self.remember_absent(&user_id, self.ttl),
            Err(error) => {
                tracing::warn!(%error, user_id, "Backend API user lookup failed");
                self.remember_absent(&user_id, FAILED_FETCH_TTL);
            }
        }
        if let Ok(mut fetching) = self.fetching.lock()
            && let Some(done) = fetching.remove(&user_id)
        {
            done.notify_waiters();
        }
    }

    /// Applies a verified webhook delivery and brings the cache and revocation list up to
    /// date with what it changed. A revocation takes effect in memory first, so it holds
    /// even when the mirror cannot store it (the delivery is then answered 5xx and retried).
    ///
    /// # Errors
    /// `MirrorError` when the mirror refuses the write (nothing stored).
    pub async fn apply(&self, delivery: Delivery) -> Result<Applied, MirrorError> {
        if let Write::RevokeSession { session_id: id, .. } | Write::RevokeMachineToken { id } = &delivery.write {
            self.revoke_in_memory(id);
        }
        let applied = self.mirror.apply(delivery).await?;
        if let Applied::Applied(effect) = &applied {
            self.follow(effect);
        }
        Ok(applied)
    }

    fn follow(&self, effect: &Effect) {
        match effect {
            Effect::UserChanged(record) => {
                self.remember((**record).clone());
            }
            Effect::UserDeleted(id) => self.remember_deleted(id),
            Effect::SessionRevoked { session_id, until_ms } => {
                self.revoked.insert(session_id, *until_ms, self.clock.now_ms());
            }
            Effect::Stored | Effect::Ignored(_) | Effect::NotMirrored => {}
        }
    }

    /// Stores a page of users (reconcile), keeping the cache in step.
    ///
    /// # Errors
    /// `MirrorError` when the mirror refuses the write.
    pub async fn store_users(&self, users: Vec<UserRecord>) -> Result<BatchCounts, MirrorError> {
        let counts = self.mirror.upsert_users(users).await?;
        for record in &counts.changed {
            self.remember(record.clone());
        }
        Ok(counts)
    }

    /// Tombstones users a complete sweep did not see, keeping the cache in step.
    ///
    /// # Errors
    /// `MirrorError` when the mirror refuses the write.
    pub async fn tombstone_missing(
        &self,
        seen: HashSet<String>,
        started_at_ms: i64,
    ) -> Result<Vec<String>, MirrorError> {
        let gone = self.mirror.tombstone_missing(seen, started_at_ms).await?;
        for id in &gone {
            self.remember_deleted(id);
        }
        Ok(gone)
    }

    /// Revokes a session here and now (logout): in the mirror, so it survives a restart,
    /// and on the in-memory list verification consults.
    ///
    /// # Errors
    /// `MirrorError` when the mirror refuses the write (the in-memory list is still updated).
    pub async fn revoke_session(&self, session_id: &str, user_id: Option<&str>) -> Result<(), MirrorError> {
        self.revoke_in_memory(session_id);
        self.mirror.revoke_session(session_id, user_id).await.map(|_| ())
    }

    /// Puts `session_id` (or a machine token's id) on the in-memory revocation list for the
    /// retention.
    fn revoke_in_memory(&self, session_id: &str) {
        let now = self.clock.now_ms();
        self.revoked.insert(session_id, now.saturating_add(clock::millis(self.revocation_retention)), now);
    }

    /// Follows what every replica commits to a shared mirror, for as long as this directory
    /// lives: revocations go on the list at once, changed users are forgotten (the next
    /// lookup reads the mirror), and after a gap in the feed the revocations are reloaded and
    /// every cached user forgotten. Does nothing for a SQLite mirror.
    pub fn follow_fleet(self: &Arc<Self>) {
        let Some(mut events) = self.mirror.subscribe() else { return };
        let directory = Arc::downgrade(self);
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                let Some(directory) = directory.upgrade() else { return };
                directory.follow_event(event).await;
            }
        });
    }

    async fn follow_event(&self, event: FleetEvent) {
        match event {
            FleetEvent::Revoked { id, until_ms } => self.revoked.insert(&id, until_ms, self.clock.now_ms()),
            FleetEvent::User { id } => self.reread(&id).await,
            FleetEvent::Resync => {
                self.cache.clear();
                let mut backoff = Duration::from_millis(100);
                while let Err(error) = self.load_revocations().await {
                    tracing::warn!(%error, "could not reload revocations after a gap in the mirror's change feed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// Reads a user another replica changed and caches that version (under the version
    /// rule, so a lookup that read an older one cannot put it back); forgets it when the
    /// mirror cannot say.
    async fn reread(&self, user_id: &str) {
        match self.mirror.user(user_id).await {
            Ok(Some(StoredUser::Live(record))) => drop(self.remember(*record)),
            Ok(Some(StoredUser::Deleted)) => self.remember_deleted(user_id),
            Ok(None) | Err(_) => self.cache.remove(user_id),
        }
    }

    /// Loads the revocations still in force from the mirror (at start-up).
    ///
    /// # Errors
    /// `MirrorError` when the query fails.
    pub async fn load_revocations(&self) -> Result<usize, MirrorError> {
        let now = self.clock.now_ms();
        let rows = self.mirror.live_revocations(now).await?;
        for (session_id, until) in &rows {
            self.revoked.insert(session_id, *until, now);
        }
        Ok(rows.len())
    }

    /// The Backend API client, when a secret key is configured.
    pub fn api(&self) -> Option<&ClerkApi> {
        self.api.as_ref()
    }
}

/// The public metadata of a profile, for `require.metadata`.
pub fn public_metadata(profile: Option<&UserProfile>) -> Option<&Value> {
    profile.map(|p| &p.record.public_metadata)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_are_ascii_json() {
        let record = UserRecord {
            id: "user_1".into(),
            primary_email: Some("zoë@example.com".into()),
            username: None,
            first_name: Some("Zoë".into()),
            last_name: Some("\"Quote\"".into()),
            image_url: None,
            public_metadata: json!({"plan": "pro", "city": "東京"}),
            private_metadata: json!({"secret": 1}),
            unsafe_metadata: json!({}),
            created_at: None,
            updated_at: 1,
        };
        let p = UserProfile::new(record);
        assert_eq!(p.values.email.as_ref().unwrap(), "zo\\u00eb@example.com");
        assert_eq!(p.values.metadata, r#"{"city":"\u6771\u4eac","plan":"pro"}"#);
        let profile: Value = serde_json::from_str(p.values.profile.to_str().unwrap()).unwrap();
        assert_eq!(profile["first_name"], "Zoë");
        assert_eq!(profile["last_name"], "\"Quote\"");
        assert_eq!(profile["public_metadata"]["city"], "東京");
        assert!(profile.get("private_metadata").is_none(), "private metadata never leaves the mirror");
    }
}
