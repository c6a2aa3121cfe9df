//! The `deliveries` table: one row per (event, webhook). Claimed while its
//! request is in flight (per-webhook limits, strict order and batches are
//! decided here, in one transaction), then settled together with its
//! event-log entry and the webhook's health: delivered, scheduled for a
//! retry, or failed for good. Replays put settled rows back in the queue.

use std::collections::HashMap;
use std::sync::Arc;

use rusqlite::params;

use super::log::NewLogEntry;
use super::{Error, Store, now_ms};
use crate::base::event::{Event, now_rfc3339};
use crate::spec::webhook::Batch;

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

/// What a webhook allows the claim pass to take.
#[derive(Debug, Clone)]
struct Active {
    id: i64,
    updated_at: String,
    max_in_flight: usize,
    ordered: bool,
    batch: Option<Batch>,
}

/// A due delivery row with its event's columns, as read for claiming (the
/// event is parsed after the claim is committed, off the writer).
struct Row {
    delivery_id: i64,
    attempts: i64,
    tries: i64,
    claimed: bool,
    next_attempt_at: i64,
    created_at: String,
    event: super::events::QueuedEvent,
}

const ROW_COLUMNS: &str = "d.id, d.attempts, d.tries, d.claimed, d.next_attempt_at, d.created_at,
     e.id, e.uuid, e.type, e.created_at, e.ticket_id, e.data";

fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok(Row {
        delivery_id: r.get(0)?,
        attempts: r.get(1)?,
        tries: r.get(2)?,
        claimed: r.get(3)?,
        next_attempt_at: r.get(4)?,
        created_at: r.get(5)?,
        event: super::events::queued_event(r, 6)?,
    })
}

/// The rows one webhook's turn claimed, before their events are parsed.
struct ClaimedRows {
    webhook_id: i64,
    webhook_updated_at: String,
    batched: bool,
    rows: Vec<Row>,
}

/// A claim pass as the writer finishes it: rows claimed, events unparsed.
#[derive(Default)]
struct RawPass {
    claimed: Vec<ClaimedRows>,
    next_due_ms: Option<i64>,
    starved: bool,
}

/// Milliseconds since `created_at` (RFC 3339); a time in the future (clock
/// stepped back) counts as old, so nothing waits on a wrong clock.
fn age_ms(created_at: &str, now: i64) -> i64 {
    chrono::DateTime::parse_from_rfc3339(created_at)
        .map(|t| now - t.timestamp_millis())
        .map(|a| if a < 0 { i64::MAX } else { a })
        .unwrap_or(i64::MAX)
}

impl Store {
    /// Releases every claim: run once at start, when nothing is in flight,
    /// so deliveries interrupted by a crash (or a stop past its grace period)
    /// are sent again. Each interrupted attempt is logged as failed first;
    /// it does not count against the retry policy.
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

    /// Claims due deliveries for up to `free` requests, visiting webhooks
    /// that are enabled and not paused, starting at the `start`-th (so no
    /// webhook is always served last). Each webhook gets at most its
    /// `max_in_flight` minus `in_flight[id]` requests; an ordered webhook
    /// only its oldest pending delivery, and only when nothing of it is in
    /// flight; a batching webhook one request per full batch, or per batch
    /// whose oldest event has waited `max_wait`.
    pub async fn claim_due(
        &self,
        free: usize,
        in_flight: &HashMap<i64, usize>,
        start: usize,
    ) -> Result<ClaimPass, Error> {
        let in_flight = in_flight.to_owned();
        let raw = self.write_async(move |c| {
            let tx: &rusqlite::Connection = c;
            let now = now_ms();
            let mut active = active_webhooks(tx)?;
            if !active.is_empty() {
                let n = start % active.len();
                active.rotate_left(n);
            }
            let mut pass = RawPass::default();
            let mut free = free;
            let note_due = |pass: &mut RawPass, at: Option<i64>| {
                if let Some(at) = at {
                    pass.next_due_ms = Some(pass.next_due_ms.map_or(at, |d| d.min(at)));
                }
            };
            for w in &active {
                let busy = in_flight.get(&w.id).copied().unwrap_or(0);
                let room = if w.ordered { 1 } else { w.max_in_flight }.saturating_sub(busy);
                if room == 0 {
                    continue; // A finishing request wakes the deliverer.
                }
                if free == 0 {
                    pass.starved = true;
                    break;
                }
                if w.ordered {
                    let head = tx
                        .prepare_cached(&format!(
                            "SELECT {ROW_COLUMNS} FROM deliveries d JOIN events e ON e.id = d.event_id
                             WHERE d.webhook_id = ?1 AND d.state = 'pending' ORDER BY d.id LIMIT 1"
                        ))?
                        .query_row([w.id], read_row);
                    let head = match head {
                        Ok(h) => h,
                        Err(rusqlite::Error::QueryReturnedNoRows) => continue,
                        Err(e) => return Err(e.into()),
                    };
                    if head.claimed {
                        continue;
                    }
                    if head.next_attempt_at > now {
                        note_due(&mut pass, Some(head.next_attempt_at));
                        continue;
                    }
                    pass.claimed.push(claim_rows(tx, w, vec![head], false)?);
                    free -= 1;
                    continue;
                }
                let per_request = w.batch.as_ref().map_or(1, |b| b.max_events as usize);
                let mut requests = 0;
                while requests < room && free > 0 {
                    // Plain: every row a request. Batching: one batch per turn.
                    let asked = if w.batch.is_some() { per_request } else { (room - requests).min(free) };
                    let rows: Vec<Row> = tx
                        .prepare_cached(&format!(
                            "SELECT {ROW_COLUMNS} FROM deliveries d JOIN events e ON e.id = d.event_id
                             WHERE d.webhook_id = ?1 AND d.state = 'pending' AND d.claimed = 0 AND d.next_attempt_at <= ?2
                             ORDER BY d.next_attempt_at, d.id LIMIT ?3"
                        ))?
                        .query_map(params![w.id, now, asked as i64], read_row)?
                        .collect::<Result<_, _>>()?;
                    let got = rows.len();
                    if got == 0 {
                        break;
                    }
                    if let Some(b) = &w.batch {
                        let oldest = rows.iter().map(|r| age_ms(&r.created_at, now)).max().unwrap_or(0);
                        let wait = b.wait().as_millis() as i64;
                        let retry = rows.iter().any(|r| r.tries > 0);
                        if got < per_request && oldest < wait && !retry {
                            note_due(&mut pass, Some(now + (wait - oldest).max(1)));
                            break;
                        }
                        requests += 1;
                        free -= 1;
                    } else {
                        requests += got;
                        free -= got;
                    }
                    pass.claimed.push(claim_rows(tx, w, rows, w.batch.is_some())?);
                    if got < asked {
                        break;
                    }
                }
                if requests < room && free == 0 {
                    pass.starved = true;
                } else if requests < room {
                    // Everything due is claimed (or a batch is filling):
                    // wake when the next retry falls due.
                    let next: Option<i64> = tx
                        .prepare_cached(
                            "SELECT min(next_attempt_at) FROM deliveries
                             WHERE webhook_id = ?1 AND state = 'pending' AND claimed = 0 AND next_attempt_at > ?2",
                        )?
                        .query_row(params![w.id, now], |r| r.get(0))?;
                    note_due(&mut pass, next);
                }
            }
            Ok(pass)
        })
        .await?;
        // Parsing is CPU work the writer must not wait on: it happens here,
        // once the claims are committed (or not at all, for an event the
        // router parsed).
        Ok(ClaimPass {
            claimed: raw
                .claimed
                .into_iter()
                .flat_map(|group| into_jobs(&self.parsed, group))
                .collect(),
            next_due_ms: raw.next_due_ms,
            starved: raw.starved,
        })
    }

    /// Records an attempt of a request and settles its deliveries, each
    /// with its own outcome (the events of a batch may be at different
    /// tries of their retry policy), in one transaction with their log
    /// entries and the webhook's health. Returns whether the health changed
    /// in a way the monitor must look at (a failure streak began, or an
    /// alerted streak ended).
    pub async fn finish_attempt(
        &self,
        settled: Arc<Vec<(NewLogEntry, Outcome)>>,
    ) -> Result<bool, Error> {
        self.write_async(move |c| {
            let tx: &rusqlite::Connection = c;
            let now = now_rfc3339();
            // Cached: this runs once per delivery (a fresh prepare was 11% of
            // the delivery path's instructions; see BENCHMARKS.md).
            let mut settle = tx.prepare_cached(
                "UPDATE deliveries SET state = ?2, claimed = 0, next_attempt_at = coalesce(?3, next_attempt_at),
                                       last_error = ?4, updated_at = ?5
                 WHERE id = ?1",
            )?;
            for (entry, outcome) in settled.iter() {
                let (state, next) = match outcome {
                    Outcome::Delivered => ("delivered", None),
                    Outcome::RetryAt(ms) => ("pending", Some(*ms)),
                    Outcome::Failed => ("failed", None),
                };
                let retry_at = next.map(super::webhooks::ms_to_rfc3339);
                super::log::insert_entry(tx, entry, retry_at.as_deref())?;
                settle.execute(params![entry.delivery_id, state, next, entry.error, now])?;
            }
            drop(settle);
            let poke = match settled.first() {
                Some((e, _)) if !e.test => {
                    let gave_up = settled.iter().any(|(_, o)| *o == Outcome::Failed);
                    super::health::note_attempt(
                        tx,
                        e.webhook_id,
                        e.delivered,
                        e.error.as_deref(),
                        &now,
                        gave_up,
                    )?
                }
                _ => false,
            };
            Ok(poke)
        })
        .await
    }

    /// Marks a delivery failed without an attempt (its event cannot be read).
    pub fn fail_unreadable(&self, delivery_id: i64, reason: &str) -> Result<(), Error> {
        let reason = reason.to_owned();
        self.write(move |c| {
            let tx: &rusqlite::Connection = c;
            let now = now_rfc3339();
            let error = format!("the event cannot be read: {reason}");
            tx.execute(
                "INSERT INTO log (at, outcome, event_uuid, event_type, webhook_id, webhook_name, delivery_id, attempt, error)
                 SELECT ?1, 'failed', e.uuid, e.type, w.id, w.name, d.id, d.attempts, ?3
                 FROM deliveries d
                 JOIN events e ON e.id = d.event_id
                 JOIN webhooks w ON w.id = d.webhook_id
                 WHERE d.id = ?2",
                params![now, delivery_id, error],
            )?;
            tx.execute(
                "UPDATE deliveries SET state = 'failed', claimed = 0, last_error = ?3, updated_at = ?2 WHERE id = ?1",
                params![delivery_id, now, error],
            )?;
            Ok(())
        })
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

    /// Puts finished deliveries back in the queue, due now, for a new round
    /// of tries: each resend is a new attempt in the log with the same event
    /// uuid. Deliveries still pending are left as they are. Returns how many.
    pub fn replay(&self, which: &Replay) -> Result<usize, Error> {
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
            let n = tx.execute(
                "UPDATE deliveries SET state = 'pending', tries = 0, next_attempt_at = ?1, updated_at = ?2
                 WHERE state <> 'pending'
                   AND (?3 IS NULL OR id = ?3)
                   AND (?4 IS NULL OR webhook_id = ?4)
                   AND (?5 = 0 OR state = 'failed')
                   AND (?6 IS NULL OR event_id IN (SELECT id FROM events WHERE julianday(created_at) >= julianday(?6)))
                   AND (?7 IS NULL OR event_id IN (SELECT id FROM events WHERE julianday(created_at) < julianday(?7)))",
                params![
                    now_ms(),
                    now_rfc3339(),
                    which.delivery_id,
                    which.webhook_id,
                    which.failed_only,
                    which.from,
                    which.to
                ],
            )?;
            Ok(n)
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
                    let claimed: bool = r.get(12)?;
                    let next: i64 = r.get(9)?;
                    let status = match state.as_str() {
                        "pending" if paused => "paused",
                        "pending" if claimed => "sending",
                        "pending" if tries > 0 => "retrying",
                        s => s,
                    };
                    Ok(DeliveryRow {
                        id: r.get(0)?,
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
#[derive(Debug, Clone, Default, serde::Deserialize)]
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
#[derive(Debug, Clone, serde::Serialize)]
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

/// Webhooks deliveries may be claimed for: enabled and not paused.
fn active_webhooks(tx: &rusqlite::Connection) -> Result<Vec<Active>, Error> {
    let mut stmt = tx.prepare_cached(
        "SELECT id, updated_at, max_in_flight, ordered, batch FROM webhooks
         WHERE enabled = 1 AND paused_at IS NULL ORDER BY id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(Active {
            id: r.get(0)?,
            updated_at: r.get(1)?,
            max_in_flight: r.get::<_, i64>(2)?.max(1) as usize,
            ordered: r.get(3)?,
            // A corrupt batch setting sends one by one; the webhook's own
            // load reports the corruption on its attempts.
            batch: r
                .get::<_, Option<String>>(4)?
                .and_then(|t| serde_json::from_str(&t).ok()),
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Claims `rows` of webhook `w` (one request each, or one request for all
/// when `batched`).
fn claim_rows(
    tx: &rusqlite::Connection,
    w: &Active,
    rows: Vec<Row>,
    batched: bool,
) -> Result<ClaimedRows, Error> {
    // The attempt counts from its claim, so an attempt cut short by a crash
    // keeps its number and the next one is numbered after it.
    let mut claim = tx.prepare_cached(
        "UPDATE deliveries SET claimed = 1, attempts = attempts + 1, tries = tries + 1 WHERE id = ?1",
    )?;
    for row in &rows {
        claim.execute([row.delivery_id])?;
    }
    Ok(ClaimedRows {
        webhook_id: w.id,
        webhook_updated_at: w.updated_at.clone(),
        batched,
        rows,
    })
}

/// The requests of one webhook's claimed rows: each event from the router's
/// parsed events, or parsed now. Events that cannot be read become
/// entries of their own.
fn into_jobs(parsed: &super::parsed::ParsedEvents, group: ClaimedRows) -> Vec<Claimed> {
    let mut out = Vec::new();
    let mut items = Vec::new();
    for row in group.rows {
        let event = match parsed.take(row.event.id) {
            Some(event) => Ok(event),
            None => row.event.parse().map(Arc::new),
        };
        match event {
            Ok(event) => items.push(Item {
                delivery_id: row.delivery_id,
                attempt: row.attempts + 1,
                tries: (row.tries + 1).clamp(1, u32::MAX as i64) as u32,
                event,
            }),
            Err(reason) => out.push(Err(Unreadable {
                delivery_id: row.delivery_id,
                webhook_id: group.webhook_id,
                reason,
            })),
        }
    }
    let job = |items: Vec<Item>| DeliveryJob {
        webhook_id: group.webhook_id,
        webhook_updated_at: group.webhook_updated_at.clone(),
        items,
        batched: group.batched,
    };
    if group.batched {
        if !items.is_empty() {
            out.push(Ok(job(items)));
        }
    } else {
        out.extend(items.into_iter().map(|i| Ok(job(vec![i]))));
    }
    out
}
