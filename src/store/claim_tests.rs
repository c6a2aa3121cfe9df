//! Claims kept in memory: a claimed or settling delivery is never claimed
//! twice, rows read ahead are served without another read and given back
//! when their webhook stops, first attempts routed after a retry was
//! claimed are not held behind it, and a settlement counts the attempt.

use std::collections::HashMap;
use std::sync::Arc;

use super::{Claimed, DeliveryJob, NewLogEntry, Outcome, Store, now_ms};
use crate::spec::webhook::WebhookSpec;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A store with one webhook allowing `max_in_flight` requests, and `n`
/// events routed to it.
fn store_with(n: usize, max_in_flight: u32) -> (tempfile::TempDir, Store, i64) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("h.db")).unwrap();
    let mut spec = WebhookSpec::example("http://127.0.0.1:9/");
    spec.max_in_flight = max_in_flight;
    let w = store.insert_webhook(&spec).unwrap();
    queue(&store, n);
    (dir, store, w.id)
}

fn queue(store: &Store, n: usize) {
    let conn = rusqlite::Connection::open(store.path().unwrap()).unwrap();
    for _ in 0..n {
        conn.execute("INSERT INTO events (type) VALUES ('ticket.login')", [])
            .unwrap();
    }
    store
        .route_batch(1000, |row, _parsed, routes| {
            let data =
                crate::base::event::parse_stored_data(&row.data).map_err(|e| e.to_string())?;
            Ok((routes.iter().map(|w| w.id).collect(), data))
        })
        .unwrap();
}

fn claim(rt: &tokio::runtime::Runtime, store: &Store, free: usize) -> Vec<DeliveryJob> {
    rt.block_on(store.claim_due(free, &HashMap::new(), 0))
        .unwrap()
        .claimed
        .into_iter()
        .map(|c: Claimed| c.unwrap())
        .collect()
}

fn ids(jobs: &[DeliveryJob]) -> Vec<i64> {
    jobs.iter().map(|j| j.items[0].delivery_id).collect()
}

/// A log entry and outcome for `job`'s one event.
fn answered(job: &DeliveryJob, outcome: Outcome) -> super::Settled {
    let item = &job.items[0];
    vec![(
        NewLogEntry {
            at: crate::base::event::now_rfc3339(),
            delivered: outcome == Outcome::Delivered,
            event_uuid: item.event.uuid.clone(),
            event_type: item.event.kind.clone(),
            webhook_id: job.webhook_id,
            delivery_id: Some(item.delivery_id),
            attempt: Some(item.attempt),
            error: (outcome != Outcome::Delivered).then(|| "HTTP 500".to_owned()),
            ..Default::default()
        },
        outcome,
    )]
}

fn settle(rt: &tokio::runtime::Runtime, store: &Store, job: &DeliveryJob, outcome: Outcome) {
    rt.block_on(store.finish_attempts(Arc::new(vec![answered(job, outcome)])))
        .unwrap();
}

/// A store whose one delivery failed once and is being tried again: the
/// first attempt and the retry in flight.
fn retry_in_flight(
    rt: &tokio::runtime::Runtime,
) -> (tempfile::TempDir, Store, i64, DeliveryJob, DeliveryJob) {
    let (dir, store, w) = store_with(1, 16);
    let first = claim(rt, &store, 1).pop().unwrap();
    // Failed; due again at once.
    settle(rt, &store, &first, Outcome::RetryAt(now_ms() - 1));
    let retry = claim(rt, &store, 1).pop().unwrap();
    (dir, store, w, first, retry)
}

fn column(store: &Store, sql: &str) -> i64 {
    rusqlite::Connection::open(store.path().unwrap())
        .unwrap()
        .query_row(sql, [], |r| r.get(0))
        .unwrap()
}

#[test]
fn claimed_and_settling_deliveries_are_not_claimed_again() {
    let rt = rt();
    let (_dir, store, _) = store_with(5, 16);
    let first = claim(&rt, &store, 2);
    assert_eq!(first.len(), 2);
    let second = claim(&rt, &store, 10);
    assert_eq!(second.len(), 3, "only the three not claimed");
    let all: std::collections::HashSet<i64> = ids(&first).into_iter().chain(ids(&second)).collect();
    assert_eq!(all.len(), 5);
    assert!(claim(&rt, &store, 10).is_empty(), "all five are in flight");
    // Nothing was written for the claims: a crash sends them again.
    assert_eq!(
        column(
            &store,
            "SELECT count(*) FROM deliveries WHERE claimed = 1 OR attempts > 0"
        ),
        0
    );
    for job in first.iter().chain(&second) {
        settle(&rt, &store, job, Outcome::Delivered);
    }
    assert!(claim(&rt, &store, 10).is_empty(), "settled: nothing left");
    assert_eq!(
        column(
            &store,
            "SELECT count(*) FROM deliveries WHERE state = 'delivered' AND attempts = 1 AND tries = 1"
        ),
        5,
        "the settlement counts the attempt"
    );
}

#[test]
fn rows_read_ahead_are_served_in_order_and_given_back_when_the_webhook_pauses() {
    let rt = rt();
    let (_dir, store, w) = store_with(100, 16);
    let one = claim(&rt, &store, 1);
    let two = claim(&rt, &store, 1);
    assert!(ids(&one)[0] < ids(&two)[0], "queue order");
    store.pause_webhook(w, "test").unwrap();
    assert!(claim(&rt, &store, 10).is_empty(), "paused: nothing claimed");
    store.resume_webhook(w).unwrap();
    // The rows read ahead were given back: all 98 not in flight are claimable.
    let mut got = 0;
    loop {
        let jobs = claim(&rt, &store, 16);
        if jobs.is_empty() {
            break;
        }
        got += jobs.len();
    }
    assert_eq!(got, 98);
}

#[test]
fn a_new_first_attempt_is_not_held_behind_a_claimed_retry() {
    let rt = rt();
    let (_dir, store, _, job, retry) = retry_in_flight(&rt);
    assert_eq!(retry.items[0].delivery_id, job.items[0].delivery_id);
    assert_eq!((retry.items[0].attempt, retry.items[0].tries), (2, 2));
    queue(&store, 1);
    let fresh = claim(&rt, &store, 1);
    assert_eq!(fresh.len(), 1, "the new event is claimed at once");
    assert_ne!(fresh[0].items[0].delivery_id, job.items[0].delivery_id);
}

#[test]
fn rows_read_ahead_are_given_back_when_the_webhook_starts_sending_in_order() {
    let rt = rt();
    let (_dir, store, w) = store_with(3, 16);
    let first = claim(&rt, &store, 1);
    assert_eq!(first.len(), 1, "one taken, two read ahead");
    settle(&rt, &store, &first[0], Outcome::Delivered);
    let mut webhook = store.webhook(w).unwrap();
    webhook.spec.ordered = true;
    store
        .update_webhook(w, &webhook.updated_at, &webhook.spec)
        .unwrap();
    webhook = store.webhook(w).unwrap();
    assert!(webhook.spec.ordered);
    // In order, one at a time: the two read ahead are sent, none stuck.
    for _ in 0..2 {
        let job = claim(&rt, &store, 10).pop().expect("the head is claimed");
        settle(&rt, &store, &job, Outcome::Delivered);
    }
    assert_eq!(
        column(
            &store,
            "SELECT count(*) FROM deliveries WHERE state = 'delivered'"
        ),
        3
    );
}

#[test]
fn a_batch_of_settlements_keeps_each_outcome_and_the_health_in_order() {
    let rt = rt();
    let (_dir, store, w) = store_with(4, 16);
    let jobs = claim(&rt, &store, 4);
    assert_eq!(jobs.len(), 4);
    let later = now_ms() + 60_000;
    // Delivered, delivered, failed (retry later), failed for good: one write.
    let batch = vec![
        answered(&jobs[0], Outcome::Delivered),
        answered(&jobs[1], Outcome::Delivered),
        answered(&jobs[2], Outcome::RetryAt(later)),
        answered(&jobs[3], Outcome::Failed),
    ];
    let poke = rt.block_on(store.finish_attempts(Arc::new(batch))).unwrap();
    assert!(poke, "a failure streak began");
    assert_eq!(
        column(
            &store,
            "SELECT count(*) FROM log WHERE delivery_id IS NOT NULL"
        ),
        4
    );
    assert_eq!(
        column(
            &store,
            "SELECT count(*) FROM deliveries WHERE state = 'delivered'"
        ),
        2
    );
    assert_eq!(
        column(
            &store,
            "SELECT count(*) FROM deliveries WHERE state = 'failed'"
        ),
        1
    );
    assert_eq!(
        column(
            &store,
            &format!(
                "SELECT count(*) FROM deliveries WHERE state = 'pending' AND next_attempt_at = {later}"
            )
        ),
        1
    );
    let health = store.webhook(w).unwrap().health;
    assert_eq!(
        health.failure_streak, 2,
        "both failures counted after the deliveries"
    );
    assert_eq!(health.last_status.as_deref(), Some("failed"));
    // A delivery after failures in one batch ends the streak.
    queue(&store, 1);
    let next = claim(&rt, &store, 1);
    rt.block_on(store.finish_attempts(Arc::new(vec![answered(&next[0], Outcome::Delivered)])))
        .unwrap();
    assert_eq!(store.webhook(w).unwrap().health.failure_streak, 0);
}

#[test]
fn a_pass_that_fails_part_way_gives_back_what_it_took() {
    let rt = rt();
    let (_dir, store, a) = store_with(0, 16);
    let b = store
        .insert_webhook(&WebhookSpec::example("http://127.0.0.1:9/b"))
        .unwrap()
        .id;
    queue(&store, 2);
    let sql = |q: &str| {
        rusqlite::Connection::open(store.path().unwrap())
            .unwrap()
            .execute(q, [])
            .unwrap()
    };
    // B's row cannot be read (a BLOB where text belongs): the pass fails
    // after it has claimed A's.
    sql(&format!(
        "UPDATE deliveries SET created_at = x'00' WHERE webhook_id = {b}"
    ));
    assert!(
        rt.block_on(store.claim_due(10, &HashMap::new(), 0))
            .is_err()
    );
    sql(&format!(
        "UPDATE deliveries SET created_at = '2026-12-07T00:00:00Z' WHERE webhook_id = {b}"
    ));
    let jobs = claim(&rt, &store, 10);
    let mut webhooks: Vec<i64> = jobs.iter().map(|j| j.webhook_id).collect();
    webhooks.sort();
    assert_eq!(webhooks, vec![a, a, b, b], "A's rows were given back");
}

#[test]
fn a_resume_keeps_the_tries_of_a_request_in_flight_and_rereads_the_rest() {
    let rt = rt();
    // The retry goes out (its second try).
    let (_dir, store, w, _, retry) = retry_in_flight(&rt);
    assert_eq!(retry.items[0].tries, 2);
    // Two new events: one goes out, the other is read ahead.
    queue(&store, 2);
    assert_eq!(claim(&rt, &store, 1).len(), 1);
    store.pause_webhook(w, "test").unwrap();
    store.resume_webhook(w).unwrap();
    settle(&rt, &store, &retry, Outcome::RetryAt(now_ms() + 60_000));
    assert_eq!(
        column(
            &store,
            &format!(
                "SELECT tries FROM deliveries WHERE id = {}",
                retry.items[0].delivery_id
            )
        ),
        2,
        "the try in flight at the resume counts"
    );
    let fresh = claim(&rt, &store, 10);
    assert_eq!(fresh.len(), 1, "the row read ahead was given back");
    assert_eq!(fresh[0].items[0].tries, 1);
}

#[test]
fn only_deliveries_handed_to_a_request_are_listed_as_sending() {
    let rt = rt();
    let (_dir, store, _) = store_with(3, 16);
    let sent = claim(&rt, &store, 1);
    let rows = store
        .deliveries(&super::DeliveryFilter {
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    let sending: Vec<i64> = rows
        .iter()
        .filter(|r| r.status == "sending")
        .map(|r| r.id)
        .collect();
    assert_eq!(sending, ids(&sent), "the two read ahead are not being sent");
    assert_eq!(rows.iter().filter(|r| r.status == "pending").count(), 2);
}
