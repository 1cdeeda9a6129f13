//! How many handshake nonces are redeemed at the Backend API, and for whom. Each costs a
//! call against the instance's rate limit, so redemptions are budgeted per second: in all,
//! per client address, and, for clients whose nonces the Backend API refused lately, from a
//! small share of their own, so one client sending fabricated nonces cannot spend what real
//! users' handshake returns need. Nonces that cannot be valid are refused before any call.
//! An IPv6 client is its /64: one host holds a whole one, so counting addresses would let
//! it rotate through fresh budgets.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

/// Redemptions per second, in all.
const PER_SECOND: u32 = 50;
/// Redemptions per second for one client address.
const PER_CLIENT: u32 = 5;
/// Redemptions per second for one client whose nonce was refused lately.
const PER_SUSPECT: u32 = 1;
/// Redemptions per second, in all, for such clients: the rest is kept for everyone else.
const SUSPECTS_SHARE: u32 = 10;
/// How long a refused nonce marks its client as a suspect, seconds.
const SUSPECT_FOR_SECS: i64 = 60;
/// Longest nonce accepted.
const MAX_NONCE_BYTES: usize = 512;
/// Clients remembered at once; past this, the oldest second's counts are dropped.
const MAX_CLIENTS: usize = 10_000;

/// Why a nonce is not redeemed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Empty, too long, or with characters no nonce has.
    Malformed,
    /// The client's own budget for this second is spent.
    ClientBudget,
    /// The budget of clients with refused nonces is spent.
    SuspectsBudget,
    /// The budget for everyone is spent.
    GlobalBudget,
}

#[derive(Default)]
struct Window {
    /// The second these counts are for.
    second: i64,
    all: u32,
    suspects: u32,
    per_client: HashMap<IpAddr, u32>,
    /// Clients whose nonce the Backend API refused, until when (seconds).
    suspects_until: HashMap<IpAddr, i64>,
}

/// The budgets, shared by every request.
#[derive(Default)]
pub struct NonceBudget {
    window: Mutex<Window>,
}

impl NonceBudget {
    /// Takes one redemption for `client` at `now_secs`, or says why not.
    ///
    /// # Errors
    /// The `Refusal`; nothing is spent then.
    pub fn take(&self, nonce: &str, client: IpAddr, now_secs: i64) -> Result<(), Refusal> {
        if !is_plausible(nonce) {
            return Err(Refusal::Malformed);
        }
        let client = client_key(client);
        let Ok(mut w) = self.window.lock() else { return Err(Refusal::GlobalBudget) };
        // Only a later second starts a new window: a clock stepping back does not reset it.
        if now_secs > w.second {
            w.second = now_secs;
            w.all = 0;
            w.suspects = 0;
            w.per_client.clear();
            w.suspects_until.retain(|_, until| *until > now_secs);
        }
        let suspect = w.suspects_until.get(&client).is_some_and(|until| *until > now_secs);
        let used = w.per_client.get(&client).copied().unwrap_or(0);
        if used >= if suspect { PER_SUSPECT } else { PER_CLIENT } {
            return Err(Refusal::ClientBudget);
        }
        if suspect && w.suspects >= SUSPECTS_SHARE {
            return Err(Refusal::SuspectsBudget);
        }
        // Suspects never hold more than their share, so everyone else always has the rest.
        if w.all >= PER_SECOND {
            return Err(Refusal::GlobalBudget);
        }
        if w.per_client.len() >= MAX_CLIENTS && !w.per_client.contains_key(&client) {
            return Err(Refusal::GlobalBudget);
        }
        w.all += 1;
        w.suspects += u32::from(suspect);
        *w.per_client.entry(client).or_insert(0) += 1;
        Ok(())
    }

    /// The Backend API refused a nonce `client` sent: its budget shrinks for a while.
    pub fn refused(&self, client: IpAddr, now_secs: i64) {
        let client = client_key(client);
        if let Ok(mut w) = self.window.lock()
            && (w.suspects_until.len() < MAX_CLIENTS || w.suspects_until.contains_key(&client))
        {
            w.suspects_until.insert(client, now_secs + SUSPECT_FOR_SECS);
        }
    }
}

/// What a client is counted as: its IPv4 address, or the /64 of its IPv6 address (an
/// IPv4-mapped IPv6 address is its IPv4 address).
fn client_key(client: IpAddr) -> IpAddr {
    match client.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(std::net::Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        v4 => v4,
    }
}

/// Whether `nonce` could be one the Frontend API issued: non-empty, at most 512 bytes, of
/// the URL-safe characters tokens are made of.
fn is_plausible(nonce: &str) -> bool {
    !nonce.is_empty()
        && nonce.len() <= MAX_NONCE_BYTES
        && nonce.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, n])
    }

    #[test]
    fn nonces_that_cannot_be_valid_cost_nothing() {
        let budget = NonceBudget::default();
        for bad in ["", "a b", "x<script>", "n\u{e9}", &"a".repeat(513)] {
            assert_eq!(budget.take(bad, ip(1), 0), Err(Refusal::Malformed), "{bad:?}");
        }
        assert_eq!(budget.take("nonce_1.Ab-9", ip(1), 0), Ok(()));
    }

    #[test]
    fn each_client_has_its_own_budget_and_a_refused_one_a_small_one() {
        let budget = NonceBudget::default();
        for _ in 0..PER_CLIENT {
            assert_eq!(budget.take("n", ip(1), 0), Ok(()));
        }
        assert_eq!(budget.take("n", ip(1), 0), Err(Refusal::ClientBudget));
        assert_eq!(budget.take("n", ip(2), 0), Ok(()), "another client is not affected");
        budget.refused(ip(1), 0);
        assert_eq!(budget.take("n", ip(1), 1), Ok(()), "a suspect still gets one a second");
        assert_eq!(budget.take("n", ip(1), 1), Err(Refusal::ClientBudget));
        assert_eq!(budget.take("n", ip(1), SUSPECT_FOR_SECS + 1), Ok(()));
        assert_eq!(budget.take("n", ip(1), SUSPECT_FOR_SECS + 1), Ok(()), "a minute later it is forgiven");
    }

    #[test]
    fn an_ipv6_client_is_its_slash_64() {
        let budget = NonceBudget::default();
        for host in 0..PER_CLIENT {
            let address: IpAddr = format!("2001:db8:1:2::{:x}", host + 1).parse().unwrap();
            assert_eq!(budget.take("n", address, 0), Ok(()));
        }
        let rotated: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        assert_eq!(budget.take("n", rotated, 0), Err(Refusal::ClientBudget), "a fresh address in the same /64");
        assert_eq!(budget.take("n", "2001:db8:1:3::1".parse().unwrap(), 0), Ok(()), "another /64");
        assert_eq!(client_key("::ffff:10.0.0.1".parse().unwrap()), ip(1), "a mapped IPv4 address is IPv4");
    }

    #[test]
    fn a_clock_stepping_back_does_not_reset_the_window() {
        let budget = NonceBudget::default();
        for _ in 0..PER_CLIENT {
            assert_eq!(budget.take("n", ip(1), 10), Ok(()));
        }
        assert_eq!(budget.take("n", ip(1), 9), Err(Refusal::ClientBudget));
    }

    #[test]
    fn suspects_cannot_take_what_everyone_else_needs() {
        let budget = NonceBudget::default();
        for n in 0..50 {
            budget.refused(ip(n), 0);
        }
        let suspects_served = (0..50).filter(|n| budget.take("n", ip(*n), 1).is_ok()).count();
        assert_eq!(suspects_served, SUSPECTS_SHARE as usize);
        let others_served = (100..200).filter(|n| budget.take("n", ip(*n), 1).is_ok()).count();
        assert_eq!(others_served, (PER_SECOND - SUSPECTS_SHARE) as usize, "the rest is theirs");
        assert_eq!(budget.take("n", ip(201), 2), Ok(()), "a new second, a new budget");
    }
}
