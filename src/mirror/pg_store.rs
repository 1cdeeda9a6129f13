//! The Postgres mirror's SQL, statement by statement: the ordering and tombstone rules
//! (each row read `FOR UPDATE` before it is judged, and the rule repeated in every upsert's
//! `ON CONFLICT DO UPDATE`, so replicas racing each other converge), revocations, and
//! reading rows back. Functions take a client or transaction and never decide about
//! transactions themselves.

use serde_json::Value;
use tokio_postgres::types::ToSql;
use tokio_postgres::{GenericClient, Row, Transaction};

use super::error::MirrorError;
use super::records::{MembershipRecord, OrgRecord, UserRecord};
use super::store::{StoredUser, Upsert};

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
pub(super) async fn tombstone(
    tx: &Transaction<'_>,
    table: &str,
    id: &str,
    at_ms: i64,
    clear: &str,
) -> Result<bool, MirrorError> {
    let live = matches!(locked_version(tx, table, id).await?, Some((_, false)));
    let sql = format!(
        "INSERT INTO {table} (id, updated_at, deleted) VALUES ($1, $2, true)
         ON CONFLICT (id) DO UPDATE SET deleted = true, updated_at = greatest({table}.updated_at, excluded.updated_at){clear}"
    );
    tx.execute(&sql, &[&id, &at_ms]).await?;
    Ok(live)
}

/// Writes a row `decision` judged `Inserted` or `Updated`, with `sql`, an upsert whose
/// `DO UPDATE` repeats the ordering rule; when it wrote nothing, another replica inserted
/// the row meanwhile and the rule kept theirs, so the verdict is taken once more.
async fn write_ordered(
    tx: &Transaction<'_>,
    (table, id, updated_at): (&str, &str, i64),
    decision: Upsert,
    sql: &str,
    values: &[&(dyn ToSql + Sync)],
) -> Result<Upsert, MirrorError> {
    if !decision.changed() || tx.execute(sql, values).await? > 0 {
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

/// Upserts a user under the ordering rule (with NULs dropped: Postgres cannot hold them).
pub(super) async fn upsert_user(tx: &Transaction<'_>, u: &UserRecord) -> Result<Upsert, MirrorError> {
    let u = &UserRecord {
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
    let mut decision = verdict(tx, "clerk_users", &u.id, u.updated_at).await?;
    if decision == Upsert::Updated && read_user(tx, &u.id).await? == Some(StoredUser::Live(Box::new(u.clone()))) {
        decision = Upsert::Same;
    }
    let sql = "INSERT INTO clerk_users (id, primary_email, username, first_name, last_name, image_url,
            public_metadata, private_metadata, unsafe_metadata, created_at, updated_at, deleted)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, false)
         ON CONFLICT (id) DO UPDATE SET primary_email = excluded.primary_email, username = excluded.username,
            first_name = excluded.first_name, last_name = excluded.last_name, image_url = excluded.image_url,
            public_metadata = excluded.public_metadata, private_metadata = excluded.private_metadata,
            unsafe_metadata = excluded.unsafe_metadata, created_at = excluded.created_at,
            updated_at = excluded.updated_at
         WHERE NOT clerk_users.deleted AND clerk_users.updated_at <= excluded.updated_at";
    let values: [&(dyn ToSql + Sync); 11] = [
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
    ];
    write_ordered(tx, ("clerk_users", &u.id, u.updated_at), decision, sql, &values).await
}

pub(super) async fn delete_user(tx: &Transaction<'_>, id: &str, at_ms: i64) -> Result<bool, MirrorError> {
    let clear = ", primary_email = NULL, username = NULL, first_name = NULL, last_name = NULL, image_url = NULL,
           public_metadata = '{}', private_metadata = '{}', unsafe_metadata = '{}'";
    tombstone(tx, "clerk_users", id, at_ms, clear).await
}

/// Upserts an organization under the ordering rule.
pub(super) async fn upsert_org(tx: &Transaction<'_>, o: &OrgRecord) -> Result<Upsert, MirrorError> {
    let decision = verdict(tx, "clerk_organizations", &o.id, o.updated_at).await?;
    let sql = "INSERT INTO clerk_organizations (id, name, slug, image_url, public_metadata, private_metadata,
            created_at, updated_at, deleted) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, false)
         ON CONFLICT (id) DO UPDATE SET name = excluded.name, slug = excluded.slug, image_url = excluded.image_url,
            public_metadata = excluded.public_metadata, private_metadata = excluded.private_metadata,
            created_at = excluded.created_at, updated_at = excluded.updated_at
         WHERE NOT clerk_organizations.deleted AND clerk_organizations.updated_at <= excluded.updated_at";
    let values: [&(dyn ToSql + Sync); 8] =
        [&o.id, &o.name, &o.slug, &o.image_url, &o.public_metadata, &o.private_metadata, &o.created_at, &o.updated_at];
    write_ordered(tx, ("clerk_organizations", &o.id, o.updated_at), decision, sql, &values).await
}

/// Upserts a membership under the ordering rule.
pub(super) async fn upsert_membership(tx: &Transaction<'_>, m: &MembershipRecord) -> Result<Upsert, MirrorError> {
    let decision = verdict(tx, "clerk_memberships", &m.id, m.updated_at).await?;
    let sql = "INSERT INTO clerk_memberships (id, org_id, user_id, role, permissions, public_metadata,
            created_at, updated_at, deleted) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, false)
         ON CONFLICT (id) DO UPDATE SET org_id = excluded.org_id, user_id = excluded.user_id, role = excluded.role,
            permissions = excluded.permissions, public_metadata = excluded.public_metadata,
            created_at = excluded.created_at, updated_at = excluded.updated_at
         WHERE NOT clerk_memberships.deleted AND clerk_memberships.updated_at <= excluded.updated_at";
    let permissions = Value::from(m.permissions.clone());
    let values: [&(dyn ToSql + Sync); 8] =
        [&m.id, &m.org_id, &m.user_id, &m.role, &permissions, &m.public_metadata, &m.created_at, &m.updated_at];
    write_ordered(tx, ("clerk_memberships", &m.id, m.updated_at), decision, sql, &values).await
}

pub(super) async fn revoke(
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

const USER_COLUMNS: &str = "id, primary_email, username, first_name, last_name, image_url, public_metadata,
    private_metadata, unsafe_metadata, created_at, updated_at, deleted";

/// One user, live or tombstoned; `None` when never seen.
pub(super) async fn read_user(client: &impl GenericClient, id: &str) -> Result<Option<StoredUser>, MirrorError> {
    let sql = format!("SELECT {USER_COLUMNS} FROM clerk_users WHERE id = $1");
    Ok(client.query_opt(&sql, &[&id]).await?.map(|row| user_from_row(&row)))
}

/// Live users in id order, `limit` from `offset`.
pub(super) async fn list_users(
    client: &impl GenericClient,
    limit: u64,
    offset: u64,
) -> Result<Vec<UserRecord>, MirrorError> {
    let sql = format!("SELECT {USER_COLUMNS} FROM clerk_users WHERE NOT deleted ORDER BY id LIMIT $1 OFFSET $2");
    let (limit, offset) = (i64::try_from(limit).unwrap_or(i64::MAX), i64::try_from(offset).unwrap_or(i64::MAX));
    let rows = client.query(&sql, &[&limit, &offset]).await?;
    let live = |row: &Row| match user_from_row(row) {
        StoredUser::Live(user) => Some(*user),
        StoredUser::Deleted => None,
    };
    Ok(rows.iter().filter_map(live).collect())
}

/// A user's live memberships.
pub(super) async fn memberships_of(
    client: &impl GenericClient,
    user_id: &str,
) -> Result<Vec<MembershipRecord>, MirrorError> {
    let sql = "SELECT id, org_id, user_id, role, permissions, public_metadata, created_at, updated_at
         FROM clerk_memberships WHERE user_id = $1 AND NOT deleted ORDER BY org_id";
    let rows = client.query(sql, &[&user_id]).await?;
    Ok(rows.iter().map(membership_from_row).collect())
}

/// Revocations still in force at `now_ms`: `(id, expires at)`.
pub(super) async fn live_revocations(
    client: &impl GenericClient,
    now_ms: i64,
) -> Result<Vec<(String, i64)>, MirrorError> {
    let sql = "SELECT session_id, expires_at FROM clerk_revoked_sessions WHERE expires_at > $1";
    let rows = client.query(sql, &[&now_ms]).await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
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

pub(super) async fn count(client: &impl GenericClient) -> Result<u64, MirrorError> {
    let n: i64 = client.query_one("SELECT count(*) FROM clerk_users WHERE NOT deleted", &[]).await?.get(0);
    Ok(u64::try_from(n).unwrap_or(0))
}
