//! The mirror's schema as an ordered list of migrations; `PRAGMA user_version` records how
//! many have run. Append new migrations; never edit one that has shipped.

use rusqlite::Connection;

use super::error::MirrorError;

/// Migration `i` brings the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: users, organizations, memberships, processed deliveries, revoked sessions.
    "CREATE TABLE users (
        id               TEXT PRIMARY KEY,
        primary_email    TEXT,
        username         TEXT,
        first_name       TEXT,
        last_name        TEXT,
        image_url        TEXT,
        public_metadata  TEXT NOT NULL DEFAULT '{}',
        private_metadata TEXT NOT NULL DEFAULT '{}',
        unsafe_metadata  TEXT NOT NULL DEFAULT '{}',
        created_at       INTEGER,
        updated_at       INTEGER NOT NULL,
        deleted          INTEGER NOT NULL DEFAULT 0
    ) STRICT;
    CREATE TABLE organizations (
        id               TEXT PRIMARY KEY,
        name             TEXT,
        slug             TEXT,
        image_url        TEXT,
        public_metadata  TEXT NOT NULL DEFAULT '{}',
        private_metadata TEXT NOT NULL DEFAULT '{}',
        created_at       INTEGER,
        updated_at       INTEGER NOT NULL,
        deleted          INTEGER NOT NULL DEFAULT 0
    ) STRICT;
    CREATE TABLE memberships (
        id              TEXT PRIMARY KEY,
        org_id          TEXT NOT NULL DEFAULT '',
        user_id         TEXT NOT NULL DEFAULT '',
        role            TEXT NOT NULL DEFAULT '',
        permissions     TEXT NOT NULL DEFAULT '[]',
        public_metadata TEXT NOT NULL DEFAULT '{}',
        created_at      INTEGER,
        updated_at      INTEGER NOT NULL,
        deleted         INTEGER NOT NULL DEFAULT 0
    ) STRICT;
    CREATE INDEX memberships_user ON memberships (user_id);
    CREATE INDEX memberships_org ON memberships (org_id);
    CREATE TABLE webhook_deliveries (
        svix_id     TEXT PRIMARY KEY,
        event_type  TEXT NOT NULL,
        received_at INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX webhook_deliveries_received_at ON webhook_deliveries (received_at);
    CREATE TABLE revoked_sessions (
        session_id TEXT PRIMARY KEY,
        user_id    TEXT,
        revoked_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX revoked_sessions_expires_at ON revoked_sessions (expires_at);",
    // 2: the row readiness probes write, proving a write round trip reaches the file.
    "CREATE TABLE gateway_health (
        id         INTEGER PRIMARY KEY CHECK (id = 1),
        checked_at INTEGER NOT NULL
    ) STRICT;",
];

/// The schema version this build expects.
pub fn latest_version() -> i64 {
    MIGRATIONS.len() as i64
}

/// Runs every migration the database has not seen, each in its own transaction.
///
/// # Errors
/// `NewerSchema` when the database is newer than this build, `Migration` when one fails.
pub fn migrate(conn: &mut Connection) -> Result<(), MirrorError> {
    let current = user_version(conn)?;
    if current > latest_version() {
        return Err(MirrorError::NewerSchema { found: current, supported: latest_version() });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(usize::try_from(current).unwrap_or(0)) {
        let version = index as i64 + 1;
        let tx = conn.transaction()?;
        tx.execute_batch(sql).map_err(|source| MirrorError::Migration { version, source })?;
        tx.pragma_update(None, "user_version", version)?;
        tx.commit()?;
    }
    Ok(())
}

/// The schema version recorded in the file.
///
/// # Errors
/// SQLite's error when the file cannot be read.
pub fn user_version(conn: &Connection) -> Result<i64, MirrorError> {
    Ok(conn.query_row("PRAGMA user_version", [], |row| row.get(0))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_run_once_and_record_their_version() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        migrate(&mut conn).unwrap();
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(version, latest_version());
        conn.execute("INSERT INTO users (id, updated_at) VALUES ('user_1', 1)", []).unwrap();
    }

    #[test]
    fn a_newer_database_is_refused() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", 999).unwrap();
        assert!(migrate(&mut conn).unwrap_err().to_string().contains("newer"));
    }
}
