//! The `log` table on PostgreSQL: attempts written (also inside a
//! settlement's transaction), read newest first through the same filters as
//! SQLite's, summed by hour for the charts, counted for the header and
//! cleaned up in bounded steps.

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::Postgres;
use crate::store::hourly::per_bucket;
use crate::store::{
    AttemptDetail, DURATION_BUCKETS_MS, Error, HeaderStats, HourlyLog, LogEntry, LogFilter,
    NewLogEntry,
};

/// The columns [`entry`] reads, in its order.
const ENTRY_COLUMNS: &str = "id, at, outcome, event_uuid, event_type, ticket_id, webhook_id, webhook_name, delivery_id,
     attempt, duration_ms, http_status, error, request_method, request_url, request_headers, request_body,
     response_headers, response_body, retry_at, test";

/// An attempt whose request went out (as SQLite's `hourly`): it has a
/// duration or a status; one stopped before sending is not timed.
const SENT: &str = "(outcome = 'delivered' OR outcome = 'failed') AND (duration_ms > 0 OR http_status IS NOT NULL)";

/// Inserts an attempt row (on a connection or in a settlement's
/// transaction), as SQLite's `log::insert_entry`.
pub(super) async fn insert_entry(
    tx: &impl GenericClient,
    e: &NewLogEntry,
    retry_at: Option<&str>,
) -> Result<(), Error> {
    let d = e.detail.as_ref();
    let stmt = tx
        .prepare_cached(
            "INSERT INTO log (at, outcome, event_uuid, event_type, ticket_id, webhook_id, webhook_name, delivery_id,
                              attempt, duration_ms, http_status, error, request_method, request_url, request_headers,
                              request_body, response_headers, response_body, retry_at, test)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)",
        )
        .await?;
    tx.execute(
        &stmt,
        &[
            &e.at,
            &if e.delivered { "delivered" } else { "failed" },
            &e.event_uuid,
            &e.event_type,
            &e.ticket_id,
            &e.webhook_id,
            &e.webhook_name,
            &e.delivery_id,
            &e.attempt,
            &e.duration_ms,
            &e.http_status.map(i64::from),
            &e.error,
            &d.map(|d| &d.request_method),
            &d.map(|d| &d.request_url),
            &d.map(|d| &d.request_headers),
            &d.map(|d| &d.request_body),
            &d.and_then(|d| d.response_headers.as_ref()),
            &d.and_then(|d| d.response_body.as_ref()),
            &retry_at,
            &e.test,
        ],
    )
    .await?;
    Ok(())
}

/// Inserts a log row about a webhook's health (alert, pause, resume,
/// recovery), named as the webhook is now; nothing if it is gone.
pub(super) async fn insert_notice(
    tx: &impl GenericClient,
    at: &str,
    outcome: &str,
    webhook_id: i64,
    message: &str,
) -> Result<(), Error> {
    let stmt = tx
        .prepare_cached(
            "INSERT INTO log (at, outcome, webhook_id, webhook_name, error)
             SELECT $1, $2, id, name, $3 FROM webhooks WHERE id = $4",
        )
        .await?;
    tx.execute(&stmt, &[&at, &outcome, &message, &webhook_id])
        .await?;
    Ok(())
}

/// A log row as [`ENTRY_COLUMNS`] lists it.
fn entry(r: &Row) -> Result<LogEntry, Error> {
    let method: Option<String> = r.try_get(13)?;
    Ok(LogEntry {
        id: r.try_get(0)?,
        at: r.try_get(1)?,
        outcome: r.try_get(2)?,
        event_uuid: r.try_get(3)?,
        event_type: r.try_get(4)?,
        ticket_id: r.try_get(5)?,
        webhook_id: r.try_get(6)?,
        webhook_name: r.try_get(7)?,
        delivery_id: r.try_get(8)?,
        attempt: r.try_get(9)?,
        duration_ms: r.try_get(10)?,
        http_status: r.try_get(11)?,
        error: r.try_get(12)?,
        retry_at: r.try_get(19)?,
        test: r.try_get(20)?,
        detail: match method {
            Some(request_method) => Some(AttemptDetail {
                request_method,
                request_url: r.try_get::<_, Option<String>>(14)?.unwrap_or_default(),
                request_headers: r.try_get::<_, Option<String>>(15)?.unwrap_or_default(),
                request_body: r.try_get::<_, Option<String>>(16)?.unwrap_or_default(),
                response_headers: r.try_get(17)?,
                response_body: r.try_get(18)?,
            }),
            None => None,
        },
    })
}

/// A statement's `WHERE` conditions and their parameters, numbered as
/// they are added.
#[derive(Default)]
struct Conditions {
    sql: Vec<String>,
    params: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl Conditions {
    /// Adds condition `sql` when `value` is set, each `?` in it standing
    /// for `value`'s placeholder (`$n`).
    fn add<T: ToSql + Sync + Send + 'static>(&mut self, sql: &str, value: Option<T>) {
        if let Some(v) = value {
            self.params.push(Box::new(v));
            self.sql
                .push(sql.replace('?', &format!("${}", self.params.len())));
        }
    }

    /// The parameters as the client takes them.
    fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params
            .iter()
            .map(|p| &**p as &(dyn ToSql + Sync))
            .collect()
    }
}

/// The conditions of [`LogFilter`] `f`, as SQLite's `log_entries` applies
/// them (its `LIKE` ignores ASCII case: `ILIKE` here).
fn conditions(f: &LogFilter) -> Conditions {
    let mut w = Conditions::default();
    w.add("webhook_id = ?", f.webhook_id);
    w.add("event_uuid = ?", f.event_uuid.clone());
    if f.failed {
        w.sql
            .push("outcome NOT IN ('delivered', 'resumed', 'recovered')".into());
    }
    w.add("id < ?", f.before_id);
    if let Some(kind) = &f.event_type {
        // A type; `*`: all but herald's own; `prefix.*`: longer types
        // beginning with `prefix.`.
        let sql = if kind == "*" {
            "(event_type = ? OR event_type NOT ILIKE 'herald.%')"
        } else if kind.ends_with(".*") {
            "(event_type = ? OR (length(event_type) >= length(?) AND left(event_type, length(?) - 1) = left(?, -1)))"
        } else {
            "event_type = ?"
        };
        w.add(sql, Some(kind.clone()));
    }
    w.add("ticket_id = ?", f.ticket_id.clone());
    if let Some(status) = &f.status {
        w.sql.push(
            match status.as_str() {
                "delivered" => "outcome = 'delivered'",
                "retrying" => "(outcome = 'failed' AND retry_at IS NOT NULL)",
                "failed" => "((outcome = 'failed' AND retry_at IS NULL) OR outcome = 'invalid')",
                "paused" => "outcome = 'paused'",
                _ => "false",
            }
            .into(),
        );
    }
    w.add("at >= ?", f.from.clone());
    w.add("at < ?", f.to.clone());
    w.add("delivery_id = ?", f.delivery_id);
    w
}

/// The grouped read of [`Postgres::hourly_log`]: per webhook and hour the
/// counts, then the timed attempts, then the cumulative count per bucket
/// bound. Ordered by hour, then webhook (none first, as SQLite sorts).
fn hourly_sql() -> String {
    let buckets: String = DURATION_BUCKETS_MS
        .iter()
        .map(|b| format!(", count(*) FILTER (WHERE {SENT} AND duration_ms <= {b})"))
        .collect();
    format!(
        "SELECT webhook_id, substr(at, 1, 13),
                count(*) FILTER (WHERE outcome = 'delivered'), count(*) FILTER (WHERE outcome = 'failed'),
                count(*) FILTER (WHERE outcome <> 'delivered' AND outcome <> 'failed'),
                count(*) FILTER (WHERE {SENT}){buckets}
         FROM log WHERE at >= $1 AND NOT test
         GROUP BY substr(at, 1, 13), webhook_id ORDER BY 2, 1 NULLS FIRST"
    )
}

/// A row of [`hourly_sql`].
fn hourly_row(r: &Row) -> Result<HourlyLog, Error> {
    let mut cumulative = Vec::with_capacity(DURATION_BUCKETS_MS.len() + 1);
    for i in 0..DURATION_BUCKETS_MS.len() {
        cumulative.push(r.try_get::<_, i64>(6 + i)?);
    }
    cumulative.push(r.try_get(5)?);
    let durations = per_bucket(cumulative);
    Ok(HourlyLog {
        webhook_id: r.try_get(0)?,
        hour: r.try_get(1)?,
        delivered: r.try_get(2)?,
        failed: r.try_get(3)?,
        other: r.try_get(4)?,
        durations,
    })
}

impl Postgres {
    /// Log entries since `since` (RFC 3339, UTC) by webhook and hour, test
    /// sends left out. One range read through the log's time index (a test
    /// checks the plan).
    pub(in crate::store) fn hourly_log(&self, since: &str) -> Result<Vec<HourlyLog>, Error> {
        self.block(async {
            let c = self.client().await?;
            let stmt = c.prepare_cached(&hourly_sql()).await?;
            c.query(&stmt, &[&since])
                .await?
                .iter()
                .map(hourly_row)
                .collect()
        })
    }

    /// Logs one attempt that settles no delivery (a test send).
    pub(in crate::store) fn insert_log_entry(&self, e: &NewLogEntry) -> Result<(), Error> {
        self.block(async {
            let c = self.client().await?;
            insert_entry(&c, e, None).await
        })
    }

    /// Reads the log, newest first.
    pub(in crate::store) fn log_entries(&self, f: &LogFilter) -> Result<Vec<LogEntry>, Error> {
        let mut w = conditions(f);
        w.sql.push("true".into());
        let filter = w.sql.join(" AND ");
        w.params.push(Box::new(f.limit.max(1) as i64));
        let limit = w.params.len();
        let sql = format!(
            "SELECT {ENTRY_COLUMNS} FROM log WHERE {filter} ORDER BY id DESC LIMIT ${limit}"
        );
        self.block(async {
            let c = self.client().await?;
            let stmt = c.prepare_cached(&sql).await?;
            c.query(&stmt, &w.params())
                .await?
                .iter()
                .map(entry)
                .collect()
        })
    }

    /// The newest log entry's id (0 for an empty log): the event log page's
    /// live updates watch it.
    pub(in crate::store) fn last_log_id(&self) -> Result<i64, Error> {
        self.block(async {
            let c = self.client().await?;
            let stmt = c
                .prepare_cached("SELECT coalesce(max(id), 0) FROM log")
                .await?;
            Ok(c.query_one(&stmt, &[]).await?.try_get(0)?)
        })
    }

    /// Log entry `id`.
    pub(in crate::store) fn log_entry(&self, id: i64) -> Result<LogEntry, Error> {
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
    /// in the last hour, webhooks failing and paused, and what keeps the
    /// database from being written (a server that does not answer).
    pub(in crate::store) fn header_stats(&self) -> Result<HeaderStats, Error> {
        let since = (chrono::Utc::now() - chrono::Duration::hours(1))
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let mut stats = self.block(async {
            let c = self.client().await?;
            let stmt = c
                .prepare_cached(
                    "SELECT (SELECT count(*) FROM events WHERE state = 'queued')
                              + (SELECT count(*) FROM deliveries WHERE state = 'pending'),
                            (SELECT count(*) FROM log WHERE at >= $1 AND NOT test AND outcome = 'delivered'),
                            (SELECT count(*) FROM log WHERE at >= $1 AND NOT test AND outcome = 'failed'),
                            (SELECT count(*) FROM webhooks WHERE failure_streak > 0),
                            (SELECT count(*) FROM webhooks WHERE paused_at IS NOT NULL)",
                )
                .await?;
            let r = c.query_one(&stmt, &[&since]).await?;
            Ok(HeaderStats {
                queue: r.try_get(0)?,
                ok_last_hour: r.try_get(1)?,
                failed_last_hour: r.try_get(2)?,
                failing: r.try_get(3)?,
                paused: r.try_get(4)?,
                storage: None,
            })
        })?;
        stats.storage = self.condition();
        Ok(stats)
    }

    /// Deletes up to `limit` log entries older than `cutoff`, oldest first
    /// (PostgreSQL has no `DELETE … LIMIT`: the ids are chosen by a
    /// subquery). Returns how many.
    pub(in crate::store) fn delete_log_before(
        &self,
        cutoff: &str,
        limit: usize,
    ) -> Result<usize, Error> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.block(async {
            let c = self.client().await?;
            let stmt = c
                .prepare_cached(
                    "DELETE FROM log WHERE id IN (SELECT id FROM log WHERE at < $1 ORDER BY id LIMIT $2)",
                )
                .await?;
            Ok(c.execute(&stmt, &[&cutoff, &limit]).await? as usize)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::postgres::test_server::TempPostgres;

    /// A server, the name of a new database on it, and a handle on it.
    fn open() -> (TempPostgres, String, Postgres) {
        let server = TempPostgres::start();
        let url = server.new_database();
        let pg = Postgres::open(&crate::base::config::DatabaseUrl::parse(&url).unwrap()).unwrap();
        let db = url.rsplit('/').next().unwrap().to_owned();
        (server, db, pg)
    }

    /// Logs an attempt of webhook 1 at `at`, of type `kind`.
    fn log(pg: &Postgres, at: &str, kind: &str, delivered: bool, test: bool) {
        pg.insert_log_entry(&NewLogEntry {
            at: at.into(),
            delivered,
            event_uuid: format!("uuid-{at}"),
            event_type: kind.into(),
            webhook_id: 1,
            test,
            ..Default::default()
        })
        .unwrap();
    }

    /// The ids `set` selects on a filter of at most 100, newest first.
    fn ids(pg: &Postgres, set: impl FnOnce(&mut LogFilter)) -> Vec<i64> {
        let mut f = LogFilter {
            limit: 100,
            ..LogFilter::default()
        };
        set(&mut f);
        pg.log_entries(&f).unwrap().iter().map(|e| e.id).collect()
    }

    /// The event log's type filter takes a type or a pattern as webhooks
    /// use them: `ticket.*` (every ticket type), `*` (all but herald's own).
    #[test]
    fn the_type_filter_takes_patterns() {
        let (_server, _db, pg) = open();
        let kinds =
            "ticket.login ticket.logout.timeout tickets.x system.start herald.webhook.failing";
        let kinds: Vec<&str> = kinds.split(' ').collect();
        for &kind in &kinds {
            log(&pg, "2026-12-04T00:00:00.000Z", kind, true, true);
        }
        let types = |filter: &str| -> Vec<&str> {
            let mut t: Vec<&str> = ids(&pg, |f| f.event_type = Some(filter.into()))
                .into_iter()
                .map(|id| kinds[id as usize - 1])
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

    #[test]
    fn entries_are_written_whole_and_read_through_every_filter_newest_first() {
        let (server, db, pg) = open();
        assert_eq!(pg.last_log_id().unwrap(), 0);
        let detail = AttemptDetail {
            request_method: "POST".into(),
            response_body: Some("ok".into()),
            ..AttemptDetail::default()
        };
        let first = NewLogEntry {
            at: "2026-12-07T10:00:00.000Z".into(),
            delivered: true,
            event_uuid: "u1".into(),
            ticket_id: Some("T-1".into()),
            webhook_id: 1,
            delivery_id: Some(7),
            attempt: Some(1),
            http_status: Some(200),
            detail: Some(detail),
            ..NewLogEntry::default()
        };
        pg.insert_log_entry(&first).unwrap();
        log(&pg, "2026-12-07T11:00:00.000Z", "a", false, false);
        log(&pg, "2026-12-07T12:00:00.000Z", "a", true, false);
        // A failed attempt tried again later, an invalid event, a pause.
        server.psql(
            &db,
            "INSERT INTO log (at, outcome, webhook_id, retry_at) VALUES ('2026-12-07T13:00:00.000Z', 'failed', 2, 'x');
             INSERT INTO log (at, outcome, event_type) VALUES ('2026-12-07T14:00:00.000Z', 'invalid', 'x');
             INSERT INTO log (at, outcome, webhook_id) VALUES ('2026-12-07T15:00:00.000Z', 'paused', 2);",
        );
        assert_eq!(pg.last_log_id().unwrap(), 6);
        assert_eq!(ids(&pg, |_| ()), [6, 5, 4, 3, 2, 1]);
        let e = pg.log_entry(1).unwrap();
        assert_eq!(
            (e.outcome.as_str(), e.http_status, e.test),
            ("delivered", Some(200), false)
        );
        assert_eq!(
            (e.ticket_id, e.delivery_id, e.attempt),
            (Some("T-1".into()), Some(7), Some(1))
        );
        let d = e.detail.unwrap();
        assert_eq!(
            (d.request_method.as_str(), d.response_body.as_deref()),
            ("POST", Some("ok"))
        );
        assert!(d.response_headers.is_none() && pg.log_entry(2).unwrap().detail.is_none());
        assert!(matches!(pg.log_entry(99), Err(Error::NotFound(_))));

        assert_eq!(ids(&pg, |f| f.webhook_id = Some(2)), [6, 4]);
        assert_eq!(ids(&pg, |f| f.failed = true), [6, 5, 4, 2]);
        assert_eq!(ids(&pg, |f| f.event_uuid = Some("u1".into())), [1]);
        assert_eq!(ids(&pg, |f| f.ticket_id = Some("T-1".into())), [1]);
        assert_eq!(ids(&pg, |f| f.delivery_id = Some(7)), [1]);
        assert_eq!(ids(&pg, |f| f.status = Some("delivered".into())), [3, 1]);
        assert_eq!(ids(&pg, |f| f.status = Some("retrying".into())), [4]);
        assert_eq!(ids(&pg, |f| f.status = Some("failed".into())), [5, 2]);
        assert_eq!(ids(&pg, |f| f.status = Some("paused".into())), [6]);
        assert!(ids(&pg, |f| f.status = Some("nonsense".into())).is_empty());
        let window = |f: &mut LogFilter| {
            f.from = Some("2026-12-07T11:00:00.000Z".into());
            f.to = Some("2026-12-07T13:00:00.000Z".into());
        };
        assert_eq!(ids(&pg, window), [3, 2]);
        // Filters combine; paging goes on below the last id seen.
        assert_eq!(
            ids(&pg, |f| (f.webhook_id, f.failed) = (Some(1), true)),
            [2]
        );
        assert_eq!(ids(&pg, |f| f.limit = 2), [6, 5]);
        assert_eq!(ids(&pg, |f| (f.limit, f.before_id) = (2, Some(5))), [4, 3]);
        assert_eq!(ids(&pg, |f| (f.limit, f.before_id) = (2, Some(2))), [1]);
    }

    #[test]
    fn old_entries_are_deleted_oldest_first_up_to_the_limit() {
        let (_server, _db, pg) = open();
        for day in ["01", "02", "03", "09"] {
            log(
                &pg,
                &format!("2026-12-{day}T00:00:00.000Z"),
                "a",
                true,
                false,
            );
        }
        let cutoff = "2026-12-05T00:00:00.000Z";
        assert_eq!(pg.delete_log_before(cutoff, 2).unwrap(), 2);
        assert_eq!(ids(&pg, |_| ()), [4, 3]);
        assert_eq!(pg.delete_log_before(cutoff, 2).unwrap(), 1);
        assert_eq!(pg.delete_log_before(cutoff, 2).unwrap(), 0);
        assert_eq!(ids(&pg, |_| ()), [4]);
    }

    #[test]
    fn header_stats_count_the_queue_the_last_hour_and_webhook_health() {
        let (server, db, pg) = open();
        let now = crate::base::event::now_rfc3339();
        for (ok, test) in [(true, false), (true, false), (false, false), (true, true)] {
            log(&pg, &now, "a", ok, test);
        }
        log(&pg, "2020-01-01T00:00:00.000Z", "a", false, false);
        server.psql(
            &db,
            "INSERT INTO webhooks (name, url, method, events, body_mime, timeout_ms, created_at, updated_at, failure_streak, paused_at)
             SELECT 'w', 'http://127.0.0.1:9/', 'POST', '[\"*\"]', 'application/json', 5000, 'x', 'x', streak, paused
             FROM (VALUES (3, 'x'), (1, NULL), (0, NULL)) AS v (streak, paused);
             INSERT INTO events (type, state) VALUES ('a.b', 'queued'), ('a.b', 'routed'), ('a.b', 'routed');
             INSERT INTO deliveries (event_id, webhook_id, state, next_attempt_at, created_at, updated_at)
             VALUES (2, 1, 'pending', 0, 'x', 'x'), (3, 1, 'delivered', 0, 'x', 'x');",
        );
        let h = pg.header_stats().unwrap();
        assert_eq!((h.queue, h.ok_last_hour, h.failed_last_hour), (2, 2, 1));
        assert_eq!((h.failing, h.paused), (2, 1));
        assert!(h.storage.is_none());
    }

    #[test]
    fn the_log_is_summed_by_webhook_and_hour() {
        let (server, db, pg) = open();
        server.psql(
            &db,
            "INSERT INTO log (at, outcome, webhook_id, duration_ms, test, error) VALUES
               ('2026-12-07T10:05:00.000Z', 'delivered', 1, 3, false, NULL),
               ('2026-12-07T10:59:59.999Z', 'delivered', 1, 40, false, NULL),
               ('2026-12-07T10:30:00.000Z', 'failed', 1, 7000, false, NULL),
               ('2026-12-07T11:00:00.000Z', 'delivered', 1, 3, false, NULL),
               ('2026-12-07T10:10:00.000Z', 'invalid', NULL, NULL, false, NULL),
               ('2026-12-07T10:40:00.000Z', 'delivered', 2, 100000, false, NULL),
               ('2026-12-06T10:10:00.000Z', 'delivered', 1, 3, false, NULL),
               ('2026-12-07T10:10:00.000Z', 'delivered', 1, 3, true, NULL),
               ('2026-12-07T10:20:00.000Z', 'failed', 1, 0, false, 'token fetch failed');",
        );
        let rows = pg.hourly_log("2026-12-07T00:00:00.000Z").unwrap();
        let order: Vec<(&str, Option<i64>)> = rows
            .iter()
            .map(|r| (r.hour.as_str(), r.webhook_id))
            .collect();
        let (h10, h11) = ("2026-12-07T10", "2026-12-07T11");
        assert_eq!(
            order,
            [(h10, None), (h10, Some(1)), (h10, Some(2)), (h11, Some(1))],
            "by hour, then webhook"
        );
        let w1 = &rows[1];
        assert_eq!(
            (w1.delivered, w1.failed, w1.other),
            (2, 2, 0),
            "the test send is left out"
        );
        assert_eq!(w1.durations.len(), DURATION_BUCKETS_MS.len() + 1);
        assert_eq!(
            w1.durations.iter().sum::<i64>(),
            3,
            "the attempt never sent is not timed"
        );
        assert_eq!(
            (w1.durations[0], w1.durations[3], w1.durations[10]),
            (1, 1, 1)
        );
        assert_eq!(
            (rows[0].other, rows[0].durations.iter().sum::<i64>()),
            (1, 0)
        );
        assert_eq!(
            rows[2].p95_ms(),
            Some(crate::store::BEYOND_MS),
            "past 30 s: the open bucket"
        );
        // A range read through the time index, not the whole log (with
        // sequential scans off: the table is too small to need an index).
        let sql = hourly_sql().replace("$1", "'2026-12-07T00:00:00.000Z'");
        let plan = server.psql(&db, &format!("SET enable_seqscan = off; EXPLAIN {sql}"));
        assert!(plan.contains("log_at"), "{plan}");
    }
}
