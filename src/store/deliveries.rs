//! The `deliveries` table: one row per (event, webhook). Claimed in memory
//! while its request is in flight (the claim pass, [`super::claim_pass`]),
//! then settled together with its event-log entry and the webhook's
//! health: delivered, scheduled for a retry, or failed for good. Replays
//! put settled rows back in the queue.

use std::sync::Arc;

use rusqlite::OptionalExtension;
use rusqlite::params;

use super::log::NewLogEntry;
use super::sqlite::Sqlite;
use super::{Error, now_ms};
use crate::base::event::{Event, now_rfc3339};

/// The log's error for an attempt cut short by a stop.
pub const INTERRUPTED: &str =
    "interrupted: herald stopped before the answer came; the request is sent again";

/// One event of a claimed request.
#[derive(Debug, Clone)]
pub struct Item {
    /// Delivery id.
    pub delivery_id: i64,
    /// This attempt's number for the log, from 1 (replays keep counting).
    pub attempt: i64,
    /// Tries in this round, this one included: what the retry policy counts.
    pub tries: u32,
    /// The event, shared: renders of this attempt read it without copies.
    pub event: Arc<Event>,
}

/// A request to send: one event, or several for a batching webhook.
#[derive(Debug, Clone)]
pub struct DeliveryJob {
    /// The webhook's id.
    pub webhook_id: i64,
    /// The webhook's last change, to know whether a cached compile is current.
    pub webhook_updated_at: String,
    /// The events, in queue order (one unless the webhook batches).
    pub items: Vec<Item>,
    /// Whether the webhook batches: the body iterates `events`, even for one.
    pub batched: bool,
}

/// A claimed delivery whose event cannot be read back (its row was edited).
#[derive(Debug, Clone)]
pub struct Unreadable {
    /// Delivery id.
    pub delivery_id: i64,
    /// The webhook's id.
    pub webhook_id: i64,
    /// Why the event cannot be read.
    pub reason: String,
}

/// A claimed delivery: ready to send, or to be failed with its reason.
pub type Claimed = Result<DeliveryJob, Unreadable>;

/// A claimed row with its event, or why the event cannot be read: what
/// either backend's claim pass hands to [`jobs`].
pub(super) struct ClaimedRow {
    pub(super) delivery_id: i64,
    pub(super) attempts: i64,
    pub(super) tries: i64,
    pub(super) event: Result<Arc<Event>, String>,
}

/// The requests of one webhook's claimed `rows`: one per row, or one for
/// all when the webhook `batched`; a row whose event cannot be read
/// becomes an entry of its own (failed without an attempt).
pub(super) fn jobs(
    webhook_id: i64,
    webhook_updated_at: &str,
    batched: bool,
    rows: Vec<ClaimedRow>,
) -> Vec<Claimed> {
    let mut out = Vec::new();
    let mut items = Vec::new();
    for row in rows {
        match row.event {
            Ok(event) => items.push(Item {
                delivery_id: row.delivery_id,
                attempt: row.attempts + 1,
                tries: (row.tries + 1).clamp(1, u32::MAX as i64) as u32,
                event,
            }),
            Err(reason) => out.push(Err(Unreadable {
                delivery_id: row.delivery_id,
                webhook_id,
                reason,
            })),
        }
    }
    let job = |items: Vec<Item>| DeliveryJob {
        webhook_id,
        webhook_updated_at: webhook_updated_at.to_owned(),
        items,
        batched,
    };
    if batched {
        if !items.is_empty() {
            out.push(Ok(job(items)));
        }
    } else {
        out.extend(items.into_iter().map(|i| Ok(job(vec![i]))));
    }
    out
}

/// What one claim pass found.
#[derive(Debug, Default)]
pub struct ClaimPass {
    /// Claimed work, to send now.
    pub claimed: Vec<Claimed>,
    /// When the next unclaimed delivery of a webhook with room becomes due
    /// (unix ms): the deliverer sleeps until then at most.
    pub next_due_ms: Option<i64>,
    /// Global slots ran out while webhooks still had due work.
    pub starved: bool,
}

/// One request's attempt as it is settled: a log entry and an outcome
/// per event it carried.
pub type Settled = Vec<(NewLogEntry, Outcome)>;

/// How an attempt settles its deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx: done.
    Delivered,
    /// Failed; tried again at this unix ms.
    RetryAt(i64),
    /// Failed for good (the policy is exhausted, 410, or retrying cannot help).
    Failed,
}

impl Sqlite {
    /// Releases every claim written to the table: run once at start. Claims
    /// live in memory (see [`super::claims`]); rows claimed in the table
    /// come from a version of herald that wrote claims and stopped with
    /// requests in flight. Each such attempt is logged as interrupted and
    /// does not count against the retry policy.
    pub fn release_claims(&self) -> Result<usize, Error> {
        self.write(move |c| {
            let tx: &rusqlite::Connection = c;
            tx.execute(
                "INSERT INTO log (at, outcome, event_uuid, event_type, ticket_id, webhook_id, webhook_name,
                                  delivery_id, attempt, error)
                 SELECT ?1, 'failed', e.uuid, e.type, e.ticket_id, w.id, w.name, d.id, d.attempts, ?2
                 FROM deliveries d
                 JOIN events e ON e.id = d.event_id
                 JOIN webhooks w ON w.id = d.webhook_id
                 WHERE d.claimed = 1
                 ORDER BY d.id",
                params![now_rfc3339(), INTERRUPTED],
            )?;
            let n = tx.execute(
                "UPDATE deliveries SET claimed = 0, tries = max(tries - 1, 0) WHERE claimed = 1",
                [],
            )?;
            Ok(n)
        })
    }

    /// Logs the attempts of `delivery_ids` as interrupted (a stop cut them
    /// short past its grace period) and counts them; they stay pending,
    /// their tries unchanged, and are sent again after the next start.
    pub fn interrupt(&self, delivery_ids: Vec<i64>) -> Result<(), Error> {
        self.write(move |c| {
            let tx: &rusqlite::Connection = c;
            let at = now_rfc3339();
            let mut log = tx.prepare_cached(
                "INSERT INTO log (at, outcome, event_uuid, event_type, ticket_id, webhook_id, webhook_name,
                                  delivery_id, attempt, error)
                 SELECT ?1, 'failed', e.uuid, e.type, e.ticket_id, w.id, w.name, d.id, d.attempts + 1, ?2
                 FROM deliveries d
                 JOIN events e ON e.id = d.event_id
                 JOIN webhooks w ON w.id = d.webhook_id
                 WHERE d.id = ?3 AND d.state = 'pending'",
            )?;
            let mut count = tx.prepare_cached(
                "UPDATE deliveries SET attempts = attempts + 1 WHERE id = ?1 AND state = 'pending'",
            )?;
            for id in delivery_ids {
                log.execute(params![at, INTERRUPTED, id])?;
                count.execute([id])?;
            }
            Ok(())
        })
    }

    /// Records attempts and settles their deliveries, in one write: per
    /// request (one inner list; a batch's events may be at different tries
    /// of their retry policy, so each has its own outcome) the log entries,
    /// the deliveries' new state and the webhook's health. Returns whether a
    /// health changed in a way the monitor must look at (a failure streak
    /// began, or an alerted streak ended). The claims are released once the
    /// write has committed.
    pub async fn finish_attempts(&self, requests: Arc<Vec<Settled>>) -> Result<bool, Error> {
        let batch = requests.clone();
        let poke = self
            .write_lingering(move |c| {
                let tx: &rusqlite::Connection = c;
                let now = now_rfc3339();
                // Cached: this runs once per delivery (a fresh prepare was 11% of
                // the delivery path's instructions; see BENCHMARKS.md).
                // The attempt and the try count from here: a claim writes
                // nothing (see `claims`).
                let mut settle = tx.prepare_cached(
                    "UPDATE deliveries SET state = ?2, claimed = 0, next_attempt_at = coalesce(?3, next_attempt_at),
                                           last_error = ?4, updated_at = ?5,
                                           attempts = attempts + 1, tries = tries + 1
                     WHERE id = ?1",
                )?;
                let mut poke = false;
                // Webhooks whose last attempt in this batch was delivered:
                // noting another delivered attempt would change nothing but
                // `last_attempt_at`, written with the same `now`.
                let mut delivered_noted = std::collections::HashSet::new();
                for request in batch.iter() {
                    for (entry, outcome) in request {
                        let (state, next) = match outcome {
                            Outcome::Delivered => ("delivered", None),
                            Outcome::RetryAt(ms) => ("pending", Some(*ms)),
                            Outcome::Failed => ("failed", None),
                        };
                        let retry_at = next.map(super::webhooks::ms_to_rfc3339);
                        super::log::insert_entry(tx, entry, retry_at.as_deref())?;
                        settle.execute(params![entry.delivery_id, state, next, entry.error, now])?;
                    }
                    let Some((e, _)) = request.first().filter(|(e, _)| !e.test) else {
                        continue;
                    };
                    if e.delivered && !delivered_noted.insert(e.webhook_id) {
                        continue;
                    }
                    if !e.delivered {
                        delivered_noted.remove(&e.webhook_id);
                    }
                    let gave_up = request.iter().any(|(_, o)| *o == Outcome::Failed);
                    poke |= super::health::note_attempt(
                        tx,
                        e.webhook_id,
                        e.delivered,
                        e.error.as_deref(),
                        &now,
                        gave_up,
                    )?;
                }
                Ok(poke)
            })
            .await?;
        for request in requests.iter() {
            if let Some((e, _)) = request.first() {
                let ids: Vec<i64> = request.iter().filter_map(|(e, _)| e.delivery_id).collect();
                self.claims.release(e.webhook_id, &ids);
            }
        }
        Ok(poke)
    }

    /// Forgets the claims of a request that will not be settled: its
    /// deliveries are gone (the webhook was deleted while it was sent).
    pub fn release_unsettled(&self, webhook_id: i64, delivery_ids: &[i64]) {
        self.claims.give_back(webhook_id, delivery_ids);
    }

    /// Marks a delivery failed without an attempt (its event cannot be read).
    pub fn fail_unreadable(&self, bad: &Unreadable) -> Result<(), Error> {
        let (delivery_id, reason) = (bad.delivery_id, bad.reason.clone());
        self.write(move |c| {
            let tx: &rusqlite::Connection = c;
            let now = now_rfc3339();
            let error = format!("the event cannot be read: {reason}");
            tx.execute(
                "INSERT INTO log (at, outcome, event_uuid, event_type, webhook_id, webhook_name, delivery_id, attempt, error)
                 SELECT ?1, 'failed', e.uuid, e.type, w.id, w.name, d.id, d.attempts + 1, ?3
                 FROM deliveries d
                 JOIN events e ON e.id = d.event_id
                 JOIN webhooks w ON w.id = d.webhook_id
                 WHERE d.id = ?2",
                params![now, delivery_id, error],
            )?;
            tx.execute(
                "UPDATE deliveries SET state = 'failed', claimed = 0, attempts = attempts + 1, last_error = ?3, updated_at = ?2 WHERE id = ?1",
                params![delivery_id, now, error],
            )?;
            Ok(())
        })?;
        self.claims.release(bad.webhook_id, &[delivery_id]);
        Ok(())
    }

    /// Deliveries not yet finished.
    pub fn pending_deliveries(&self) -> Result<i64, Error> {
        self.read(|c| {
            Ok(c.query_row(
                "SELECT count(*) FROM deliveries WHERE state = 'pending'",
                [],
                |r| r.get(0),
            )?)
        })
    }

    /// When the oldest pending delivery was made (`None`: none pending).
    /// Read per webhook through its pending index, not by scanning every
    /// delivery.
    pub fn oldest_pending_delivery_at(&self) -> Result<Option<String>, Error> {
        self.read(|c| {
            Ok(c.query_row(
                "SELECT created_at FROM deliveries WHERE id = (
                    SELECT min((SELECT min(d.id) FROM deliveries d
                                WHERE d.webhook_id = w.id AND d.state = 'pending'))
                    FROM webhooks w)",
                [],
                |r| r.get(0),
            )
            .optional()?)
        })
    }

    /// Puts finished deliveries back in the queue, due now, for a new round
    /// of tries: each resend is a new attempt in the log with the same event
    /// uuid. Deliveries still pending are left as they are. Returns how many.
    pub fn replay(&self, which: &Replay) -> Result<Vec<i64>, Error> {
        let which = which.to_owned();
        self.write(move |c| {
            let tx: &rusqlite::Connection = c;
            if let Some(id) = which.delivery_id {
                let state: String = tx
                    .query_row("SELECT state FROM deliveries WHERE id = ?1", [id], |r| {
                        r.get(0)
                    })
                    .map_err(super::not_found(format!("delivery {id}")))?;
                if state == "pending" {
                    return Err(Error::Conflict(format!(
                        "delivery {id} is still pending (in flight or waiting for its next try)"
                    )));
                }
            }
            if let Some(id) = which.webhook_id {
                tx.query_row("SELECT 1 FROM webhooks WHERE id = ?1", [id], |_| Ok(()))
                    .map_err(super::not_found(format!("webhook {id}")))?;
            }
            let mut update = tx.prepare(
                "UPDATE deliveries SET state = 'pending', tries = 0, next_attempt_at = ?1, updated_at = ?2
                 WHERE state <> 'pending'
                   AND (?3 IS NULL OR id = ?3)
                   AND (?4 IS NULL OR webhook_id = ?4)
                   AND (?5 = 0 OR state = 'failed')
                   AND (?6 IS NULL OR event_id IN (SELECT id FROM events WHERE julianday(created_at) >= julianday(?6)))
                   AND (?7 IS NULL OR event_id IN (SELECT id FROM events WHERE julianday(created_at) < julianday(?7)))
                 RETURNING id",
            )?;
            let ids = update
                .query_map(
                    params![
                        now_ms(),
                        now_rfc3339(),
                        which.delivery_id,
                        which.webhook_id,
                        which.failed_only,
                        which.from,
                        which.to
                    ],
                    |r| r.get(0),
                )?
                .collect::<Result<Vec<i64>, _>>()?;
            Ok(ids)
        })
    }

    /// How the deliveries `ids` stand now: `(pending, delivered, failed)`
    /// (for `herald retry --wait`, which follows what it queued).
    pub fn delivery_states(&self, ids: &[i64]) -> Result<(usize, usize, usize), Error> {
        self.read(|c| {
            let mut counts = (0, 0, 0);
            for chunk in ids.chunks(500) {
                let marks = vec!["?"; chunk.len()].join(",");
                let mut stmt = c.prepare(&format!(
                    "SELECT state, count(*) FROM deliveries WHERE id IN ({marks}) GROUP BY state"
                ))?;
                let rows = stmt.query_map(rusqlite::params_from_iter(chunk), |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as usize))
                })?;
                for row in rows {
                    match row? {
                        (s, n) if s == "pending" => counts.0 += n,
                        (s, n) if s == "delivered" => counts.1 += n,
                        (_, n) => counts.2 += n,
                    }
                }
            }
            Ok(counts)
        })
    }

    /// Deliveries, newest first, for listings (`herald deliveries`, the API).
    pub fn deliveries(&self, f: &DeliveryFilter) -> Result<Vec<DeliveryRow>, Error> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT d.id, d.webhook_id, w.name, e.uuid, e.type, e.created_at, d.state, d.attempts, d.tries,
                        d.next_attempt_at, d.last_error, w.paused_at IS NOT NULL, d.claimed
                 FROM deliveries d
                 JOIN events e ON e.id = d.event_id
                 JOIN webhooks w ON w.id = d.webhook_id
                 WHERE (?1 IS NULL OR d.webhook_id = ?1)
                   AND (?2 IS NULL OR d.state = ?2)
                   AND (?3 IS NULL OR e.uuid = ?3)
                   AND (?5 IS NULL OR d.id = ?5)
                 ORDER BY d.id DESC LIMIT ?4",
            )?;
            let rows = stmt.query_map(
                params![f.webhook_id, f.state, f.event_uuid, f.limit.max(1) as i64, f.delivery_id],
                |r| {
                    let state: String = r.get(6)?;
                    let tries: i64 = r.get(8)?;
                    let paused: bool = r.get(11)?;
                    let id: i64 = r.get(0)?;
                    // Claims live in memory (see `claims`); older versions wrote them.
                    let claimed: bool = r.get::<_, bool>(12)? || self.claims.is_sending(id);
                    let next: i64 = r.get(9)?;
                    let status = match state.as_str() {
                        "pending" if paused => "paused",
                        "pending" if claimed => "sending",
                        "pending" if tries > 0 => "retrying",
                        s => s,
                    };
                    Ok(DeliveryRow {
                        id,
                        webhook_id: r.get(1)?,
                        webhook_name: r.get(2)?,
                        event_uuid: r.get(3)?,
                        event_type: r.get(4)?,
                        event_created_at: r.get(5)?,
                        status: status.to_owned(),
                        attempts: r.get(7)?,
                        next_attempt_at: (state == "pending" && tries > 0)
                            .then(|| super::webhooks::ms_to_rfc3339(next)),
                        last_error: r.get(10)?,
                    })
                },
            )?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }
}

/// Which finished deliveries to send again. Filters combine; at least one
/// must be given (checked by the caller).
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Replay {
    /// One delivery.
    pub delivery_id: Option<i64>,
    /// Deliveries of one webhook.
    pub webhook_id: Option<i64>,
    /// Only deliveries that failed for good (else delivered ones too).
    #[serde(default)]
    pub failed_only: bool,
    /// Events created at or after this RFC 3339 time.
    pub from: Option<String>,
    /// Events created before this RFC 3339 time.
    pub to: Option<String>,
}

/// Which deliveries to list.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    /// Only this webhook.
    pub webhook_id: Option<i64>,
    /// Only this state: `pending`, `delivered`, `failed`.
    pub state: Option<String>,
    /// Only this event.
    pub event_uuid: Option<String>,
    /// Only this delivery.
    pub delivery_id: Option<i64>,
    /// At most this many.
    pub limit: usize,
}

/// A delivery as listed.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct DeliveryRow {
    /// Delivery id (what `herald retry --delivery` takes).
    pub id: i64,
    /// Webhook id.
    pub webhook_id: i64,
    /// Webhook name.
    pub webhook_name: String,
    /// Event uuid.
    pub event_uuid: String,
    /// Event type.
    pub event_type: String,
    /// Event time.
    pub event_created_at: String,
    /// `pending`, `sending`, `retrying`, `paused`, `delivered` or `failed`.
    pub status: String,
    /// Attempts so far, over all rounds.
    pub attempts: i64,
    /// When a retrying delivery is tried next.
    pub next_attempt_at: Option<String>,
    /// The last attempt's error.
    pub last_error: Option<String>,
}
