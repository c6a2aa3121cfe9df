//! The health monitor: looks at failing webhooks when an attempt starts or
//! ends a failure streak, and on a short tick, to pause a webhook after a
//! long outage, repeat the alert once per interval while it fails, and
//! announce its recovery once. Alerts are logged and queued as
//! `herald.webhook.*` events, which reach any webhook subscribed to them.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::store::{Store, now_ms};

/// Settings of the monitor.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Pause a webhook whose failed attempts span this long; `None`: never.
    pub pause_after: Option<Duration>,
    /// Raise the first alert once a webhook has failed this long.
    pub first_alert: Duration,
    /// Repeat the alert for a failing webhook this often.
    pub alert_every: Duration,
}

impl Settings {
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

/// The loop. `poke` is notified by the deliverer; `routed_wake` wakes the
/// router when alert events were queued.
pub async fn run(
    store: Store,
    mut live: crate::live::Receiver,
    poke: Arc<Notify>,
    router_wake: Arc<Notify>,
    shutdown: CancellationToken,
) {
    loop {
        let s = live.borrow_and_update().health.clone();
        let tick = s.tick();
        match store
            .run(move |st| st.health_tick(now_ms(), s.pause_after, s.first_alert, s.alert_every))
            .await
        {
            Ok(notices) => {
                for n in &notices {
                    match n.kind {
                        "recovered" => tracing::info!(webhook = n.webhook_id, "{}", n.message),
                        _ => tracing::warn!(webhook = n.webhook_id, "{}", n.message),
                    }
                }
                if !notices.is_empty() {
                    router_wake.notify_one();
                }
            }
            Err(e) => tracing::error!(error = %e, "health check failed; trying again"),
        }
        tokio::select! {
            _ = poke.notified() => {}
            _ = tokio::time::sleep(tick) => {}
            _ = crate::live::changed(&mut live) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}
