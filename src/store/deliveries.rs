//! The `deliveries` table: one row per (event, webhook), claimed while its
//! request is in flight, finished with an event-log entry in one transaction.

use rusqlite::params;

use super::log::NewLogEntry;
use super::{Error, Store, now_ms};
use crate::event::{Event, now_rfc3339};

/// The log's error for an attempt cut short by a stop.
pub const INTERRUPTED: &str =
    "interrupted: herald stopped before the answer came; the request is sent again";

/// A delivery claimed for sending, with what the deliverer needs.
#[derive(Debug, Clone)]
pub struct DeliveryJob {
    /// Delivery id.
    pub delivery_id: i64,
    /// This attempt's number, from 1.
    pub attempt: i64,
    /// The event.
    /// Shared: renders for this attempt (and a repeat after a 401) read it without copies.
    pub event: std::sync::Arc<Event>,
    /// The webhook's id.
    pub webhook_id: i64,
    /// The webhook's last change, to know whether a cached compile is current.
    pub webhook_updated_at: String,
}

/// A claimed delivery whose event cannot be read back (its row was edited).
#[derive(Debug, Clone)]
pub struct Unreadable {
    /// Delivery id.
    pub delivery_id: i64,
    /// Why the event cannot be read.
    pub reason: String,
}

/// A claimed delivery: ready to send, or to be failed with its reason.
pub type Claimed = Result<DeliveryJob, Unreadable>;

/// How an attempt ended for the delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx: done.
    Delivered,
    /// Failed for good (no retry policy applies).
    Failed,
}

impl Store {
    /// Releases every claim: run once at start, when nothing is in flight,
    /// so deliveries interrupted by a crash (or a stop past its grace period)
    /// are sent again. Each interrupted attempt is logged as failed first.
    pub fn release_claims(&self) -> Result<usize, Error> {
        self.with(|c| {
            let tx = c.transaction()?;
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
            let n = tx.execute("UPDATE deliveries SET claimed = 0 WHERE claimed = 1", [])?;
            tx.commit()?;
            Ok(n)
        })
    }

    /// Claims up to `limit` pending deliveries that are due, of enabled
    /// webhooks, oldest first. Events whose stored data no longer parses are
    /// returned as `Err` rows so the caller can fail them with the reason.
    pub fn claim_due(&self, limit: usize) -> Result<Vec<Claimed>, Error> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let mut jobs = Vec::new();
            {
                let mut select = tx.prepare_cached(
                    "SELECT d.id, d.attempts, e.id, e.uuid, e.type, e.created_at, e.ticket_id, e.data, w.id, w.updated_at
                     FROM deliveries d
                     JOIN events e ON e.id = d.event_id
                     JOIN webhooks w ON w.id = d.webhook_id
                     WHERE d.state = 'pending' AND d.claimed = 0 AND d.next_attempt_at <= ?1 AND w.enabled = 1
                     ORDER BY d.next_attempt_at, d.id LIMIT ?2",
                )?;
                // The attempt counts from its claim, so an attempt cut short by a
                // crash keeps its number and the next one is numbered after it.
                let mut claim = tx.prepare_cached(
                    "UPDATE deliveries SET claimed = 1, attempts = attempts + 1 WHERE id = ?1",
                )?;
                let rows = select.query_map(params![now_ms(), limit as i64], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, String>(5)?,
                        r.get::<_, Option<String>>(6)?,
                        r.get::<_, String>(7)?,
                        r.get::<_, i64>(8)?,
                        r.get::<_, String>(9)?,
                    ))
                })?;
                for row in rows {
                    let (delivery_id, attempts, event_id, uuid, kind, created_at, ticket_id, data, webhook_id, updated) = row?;
                    claim.execute([delivery_id])?;
                    jobs.push(match crate::event::parse_stored_data(&data) {
                        Ok(data) => Ok(DeliveryJob {
                            delivery_id,
                            attempt: attempts + 1,
                            event: std::sync::Arc::new(Event { id: event_id, uuid, kind, created_at, ticket_id, data }),
                            webhook_id,
                            webhook_updated_at: updated,
                        }),
                        Err(e) => Err(Unreadable {
                            delivery_id,
                            reason: e.to_string(),
                        }),
                    });
                }
            }
            tx.commit()?;
            Ok(jobs)
        })
    }

    /// Records an attempt and settles the delivery, in one transaction.
    pub fn finish_attempt(
        &self,
        delivery_id: i64,
        outcome: Outcome,
        entry: &NewLogEntry,
    ) -> Result<(), Error> {
        self.with(|c| {
            let tx = c.transaction()?;
            super::log::insert_entry(&tx, entry)?;
            let state = match outcome {
                Outcome::Delivered => "delivered",
                Outcome::Failed => "failed",
            };
            // Cached: this runs once per delivery (a fresh prepare was 11% of
            // the delivery path's instructions; see BENCHMARKS.md).
            tx.prepare_cached(
                "UPDATE deliveries SET state = ?2, claimed = 0, updated_at = ?3 WHERE id = ?1",
            )?
            .execute(params![delivery_id, state, now_rfc3339()])?;
            tx.commit()?;
            Ok(())
        })
    }

    /// Marks a delivery failed without an attempt (its event cannot be read).
    pub fn fail_unreadable(&self, delivery_id: i64, reason: &str) -> Result<(), Error> {
        self.with(|c| {
            let tx = c.transaction()?;
            let now = now_rfc3339();
            tx.execute(
                "INSERT INTO log (at, outcome, event_uuid, event_type, webhook_id, webhook_name, delivery_id, attempt, error)
                 SELECT ?1, 'failed', e.uuid, e.type, w.id, w.name, d.id, d.attempts, ?3
                 FROM deliveries d
                 JOIN events e ON e.id = d.event_id
                 JOIN webhooks w ON w.id = d.webhook_id
                 WHERE d.id = ?2",
                params![now, delivery_id, format!("the event cannot be read: {reason}")],
            )?;
            tx.execute(
                "UPDATE deliveries SET state = 'failed', claimed = 0, updated_at = ?2 WHERE id = ?1",
                params![delivery_id, now],
            )?;
            tx.commit()?;
            Ok(())
        })
    }

    /// Deliveries not yet finished.
    pub fn pending_deliveries(&self) -> Result<i64, Error> {
        self.with(|c| {
            Ok(c.query_row(
                "SELECT count(*) FROM deliveries WHERE state = 'pending'",
                [],
                |r| r.get(0),
            )?)
        })
    }
}
