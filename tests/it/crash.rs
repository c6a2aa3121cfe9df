//! Crash safety: a delivery in flight when herald is killed is sent again
//! after restart; nothing routed is lost.

use std::collections::HashSet;
use std::time::Duration;

use crate::utils::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_delivery_then_restart_delivers_in_flight_events() {
    let rx = Receiver::start().await;
    // Hold every request: they are in flight when herald dies.
    rx.set_delay(Duration::from_secs(3600));
    let h = Herald::new();
    h.add_webhook(&[
        "--name",
        "w",
        "--url",
        &rx.url("/"),
        "--events",
        "*",
        "--body",
        r#"{"id":"<<event.uuid>>"}"#,
        "--timeout",
        "300",
        "--max-in-flight",
        "8",
    ]);
    let server = h.serve();
    let mut uuids = HashSet::new();
    for _ in 0..5 {
        uuids.insert(h.ok(&["emit", "ticket.login"]).trim().to_owned());
    }
    rx.wait_for(5).await;
    assert_eq!(h.log(&[]).len(), 0, "nothing finished yet");
    server.kill9();

    rx.set_delay(Duration::ZERO);
    let server = h.serve();
    assert!(
        server.log().contains("will be sent again"),
        "{}",
        server.log()
    );
    // Five interrupted attempts (logged at start) and five deliveries.
    let log = h.wait_log(&[], 10);
    let (delivered, interrupted): (Vec<_>, Vec<_>) =
        log.iter().partition(|e| e["outcome"] == "delivered");
    assert_eq!(delivered.len(), 5, "{log:#?}");
    assert!(delivered.iter().all(|e| e["attempt"] == 2), "{log:#?}");
    assert!(
        interrupted
            .iter()
            .all(|e| e["attempt"] == 1 && e["error"].as_str().unwrap().starts_with("interrupted")),
        "{log:#?}"
    );
    let uuids_of = |entries: &[&serde_json::Value]| -> HashSet<String> {
        entries
            .iter()
            .map(|e| e["event_uuid"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(uuids_of(&delivered), uuids);
    assert_eq!(uuids_of(&interrupted), uuids);
    // Each event arrived twice: once before the crash, once after.
    let got = rx.received();
    assert_eq!(got.len(), 10);
    let arrived: HashSet<String> = got
        .iter()
        .map(|r| r.json()["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(arrived, uuids);
    assert_eq!(
        h.sql_count("SELECT count(*) FROM deliveries WHERE state = 'delivered'"),
        5
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_queued_while_herald_is_down_are_delivered_at_start() {
    let rx = Receiver::start().await;
    let h = Herald::new();
    h.add_webhook(&["--name", "w", "--url", &rx.url("/"), "--events", "*"]);
    for _ in 0..20 {
        h.ok(&["emit", "system.start"]);
    }
    h.sql("INSERT INTO events (type) VALUES ('system.start')");
    let _server = h.serve();
    rx.wait_for(21).await;
    h.wait_log(&[], 21);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_past_the_grace_period_exits_and_resends_after_restart() {
    let rx = Receiver::start().await;
    rx.set_delay(Duration::from_secs(3600));
    let mut h = Herald::new();
    h.set_env("HERALD_DELIVERY_SHUTDOWN_GRACE", "0.5");
    h.add_webhook(&[
        "--name",
        "w",
        "--url",
        &rx.url("/"),
        "--events",
        "*",
        "--timeout",
        "300",
    ]);
    let server = h.serve();
    let uuid = h.ok(&["emit", "system.start"]).trim().to_owned();
    rx.wait_for(1).await;
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
    assert_eq!(
        h.log(&[]).len(),
        0,
        "the cut-short attempt is logged at the next start"
    );

    rx.set_delay(Duration::ZERO);
    let _server = h.serve();
    let log = h.wait_log(&["--event", &uuid], 2);
    assert_eq!(log[0]["outcome"], "delivered");
    assert_eq!(log[1]["outcome"], "failed");
    assert!(
        log[1]["error"].as_str().unwrap().starts_with("interrupted"),
        "{log:#?}"
    );
    assert_eq!(rx.received().len(), 2);
}
