//! Failed authentication, limited per client address: after `limit` failures within a
//! minute, the address gets 429 with `Retry-After` until the minute is over. Other
//! addresses, and so genuine senders, are not affected.

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
    /// Failures allowed per window; 0 turns the limit off.
    limit: u32,
    /// Per address: when its window started and how many failures since.
    seen: Mutex<HashMap<IpAddr, (Instant, u32)>>,
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

    /// Records a failed attempt from `ip`.
    pub fn failed(&self, ip: IpAddr) {
        if self.limit == 0 {
            return;
        }
        let Ok(mut seen) = self.seen.lock() else {
            return;
        };
        if seen.len() >= SWEEP_AT {
            seen.retain(|_, (start, _)| start.elapsed() < WINDOW);
        }
        let entry = seen.entry(ip).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= WINDOW {
            *entry = (Instant::now(), 0);
        }
        entry.1 += 1;
    }
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
}
