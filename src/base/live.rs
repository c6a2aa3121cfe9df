//! Settings that change while herald runs: the read interval, the cleanup
//! schedule and retention, and the alert settings. They start from the
//! config file with the web admin's saved values laid over it
//! ([`crate::base::config::Config::with_ui`]); the router, cleanup job and health
//! monitor read them from a watch channel and act on a change at once.

use std::time::Duration;

use tokio::sync::watch;

use crate::base::config::Config;

/// The values the running loops read.
#[derive(Debug, Clone)]
pub struct Live {
    /// Whether webhooks are sent at all (`delivery.enabled`).
    pub sending: bool,
    /// How often the router reads the queue without being woken.
    pub read_interval: Duration,
    /// When the cleanup job runs.
    pub cleanup_schedule: cron::Schedule,
    /// Age past which the cleanup deletes.
    pub retention: Duration,
    /// The health monitor's pause and alert settings.
    pub health: HealthSettings,
}

impl Live {
    /// The live part of a validated configuration.
    pub fn from_config(c: &Config) -> Live {
        Live {
            sending: c.delivery_enabled,
            read_interval: c.read_interval,
            cleanup_schedule: c.cleanup_schedule.clone(),
            retention: c.retention,
            health: HealthSettings {
                pause_after: c.pause_after,
                first_alert: c.alert_after,
                alert_every: c.alert_interval,
            },
        }
    }
}

/// The receiving end each loop holds.
pub type Receiver = watch::Receiver<Live>;

/// Resolves when the settings change; never, once the sender is gone (the
/// loops then keep the last values until shutdown).
pub async fn changed(rx: &mut Receiver) {
    if rx.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Settings of the health monitor ([`crate::pipeline::health`]).
#[derive(Debug, Clone)]
pub struct HealthSettings {
    /// Pause a webhook whose failed attempts span this long; `None`: never.
    pub pause_after: Option<Duration>,
    /// Raise the first alert once a webhook has failed this long.
    pub first_alert: Duration,
    /// Repeat the alert for a failing webhook this often.
    pub alert_every: Duration,
}

impl HealthSettings {
    /// How often to look without being told: a tenth of the shorter
    /// interval, between 50 ms and 30 s.
    pub fn tick(&self) -> Duration {
        let shortest = self
            .pause_after
            .map_or(self.alert_every, |p| p.min(self.alert_every))
            .min(self.first_alert.max(Duration::from_millis(100)));
        (shortest / 10).clamp(Duration::from_millis(50), Duration::from_secs(30))
    }
}
