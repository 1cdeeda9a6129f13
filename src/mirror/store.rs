//! The mirror's SQL. Writes follow Clerk's delivery semantics: a row changes only when the
//! incoming `updated_at` is not older than the stored one, and a deleted row is a tombstone
//! that no later update can bring back. Functions take a connection (or transaction) and
//! never decide about transactions themselves.

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::Value;

use super::records::{MembershipRecord, OrgRecord, UserRecord};

/// What an ordered upsert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upsert {
    /// A new row.
    Inserted,
    /// An existing row, updated.
    Updated,
    /// The stored row is this very version already (same `updated_at`, same content).
    Same,
    /// Ignored: the stored row is newer.
    Stale,
    /// Ignored: the row was deleted and stays deleted.
    Tombstoned,
}

impl Upsert {
    /// Whether the row changed.
    pub fn changed(self) -> bool {
        matches!(self, Upsert::Inserted | Upsert::Updated)
    }
}

/// A user row, live or a tombstone.
#[derive(Debug, Clone, PartialEq)]
pub enum StoredUser {
    /// A live user.
    Live(Box<UserRecord>),
    /// A deleted user.
    Deleted,
}

/// The three ordered tables.
#[derive(Clone, Copy)]
enum Table {
    Users,
    Organizations,
    Memberships,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Table::Users => "users",
            Table::Organizations => "organizations",
            Table::Memberships => "memberships",
        }
    }
}

/// The verdict on an ordered upsert, from the stored row's `updated_at` and tombstone flag.
fn upsert_verdict(conn: &Connection, table: Table, id: &str, updated_at: i64) -> rusqlite::Result<Upsert> {
    let sql = format!("SELECT updated_at, deleted FROM {} WHERE id = ?1", table.name());
    let stored: Option<(i64, bool)> =
        conn.prepare_cached(&sql)?.query_row([id], |r| Ok((r.get(0)?, r.get(1)?))).optional()?;
    Ok(match stored {
        None => Upsert::Inserted,
        Some((_, true)) => Upsert::Tombstoned,
        Some((stored, false)) if updated_at < stored => Upsert::Stale,
        Some(_) => Upsert::Updated,
    })
}

/// Marks a row deleted (creating the tombstone if the row was never seen). Returns whether
/// a live row went away.
fn tombstone(conn: &Connection, table: Table, id: &str, at_ms: i64, clear: &str) -> rusqlite::Result<bool> {
    let live = matches!(upsert_verdict(conn, table, id, i64::MAX)?, Upsert::Updated);
    let sql = format!(
        "INSERT INTO {t} (id, updated_at, deleted) VALUES (?1, ?2, 1)
         ON CONFLICT(id) DO UPDATE SET deleted = 1, updated_at = max({t}.updated_at, excluded.updated_at){clear}",
        t = table.name()
    );
    conn.prepare_cached(&sql)?.execute(params![id, at_ms])?;
    Ok(live)
}

/// Records a delivery id; `false` when it was seen before.
pub fn record_delivery(conn: &Connection, svix_id: &str, event_type: &str, now_ms: i64) -> rusqlite::Result<bool> {
    let sql = "INSERT OR IGNORE INTO webhook_deliveries (svix_id, event_type, received_at) VALUES (?1, ?2, ?3)";
    Ok(conn.prepare_cached(sql)?.execute(params![svix_id, event_type, now_ms])? == 1)
}

/// Upserts a user under the ordering rule.
pub fn upsert_user(conn: &Connection, u: &UserRecord) -> rusqlite::Result<Upsert> {
    let mut decision = upsert_verdict(conn, Table::Users, &u.id, u.updated_at)?;
    if decision == Upsert::Updated
        && let Some(StoredUser::Live(stored)) = read_user(conn, &u.id)?
        && *stored == *u
    {
        decision = Upsert::Same;
    }
    if decision.changed() {
        let sql = "INSERT INTO users (id, primary_email, username, first_name, last_name, image_url,
                public_metadata, private_metadata, unsafe_metadata, created_at, updated_at, deleted)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 0)
             ON CONFLICT(id) DO UPDATE SET primary_email = excluded.primary_email, username = excluded.username,
                first_name = excluded.first_name, last_name = excluded.last_name, image_url = excluded.image_url,
                public_metadata = excluded.public_metadata, private_metadata = excluded.private_metadata,
                unsafe_metadata = excluded.unsafe_metadata, created_at = excluded.created_at,
                updated_at = excluded.updated_at";
        conn.prepare_cached(sql)?.execute(params![
            u.id,
            u.primary_email,
            u.username,
            u.first_name,
            u.last_name,
            u.image_url,
            u.public_metadata.to_string(),
            u.private_metadata.to_string(),
            u.unsafe_metadata.to_string(),
            u.created_at,
            u.updated_at,
        ])?;
    }
    Ok(decision)
}

/// Deletes a user: a tombstone with every personal field cleared. Returns whether a live
/// user went away.
pub fn delete_user(conn: &Connection, id: &str, at_ms: i64) -> rusqlite::Result<bool> {
    tombstone(
        conn,
        Table::Users,
        id,
        at_ms,
        ", primary_email = NULL, username = NULL, first_name = NULL, last_name = NULL, image_url = NULL,
           public_metadata = '{}', private_metadata = '{}', unsafe_metadata = '{}'",
    )
}

/// Upserts an organization under the ordering rule.
pub fn upsert_org(conn: &Connection, o: &OrgRecord) -> rusqlite::Result<Upsert> {
    let decision = upsert_verdict(conn, Table::Organizations, &o.id, o.updated_at)?;
    if decision.changed() {
        let sql = "INSERT INTO organizations (id, name, slug, image_url, public_metadata, private_metadata,
                created_at, updated_at, deleted) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0)
             ON CONFLICT(id) DO UPDATE SET name = excluded.name, slug = excluded.slug, image_url = excluded.image_url,
                public_metadata = excluded.public_metadata, private_metadata = excluded.private_metadata,
                created_at = excluded.created_at, updated_at = excluded.updated_at";
        conn.prepare_cached(sql)?.execute(params![
            o.id,
            o.name,
            o.slug,
            o.image_url,
            o.public_metadata.to_string(),
            o.private_metadata.to_string(),
            o.created_at,
            o.updated_at,
        ])?;
    }
    Ok(decision)
}

/// Deletes an organization (tombstone) and its memberships.
pub fn delete_org(conn: &Connection, id: &str, at_ms: i64) -> rusqlite::Result<bool> {
    let live = tombstone(conn, Table::Organizations, id, at_ms, ", public_metadata = '{}', private_metadata = '{}'")?;
    conn.prepare_cached("UPDATE memberships SET deleted = 1 WHERE org_id = ?1")?.execute([id])?;
    Ok(live)
}

/// Upserts a membership under the ordering rule.
pub fn upsert_membership(conn: &Connection, m: &MembershipRecord) -> rusqlite::Result<Upsert> {
    let decision = upsert_verdict(conn, Table::Memberships, &m.id, m.updated_at)?;
    if decision.changed() {
        let sql = "INSERT INTO memberships (id, org_id, user_id, role, permissions, public_metadata,
                created_at, updated_at, deleted) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0)
             ON CONFLICT(id) DO UPDATE SET org_id = excluded.org_id, user_id = excluded.user_id, role = excluded.role,
                permissions = excluded.permissions, public_metadata = excluded.public_metadata,
                created_at = excluded.created_at, updated_at = excluded.updated_at";
        conn.prepare_cached(sql)?.execute(params![
            m.id,
            m.org_id,
            m.user_id,
            m.role,
            Value::from(m.permissions.clone()).to_string(),
            m.public_metadata.to_string(),
            m.created_at,
            m.updated_at,
        ])?;
    }
    Ok(decision)
}

/// Deletes a membership (tombstone, so a late `updated` cannot restore it).
pub fn delete_membership(conn: &Connection, m: &MembershipRecord) -> rusqlite::Result<bool> {
    let live = tombstone(conn, Table::Memberships, &m.id, m.updated_at, "")?;
    let sql = "UPDATE memberships SET org_id = ?2, user_id = ?3, role = ?4 WHERE id = ?1";
    conn.prepare_cached(sql)?.execute(params![m.id, m.org_id, m.user_id, m.role])?;
    Ok(live)
}

/// Puts a session on the revocation list until `expires_ms`.
pub fn revoke_session(
    conn: &Connection,
    sid: &str,
    user_id: Option<&str>,
    at_ms: i64,
    expires_ms: i64,
) -> rusqlite::Result<()> {
    let sql = "INSERT INTO revoked_sessions (session_id, user_id, revoked_at, expires_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(session_id) DO UPDATE SET expires_at = max(revoked_sessions.expires_at, excluded.expires_at)";
    conn.prepare_cached(sql)?.execute(params![sid, user_id, at_ms, expires_ms])?;
    Ok(())
}

/// Records that a health probe wrote at `now_ms` (one row, overwritten each time).
pub fn touch_health(conn: &Connection, now_ms: i64) -> rusqlite::Result<()> {
    let sql = "INSERT INTO gateway_health (id, checked_at) VALUES (1, ?1)
         ON CONFLICT(id) DO UPDATE SET checked_at = excluded.checked_at";
    conn.prepare_cached(sql)?.execute([now_ms])?;
    Ok(())
}

/// Drops delivery ids received before `deliveries_before_ms` and revocations that expired
/// by `now_ms`. Returns how many rows of each went.
pub fn prune(conn: &Connection, deliveries_before_ms: i64, now_ms: i64) -> rusqlite::Result<(usize, usize)> {
    let deliveries = conn.execute("DELETE FROM webhook_deliveries WHERE received_at < ?1", [deliveries_before_ms])?;
    let revocations = conn.execute("DELETE FROM revoked_sessions WHERE expires_at <= ?1", [now_ms])?;
    Ok((deliveries, revocations))
}

const USER_COLUMNS: &str = "id, primary_email, username, first_name, last_name, image_url, public_metadata,
    private_metadata, unsafe_metadata, created_at, updated_at, deleted";

fn user_from_row(row: &Row<'_>) -> rusqlite::Result<StoredUser> {
    if row.get::<_, bool>(11)? {
        return Ok(StoredUser::Deleted);
    }
    let json = |i: usize| -> rusqlite::Result<Value> {
        let text: String = row.get(i)?;
        Ok(serde_json::from_str(&text).unwrap_or_else(|_| Value::Object(Default::default())))
    };
    Ok(StoredUser::Live(Box::new(UserRecord {
        id: row.get(0)?,
        primary_email: row.get(1)?,
        username: row.get(2)?,
        first_name: row.get(3)?,
        last_name: row.get(4)?,
        image_url: row.get(5)?,
        public_metadata: json(6)?,
        private_metadata: json(7)?,
        unsafe_metadata: json(8)?,
        created_at: row.get(9)?,
        updated_at: row.get(10)?,
    })))
}

/// One user, live or tombstoned; `None` when never seen.
pub fn read_user(conn: &Connection, id: &str) -> rusqlite::Result<Option<StoredUser>> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1");
    conn.prepare_cached(&sql)?.query_row([id], user_from_row).optional()
}

/// Live users in id order.
pub fn list_users(conn: &Connection, limit: u64, offset: u64) -> rusqlite::Result<Vec<UserRecord>> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE deleted = 0 ORDER BY id LIMIT ?1 OFFSET ?2");
    let mut statement = conn.prepare_cached(&sql)?;
    let rows = statement.query_map(params![limit as i64, offset as i64], user_from_row)?;
    let mut users = Vec::new();
    for row in rows {
        if let StoredUser::Live(user) = row? {
            users.push(*user);
        }
    }
    Ok(users)
}

/// Number of live users.
pub fn count_users(conn: &Connection) -> rusqlite::Result<u64> {
    conn.query_row("SELECT COUNT(*) FROM users WHERE deleted = 0", [], |r| r.get::<_, i64>(0))
        .map(|n| u64::try_from(n).unwrap_or(0))
}

/// Revocations still in force at `now_ms`: `(session id, expires at)`.
pub fn live_revocations(conn: &Connection, now_ms: i64) -> rusqlite::Result<Vec<(String, i64)>> {
    let mut statement = conn.prepare("SELECT session_id, expires_at FROM revoked_sessions WHERE expires_at > ?1")?;
    let rows = statement.query_map([now_ms], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

/// Ids of live users last updated before `before_ms` (candidates for a reconcile sweep).
pub fn live_user_ids_before(conn: &Connection, before_ms: i64) -> rusqlite::Result<Vec<String>> {
    let mut statement = conn.prepare("SELECT id FROM users WHERE deleted = 0 AND updated_at < ?1")?;
    let rows = statement.query_map([before_ms], |r| r.get(0))?;
    rows.collect()
}

/// A user's live memberships.
pub fn memberships_of(conn: &Connection, user_id: &str) -> rusqlite::Result<Vec<MembershipRecord>> {
    let sql = "SELECT id, org_id, user_id, role, permissions, public_metadata, created_at, updated_at
         FROM memberships WHERE user_id = ?1 AND deleted = 0 ORDER BY org_id";
    let mut statement = conn.prepare_cached(sql)?;
    let rows = statement.query_map([user_id], |r| {
        let permissions: String = r.get(4)?;
        let metadata: String = r.get(5)?;
        Ok(MembershipRecord {
            id: r.get(0)?,
            org_id: r.get(1)?,
            user_id: r.get(2)?,
            role: r.get(3)?,
            permissions: serde_json::from_str(&permissions).unwrap_or_default(),
            public_metadata: serde_json::from_str(&metadata).unwrap_or_else(|_| Value::Object(Default::default())),
            created_at: r.get(6)?,
            updated_at: r.get(7)?,
        })
    })?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn db() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::schema::migrate(&mut conn).unwrap();
        conn
    }

    fn user(id: &str, name: &str, updated_at: i64) -> UserRecord {
        UserRecord {
            id: id.into(),
            primary_email: Some(format!("{name}@example.com")),
            username: None,
            first_name: Some(name.into()),
            last_name: None,
            image_url: None,
            public_metadata: json!({"plan": "pro"}),
            private_metadata: json!({}),
            unsafe_metadata: json!({}),
            created_at: Some(1),
            updated_at,
        }
    }

    fn name_of(conn: &Connection, id: &str) -> Option<String> {
        match read_user(conn, id).unwrap() {
            Some(StoredUser::Live(u)) => u.first_name,
            _ => None,
        }
    }

    #[test]
    fn updates_apply_in_updated_at_order() {
        let conn = db();
        assert_eq!(upsert_user(&conn, &user("user_1", "a", 10)).unwrap(), Upsert::Inserted);
        assert_eq!(upsert_user(&conn, &user("user_1", "c", 30)).unwrap(), Upsert::Updated);
        assert_eq!(upsert_user(&conn, &user("user_1", "b", 20)).unwrap(), Upsert::Stale);
        assert_eq!(name_of(&conn, "user_1").as_deref(), Some("c"));
        assert_eq!(upsert_user(&conn, &user("user_1", "c2", 30)).unwrap(), Upsert::Updated, "equal is not older");
        assert_eq!(upsert_user(&conn, &user("user_1", "c2", 30)).unwrap(), Upsert::Same, "the stored version already");
    }

    #[test]
    fn a_tombstone_cannot_be_resurrected() {
        let conn = db();
        upsert_user(&conn, &user("user_1", "a", 10)).unwrap();
        assert!(delete_user(&conn, "user_1", 15).unwrap());
        assert_eq!(read_user(&conn, "user_1").unwrap(), Some(StoredUser::Deleted));
        assert_eq!(upsert_user(&conn, &user("user_1", "late", 99)).unwrap(), Upsert::Tombstoned);
        assert_eq!(count_users(&conn).unwrap(), 0);
        assert!(!delete_user(&conn, "user_2", 15).unwrap(), "deleting an unseen user leaves a tombstone");
        assert_eq!(upsert_user(&conn, &user("user_2", "x", 1)).unwrap(), Upsert::Tombstoned);
        let raw: Option<String> =
            conn.query_row("SELECT primary_email FROM users WHERE id = 'user_1'", [], |r| r.get(0)).unwrap();
        assert_eq!(raw, None, "personal data is cleared");
    }

    #[test]
    fn deliveries_are_recorded_once_and_pruned() {
        let conn = db();
        assert!(record_delivery(&conn, "msg_1", "user.created", 1_000).unwrap());
        assert!(!record_delivery(&conn, "msg_1", "user.created", 2_000).unwrap());
        revoke_session(&conn, "sess_1", Some("user_1"), 1_000, 5_000).unwrap();
        assert_eq!(live_revocations(&conn, 4_999).unwrap(), vec![("sess_1".to_owned(), 5_000)]);
        assert_eq!(prune(&conn, 1_500, 5_000).unwrap(), (1, 1));
        assert!(record_delivery(&conn, "msg_1", "user.created", 3_000).unwrap());
        assert!(live_revocations(&conn, 0).unwrap().is_empty());
    }

    #[test]
    fn memberships_follow_the_same_rules() {
        let conn = db();
        let m = MembershipRecord {
            id: "orgmem_1".into(),
            org_id: "org_1".into(),
            user_id: "user_1".into(),
            role: "org:admin".into(),
            permissions: vec!["org:billing:manage".into()],
            public_metadata: json!({}),
            created_at: None,
            updated_at: 5,
        };
        assert_eq!(upsert_membership(&conn, &m).unwrap(), Upsert::Inserted);
        assert_eq!(memberships_of(&conn, "user_1").unwrap(), vec![m.clone()]);
        assert!(delete_membership(&conn, &MembershipRecord { updated_at: 6, ..m.clone() }).unwrap());
        assert_eq!(
            upsert_membership(&conn, &MembershipRecord { updated_at: 7, ..m.clone() }).unwrap(),
            Upsert::Tombstoned
        );
        assert!(memberships_of(&conn, "user_1").unwrap().is_empty());
        let org = OrgRecord {
            id: "org_1".into(),
            name: None,
            slug: Some("acme".into()),
            image_url: None,
            public_metadata: json!({}),
            private_metadata: json!({}),
            created_at: None,
            updated_at: 1,
        };
        assert_eq!(upsert_org(&conn, &org).unwrap(), Upsert::Inserted);
        assert!(delete_org(&conn, "org_1", 2).unwrap());
        assert_eq!(upsert_org(&conn, &org).unwrap(), Upsert::Tombstoned);
    }

    #[test]
    fn listing_and_sweeping() {
        let conn = db();
        for (i, at) in [(1, 10), (2, 20), (3, 30)] {
            upsert_user(&conn, &user(&format!("user_{i}"), "n", at)).unwrap();
        }
        delete_user(&conn, "user_2", 40).unwrap();
        let ids: Vec<String> = list_users(&conn, 10, 0).unwrap().into_iter().map(|u| u.id).collect();
        assert_eq!(ids, ["user_1", "user_3"]);
        assert_eq!(list_users(&conn, 1, 1).unwrap()[0].id, "user_3");
        assert_eq!(live_user_ids_before(&conn, 25).unwrap(), ["user_1"]);
    }
}
