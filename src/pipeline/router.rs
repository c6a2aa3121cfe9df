//! The router: reads the queue every `read_interval` (or at once when woken
//! by herald's own ingest), checks each event, and in one transaction per
//! batch creates a delivery for every enabled webhook whose patterns match.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::base::event::{check_time, check_type, check_uuid, parse_stored_data, pattern_matches};
use crate::store::{QueuedEvent, Store, WebhookRoute};

/// Pause after a storage error before trying again.
const ON_ERROR: Duration = Duration::from_secs(1);

/// Decides where one queued row goes: the ids of the webhooks to deliver to
/// with the event's parsed data (kept for sending it), or why the row is not
/// a valid event.
pub fn decide(
    row: &QueuedEvent,
    routes: &[WebhookRoute],
) -> Result<(Vec<i64>, Map<String, Value>), String> {
    decide_parsed(row, None, routes)
}

/// [`decide`] for a row whose data the store already holds parsed
/// (`parsed`: an event the API has just queued, checked when it came in),
/// so it is not parsed again.
pub fn decide_parsed(
    row: &QueuedEvent,
    parsed: Option<Map<String, Value>>,
    routes: &[WebhookRoute],
) -> Result<(Vec<i64>, Map<String, Value>), String> {
    if let Some(reason) = &row.unreadable {
        return Err(reason.clone());
    }
    check_type(&row.kind).map_err(|e| e.to_string())?;
    check_uuid(&row.uuid).map_err(|e| e.to_string())?;
    check_time(&row.created_at).map_err(|e| e.to_string())?;
    let data = match parsed {
        Some(data) => data,
        None => parse_stored_data(&row.data).map_err(|e| e.to_string())?,
    };
    let webhooks = routes
        .iter()
        .filter(|w| w.patterns.iter().any(|p| pattern_matches(p, &row.kind)))
        .map(|w| w.id)
        .collect();
    Ok((webhooks, data))
}

/// The polling loop. `wake` is notified by herald's ingest; `routed` is
/// notified after every batch that created deliveries, so sending begins
/// while a long queue is still being routed; every routed event goes to the
/// live stream's `hub` once its batch is committed.
pub async fn run(
    store: Store,
    mut live: crate::base::live::Receiver,
    batch_size: usize,
    wake: Arc<Notify>,
    routed: Arc<Notify>,
    hub: Arc<crate::pipeline::stream::Hub>,
    shutdown: CancellationToken,
) {
    loop {
        match store
            .run(move |s| s.route_batch(batch_size, decide_parsed))
            .await
        {
            Ok(stats) => {
                hub.publish(&stats.routed);
                count(&stats);
                if stats.invalid > 0 {
                    tracing::warn!(
                        invalid = stats.invalid,
                        "events marked invalid; see `herald log --failed`"
                    );
                }
                if stats.deliveries > 0 {
                    tracing::debug!(
                        events = stats.events,
                        deliveries = stats.deliveries,
                        "routed"
                    );
                    routed.notify_one();
                }
                if stats.read == batch_size && !shutdown.is_cancelled() {
                    continue; // More may be queued: the next batch at once.
                }
            }
            Err(e) => {
                if let Some(held) = crate::base::repeats::admit(&format!("route: {e}")) {
                    tracing::error!(error = %e, "routing failed; retrying{}", crate::base::repeats::summary(held));
                }
                tokio::select! {
                    _ = tokio::time::sleep(ON_ERROR) => continue,
                    _ = shutdown.cancelled() => return,
                }
            }
        }
        let read_interval = live.borrow().read_interval;
        tokio::select! {
            _ = tokio::time::sleep(read_interval) => {}
            _ = wake.notified() => {}
            // A new read interval counts from now.
            _ = crate::base::live::changed(&mut live) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

/// Counts a routing transaction's events for `/metrics`.
fn count(stats: &crate::store::RouteStats) {
    use crate::base::metrics::{EVENTS_INGESTED, EVENTS_ROUTED};
    let s = stats.sources;
    for (source, n) in [
        ("api", s.api),
        ("cli", s.cli),
        ("sql", s.sql),
        ("herald", s.herald),
    ] {
        if n > 0 {
            metrics::counter!(EVENTS_INGESTED, "source" => source).increment(n);
        }
    }
    let routed = (stats.events - stats.invalid) as u64;
    if routed > 0 {
        metrics::counter!(EVENTS_ROUTED).increment(routed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(kind: &str, data: &str) -> QueuedEvent {
        QueuedEvent {
            id: 1,
            uuid: uuid::Uuid::new_v4().to_string(),
            kind: kind.into(),
            created_at: "2026-11-20T08:15:02Z".into(),
            ticket_id: None,
            data: data.into(),
            unreadable: None,
            source: None,
        }
    }

    #[test]
    fn fans_out_by_pattern() {
        let routes = vec![
            WebhookRoute {
                id: 1,
                patterns: vec!["ticket.login".into()],
            },
            WebhookRoute {
                id: 2,
                patterns: vec!["ticket.*".into()],
            },
            WebhookRoute {
                id: 3,
                patterns: vec!["*".into()],
            },
            WebhookRoute {
                id: 4,
                patterns: vec!["system.*".into()],
            },
        ];
        assert_eq!(
            decide(&row("ticket.login", "{}"), &routes).unwrap().0,
            vec![1, 2, 3]
        );
        assert_eq!(
            decide(&row("ticket.logout", "{}"), &routes).unwrap().0,
            vec![2, 3]
        );
        assert_eq!(
            decide(&row("system.start", "{}"), &routes).unwrap().0,
            vec![3, 4]
        );
    }

    #[test]
    fn invalid_rows_say_why() {
        assert!(
            decide(&row("ticket.login", "[1]"), &[])
                .unwrap_err()
                .contains("JSON object")
        );
        assert!(
            decide(&row("ticket.login", "nope"), &[])
                .unwrap_err()
                .contains("not valid JSON")
        );
        assert!(decide(&row("", "{}"), &[]).unwrap_err().contains("type"));
        let mut r = row("ticket.login", "{}");
        r.created_at = "yesterday".into();
        assert!(decide(&r, &[]).unwrap_err().contains("created_at"));
    }
}
