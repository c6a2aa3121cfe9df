//! The `events` table: the queue producers append to and the router drains.

use rusqlite::{OptionalExtension, params};

use super::{Error, Store, now_ms};
use crate::event::{Event, ValidEvent, now_rfc3339};

/// A queued row as written by a producer, not yet checked (a plain SQL
/// INSERT can put anything in it).
#[derive(Debug, Clone)]
pub struct QueuedEvent {
    /// Queue position.
    pub id: i64,
    /// uuid text.
    pub uuid: String,
    /// type text.
    pub kind: String,
    /// created_at text.
    pub created_at: String,
    /// ticket_id text.
    pub ticket_id: Option<String>,
    /// data text.
    pub data: String,
}

/// What the router needs of an enabled webhook to route an event to it.
#[derive(Debug, Clone)]
pub struct WebhookRoute {
    /// Webhook id.
    pub id: i64,
    /// Event patterns.
    pub patterns: Vec<String>,
}

/// What one routing transaction did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RouteStats {
    /// Events taken from the queue.
    pub events: usize,
    /// Deliveries created.
    pub deliveries: usize,
    /// Events marked invalid.
    pub invalid: usize,
}

impl Store {
    /// Appends a checked event to the queue. A uuid already queued is refused
    /// with [`Error::Sqlite`] (constraint), which callers report as a duplicate.
    pub fn insert_event(&self, e: &ValidEvent) -> Result<i64, Error> {
        let data = serde_json::Value::Object(e.data.clone()).to_string();
        self.with(|c| {
            c.execute(
                "INSERT INTO events (uuid, type, created_at, ticket_id, data) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![e.uuid, e.kind, e.created_at, e.ticket_id, data],
            )?;
            Ok(c.last_insert_rowid())
        })
    }

    /// Does an event with this uuid exist?
    pub fn event_exists(&self, uuid: &str) -> Result<bool, Error> {
        self.with(|c| {
            Ok(
                c.query_row("SELECT 1 FROM events WHERE uuid = ?1", [uuid], |_| Ok(()))
                    .optional()?
                    .is_some(),
            )
        })
    }

    /// Number of events waiting to be routed.
    pub fn queue_depth(&self) -> Result<i64, Error> {
        self.with(|c| {
            Ok(c.query_row(
                "SELECT count(*) FROM events WHERE state = 'queued'",
                [],
                |r| r.get(0),
            )?)
        })
    }

    /// Routes up to `limit` queued events in one transaction: for each,
    /// `decide` returns the webhooks to deliver to, or why the event is
    /// invalid. Deliveries are created and events marked in the same
    /// transaction, so an event is routed exactly once.
    pub fn route_batch(
        &self,
        limit: usize,
        mut decide: impl FnMut(&QueuedEvent, &[WebhookRoute]) -> Result<Vec<i64>, String>,
    ) -> Result<RouteStats, Error> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let mut stats = RouteStats::default();
            {
                let routes = enabled_routes(&tx)?;
                let mut select = tx.prepare_cached(
                    "SELECT id, uuid, type, created_at, ticket_id, data FROM events
                     WHERE state = 'queued' ORDER BY id LIMIT ?1",
                )?;
                let rows: Vec<QueuedEvent> = select
                    .query_map([limit as i64], |r| {
                        Ok(QueuedEvent {
                            id: r.get(0)?,
                            uuid: text_or_empty(r, 1)?,
                            kind: text_or_empty(r, 2)?,
                            created_at: text_or_empty(r, 3)?,
                            ticket_id: r.get::<_, Option<rusqlite::types::Value>>(4)?.and_then(|v| match v {
                                rusqlite::types::Value::Text(t) => Some(t),
                                rusqlite::types::Value::Integer(i) => Some(i.to_string()),
                                _ => None,
                            }),
                            data: text_or_empty(r, 5)?,
                        })
                    })?
                    .collect::<Result<_, _>>()?;
                let now = now_rfc3339();
                let now_ms = now_ms();
                let mut insert = tx.prepare_cached(
                    "INSERT OR IGNORE INTO deliveries (event_id, webhook_id, next_attempt_at, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?4)",
                )?;
                let mut routed = tx.prepare_cached(
                    "UPDATE events SET state = 'routed', routed_at = ?2 WHERE id = ?1",
                )?;
                let mut invalid = tx.prepare_cached(
                    "UPDATE events SET state = 'invalid', error = ?2, routed_at = ?3 WHERE id = ?1",
                )?;
                for row in &rows {
                    stats.events += 1;
                    match decide(row, &routes) {
                        Ok(webhooks) => {
                            for w in webhooks {
                                stats.deliveries += insert.execute(params![row.id, w, now_ms, now])?;
                            }
                            routed.execute(params![row.id, now])?;
                        }
                        Err(reason) => {
                            stats.invalid += 1;
                            invalid.execute(params![row.id, reason, now])?;
                            super::log::insert_invalid(&tx, row, &reason, &now)?;
                        }
                    }
                }
            }
            tx.commit()?;
            Ok(stats)
        })
    }

    /// Deletes up to `limit` events that were routed or found invalid before
    /// `cutoff` and have no delivery still pending. Returns how many.
    pub fn delete_finished_events_before(
        &self,
        cutoff: &str,
        limit: usize,
    ) -> Result<usize, Error> {
        self.with(|c| {
            Ok(c.execute(
                "DELETE FROM events WHERE id IN (
                    SELECT e.id FROM events e
                    WHERE e.state <> 'queued' AND e.routed_at < ?1
                      AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = e.id AND d.state = 'pending')
                    LIMIT ?2)",
                params![cutoff, limit as i64],
            )?)
        })
    }

    /// Reads one event by uuid (any state).
    pub fn event_by_uuid(&self, uuid: &str) -> Result<Event, Error> {
        self.with(|c| {
            let (id, uuid, kind, created_at, ticket_id, data): (i64, String, String, String, Option<String>, String) = c
                .query_row(
                    "SELECT id, uuid, type, created_at, ticket_id, data FROM events WHERE uuid = ?1",
                    [uuid],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
                )
                .map_err(super::not_found(format!("event {uuid}")))?;
            let data = crate::event::parse_stored_data(&data).map_err(|e| Error::Corrupt(e.to_string()))?;
            Ok(Event { id, uuid, kind, created_at, ticket_id, data })
        })
    }
}

/// Reads a column as text whatever its storage class (SQL producers may store
/// numbers or blobs); NULL reads as empty.
fn text_or_empty(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<String> {
    use rusqlite::types::Value;
    Ok(match r.get::<_, Value>(i)? {
        Value::Null => String::new(),
        Value::Integer(n) => n.to_string(),
        Value::Real(f) => f.to_string(),
        Value::Text(t) => t,
        Value::Blob(b) => String::from_utf8_lossy(&b).into_owned(),
    })
}

/// Enabled webhooks and their patterns.
fn enabled_routes(c: &rusqlite::Connection) -> Result<Vec<WebhookRoute>, Error> {
    let mut stmt =
        c.prepare_cached("SELECT id, events FROM webhooks WHERE enabled = 1 ORDER BY id")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?;
    let mut out = Vec::new();
    for row in rows {
        let (id, events) = row?;
        let patterns: Vec<String> = serde_json::from_str(&events)
            .map_err(|e| Error::Corrupt(format!("webhook {id} events: {e}")))?;
        out.push(WebhookRoute { id, patterns });
    }
    Ok(out)
}
