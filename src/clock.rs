//! Time source for every expiry decision: the wall clock in production, a settable clock in
//! tests. Owns nothing else; scheduling (sleeps, timeouts) stays on tokio's timer.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where "now" comes from. Cloning shares the same source.
#[derive(Clone, Debug, Default)]
pub enum Clock {
    /// The system wall clock.
    #[default]
    System,
    /// A clock that only moves when told to: tests use it so that token expiry, JWKS TTLs
    /// and refetch throttles never depend on how fast the machine is.
    Manual(Arc<AtomicI64>),
}

/// `d` in whole milliseconds, the unit every instant here is in (saturating).
pub fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Clock {
    /// A manual clock starting at `unix_ms` milliseconds since the Unix epoch.
    pub fn manual(unix_ms: i64) -> Self {
        Clock::Manual(Arc::new(AtomicI64::new(unix_ms)))
    }

    /// Milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> i64 {
        match self {
            Clock::System => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
            Clock::Manual(ms) => ms.load(Ordering::Relaxed),
        }
    }

    /// Whole seconds since the Unix epoch.
    pub fn now_secs(&self) -> i64 {
        self.now_ms().div_euclid(1000)
    }

    /// Moves a manual clock forward; the system clock ignores it.
    pub fn advance(&self, by: Duration) {
        if let Clock::Manual(ms) = self {
            let by = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
            ms.fetch_add(by, Ordering::Relaxed);
        }
    }

    /// Sets a manual clock to `unix_ms`; the system clock ignores it.
    pub fn set_ms(&self, unix_ms: i64) {
        if let Clock::Manual(ms) = self {
            ms.store(unix_ms, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = Clock::manual(1_000);
        let shared = clock.clone();
        assert_eq!(clock.now_ms(), 1_000);
        shared.advance(Duration::from_millis(2_500));
        assert_eq!(clock.now_ms(), 3_500);
        assert_eq!(clock.now_secs(), 3);
        clock.set_ms(-1);
        assert_eq!(clock.now_secs(), -1);
    }

    #[test]
    fn system_clock_is_after_2020() {
        assert!(Clock::System.now_secs() > 1_577_836_800);
    }
}
