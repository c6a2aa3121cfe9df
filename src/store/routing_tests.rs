//! Routing off the writer and claiming with the router's parsed events:
//! the same event either way, unreadable rows failed with their reason, and
//! each event routed once however many routers share the queue.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::{Claimed, QueuedEvent, Store, WebhookRoute};
use crate::spec::webhook::WebhookSpec;

/// Every route the store offers, with the data parsed as the router does.
fn to_all(
    row: &QueuedEvent,
    _parsed: Option<Map<String, Value>>,
    routes: &[WebhookRoute],
) -> Result<(Vec<i64>, Map<String, Value>), String> {
    let data = crate::base::event::parse_stored_data(&row.data).map_err(|e| e.to_string())?;
    Ok((routes.iter().map(|w| w.id).collect(), data))
}

fn store_with_webhook() -> (tempfile::TempDir, Store, i64) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("h.db")).unwrap();
    let w = store
        .insert_webhook(&WebhookSpec::example("http://127.0.0.1:9/"))
        .unwrap();
    (dir, store, w.id)
}

fn queue(store: &Store, data: &str) {
    let conn = rusqlite::Connection::open(store.path().unwrap()).unwrap();
    conn.execute(
        "INSERT INTO events (type, ticket_id, data) VALUES ('ticket.login', '', ?1)",
        [data],
    )
    .unwrap();
}

fn claim(store: &Store) -> Vec<Claimed> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(store.claim_due(32, &HashMap::new(), 0))
        .unwrap()
        .claimed
}

#[test]
fn a_claim_gets_the_same_event_from_the_router_as_from_the_row() {
    let (_dir, store, _) = store_with_webhook();
    queue(&store, r#"{"b": 1, "a": {"x": [1, 2]}}"#);
    let stats = store.route_batch(100, to_all).unwrap();
    assert_eq!((stats.events, stats.deliveries), (1, 1));
    assert_eq!(store.sqlite().parsed.len(), 1, "the router's parse is kept");
    let kept = claim(&store).pop().unwrap().unwrap();
    assert_eq!(store.sqlite().parsed.len(), 0, "taken by its one claim");
    // The same row parsed at the claim (a new process: nothing kept).
    store.release_claims().unwrap();
    let again = Store::open(store.path().unwrap()).unwrap();
    let parsed = claim(&again).pop().unwrap().unwrap();
    let (a, b) = (&kept.items[0].event, &parsed.items[0].event);
    assert_eq!(
        serde_json::to_string(&**a).unwrap(),
        serde_json::to_string(&**b).unwrap()
    );
    assert_eq!(
        a.ticket_id, None,
        "an empty ticket id reads as none both ways"
    );
}

#[test]
fn a_row_made_unreadable_after_routing_fails_its_delivery_with_the_reason() {
    let (_dir, store, _) = store_with_webhook();
    queue(&store, "{}");
    store.route_batch(100, to_all).unwrap();
    rusqlite::Connection::open(store.path().unwrap())
        .unwrap()
        .execute("UPDATE events SET data = 'not json'", [])
        .unwrap();
    // A restarted herald has nothing kept: the claim reads the row.
    let restarted = Store::open(store.path().unwrap()).unwrap();
    let bad = match claim(&restarted).pop().unwrap() {
        Err(bad) => bad,
        Ok(job) => panic!("an unreadable event was claimed to send: {job:?}"),
    };
    assert!(bad.reason.contains("JSON"), "{}", bad.reason);
    restarted.fail_unreadable(&bad).unwrap();
    let conn = rusqlite::Connection::open(store.path().unwrap()).unwrap();
    let state: String = conn
        .query_row("SELECT state FROM deliveries", [], |r| r.get(0))
        .unwrap();
    assert_eq!(state, "failed");
}

#[test]
fn two_routers_on_one_queue_route_each_event_once() {
    let (_dir, store, _) = store_with_webhook();
    for _ in 0..500 {
        queue(&store, "{}");
    }
    let other = Store::open(store.path().unwrap()).unwrap();
    let routers: Vec<_> = [store.clone(), other]
        .into_iter()
        .map(|s| {
            std::thread::spawn(move || {
                let mut total = 0;
                loop {
                    let stats = s.route_batch(7, to_all).unwrap();
                    total += stats.events;
                    if stats.events == 0 && s.queue_depth().unwrap() == 0 {
                        return total;
                    }
                }
            })
        })
        .collect();
    let routed: usize = routers.into_iter().map(|r| r.join().unwrap()).sum();
    assert_eq!(routed, 500);
    let conn = rusqlite::Connection::open(store.path().unwrap()).unwrap();
    let deliveries: i64 = conn
        .query_row("SELECT count(*) FROM deliveries", [], |r| r.get(0))
        .unwrap();
    assert_eq!(deliveries, 500);
}

#[test]
fn a_webhook_disabled_while_routing_gets_no_delivery() {
    let (_dir, store, id) = store_with_webhook();
    queue(&store, "{}");
    let path = store.path().unwrap().to_owned();
    let stats = store
        .route_batch(100, move |row, parsed, routes| {
            // Between the read and the write, an admin disables it.
            rusqlite::Connection::open(&path)
                .unwrap()
                .execute("UPDATE webhooks SET enabled = 0 WHERE id = ?1", [id])
                .unwrap();
            to_all(row, parsed, routes)
        })
        .unwrap();
    assert_eq!((stats.events, stats.deliveries), (1, 0));
    assert_eq!(store.sqlite().parsed.len(), 0);
}

/// An event queued through the API is handed to the router parsed, unless
/// its row was edited in between; either way the same data is routed.
#[test]
fn an_api_event_reaches_the_router_parsed_unless_its_row_changed() {
    let (_dir, store, _) = store_with_webhook();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let event = |n: i64| {
        serde_json::from_value::<crate::base::event::NewEvent>(
            serde_json::json!({"type": "ticket.login", "data": {"n": n}}),
        )
        .unwrap()
        .validate()
        .unwrap()
    };
    let first = rt
        .block_on(store.insert_event_async(&event(1), crate::store::Source::Api))
        .unwrap();
    let second = rt
        .block_on(store.insert_event_async(&event(2), crate::store::Source::Api))
        .unwrap();
    rusqlite::Connection::open(store.path().unwrap())
        .unwrap()
        .execute(
            "UPDATE events SET data = '{\"n\": 3}' WHERE id = ?1",
            [second],
        )
        .unwrap();
    let mut handed = HashMap::new();
    store
        .route_batch(100, |row, parsed, routes| {
            handed.insert(row.id, parsed.clone());
            to_all(row, parsed, routes)
        })
        .unwrap();
    let mut data = Map::new();
    data.insert("n".into(), 1.into());
    assert_eq!(handed[&first], Some(data), "parsed once, at the API");
    assert_eq!(handed[&second], None, "edited: parsed from the row");
    let jobs = claim(&store);
    let n: Vec<i64> = jobs
        .iter()
        .map(|j| {
            j.as_ref().unwrap().items[0].event.data["n"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(n, vec![1, 3]);
}
