//! Webhook health in storage: the failure streak kept up by every attempt,
//! and the monitor's decisions (pause after a long outage, an alert once
//! per interval while failing, recovery announced once), each written to the
//! log and queued as a `herald.webhook.*` event in the same transaction, so
//! an alert is never lost or sent twice.

use rusqlite::{Connection, params};
use serde_json::json;

use super::log::insert_notice;
use super::sqlite::Sqlite;
use super::webhooks::ms_to_rfc3339;
use super::{Error, now_ms};
use crate::base::event::now_rfc3339;

/// Event type of the hourly alert while a webhook fails.
pub const EVENT_FAILING: &str = "herald.webhook.failing";
/// Event type of a pause after a long outage.
pub const EVENT_PAUSED: &str = "herald.webhook.paused";
/// Event type of a recovery after an alert.
pub const EVENT_RECOVERED: &str = "herald.webhook.recovered";

/// What the monitor announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// The webhook.
    pub webhook_id: i64,
    /// `alert`, `paused` or `recovered` (the log's outcome).
    pub kind: &'static str,
    /// The message, as logged and sent.
    pub message: String,
}

/// Keeps a webhook's failure streak after an attempt (in the attempt's
/// transaction). Returns whether the monitor should look now: a streak
/// began, or a streak that raised an alert ended. A streak measures an
/// outage, so it also ends (quietly) when a delivery failed for good
/// (`gave_up`) and nothing else is waiting: a webhook tried again days later
/// starts a new streak instead of counting the quiet days as failing.
pub(super) fn note_attempt(
    c: &Connection,
    webhook_id: i64,
    delivered: bool,
    error: Option<&str>,
    now: &str,
    gave_up: bool,
) -> Result<bool, Error> {
    // UPDATE, then SELECT: SQLite buffers RETURNING rows in a temporary
    // table, dearer than reading the one row again.
    let after = |column: &str| -> Result<Option<i64>, Error> {
        Ok(
            c.prepare_cached(&format!("SELECT {column} FROM webhooks WHERE id = ?1"))?
                .query_row([webhook_id], |r| r.get(0))
                .map(Some)
                .or_else(none_if_missing)?,
        )
    };
    if delivered {
        c.prepare_cached(
            "UPDATE webhooks SET failing_since_ms = NULL, last_failure_ms = NULL, failure_streak = 0,
                    last_error = NULL, recovery_pending = recovery_pending OR alerted, alerted = 0,
                    last_attempt_at = ?2, last_status = 'delivered'
             WHERE id = ?1",
        )?
        .execute(params![webhook_id, now])?;
        Ok(after("recovery_pending")?.is_some_and(|r| r != 0))
    } else {
        c.prepare_cached(
            "UPDATE webhooks SET failing_since_ms = coalesce(failing_since_ms, ?3), last_failure_ms = ?3,
                    failure_streak = failure_streak + 1, last_error = ?4, recovery_pending = 0,
                    last_attempt_at = ?2, last_status = 'failed'
             WHERE id = ?1",
        )?
        .execute(params![webhook_id, now, now_ms(), error])?;
        let streak = after("failure_streak")?;
        if gave_up {
            c.prepare_cached(
                "UPDATE webhooks SET failing_since_ms = NULL, last_failure_ms = NULL, failure_streak = 0
                 WHERE id = ?1 AND paused_at IS NULL
                   AND NOT EXISTS (SELECT 1 FROM deliveries WHERE webhook_id = ?1 AND state = 'pending')",
            )?
            .execute([webhook_id])?;
        }
        Ok(streak == Some(1))
    }
}

/// The webhook was deleted meanwhile: nothing to keep.
fn none_if_missing<T>(e: rusqlite::Error) -> rusqlite::Result<Option<T>> {
    match e {
        rusqlite::Error::QueryReturnedNoRows => Ok(None),
        e => Err(e),
    }
}

/// Queues a `herald.webhook.*` event for the webhooks subscribed to it.
pub(super) fn queue_notice_event(
    c: &Connection,
    kind: &str,
    data: serde_json::Value,
) -> Result<(), Error> {
    c.prepare_cached("INSERT INTO events (uuid, type, created_at, data, source) VALUES (?1, ?2, ?3, ?4, 'herald')")?
        .execute(params![
            uuid::Uuid::new_v4().to_string(),
            kind,
            now_rfc3339(),
            data.to_string()
        ])?;
    Ok(())
}

/// A failing webhook as the monitor reads it (either backend).
pub(super) struct Failing {
    pub(super) id: i64,
    pub(super) name: String,
    pub(super) since_ms: i64,
    pub(super) streak: i64,
    pub(super) last_error: Option<String>,
    pub(super) paused: bool,
    pub(super) last_failure_ms: Option<i64>,
    pub(super) last_alert_ms: Option<i64>,
}

impl Failing {
    /// What the monitor announces for this webhook now, if anything: a
    /// pause once its failed attempts span `pause_after`, else an alert once
    /// it has failed for `first_alert` and was not alerted within
    /// `alert_every`.
    pub(super) fn notice(
        &self,
        now_ms: i64,
        pause_after: Option<std::time::Duration>,
        first_alert: std::time::Duration,
        alert_every: std::time::Duration,
    ) -> Option<Notice> {
        let span_ms = self.last_failure_ms.unwrap_or(self.since_ms) - self.since_ms;
        let last_error = self.last_error.as_deref().unwrap_or("unknown");
        if !self.paused && pause_after.is_some_and(|p| span_ms >= p.as_millis() as i64) {
            return Some(Notice {
                webhook_id: self.id,
                kind: "paused",
                message: format!(
                    "webhook {:?} ({}) paused: its deliveries have failed for {} ({} attempts in a row; last error: {last_error}). New events are kept and sent after `herald webhook resume {}`.",
                    self.name,
                    self.id,
                    span(span_ms),
                    self.streak,
                    self.id
                ),
            });
        }
        let alert_due = now_ms - self.since_ms >= first_alert.as_millis() as i64
            && self
                .last_alert_ms
                .is_none_or(|a| now_ms - a >= alert_every.as_millis() as i64);
        alert_due.then(|| Notice {
            webhook_id: self.id,
            kind: "alert",
            message: format!(
                "webhook {:?} ({}) is failing: {} attempts in a row for {}{}; last error: {last_error}",
                self.name,
                self.id,
                self.streak,
                span(now_ms - self.since_ms),
                if self.paused { ", paused" } else { "" },
            ),
        })
    }
}

impl Failing {
    /// The event data of an alert or pause.
    pub(super) fn describe(&self) -> serde_json::Value {
        json!({
            "webhook_id": self.id,
            "webhook_name": self.name,
            "failing_since": ms_to_rfc3339(self.since_ms),
            "failures": self.streak,
            "last_error": self.last_error,
            "paused": self.paused,
        })
    }
}

/// A duration for messages: "3h 5m", "42s", "1.5s".
fn span(ms: i64) -> String {
    let s = ms / 1000;
    match s {
        0..=9 => format!("{:.1}s", ms as f64 / 1000.0),
        10..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {}s", s / 60, s % 60),
        _ => format!("{}h {}m", s / 3600, (s % 3600) / 60),
    }
}

impl Sqlite {
    /// One look by the health monitor at `now_ms`: pauses webhooks whose
    /// failed attempts span `pause_after` (if set), raises an alert for
    /// each webhook failing for at least `first_alert` and not alerted
    /// within `alert_every`, and announces the recovery of an alerted
    /// webhook once. Returns what it announced.
    pub fn health_tick(
        &self,
        now_ms: i64,
        pause_after: Option<std::time::Duration>,
        first_alert: std::time::Duration,
        alert_every: std::time::Duration,
    ) -> Result<Vec<Notice>, Error> {
        self.write(move |c| {
            // Immediate: it reads, then writes; a deferred transaction could
            // fail with a busy snapshot if another process wrote in between.
            let tx: &rusqlite::Connection = c;
            // Logged at the time the decisions were made on, so the log
            // shows exactly the spacing the interval enforces.
            let at = ms_to_rfc3339(now_ms);
            let failing: Vec<Failing> = tx
                .prepare_cached(
                    "SELECT id, name, failing_since_ms, failure_streak, last_error, paused_at IS NOT NULL,
                            last_failure_ms, last_alert_ms
                     FROM webhooks WHERE failing_since_ms IS NOT NULL AND enabled = 1 ORDER BY id",
                )?
                .query_map([], |r| {
                    Ok(Failing {
                        id: r.get(0)?,
                        name: r.get(1)?,
                        since_ms: r.get(2)?,
                        streak: r.get(3)?,
                        last_error: r.get(4)?,
                        paused: r.get(5)?,
                        last_failure_ms: r.get(6)?,
                        last_alert_ms: r.get(7)?,
                    })
                })?
                .collect::<Result<_, _>>()?;
            let mut notices = Vec::new();
            for mut w in failing {
                let Some(n) = w.notice(now_ms, pause_after, first_alert, alert_every) else {
                    continue;
                };
                let event = if n.kind == "paused" {
                    tx.prepare_cached(
                        "UPDATE webhooks SET paused_at = ?2, pause_reason = ?3 WHERE id = ?1",
                    )?
                    .execute(params![w.id, at, n.message])?;
                    w.paused = true;
                    EVENT_PAUSED
                } else {
                    EVENT_FAILING
                };
                tx.prepare_cached(
                    "UPDATE webhooks SET last_alert_ms = ?2, alerted = 1 WHERE id = ?1",
                )?
                .execute(params![w.id, now_ms])?;
                insert_notice(tx, &at, n.kind, w.id, &n.message)?;
                let mut data = w.describe();
                data["message"] = n.message.clone().into();
                queue_notice_event(tx, event, data)?;
                notices.push(n);
            }
            let recovered: Vec<(i64, String)> = tx
                .prepare_cached(
                    "UPDATE webhooks SET recovery_pending = 0 WHERE recovery_pending = 1 RETURNING id, name",
                )?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            for (id, name) in recovered {
                let message = format!("webhook {name:?} ({id}) delivers again");
                insert_notice(tx, &at, "recovered", id, &message)?;
                queue_notice_event(
                    tx,
                    EVENT_RECOVERED,
                    json!({"webhook_id": id, "webhook_name": name, "message": message}),
                )?;
                notices.push(Notice {
                    webhook_id: id,
                    kind: "recovered",
                    message,
                });
            }
            Ok(notices)
        })
    }

    /// Pauses webhook `id` by hand: nothing is sent until it is resumed;
    /// new events for it are kept.
    pub fn pause_webhook(&self, id: i64, reason: &str) -> Result<(), Error> {
        let reason = reason.to_owned();
        self.write(move |c| {
            let tx: &rusqlite::Connection = c;
            let n = tx.execute(
                "UPDATE webhooks SET paused_at = ?2, pause_reason = ?3 WHERE id = ?1 AND paused_at IS NULL",
                params![id, now_rfc3339(), reason],
            )?;
            if n == 0 {
                tx.query_row("SELECT 1 FROM webhooks WHERE id = ?1", [id], |_| Ok(()))
                    .map_err(super::not_found(format!("webhook {id}")))?;
                return Ok(()); // Already paused.
            }
            insert_notice(tx, &now_rfc3339(), "paused", id, &reason)?;
            Ok(())
        })
    }

    /// Resumes paused webhook `id` ([`Error::Conflict`] if it is not
    /// paused): clears the pause and the failure streak (so
    /// the pause window starts over) and makes its whole backlog due now,
    /// for a new round of tries. An alert raised before stays on record: the
    /// first success announces the recovery. Returns how many deliveries
    /// were waiting.
    pub fn resume_webhook(&self, id: i64) -> Result<usize, Error> {
        // Requests in flight keep their tries: their settlement counts on
        // them (rows read ahead are given back and read again after this).
        let in_flight = serde_json::to_string(&self.claims.hold_only_in_flight(id))
            .expect("a list of ids serialises");
        self.write(move |c| {
            let tx: &rusqlite::Connection = c;
            let n = tx.execute(
                "UPDATE webhooks SET paused_at = NULL, pause_reason = NULL, failing_since_ms = NULL,
                        last_failure_ms = NULL, failure_streak = 0
                 WHERE id = ?1 AND paused_at IS NOT NULL",
                [id],
            )?;
            if n == 0 {
                tx.query_row("SELECT 1 FROM webhooks WHERE id = ?1", [id], |_| Ok(()))
                    .map_err(super::not_found(format!("webhook {id}")))?;
                return Err(Error::Conflict(format!("webhook {id} is not paused")));
            }
            let backlog = tx.execute(
                "UPDATE deliveries SET next_attempt_at = ?2, tries = 0
                 WHERE webhook_id = ?1 AND state = 'pending' AND claimed = 0
                   AND id NOT IN (SELECT value FROM json_each(?3))",
                params![id, now_ms(), in_flight],
            )?;
            insert_notice(
                tx,
                &now_rfc3339(),
                "resumed",
                id,
                &format!("resumed by an admin; {backlog} waiting deliveries are sent now"),
            )?;
            Ok(backlog)
        })
    }
}

/// Event type of the alert when free space falls below the watermark.
pub const EVENT_STORAGE_LOW: &str = "herald.storage.low";
/// Event type of the all-clear once free space is back above it.
pub const EVENT_STORAGE_OK: &str = "herald.storage.ok";

impl Sqlite {
    /// One look by the health monitor at free space: queues
    /// `herald.storage.low` (to webhooks subscribed to it) when free space
    /// fell below `database.min_free_mb`, and `herald.storage.ok` once it
    /// is back; returns the message of what it raised. The alert is
    /// written while space is low, not yet gone: that is what the
    /// watermark keeps.
    pub fn storage_tick(&self) -> Result<Option<String>, Error> {
        let watch = &self.watch;
        let low = watch.low_space();
        let alerted = watch.low_alerted.load(std::sync::atomic::Ordering::Relaxed);
        let (kind, message) = match (low, alerted) {
            (Some(message), false) => (EVENT_STORAGE_LOW, message),
            (None, true) => (
                EVENT_STORAGE_OK,
                format!(
                    "the disk holding {} has space again; new events are accepted",
                    watch.path.display()
                ),
            ),
            _ => return Ok(None),
        };
        let data = serde_json::json!({
            "path": watch.path.display().to_string(),
            "free_mb": watch.free_bytes().map(|b| b / 1_000_000),
            "min_free_mb": watch.min_free / 1_000_000,
            "message": message,
        });
        self.write(move |c| queue_notice_event(c, kind, data))?;
        watch.low_alerted.store(
            kind == EVENT_STORAGE_LOW,
            std::sync::atomic::Ordering::Relaxed,
        );
        Ok(Some(message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::Sqlite as Store;
    use std::time::Duration;

    const ZERO: Duration = Duration::ZERO;

    fn store() -> (tempfile::TempDir, Store, i64) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("h.db")).unwrap();
        let w = s
            .insert_webhook(&crate::spec::webhook::WebhookSpec::example(
                "http://127.0.0.1:9/",
            ))
            .unwrap();
        (dir, s, w.id)
    }

    fn attempt(s: &Store, id: i64, ok: bool) -> bool {
        s.write(move |c| {
            let tx: &rusqlite::Connection = c;
            let r = note_attempt(
                tx,
                id,
                ok,
                (!ok).then_some("HTTP 503"),
                &now_rfc3339(),
                false,
            )?;
            Ok(r)
        })
        .unwrap()
    }

    fn events_of(s: &Store, kind: &str) -> i64 {
        s.read(|c| {
            Ok(
                c.query_row("SELECT count(*) FROM events WHERE type = ?1", [kind], |r| {
                    r.get(0)
                })?,
            )
        })
        .unwrap()
    }

    #[test]
    fn alert_once_per_interval_then_recovery_once() {
        let (_d, s, id) = store();
        let hour = Duration::from_secs(3600);
        assert!(attempt(&s, id, false), "a new streak pokes the monitor");
        assert!(!attempt(&s, id, false));
        let now = now_ms();
        let first = s.health_tick(now, None, ZERO, hour).unwrap();
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].kind, "alert");
        assert!(
            first[0].message.contains("2 attempts in a row"),
            "{}",
            first[0].message
        );
        // Within the hour: nothing more.
        assert!(
            s.health_tick(now + 1000, None, ZERO, hour)
                .unwrap()
                .is_empty()
        );
        // An hour later: once more.
        assert_eq!(
            s.health_tick(now + 3_600_000, None, ZERO, hour)
                .unwrap()
                .len(),
            1
        );
        assert_eq!(events_of(&s, EVENT_FAILING), 2);
        assert!(
            attempt(&s, id, true),
            "an alerted streak's end pokes the monitor"
        );
        let rec = s.health_tick(now + 3_601_000, None, ZERO, hour).unwrap();
        assert_eq!(rec.len(), 1);
        assert_eq!(rec[0].kind, "recovered");
        assert!(
            s.health_tick(now + 9_000_000, None, ZERO, hour)
                .unwrap()
                .is_empty()
        );
        assert_eq!(events_of(&s, EVENT_RECOVERED), 1);
        assert_eq!(s.webhook(id).unwrap().health.failure_streak, 0);
    }

    #[test]
    fn pauses_only_when_failures_span_the_window_and_resume_clears() {
        let (_d, s, id) = store();
        attempt(&s, id, false);
        let window = Some(Duration::from_millis(50));
        let t = s
            .health_tick(now_ms(), window, ZERO, Duration::from_secs(3600))
            .unwrap();
        assert_eq!(t[0].kind, "alert", "one failure spans no window");
        std::thread::sleep(Duration::from_millis(60));
        attempt(&s, id, false);
        let t = s
            .health_tick(now_ms(), window, ZERO, Duration::from_secs(3600))
            .unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].kind, "paused");
        let h = s.webhook(id).unwrap().health;
        assert!(h.paused_at.is_some() && h.pause_reason.is_some());
        assert_eq!(events_of(&s, EVENT_PAUSED), 1);
        s.resume_webhook(id).unwrap();
        assert!(matches!(s.resume_webhook(id), Err(Error::Conflict(_))));
        let h = s.webhook(id).unwrap().health;
        assert!(h.paused_at.is_none() && h.failing_since.is_none());
        assert!(matches!(s.resume_webhook(999), Err(Error::NotFound(_))));
    }

    #[test]
    fn no_alert_before_the_streak_is_old_enough() {
        let (_d, s, id) = store();
        attempt(&s, id, false);
        let now = now_ms();
        let five_min = Duration::from_secs(300);
        let hour = Duration::from_secs(3600);
        assert!(s.health_tick(now, None, five_min, hour).unwrap().is_empty());
        let late = s.health_tick(now + 300_000, None, five_min, hour).unwrap();
        assert_eq!(late.len(), 1);
        assert_eq!(late[0].kind, "alert");
    }

    #[test]
    fn a_streak_that_was_never_alerted_announces_no_recovery() {
        let (_d, s, id) = store();
        attempt(&s, id, false);
        assert!(!attempt(&s, id, true));
        assert!(
            s.health_tick(now_ms(), None, ZERO, Duration::from_secs(1))
                .unwrap()
                .is_empty()
        );
    }
}
