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
pub(in crate::store) mod tests {
    use std::collections::HashSet;

    use serde_json::Map;

    use super::super::Postgres;
    use super::super::test_server::TempPostgres;
    use crate::base::config::DatabaseUrl;
    use crate::base::event::ValidEvent;
    use crate::base::event::{
        check_time, check_type, check_uuid, parse_stored_data, pattern_matches,
    };
    use crate::store::{Error, QueuedEvent, Source, WebhookRoute};

    /// The router's decision, as `pipeline::router::decide_parsed` makes it
    /// (a layer above the store, so not imported here): checked fields,
    /// parsed data, the webhooks whose patterns match.
    pub(in crate::store) fn decide_parsed(
        row: &QueuedEvent,
        parsed: Option<Map<String, serde_json::Value>>,
        routes: &[WebhookRoute],
    ) -> Result<(Vec<i64>, Map<String, serde_json::Value>), String> {
        if let Some(reason) = &row.unreadable {
            return Err(reason.clone());
        }
        check_type(&row.kind).map_err(|e| e.to_string())?;
        check_uuid(&row.uuid).map_err(|e| e.to_string())?;
        check_time(&row.created_at).map_err(|e| e.to_string())?;
        let data = match parsed {
            Some(data) => data,
            None => parse_stored_data(&row.data).map_err(|e| e.to_string())?,
        };
        let webhooks = routes
            .iter()
            .filter(|w| w.patterns.iter().any(|p| pattern_matches(p, &row.kind)))
            .map(|w| w.id)
            .collect();
        Ok((webhooks, data))
    }

    /// A server, a new database's URL and name, and a handle on it.
    pub(in crate::store) fn setup() -> (TempPostgres, String, String, Postgres) {
        let server = TempPostgres::start();
        let url = server.new_database();
        let db = url.rsplit('/').next().unwrap().to_owned();
        let pg = open(&url);
        (server, url, db, pg)
    }

    /// Another handle on the database at `url` (another router).
    pub(in crate::store) fn open(url: &str) -> Postgres {
        Postgres::open(&DatabaseUrl::parse(url).unwrap()).unwrap()
    }

    /// Inserts a webhook for `patterns` (a JSON list) by hand; its id.
    pub(in crate::store) fn webhook(server: &TempPostgres, db: &str, patterns: &str) -> i64 {
        let sql = format!(
            "INSERT INTO webhooks (name, url, method, events, body_mime, timeout_ms, created_at, updated_at)
             VALUES ('w', 'http://127.0.0.1:9/', 'POST', '{patterns}', 'application/json', 5000,
                     '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z') RETURNING id"
        );
        server.psql(db, &sql).parse().unwrap()
    }

    /// A valid `ticket.login` event with this uuid.
    pub(in crate::store) fn event(uuid: &str) -> ValidEvent {
        let mut data = Map::new();
        data.insert("volume_used".into(), 0.into());
        ValidEvent {
            uuid: uuid.into(),
            kind: "ticket.login".into(),
            created_at: "2026-03-01T10:00:00.000Z".into(),
            ticket_id: Some("T-1".into()),
            data,
        }
    }

    const UUID: &str = "0b9b7c3e-7d4e-4c39-9d2a-3f1f2b1c0a01";

    #[test]
    fn a_uuid_queued_twice_is_a_duplicate_as_on_sqlite() {
        let (server, _url, db, pg) = setup();
        let id = pg.insert_event(&event(UUID), Source::Cli).unwrap();
        let again = pg.insert_event(&event(UUID), Source::Api).unwrap_err();
        assert!(
            matches!(&again, Error::Duplicate(w) if *w == format!("event {UUID}")),
            "{again:?}"
        );
        assert_eq!(again.to_string(), format!("event {UUID} already exists"));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let other = "0b9b7c3e-7d4e-4c39-9d2a-3f1f2b1c0a02";
        let id2 = rt
            .block_on(pg.insert_event_async(&event(other), Source::Api))
            .unwrap();
        assert!(id2 > id);
        let dup = rt.block_on(pg.insert_event_async(&event(other), Source::Api));
        assert!(matches!(dup, Err(Error::Duplicate(_))));
        assert_eq!(
            server.psql(
                &db,
                "SELECT string_agg(source, ',' ORDER BY id) FROM events"
            ),
            "cli,api"
        );
        let stored = pg.event_by_uuid(UUID).unwrap().unwrap();
        assert_eq!(
            (stored.state.as_str(), stored.ticket_id.as_deref()),
            ("queued", Some("T-1"))
        );
        assert_eq!(stored.data, r#"{"volume_used":0}"#);
        assert!(pg.event_by_uuid("nope").unwrap().is_none());
        assert_eq!(pg.queue_depth().unwrap(), 2);
    }

    #[test]
    fn plain_sql_rows_are_routed_and_a_bad_one_marked_invalid() {
        let (server, _url, db, pg) = setup();
        let all = webhook(&server, &db, r#"["*"]"#);
        webhook(&server, &db, r#"["ticket.closed"]"#); // Matches none.
        server.psql(&db, "INSERT INTO webhooks (name, url, method, events, body_mime, timeout_ms, created_at, updated_at, enabled)
                          SELECT name, url, method, events, body_mime, timeout_ms, created_at, updated_at, false FROM webhooks WHERE id = 1");
        server.psql(&db, r#"INSERT INTO events (type, ticket_id, data) VALUES ('ticket.login','T-1','{"volume_used":0}')"#);
        server.psql(
            &db,
            "INSERT INTO events (type, ticket_id, data) VALUES ('ticket.login', '', 'not json')",
        );
        pg.insert_event(&event(UUID), Source::Api).unwrap();
        let stats = pg.route_batch(100, decide_parsed).unwrap();
        assert_eq!(
            (stats.read, stats.events, stats.invalid, stats.deliveries),
            (3, 3, 1, 2)
        );
        assert_eq!(
            (stats.sources.sql, stats.sources.api, stats.sources.cli),
            (2, 1, 0)
        );
        let routed: Vec<i64> = stats.routed.iter().map(|e| e.id).collect();
        assert_eq!(routed, [1, 3], "in queue order");
        let first = &stats.routed[0];
        assert_eq!(first.ticket_id.as_deref(), Some("T-1"));
        assert!(
            first.created_at.ends_with('Z') && first.uuid.len() == 36,
            "{first:?}"
        );
        assert_eq!(
            server.psql(
                &db,
                "SELECT string_agg(event_id || ':' || webhook_id, ',' ORDER BY id) FROM deliveries"
            ),
            format!("1:{all},3:{all}")
        );
        assert_eq!(
            server.psql(
                &db,
                "SELECT state, routed_at IS NOT NULL, error IS NOT NULL FROM events WHERE id = 2"
            ),
            "invalid|t|t"
        );
        let log = server.psql(&db, "SELECT outcome || ' ' || error FROM log");
        assert!(
            log.starts_with("invalid invalid event (queue id 2): "),
            "{log}"
        );
        assert_eq!(pg.queue_depth().unwrap(), 0);
        assert_eq!(pg.route_batch(100, decide_parsed).unwrap().read, 0);

        let page = pg.routed_events_after(0, 10).unwrap();
        assert_eq!((page.read, page.last), (2, Some(3)));
        server.psql(&db, "UPDATE events SET data = 'edited' WHERE id = 1");
        let page = pg.routed_events_after(0, 1).unwrap();
        assert_eq!((page.read, page.last, page.events.len()), (1, Some(1), 0));
        assert_eq!(pg.routed_events_after(1, 10).unwrap().events[0].uuid, UUID);

        // Invalid event 2 has nothing pending; 1 and 3 wait for deliveries.
        assert_eq!(
            pg.delete_finished_events_before("2000-01-01T00:00:00Z", 10)
                .unwrap(),
            0
        );
        assert_eq!(
            pg.delete_finished_events_before("9999-01-01T00:00:00Z", 10)
                .unwrap(),
            1
        );
        server.psql(&db, "UPDATE deliveries SET state = 'delivered'");
        assert_eq!(
            pg.delete_finished_events_before("9999-01-01T00:00:00Z", 1)
                .unwrap(),
            1
        );
        assert_eq!(
            server.psql(&db, "SELECT string_agg(id::text, ',') FROM events"),
            "3"
        );
    }

    #[test]
    fn two_routers_route_each_event_once() {
        let (server, url, db, _pg) = setup();
        let (a, b) = (
            webhook(&server, &db, r#"["*"]"#),
            webhook(&server, &db, r#"["ticket.*"]"#),
        );
        server.psql(&db, r#"INSERT INTO events (type, data) SELECT 'ticket.login', '{"n":' || n || '}' FROM generate_series(1, 2000) n"#);
        let routers = [open(&url), open(&url)];
        let taken: Vec<(Vec<i64>, usize)> = std::thread::scope(|s| {
            let threads: Vec<_> = routers
                .iter()
                .map(|r| {
                    s.spawn(move || {
                        let (mut ids, mut deliveries) = (Vec::new(), 0);
                        loop {
                            let stats = r.route_batch(50, decide_parsed).unwrap();
                            if stats.read == 0 {
                                return (ids, deliveries);
                            }
                            ids.extend(stats.routed.iter().map(|e| e.id));
                            deliveries += stats.deliveries;
                        }
                    })
                })
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).collect()
        });
        let all: HashSet<i64> = taken
            .iter()
            .flat_map(|(ids, _)| ids.iter().copied())
            .collect();
        assert_eq!(
            taken[0].0.len() + taken[1].0.len(),
            2000,
            "no event routed twice"
        );
        assert_eq!(all.len(), 2000);
        assert!(
            taken.iter().all(|(ids, _)| !ids.is_empty()),
            "both routers took a share"
        );
        assert_eq!(taken[0].1 + taken[1].1, 4000);
        assert_eq!(
            server.psql(&db, &format!("SELECT count(*), count(DISTINCT (event_id, webhook_id)), count(*) FILTER (WHERE webhook_id IN ({a}, {b})) FROM deliveries")),
            "4000|4000|4000"
        );
        assert_eq!(
            server.psql(&db, "SELECT count(*) FROM events WHERE state <> 'routed'"),
            "0"
        );
    }
}
