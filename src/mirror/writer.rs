//! The mirror's single writer: a dedicated thread that owns the write connection and
//! applies commands from a channel. Commands that queue up while a commit is running are
//! applied together in one transaction, each inside its own savepoint, so every delivery
//! is still atomic on its own and nobody waits for a commit per delivery.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{Connection, Transaction};
use tokio::sync::{mpsc, oneshot};

use super::delivery::{Applied, Delivery, Effect, Write};
use super::error::MirrorError;
use super::file::{FileChange, FileIdentity};
use super::records::UserRecord;
use super::store::{self, Upsert};
use crate::clock::Clock;

/// Delivery ids are remembered this long (Svix retries for about 27 hours; replays from the
/// dashboard can come later, so keep well beyond that).
pub const DELIVERY_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
/// How often old delivery ids and expired revocations are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(10 * 60);
/// Most commands applied in one transaction.
const MAX_BATCH: usize = 256;

/// Counts from a batch upsert.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchCounts {
    /// New users.
    pub inserted: usize,
    /// Users whose row changed.
    pub updated: usize,
    /// Users left alone (stored row newer, or a tombstone).
    pub unchanged: usize,
    /// The records that were written, for caches to follow.
    pub changed: Vec<UserRecord>,
}

/// Where a command's result goes.
pub type ReplyTo<T> = oneshot::Sender<Result<T, MirrorError>>;

/// What the writer can be asked to do.
pub enum Command {
    /// A verified webhook delivery.
    Apply(Box<Delivery>, ReplyTo<Applied>),
    /// A page of users from the Backend API.
    UpsertUsers(Vec<UserRecord>, ReplyTo<BatchCounts>),
    /// Tombstone live users absent from a complete sweep that began at `started_at_ms`.
    TombstoneMissing(HashSet<String>, i64, ReplyTo<Vec<String>>),
    /// Revoke a session here (logout); answers when the revocation ends, ms.
    Revoke(String, Option<String>, ReplyTo<i64>),
    /// A write round trip for readiness: answers once a write committed to the right file.
    Probe(ReplyTo<()>),
}

/// Sends a command's reply once its transaction's fate is known (`Some(error)`: not
/// acknowledged).
type Reply = Box<dyn FnOnce(Option<MirrorError>) + Send>;

/// The writer's state.
pub struct Writer {
    conn: Connection,
    /// The file `conn` has open, checked after every commit.
    file: FileIdentity,
    /// Set for good once the path stopped naming that file: every later write is refused.
    lost: Option<FileChange>,
    clock: Clock,
    revocation_retention: Duration,
    last_prune_ms: i64,
}

impl Writer {
    /// A writer over an open, migrated connection to `file`.
    pub fn new(conn: Connection, file: FileIdentity, clock: Clock, revocation_retention: Duration) -> Self {
        Writer { conn, file, lost: None, clock, revocation_retention, last_prune_ms: i64::MIN }
    }

    /// Applies commands until every sender is gone.
    pub fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        while let Some(first) = commands.blocking_recv() {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match commands.try_recv() {
                    Ok(command) => batch.push(command),
                    Err(_) => break,
                }
            }
            self.apply_batch(batch);
            self.prune_if_due();
        }
    }

    fn apply_batch(&mut self, batch: Vec<Command>) {
        if let Some(change) = self.lost {
            return batch.into_iter().for_each(|c| fail_command(c, || MirrorError::FileChanged(change)));
        }
        let now_ms = self.clock.now_ms();
        let retention = self.revocation_retention;
        let mut tx = match self.conn.transaction() {
            Ok(tx) => tx,
            Err(e) => {
                let error = Arc::new(e);
                tracing::warn!(%error, "mirror write failed");
                return batch.into_iter().for_each(|c| fail_command(c, || MirrorError::Begin(error.clone())));
            }
        };
        let mut replies: Vec<Reply> = Vec::with_capacity(batch.len());
        for command in batch {
            match command {
                Command::Apply(d, reply) => {
                    step(&mut tx, &mut replies, reply, |c| apply_delivery(c, &d, now_ms, retention));
                }
                Command::UpsertUsers(users, reply) => step(&mut tx, &mut replies, reply, |c| upsert_users(c, &users)),
                Command::TombstoneMissing(seen, started_at, reply) => {
                    step(&mut tx, &mut replies, reply, |c| tombstone_missing(c, &seen, started_at, now_ms));
                }
                Command::Revoke(session_id, user_id, reply) => {
                    let until_ms = now_ms.saturating_add(retention.as_millis() as i64);
                    step(&mut tx, &mut replies, reply, |c| {
                        store::revoke_session(c, &session_id, user_id.as_deref(), now_ms, until_ms).map(|()| until_ms)
                    });
                }
                Command::Probe(reply) => step(&mut tx, &mut replies, reply, |c| store::touch_health(c, now_ms)),
            }
        }
        match tx.commit() {
            Ok(()) => match self.verify_file() {
                Ok(()) => replies.into_iter().for_each(|reply| reply(None)),
                Err(change) => replies.into_iter().for_each(|reply| reply(Some(MirrorError::FileChanged(change)))),
            },
            Err(e) => {
                let error = Arc::new(e);
                tracing::warn!(error = %MirrorError::Commit(error.clone()), "mirror write failed");
                replies.into_iter().for_each(|reply| reply(Some(MirrorError::Commit(error.clone()))));
            }
        }
    }

    /// Whether what was just committed went to the file the path names; once it did not,
    /// the writer refuses everything (`apply_batch` checks `lost` first; a restart opens
    /// whatever is at the path then).
    fn verify_file(&mut self) -> Result<(), FileChange> {
        self.file.check().inspect_err(|change| {
            tracing::error!(
                error = %change,
                "the mirror's database file is gone from under the gateway: deliveries are answered 500 \
                 (Svix retries them), revocations hold in memory, and /readyz is 503 until a restart"
            );
            self.lost = Some(*change);
        })
    }

    fn prune_if_due(&mut self) {
        let now_ms = self.clock.now_ms();
        if self.lost.is_some() || now_ms.saturating_sub(self.last_prune_ms) < PRUNE_EVERY.as_millis() as i64 {
            return;
        }
        self.last_prune_ms = now_ms;
        let before = now_ms - DELIVERY_RETENTION.as_millis() as i64;
        match store::prune(&self.conn, before, now_ms) {
            Ok((deliveries, revocations)) if deliveries + revocations > 0 => {
                tracing::debug!(deliveries, revocations, "pruned old delivery ids and expired revocations");
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "mirror prune failed"),
        }
    }
}

/// Runs one command in its own savepoint; its reply waits for the commit.
fn step<T: Send + 'static>(
    tx: &mut Transaction<'_>,
    replies: &mut Vec<Reply>,
    reply: ReplyTo<T>,
    work: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) {
    match in_savepoint(tx, work) {
        Ok(value) => replies.push(Box::new(move |failure: Option<MirrorError>| {
            let _ = reply.send(failure.map_or(Ok(value), Err));
        })),
        Err(error) => {
            tracing::warn!(%error, "mirror write failed");
            let _ = reply.send(Err(error.into()));
        }
    }
}

fn fail_command(command: Command, failed: impl Fn() -> MirrorError) {
    match command {
        Command::Apply(_, tx) => drop(tx.send(Err(failed()))),
        Command::UpsertUsers(_, tx) => drop(tx.send(Err(failed()))),
        Command::TombstoneMissing(_, _, tx) => drop(tx.send(Err(failed()))),
        Command::Revoke(_, _, tx) => drop(tx.send(Err(failed()))),
        Command::Probe(tx) => drop(tx.send(Err(failed()))),
    }
}

/// Runs `f` inside a savepoint: kept on success, rolled back on error.
fn in_savepoint<T>(
    tx: &mut Transaction<'_>,
    f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    let savepoint = tx.savepoint()?;
    let value = f(&savepoint)?;
    savepoint.commit()?;
    Ok(value)
}

/// Tombstones live users older than the sweep that it did not see, unless that would be
/// more than half the mirror: a sweep that suddenly misses most users is far likelier to
/// be a wrong key or instance than a mass deletion.
fn tombstone_missing(
    conn: &Connection,
    seen: &HashSet<String>,
    started_at: i64,
    now_ms: i64,
) -> rusqlite::Result<Vec<String>> {
    let missing: Vec<String> =
        store::live_user_ids_before(conn, started_at)?.into_iter().filter(|id| !seen.contains(id)).collect();
    let live = store::count_users(conn)? as usize;
    if missing.len() > 10 && missing.len() * 2 > live {
        tracing::warn!(missing = missing.len(), live, "sweep missed most users; not tombstoning any");
        return Ok(Vec::new());
    }
    let mut gone = Vec::new();
    for id in missing {
        if store::delete_user(conn, &id, now_ms)? {
            gone.push(id);
        }
    }
    Ok(gone)
}

fn apply_delivery(conn: &Connection, d: &Delivery, now_ms: i64, retention: Duration) -> rusqlite::Result<Applied> {
    if !store::record_delivery(conn, &d.id, &d.event_type, now_ms)? {
        return Ok(Applied::Duplicate);
    }
    let ordered = |upsert: Upsert, effect: Effect| if upsert.changed() { effect } else { Effect::Ignored(upsert) };
    let effect = match &d.write {
        Write::UpsertUser(user) => {
            ordered(store::upsert_user(conn, user)?, Effect::UserChanged(Box::new(user.clone())))
        }
        Write::DeleteUser { id } => {
            store::delete_user(conn, id, d.at_ms)?;
            Effect::UserDeleted(id.clone())
        }
        Write::RevokeSession { session_id, user_id } => {
            let until_ms = now_ms.saturating_add(retention.as_millis() as i64);
            store::revoke_session(conn, session_id, user_id.as_deref(), now_ms, until_ms)?;
            Effect::SessionRevoked { session_id: session_id.clone(), until_ms }
        }
        Write::UpsertOrg(org) => ordered(store::upsert_org(conn, org)?, Effect::Stored),
        Write::DeleteOrg { id } => {
            store::delete_org(conn, id, d.at_ms)?;
            Effect::Stored
        }
        Write::UpsertMembership(m) => ordered(store::upsert_membership(conn, m)?, Effect::Stored),
        Write::DeleteMembership(m) => {
            store::delete_membership(conn, m)?;
            Effect::Stored
        }
        Write::RevokeMachineToken { .. } | Write::Nothing => Effect::NotMirrored,
    };
    Ok(Applied::Applied(effect))
}

fn upsert_users(conn: &Connection, users: &[UserRecord]) -> rusqlite::Result<BatchCounts> {
    let mut counts = BatchCounts::default();
    for user in users {
        match store::upsert_user(conn, user)? {
            Upsert::Inserted => counts.inserted += 1,
            Upsert::Updated => counts.updated += 1,
            Upsert::Same | Upsert::Stale | Upsert::Tombstoned => {
                counts.unchanged += 1;
                continue;
            }
        }
        counts.changed.push(user.clone());
    }
    Ok(counts)
}
