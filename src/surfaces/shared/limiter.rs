//! Failed-login counting, per client address and in total. Shared: the
//! login page and the password change both count guesses here.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failed logins one address may make within [`FAILURE_WINDOW`].
pub const MAX_FAILURES_PER_ADDRESS: usize = 5;
/// Failed logins all addresses together may make within [`FAILURE_WINDOW`].
const MAX_FAILURES_TOTAL: usize = 50;
/// How long a failed login counts against its address.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);

/// Counts failed logins per client address and in total, in memory: a
/// restart forgets them, which costs an attacker a restart per five tries.
#[derive(Default)]
pub struct LoginLimiter {
    failures: Mutex<Failures>,
}

#[derive(Default)]
struct Failures {
    by_address: HashMap<IpAddr, VecDeque<Instant>>,
    all: VecDeque<Instant>,
}

fn forget_old(q: &mut VecDeque<Instant>, now: Instant) {
    while q
        .front()
        .is_some_and(|t| now.duration_since(*t) >= FAILURE_WINDOW)
    {
        q.pop_front();
    }
}

impl LoginLimiter {
    /// `Some(wait)` while `ip` (or everyone) has used up its failed logins.
    fn blocked(&self, ip: IpAddr) -> Option<Duration> {
        let now = Instant::now();
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        forget_old(&mut f.all, now);
        let mut wait = None;
        if f.all.len() >= MAX_FAILURES_TOTAL {
            wait = f
                .all
                .front()
                .map(|t| FAILURE_WINDOW - now.duration_since(*t));
        }
        if let Some(q) = f.by_address.get_mut(&ip) {
            forget_old(q, now);
            if q.len() >= MAX_FAILURES_PER_ADDRESS {
                let w = q.front().map(|t| FAILURE_WINDOW - now.duration_since(*t));
                wait = wait.max(w);
            }
            if q.is_empty() {
                f.by_address.remove(&ip);
            }
        }
        wait
    }

    /// Starts a login attempt from `ip`: `Err(wait)` while it (or everyone)
    /// has used up its failed logins; otherwise the attempt counts as failed
    /// until [`LoginLimiter::succeeded`] says otherwise. Counting before the
    /// password is checked keeps parallel guesses within the limit.
    pub fn attempt(&self, ip: IpAddr) -> Result<(), Duration> {
        if let Some(wait) = self.blocked(ip) {
            return Err(wait);
        }
        let now = Instant::now();
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        f.all.push_back(now);
        f.by_address.entry(ip).or_default().push_back(now);
        Ok(())
    }

    /// A good login: its attempt does not count, and its address starts afresh.
    pub fn succeeded(&self, ip: IpAddr) {
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        f.all.pop_back();
        f.by_address.remove(&ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_failures_block_an_address_not_others() {
        let l = LoginLimiter::default();
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        // A good login does not count.
        l.attempt(a).unwrap();
        l.succeeded(a);
        for _ in 0..MAX_FAILURES_PER_ADDRESS {
            assert!(l.attempt(a).is_ok());
        }
        assert!(
            l.attempt(a).is_err(),
            "the sixth attempt is refused before any password check"
        );
        let wait = l.blocked(a).expect("blocked after five failures");
        assert!(wait <= FAILURE_WINDOW && wait > FAILURE_WINDOW - Duration::from_secs(60));
        assert!(l.blocked(b).is_none());
    }
}
