//! Webhook health on PostgreSQL, as on SQLite: the failure streak kept up
//! by every attempt, and the monitor's decisions (pause after a long
//! outage, an alert once per interval while failing, recovery announced
//! once), each written to the log and queued as a `herald.webhook.*` event
//! in the same transaction.
//!
//! With several routers on one database, each runs the monitor: a tick
//! runs under an advisory lock ([`HEALTH_LOCK`]) and locks the rows it
//! decides on, so a notice is raised once per cluster.

use deadpool_postgres::{GenericClient, Transaction};
use serde_json::json;

use super::Postgres;
use super::log::insert_notice;
use crate::base::event::now_rfc3339;
use crate::store::health::Failing;
use crate::store::{
    EVENT_FAILING, EVENT_PAUSED, EVENT_RECOVERED, Error, Notice, ms_to_rfc3339, now_ms,
};

/// The advisory lock a health tick holds ("health" in ASCII): one router
/// of the cluster looks at a time; the others skip their tick.
const HEALTH_LOCK: i64 = 0x6865_616c_7468;

/// Keeps a webhook's failure streak after an attempt (in the attempt's
/// transaction), as SQLite's `health::note_attempt`. Returns whether the
/// monitor should look now: a streak began, or a streak that raised an
/// alert ended. A streak also ends (quietly) when a delivery failed for
/// good (`gave_up`) and nothing else is waiting.
pub(super) async fn note_attempt(
    tx: &impl GenericClient,
    webhook_id: i64,
    delivered: bool,
    error: Option<&str>,
    now: &str,
    gave_up: bool,
) -> Result<bool, Error> {
    if delivered {
        let stmt = tx
            .prepare_cached(
                "UPDATE webhooks SET failing_since_ms = NULL, last_failure_ms = NULL, failure_streak = 0,
                        last_error = NULL, recovery_pending = recovery_pending OR alerted, alerted = false,
                        last_attempt_at = $2, last_status = 'delivered'
                 WHERE id = $1 RETURNING recovery_pending",
            )
            .await?;
        let row = tx.query_opt(&stmt, &[&webhook_id, &now]).await?;
        return Ok(match row {
            Some(r) => r.try_get(0)?,
            None => false, // Deleted meanwhile.
        });
    }
    let stmt = tx
        .prepare_cached(
            "UPDATE webhooks SET failing_since_ms = coalesce(failing_since_ms, $3), last_failure_ms = $3,
                    failure_streak = failure_streak + 1, last_error = $4, recovery_pending = false,
                    last_attempt_at = $2, last_status = 'failed'
             WHERE id = $1 RETURNING failure_streak",
        )
        .await?;
    let streak: Option<i64> = match tx
        .query_opt(&stmt, &[&webhook_id, &now, &now_ms(), &error])
        .await?
    {
        Some(r) => Some(r.try_get(0)?),
        None => None,
    };
    if gave_up {
        let stmt = tx
            .prepare_cached(
                "UPDATE webhooks SET failing_since_ms = NULL, last_failure_ms = NULL, failure_streak = 0
                 WHERE id = $1 AND paused_at IS NULL
                   AND NOT EXISTS (SELECT 1 FROM deliveries WHERE webhook_id = $1 AND state = 'pending')",
            )
            .await?;
        tx.execute(&stmt, &[&webhook_id]).await?;
    }
    Ok(streak == Some(1))
}

/// Queues a `herald.*` event for the webhooks subscribed to it.
async fn queue_notice_event(
    tx: &impl GenericClient,
    kind: &str,
    data: serde_json::Value,
) -> Result<(), Error> {
    let stmt = tx
        .prepare_cached(
            "INSERT INTO events (uuid, type, created_at, data, source) VALUES ($1, $2, $3, $4, 'herald')",
        )
        .await?;
    tx.execute(
        &stmt,
        &[
            &uuid::Uuid::new_v4().to_string(),
            &kind,
            &now_rfc3339(),
            &data.to_string(),
        ],
    )
    .await?;
    Ok(())
}

/// A webhook the monitor looks at: failing, or recovered and not yet
/// announced. What it announces, and in which words, is SQLite's
/// [`Failing`], shared.
struct Watched {
    webhook: Failing,
    /// Failing and enabled: the monitor may alert or pause.
    failing: bool,
    recovery_pending: bool,
}

/// The body of [`Postgres::health_tick`], in the transaction holding
/// [`HEALTH_LOCK`]. The rows it decides on are locked first, by id (a
/// settlement committing meanwhile waits, and is seen by the next tick).
async fn tick(
    tx: &Transaction<'_>,
    now_ms: i64,
    pause_after: Option<std::time::Duration>,
    first_alert: std::time::Duration,
    alert_every: std::time::Duration,
) -> Result<Vec<Notice>, Error> {
    // Logged at the time the decisions were made on, so the log shows
    // exactly the spacing the interval enforces.
    let at = ms_to_rfc3339(now_ms);
    let stmt = tx
        .prepare_cached(
            "SELECT id, name, failing_since_ms IS NOT NULL AND enabled, coalesce(failing_since_ms, 0),
                    failure_streak, last_error, paused_at IS NOT NULL, last_failure_ms, last_alert_ms,
                    recovery_pending
             FROM webhooks WHERE (failing_since_ms IS NOT NULL AND enabled) OR recovery_pending
             ORDER BY id FOR UPDATE",
        )
        .await?;
    let mut watched = Vec::new();
    for r in tx.query(&stmt, &[]).await? {
        watched.push(Watched {
            webhook: Failing {
                id: r.try_get(0)?,
                name: r.try_get(1)?,
                since_ms: r.try_get(3)?,
                streak: r.try_get(4)?,
                last_error: r.try_get(5)?,
                paused: r.try_get(6)?,
                last_failure_ms: r.try_get(7)?,
                last_alert_ms: r.try_get(8)?,
            },
            failing: r.try_get(2)?,
            recovery_pending: r.try_get(9)?,
        });
    }
    let mut notices = Vec::new();
    for w in watched
        .iter_mut()
        .filter(|w| w.failing)
        .map(|w| &mut w.webhook)
    {
        let Some(n) = w.notice(now_ms, pause_after, first_alert, alert_every) else {
            continue;
        };
        let event = if n.kind == "paused" {
            let stmt = tx
                .prepare_cached(
                    "UPDATE webhooks SET paused_at = $2, pause_reason = $3 WHERE id = $1",
                )
                .await?;
            tx.execute(&stmt, &[&w.id, &at, &n.message]).await?;
            w.paused = true;
            EVENT_PAUSED
        } else {
            EVENT_FAILING
        };
        let stmt = tx
            .prepare_cached("UPDATE webhooks SET last_alert_ms = $2, alerted = true WHERE id = $1")
            .await?;
        tx.execute(&stmt, &[&w.id, &now_ms]).await?;
        insert_notice(tx, &at, n.kind, w.id, &n.message).await?;
        let mut data = w.describe();
        data["message"] = n.message.clone().into();
        queue_notice_event(tx, event, data).await?;
        notices.push(n);
    }
    let recovered: Vec<&Failing> = watched
        .iter()
        .filter(|w| w.recovery_pending)
        .map(|w| &w.webhook)
        .collect();
    if !recovered.is_empty() {
        let ids: Vec<i64> = recovered.iter().map(|w| w.id).collect();
        let stmt = tx
            .prepare_cached("UPDATE webhooks SET recovery_pending = false WHERE id = ANY($1)")
            .await?;
        tx.execute(&stmt, &[&ids]).await?;
    }
    for w in recovered {
        let (id, name) = (w.id, &w.name);
        let message = format!("webhook {name:?} ({id}) delivers again");
        insert_notice(tx, &at, "recovered", id, &message).await?;
        queue_notice_event(
            tx,
            EVENT_RECOVERED,
            json!({"webhook_id": id, "webhook_name": name, "message": message}),
        )
        .await?;
        notices.push(Notice {
            webhook_id: id,
            kind: "recovered",
            message,
        });
    }
    Ok(notices)
}

/// Whether webhook `id` exists ([`Error::NotFound`] if not).
async fn must_exist(tx: &impl GenericClient, id: i64) -> Result<(), Error> {
    let stmt = tx
        .prepare_cached("SELECT 1 FROM webhooks WHERE id = $1")
        .await?;
    match tx.query_opt(&stmt, &[&id]).await? {
        Some(_) => Ok(()),
        None => Err(Error::NotFound(format!("webhook {id}"))),
    }
}

impl Postgres {
    /// One look by the health monitor at `now_ms`: pauses webhooks whose
    /// failed attempts span `pause_after` (if set), raises an alert for
    /// each webhook failing for at least `first_alert` and not alerted
    /// within `alert_every`, and announces the recovery of an alerted
    /// webhook once. Returns what it announced: nothing while another
    /// router of the cluster is at its own tick (it announces).
    pub(in crate::store) fn health_tick(
        &self,
        now_ms: i64,
        pause_after: Option<std::time::Duration>,
        first_alert: std::time::Duration,
        alert_every: std::time::Duration,
    ) -> Result<Vec<Notice>, Error> {
        self.block(async {
            let notices = self
                .once_per_cluster(HEALTH_LOCK, async |tx| {
                    tick(tx, now_ms, pause_after, first_alert, alert_every).await
                })
                .await?;
            Ok(notices.unwrap_or_default())
        })
    }

    /// Pauses webhook `id` by hand: nothing is sent until it is resumed;
    /// new events for it are kept.
    pub(in crate::store) fn pause_webhook(&self, id: i64, reason: &str) -> Result<(), Error> {
        self.block(async {
            let mut c = self.client().await?;
            let tx = c.transaction().await?;
            let stmt = tx
                .prepare_cached(
                    "UPDATE webhooks SET paused_at = $2, pause_reason = $3 WHERE id = $1 AND paused_at IS NULL",
                )
                .await?;
            if tx.execute(&stmt, &[&id, &now_rfc3339(), &reason]).await? == 0 {
                return must_exist(&tx, id).await; // Already paused.
            }
            insert_notice(&tx, &now_rfc3339(), "paused", id, reason).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Resumes paused webhook `id` ([`Error::Conflict`] if it is not
    /// paused): clears the pause and the failure streak (so the pause
    /// window starts over) and makes its whole backlog due now, for a new
    /// round of tries. Deliveries in flight (under a live lease of any
    /// router) keep their tries: their settlement counts on them. An alert
    /// raised before stays on record: the first success announces the
    /// recovery. Returns how many deliveries were waiting.
    pub(in crate::store) fn resume_webhook(&self, id: i64) -> Result<usize, Error> {
        self.block(async {
            let mut c = self.client().await?;
            let tx = c.transaction().await?;
            let stmt = tx
                .prepare_cached(
                    "UPDATE webhooks SET paused_at = NULL, pause_reason = NULL, failing_since_ms = NULL,
                            last_failure_ms = NULL, failure_streak = 0
                     WHERE id = $1 AND paused_at IS NOT NULL",
                )
                .await?;
            if tx.execute(&stmt, &[&id]).await? == 0 {
                must_exist(&tx, id).await?;
                return Err(Error::Conflict(format!("webhook {id} is not paused")));
            }
            let now = now_ms();
            let stmt = tx
                .prepare_cached(
                    "UPDATE deliveries SET next_attempt_at = $2, tries = 0
                     WHERE webhook_id = $1 AND state = 'pending'
                       AND (claimed_by IS NULL OR lease_until IS NULL OR lease_until <= $2)",
                )
                .await?;
            let backlog = tx.execute(&stmt, &[&id, &now]).await? as usize;
            let message = format!("resumed by an admin; {backlog} waiting deliveries are sent now");
            insert_notice(&tx, &now_rfc3339(), "resumed", id, &message).await?;
            // Every router's deliverer: the backlog is due now.
            tx.execute("SELECT pg_notify('herald_deliveries', '')", &[])
                .await?;
            tx.commit().await?;
            Ok(backlog)
        })
    }

    /// One look by the health monitor at free space. Nothing to watch on
    /// PostgreSQL: the watermark is about the disk holding a local SQLite
    /// file, and the server's own disk is not this router's to measure (a
    /// full one shows as [`crate::store::Fault::DiskFull`] on the writes it
    /// refuses).
    pub(in crate::store) fn storage_tick(&self) -> Result<Option<String>, Error> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::postgres::test_server::TempPostgres;
    use std::time::Duration;

    const ZERO: Duration = Duration::ZERO;
    const HOUR: Duration = Duration::from_secs(3600);

    /// A server, the name of a new database on it, a handle on it, and a
    /// webhook's id.
    fn open() -> (TempPostgres, String, Postgres, i64) {
        let server = TempPostgres::start();
        let url = server.new_database();
        let pg = Postgres::open(&crate::base::config::DatabaseUrl::parse(&url).unwrap()).unwrap();
        let db = url.rsplit('/').next().unwrap().to_owned();
        let id = server.psql(
            &db,
            "INSERT INTO webhooks (name, url, method, events, body_mime, timeout_ms, created_at, updated_at)
             VALUES ('example', 'http://127.0.0.1:9/', 'POST', '[\"*\"]', 'application/json', 5000, 'x', 'x')
             RETURNING id",
        );
        (server, db, pg, id.parse().unwrap())
    }

    /// Notes an attempt of webhook `id`; whether the monitor should look.
    fn attempt(pg: &Postgres, id: i64, ok: bool) -> bool {
        pg.block(async {
            let c = pg.client().await?;
            note_attempt(
                &c,
                id,
                ok,
                (!ok).then_some("HTTP 503"),
                &now_rfc3339(),
                false,
            )
            .await
        })
        .unwrap()
    }

    fn count(server: &TempPostgres, db: &str, sql: &str) -> i64 {
        server.psql(db, sql).parse().unwrap()
    }

    fn events_of(server: &TempPostgres, db: &str, kind: &str) -> i64 {
        count(
            server,
            db,
            &format!("SELECT count(*) FROM events WHERE type = '{kind}'"),
        )
    }

    #[test]
    fn alert_once_per_interval_then_recovery_once() {
        let (server, db, pg, id) = open();
        assert!(attempt(&pg, id, false), "a new streak pokes the monitor");
        assert!(!attempt(&pg, id, false));
        let now = now_ms();
        let first = pg.health_tick(now, None, ZERO, HOUR).unwrap();
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].kind, "alert");
        assert!(
            first[0].message.contains("2 attempts in a row"),
            "{}",
            first[0].message
        );
        // Within the hour: nothing more.
        assert!(
            pg.health_tick(now + 1000, None, ZERO, HOUR)
                .unwrap()
                .is_empty()
        );
        // An hour later: once more.
        assert_eq!(
            pg.health_tick(now + 3_600_000, None, ZERO, HOUR)
                .unwrap()
                .len(),
            1
        );
        assert_eq!(events_of(&server, &db, EVENT_FAILING), 2);
        assert!(
            attempt(&pg, id, true),
            "an alerted streak's end pokes the monitor"
        );
        let rec = pg.health_tick(now + 3_601_000, None, ZERO, HOUR).unwrap();
        assert_eq!(rec.len(), 1);
        assert_eq!(rec[0].kind, "recovered");
        assert!(
            pg.health_tick(now + 9_000_000, None, ZERO, HOUR)
                .unwrap()
                .is_empty()
        );
        assert_eq!(events_of(&server, &db, EVENT_RECOVERED), 1);
        let log = "SELECT string_agg(outcome, ',' ORDER BY id) FROM log";
        assert_eq!(server.psql(&db, log), "alert,alert,recovered");
        let streak = format!("SELECT failure_streak FROM webhooks WHERE id = {id}");
        assert_eq!(count(&server, &db, &streak), 0);
    }

    #[test]
    fn pauses_only_when_failures_span_the_window_and_resume_clears() {
        let (server, db, pg, id) = open();
        attempt(&pg, id, false);
        let window = Some(Duration::from_millis(50));
        let t = pg.health_tick(now_ms(), window, ZERO, HOUR).unwrap();
        assert_eq!(t[0].kind, "alert", "one failure spans no window");
        std::thread::sleep(Duration::from_millis(60));
        attempt(&pg, id, false);
        let t = pg.health_tick(now_ms(), window, ZERO, HOUR).unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].kind, "paused");
        let paused = format!(
            "SELECT count(*) FROM webhooks WHERE id = {id} AND paused_at IS NOT NULL AND pause_reason IS NOT NULL"
        );
        assert_eq!(count(&server, &db, &paused), 1);
        assert_eq!(events_of(&server, &db, EVENT_PAUSED), 1);
        // Two deliveries waiting, one in flight under another router's lease.
        server.psql(
            &db,
            &format!(
                "INSERT INTO events (type) VALUES ('a'), ('b'), ('c');
                 INSERT INTO deliveries (event_id, webhook_id, tries, next_attempt_at, created_at, updated_at, claimed_by, lease_until)
                 VALUES (1, {id}, 3, 9e15, 'x', 'x', NULL, NULL), (2, {id}, 3, 9e15, 'x', 'x', 'r', 1),
                        (3, {id}, 3, 9e15, 'x', 'x', 'r', 9e15)"
            ),
        );
        assert_eq!(pg.resume_webhook(id).unwrap(), 2);
        let kept = "SELECT string_agg(tries::text, ',' ORDER BY id) FROM deliveries";
        assert_eq!(
            server.psql(&db, kept),
            "0,0,3",
            "the request in flight keeps its tries"
        );
        assert!(matches!(pg.resume_webhook(id), Err(Error::Conflict(_))));
        let clear = format!(
            "SELECT count(*) FROM webhooks WHERE id = {id} AND paused_at IS NULL AND failing_since_ms IS NULL"
        );
        assert_eq!(count(&server, &db, &clear), 1);
        assert!(matches!(pg.resume_webhook(999), Err(Error::NotFound(_))));
        let last = "SELECT error FROM log WHERE outcome = 'resumed'";
        assert_eq!(
            server.psql(&db, last),
            "resumed by an admin; 2 waiting deliveries are sent now"
        );
    }

    #[test]
    fn a_pause_by_hand_is_logged_once() {
        let (server, db, pg, id) = open();
        pg.pause_webhook(id, "maintenance").unwrap();
        pg.pause_webhook(id, "again").unwrap();
        let reason = format!("SELECT pause_reason FROM webhooks WHERE id = {id}");
        assert_eq!(server.psql(&db, &reason), "maintenance");
        let logged =
            "SELECT count(*) FROM log WHERE outcome = 'paused' AND webhook_name = 'example'";
        assert_eq!(count(&server, &db, logged), 1);
        assert!(matches!(
            pg.pause_webhook(999, "x"),
            Err(Error::NotFound(_))
        ));
        assert_eq!(pg.storage_tick().unwrap(), None, "no local file to watch");
    }

    #[test]
    fn no_alert_before_the_streak_is_old_enough() {
        let (_server, _db, pg, id) = open();
        attempt(&pg, id, false);
        let now = now_ms();
        let five_min = Duration::from_secs(300);
        assert!(
            pg.health_tick(now, None, five_min, HOUR)
                .unwrap()
                .is_empty()
        );
        let late = pg.health_tick(now + 300_000, None, five_min, HOUR).unwrap();
        assert_eq!(late.len(), 1);
        assert_eq!(late[0].kind, "alert");
    }

    #[test]
    fn a_streak_that_was_never_alerted_announces_no_recovery() {
        let (_server, _db, pg, id) = open();
        attempt(&pg, id, false);
        assert!(!attempt(&pg, id, true));
        let t = pg.health_tick(now_ms(), None, ZERO, Duration::from_secs(1));
        assert!(t.unwrap().is_empty());
    }

    #[test]
    fn a_streak_given_up_on_with_nothing_waiting_ends_quietly() {
        let (server, db, pg, id) = open();
        pg.block(async {
            let c = pg.client().await?;
            note_attempt(&c, id, false, Some("HTTP 500"), &now_rfc3339(), true).await
        })
        .unwrap();
        let streak = format!("SELECT failure_streak FROM webhooks WHERE id = {id}");
        assert_eq!(count(&server, &db, &streak), 0);
        assert!(
            pg.health_tick(now_ms(), None, ZERO, HOUR)
                .unwrap()
                .is_empty()
        );
    }

    /// Two routers on one database: while one ticks, the other's tick
    /// raises nothing; after it, the same period raises nothing twice.
    #[test]
    fn a_second_router_raises_no_duplicate_notices() {
        let (server, db, pg, id) = open();
        let other =
            Postgres::open(&crate::base::config::DatabaseUrl::parse(&server.url(&db)).unwrap())
                .unwrap();
        attempt(&pg, id, false);
        let now = now_ms();
        // The other router is at its tick: this one skips.
        let c = other.block(async { other.client().await }).unwrap();
        let lock = |sql: &'static str| {
            other
                .block(async { Ok(c.execute(sql, &[&HEALTH_LOCK]).await?) })
                .unwrap();
        };
        lock("SELECT pg_advisory_lock($1)");
        assert!(pg.health_tick(now, None, ZERO, HOUR).unwrap().is_empty());
        lock("SELECT pg_advisory_unlock($1)");
        assert_eq!(other.health_tick(now, None, ZERO, HOUR).unwrap().len(), 1);
        assert!(pg.health_tick(now, None, ZERO, HOUR).unwrap().is_empty());
        assert!(
            pg.health_tick(now + 1, None, ZERO, HOUR)
                .unwrap()
                .is_empty()
        );
        attempt(&pg, id, true);
        let both = [
            pg.health_tick(now + 2, None, ZERO, HOUR).unwrap(),
            other.health_tick(now + 2, None, ZERO, HOUR).unwrap(),
        ];
        assert_eq!(both.concat().len(), 1, "one recovery: {both:?}");
        assert_eq!(events_of(&server, &db, EVENT_FAILING), 1);
        assert_eq!(events_of(&server, &db, EVENT_RECOVERED), 1);
        let notices = "SELECT count(*) FROM log WHERE outcome IN ('alert', 'recovered')";
        assert_eq!(count(&server, &db, notices), 2);
    }
}
