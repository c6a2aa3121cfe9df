//! Failed-password counting: per guesser, and in total for guessers herald
//! does not know. Shared: the login page and the password change both count
//! guesses here.
//!
//! A guesser is a client address, or a *known device*: a browser that has
//! logged in successfully before and carries the device cookie that login
//! gave it. Every guesser gets [`MAX_FAILURES_PER_GUESSER`] failures per
//! [`FAILURE_WINDOW`]. The total limit ([`MAX_FAILURES_TOTAL`], against
//! guessing from many addresses) applies to unknown addresses only, so a
//! flood of failures from elsewhere cannot lock the admin's own browser out.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failed guesses one guesser may make within [`FAILURE_WINDOW`].
pub const MAX_FAILURES_PER_GUESSER: usize = 5;
/// Failed guesses all unknown addresses together may make within [`FAILURE_WINDOW`].
pub const MAX_FAILURES_TOTAL: usize = 50;
/// How long a failed guess counts against its guesser.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);

/// Who is guessing.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Guesser {
    /// A client address without a valid device cookie.
    Address(IpAddr),
    /// A browser with a valid device cookie (its id).
    Device(String),
}

impl Guesser {
    fn counts_in_total(&self) -> bool {
        matches!(self, Guesser::Address(_))
    }
}

/// Counts failed guesses in memory: a restart forgets them, which costs an
/// attacker a restart per five tries.
#[derive(Default)]
pub struct LoginLimiter {
    failures: Mutex<Failures>,
}

#[derive(Default)]
struct Failures {
    by_guesser: HashMap<Guesser, VecDeque<Instant>>,
    /// Failures of unknown addresses, for the total limit.
    unknown: VecDeque<Instant>,
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
    /// `Some(wait)` while `who` (or, for an unknown address, everyone
    /// unknown) has used up its failed guesses.
    fn blocked(&self, who: &Guesser) -> Option<Duration> {
        let now = Instant::now();
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        forget_old(&mut f.unknown, now);
        let mut wait = None;
        if who.counts_in_total() && f.unknown.len() >= MAX_FAILURES_TOTAL {
            wait = f
                .unknown
                .front()
                .map(|t| FAILURE_WINDOW - now.duration_since(*t));
        }
        if let Some(q) = f.by_guesser.get_mut(who) {
            forget_old(q, now);
            if q.len() >= MAX_FAILURES_PER_GUESSER {
                let w = q.front().map(|t| FAILURE_WINDOW - now.duration_since(*t));
                wait = wait.max(w);
            }
            if q.is_empty() {
                f.by_guesser.remove(who);
            }
        }
        wait
    }

    /// Starts a password check by `who`: `Err(wait)` while it has used up
    /// its failed guesses; otherwise the attempt counts as failed until
    /// [`LoginLimiter::succeeded`] says otherwise. Counting before the
    /// password is checked keeps parallel guesses within the limit.
    pub fn attempt(&self, who: &Guesser) -> Result<(), Duration> {
        if let Some(wait) = self.blocked(who) {
            return Err(wait);
        }
        let now = Instant::now();
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if who.counts_in_total() {
            f.unknown.push_back(now);
        }
        f.by_guesser.entry(who.clone()).or_default().push_back(now);
        Ok(())
    }

    /// A right password: its attempt does not count, and `who` starts afresh.
    pub fn succeeded(&self, who: &Guesser) {
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if who.counts_in_total() {
            f.unknown.pop_back();
        }
        f.by_guesser.remove(who);
    }
}

/// What a login page tells a guesser who must wait.
pub fn wait_message(wait: Duration) -> String {
    let minutes = wait.as_secs().div_ceil(60).max(1);
    format!(
        "Too many failed logins. Try again in {minutes} minute{}.",
        if minutes == 1 { "" } else { "s" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(a: &str) -> Guesser {
        Guesser::Address(a.parse().unwrap())
    }

    #[test]
    fn five_failures_block_a_guesser_not_others() {
        let l = LoginLimiter::default();
        let a = address("127.0.0.1");
        let b = address("127.0.0.2");
        // A good login does not count.
        l.attempt(&a).unwrap();
        l.succeeded(&a);
        for _ in 0..MAX_FAILURES_PER_GUESSER {
            assert!(l.attempt(&a).is_ok());
        }
        assert!(
            l.attempt(&a).is_err(),
            "the sixth attempt is refused before any password check"
        );
        let wait = l.blocked(&a).expect("blocked after five failures");
        assert!(wait <= FAILURE_WINDOW && wait > FAILURE_WINDOW - Duration::from_secs(60));
        assert!(l.blocked(&b).is_none());
    }

    #[test]
    fn the_total_limit_spares_known_devices() {
        let l = LoginLimiter::default();
        for i in 0..MAX_FAILURES_TOTAL {
            let who = address(&format!("127.0.1.{}", i % 250 + 1));
            let _ = l.attempt(&who);
        }
        assert!(
            l.attempt(&address("127.0.2.1")).is_err(),
            "an unknown address waits"
        );
        let device = Guesser::Device("d1".into());
        assert!(l.attempt(&device).is_ok(), "a known device still may try");
        for _ in 1..MAX_FAILURES_PER_GUESSER {
            l.attempt(&device).unwrap();
        }
        assert!(l.attempt(&device).is_err(), "a device has its own limit");
    }
}
