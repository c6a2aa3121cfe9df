//! The decision after a failed attempt: when it is tried again, and when a
//! delivery has failed for good. Pure decisions over numbers, so every rule
//! (schedule, jitter, 410 Gone, `Retry-After` within a cap) is unit-tested
//! here and the deliverer only carries the result to storage.

use std::time::Duration;

use crate::spec::retry::RetryPolicy;

/// What ended an attempt without success, as far as retrying is concerned.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// The endpoint answered with this non-2xx status, maybe with a
    /// `Retry-After` (already turned into a wait from now).
    Status {
        /// HTTP status.
        status: u16,
        /// How long the endpoint asked us to wait.
        retry_after: Option<Duration>,
    },
    /// No answer: refused, reset, timed out, DNS, TLS, token fetch failed.
    Transport,
    /// Trying again cannot help until an admin changes something (a template
    /// that does not render for this event, a signing error, an unreadable
    /// event). Replay after the fix.
    Permanent,
}

/// What happens to a delivery after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decision {
    /// Try again after this long.
    RetryIn(Duration),
    /// Failed for good.
    GiveUp,
}

/// Decides after the `tries`-th failed try (1-based) of this round.
/// `unit` is a number in [0, 1) drawn at random, for the jitter; the
/// wait asked by `Retry-After` replaces a shorter delay, up to `cap`.
pub fn decide(
    policy: &RetryPolicy,
    tries: u32,
    failure: &Failure,
    cap: Duration,
    unit: f64,
) -> Decision {
    let retry_after = match failure {
        Failure::Permanent => return Decision::GiveUp,
        // Gone: the endpoint says it will never take this again.
        Failure::Status { status: 410, .. } => return Decision::GiveUp,
        Failure::Status { retry_after, .. } => *retry_after,
        Failure::Transport => None,
    };
    let Some((base, jitter)) = policy.delay(tries) else {
        return Decision::GiveUp;
    };
    let factor = 1.0 + jitter * (2.0 * unit.clamp(0.0, 1.0) - 1.0);
    let mut wait = Duration::from_secs_f64((base * factor).max(0.0));
    if let Some(asked) = retry_after {
        wait = wait.max(asked.min(cap));
    }
    Decision::RetryIn(wait)
}

/// Parses a `Retry-After` value: delay seconds or an HTTP date, as a wait
/// from `now`. A date in the past means no wait; garbage means none asked.
pub fn parse_retry_after(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    Some(
        (at.with_timezone(&chrono::Utc) - now)
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

/// A number in [0, 1) from the OS's random source, for jitter.
pub fn random_unit() -> f64 {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        return 0.5;
    }
    (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAP: Duration = Duration::from_secs(3600);

    fn status(s: u16) -> Failure {
        Failure::Status {
            status: s,
            retry_after: None,
        }
    }

    #[test]
    fn default_schedule_then_give_up() {
        let p = RetryPolicy::default();
        let waits: Vec<_> = (1..=6)
            .map(|n| decide(&p, n, &Failure::Transport, CAP, 0.5))
            .collect();
        assert_eq!(
            waits,
            [5, 30, 120, 600, 3600]
                .map(|s| Decision::RetryIn(Duration::from_secs(s)))
                .into_iter()
                .chain([Decision::GiveUp])
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn jitter_moves_within_its_fraction() {
        let p = RetryPolicy::default();
        let lo = decide(&p, 1, &status(500), CAP, 0.0);
        let hi = decide(&p, 1, &status(500), CAP, 0.999_999);
        assert_eq!(lo, Decision::RetryIn(Duration::from_secs_f64(4.5)));
        let Decision::RetryIn(h) = hi else { panic!() };
        assert!(h > Duration::from_secs_f64(5.49) && h <= Duration::from_secs_f64(5.5));
    }

    #[test]
    fn once_fixed_gone_and_permanent() {
        assert_eq!(
            decide(&RetryPolicy::Once, 1, &status(503), CAP, 0.5),
            Decision::GiveUp
        );
        let fixed = RetryPolicy::Fixed {
            interval: 2.0,
            retries: 2,
            jitter: 0.0,
        };
        assert_eq!(
            decide(&fixed, 2, &status(500), CAP, 0.9),
            Decision::RetryIn(Duration::from_secs(2))
        );
        assert_eq!(decide(&fixed, 3, &status(500), CAP, 0.9), Decision::GiveUp);
        assert_eq!(
            decide(&RetryPolicy::default(), 1, &status(410), CAP, 0.5),
            Decision::GiveUp
        );
        assert_eq!(
            decide(&RetryPolicy::default(), 1, &Failure::Permanent, CAP, 0.5),
            Decision::GiveUp
        );
    }

    #[test]
    fn retry_after_lengthens_up_to_the_cap_and_never_shortens() {
        let p = RetryPolicy::default();
        let asked = |s: u64| Failure::Status {
            status: 503,
            retry_after: Some(Duration::from_secs(s)),
        };
        assert_eq!(
            decide(&p, 1, &asked(60), CAP, 0.5),
            Decision::RetryIn(Duration::from_secs(60))
        );
        assert_eq!(
            decide(&p, 1, &asked(1), CAP, 0.5),
            Decision::RetryIn(Duration::from_secs(5))
        );
        assert_eq!(
            decide(&p, 1, &asked(999_999), CAP, 0.5),
            Decision::RetryIn(CAP)
        );
    }

    #[test]
    fn retry_after_forms() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-23T12:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Mon, 23 Nov 2026 12:01:30 GMT", now),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            parse_retry_after("Mon, 23 Nov 2026 11:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }

    #[test]
    fn unit_is_in_range() {
        for _ in 0..100 {
            let u = random_unit();
            assert!((0.0..1.0).contains(&u));
        }
    }
}
