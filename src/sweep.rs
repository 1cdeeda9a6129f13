//! The full sweep of Clerk's users into the mirror, shared by `clerk-gateway sync` and the
//! periodic reconcile inside `run`: paginated `GET /v1/users` (500 a page, `starting_after`
//! cursor, falling back to `offset` when the API refuses the cursor), each page stored in
//! one transaction under the `updated_at` rule, and, after a complete cursor sweep, users
//! Clerk no longer has tombstoned.

use std::collections::HashSet;
use std::future::Future;
use std::time::Instant;

use crate::clerk_api::{ApiError, ClerkApi, Cursor};
use crate::clock::Clock;
use crate::mirror::records::UserRecord;
use crate::mirror::{BatchCounts, Mirror, MirrorError};
use crate::users::Directory;

/// Users per page (the Backend API maximum).
pub const PAGE_SIZE: u32 = 500;

/// Where swept users go.
pub trait Sink {
    /// Stores one page.
    fn store(&self, users: Vec<UserRecord>) -> impl Future<Output = Result<BatchCounts, MirrorError>> + Send;
    /// Tombstones live users the sweep did not see.
    fn tombstone_missing(
        &self,
        seen: HashSet<String>,
        started_at_ms: i64,
    ) -> impl Future<Output = Result<Vec<String>, MirrorError>> + Send;
}

impl Sink for Mirror {
    fn store(&self, users: Vec<UserRecord>) -> impl Future<Output = Result<BatchCounts, MirrorError>> + Send {
        self.upsert_users(users)
    }

    fn tombstone_missing(
        &self,
        seen: HashSet<String>,
        started_at_ms: i64,
    ) -> impl Future<Output = Result<Vec<String>, MirrorError>> + Send {
        Mirror::tombstone_missing(self, seen, started_at_ms)
    }
}

impl Sink for Directory {
    fn store(&self, users: Vec<UserRecord>) -> impl Future<Output = Result<BatchCounts, MirrorError>> + Send {
        self.store_users(users)
    }

    fn tombstone_missing(
        &self,
        seen: HashSet<String>,
        started_at_ms: i64,
    ) -> impl Future<Output = Result<Vec<String>, MirrorError>> + Send {
        Directory::tombstone_missing(self, seen, started_at_ms)
    }
}

/// Told about the sweep as it goes.
pub trait Progress {
    /// The sweep starts; `total` is Clerk's user count when known.
    fn start(&mut self, total: Option<u64>);
    /// A page was stored.
    fn page(&mut self, report: &Report);
}

/// Progress nobody watches.
pub struct Quiet;

impl Progress for Quiet {
    fn start(&mut self, _total: Option<u64>) {}
    fn page(&mut self, _report: &Report) {}
}

/// What a sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Pages fetched.
    pub pages: u64,
    /// Users fetched.
    pub fetched: u64,
    /// New users.
    pub inserted: u64,
    /// Users updated.
    pub updated: u64,
    /// Users already up to date (or tombstoned).
    pub unchanged: u64,
    /// Users Clerk no longer has, now tombstoned.
    pub tombstoned: u64,
}

/// Why a sweep stopped.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// The Backend API failed (after its own retries).
    #[error("Backend API: {0}")]
    Api(#[from] ApiError),
    /// The mirror refused a write.
    #[error("mirror: {0}")]
    Mirror(#[from] MirrorError),
}

/// Sweeps every user into `sink`.
///
/// # Errors
/// `SweepError` when a page cannot be fetched or stored; what was stored stays stored.
pub async fn sweep(
    api: &ClerkApi,
    sink: &impl Sink,
    clock: &Clock,
    progress: &mut impl Progress,
) -> Result<Report, SweepError> {
    let started_at_ms = clock.now_ms();
    let started = Instant::now();
    progress.start(api.user_count().await.ok());
    let mut report = Report::default();
    let mut seen = HashSet::new();
    let mut cursor = Cursor::After(None);
    loop {
        let page = match api.users_page(PAGE_SIZE, &cursor).await {
            Err(ApiError::Clerk { status: 400 | 422, .. })
                if matches!(cursor, Cursor::After(_)) && report.pages == 0 =>
            {
                tracing::info!("the Backend API refused starting_after; paging by offset");
                cursor = Cursor::Offset(0);
                continue;
            }
            other => other?,
        };
        let full = page.len() as u64 >= u64::from(PAGE_SIZE);
        cursor = match &cursor {
            Cursor::Offset(offset) => Cursor::Offset(offset + page.len() as u64),
            Cursor::After(_) => Cursor::After(page.last().map(|u| u.id.clone())),
        };
        report.pages += 1;
        report.fetched += page.len() as u64;
        seen.extend(page.iter().map(|u| u.id.clone()));
        let records = page.into_iter().map(UserRecord::from).collect();
        let counts = sink.store(records).await?;
        report.inserted += counts.inserted as u64;
        report.updated += counts.updated as u64;
        report.unchanged += counts.unchanged as u64;
        progress.page(&report);
        if !full {
            break;
        }
    }
    // Offset pages shift when users are deleted mid-sweep, so only a cursor sweep is
    // complete enough to conclude that a missing user is gone.
    if matches!(cursor, Cursor::After(_)) {
        let gone = sink.tombstone_missing(seen, started_at_ms).await?;
        report.tombstoned = gone.len() as u64;
    }
    tracing::info!(
        pages = report.pages,
        fetched = report.fetched,
        inserted = report.inserted,
        updated = report.updated,
        tombstoned = report.tombstoned,
        seconds = started.elapsed().as_secs_f64(),
        "user sweep complete"
    );
    Ok(report)
}
