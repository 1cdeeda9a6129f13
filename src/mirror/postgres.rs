//! The mirror in Postgres, for fleets of replicas sharing one database (`[mirror] url`):
//! the same tables as SQLite's, named `clerk_*`, under versioned migrations that replicas
//! run one at a time (an advisory lock), and the same write rules, enforced in the
//! database so that replicas applying the same or conflicting deliveries at once converge:
//! a delivery id is claimed by `INSERT … ON CONFLICT DO NOTHING` in the transaction that
//! applies it, and each ordered row is read `FOR UPDATE` before it is judged. Every
//! revocation and user change is announced with `NOTIFY` in the transaction that commits
//! it; `subscribe` is the feed of those announcements, reconnecting when cut.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, GenericClient, NoTls, Row, Transaction};

use super::delivery::{Applied, Delivery, Effect, FleetEvent, Write};
use super::error::MirrorError;
use super::records::{MembershipRecord, OrgRecord, UserRecord};
use super::store::{StoredUser, Upsert};
use super::writer::{BatchCounts, DELIVERY_RETENTION};
use crate::clock::Clock;

/// Connections kept per replica.
const POOL_SIZE: usize = 16;
/// How often old delivery ids and expired revocations are pruned.
const PRUNE_EVERY_MS: i64 = 10 * 60 * 1000;
/// The advisory lock migrations run under (any constant shared by every replica).
const MIGRATION_LOCK: i64 = 0x636c_6572_6b67_7701;
/// The channel revocations and user changes are announced on.
const CHANNEL: &str = "clerk_gateway";
/// Longest wait between two attempts to reconnect the change feed or migrate.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How long connecting, or waiting for a pooled connection, may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Server-side limits for the gateway's sessions: a statement, a lock wait, and a
/// transaction left idle (a replica that died mid-transaction must not hold the others'
/// locks), in ms.
const SESSION_OPTIONS: &str =
    "-c statement_timeout=10000 -c lock_timeout=5000 -c idle_in_transaction_session_timeout=30000";

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
pub fn latest_version() -> i64 {
    MIGRATIONS.len() as i64
}

/// The mirror in one Postgres database.
pub struct PgMirror {
    pool: Pool,
    /// For the change feed's own connection.
    config: tokio_postgres::Config,
    /// The URL without its password, for logs and errors.
    display: String,
    clock: Clock,
    revocation_retention: Duration,
    last_prune_ms: AtomicI64,
    migrated: Arc<Migrated>,
}

impl PgMirror {
    /// Connects to `url` and runs the migrations the database has not seen.
    ///
    /// # Errors
    /// `MirrorError` when the URL is malformed, the database cannot be reached, its schema
    /// is newer than this build, or a migration fails.
    ///
    /// A database that cannot be reached yet is not an error: the migrations are retried
    /// in the background (100 ms doubling to 30 s), and until they have run every operation
    /// fails with the reason (`/readyz` says it, webhooks are answered 5xx).
    pub async fn connect(url: &str, clock: Clock, revocation_retention: Duration) -> Result<PgMirror, MirrorError> {
        let mut config: tokio_postgres::Config = url.parse().map_err(MirrorError::Postgres)?;
        config
            .connect_timeout(CONNECT_TIMEOUT)
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30))
            .options(SESSION_OPTIONS);
        let shown = display_url(&config);
        let manager =
            Manager::from_config(config.clone(), NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(CONNECT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| MirrorError::Pool(e.to_string()))?;
        let migrated = Arc::new(Migrated::default());
        match migrate(&pool).await {
            Ok(()) => migrated.done.store(true, Ordering::Release),
            Err(error @ MirrorError::NewerSchema { .. }) => return Err(error),
            Err(error) => {
                tracing::error!(%error, database = shown.as_str(), "cannot migrate the mirror yet; retrying");
                migrated.failed(&error);
                tokio::spawn(migrate_until_done(pool.clone(), migrated.clone()));
            }
        }
        let last_prune_ms = AtomicI64::new(i64::MIN);
        Ok(PgMirror { pool, config, display: shown, clock, revocation_retention, last_prune_ms, migrated })
    }

    /// `postgres://user@host:port/db`, never the password.
    pub fn display(&self) -> &str {
        &self.display
    }

    /// A pooled connection to a migrated database.
    async fn client(&self) -> Result<deadpool_postgres::Object, MirrorError> {
        if !self.migrated.done.load(Ordering::Acquire) {
            let why = self.migrated.why.lock().map(|w| w.clone()).unwrap_or_default();
            return Err(MirrorError::NotMigrated(why));
        }
        pooled(&self.pool).await
    }
}

async fn pooled(pool: &Pool) -> Result<deadpool_postgres::Object, MirrorError> {
    pool.get().await.map_err(|e| MirrorError::Pool(e.to_string()))
}

/// Whether the migrations have run, and why they have not.
#[derive(Default)]
struct Migrated {
    done: AtomicBool,
    why: Mutex<String>,
}

impl Migrated {
    fn failed(&self, error: &MirrorError) {
        if let Ok(mut why) = self.why.lock() {
            *why = error.to_string();
        }
    }
}

/// Retries the migrations until they run (or a newer schema makes it pointless).
async fn migrate_until_done(pool: Pool, migrated: Arc<Migrated>) {
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
async fn migrate(pool: &Pool) -> Result<(), MirrorError> {
    {
        let mut client = pooled(pool).await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS clerk_gateway_schema (version bigint NOT NULL)").await?;
        let current: i64 =
            tx.query_one("SELECT coalesce(max(version), 0) FROM clerk_gateway_schema", &[]).await?.get(0);
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
}

impl PgMirror {
    /// A write round trip: the health row, committed.
    ///
    /// # Errors
    /// `MirrorError` when the database cannot be written.
    pub async fn probe(&self) -> Result<(), MirrorError> {
        let client = self.client().await?;
        let sql = "INSERT INTO clerk_gateway_health (id, checked_at) VALUES (1, $1)
             ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at";
        client.execute(sql, &[&self.clock.now_ms()]).await?;
        Ok(())
    }

    /// Applies a verified delivery in one transaction, claiming its id first: a replica
    /// applying the same delivery at the same moment waits on the claim, then finds it
    /// taken and answers `Duplicate`.
    ///
    /// # Errors
    /// `MirrorError` when the database refuses; nothing was applied.
    pub async fn apply(&self, delivery: &Delivery) -> Result<Applied, MirrorError> {
        let now_ms = self.clock.now_ms();
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let claim = "INSERT INTO clerk_webhook_deliveries (svix_id, event_type, received_at) VALUES ($1, $2, $3)
             ON CONFLICT (svix_id) DO NOTHING";
        if tx.execute(claim, &[&delivery.id, &delivery.event_type, &now_ms]).await? == 0 {
            return Ok(Applied::Duplicate);
        }
        let effect = self.write(&tx, delivery, now_ms).await?;
        let announced = match (&effect, &delivery.write) {
            (Effect::SessionRevoked { session_id, until_ms }, _) => {
                Some(FleetEvent::Revoked { id: session_id.clone(), until_ms: *until_ms })
            }
            (Effect::UserChanged(user), _) => Some(FleetEvent::User { id: user.id.clone() }),
            (Effect::UserDeleted(id), _) => Some(FleetEvent::User { id: id.clone() }),
            (_, Write::RevokeMachineToken { id }) => Some(FleetEvent::Revoked {
                id: id.clone(),
                until_ms: now_ms.saturating_add(ms(self.revocation_retention)),
            }),
            _ => None,
        };
        if let Some(event) = announced {
            announce(&tx, &event).await?;
        }
        tx.commit().await?;
        self.prune_if_due(now_ms).await;
        Ok(Applied::Applied(effect))
    }

    async fn write(&self, tx: &Transaction<'_>, d: &Delivery, now_ms: i64) -> Result<Effect, MirrorError> {
        let ordered = |upsert: Upsert, effect: Effect| if upsert.changed() { effect } else { Effect::Ignored(upsert) };
        Ok(match &d.write {
            Write::UpsertUser(user) => {
                ordered(upsert_user(tx, user).await?, Effect::UserChanged(Box::new(user.clone())))
            }
            Write::DeleteUser { id } => {
                delete_user(tx, id, d.at_ms).await?;
                Effect::UserDeleted(id.clone())
            }
            Write::RevokeSession { session_id, user_id } => {
                let until_ms = now_ms.saturating_add(ms(self.revocation_retention));
                revoke(tx, session_id, user_id.as_deref(), now_ms, until_ms).await?;
                Effect::SessionRevoked { session_id: session_id.clone(), until_ms }
            }
            Write::UpsertOrg(org) => ordered(upsert_org(tx, org).await?, Effect::Stored),
            Write::DeleteOrg { id } => {
                tombstone(tx, "clerk_organizations", id, d.at_ms, ", public_metadata = '{}', private_metadata = '{}'")
                    .await?;
                tx.execute("UPDATE clerk_memberships SET deleted = true WHERE org_id = $1", &[id]).await?;
                Effect::Stored
            }
            Write::UpsertMembership(m) => ordered(upsert_membership(tx, m).await?, Effect::Stored),
            Write::DeleteMembership(m) => {
                tombstone(tx, "clerk_memberships", &m.id, m.updated_at, "").await?;
                let sql = "UPDATE clerk_memberships SET org_id = $2, user_id = $3, role = $4 WHERE id = $1";
                tx.execute(sql, &[&m.id, &m.org_id, &m.user_id, &m.role]).await?;
                Effect::Stored
            }
            Write::RevokeMachineToken { id } => {
                // Kept with the sessions' revocations, so a replica that starts, or whose
                // feed was cut, reloads it too.
                let until_ms = now_ms.saturating_add(ms(self.revocation_retention));
                revoke(tx, id, None, now_ms, until_ms).await?;
                Effect::NotMirrored
            }
            Write::Nothing => Effect::NotMirrored,
        })
    }

    /// Upserts a page of users under the ordering rule, in one transaction.
    ///
    /// # Errors
    /// `MirrorError` when the database refuses.
    pub async fn upsert_users(&self, users: &[UserRecord]) -> Result<BatchCounts, MirrorError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let mut counts = BatchCounts::default();
        for user in users {
            match upsert_user(&tx, user).await? {
                Upsert::Inserted => counts.inserted += 1,
                Upsert::Updated => counts.updated += 1,
                Upsert::Same | Upsert::Stale | Upsert::Tombstoned => {
                    counts.unchanged += 1;
                    continue;
                }
            }
            announce(&tx, &FleetEvent::User { id: user.id.clone() }).await?;
            counts.changed.push(user.clone());
        }
        tx.commit().await?;
        Ok(counts)
    }

    /// Tombstones live users last updated before `started_at_ms` that a complete sweep did
    /// not see, unless that is most of the mirror (a wrong key far likelier than a mass
    /// deletion).
    ///
    /// # Errors
    /// `MirrorError` when the database refuses.
    pub async fn tombstone_missing(
        &self,
        seen: &HashSet<String>,
        started_at_ms: i64,
    ) -> Result<Vec<String>, MirrorError> {
        let now_ms = self.clock.now_ms();
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // Locked in id order (no deadlock with another replica's sweep), and judged under the
        // lock: a webhook that updated a user since the sweep began keeps it.
        let sql = "SELECT id FROM clerk_users WHERE NOT deleted AND updated_at < $1 ORDER BY id FOR UPDATE";
        let rows = tx.query(sql, &[&started_at_ms]).await?;
        let missing: Vec<String> = rows.iter().map(|r| r.get::<_, String>(0)).filter(|id| !seen.contains(id)).collect();
        let live = count(&*tx).await? as usize;
        if missing.len() > 10 && missing.len() * 2 > live {
            tracing::warn!(missing = missing.len(), live, "sweep missed most users; not tombstoning any");
            return Ok(Vec::new());
        }
        let mut gone = Vec::new();
        for id in missing {
            if delete_user(&tx, &id, now_ms).await? {
                announce(&tx, &FleetEvent::User { id: id.clone() }).await?;
                gone.push(id);
            }
        }
        tx.commit().await?;
        Ok(gone)
    }

    /// Revokes a session (logout) for the retention; returns when it ends, ms.
    ///
    /// # Errors
    /// `MirrorError` when the database refuses.
    pub async fn revoke_session(&self, session_id: &str, user_id: Option<&str>) -> Result<i64, MirrorError> {
        let now_ms = self.clock.now_ms();
        let until_ms = now_ms.saturating_add(ms(self.revocation_retention));
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        revoke(&*tx, session_id, user_id, now_ms, until_ms).await?;
        announce(&tx, &FleetEvent::Revoked { id: session_id.to_owned(), until_ms }).await?;
        tx.commit().await?;
        Ok(until_ms)
    }

    /// One user, live or tombstoned.
    ///
    /// # Errors
    /// `MirrorError` when the query fails.
    pub async fn user(&self, id: &str) -> Result<Option<StoredUser>, MirrorError> {
        let client = self.client().await?;
        read_user(&**client, id).await
    }

    /// A user's live memberships.
    ///
    /// # Errors
    /// `MirrorError` when the query fails.
    pub async fn memberships(&self, user_id: &str) -> Result<Vec<MembershipRecord>, MirrorError> {
        let client = self.client().await?;
        let sql = "SELECT id, org_id, user_id, role, permissions, public_metadata, created_at, updated_at
             FROM clerk_memberships WHERE user_id = $1 AND NOT deleted ORDER BY org_id";
        let rows = client.query(sql, &[&user_id]).await?;
        Ok(rows.iter().map(membership_from_row).collect())
    }

    /// Revocations still in force at `now_ms`: `(session id, expires at)`.
    ///
    /// # Errors
    /// `MirrorError` when the query fails.
    pub async fn live_revocations(&self, now_ms: i64) -> Result<Vec<(String, i64)>, MirrorError> {
        let client = self.client().await?;
        let sql = "SELECT session_id, expires_at FROM clerk_revoked_sessions WHERE expires_at > $1";
        let rows = client.query(sql, &[&now_ms]).await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// Live users in id order, `limit` from `offset`.
    ///
    /// # Errors
    /// `MirrorError` when the query fails.
    pub async fn users(&self, limit: u64, offset: u64) -> Result<Vec<UserRecord>, MirrorError> {
        let client = self.client().await?;
        let sql = "SELECT id, primary_email, username, first_name, last_name, image_url, public_metadata,
                private_metadata, unsafe_metadata, created_at, updated_at, deleted
             FROM clerk_users WHERE NOT deleted ORDER BY id LIMIT $1 OFFSET $2";
        let (limit, offset) = (i64::try_from(limit).unwrap_or(i64::MAX), i64::try_from(offset).unwrap_or(i64::MAX));
        let rows = client.query(sql, &[&limit, &offset]).await?;
        Ok(rows
            .iter()
            .filter_map(|row| match user_from_row(row) {
                StoredUser::Live(user) => Some(*user),
                StoredUser::Deleted => None,
            })
            .collect())
    }

    /// Number of live users.
    ///
    /// # Errors
    /// `MirrorError` when the query fails.
    pub async fn count_users(&self) -> Result<u64, MirrorError> {
        let client = self.client().await?;
        count(&**client).await
    }

    /// The feed of what every replica commits: each announcement as it is committed, and
    /// `Resync` each time the feed (re)connects, after which nothing is missed until it is
    /// cut again. Reconnects with backoff for as long as the receiver is kept.
    pub fn subscribe(&self) -> mpsc::Receiver<FleetEvent> {
        let (events, receiver) = mpsc::channel(1024);
        tokio::spawn(listen(self.config.clone(), self.migrated.clone(), events));
        receiver
    }

    /// Drops delivery ids past their retention and expired revocations, at most every ten
    /// minutes per replica.
    async fn prune_if_due(&self, now_ms: i64) {
        let last = self.last_prune_ms.load(Ordering::Relaxed);
        if now_ms.saturating_sub(last) < PRUNE_EVERY_MS
            || self.last_prune_ms.compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed).is_err()
        {
            return;
        }
        let before = now_ms - ms(DELIVERY_RETENTION);
        let pruned = async {
            let client = self.client().await?;
            client.execute("DELETE FROM clerk_webhook_deliveries WHERE received_at < $1", &[&before]).await?;
            client.execute("DELETE FROM clerk_revoked_sessions WHERE expires_at <= $1", &[&now_ms]).await?;
            Ok::<_, MirrorError>(())
        };
        if let Err(error) = pruned.await {
            tracing::warn!(%error, "mirror prune failed");
        }
    }
}

/// Announces `event` to every replica when `tx` commits (Postgres holds a transaction's
/// notifications until then, and drops them if it rolls back).
async fn announce(tx: &Transaction<'_>, event: &FleetEvent) -> Result<(), MirrorError> {
    let payload = serde_json::to_string(event).unwrap_or_default();
    tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &payload]).await?;
    Ok(())
}

/// The change feed: `LISTEN` on a connection of its own, each notification passed on, and
/// a `Resync` after every (re)connection; on a cut, reconnects with backoff.
async fn listen(config: tokio_postgres::Config, migrated: Arc<Migrated>, events: mpsc::Sender<FleetEvent>) {
    // The Resync after the first connection must find the tables there.
    while !migrated.done.load(Ordering::Acquire) {
        if events.is_closed() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut backoff = Duration::from_millis(100);
    while !events.is_closed() {
        match config.connect(NoTls).await {
            Ok((client, mut connection)) => {
                let (notes, mut received) = mpsc::unbounded_channel::<String>();
                let driver = tokio::spawn(async move {
                    while let Some(message) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                        match message {
                            Ok(AsyncMessage::Notification(note)) => drop(notes.send(note.payload().to_owned())),
                            Ok(_) => {}
                            Err(error) => {
                                tracing::warn!(%error, "the mirror's change feed was cut");
                                break;
                            }
                        }
                    }
                });
                if client.batch_execute(&format!("LISTEN {CHANNEL}")).await.is_ok() {
                    backoff = Duration::from_millis(100);
                    if events.send(FleetEvent::Resync).await.is_err() {
                        return;
                    }
                    while let Some(payload) = received.recv().await {
                        match serde_json::from_str::<FleetEvent>(&payload) {
                            Ok(event) => {
                                if events.send(event).await.is_err() {
                                    return;
                                }
                            }
                            Err(error) => tracing::warn!(%error, "unreadable announcement on the mirror's change feed"),
                        }
                    }
                }
                driver.abort();
            }
            Err(error) => tracing::warn!(%error, "cannot reach the mirror's change feed; retrying"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// The row's `(updated_at, deleted)`, locked until the transaction ends.
async fn locked_version(tx: &Transaction<'_>, table: &str, id: &str) -> Result<Option<(i64, bool)>, MirrorError> {
    let sql = format!("SELECT updated_at, deleted FROM {table} WHERE id = $1 FOR UPDATE");
    Ok(tx.query_opt(&sql, &[&id]).await?.map(|r| (r.get(0), r.get(1))))
}

/// The verdict on an ordered upsert of a row at `updated_at`.
async fn verdict(tx: &Transaction<'_>, table: &str, id: &str, updated_at: i64) -> Result<Upsert, MirrorError> {
    Ok(match locked_version(tx, table, id).await? {
        None => Upsert::Inserted,
        Some((_, true)) => Upsert::Tombstoned,
        Some((stored, false)) if updated_at < stored => Upsert::Stale,
        Some(_) => Upsert::Updated,
    })
}

/// Marks a row deleted (creating the tombstone if it was never seen); whether a live row
/// went away. `clear` blanks the personal fields.
async fn tombstone(tx: &Transaction<'_>, table: &str, id: &str, at_ms: i64, clear: &str) -> Result<bool, MirrorError> {
    let live = matches!(locked_version(tx, table, id).await?, Some((_, false)));
    let sql = format!(
        "INSERT INTO {table} (id, updated_at, deleted) VALUES ($1, $2, true)
         ON CONFLICT (id) DO UPDATE SET deleted = true, updated_at = greatest({table}.updated_at, excluded.updated_at){clear}"
    );
    tx.execute(&sql, &[&id, &at_ms]).await?;
    Ok(live)
}

/// The verdict once more when an upsert judged `Inserted` wrote nothing: another replica
/// inserted the row meanwhile, and the ordering rule (in the statement) kept theirs.
async fn rejudged(
    tx: &Transaction<'_>,
    table: &str,
    id: &str,
    updated_at: i64,
    written: u64,
    decision: Upsert,
) -> Result<Upsert, MirrorError> {
    if written > 0 {
        return Ok(decision);
    }
    Ok(match verdict(tx, table, id, updated_at).await? {
        Upsert::Tombstoned => Upsert::Tombstoned,
        _ => Upsert::Stale,
    })
}

/// `value` without NUL characters, which Postgres text and jsonb cannot hold (SQLite can):
/// a user who puts one in their metadata must not block every delivery about them.
fn without_nul(value: &Value) -> Value {
    match value {
        Value::String(s) if s.contains('\0') => Value::String(s.replace('\0', "")),
        Value::Array(items) => Value::Array(items.iter().map(without_nul).collect()),
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.replace('\0', ""), without_nul(v))).collect()),
        other => other.clone(),
    }
}

fn text_without_nul(text: &Option<String>) -> Option<String> {
    text.as_ref().map(|t| t.replace('\0', ""))
}

async fn upsert_user(tx: &Transaction<'_>, u: &UserRecord) -> Result<Upsert, MirrorError> {
    let stored = UserRecord {
        id: u.id.clone(),
        primary_email: text_without_nul(&u.primary_email),
        username: text_without_nul(&u.username),
        first_name: text_without_nul(&u.first_name),
        last_name: text_without_nul(&u.last_name),
        image_url: text_without_nul(&u.image_url),
        public_metadata: without_nul(&u.public_metadata),
        private_metadata: without_nul(&u.private_metadata),
        unsafe_metadata: without_nul(&u.unsafe_metadata),
        created_at: u.created_at,
        updated_at: u.updated_at,
    };
    let u = &stored;
    let mut decision = verdict(tx, "clerk_users", &u.id, u.updated_at).await?;
    if decision == Upsert::Updated && read_user(tx, &u.id).await? == Some(StoredUser::Live(Box::new(u.clone()))) {
        decision = Upsert::Same;
    }
    if decision.changed() {
        let sql = "INSERT INTO clerk_users (id, primary_email, username, first_name, last_name, image_url,
                public_metadata, private_metadata, unsafe_metadata, created_at, updated_at, deleted)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, false)
             ON CONFLICT (id) DO UPDATE SET primary_email = excluded.primary_email, username = excluded.username,
                first_name = excluded.first_name, last_name = excluded.last_name, image_url = excluded.image_url,
                public_metadata = excluded.public_metadata, private_metadata = excluded.private_metadata,
                unsafe_metadata = excluded.unsafe_metadata, created_at = excluded.created_at,
                updated_at = excluded.updated_at
             WHERE NOT clerk_users.deleted AND clerk_users.updated_at <= excluded.updated_at";
        let written = tx
            .execute(
                sql,
                &[
                    &u.id,
                    &u.primary_email,
                    &u.username,
                    &u.first_name,
                    &u.last_name,
                    &u.image_url,
                    &u.public_metadata,
                    &u.private_metadata,
                    &u.unsafe_metadata,
                    &u.created_at,
                    &u.updated_at,
                ],
            )
            .await?;
        decision = rejudged(tx, "clerk_users", &u.id, u.updated_at, written, decision).await?;
    }
    Ok(decision)
}

async fn delete_user(tx: &Transaction<'_>, id: &str, at_ms: i64) -> Result<bool, MirrorError> {
    let clear = ", primary_email = NULL, username = NULL, first_name = NULL, last_name = NULL, image_url = NULL,
           public_metadata = '{}', private_metadata = '{}', unsafe_metadata = '{}'";
    tombstone(tx, "clerk_users", id, at_ms, clear).await
}

async fn upsert_org(tx: &Transaction<'_>, o: &OrgRecord) -> Result<Upsert, MirrorError> {
    let decision = verdict(tx, "clerk_organizations", &o.id, o.updated_at).await?;
    if decision.changed() {
        let sql = "INSERT INTO clerk_organizations (id, name, slug, image_url, public_metadata, private_metadata,
                created_at, updated_at, deleted) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, false)
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, slug = excluded.slug, image_url = excluded.image_url,
                public_metadata = excluded.public_metadata, private_metadata = excluded.private_metadata,
                created_at = excluded.created_at, updated_at = excluded.updated_at
             WHERE NOT clerk_organizations.deleted AND clerk_organizations.updated_at <= excluded.updated_at";
        let values: [&(dyn tokio_postgres::types::ToSql + Sync); 8] = [
            &o.id,
            &o.name,
            &o.slug,
            &o.image_url,
            &o.public_metadata,
            &o.private_metadata,
            &o.created_at,
            &o.updated_at,
        ];
        let written = tx.execute(sql, &values).await?;
        return rejudged(tx, "clerk_organizations", &o.id, o.updated_at, written, decision).await;
    }
    Ok(decision)
}

async fn upsert_membership(tx: &Transaction<'_>, m: &MembershipRecord) -> Result<Upsert, MirrorError> {
    let decision = verdict(tx, "clerk_memberships", &m.id, m.updated_at).await?;
    if decision.changed() {
        let sql = "INSERT INTO clerk_memberships (id, org_id, user_id, role, permissions, public_metadata,
                created_at, updated_at, deleted) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, false)
             ON CONFLICT (id) DO UPDATE SET org_id = excluded.org_id, user_id = excluded.user_id, role = excluded.role,
                permissions = excluded.permissions, public_metadata = excluded.public_metadata,
                created_at = excluded.created_at, updated_at = excluded.updated_at
             WHERE NOT clerk_memberships.deleted AND clerk_memberships.updated_at <= excluded.updated_at";
        let permissions = Value::from(m.permissions.clone());
        let values: [&(dyn tokio_postgres::types::ToSql + Sync); 8] =
            [&m.id, &m.org_id, &m.user_id, &m.role, &permissions, &m.public_metadata, &m.created_at, &m.updated_at];
        let written = tx.execute(sql, &values).await?;
        return rejudged(tx, "clerk_memberships", &m.id, m.updated_at, written, decision).await;
    }
    Ok(decision)
}

async fn revoke(
    client: &impl GenericClient,
    session_id: &str,
    user_id: Option<&str>,
    at_ms: i64,
    until_ms: i64,
) -> Result<(), MirrorError> {
    let sql = "INSERT INTO clerk_revoked_sessions (session_id, user_id, revoked_at, expires_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (session_id) DO UPDATE
         SET expires_at = greatest(clerk_revoked_sessions.expires_at, excluded.expires_at)";
    client.execute(sql, &[&session_id, &user_id, &at_ms, &until_ms]).await?;
    Ok(())
}

async fn read_user(client: &impl GenericClient, id: &str) -> Result<Option<StoredUser>, MirrorError> {
    let sql = "SELECT id, primary_email, username, first_name, last_name, image_url, public_metadata, private_metadata,
                unsafe_metadata, created_at, updated_at, deleted FROM clerk_users WHERE id = $1";
    Ok(client.query_opt(sql, &[&id]).await?.map(|row| user_from_row(&row)))
}

fn user_from_row(row: &Row) -> StoredUser {
    if row.get::<_, bool>(11) {
        return StoredUser::Deleted;
    }
    StoredUser::Live(Box::new(UserRecord {
        id: row.get(0),
        primary_email: row.get(1),
        username: row.get(2),
        first_name: row.get(3),
        last_name: row.get(4),
        image_url: row.get(5),
        public_metadata: row.get(6),
        private_metadata: row.get(7),
        unsafe_metadata: row.get(8),
        created_at: row.get(9),
        updated_at: row.get(10),
    }))
}

fn membership_from_row(r: &Row) -> MembershipRecord {
    let permissions: Value = r.get(4);
    MembershipRecord {
        id: r.get(0),
        org_id: r.get(1),
        user_id: r.get(2),
        role: r.get(3),
        permissions: serde_json::from_value(permissions).unwrap_or_default(),
        public_metadata: r.get(5),
        created_at: r.get(6),
        updated_at: r.get(7),
    }
}

async fn count(client: &impl GenericClient) -> Result<u64, MirrorError> {
    let n: i64 = client.query_one("SELECT count(*) FROM clerk_users WHERE NOT deleted", &[]).await?.get(0);
    Ok(u64::try_from(n).unwrap_or(0))
}

/// `url` as logs may show it: its parts without the password (or a placeholder when it
/// does not parse).
pub fn redacted(url: &str) -> String {
    url.parse::<tokio_postgres::Config>().map_or_else(|_| "postgres://(unreadable url)".to_owned(), |c| display_url(&c))
}

/// `postgres://user@host:port/db`: what the config names, without the password.
fn display_url(config: &tokio_postgres::Config) -> String {
    let host = config.get_hosts().first().map_or_else(String::new, |h| match h {
        tokio_postgres::config::Host::Tcp(name) => name.clone(),
        tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
    });
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("");
    format!("postgres://{user}@{host}:{port}/{}", config.get_dbname().unwrap_or(""))
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
