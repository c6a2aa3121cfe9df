//! The `log` table: the event log of attempts and invalid events.

use rusqlite::{Connection, params};
use serde::Serialize;

use super::Error;
use super::sqlite::Sqlite;

/// An attempt to record.
#[derive(Debug, Clone, Default)]
pub struct NewLogEntry {
    /// When the attempt started (RFC 3339 UTC).
    pub at: String,
    /// `delivered` or `failed`.
    pub delivered: bool,
    /// Event uuid.
    pub event_uuid: String,
    /// Event type.
    pub event_type: String,
    /// Ticket id.
    pub ticket_id: Option<String>,
    /// Webhook id.
    pub webhook_id: i64,
    /// Webhook name at the time.
    pub webhook_name: String,
    /// Delivery id (none for a test send).
    pub delivery_id: Option<i64>,
    /// Attempt number (none for a test send).
    pub attempt: Option<i64>,
    /// A test send (`herald test`): no delivery, no effect on health.
    pub test: bool,
    /// Time from send to answer (or failure).
    pub duration_ms: i64,
    /// HTTP status, when an answer came.
    pub http_status: Option<u16>,
    /// The error in plain words, when it failed.
    pub error: Option<String>,
    /// Request and response details, only when the webhook logs them.
    pub detail: Option<AttemptDetail>,
}

/// Request and response as logged (secrets already masked).
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct AttemptDetail {
    /// Method.
    pub request_method: String,
    /// URL.
    pub request_url: String,
    /// Headers, one `Field: Value` per line.
    pub request_headers: String,
    /// Body (possibly cut).
    pub request_body: String,
    /// Response headers.
    pub response_headers: Option<String>,
    /// Response body (possibly cut).
    pub response_body: Option<String>,
}

/// A row of the event log.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LogEntry {
    /// Log id.
    pub id: i64,
    /// When.
    pub at: String,
    /// `delivered`, `failed`, `invalid`; for health: `alert`, `paused`,
    /// `resumed`, `recovered`.
    pub outcome: String,
    /// Event uuid.
    pub event_uuid: Option<String>,
    /// Event type.
    pub event_type: Option<String>,
    /// Ticket id.
    pub ticket_id: Option<String>,
    /// Webhook id.
    pub webhook_id: Option<i64>,
    /// Webhook name.
    pub webhook_name: Option<String>,
    /// Delivery id.
    pub delivery_id: Option<i64>,
    /// Attempt number.
    pub attempt: Option<i64>,
    /// Duration.
    pub duration_ms: Option<i64>,
    /// HTTP status.
    pub http_status: Option<i64>,
    /// Error in plain words.
    pub error: Option<String>,
    /// For a failed attempt tried again: when.
    pub retry_at: Option<String>,
    /// A test send.
    pub test: bool,
    /// Request/response, when logged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<AttemptDetail>,
}

/// Which log entries to read.
#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    /// Only this webhook.
    pub webhook_id: Option<i64>,
    /// Only this event uuid.
    pub event_uuid: Option<String>,
    /// Only failed attempts and invalid events.
    pub failed: bool,
    /// Only entries with an id below this (paging, newest first).
    pub before_id: Option<i64>,
    /// Only this event type, or a pattern as webhooks use them
    /// (`ticket.*`; `*` for all but herald's own).
    pub event_type: Option<String>,
    /// Only this ticket id.
    pub ticket_id: Option<String>,
    /// Only this status: `delivered`, `retrying` (failed, tried again
    /// later), `failed` (for good, or an invalid event) or `paused`.
    pub status: Option<String>,
    /// Only entries at or after this time (RFC 3339, UTC).
    pub from: Option<String>,
    /// Only entries before this time (RFC 3339, UTC).
    pub to: Option<String>,
    /// Only attempts of this delivery.
    pub delivery_id: Option<i64>,
    /// At most this many.
    pub limit: usize,
}

/// Inserts an attempt row.
pub(super) fn insert_entry(
    c: &Connection,
    e: &NewLogEntry,
    retry_at: Option<&str>,
) -> Result<(), Error> {
    let d = e.detail.as_ref();
    c.prepare_cached(
        "INSERT INTO log (at, outcome, event_uuid, event_type, ticket_id, webhook_id, webhook_name, delivery_id, attempt,
                          duration_ms, http_status, error, request_method, request_url, request_headers, request_body,
                          response_headers, response_body, retry_at, test)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)",
    )?
    .execute(params![
        e.at,
        if e.delivered { "delivered" } else { "failed" },
        e.event_uuid,
        e.event_type,
        e.ticket_id,
        e.webhook_id,
        e.webhook_name,
        e.delivery_id,
        e.attempt,
        e.duration_ms,
        e.http_status,
        e.error,
        d.map(|d| &d.request_method),
        d.map(|d| &d.request_url),
        d.map(|d| &d.request_headers),
        d.map(|d| &d.request_body),
        d.and_then(|d| d.response_headers.as_ref()),
        d.and_then(|d| d.response_body.as_ref()),
        retry_at,
        e.test,
    ])?;
    Ok(())
}

/// Inserts the log row of an event the router found invalid.
pub(super) fn insert_invalid(
    c: &Connection,
    queue_id: i64,
    uuid: &str,
    kind: &str,
    ticket_id: Option<&str>,
    reason: &str,
    at: &str,
) -> Result<(), Error> {
    c.prepare_cached(
        "INSERT INTO log (at, outcome, event_uuid, event_type, ticket_id, error) VALUES (?1, 'invalid', ?2, ?3, ?4, ?5)",
    )?
    .execute(params![at, uuid, kind, ticket_id, format!("invalid event (queue id {queue_id}): {reason}")])?;
    Ok(())
}

/// Inserts a log row about a webhook's health (alert, pause, resume, recovery).
pub(super) fn insert_notice(
    c: &Connection,
    at: &str,
    outcome: &str,
    webhook_id: i64,
    message: &str,
) -> Result<(), Error> {
    c.prepare_cached(
        "INSERT INTO log (at, outcome, webhook_id, webhook_name, error)
         SELECT ?1, ?2, id, name, ?3 FROM webhooks WHERE id = ?4",
    )?
    .execute(params![at, outcome, message, webhook_id])?;
    Ok(())
}

/// The figures in every page's header.
#[derive(Debug, Clone, Serialize)]
pub struct HeaderStats {
    /// Events and deliveries waiting.
    pub queue: i64,
    /// Attempts delivered in the last hour.
    pub ok_last_hour: i64,
    /// Attempts failed in the last hour.
    pub failed_last_hour: i64,
    /// Webhooks whose last attempts failed.
    pub failing: i64,
    /// Webhooks paused.
    pub paused: i64,
    /// What keeps the database from taking new events, if anything (the
    /// red banner on every page).
    pub storage: Option<super::Condition>,
}

impl Sqlite {
    /// Logs one attempt that settles no delivery (a test send).
    pub fn insert_log_entry(&self, e: &NewLogEntry) -> Result<(), Error> {
        let e = e.to_owned();
        self.write(move |c| insert_entry(c, &e, None))
    }

    /// Reads the log, newest first.
    pub fn log_entries(&self, f: &LogFilter) -> Result<Vec<LogEntry>, Error> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, at, outcome, event_uuid, event_type, ticket_id, webhook_id, webhook_name, delivery_id, attempt,
                        duration_ms, http_status, error, request_method, request_url, request_headers, request_body,
                        response_headers, response_body, retry_at, test
                 FROM log
                 WHERE (?1 IS NULL OR webhook_id = ?1)
                   AND (?2 IS NULL OR event_uuid = ?2)
                   AND (?3 = 0 OR outcome NOT IN ('delivered', 'resumed', 'recovered'))
                   AND (?4 IS NULL OR id < ?4)
                   AND (?6 IS NULL OR event_type = ?6
                        OR (?6 = '*' AND event_type NOT LIKE 'herald.%')
                        OR (?6 LIKE '%.*' AND length(event_type) > length(?6) - 1
                            AND substr(event_type, 1, length(?6) - 1) = substr(?6, 1, length(?6) - 1)))
                   AND (?7 IS NULL OR ticket_id = ?7)
                   AND (?8 IS NULL
                        OR (?8 = 'delivered' AND outcome = 'delivered')
                        OR (?8 = 'retrying' AND outcome = 'failed' AND retry_at IS NOT NULL)
                        OR (?8 = 'failed' AND ((outcome = 'failed' AND retry_at IS NULL) OR outcome = 'invalid'))
                        OR (?8 = 'paused' AND outcome = 'paused'))
                   AND (?9 IS NULL OR at >= ?9)
                   AND (?10 IS NULL OR at < ?10)
                   AND (?11 IS NULL OR delivery_id = ?11)
                 ORDER BY id DESC LIMIT ?5",
            )?;
            let rows = stmt.query_map(
                params![
                    f.webhook_id,
                    f.event_uuid,
                    f.failed,
                    f.before_id,
                    f.limit.max(1) as i64,
                    f.event_type,
                    f.ticket_id,
                    f.status,
                    f.from,
                    f.to,
                    f.delivery_id
                ],
                |r| {
                    let method: Option<String> = r.get(13)?;
                    Ok(LogEntry {
                        id: r.get(0)?,
                        at: r.get(1)?,
                        outcome: r.get(2)?,
                        event_uuid: r.get(3)?,
                        event_type: r.get(4)?,
                        ticket_id: r.get(5)?,
                        webhook_id: r.get(6)?,
                        webhook_name: r.get(7)?,
                        delivery_id: r.get(8)?,
                        attempt: r.get(9)?,
                        duration_ms: r.get(10)?,
                        http_status: r.get(11)?,
                        error: r.get(12)?,
                        retry_at: r.get(19)?,
                        test: r.get(20)?,
                        detail: match method {
                            Some(m) => Some(AttemptDetail {
                                request_method: m,
                                request_url: r.get::<_, Option<String>>(14)?.unwrap_or_default(),
                                request_headers: r.get::<_, Option<String>>(15)?.unwrap_or_default(),
                                request_body: r.get::<_, Option<String>>(16)?.unwrap_or_default(),
                                response_headers: r.get(17)?,
                                response_body: r.get(18)?,
                            }),
                            None => None,
                        },
                    })
                },
            )?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// The newest log entry's id (0 for an empty log): the event log page's
    /// live updates watch it.
    pub fn last_log_id(&self) -> Result<i64, Error> {
        self.read(|c| {
            Ok(c.prepare_cached("SELECT coalesce(max(id), 0) FROM log")?
                .query_row([], |r| r.get(0))?)
        })
    }

    /// Log entry `id`.
    pub fn log_entry(&self, id: i64) -> Result<LogEntry, Error> {
        self.log_entries(&LogFilter {
            before_id: Some(id.saturating_add(1)),
            limit: 1,
            ..LogFilter::default()
        })?
        .into_iter()
        .find(|e| e.id == id)
        .ok_or_else(|| Error::NotFound(format!("log entry {id}")))
    }

    /// The figures of the web admin's header: queue depth (events not yet
    /// routed plus deliveries not finished), attempts delivered and failed
    /// since `since` (RFC 3339), webhooks failing and paused.
    pub fn header_stats(&self) -> Result<HeaderStats, Error> {
        let since = (chrono::Utc::now() - chrono::Duration::hours(1))
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let queue = self.queue_depth()? + self.pending_deliveries()?;
        self.read(|c| {
            let (ok, failed): (i64, i64) = c
                .prepare_cached(
                    "SELECT coalesce(sum(outcome = 'delivered'), 0), coalesce(sum(outcome = 'failed'), 0)
                     FROM log WHERE at >= ?1 AND test = 0",
                )?
                .query_row([&since], |r| Ok((r.get(0)?, r.get(1)?)))?;
            let (failing, paused): (i64, i64) = c
                .prepare_cached(
                    "SELECT coalesce(sum(failure_streak > 0), 0), coalesce(sum(paused_at IS NOT NULL), 0) FROM webhooks",
                )?
                .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(HeaderStats {
                queue,
                ok_last_hour: ok,
                failed_last_hour: failed,
                failing,
                paused,
                storage: self.condition(),
            })
        })
    }

    /// Deletes up to `limit` log entries older than `cutoff`. Returns how many.
    pub fn delete_log_before(&self, cutoff: &str, limit: usize) -> Result<usize, Error> {
        let cutoff = cutoff.to_owned();
        self.write(move |c| {
            Ok(c.execute(
                "DELETE FROM log WHERE id IN (SELECT id FROM log WHERE at < ?1 ORDER BY id LIMIT ?2)",
                params![cutoff, limit as i64],
            )?)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::Sqlite as Store;

    /// The event log's type filter takes a type or a pattern as webhooks
    /// use them: `ticket.*` (every ticket type), `*` (all but herald's own).
    #[test]
    fn the_type_filter_takes_patterns() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("h.db")).unwrap();
        for kind in [
            "ticket.login",
            "ticket.logout.timeout",
            "tickets.x",
            "system.start",
            "herald.webhook.failing",
        ] {
            s.insert_log_entry(&NewLogEntry {
                at: "2026-12-04T00:00:00.000Z".into(),
                event_type: kind.into(),
                test: true,
                ..Default::default()
            })
            .unwrap();
        }
        let types = |filter: &str| -> Vec<String> {
            let mut t: Vec<String> = s
                .log_entries(&LogFilter {
                    event_type: Some(filter.into()),
                    limit: 100,
                    ..LogFilter::default()
                })
                .unwrap()
                .into_iter()
                .filter_map(|e| e.event_type)
                .collect();
            t.sort();
            t
        };
        assert_eq!(types("ticket.*"), ["ticket.login", "ticket.logout.timeout"]);
        assert_eq!(types("ticket.login"), ["ticket.login"]);
        assert_eq!(types("herald.*"), ["herald.webhook.failing"]);
        assert_eq!(types("*").len(), 4);
        assert!(types("ticket").is_empty());
    }
}
