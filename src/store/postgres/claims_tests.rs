//! Tests of [`super`] (claims on PostgreSQL) against a real server.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::super::events::tests::{decide_parsed, event, webhook};
use super::super::test_server::TempPostgres;
use super::Postgres;
use crate::base::config::DatabaseUrl;
use crate::store::{DeliveryJob, NewLogEntry, Options, Outcome, Source};

/// A router on `url` whose leases last `lease`.
fn router(url: &str, lease: Duration) -> Postgres {
    let options = Options {
        lease,
        ..Options::default()
    };
    Postgres::open_with(&DatabaseUrl::parse(url).unwrap(), &options).unwrap()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

fn claim(rt: &tokio::runtime::Runtime, r: &Postgres, free: usize) -> Vec<DeliveryJob> {
    rt.block_on(r.claim_due(free, &HashMap::new(), 0))
        .unwrap()
        .claimed
        .into_iter()
        .map(|c| c.unwrap())
        .collect()
}

fn settle(rt: &tokio::runtime::Runtime, r: &Postgres, job: &DeliveryJob, outcome: Outcome) {
    let item = &job.items[0];
    let entry = NewLogEntry {
        at: crate::base::event::now_rfc3339(),
        delivered: outcome == Outcome::Delivered,
        event_uuid: item.event.uuid.clone(),
        event_type: item.event.kind.clone(),
        webhook_id: job.webhook_id,
        delivery_id: Some(item.delivery_id),
        attempt: Some(item.attempt),
        error: (outcome != Outcome::Delivered).then(|| "HTTP 500".to_owned()),
        ..Default::default()
    };
    rt.block_on(r.finish_attempts(Arc::new(vec![vec![(entry, outcome)]])))
        .unwrap();
}

/// One webhook (`max_in_flight` 4 by default) and `n` routed events.
fn with_events(n: usize) -> (TempPostgres, String, String) {
    let server = TempPostgres::start();
    let url = server.new_database();
    let db = url.rsplit('/').next().unwrap().to_owned();
    let r = router(&url, Duration::from_secs(30));
    webhook(&server, &db, r#"["*"]"#);
    for i in 0..n {
        r.insert_event(
            &event(&format!("00000000-0000-4000-8000-{i:012}")),
            Source::Api,
        )
        .unwrap();
    }
    r.route_batch(100, decide_parsed).unwrap();
    (server, url, db)
}

#[test]
fn max_in_flight_holds_across_routers_and_a_claim_is_nobody_elses() {
    let (_server, url, _db) = with_events(10);
    let rt = rt();
    let a = router(&url, Duration::from_secs(30));
    let b = router(&url, Duration::from_secs(30));
    let got_a = claim(&rt, &a, 10);
    let got_b = claim(&rt, &b, 10);
    assert_eq!(got_a.len(), 4, "the webhook's max_in_flight");
    assert_eq!(got_b.len(), 0, "A's four live leases fill it for B too");
    settle(&rt, &a, &got_a[0], Outcome::Delivered);
    let got_b = claim(&rt, &b, 10);
    assert_eq!(got_b.len(), 1, "one slot freed");
    let taken: std::collections::HashSet<i64> = got_a
        .iter()
        .chain(&got_b)
        .map(|j| j.items[0].delivery_id)
        .collect();
    assert_eq!(taken.len(), 5, "no delivery claimed twice");
}

#[test]
fn an_expired_lease_is_taken_over_and_the_late_settlement_does_not_undo_it() {
    let (server, url, db) = with_events(1);
    let rt = rt();
    let a = router(&url, Duration::from_millis(300));
    let b = router(&url, Duration::from_secs(30));
    let job = claim(&rt, &a, 1).pop().unwrap();
    // A stops renewing (as a router that hangs or dies does).
    a.forget([job.items[0].delivery_id]);
    assert!(claim(&rt, &b, 1).is_empty(), "A's lease still holds");
    std::thread::sleep(Duration::from_millis(400));
    let taken = claim(&rt, &b, 1).pop().expect("taken over after the lease");
    assert_eq!(taken.items[0].delivery_id, job.items[0].delivery_id);
    // A's answer comes late: logged, but B's claim stands.
    settle(&rt, &a, &job, Outcome::Failed);
    let row = server.psql(
        &db,
        "SELECT state || ' ' || (claimed_by IS NOT NULL)::text || ' ' || attempts FROM deliveries",
    );
    assert_eq!(row, "pending true 0");
    settle(&rt, &b, &taken, Outcome::Delivered);
    assert_eq!(
        server.psql(&db, "SELECT state || ' ' || attempts FROM deliveries"),
        "delivered 1"
    );
    assert_eq!(server.psql(&db, "SELECT count(*) FROM log"), "2");
}

#[test]
fn a_router_renews_the_leases_of_requests_still_running() {
    let (server, url, db) = with_events(1);
    let rt = rt();
    let a = router(&url, Duration::from_millis(900));
    let b = router(&url, Duration::from_secs(30));
    let job = claim(&rt, &a, 1).pop().unwrap();
    // Three leases long: renewed every 300 ms, never taken over.
    for _ in 0..9 {
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            claim(&rt, &b, 1).is_empty(),
            "taken while A still works on it"
        );
    }
    settle(&rt, &a, &job, Outcome::Delivered);
    assert_eq!(
        server.psql(&db, "SELECT state FROM deliveries"),
        "delivered"
    );
}
