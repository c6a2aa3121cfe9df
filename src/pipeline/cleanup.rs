//! The cleanup job: on its cron schedule, deletes event-log entries and
//! finished events older than the retention, in small batches so the router
//! and deliverer never wait long for the database.

use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use crate::store::{Error, Store};

/// Pause between batches, so other writers get the database in between.
const BETWEEN_BATCHES: Duration = Duration::from_millis(20);

/// What one cleanup run deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Report {
    /// Log entries deleted.
    pub log_entries: usize,
    /// Events (with their finished deliveries) deleted.
    pub events: usize,
}

/// The cutoff time for `retention`, as stored times are written.
pub fn cutoff(retention: Duration) -> String {
    let t = Utc::now() - chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Runs the cleanup once, batch by batch; stops between batches when `stop`
/// is cancelled (what is left goes at the next run).
pub async fn run_once(
    store: &Store,
    retention: Duration,
    batch: usize,
    stop: &CancellationToken,
    progress: &(dyn Fn(&Report) + Sync),
) -> Result<Report, Error> {
    let cut = cutoff(retention);
    let mut report = Report::default();
    loop {
        let c = cut.clone();
        let n = store.run(move |s| s.delete_log_before(&c, batch)).await?;
        report.log_entries += n;
        progress(&report);
        if n < batch || stop.is_cancelled() {
            break;
        }
        tokio::time::sleep(BETWEEN_BATCHES).await;
    }
    loop {
        let c = cut.clone();
        let n = store
            .run(move |s| s.delete_finished_events_before(&c, batch))
            .await?;
        report.events += n;
        progress(&report);
        if n < batch || stop.is_cancelled() {
            break;
        }
        tokio::time::sleep(BETWEEN_BATCHES).await;
    }
    Ok(report)
}

/// The scheduled loop: sleeps until the schedule's next time, runs, repeats.
pub async fn run(
    store: Store,
    mut live: crate::base::live::Receiver,
    batch: usize,
    shutdown: CancellationToken,
) {
    loop {
        let (next, retention) = {
            let l = live.borrow_and_update();
            (l.cleanup_schedule.upcoming(Utc).next(), l.retention)
        };
        let Some(next) = next else {
            tracing::warn!("cleanup schedule has no next time; waiting for a new one");
            tokio::select! {
                _ = crate::base::live::changed(&mut live) => continue,
                _ = shutdown.cancelled() => return,
            }
        };
        let wait = (next - Utc::now()).to_std().unwrap_or_default();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            // A new schedule or retention: work out the next run again.
            _ = crate::base::live::changed(&mut live) => continue,
            _ = shutdown.cancelled() => return,
        }
        // Several routers on one PostgreSQL database: one of them runs it.
        let at = next.timestamp_millis();
        match store
            .run(move |s| s.claim_scheduled_run("cleanup", at))
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                tracing::debug!("cleanup run by another router");
                continue;
            }
            Err(e) => {
                tracing::error!(error = %e, "cleanup not run: the database does not answer; next run as scheduled");
                continue;
            }
        }
        match run_once(&store, retention, batch, &shutdown, &|_| {}).await {
            Ok(r) => tracing::info!(
                log_entries = r.log_entries,
                events = r.events,
                "cleanup done"
            ),
            Err(e) => tracing::error!(error = %e, "cleanup failed; next run as scheduled"),
        }
    }
}
