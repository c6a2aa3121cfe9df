//! A loop's sign of life: the delivery loop beats at every turn (at least
//! once a second, see `deliver::IDLE`); systemd's watchdog is fed only while
//! the beats are recent, so a hung loop gets herald restarted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// When a loop last showed it was alive.
#[derive(Debug)]
pub struct Heartbeat {
    origin: Instant,
    /// Milliseconds after `origin` of the last beat.
    last_ms: AtomicU64,
}

impl Default for Heartbeat {
    fn default() -> Heartbeat {
        Heartbeat {
            origin: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }
}

impl Heartbeat {
    /// Records a beat now.
    pub fn beat(&self) {
        let ms = self.origin.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// How long ago the last beat was (since start when there was none).
    pub fn age(&self) -> Duration {
        let now = self.origin.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn age_grows_until_the_next_beat() {
        let h = Heartbeat::default();
        h.beat();
        assert!(h.age() < Duration::from_millis(50));
        std::thread::sleep(Duration::from_millis(60));
        assert!(h.age() >= Duration::from_millis(60));
        h.beat();
        assert!(h.age() < Duration::from_millis(50));
    }
}
