//! A webhook's retry policy as the admin configures it: a schedule of
//! delays, a fixed interval, or once; and its checks. The decision after a
//! failed attempt is [`crate::engines::retry`].

use serde::{Deserialize, Serialize};

use crate::spec::field::FieldError;

/// The default schedule: 5 s, 30 s, 2 min, 10 min, 1 h, then failed.
pub const DEFAULT_DELAYS: [f64; 5] = [5.0, 30.0, 120.0, 600.0, 3600.0];
/// Default jitter: each delay is moved by up to ±10 %.
pub const DEFAULT_JITTER: f64 = 0.1;
/// Most retries a policy may ask for.
const MAX_RETRIES: usize = 10_000;
/// Longest delay between two tries (one week).
const MAX_DELAY_SECS: f64 = 7.0 * 86_400.0;

/// How a webhook retries failed attempts. Delays are in seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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
    pub fn delay(&self, n: u32) -> Option<(f64, f64)> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
