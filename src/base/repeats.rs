//! Repeated identical log lines, logged once and then summarised: when the
//! disk is full every refused request and every unrecordable attempt fails
//! the same way, and one line each would spend what space is left on the
//! log. [`admit`] says whether a line should be written now, and how many
//! like it were held back since the last one written.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// A line held back is summarised with the next one written after this.
pub const WINDOW: Duration = Duration::from_secs(60);

/// Distinct lines remembered; past it the memory starts over (a flood of
/// distinct lines is logged, bounded by what produces them).
const REMEMBERED: usize = 256;

/// When a line was last written, and how many like it were held back since.
struct Seen {
    written: Instant,
    held: u64,
}

/// Lines seen, by their text (or another key naming what failed).
#[derive(Default)]
pub struct Repeats {
    seen: Mutex<HashMap<String, Seen>>,
}

impl Repeats {
    /// Whether the line `key` should be written at `now`: `Some(held)` with
    /// the number held back since the last one was written (0 the first
    /// time), or `None` to hold this one back.
    pub fn admit_at(&self, key: &str, now: Instant) -> Option<u64> {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = seen.get_mut(key) {
            if now.duration_since(s.written) < WINDOW {
                s.held += 1;
                return None;
            }
            let held = s.held;
            *s = Seen {
                written: now,
                held: 0,
            };
            return Some(held);
        }
        if seen.len() >= REMEMBERED {
            seen.clear();
        }
        seen.insert(
            key.to_owned(),
            Seen {
                written: now,
                held: 0,
            },
        );
        Some(0)
    }
}

/// [`Repeats::admit_at`] on the process's one register, now.
pub fn admit(key: &str) -> Option<u64> {
    static REPEATS: OnceLock<Repeats> = OnceLock::new();
    REPEATS
        .get_or_init(Repeats::default)
        .admit_at(key, Instant::now())
}

/// What to add to a line written after `held` were held back.
pub fn summary(held: u64) -> String {
    if held == 0 {
        String::new()
    } else {
        format!(" ({held} more like it in the last {} s)", WINDOW.as_secs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_line_is_written_once_per_window_with_the_count_held_back() {
        let r = Repeats::default();
        let t = Instant::now();
        assert_eq!(r.admit_at("disk full", t), Some(0));
        for i in 1..=1480 {
            assert_eq!(r.admit_at("disk full", t + Duration::from_millis(i)), None);
        }
        // Another line is not held back by the first.
        assert_eq!(r.admit_at("locked", t + Duration::from_secs(1)), Some(0));
        assert_eq!(r.admit_at("disk full", t + WINDOW), Some(1480));
        assert_eq!(summary(1480), " (1480 more like it in the last 60 s)");
        assert_eq!(
            r.admit_at("disk full", t + WINDOW + Duration::from_secs(1)),
            None
        );
        assert_eq!(r.admit_at("disk full", t + 2 * WINDOW), Some(1));
        assert_eq!(summary(0), "");
    }

    #[test]
    fn memory_stays_bounded_under_distinct_lines() {
        let r = Repeats::default();
        let t = Instant::now();
        for i in 0..10 * REMEMBERED {
            assert_eq!(r.admit_at(&format!("line {i}"), t), Some(0));
        }
        assert!(r.seen.lock().unwrap().len() <= REMEMBERED);
    }
}
