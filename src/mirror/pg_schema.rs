//! The Postgres mirror's schema: the `clerk_*` tables as an ordered list of migrations,
//! recorded in `clerk_gateway_schema` and run one replica at a time under an advisory lock,
//! retried in the background while the database cannot be reached.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use deadpool_postgres::Pool;

use super::error::MirrorError;

/// The advisory lock migrations run under (any constant shared by every replica).
const MIGRATION_LOCK: i64 = 0x636c_6572_6b67_7701;
/// Longest wait between two attempts to migrate, or to reconnect the change feed.
pub(super) const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Migration `i` brings the schema from version `i` to `i + 1`. Append; never edit one
/// that has shipped: these are the tables a backend may read.
const MIGRATIONS: &[&str] = &["
    CREATE TABLE clerk_users (
        id               text PRIMARY KEY,
        primary_email    text,
        username         text,
        first_name       text,
        last_name        text,
        image_url        text,
        public_metadata  jsonb NOT NULL DEFAULT '{}',
        private_metadata jsonb NOT NULL DEFAULT '{}',
        unsafe_metadata  jsonb NOT NULL DEFAULT '{}',
        created_at       bigint,
        updated_at       bigint NOT NULL,
        deleted          boolean NOT NULL DEFAULT false
    );
    CREATE TABLE clerk_organizations (
        id               text PRIMARY KEY,
        name             text,
        slug             text,
        image_url        text,
        public_metadata  jsonb NOT NULL DEFAULT '{}',
        private_metadata jsonb NOT NULL DEFAULT '{}',
        created_at       bigint,
        updated_at       bigint NOT NULL,
        deleted          boolean NOT NULL DEFAULT false
    );
    CREATE TABLE clerk_memberships (
        id              text PRIMARY KEY,
        org_id          text NOT NULL DEFAULT '',
        user_id         text NOT NULL DEFAULT '',
        role            text NOT NULL DEFAULT '',
        permissions     jsonb NOT NULL DEFAULT '[]',
        public_metadata jsonb NOT NULL DEFAULT '{}',
        created_at      bigint,
        updated_at      bigint NOT NULL,
        deleted         boolean NOT NULL DEFAULT false
    );
    CREATE INDEX clerk_memberships_user ON clerk_memberships (user_id);
    CREATE INDEX clerk_memberships_org ON clerk_memberships (org_id);
    CREATE TABLE clerk_webhook_deliveries (
        svix_id     text PRIMARY KEY,
        event_type  text NOT NULL,
        received_at bigint NOT NULL
    );
    CREATE INDEX clerk_webhook_deliveries_received_at ON clerk_webhook_deliveries (received_at);
    CREATE TABLE clerk_revoked_sessions (
        session_id text PRIMARY KEY,
        user_id    text,
        revoked_at bigint NOT NULL,
        expires_at bigint NOT NULL
    );
    CREATE INDEX clerk_revoked_sessions_expires_at ON clerk_revoked_sessions (expires_at);
    CREATE TABLE clerk_gateway_health (
        id         integer PRIMARY KEY CHECK (id = 1),
        checked_at bigint NOT NULL
    );"];

/// The schema version this build expects.
pub(super) fn latest_version() -> i64 {
    MIGRATIONS.len() as i64
}

pub(super) async fn pooled(pool: &Pool) -> Result<deadpool_postgres::Object, MirrorError> {
    pool.get().await.map_err(|e| MirrorError::Pool(e.to_string()))
}

/// Whether the migrations have run, and why they have not.
#[derive(Default)]
pub(super) struct Migrated {
    /// The migrations have run.
    pub(super) done: AtomicBool,
    /// Why the last attempt failed.
    pub(super) why: Mutex<String>,
}

impl Migrated {
    /// Notes why an attempt failed.
    pub(super) fn failed(&self, error: &MirrorError) {
        if let Ok(mut why) = self.why.lock() {
            *why = error.to_string();
        }
    }
}

/// Retries the migrations until they run (or a newer schema makes it pointless).
pub(super) async fn migrate_until_done(pool: Pool, migrated: Arc<Migrated>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        tokio::time::sleep(backoff).await;
        match migrate(&pool).await {
            Ok(()) => {
                migrated.done.store(true, Ordering::Release);
                tracing::info!("the mirror's database is reachable and migrated");
                return;
            }
            Err(error) => {
                migrated.failed(&error);
                if matches!(error, MirrorError::NewerSchema { .. }) {
                    tracing::error!(%error, "the mirror's database has a newer schema; upgrade clerk-gateway");
                    return;
                }
            }
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Runs the migrations the database has not seen, one replica at a time.
pub(super) async fn migrate(pool: &Pool) -> Result<(), MirrorError> {
    let mut client = pooled(pool).await?;
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await?;
    // Created when missing (asked first, so Postgres logs no "already exists" notice).
    let exists: bool = tx.query_one("SELECT to_regclass('clerk_gateway_schema') IS NOT NULL", &[]).await?.get(0);
    if !exists {
        tx.batch_execute("CREATE TABLE clerk_gateway_schema (version bigint NOT NULL)").await?;
    }
    let current: i64 = tx.query_one("SELECT coalesce(max(version), 0) FROM clerk_gateway_schema", &[]).await?.get(0);
    if current > latest_version() {
        return Err(MirrorError::NewerSchema { found: current, supported: latest_version() });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(usize::try_from(current).unwrap_or(0)) {
        let version = index as i64 + 1;
        tx.batch_execute(sql).await.map_err(|source| MirrorError::PgMigration { version, source })?;
        tx.execute("INSERT INTO clerk_gateway_schema (version) VALUES ($1)", &[&version]).await?;
    }
    tx.commit().await?;
    Ok(())
}
