//! The `events` table: the queue producers append to and the router drains.

use std::sync::Arc;

use rusqlite::{OptionalExtension, params};
use serde_json::{Map, Value};

use super::Error;
use super::sqlite::Sqlite;

/// `next_attempt_at` of a first attempt: due at once, whatever the wall clock
/// says (a clock stepped back at boot must not hold deliveries).
const DUE_NOW: i64 = 0;
use crate::base::event::{Event, ValidEvent, now_rfc3339};

/// An event as stored, for the event log's detail page.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StoredEvent {
    /// Its uuid.
    pub uuid: String,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: String,
    /// When it happened.
    pub created_at: String,
    /// Its ticket id.
    pub ticket_id: Option<String>,
    /// Its data as stored (JSON text).
    pub data: String,
    /// `queued`, `routed` or `invalid`.
    pub state: String,
}

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
    /// Why a column could not be read as text, if one could not.
    pub unreadable: Option<String>,
    /// How it arrived (`api`, `cli`, `herald`; `None`: plain SQL), where read.
    pub source: Option<String>,
}

/// What the router needs of an enabled webhook to route an event to it.
#[derive(Debug, Clone)]
pub struct WebhookRoute {
    /// Webhook id.
    pub id: i64,
    /// Event patterns.
    pub patterns: Vec<String>,
}

/// The router's verdict on a queued row.
enum Decision {
    /// Deliver the parsed event to these webhooks; `keep` it parsed for
    /// their claims (it is small enough).
    Routed {
        event: Arc<Event>,
        webhooks: Vec<i64>,
        keep: bool,
    },
    /// Not a valid event, and why.
    Invalid { row: QueuedEvent, reason: String },
}

impl QueuedEvent {
    /// The event with its `data` parsed, fields as stored.
    fn into_event(self, data: Map<String, Value>) -> Event {
        Event {
            id: self.id,
            uuid: self.uuid,
            kind: self.kind,
            created_at: self.created_at,
            ticket_id: self.ticket_id,
            data,
        }
    }

    /// The event, or why it cannot be read: a claim's view of a routed row
    /// the router's parse was not kept for (the same fields either way).
    pub(super) fn parse(self) -> Result<Event, String> {
        if let Some(reason) = self.unreadable {
            return Err(reason);
        }
        let data = crate::base::event::parse_stored_data(&self.data).map_err(|e| e.to_string())?;
        Ok(self.into_event(data))
    }
}

/// How an event reached the queue (the `source` column; a producer's plain
/// SQL leaves it empty).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `POST /api/v1/events`.
    Api,
    /// `herald emit`.
    Cli,
}

impl Source {
    /// The column's text.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Api => "api",
            Source::Cli => "cli",
        }
    }
}

/// Events one routing transaction took, by how they arrived.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BySource {
    /// Through the API.
    pub api: u64,
    /// By `herald emit`.
    pub cli: u64,
    /// By a producer's SQL INSERT.
    pub sql: u64,
    /// herald's own `herald.*` events (alerts).
    pub herald: u64,
}

impl BySource {
    fn count(&mut self, source: Option<&str>) {
        match source {
            Some("api") => self.api += 1,
            Some("cli") => self.cli += 1,
            Some("herald") => self.herald += 1,
            _ => self.sql += 1,
        }
    }
}

/// A page of routed events, as a stream's replay reads them.
#[derive(Debug)]
pub struct RoutedPage {
    /// The events, in queue order.
    pub events: Vec<Event>,
    /// Rows read (a page shorter than asked is the last).
    pub read: usize,
    /// Queue position of the last row read.
    pub last: Option<i64>,
}

/// What one routing transaction did.
#[derive(Debug, Clone, Default)]
pub struct RouteStats {
    /// Queued rows read and decided (the router reads again at once when
    /// this filled its batch: more may be waiting).
    pub read: usize,
    /// Events taken from the queue.
    pub events: usize,
    /// Deliveries created.
    pub deliveries: usize,
    /// Events marked invalid.
    pub invalid: usize,
    /// The events this transaction routed, in queue order, for the live
    /// stream.
    pub routed: Vec<Arc<Event>>,
    /// The events it took (routed or invalid), by how they arrived.
    pub sources: BySource,
}

impl Sqlite {
    /// Appends a checked event to the queue. A uuid already queued is refused
    /// with [`Error::Duplicate`].
    /// Refused with [`Error::Storage`] while free space is below the
    /// watermark: the space left is kept for deliveries and their log.
    pub fn insert_event(&self, e: &ValidEvent, source: Source) -> Result<i64, Error> {
        self.watch.check_space()?;
        self.write(insert_event_write(e, source).0)
    }

    /// [`Store::insert_event`] for async callers (the API): awaits the
    /// commit without holding a thread.
    pub async fn insert_event_async(&self, e: &ValidEvent, source: Source) -> Result<i64, Error> {
        self.watch.check_space()?;
        let (write, text) = insert_event_write(e, source);
        let id = self.write_async(write).await?;
        // Once committed: the router finds it, and need not parse it again.
        self.ingested.keep(id, text, e.data.clone());
        Ok(id)
    }

    /// The stored event with this uuid, while the cleanup has not removed it.
    pub fn event_by_uuid(&self, uuid: &str) -> Result<Option<StoredEvent>, Error> {
        self.read(|c| {
            Ok(c.prepare_cached(
                "SELECT uuid, type, created_at, ticket_id, data, state FROM events WHERE uuid = ?1",
            )?
            .query_row([uuid], |r| {
                Ok(StoredEvent {
                    uuid: r.get(0)?,
                    kind: r.get(1)?,
                    created_at: r.get(2)?,
                    ticket_id: r.get(3)?,
                    data: r.get(4)?,
                    state: r.get(5)?,
                })
            })
            .optional()?)
        })
    }

    /// Number of events waiting to be routed.
    pub fn queue_depth(&self) -> Result<i64, Error> {
        self.read(|c| {
            Ok(c.query_row(
                "SELECT count(*) FROM events WHERE state = 'queued'",
                [],
                |r| r.get(0),
            )?)
        })
    }

    /// Routes up to `limit` queued events: for each, `decide` returns the
    /// webhooks to deliver to with the event's parsed data (given the data
    /// parsed when the API queued it, if the row still holds what it was
    /// given), or why the event is invalid. The rows are read and decided on a read connection, off
    /// the writer; one write then creates the deliveries and marks the
    /// events, each only if it is still queued, so an event is routed
    /// exactly once even beside another router (a second `herald serve`).
    /// Routed events are kept parsed for the claims that send them.
    pub fn route_batch(
        &self,
        limit: usize,
        mut decide: impl FnMut(
            &QueuedEvent,
            Option<Map<String, Value>>,
            &[WebhookRoute],
        ) -> Result<(Vec<i64>, Map<String, Value>), String>,
    ) -> Result<RouteStats, Error> {
        let (routes, rows) = self.read(|c| Ok((enabled_routes(c)?, queued_events(c, limit)?)))?;
        if rows.is_empty() {
            return Ok(RouteStats::default());
        }
        let read = rows.len();
        let sources_of: std::collections::HashMap<i64, Option<String>> =
            rows.iter().map(|r| (r.id, r.source.clone())).collect();
        let decided: Vec<Decision> = rows
            .into_iter()
            .map(
                |row| match decide(&row, self.ingested.take(row.id, &row.data), &routes) {
                    Ok((webhooks, data)) => Decision::Routed {
                        keep: row.data.len() <= super::parsed::MAX_DATA_BYTES,
                        event: Arc::new(row.into_event(data)),
                        webhooks,
                    },
                    Err(reason) => Decision::Invalid { row, reason },
                },
            )
            .collect();
        let parsed = self.parsed.clone();
        self.write(move |c| {
            let tx: &rusqlite::Connection = c;
            let mut stats = RouteStats {
                read,
                ..RouteStats::default()
            };
            let now = now_rfc3339();
            // Only to a webhook still there and enabled: it may have changed
            // since the read.
            let mut insert = tx.prepare_cached(
                "INSERT OR IGNORE INTO deliveries (event_id, webhook_id, next_attempt_at, created_at, updated_at)
                 SELECT ?1, id, ?3, ?4, ?4 FROM webhooks WHERE id = ?2 AND enabled = 1",
            )?;
            let mut routed = tx.prepare_cached(
                "UPDATE events SET state = 'routed', routed_at = ?2 WHERE id = ?1 AND state = 'queued'",
            )?;
            let mut invalid = tx.prepare_cached(
                "UPDATE events SET state = 'invalid', error = ?2, routed_at = ?3 WHERE id = ?1 AND state = 'queued'",
            )?;
            let mut keep = Vec::new();
            for decision in &decided {
                match decision {
                    Decision::Routed { event, webhooks, keep: small } => {
                        if routed.execute(params![event.id, now])? == 0 {
                            continue; // Routed meanwhile by someone else.
                        }
                        stats.events += 1;
                        stats.sources.count(sources_of.get(&event.id).and_then(|s| s.as_deref()));
                        stats.routed.push(event.clone());
                        let mut made = 0;
                        for w in webhooks {
                            made += insert.execute(params![event.id, w, DUE_NOW, now])?;
                        }
                        stats.deliveries += made;
                        if *small {
                            keep.push((event.clone(), made));
                        }
                    }
                    Decision::Invalid { row, reason } => {
                        if invalid.execute(params![row.id, reason, now])? == 0 {
                            continue;
                        }
                        stats.events += 1;
                        stats.sources.count(row.source.as_deref());
                        stats.invalid += 1;
                        super::log::insert_invalid(tx, row.id, &row.uuid, &row.kind, row.ticket_id.as_deref(), reason, &now)?;
                    }
                }
            }
            Ok((stats, keep))
        })
        .map(|(stats, keep)| {
            // Kept only once committed: a claim can only find what is routed.
            for (event, deliveries) in keep {
                parsed.keep(event, deliveries);
            }
            stats
        })
    }

    /// Up to `limit` routed rows after queue position `after`, in queue
    /// order: a live-stream subscriber's replay (`since`). Rows whose data
    /// no longer parses (edited by hand since) are left out of `events`
    /// but counted in `read` and `last`, so a reader passes over them.
    pub fn routed_events_after(&self, after: i64, limit: usize) -> Result<RoutedPage, Error> {
        let rows: Vec<QueuedEvent> = self.read(|c| {
            let mut select = c.prepare_cached(
                "SELECT id, uuid, type, created_at, ticket_id, data FROM events
                 WHERE id > ?1 AND state = 'routed' ORDER BY id LIMIT ?2",
            )?;
            let rows = select
                .query_map(params![after, limit as i64], |r| queued_event(r, 0))?
                .collect::<Result<_, _>>()?;
            Ok(rows)
        })?;
        Ok(RoutedPage {
            read: rows.len(),
            last: rows.last().map(|r| r.id),
            events: rows.into_iter().filter_map(|r| r.parse().ok()).collect(),
        })
    }

    /// Deletes up to `limit` events that were routed or found invalid before
    /// `cutoff` and have no delivery still pending. Returns how many.
    pub fn delete_finished_events_before(
        &self,
        cutoff: &str,
        limit: usize,
    ) -> Result<usize, Error> {
        let cutoff = cutoff.to_owned();
        self.write(move |c| {
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
}

/// The write that appends `e` to the queue, returning its queue id, and
/// the data text it stores.
fn insert_event_write(
    e: &ValidEvent,
    source: Source,
) -> (
    impl FnOnce(&mut rusqlite::Connection) -> Result<i64, Error> + Send + 'static,
    String,
) {
    // Serialised from the map itself: a clone into a `Value` first cost a
    // third of the insert.
    // (A map of JSON values always serialises, as `Value`'s `Display` assumes.)
    let data = serde_json::to_string(&e.data).expect("a JSON map serialises");
    let text = data.clone();
    let (uuid, kind, created_at, ticket_id) = (
        e.uuid.clone(),
        e.kind.clone(),
        e.created_at.clone(),
        e.ticket_id.clone(),
    );
    let write = move |c: &mut rusqlite::Connection| {
        c.prepare_cached(
            "INSERT INTO events (uuid, type, created_at, ticket_id, data, source) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![uuid, kind, created_at, ticket_id, data, source.as_str()])
        .map_err(|err| {
            if super::is_duplicate(&err) {
                Error::Duplicate(format!("event {uuid}"))
            } else {
                err.into()
            }
        })?;
        Ok(c.last_insert_rowid())
    };
    (write, text)
}

/// Reads a producer-written column as text. SQL producers can store anything:
/// numbers read as their text, NULL as `None`; a BLOB or text that is not
/// UTF-8 is refused with the reason (the row is then marked invalid rather
/// than stopping the queue).
fn column_text(r: &rusqlite::Row<'_>, i: usize) -> Result<Option<String>, &'static str> {
    use rusqlite::types::ValueRef;
    match r.get_ref(i).map_err(|_| "cannot be read")? {
        ValueRef::Null => Ok(None),
        ValueRef::Integer(n) => Ok(Some(n.to_string())),
        ValueRef::Real(f) => Ok(Some(f.to_string())),
        ValueRef::Text(t) => std::str::from_utf8(t)
            .map(|s| Some(s.to_owned()))
            .map_err(|_| "is not valid UTF-8 text"),
        ValueRef::Blob(_) => Err("holds a BLOB; herald needs text"),
    }
}

/// Up to `limit` queued events, oldest first, as written.
fn queued_events(c: &rusqlite::Connection, limit: usize) -> Result<Vec<QueuedEvent>, Error> {
    let mut select = c.prepare_cached(
        "SELECT id, uuid, type, created_at, ticket_id, data, source FROM events
         WHERE state = 'queued' ORDER BY id LIMIT ?1",
    )?;
    let rows = select
        .query_map([limit as i64], |r| {
            let mut row = queued_event(r, 0)?;
            row.source = r.get(6).ok().flatten();
            Ok(row)
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// An event row's columns id, uuid, type, created_at, ticket_id and data,
/// from column `first` of `r` on, read as text whatever a producer stored
/// (the first column that cannot be read is named in `unreadable`).
pub(super) fn queued_event(r: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<QueuedEvent> {
    let mut unreadable = None;
    let mut text = |i: usize, name: &str| {
        column_text(r, first + i).unwrap_or_else(|reason| {
            unreadable.get_or_insert(format!("column {name} {reason}"));
            None
        })
    };
    let uuid = text(1, "uuid").unwrap_or_default();
    let kind = text(2, "type").unwrap_or_default();
    let created_at = text(3, "created_at").unwrap_or_default();
    let ticket_id = text(4, "ticket_id").filter(|t| !t.is_empty());
    let data = text(5, "data").unwrap_or_default();
    Ok(QueuedEvent {
        id: r.get(first)?,
        uuid,
        kind,
        created_at,
        ticket_id,
        data,
        unreadable,
        source: None,
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
        match serde_json::from_str::<Vec<String>>(&events) {
            Ok(patterns) => out.push(WebhookRoute { id, patterns }),
            // A hand-edited row must not stop routing for every other webhook.
            Err(e) => {
                tracing::error!(webhook = id, error = %e, "webhook events are not a JSON list of patterns; skipped")
            }
        }
    }
    Ok(out)
}
