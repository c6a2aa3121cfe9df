//! The health monitor: looks at failing webhooks when an attempt starts or
//! ends a failure streak, and on a short tick, to pause a webhook after a
//! long outage, repeat the alert once per interval while it fails, and
//! announce its recovery once; and at free space, to raise
//! `herald.storage.low` below `database.min_free_mb` and `herald.storage.ok`
//! once space is back. Alerts are logged and queued as `herald.*` events,
//! which reach any webhook subscribed to them.

use std::sync::Arc;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::base::repeats;
use crate::engines::mail::Mailer;
use crate::store::{Store, now_ms};

/// Longest time between two looks at free space.
const STORAGE_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// The loop. `poke` is notified by the deliverer; `routed_wake` wakes the
/// router when alert events were queued; `mailer`, when e-mail alerts are
/// set up, sends each alert by mail too (on a task of its own: a slow SMTP
/// server never holds the monitor).
pub async fn run(
    store: Store,
    mut live: crate::base::live::Receiver,
    poke: Arc<Notify>,
    router_wake: Arc<Notify>,
    mailer: Option<Mailer>,
    shutdown: CancellationToken,
) {
    let mail = |kind: &'static str, message: String| {
        if let Some(m) = mailer.clone() {
            tokio::spawn(async move {
                if let Err(e) = m.send_alert(kind, &message).await
                    && let Some(held) = repeats::admit(&e.to_string())
                {
                    tracing::error!(error = %e, "an alert could not be sent by e-mail{}", repeats::summary(held));
                }
            });
        }
    };
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
                    mail(n.kind, n.message.clone());
                }
                if !notices.is_empty() {
                    router_wake.notify_one();
                }
            }
            Err(e) => {
                if let Some(held) = repeats::admit(&format!("health: {e}")) {
                    tracing::error!(error = %e, "health check failed; trying again{}", repeats::summary(held));
                }
            }
        }
        match store.run(|st| st.storage_tick()).await {
            Ok(Some(message)) => {
                tracing::warn!("{message}");
                mail("storage", message);
                router_wake.notify_one();
            }
            Ok(None) => {}
            Err(e) => {
                if let Some(held) = repeats::admit(&format!("storage: {e}")) {
                    tracing::error!(error = %e, "cannot raise the storage alert; trying again{}", repeats::summary(held));
                }
            }
        }
        tokio::select! {
            _ = poke.notified() => {}
            _ = tokio::time::sleep(tick.min(STORAGE_EVERY)) => {}
            _ = crate::base::live::changed(&mut live) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}
