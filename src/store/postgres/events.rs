//! The `events` table on PostgreSQL: the queue producers append to (the
//! API, `herald emit`, or a plain SQL `INSERT`) and the routers drain.
//!
//! Several routers share the queue: each routing transaction takes its
//! rows under `FOR UPDATE SKIP LOCKED`, so every event is routed exactly
//! once, by whichever router locked it first.

use std::collections::HashSet;
use std::sync::Arc;

use deadpool_postgres::Transaction;
use serde_json::{Map, Value};
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;

use super::Postgres;
use crate::base::event::{Event, ValidEvent, now_rfc3339};
use crate::store::{
    BySource, Error, QueuedEvent, RouteStats, RoutedPage, Source, StoredEvent, WebhookRoute,
};

/// `next_attempt_at` of a first attempt: due at once, whatever the wall
/// clock says (as on SQLite).
const DUE_NOW: i64 = 0;

/// An event to insert, owned: the async insert runs on the backend's runtime.
struct NewRow {
    /// Normalised uuid.
    uuid: String,
    /// Event type.
    kind: String,
    /// RFC 3339 time.
    created_at: String,
    /// Ticket id, if any.
    ticket_id: Option<String>,
    /// The data object as JSON text.
    data: String,
    /// How it arrived.
    source: Source,
}

impl NewRow {
    /// The row that stores `e`, arrived by `source`.
    fn of(e: &ValidEvent, source: Source) -> NewRow {
        NewRow {
            uuid: e.uuid.clone(),
            kind: e.kind.clone(),
            created_at: e.created_at.clone(),
            ticket_id: e.ticket_id.clone(),
            // A map of JSON values always serialises.
            data: serde_json::to_string(&e.data).expect("a JSON map serialises"),
            source,
        }
    }
}

/// A queued row's verdict, and the row it is about.
enum Decision {
    /// Deliver the parsed event to these webhooks.
    Routed {
        event: Arc<Event>,
        webhooks: Vec<i64>,
        source: Option<String>,
    },
    /// Not a valid event, and why.
    Invalid { row: QueuedEvent, reason: String },
}

impl Postgres {
    /// Appends a checked event to the queue. A uuid already queued is refused
    /// with [`Error::Duplicate`]. (No free-space watermark on PostgreSQL: the
    /// server's own full disk is [`Error::Storage`].)
    pub(in crate::store) fn insert_event(
        &self,
        e: &ValidEvent,
        source: Source,
    ) -> Result<i64, Error> {
        self.block(insert(self.clone(), NewRow::of(e, source)))
    }

    /// [`Postgres::insert_event`] for async callers (the API): awaits the
    /// commit without holding a thread. Runs on the backend's runtime, so
    /// the pool's connections are always driven there.
    pub(in crate::store) async fn insert_event_async(
        &self,
        e: &ValidEvent,
        source: Source,
    ) -> Result<i64, Error> {
        let task = self
            .handle()
            .spawn(insert(self.clone(), NewRow::of(e, source)));
        let result = task
            .await
            .map_err(|e| Error::Task(e.to_string()))
            .and_then(|r| r);
        self.noted(result)
    }

    /// The stored event with this uuid, while the cleanup has not removed it.
    pub(in crate::store) fn event_by_uuid(&self, uuid: &str) -> Result<Option<StoredEvent>, Error> {
        self.block(async {
            let c = self.client().await?;
            let stmt = c
                .prepare_cached(
                    "SELECT uuid, type, created_at, ticket_id, data, state FROM events WHERE uuid = $1",
                )
                .await?;
            Ok(c.query_opt(&stmt, &[&uuid]).await?.map(|r| StoredEvent {
                uuid: r.get(0),
                kind: r.get(1),
                created_at: r.get(2),
                ticket_id: r.get(3),
                data: r.get(4),
                state: r.get(5),
            }))
        })
    }

    /// Number of events waiting to be routed.
    pub(in crate::store) fn queue_depth(&self) -> Result<i64, Error> {
        self.block(async {
            let c = self.client().await?;
            let stmt = c
                .prepare_cached("SELECT count(*) FROM events WHERE state = 'queued'")
                .await?;
            Ok(c.query_one(&stmt, &[]).await?.get(0))
        })
    }

    /// Routes up to `limit` queued events in one transaction: the rows are
    /// taken under `FOR UPDATE SKIP LOCKED` (rows another router holds are
    /// left to it), `decide` returns for each the webhooks to deliver to
    /// with its parsed data, or why it is invalid (no data parsed at
    /// ingest is kept on PostgreSQL: it is given `None`); the deliveries
    /// are made, the events marked, and every router's deliverer woken
    /// (`NOTIFY herald_deliveries`) when deliveries were made. Each event is
    /// routed exactly once however many routers share the queue.
    pub(in crate::store) fn route_batch(
        &self,
        limit: usize,
        mut decide: impl FnMut(
            &QueuedEvent,
            Option<Map<String, Value>>,
            &[WebhookRoute],
        ) -> Result<(Vec<i64>, Map<String, Value>), String>,
    ) -> Result<RouteStats, Error> {
        self.block(async {
            let mut c = self.client().await?;
            let tx = c.transaction().await?;
            let rows = queued_events(&tx, limit).await?;
            if rows.is_empty() {
                return Ok(RouteStats::default());
            }
            let read = rows.len();
            let routes = enabled_routes(&tx).await?;
            let decided: Vec<Decision> = rows
                .into_iter()
                .map(|row| match decide(&row, None, &routes) {
                    Ok((webhooks, data)) => Decision::Routed {
                        source: row.source.clone(),
                        event: Arc::new(into_event(row, data)),
                        webhooks,
                    },
                    Err(reason) => Decision::Invalid { row, reason },
                })
                .collect();
            let now = now_rfc3339();
            let taken = mark_events(&tx, &decided, &now).await?;
            let mut stats = RouteStats {
                read,
                ..RouteStats::default()
            };
            let (mut event_ids, mut webhook_ids) = (Vec::new(), Vec::new());
            for decision in &decided {
                match decision {
                    Decision::Routed {
                        event,
                        webhooks,
                        source,
                    } => {
                        if !taken.contains(&event.id) {
                            continue; // Routed meanwhile by someone else.
                        }
                        stats.events += 1;
                        count_source(&mut stats.sources, source.as_deref());
                        stats.routed.push(event.clone());
                        for w in webhooks {
                            event_ids.push(event.id);
                            webhook_ids.push(*w);
                        }
                    }
                    Decision::Invalid { row, .. } => {
                        if !taken.contains(&row.id) {
                            continue;
                        }
                        stats.events += 1;
                        count_source(&mut stats.sources, row.source.as_deref());
                        stats.invalid += 1;
                    }
                }
            }
            if !event_ids.is_empty() {
                // Only to a webhook still there and enabled: it may have
                // changed since the routes were read.
                let insert = tx
                    .prepare_cached(
                        "INSERT INTO deliveries (event_id, webhook_id, next_attempt_at, created_at, updated_at)
                         SELECT x.event_id, w.id, $3, $4, $4
                         FROM unnest($1::bigint[], $2::bigint[]) WITH ORDINALITY AS x(event_id, webhook_id, n)
                         JOIN webhooks w ON w.id = x.webhook_id AND w.enabled
                         ORDER BY x.n
                         ON CONFLICT (event_id, webhook_id) DO NOTHING",
                    )
                    .await?;
                let made = tx
                    .execute(&insert, &[&event_ids, &webhook_ids, &DUE_NOW, &now])
                    .await?;
                stats.deliveries = made as usize;
            }
            if stats.deliveries > 0 {
                tx.execute("SELECT pg_notify('herald_deliveries', '')", &[])
                    .await?;
            }
            tx.commit().await?;
            Ok(stats)
        })
    }

    /// Up to `limit` routed rows after queue position `after`, in queue
    /// order: a live-stream subscriber's replay (`since`). Rows whose data
    /// no longer parses (edited by hand since) are left out of `events`
    /// but counted in `read` and `last`, so a reader passes over them.
    pub(in crate::store) fn routed_events_after(
        &self,
        after: i64,
        limit: usize,
    ) -> Result<RoutedPage, Error> {
        let rows: Vec<QueuedEvent> = self.block(async {
            let c = self.client().await?;
            let stmt = c
                .prepare_cached(
                    "SELECT id, uuid, type, created_at, ticket_id, data FROM events
                     WHERE id > $1 AND state = 'routed' ORDER BY id LIMIT $2",
                )
                .await?;
            let rows = c.query(&stmt, &[&after, &(limit as i64)]).await?;
            Ok(rows.iter().map(queued_event).collect())
        })?;
        Ok(RoutedPage {
            read: rows.len(),
            last: rows.last().map(|r| r.id),
            events: rows.into_iter().filter_map(|r| r.parse().ok()).collect(),
        })
    }

    /// Deletes up to `limit` events that were routed or found invalid before
    /// `cutoff` and have no delivery still pending, oldest first. Returns
    /// how many.
    pub(in crate::store) fn delete_finished_events_before(
        &self,
        cutoff: &str,
        limit: usize,
    ) -> Result<usize, Error> {
        self.block(async {
            let c = self.client().await?;
            let stmt = c
                .prepare_cached(
                    "DELETE FROM events WHERE id IN (
                        SELECT e.id FROM events e
                        WHERE e.state <> 'queued' AND e.routed_at < $1
                          AND NOT EXISTS (SELECT 1 FROM deliveries d
                                          WHERE d.event_id = e.id AND d.state = 'pending')
                        ORDER BY e.id LIMIT $2)",
                )
                .await?;
            Ok(c.execute(&stmt, &[&cutoff, &(limit as i64)]).await? as usize)
        })
    }
}

/// Inserts `row` and returns its queue id; a uuid already there is
/// [`Error::Duplicate`], worded as on SQLite.
async fn insert(pg: Postgres, row: NewRow) -> Result<i64, Error> {
    let c = pg.client().await?;
    let stmt = c
        .prepare_cached(
            "INSERT INTO events (uuid, type, created_at, ticket_id, data, source)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .await?;
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 6] = [
        &row.uuid,
        &row.kind,
        &row.created_at,
        &row.ticket_id,
        &row.data,
        &row.source.as_str(),
    ];
    match c.query_one(&stmt, &params).await {
        Ok(r) => Ok(r.get(0)),
        Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
            Err(Error::Duplicate(format!("event {}", row.uuid)))
        }
        Err(e) => Err(e.into()),
    }
}

/// Marks the decided events routed or invalid, each only if still queued
/// (the invalid ones logged), and returns the ids it marked.
async fn mark_events(
    tx: &Transaction<'_>,
    decided: &[Decision],
    now: &str,
) -> Result<HashSet<i64>, Error> {
    let routed: Vec<i64> = decided
        .iter()
        .filter_map(|d| match d {
            Decision::Routed { event, .. } => Some(event.id),
            Decision::Invalid { .. } => None,
        })
        .collect();
    let stmt = tx
        .prepare_cached(
            "UPDATE events SET state = 'routed', routed_at = $2
             WHERE id = ANY($1) AND state = 'queued' RETURNING id",
        )
        .await?;
    let mut taken: HashSet<i64> = tx
        .query(&stmt, &[&routed, &now])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    // One by one: invalid events are rare.
    let invalid = tx
        .prepare_cached(
            "UPDATE events SET state = 'invalid', error = $2, routed_at = $3
             WHERE id = $1 AND state = 'queued'",
        )
        .await?;
    let log = tx
        .prepare_cached(
            "INSERT INTO log (at, outcome, event_uuid, event_type, ticket_id, error)
             VALUES ($1, 'invalid', $2, $3, $4, $5)",
        )
        .await?;
    for decision in decided {
        let Decision::Invalid { row, reason } = decision else {
            continue;
        };
        if tx.execute(&invalid, &[&row.id, reason, &now]).await? == 0 {
            continue;
        }
        let error = format!("invalid event (queue id {}): {reason}", row.id);
        tx.execute(&log, &[&now, &row.uuid, &row.kind, &row.ticket_id, &error])
            .await?;
        taken.insert(row.id);
    }
    Ok(taken)
}

/// Routers route one at a time (this transaction-scoped advisory lock):
/// deliveries are then made in queue order across routers, which strict
/// ordering needs; the rows stay locked with `SKIP LOCKED` as well.
const ROUTING_LOCK: i64 = 0x726f_7574_6500;

/// Up to `limit` queued events, oldest first, as written, locked for this
/// transaction; rows another router holds are skipped.
async fn queued_events(tx: &Transaction<'_>, limit: usize) -> Result<Vec<QueuedEvent>, Error> {
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&ROUTING_LOCK])
        .await?;
    let stmt = tx
        .prepare_cached(
            "SELECT id, uuid, type, created_at, ticket_id, data, source FROM events
             WHERE state = 'queued' ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
        )
        .await?;
    let rows = tx.query(&stmt, &[&(limit as i64)]).await?;
    Ok(rows
        .iter()
        .map(|r| {
            let mut row = queued_event(r);
            row.source = r.try_get(6).ok().flatten();
            row
        })
        .collect())
}

/// An event row's columns id, uuid, type, created_at, ticket_id and data
/// (the first six of `r`), as text; a column that cannot be read as text
/// is named in `unreadable` (the row is then marked invalid rather than
/// stopping the queue), an empty ticket id reads as none.
fn queued_event(r: &Row) -> QueuedEvent {
    let mut unreadable = None;
    let mut text = |i: usize, name: &str| {
        r.try_get::<_, Option<String>>(i).unwrap_or_else(|_| {
            unreadable.get_or_insert(format!("column {name} cannot be read"));
            None
        })
    };
    let uuid = text(1, "uuid").unwrap_or_default();
    let kind = text(2, "type").unwrap_or_default();
    let created_at = text(3, "created_at").unwrap_or_default();
    let ticket_id = text(4, "ticket_id").filter(|t| !t.is_empty());
    let data = text(5, "data").unwrap_or_default();
    QueuedEvent {
        id: r.get(0),
        uuid,
        kind,
        created_at,
        ticket_id,
        data,
        unreadable,
        source: None,
    }
}

/// Counts an event taken by how it arrived, as SQLite's routing does:
/// anything but `api`, `cli` and `herald` (a producer's SQL) is `sql`.
fn count_source(by: &mut BySource, source: Option<&str>) {
    match source {
        Some("api") => by.api += 1,
        Some("cli") => by.cli += 1,
        Some("herald") => by.herald += 1,
        _ => by.sql += 1,
    }
}

/// The event of `row` with its `data` parsed, fields as stored.
fn into_event(row: QueuedEvent, data: Map<String, Value>) -> Event {
    Event {
        id: row.id,
        uuid: row.uuid,
        kind: row.kind,
        created_at: row.created_at,
        ticket_id: row.ticket_id,
        data,
    }
}

/// Enabled webhooks and their patterns, by id. A webhook whose patterns
/// are not a JSON list (edited by hand) is skipped with an error logged,
/// not fatal to routing for the others.
async fn enabled_routes(tx: &Transaction<'_>) -> Result<Vec<WebhookRoute>, Error> {
    let stmt = tx
        .prepare_cached("SELECT id, events FROM webhooks WHERE enabled ORDER BY id")
        .await?;
    let mut out = Vec::new();
    for r in tx.query(&stmt, &[]).await? {
        let (id, events): (i64, String) = (r.get(0), r.get(1));
        match serde_json::from_str::<Vec<String>>(&events) {
            Ok(patterns) => out.push(WebhookRoute { id, patterns }),
            Err(e) => {
                tracing::error!(webhook = id, error = %e, "webhook events are not a JSON list of patterns; skipped")
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
#[path = "events_tests.rs"]
pub(in crate::store) mod tests;
