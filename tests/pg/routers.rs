//! Several `herald serve` processes (routers) on one PostgreSQL database:
//! each event routed once, a killed router's deliveries taken over within
//! a lease, wake-ups by NOTIFY, the server restarted under load.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use crate::utils::*;

/// Event uuids the receiver got, with how often each arrived.
fn arrivals(rx: &Receiver) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for r in rx.received() {
        let id = r.json()["id"].as_str().unwrap_or_default().to_owned();
        *seen.entry(id).or_insert(0) += 1;
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_routers_share_the_work_and_each_event_arrives_once() {
    let rx = Receiver::start().await;
    let h = Herald::new();
    h.add(
        "w",
        &rx.url("/"),
        &[
            "--body",
            r#"{"id":"<<event.uuid>>"}"#,
            "--max-in-flight",
            "8",
        ],
    );
    let a = h.serve();
    let b = h.serve();
    // Queued by plain SQL (the appliance's way), in one statement.
    h.sql(
        "INSERT INTO events (type, ticket_id, data)
         SELECT 'ticket.login', 'T-' || n, '{\"volume_used\":0}' FROM generate_series(1, 300) n",
    );
    rx.wait_for(300).await;
    h.wait_sql(
        "SELECT count(*) FROM deliveries WHERE state = 'delivered'",
        300,
    );
    assert_eq!(h.sql_count("SELECT count(*) FROM deliveries"), 300);
    let seen = arrivals(&rx);
    assert_eq!(seen.len(), 300);
    assert!(seen.values().all(|n| *n == 1), "an event arrived twice");
    drop((a, b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_killed_mid_flight_loses_nothing_and_another_takes_over() {
    let rx = Receiver::start().await;
    // Every request hangs: the first router dies with all of them in flight.
    rx.set_delay(Duration::from_secs(3600));
    let h = Herald::new();
    h.add(
        "w",
        &rx.url("/"),
        &[
            "--body",
            r#"{"id":"<<event.uuid>>"}"#,
            "--timeout",
            "300",
            "--max-in-flight",
            "4",
        ],
    );
    let first = h.serve();
    let mut uuids = HashSet::new();
    for _ in 0..20 {
        uuids.insert(h.ok(&["emit", "ticket.login"]).trim().to_owned());
    }
    rx.wait_for(4).await;
    // max_in_flight holds: 4 requests out, the rest wait.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rx.received().len(), 4);
    first.kill9();
    rx.set_delay(Duration::ZERO);
    let killed_at = Instant::now();
    let second = h.serve();
    rx.wait_for(24).await;
    h.wait_sql(
        "SELECT count(*) FROM deliveries WHERE state = 'delivered'",
        20,
    );
    let took_over = killed_at.elapsed();
    let seen = arrivals(&rx);
    assert_eq!(seen.keys().cloned().collect::<HashSet<_>>(), uuids);
    let twice = seen.values().filter(|n| **n > 1).count();
    assert!(
        twice <= 4,
        "duplicates beyond the killed router's 4 in flight: {twice}"
    );
    assert!(
        took_over < Duration::from_secs(3) + PATIENCE,
        "taken over after {took_over:?}"
    );
    println!("taken over and delivered {took_over:?} after the kill (lease 3 s)");
    drop(second);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_sql_insert_wakes_the_routers_without_waiting_for_a_read() {
    let rx = Receiver::start().await;
    let mut h = Herald::new();
    // Reads every 10 minutes: only a NOTIFY can deliver this in time.
    h.set_env("HERALD_ROUTER_READ_INTERVAL", "600");
    h.add("w", &rx.url("/"), &["--body", r#"{"id":"<<event.uuid>>"}"#]);
    let _a = h.serve();
    let _b = h.serve();
    // Let both LISTEN.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut latencies = Vec::new();
    for i in 0..5 {
        let sent = Instant::now();
        h.sql(&format!(
            "INSERT INTO events (type, ticket_id, data) VALUES ('ticket.login', 'T-{i}', '{{\"volume_used\":0}}')"
        ));
        rx.wait_for(i + 1).await;
        latencies.push(sent.elapsed());
    }
    println!("plain SQL insert -> delivered: {latencies:?}");
    assert_eq!(arrivals(&rx).len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wake_ups_come_back_after_postgresql_restarts() {
    let rx = Receiver::start().await;
    let mut h = Herald::new();
    // Only a NOTIFY can deliver in time: the listener must reconnect.
    h.set_env("HERALD_ROUTER_READ_INTERVAL", "600");
    h.add("w", &rx.url("/"), &["--body", r#"{"id":"<<event.uuid>>"}"#]);
    let server = h.serve();
    let pg = h.postgres.as_ref().unwrap();
    pg.stop();
    pg.start_again();
    // The listener connects again within its backoff (at most 10 s).
    let deadline = Instant::now() + PATIENCE;
    while !server.log().contains("PostgreSQL wake-ups lost") && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        server.log().contains("PostgreSQL wake-ups lost"),
        "{}",
        server.log()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    h.sql("INSERT INTO events (type, ticket_id) VALUES ('ticket.login', 'T-after-restart')");
    rx.wait_for(1).await;
    assert_eq!(arrivals(&rx).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routers_reconnect_after_postgresql_restarts_and_lose_nothing() {
    let rx = Receiver::start().await;
    let h = Herald::new();
    h.add("w", &rx.url("/"), &["--body", r#"{"id":"<<event.uuid>>"}"#]);
    let server = h.serve();
    let key = server.key.clone();
    let client = reqwest::Client::new();
    let post = |n: usize| {
        let client = client.clone();
        let url = server.url("/api/v1/events");
        let key = key.clone();
        async move {
            client
                .post(url)
                .bearer_auth(key)
                .json(&serde_json::json!({"type": "ticket.login", "ticket_id": format!("T-{n}")}))
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        }
    };
    let mut accepted = 0;
    for n in 0..20 {
        if post(n).await == 202 {
            accepted += 1;
        }
    }
    assert_eq!(accepted, 20);
    let pg = h.postgres.as_ref().unwrap();
    pg.stop();
    // While it is down: refused with 503, never acknowledged and lost.
    let status = post(100).await;
    assert_eq!(status, 503, "{}", server.log());
    pg.start_again();
    let mut back = 0;
    let deadline = Instant::now() + PATIENCE;
    while back < 20 && Instant::now() < deadline {
        if post(200 + back).await == 202 {
            back += 1;
        } else {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    assert_eq!(back, 20, "{}", server.log());
    rx.wait_for(40).await;
    h.wait_sql(
        "SELECT count(*) FROM deliveries WHERE state = 'delivered'",
        40,
    );
    assert_eq!(arrivals(&rx).len(), 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_waits_for_a_server_that_is_not_up_yet() {
    let rx = Receiver::start().await;
    let h = Herald::new();
    h.add("w", &rx.url("/"), &["--body", r#"{"id":"<<event.uuid>>"}"#]);
    let pg = h.postgres.as_ref().unwrap();
    pg.stop();
    let starting = {
        let mut c = h.command();
        c.arg("serve")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        c.spawn().unwrap()
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    pg.start_again();
    let mut child = starting;
    // It keeps trying and comes up; queue an event through SQL and see it.
    h.sql("INSERT INTO events (type) VALUES ('system.start')");
    rx.wait_for(1).await;
    assert!(child.try_wait().unwrap().is_none(), "it stayed up");
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not answer yet"), "{err}");
    assert!(!err.contains("secret"), "{err}");
}
