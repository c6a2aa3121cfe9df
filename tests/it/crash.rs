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
    h.add(
        "w",
        &rx.url("/"),
        &[
            "--body",
            r#"{"id":"<<event.uuid>>"}"#,
            "--timeout",
            "300",
            "--max-in-flight",
            "8",
        ],
    );
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
    // Claims are kept in memory: the killed attempts left no trace, and
    // the five are sent again as their first recorded attempts.
    let log = h.wait_log(&[], 5);
    assert!(
        log.iter()
            .all(|e| e["outcome"] == "delivered" && e["attempt"] == 1),
        "{log:#?}"
    );
    let logged: HashSet<String> = log
        .iter()
        .map(|e| e["event_uuid"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(logged, uuids);
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
    h.add("w", &rx.url("/"), &[]);
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
    h.add("w", &rx.url("/"), &["--timeout", "300"]);
    let server = h.serve();
    let uuid = h.ok(&["emit", "system.start"]).trim().to_owned();
    rx.wait_for(1).await;
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
    let log = h.log(&[]);
    assert_eq!(log.len(), 1, "the cut-short attempt is logged at the stop");
    assert_eq!(log[0]["outcome"], "failed");

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

/// A pseudo-random number in [0, n) from the clock: enough to vary the
/// moments of the kills from run to run without a dependency.
fn jitter(n: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    (nanos / 1000) % n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_events_survive_repeated_kill_9_during_delivery() {
    const EVENTS: usize = 10_000;
    const IN_FLIGHT: usize = 16;
    const KILLS: usize = 4;
    let rx = Receiver::start().await;
    let h = Herald::new();
    h.add(
        "w",
        &rx.url("/"),
        &[
            "--body",
            r#"{"id":"<<event.uuid>>"}"#,
            "--max-in-flight",
            &IN_FLIGHT.to_string(),
        ],
    );
    h.sql(&format!(
        "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < {EVENTS})
         INSERT INTO events (type, data) SELECT 'ticket.login', json_object('n', x) FROM n;"
    ));
    let mut kills = 0;
    for _ in 0..KILLS {
        let before = rx.received().len();
        let server = h.serve();
        // Kill while requests are flowing: after some arrived, at a varying moment.
        rx.wait_for(before + 50).await;
        tokio::time::sleep(Duration::from_millis(jitter(300))).await;
        let at = rx.received().len();
        server.kill9();
        kills += 1;
        eprintln!("kill {kills}: after {at} requests received");
        if at >= EVENTS {
            break;
        }
    }
    let _server = h.serve();
    let deadline = std::time::Instant::now() + 4 * PATIENCE;
    loop {
        let delivered = h.sql_count("SELECT count(*) FROM deliveries WHERE state = 'delivered'");
        if delivered == EVENTS as i64 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "only {delivered} of {EVENTS} delivered"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let got = rx.received();
    let mut seen: HashSet<String> = HashSet::new();
    for r in &got {
        seen.insert(r.json()["id"].as_str().unwrap().to_owned());
    }
    let all: HashSet<String> = {
        let out = h.sql_rows("SELECT uuid FROM events");
        out.into_iter().collect()
    };
    assert_eq!(all.len(), EVENTS);
    assert_eq!(seen, all, "every routed event arrived at least once");
    let duplicates = got.len() - seen.len();
    eprintln!(
        "{EVENTS} events, {kills} kills: {} requests, {duplicates} duplicates",
        got.len()
    );
    // Only requests in flight at a kill, and answered attempts whose
    // settlement had not committed, can arrive twice.
    let bound = kills * (IN_FLIGHT + herald::pipeline::deliver::MAX_UNSETTLED);
    assert!(duplicates <= bound, "{duplicates} duplicates > {bound}");
    // Whatever arrived twice, each event is logged delivered once.
    assert_eq!(
        h.sql_count("SELECT count(*) FROM log WHERE outcome = 'delivered'"),
        EVENTS as i64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_flight_is_sending_in_the_api_and_nothing_is_written_for_it() {
    let rx = Receiver::start().await;
    rx.set_delay(Duration::from_secs(3600));
    let h = Herald::new();
    h.add("w", &rx.url("/"), &["--timeout", "300"]);
    let server = h.serve();
    h.ok(&["emit", "system.start"]);
    rx.wait_for(1).await;
    let (status, body) = server
        .send(reqwest::Method::GET, server.url("/api/v1/deliveries"), None)
        .await;
    assert_eq!(status, 200, "{body}");
    let list = body
        .get("deliveries")
        .unwrap_or(&body)
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .clone();
    assert_eq!(list.len(), 1, "{body}");
    assert_eq!(list[0]["status"], "sending", "{body}");
    // The claim lives in the server's memory: the table still says
    // pending, unclaimed, no attempt made.
    assert_eq!(
        h.sql_count(
            "SELECT count(*) FROM deliveries WHERE state = 'pending' AND claimed = 0 AND attempts = 0"
        ),
        1
    );
    server.kill9();
}
