//! What can go wrong in the mirror: `MirrorError` for an operation (SQLite's own error kept
//! as the source), and `FileError`, the same naming the database file, for start-up and
//! the commands.

use std::sync::Arc;
use std::time::Duration;

use super::file::FileChange;

/// A mirror operation that failed; nothing it would have written was written.
#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    /// SQLite refused: opening, reading or writing.
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    /// A batch of writes could not begin its transaction; every write in it shares the error.
    #[error("{0}")]
    Begin(#[source] Arc<rusqlite::Error>),
    /// A batch of writes could not commit; every write in it shares the error.
    #[error("commit failed: {0}")]
    Commit(#[source] Arc<rusqlite::Error>),
    /// The file's schema is newer than this build.
    #[error("schema version {found} is newer than this build understands ({supported}); upgrade clerk-gateway")]
    NewerSchema {
        /// The file's `user_version`.
        found: i64,
        /// This build's.
        supported: i64,
    },
    /// A read-only open found a schema other than this build's.
    #[error("schema version {found}, this build reads {supported}")]
    OtherSchema {
        /// The file's `user_version`.
        found: i64,
        /// This build's.
        supported: i64,
    },
    /// A migration failed (and was rolled back).
    #[error("migration {version}: {source}")]
    Migration {
        /// The version it would have brought the schema to.
        version: i64,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// The database would not switch to WAL.
    #[error("cannot switch to WAL journal mode (got {mode})")]
    NotWal {
        /// The journal mode SQLite reported.
        mode: String,
    },
    /// A read-only open of a file that does not exist.
    #[error("no such file (has the gateway run with this config?)")]
    Missing,
    /// `:memory:` could not get its temporary directory.
    #[error("temporary directory: {0}")]
    TempDir(#[source] std::io::Error),
    /// The opened database file could not be looked at.
    #[error("cannot look at the database file: {0}")]
    Stat(#[source] std::io::Error),
    /// The writer thread could not be started.
    #[error("cannot start the mirror writer: {0}")]
    WriterThread(#[source] std::io::Error),
    /// The writer thread is gone.
    #[error("the mirror writer has stopped")]
    WriterStopped,
    /// The configured path no longer names the file the writer has open: what it commits
    /// would be lost at the next restart, so nothing is acknowledged.
    #[error("{0}; writes are refused until the gateway restarts")]
    FileChanged(#[from] FileChange),
    /// The writer did not answer a health probe in time (a lock held elsewhere, a slow disk).
    #[error("the mirror writer did not answer within {} ms", waited.as_millis())]
    Unresponsive {
        /// How long the probe waited.
        waited: Duration,
    },
    /// A blocking task did not finish (panicked or was cancelled).
    #[error("a mirror task did not finish: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// A thread panicked while holding the reader pool.
    #[error("the mirror's reader pool is poisoned")]
    Poisoned,
    /// Postgres refused, or could not be reached.
    #[error("postgres: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// The Postgres database has not been migrated yet (it could not be reached at start).
    #[error("not migrated yet: {0}")]
    NotMigrated(String),
    /// No Postgres connection could be had from the pool.
    #[error("postgres pool: {0}")]
    Pool(String),
    /// A Postgres migration failed (and was rolled back).
    #[error("migration {version}: {source}")]
    PgMigration {
        /// The version it would have brought the schema to.
        version: i64,
        /// Postgres's error.
        #[source]
        source: tokio_postgres::Error,
    },
}

impl MirrorError {
    /// Whether the mirror's database cannot be reached (a shared Postgres that is down or
    /// not migrated yet), as opposed to refusing the write: worth a 503 and a retry.
    pub fn is_unreachable(&self) -> bool {
        match self {
            MirrorError::Pool(_) | MirrorError::NotMigrated(_) => true,
            // No SQLSTATE: the connection failed; class 08 is a connection exception, 57P0x
            // a server shutting down or starting (failover, restart).
            MirrorError::Postgres(error) => {
                error.code().is_none_or(|code| code.code().starts_with("08") || code.code().starts_with("57P"))
            }
            _ => false,
        }
    }
}

/// A mirror failure about a named database file.
#[derive(Debug, thiserror::Error)]
#[error("mirror database {path}: {source}")]
pub struct FileError {
    /// The database path as configured.
    pub path: String,
    /// What went wrong.
    #[source]
    pub source: MirrorError,
}

impl FileError {
    /// `source`, about the file at `path`.
    pub fn new(path: impl Into<String>, source: impl Into<MirrorError>) -> Self {
        FileError { path: path.into(), source: source.into() }
    }
}
