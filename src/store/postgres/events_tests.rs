//! Tests of [`super`] (events on PostgreSQL) against a real server.

use std::collections::HashSet;

use serde_json::Map;

use super::super::Postgres;
use super::super::test_server::TempPostgres;
use crate::base::config::DatabaseUrl;
use crate::base::event::ValidEvent;
use crate::base::event::{check_time, check_type, check_uuid, parse_stored_data, pattern_matches};
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
