//! Retry policy: when a failed attempt is tried again, and when a delivery
//! has failed for good. Pure decisions over numbers, so every rule (schedule,
//! jitter, 410 Gone, `Retry-After` within a cap) is unit-tested here and the
//! deliverer only carries the result to storage.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::webhook::FieldError;

/// The default schedule: 5 s, 30 s, 2 min, 10 min, 1 h, then failed.
pub const DEFAULT_DELAYS: [f64; 5] = [5.0, 30.0, 120.0, 600.0, 3600.0];
/// Default jitter: each delay is moved by up to ±10 %.
pub const DEFAULT_JITTER: f64 = 0.1;
/// Most retries a policy may ask for.
const MAX_RETRIES: usize = 10_000;
/// Longest delay between two tries (one week).
const MAX_DELAY_SECS: f64 = 7.0 * 86_400.0;

/// How a webhook retries failed attempts. Delays are in seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum RetryPolicy {
    /// Try once; a failure is final (the appliance's classic behaviour).
    Once,
    /// Retry after each delay in turn, then give up.
    Schedule {
        /// Seconds to wait before each retry.
        delays: Vec<f64>,
        /// Fraction (0 to 0.5) by which each delay is moved at random, so
        /// retries of many events do not arrive at once.
        #[serde(default = "default_jitter")]
        jitter: f64,
    },
    /// Retry `retries` times, `interval` seconds apart, then give up.
    Fixed {
        /// Seconds between tries.
        interval: f64,
        /// How many retries after the first try.
        retries: u32,
        /// As for `schedule`.
        #[serde(default = "default_jitter")]
        jitter: f64,
    },
}

fn default_jitter() -> f64 {
    DEFAULT_JITTER
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy::Schedule {
            delays: DEFAULT_DELAYS.to_vec(),
            jitter: DEFAULT_JITTER,
        }
    }
}

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

impl RetryPolicy {
    /// Checks the numbers an admin gave.
    pub fn check(&self) -> Result<(), FieldError> {
        let err = |m: String| Err(FieldError::new("retry", m));
        let check_delay = |d: f64| -> Result<(), FieldError> {
            if !(0.01..=MAX_DELAY_SECS).contains(&d) {
                return err(format!(
                    "delay {d} s must be between 0.01 and {MAX_DELAY_SECS} seconds"
                ));
            }
            Ok(())
        };
        let check_jitter = |j: f64| -> Result<(), FieldError> {
            if !(0.0..=0.5).contains(&j) {
                return err(format!("jitter {j} must be between 0 and 0.5"));
            }
            Ok(())
        };
        match self {
            RetryPolicy::Once => Ok(()),
            RetryPolicy::Schedule { delays, jitter } => {
                if delays.is_empty() {
                    return err("a schedule needs at least one delay; use {\"kind\":\"once\"} for no retries".into());
                }
                if delays.len() > MAX_RETRIES {
                    return err(format!("at most {MAX_RETRIES} delays"));
                }
                delays.iter().try_for_each(|d| check_delay(*d))?;
                check_jitter(*jitter)
            }
            RetryPolicy::Fixed {
                interval,
                retries,
                jitter,
            } => {
                check_delay(*interval)?;
                if *retries == 0 || *retries as usize > MAX_RETRIES {
                    return err(format!("retries must be between 1 and {MAX_RETRIES}"));
                }
                check_jitter(*jitter)
            }
        }
    }

    /// The base delay before retry number `n` (1-based), if there is one.
    fn delay(&self, n: u32) -> Option<(f64, f64)> {
        match self {
            RetryPolicy::Once => None,
            RetryPolicy::Schedule { delays, jitter } => delays
                .get(n.checked_sub(1)? as usize)
                .map(|d| (*d, *jitter)),
            RetryPolicy::Fixed {
                interval,
                retries,
                jitter,
            } => (n >= 1 && n <= *retries).then_some((*interval, *jitter)),
        }
    }

    /// Decides after the `tries`-th failed try (1-based) of this round.
    /// `unit` is a number in [0, 1) drawn at random, for the jitter; the
    /// wait asked by `Retry-After` replaces a shorter delay, up to `cap`.
    pub fn decide(&self, tries: u32, failure: &Failure, cap: Duration, unit: f64) -> Decision {
        let retry_after = match failure {
            Failure::Permanent => return Decision::GiveUp,
            // Gone: the endpoint says it will never take this again.
            Failure::Status { status: 410, .. } => return Decision::GiveUp,
            Failure::Status { retry_after, .. } => *retry_after,
            Failure::Transport => None,
        };
        let Some((base, jitter)) = self.delay(tries) else {
            return Decision::GiveUp;
        };
        let factor = 1.0 + jitter * (2.0 * unit.clamp(0.0, 1.0) - 1.0);
        let mut wait = Duration::from_secs_f64((base * factor).max(0.0));
        if let Some(asked) = retry_after {
            wait = wait.max(asked.min(cap));
        }
        Decision::RetryIn(wait)
    }

    /// A one-line description for lists: "5s, 30s, 2m, 10m, 1h".
    pub fn describe(&self) -> String {
        match self {
            RetryPolicy::Once => "once (no retries)".into(),
            RetryPolicy::Schedule { delays, .. } => delays
                .iter()
                .map(|d| human(*d))
                .collect::<Vec<_>>()
                .join(", "),
            RetryPolicy::Fixed {
                interval, retries, ..
            } => format!("{retries} × every {}", human(*interval)),
        }
    }
}

fn human(secs: f64) -> String {
    if secs >= 3600.0 && secs % 3600.0 == 0.0 {
        format!("{}h", secs / 3600.0)
    } else if secs >= 60.0 && secs % 60.0 == 0.0 {
        format!("{}m", secs / 60.0)
    } else {
        format!("{secs}s")
    }
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
            .map(|n| p.decide(n, &Failure::Transport, CAP, 0.5))
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
        let lo = p.decide(1, &status(500), CAP, 0.0);
        let hi = p.decide(1, &status(500), CAP, 0.999_999);
        assert_eq!(lo, Decision::RetryIn(Duration::from_secs_f64(4.5)));
        let Decision::RetryIn(h) = hi else { panic!() };
        assert!(h > Duration::from_secs_f64(5.49) && h <= Duration::from_secs_f64(5.5));
    }

    #[test]
    fn once_fixed_gone_and_permanent() {
        assert_eq!(
            RetryPolicy::Once.decide(1, &status(503), CAP, 0.5),
            Decision::GiveUp
        );
        let fixed = RetryPolicy::Fixed {
            interval: 2.0,
            retries: 2,
            jitter: 0.0,
        };
        assert_eq!(
            fixed.decide(2, &status(500), CAP, 0.9),
            Decision::RetryIn(Duration::from_secs(2))
        );
        assert_eq!(fixed.decide(3, &status(500), CAP, 0.9), Decision::GiveUp);
        assert_eq!(
            RetryPolicy::default().decide(1, &status(410), CAP, 0.5),
            Decision::GiveUp
        );
        assert_eq!(
            RetryPolicy::default().decide(1, &Failure::Permanent, CAP, 0.5),
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
            p.decide(1, &asked(60), CAP, 0.5),
            Decision::RetryIn(Duration::from_secs(60))
        );
        assert_eq!(
            p.decide(1, &asked(1), CAP, 0.5),
            Decision::RetryIn(Duration::from_secs(5))
        );
        assert_eq!(
            p.decide(1, &asked(999_999), CAP, 0.5),
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
    fn bad_policies_are_refused() {
        let bad: Vec<RetryPolicy> = vec![
            serde_json::from_str(r#"{"kind":"schedule","delays":[]}"#).unwrap(),
            serde_json::from_str(r#"{"kind":"schedule","delays":[0]}"#).unwrap(),
            serde_json::from_str(r#"{"kind":"schedule","delays":[1],"jitter":0.9}"#).unwrap(),
            serde_json::from_str(r#"{"kind":"fixed","interval":5,"retries":0}"#).unwrap(),
        ];
        for p in bad {
            assert_eq!(p.check().unwrap_err().field, "retry", "{p:?}");
        }
        assert!(serde_json::from_str::<RetryPolicy>(r#"{"kind":"sometimes"}"#).is_err());
        assert!(RetryPolicy::default().check().is_ok());
        let r: RetryPolicy = serde_json::from_str(r#"{"kind":"once"}"#).unwrap();
        assert_eq!(r, RetryPolicy::Once);
    }

    #[test]
    fn unit_is_in_range() {
        for _ in 0..100 {
            let u = random_unit();
            assert!((0.0..1.0).contains(&u));
        }
    }
}
