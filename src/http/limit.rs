//! Failed authentication, counted per client address: after `limit` failures within a
//! minute, the address gets 429 with `Retry-After` until the minute is over. Other
//! addresses, and so genuine senders, are not affected.
//!
//! The count also keeps the log readable under a flood of bad requests: the caller logs a
//! refusal at `warn` only when [`AuthFailures::failed`] says so (the first from an address
//! in its minute, then the 10th, 100th, ..., and the one that reaches the limit); the rest
//! go to `debug`. Writing one line per refused request would let anyone who can reach the
//! port fill the disk and spend the server's time on logging.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long failures are counted.
const WINDOW: Duration = Duration::from_secs(60);
/// Addresses tracked before expired entries are swept.
const SWEEP_AT: usize = 10_000;

/// Counts failures per address.
pub struct AuthFailures {
    /// Failures allowed per window; 0 turns the limit off (failures are still counted,
    /// for [`Loudness`]).
    limit: u32,
    /// Per address: when its window started and how many failures since.
    seen: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

/// How the caller should log a failure just recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loudness {
    /// Log it at `warn`: the `count`th failure from this address in the current minute
    /// (1, 10, 100, ...).
    Warn {
        /// Failures from this address in the current minute, this one included.
        count: u32,
    },
    /// This failure reached the limit: the address gets 429 for the rest of the minute.
    Blocked {
        /// The limit that was reached.
        limit: u32,
    },
    /// Counted; log it at `debug` only.
    Quiet,
}

impl AuthFailures {
    /// A limiter allowing `limit` failures per minute per address (0: no limit).
    pub fn new(limit: u32) -> AuthFailures {
        AuthFailures {
            limit,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// When `ip` is over its limit, how long until it may try again.
    pub fn blocked(&self, ip: IpAddr) -> Option<Duration> {
        if self.limit == 0 {
            return None;
        }
        let seen = self.seen.lock().ok()?;
        let (start, count) = seen.get(&ip)?;
        let elapsed = start.elapsed();
        (*count >= self.limit && elapsed < WINDOW).then(|| WINDOW - elapsed)
    }

    /// Records a failed attempt from `ip` and says how loudly to log it.
    pub fn failed(&self, ip: IpAddr) -> Loudness {
        let Ok(mut seen) = self.seen.lock() else {
            return Loudness::Warn { count: 1 };
        };
        if seen.len() >= SWEEP_AT {
            seen.retain(|_, (start, _)| start.elapsed() < WINDOW);
        }
        let entry = seen.entry(ip).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= WINDOW {
            *entry = (Instant::now(), 0);
        }
        entry.1 = entry.1.saturating_add(1);
        let count = entry.1;
        if self.limit > 0 && count == self.limit {
            Loudness::Blocked { limit: self.limit }
        } else if is_power_of_ten(count) {
            Loudness::Warn { count }
        } else {
            Loudness::Quiet
        }
    }
}

/// 1, 10, 100, ...
fn is_power_of_ten(mut n: u32) -> bool {
    while n >= 10 && n.is_multiple_of(10) {
        n /= 10;
    }
    n == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_an_address_after_its_failures_and_no_other() {
        let limiter = AuthFailures::new(3);
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        for _ in 0..3 {
            assert!(limiter.blocked(a).is_none());
            limiter.failed(a);
        }
        let wait = limiter.blocked(a).expect("blocked");
        assert!(wait <= WINDOW && wait > Duration::from_secs(50));
        assert!(limiter.blocked(b).is_none());
        let off = AuthFailures::new(0);
        for _ in 0..100 {
            off.failed(a);
        }
        assert!(off.blocked(a).is_none());
    }

    #[test]
    fn a_flood_is_logged_at_first_then_at_powers_of_ten_and_at_the_limit() {
        let limiter = AuthFailures::new(50);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let loud: Vec<(u32, Loudness)> = (1..=200)
            .map(|n| (n, limiter.failed(a)))
            .filter(|(_, l)| *l != Loudness::Quiet)
            .collect();
        assert_eq!(
            loud,
            vec![
                (1, Loudness::Warn { count: 1 }),
                (10, Loudness::Warn { count: 10 }),
                (50, Loudness::Blocked { limit: 50 }),
                (100, Loudness::Warn { count: 100 }),
            ]
        );
        // Another address starts its own count.
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert_eq!(limiter.failed(b), Loudness::Warn { count: 1 });
        // Without a limit, failures are still counted for the log.
        let off = AuthFailures::new(0);
        assert_eq!(off.failed(a), Loudness::Warn { count: 1 });
        assert_eq!(off.failed(a), Loudness::Quiet);
    }
}
