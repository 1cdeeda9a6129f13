//! The mirror in Postgres, for fleets of replicas sharing one database (`[mirror] url`):
//! the connection pool and its limits, and each mirror operation as one transaction over
//! `pg_store`'s statements. A delivery id is claimed by `INSERT … ON CONFLICT DO NOTHING`
//! in the transaction that applies it, so replicas given the same delivery apply it once;
//! what a transaction changes is announced on `pg_feed` as it commits. Schema and
//! migrations are `pg_schema`'s.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio::sync::mpsc;
use tokio_postgres::{NoTls, Transaction};

use super::delivery::{Applied, Delivery, Effect, FleetEvent, Write};
use super::error::MirrorError;
use super::pg_feed::{announce, listen};
use super::pg_schema::{Migrated, migrate, migrate_until_done, pooled};
use super::pg_store::{
    count, delete_user, list_users, live_revocations, memberships_of, read_user, revoke, tombstone, upsert_membership,
    upsert_org, upsert_user,
};
use super::records::{MembershipRecord, UserRecord};
use super::store::{StoredUser, Upsert};
use super::writer::{BatchCounts, DELIVERY_RETENTION};
use crate::clock::{self, Clock};

/// Connections kept per replica.
const POOL_SIZE: usize = 16;
/// How often old delivery ids and expired revocations are pruned.
const PRUNE_EVERY_MS: i64 = 10 * 60 * 1000;
/// How long connecting, or waiting for a pooled connection, may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Server-side limits for the gateway's sessions: a statement, a lock wait, and a
/// transaction left idle (a replica that died mid-transaction must not hold the others'
/// locks), in ms.
const SESSION_OPTIONS: &str =
    "-c statement_timeout=10000 -c lock_timeout=5000 -c idle_in_transaction_session_timeout=30000";

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
    /// in the background (100 ms doubling to 5 s), and until they have run every operation
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
                until_ms: now_ms.saturating_add(clock::millis(self.revocation_retention)),
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
                let until_ms = now_ms.saturating_add(clock::millis(self.revocation_retention));
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
                let until_ms = now_ms.saturating_add(clock::millis(self.revocation_retention));
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
        let until_ms = now_ms.saturating_add(clock::millis(self.revocation_retention));
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
        memberships_of(&**self.client().await?, user_id).await
    }

    /// Revocations still in force at `now_ms`: `(session id, expires at)`.
    ///
    /// # Errors
    /// `MirrorError` when the query fails.
    pub async fn live_revocations(&self, now_ms: i64) -> Result<Vec<(String, i64)>, MirrorError> {
        live_revocations(&**self.client().await?, now_ms).await
    }

    /// Live users in id order, `limit` from `offset`.
    ///
    /// # Errors
    /// `MirrorError` when the query fails.
    pub async fn users(&self, limit: u64, offset: u64) -> Result<Vec<UserRecord>, MirrorError> {
        list_users(&**self.client().await?, limit, offset).await
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
        let before = now_ms - clock::millis(DELIVERY_RETENTION);
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
