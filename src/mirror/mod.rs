//! The local SQLite mirror of Clerk users, sessions and webhook deliveries. The only module
//! that touches rusqlite; every call runs off the async runtime.

mod schema;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::error::Error;

/// How long a writer waits for a lock held by another process (e.g. `clerk-gateway sync`).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// An open, migrated mirror database.
#[derive(Clone)]
pub struct Mirror {
    path: String,
    conn: Arc<Mutex<Connection>>,
}

impl Mirror {
    /// Opens (creating if needed) and migrates the database at `path` (`:memory:` allowed),
    /// on a blocking thread.
    ///
    /// # Errors
    /// `Error::Mirror` naming the path when the file cannot be opened, is not a SQLite
    /// database, or cannot be migrated.
    pub async fn open(path: &str) -> Result<Mirror, Error> {
        let owned = path.to_owned();
        let conn = tokio::task::spawn_blocking(move || open_blocking(&owned))
            .await
            .map_err(|e| Error::Runtime(e.to_string()))?
            .map_err(|message| Error::Mirror { path: path.to_owned(), message })?;
        Ok(Mirror { path: path.to_owned(), conn: Arc::new(Mutex::new(conn)) })
    }

    /// The database path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Number of (non-deleted) users in the mirror.
    ///
    /// # Errors
    /// A message when the query fails.
    pub async fn user_count(&self) -> Result<u64, String> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let conn = conn.lock().map_err(|_| "mirror connection poisoned".to_owned())?;
            conn.query_row("SELECT COUNT(*) FROM users WHERE deleted = 0", [], |r| r.get::<_, i64>(0))
                .map(|n| u64::try_from(n).unwrap_or(0))
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())?
    }
}

fn open_blocking(path: &str) -> Result<Connection, String> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut conn = Connection::open_with_flags(path, flags).map_err(|e| e.to_string())?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(|e| e.to_string())?;
    if path != ":memory:" {
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)).map_err(|e| e.to_string())?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(format!("cannot switch to WAL journal mode (got {mode})"));
        }
    }
    conn.pragma_update(None, "synchronous", "NORMAL").map_err(|e| e.to_string())?;
    conn.pragma_update(None, "foreign_keys", true).map_err(|e| e.to_string())?;
    schema::migrate(&mut conn)?;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn opens_migrates_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        let mirror = Mirror::open(path.to_str().unwrap()).await.unwrap();
        assert_eq!(mirror.user_count().await.unwrap(), 0);
        drop(mirror);
        let again = Mirror::open(path.to_str().unwrap()).await.unwrap();
        assert_eq!(again.user_count().await.unwrap(), 0);
    }

    #[tokio::test]
    async fn a_file_that_is_not_a_database_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("garbage.db");
        std::fs::write(&path, vec![b'x'; 4096]).unwrap();
        let err = Mirror::open(path.to_str().unwrap()).await.err().unwrap();
        assert!(err.to_string().contains("not a database"), "{err}");
    }

    #[tokio::test]
    async fn memory_databases_work() {
        assert_eq!(Mirror::open(":memory:").await.unwrap().user_count().await.unwrap(), 0);
    }
}
