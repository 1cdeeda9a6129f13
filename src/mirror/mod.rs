//! The mirror of Clerk users, organizations, memberships, processed webhook deliveries and
//! revoked sessions: a local SQLite file by default, or one Postgres database that a fleet
//! of replicas shares (`postgres.rs`). The only module that touches rusqlite or Postgres.
//! SQLite writes go to one writer thread and its reads use a small pool of connections on
//! the blocking pool, so nothing blocking runs on the async runtime's threads.

mod delivery;
mod error;
mod file;
mod pg_feed;
mod pg_schema;
mod pg_store;
mod postgres;
pub mod records;
mod schema;
mod store;
mod writer;

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use tokio::sync::{mpsc, oneshot};

use crate::clock::Clock;
use crate::config::MirrorConfig;
pub use delivery::{Applied, Delivery, Effect, FleetEvent, Write};
pub use error::{FileError, MirrorError};
pub use file::FileChange;
use file::FileIdentity;
pub use postgres::redacted;
use records::{MembershipRecord, UserRecord};
pub use store::{StoredUser, Upsert};
pub use writer::{BatchCounts, DELIVERY_RETENTION};
use writer::{Command, ReplyTo, Writer};

/// How long a writer waits for a lock held by another process (e.g. `clerk-gateway sync`).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Idle read connections kept open.
const READ_POOL: usize = 8;
/// How long a readiness probe waits for its write round trip.
const PROBE_DEADLINE: Duration = Duration::from_secs(2);
/// How long a probe's answer is reused by readiness checks.
const PROBE_FRESH: Duration = Duration::from_secs(1);

/// A handle on the mirror; cheap to clone.
#[derive(Clone)]
pub struct Mirror {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    /// The last readiness probe: when it ran, and why it failed (`None`: writes reach the
    /// database). Read and written by readiness checks only, never on the request path.
    last_probe: Mutex<Option<(std::time::Instant, Option<Arc<String>>)>>,
}

/// Where the mirror lives.
enum Store {
    Sqlite(Sqlite),
    Postgres(Box<postgres::PgMirror>),
}

/// A SQLite file, its writer thread and its readers.
struct Sqlite {
    path: String,
    writer: mpsc::Sender<Command>,
    readers: Mutex<Vec<Connection>>,
    /// Keeps a `:memory:` mirror's temporary directory alive.
    _temp: Option<tempfile::TempDir>,
}

impl Mirror {
    /// Opens (creating if needed) and migrates the database at `path` and starts its writer
    /// thread. `:memory:` keeps the mirror in a temporary directory removed on exit.
    ///
    /// # Errors
    /// `FileError` naming the path when the file cannot be opened or written, is not a
    /// SQLite database, or has a newer schema.
    pub async fn open(path: &str, clock: Clock, revocation_retention: Duration) -> Result<Mirror, FileError> {
        let owned = path.to_owned();
        let fail = |source: MirrorError| FileError::new(path, source);
        let opened = tokio::task::spawn_blocking(move || open_files(&owned)).await.map_err(|e| fail(e.into()))?;
        let Opened { conn, path: file, identity, temp } = opened.map_err(fail)?;
        let (writer, commands) = mpsc::channel(4096);
        let state = Writer::new(conn, identity, clock, revocation_retention);
        std::thread::Builder::new()
            .name("mirror-writer".into())
            .spawn(move || state.run(commands))
            .map_err(|e| fail(MirrorError::WriterThread(e)))?;
        let sqlite = Sqlite { path: file, writer, readers: Mutex::new(Vec::new()), _temp: temp };
        Ok(Mirror::over(Store::Sqlite(sqlite)))
    }

    /// Connects to the Postgres database at `url` and runs its migrations (one replica at
    /// a time).
    ///
    /// # Errors
    /// `FileError` naming the database (never its password) when it cannot be reached, has
    /// a newer schema, or a migration fails.
    pub async fn connect(url: &str, clock: Clock, revocation_retention: Duration) -> Result<Mirror, FileError> {
        let store = postgres::PgMirror::connect(url, clock, revocation_retention)
            .await
            .map_err(|source| FileError::new(postgres::redacted(url), source))?;
        Ok(Mirror::over(Store::Postgres(Box::new(store))))
    }

    /// The mirror `[mirror]` names: the Postgres database at `url`, else the SQLite file at
    /// `path`.
    ///
    /// # Errors
    /// `FileError` naming the database, as `open` and `connect`.
    pub async fn from_config(config: &MirrorConfig, clock: Clock) -> Result<Mirror, FileError> {
        match &config.url {
            Some(url) => Mirror::connect(url.expose(), clock, config.revocation_retention).await,
            None => Mirror::open(&config.path, clock, config.revocation_retention).await,
        }
    }

    fn over(store: Store) -> Mirror {
        Mirror { inner: Arc::new(Inner { store, last_probe: Mutex::new(None) }) }
    }

    /// What other replicas commit to a shared (Postgres) mirror, as it commits; `None` for
    /// a SQLite file, which this process alone writes.
    pub fn subscribe(&self) -> Option<mpsc::Receiver<FleetEvent>> {
        match &self.inner.store {
            Store::Postgres(pg) => Some(pg.subscribe()),
            Store::Sqlite(_) => None,
        }
    }

    /// Whether other replicas share this mirror (Postgres).
    pub fn is_shared(&self) -> bool {
        matches!(self.inner.store, Store::Postgres(_))
    }

    /// The SQLite store, or `None` for Postgres.
    fn sqlite(&self) -> Option<&Sqlite> {
        match &self.inner.store {
            Store::Sqlite(sqlite) => Some(sqlite),
            Store::Postgres(_) => None,
        }
    }

    /// A write round trip through the writer: answers once a write committed to the file
    /// the mirror opened, within `deadline`.
    ///
    /// # Errors
    /// `Unresponsive` when the writer does not answer in time (or its queue is full), the
    /// writer's error (`FileChanged`, a SQLite failure) otherwise.
    async fn probe(&self, deadline: Duration) -> Result<(), MirrorError> {
        let sqlite = match &self.inner.store {
            Store::Sqlite(sqlite) => sqlite,
            Store::Postgres(pg) => {
                return tokio::time::timeout(deadline, pg.probe())
                    .await
                    .unwrap_or(Err(MirrorError::Unresponsive { waited: deadline }));
            }
        };
        let (reply, result) = oneshot::channel();
        match sqlite.writer.try_send(Command::Probe(reply)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                return Err(MirrorError::Unresponsive { waited: Duration::ZERO });
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return Err(MirrorError::WriterStopped),
        }
        match tokio::time::timeout(deadline, result).await {
            Ok(answer) => answer.map_err(|_| MirrorError::WriterStopped)?,
            Err(_) => Err(MirrorError::Unresponsive { waited: deadline }),
        }
    }

    /// Why the mirror is not ready, or `None`: a probe's answer, probing again when the last
    /// one is more than a second old. Logs each change.
    pub async fn readiness(&self) -> Option<Arc<String>> {
        let cached = self.inner.last_probe.lock().ok().and_then(|last| last.clone());
        if let Some((at, failing)) = &cached
            && at.elapsed() < PROBE_FRESH
        {
            return failing.clone();
        }
        let failing = self.probe(PROBE_DEADLINE).await.err().map(|e| Arc::new(e.to_string()));
        match (cached.and_then(|(_, was)| was), &failing) {
            (None, Some(reason)) => tracing::error!(reason = %reason, path = self.path(), "mirror is not writable"),
            (Some(_), None) => tracing::info!(path = self.path(), "mirror is writable again"),
            _ => {}
        }
        if let Ok(mut last) = self.inner.last_probe.lock() {
            *last = Some((std::time::Instant::now(), failing.clone()));
        }
        failing
    }

    /// The database path as configured (for Postgres, its URL without the password).
    pub fn path(&self) -> &str {
        match &self.inner.store {
            Store::Sqlite(sqlite) => &sqlite.path,
            Store::Postgres(pg) => pg.display(),
        }
    }

    /// Applies a verified delivery in one transaction (deduplicated by id).
    ///
    /// # Errors
    /// `MirrorError` when the database refuses the write; nothing was applied.
    pub async fn apply(&self, delivery: Delivery) -> Result<Applied, MirrorError> {
        if let Store::Postgres(pg) = &self.inner.store {
            return pg.apply(&delivery).await;
        }
        self.command(|reply| Command::Apply(Box::new(delivery), reply)).await
    }

    /// Upserts a page of users under the ordering rule, in one transaction.
    ///
    /// # Errors
    /// `MirrorError` when the database refuses the write.
    pub async fn upsert_users(&self, users: Vec<UserRecord>) -> Result<BatchCounts, MirrorError> {
        if let Store::Postgres(pg) = &self.inner.store {
            return pg.upsert_users(&users).await;
        }
        self.command(|reply| Command::UpsertUsers(users, reply)).await
    }

    /// Tombstones live users that a complete sweep begun at `started_at_ms` did not see.
    ///
    /// # Errors
    /// `MirrorError` when the database refuses the write.
    pub async fn tombstone_missing(
        &self,
        seen: HashSet<String>,
        started_at_ms: i64,
    ) -> Result<Vec<String>, MirrorError> {
        if let Store::Postgres(pg) = &self.inner.store {
            return pg.tombstone_missing(&seen, started_at_ms).await;
        }
        self.command(|reply| Command::TombstoneMissing(seen, started_at_ms, reply)).await
    }

    /// Revokes a session (logout) for the revocation retention; returns when it ends, ms.
    ///
    /// # Errors
    /// `MirrorError` when the database refuses the write.
    pub async fn revoke_session(&self, session_id: &str, user_id: Option<&str>) -> Result<i64, MirrorError> {
        if let Store::Postgres(pg) = &self.inner.store {
            return pg.revoke_session(session_id, user_id).await;
        }
        let (sid, uid) = (session_id.to_owned(), user_id.map(str::to_owned));
        self.command(|reply| Command::Revoke(sid, uid, reply)).await
    }

    async fn command<T>(&self, make: impl FnOnce(ReplyTo<T>) -> Command) -> Result<T, MirrorError> {
        let (reply, result) = oneshot::channel();
        let sqlite = self.sqlite().ok_or(MirrorError::WriterStopped)?;
        sqlite.writer.send(make(reply)).await.map_err(|_| MirrorError::WriterStopped)?;
        result.await.map_err(|_| MirrorError::WriterStopped)?
    }

    /// Runs a read on a pooled connection, off the async threads.
    async fn read<T: Send + 'static>(
        &self,
        query: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, MirrorError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let Store::Sqlite(sqlite) = &inner.store else { return Err(MirrorError::WriterStopped) };
            let pooled = sqlite.readers.lock().map_err(|_| MirrorError::Poisoned)?.pop();
            let conn = match pooled {
                Some(conn) => conn,
                None => open_reader(&sqlite.path)?,
            };
            let result = query(&conn).map_err(MirrorError::from);
            if let Ok(mut pool) = sqlite.readers.lock()
                && pool.len() < READ_POOL
            {
                pool.push(conn);
            }
            result
        })
        .await?
    }

    /// One user, live or tombstoned.
    ///
    /// # Errors
    /// `MirrorError` when the query fails.
    pub async fn user(&self, id: &str) -> Result<Option<StoredUser>, MirrorError> {
        if let Store::Postgres(pg) = &self.inner.store {
            return pg.user(id).await;
        }
        let id = id.to_owned();
        self.read(move |conn| store::read_user(conn, &id)).await
    }

    /// A user's live memberships.
    ///
    /// # Errors
    /// `MirrorError` when the query fails.
    pub async fn memberships(&self, user_id: &str) -> Result<Vec<MembershipRecord>, MirrorError> {
        if let Store::Postgres(pg) = &self.inner.store {
            return pg.memberships(user_id).await;
        }
        let user_id = user_id.to_owned();
        self.read(move |conn| store::memberships_of(conn, &user_id)).await
    }

    /// Revocations still in force at `now_ms`: `(session id, expires at)`.
    ///
    /// # Errors
    /// `MirrorError` when the query fails.
    pub async fn live_revocations(&self, now_ms: i64) -> Result<Vec<(String, i64)>, MirrorError> {
        if let Store::Postgres(pg) = &self.inner.store {
            return pg.live_revocations(now_ms).await;
        }
        self.read(move |conn| store::live_revocations(conn, now_ms)).await
    }

    /// Live users in id order, `limit` from `offset`.
    ///
    /// # Errors
    /// `MirrorError` when the query fails.
    pub async fn users(&self, limit: u64, offset: u64) -> Result<Vec<UserRecord>, MirrorError> {
        if let Store::Postgres(pg) = &self.inner.store {
            return pg.users(limit, offset).await;
        }
        self.read(move |conn| store::list_users(conn, limit, offset)).await
    }

    /// Number of live users.
    ///
    /// # Errors
    /// `MirrorError` when the query fails.
    pub async fn count_users(&self) -> Result<u64, MirrorError> {
        if let Store::Postgres(pg) = &self.inner.store {
            return pg.count_users().await;
        }
        self.read(store::count_users).await
    }
}

/// A freshly opened, migrated database and the file it is.
struct Opened {
    conn: Connection,
    path: String,
    identity: FileIdentity,
    /// Keeps a `:memory:` mirror's temporary directory alive.
    temp: Option<tempfile::TempDir>,
}

/// Opens the write connection: the file itself, or a fresh file in a temporary directory
/// for `:memory:` (so readers and the writer share one database).
fn open_files(path: &str) -> Result<Opened, MirrorError> {
    let (file, temp) = if path == ":memory:" {
        let dir = tempfile::tempdir().map_err(MirrorError::TempDir)?;
        (dir.path().join("mirror.db").display().to_string(), Some(dir))
    } else {
        (path.to_owned(), None)
    };
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut conn = Connection::open_with_flags(&file, flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(MirrorError::NotWal { mode });
    }
    // FULL: a commit is on disk before the delivery is acknowledged, power loss included.
    conn.pragma_update(None, "synchronous", "FULL")?;
    schema::migrate(&mut conn)?;
    let identity = FileIdentity::of(Path::new(&file)).map_err(MirrorError::Stat)?;
    Ok(Opened { conn, path: file, identity, temp })
}

fn open_reader(path: &str) -> Result<Connection, MirrorError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(conn)
}

/// An existing mirror opened for reading only (the `users` command), on the calling
/// thread: for a short-lived command, not for the gateway's runtime.
pub struct ReadOnly {
    conn: Connection,
    path: String,
}

impl ReadOnly {
    /// Opens the mirror at `path`, refusing a database whose schema this build does not
    /// know.
    ///
    /// # Errors
    /// `FileError` when the file is missing, unreadable or of another schema version.
    pub fn open(path: &Path) -> Result<ReadOnly, FileError> {
        let name = path.display().to_string();
        if !path.exists() {
            return Err(FileError::new(name, MirrorError::Missing));
        }
        let conn = open_reader(&name).map_err(|e| FileError::new(&name, e))?;
        let found = schema::user_version(&conn).map_err(|e| FileError::new(&name, e))?;
        if found != schema::latest_version() {
            let supported = schema::latest_version();
            return Err(FileError::new(name, MirrorError::OtherSchema { found, supported }));
        }
        Ok(ReadOnly { conn, path: name })
    }

    /// Live users in id order.
    ///
    /// # Errors
    /// `FileError` when the query fails.
    pub fn users(&self, limit: u64, offset: u64) -> Result<Vec<UserRecord>, FileError> {
        store::list_users(&self.conn, limit, offset).map_err(|e| self.fail(e))
    }

    /// Number of live users.
    ///
    /// # Errors
    /// `FileError` when the query fails.
    pub fn count_users(&self) -> Result<u64, FileError> {
        store::count_users(&self.conn).map_err(|e| self.fail(e))
    }

    /// One user, live or tombstoned.
    ///
    /// # Errors
    /// `FileError` when the query fails.
    pub fn user(&self, id: &str) -> Result<Option<StoredUser>, FileError> {
        store::read_user(&self.conn, id).map_err(|e| self.fail(e))
    }

    /// A user's live memberships.
    ///
    /// # Errors
    /// `FileError` when the query fails.
    pub fn memberships(&self, user_id: &str) -> Result<Vec<MembershipRecord>, FileError> {
        store::memberships_of(&self.conn, user_id).map_err(|e| self.fail(e))
    }

    fn fail(&self, error: rusqlite::Error) -> FileError {
        FileError::new(&self.path, error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user(id: &str, updated_at: i64) -> UserRecord {
        UserRecord {
            id: id.into(),
            primary_email: None,
            username: None,
            first_name: None,
            last_name: None,
            image_url: None,
            public_metadata: json!({}),
            private_metadata: json!({}),
            unsafe_metadata: json!({}),
            created_at: None,
            updated_at,
        }
    }

    fn delivery(id: &str, write: Write) -> Delivery {
        Delivery { id: id.into(), event_type: "user.updated".into(), at_ms: 1, write }
    }

    async fn open(path: &str) -> Mirror {
        Mirror::open(path, Clock::manual(1_000_000), Duration::from_secs(3600)).await.unwrap()
    }

    #[tokio::test]
    async fn deliveries_apply_once_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db").display().to_string();
        let mirror = open(&path).await;
        let first = mirror.apply(delivery("msg_1", Write::UpsertUser(user("user_1", 5)))).await.unwrap();
        assert_eq!(first, Applied::Applied(Effect::UserChanged(Box::new(user("user_1", 5)))));
        let again = mirror.apply(delivery("msg_1", Write::UpsertUser(user("user_1", 5)))).await.unwrap();
        assert_eq!(again, Applied::Duplicate);
        let stale = mirror.apply(delivery("msg_2", Write::UpsertUser(user("user_1", 4)))).await.unwrap();
        assert_eq!(stale, Applied::Applied(Effect::Ignored(Upsert::Stale)));
        drop(mirror);
        let reopened = open(&path).await;
        assert_eq!(reopened.count_users().await.unwrap(), 1);
        assert_eq!(reopened.apply(delivery("msg_1", Write::Nothing)).await.unwrap(), Applied::Duplicate);
    }

    #[tokio::test]
    async fn concurrent_deliveries_are_all_applied() {
        let mirror = open(":memory:").await;
        let tasks: Vec<_> = (0..200)
            .map(|i| {
                let mirror = mirror.clone();
                tokio::spawn(async move {
                    mirror.apply(delivery(&format!("msg_{i}"), Write::UpsertUser(user(&format!("user_{i}"), 1)))).await
                })
            })
            .collect();
        for task in tasks {
            assert!(matches!(task.await.unwrap().unwrap(), Applied::Applied(Effect::UserChanged(_))));
        }
        assert_eq!(mirror.count_users().await.unwrap(), 200);
    }

    #[tokio::test]
    async fn a_file_that_is_not_a_database_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("garbage.db");
        std::fs::write(&path, vec![b'x'; 4096]).unwrap();
        let err = Mirror::open(path.to_str().unwrap(), Clock::System, Duration::from_secs(1)).await.err().unwrap();
        assert!(err.to_string().contains("not a database"), "{err}");
    }

    #[tokio::test]
    async fn an_unwritable_location_is_a_clear_error() {
        let err = Mirror::open("/nonexistent-dir/m.db", Clock::System, Duration::from_secs(1)).await.err().unwrap();
        assert!(err.to_string().contains("/nonexistent-dir/m.db"), "{err}");
    }

    #[tokio::test]
    async fn batches_and_sweeps() {
        let mirror = open(":memory:").await;
        let counts = mirror.upsert_users(vec![user("user_1", 5), user("user_2", 5)]).await.unwrap();
        assert_eq!((counts.inserted, counts.updated, counts.unchanged), (2, 0, 0));
        let counts = mirror.upsert_users(vec![user("user_1", 4), user("user_2", 6)]).await.unwrap();
        assert_eq!((counts.inserted, counts.updated, counts.unchanged, counts.changed.len()), (0, 1, 1, 1));
        let gone = mirror.tombstone_missing(HashSet::from(["user_2".to_owned()]), 100).await.unwrap();
        assert_eq!(gone, ["user_1"]);
        assert_eq!(mirror.count_users().await.unwrap(), 1);
    }
}
