//! Delivery that survives outages: retry schedules (scaled down: tenths of
//! a second instead of minutes), Retry-After, 410, redirects, endpoints that
//! refuse, reset, stall or answer 5xx and then recover; pause after a long
//! outage with alerts and a backlog delivered on resume; replay; test sends;
//! per-webhook limits, strict order and batches.
//!
//! Time is only ever asserted as a lower bound that the design guarantees
//! (a retry never comes before its delay); never as an upper bound.

use std::collections::HashMap;
use std::time::Duration;

use reqwest::Method as M;
use serde_json::{Value, json};

use crate::utils::*;

/// A retry policy with fixed, jitter-free delays in seconds.
fn schedule(delays: &[f64]) -> String {
    json!({"kind": "schedule", "delays": delays, "jitter": 0.0}).to_string()
}

/// Attempts of one event, oldest first.
fn attempts_of(h: &Herald, uuid: &str) -> Vec<Value> {
    let mut l = h.log(&["--event", uuid]);
    l.reverse();
    l
}

/// Waits until `check` holds over the log, which it returns.
fn wait_until(h: &Herald, what: &str, check: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let log = h.log(&[]);
        if check(&log) {
            return log;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "waited for {what}: {log:#?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn count(log: &[Value], outcome: &str) -> usize {
    log.iter().filter(|e| e["outcome"] == outcome).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_attempts_are_retried_on_the_schedule_until_delivered() {
    let rx = Receiver::start().await;
    rx.fail_next(2, 503);
    let h = Herald::new();
    let retry = schedule(&[0.3, 0.6, 5.0]);
    h.add("w", &rx.url("/"), &["--retry", &retry]);
    let _s = h.serve();
    let uuid = h.ok(&["emit", "ticket.login"]).trim().to_owned();
    let got = rx.wait_for(3).await;
    let log = h.wait_log(&["--event", &uuid], 3);
    let a = attempts_of(&h, &uuid);
    assert_eq!(
        a.iter()
            .map(|e| e["outcome"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["failed", "failed", "delivered"],
        "{log:#?}"
    );
    assert_eq!(
        a.iter()
            .map(|e| e["attempt"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(a[0]["error"], "HTTP 503");
    assert!(
        a[0]["retry_at"].is_string() && a[1]["retry_at"].is_string(),
        "{a:#?}"
    );
    assert!(a[2]["retry_at"].is_null());
    // Each retry waited at least its delay.
    assert!(got[1].at - got[0].at >= Duration::from_millis(300));
    assert!(got[2].at - got[1].at >= Duration::from_millis(600));
    assert_eq!(
        h.sql_count("SELECT count(*) FROM deliveries WHERE state = 'delivered'"),
        1
    );
    // A success after failures that raised no alert announces nothing.
    assert_eq!(count(&h.log(&[]), "recovered"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_schedule_fails_for_good_and_410_stops_at_once() {
    let down = Receiver::start().await;
    down.set_status(500);
    let gone = Receiver::start().await;
    gone.set_status(410);
    let h = Herald::new();
    let retry = schedule(&[0.1, 0.1]);
    let w_down = h.add("down", &down.url("/"), &["--retry", &retry]);
    let w_gone = h.add("gone", &gone.url("/"), &["--retry", &retry]);
    let _s = h.serve();
    h.ok(&["emit", "system.start"]);
    let log = h.wait_log(&["--webhook", &w_down.to_string()], 3);
    assert_eq!(log[0]["outcome"], "failed");
    assert!(
        log[0]["retry_at"].is_null(),
        "the last try is final: {log:#?}"
    );
    assert_eq!(log[0]["attempt"], 3);
    let log = h.wait_log(&["--webhook", &w_gone.to_string()], 1);
    assert_eq!(log[0]["error"], "HTTP 410");
    assert!(
        log[0]["retry_at"].is_null(),
        "410 Gone is not retried: {log:#?}"
    );
    // Nothing more comes: both deliveries are settled as failed.
    h.wait_sql("SELECT count(*) FROM deliveries WHERE state = 'failed'", 2);
    assert_eq!(down.received().len(), 3);
    assert_eq!(gone.received().len(), 1);
    let listed = h.ok(&["deliveries", "--state", "failed", "--json"]);
    let listed: Vec<Value> = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|d| d["status"] == "failed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured_up_to_the_cap() {
    let rx = Receiver::start().await;
    rx.set_header("Retry-After", "3600");
    rx.fail_next(1, 503);
    let mut h = Herald::new();
    // The endpoint asks for an hour; the cap makes it one second.
    h.set_env("HERALD_DELIVERY_MAX_RETRY_AFTER", "1");
    let retry = schedule(&[0.05]);
    h.add("w", &rx.url("/"), &["--retry", &retry]);
    let _s = h.serve();
    let uuid = h.ok(&["emit", "system.start"]).trim().to_owned();
    let got = rx.wait_for(2).await;
    assert!(
        got[1].at - got[0].at >= Duration::from_secs(1),
        "the retry came before Retry-After (capped to 1 s) allowed"
    );
    let a = h.wait_log(&["--event", &uuid], 2);
    assert_eq!(a[0]["outcome"], "delivered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_that_refuses_then_resets_then_stalls_then_recovers_gets_every_event() {
    let port = refused_port();
    let url = format!("http://127.0.0.1:{port}/in");
    let h = Herald::new();
    let retry =
        json!({"kind": "fixed", "interval": 0.2, "retries": 100, "jitter": 0.0}).to_string();
    h.add(
        "flaky",
        &url,
        &[
            "--retry",
            &retry,
            "--timeout",
            "0.3",
            "--body",
            r#"{"id": "<<event.uuid>>"}"#,
        ],
    );
    let _s = h.serve();
    let mut uuids = Vec::new();
    for _ in 0..3 {
        uuids.push(h.ok(&["emit", "ticket.login"]).trim().to_owned());
    }
    // Refused.
    wait_until(&h, "refusals", |l| {
        l.iter()
            .filter(|e| {
                e["error"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("connection refused"))
            })
            .count()
            >= 3
    });
    // Reset.
    let dropper = Dropper::start(port).await;
    wait_until(&h, "resets", |l| {
        l.iter()
            .filter(|e| {
                e["error"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("connection reset"))
            })
            .count()
            >= 3
    });
    dropper.stop().await;
    // Stalled past the timeout.
    let rx = Receiver::start_on(port, "ok").await;
    rx.set_delay(Duration::from_secs(5));
    wait_until(&h, "timeouts", |l| {
        l.iter()
            .filter(|e| {
                e["error"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("timed out"))
            })
            .count()
            >= 3
    });
    // Recovered: every event arrives.
    rx.set_delay(Duration::ZERO);
    wait_until(&h, "deliveries", |l| count(l, "delivered") == 3);
    for uuid in &uuids {
        let a = attempts_of(&h, uuid);
        assert_eq!(a.last().unwrap()["outcome"], "delivered", "{a:#?}");
        assert!(a.len() >= 4, "refused, reset, timed out, delivered: {a:#?}");
    }
    assert_eq!(
        h.sql_count("SELECT count(*) FROM deliveries WHERE state = 'delivered'"),
        3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_is_a_failure_unless_the_webhook_follows_redirects() {
    let target = Receiver::start().await;
    let redirector = Receiver::start().await;
    redirector.set_status(302);
    redirector.set_header("Location", &target.url("/moved"));
    let h = Herald::new();
    let plain = h.add("plain", &redirector.url("/a"), &["--retry", "once"]);
    let following = h.add(
        "following",
        &redirector.url("/b"),
        &["--follow-redirects", "--retry", "once"],
    );
    let _s = h.serve();
    h.ok(&["emit", "system.start"]);
    let l = h.wait_log(&["--webhook", &plain.to_string()], 1);
    assert_eq!(l[0]["outcome"], "failed");
    assert!(
        l[0]["error"]
            .as_str()
            .unwrap()
            .starts_with("HTTP 302 (redirects are not followed"),
        "{l:#?}"
    );
    let l = h.wait_log(&["--webhook", &following.to_string()], 1);
    assert_eq!(l[0]["outcome"], "delivered", "{l:#?}");
    let got = target.wait_for(1).await;
    assert_eq!(got[0].uri, "/moved");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_outage_pauses_alerts_once_per_interval_and_resume_delivers_the_backlog() {
    // Refused until the receiver starts on it; reserved meanwhile, so no
    // other socket takes it.
    let reserved = ReservedPort::new();
    let port = reserved.port;
    let alerts = Receiver::start().await;
    let mut h = Herald::new();
    // Scaled: pause after 1.5 s of failures, first alert at once, then every 0.5 s.
    h.set_env("HERALD_DELIVERY_PAUSE_AFTER", "1.5");
    h.set_env("HERALD_ALERTS_AFTER", "0");
    h.set_env("HERALD_ALERTS_INTERVAL", "0.5");
    let retry =
        json!({"kind": "fixed", "interval": 0.1, "retries": 1000, "jitter": 0.0}).to_string();
    let pms = h.add_webhook(&[
        "--name",
        "pms",
        "--url",
        &format!("http://127.0.0.1:{port}/"),
        "--events",
        "ticket.*",
        "--retry",
        &retry,
        "--body",
        r#"{"id": "<<event.uuid>>"}"#,
    ]);
    h.add_webhook(&[
        "--name",
        "alerts",
        "--url",
        &alerts.url("/"),
        "--events",
        "herald.*",
        "--body",
        r#"{"type": "<<event.type>>", "webhook": <<webhook_id>>, "message": "<<message>>"}"#,
    ]);
    let s = h.serve();
    let first = h.ok(&["emit", "ticket.login"]).trim().to_owned();
    wait_until(&h, "the pause", |l| count(l, "paused") == 1);
    // An attempt claimed just before the pause may still be finishing.
    std::thread::sleep(Duration::from_millis(300));
    let (_, w) = s
        .send(M::GET, s.url(&format!("/api/v1/webhooks/{pms}")), None)
        .await;
    assert!(w["health"]["paused_at"].is_string(), "{w:#}");
    assert!(
        w["health"]["failure_streak"].as_i64().unwrap() >= 2,
        "{w:#}"
    );
    assert!(
        w["health"]["pause_reason"]
            .as_str()
            .unwrap()
            .contains("paused"),
        "{w:#}"
    );
    // While paused: nothing is tried, new events are kept.
    let tried = h.sql_count(&format!(
        "SELECT count(*) FROM log WHERE webhook_id = {pms} AND outcome = 'failed'"
    ));
    let mut later = Vec::new();
    for _ in 0..3 {
        later.push(h.ok(&["emit", "ticket.logout"]).trim().to_owned());
    }
    let rx = Receiver::start_reserved(reserved, "ok").await;
    // Alerts keep coming while paused (each announced to the alert webhook);
    // the failed-attempt count does not move.
    let before = alerts.received().len();
    alerts.wait_for(before + 2).await;
    assert_eq!(rx.received().len(), 0, "a paused webhook sends nothing");
    assert_eq!(
        h.sql_count(&format!(
            "SELECT count(*) FROM log WHERE webhook_id = {pms} AND outcome = 'failed'"
        )),
        tried
    );
    assert_eq!(
        h.sql_count(&format!(
            "SELECT count(*) FROM deliveries WHERE webhook_id = {pms} AND state = 'pending'"
        )),
        4
    );
    // The alerts: one per interval at most, each a well-formed event.
    let got = alerts.received();
    let failing: Vec<_> = got
        .iter()
        .filter(|r| r.json()["type"] == "herald.webhook.failing")
        .collect();
    let paused: Vec<_> = got
        .iter()
        .filter(|r| r.json()["type"] == "herald.webhook.paused")
        .collect();
    assert_eq!(paused.len(), 1);
    assert!(failing.len() >= 2);
    // Arrival can bunch up after delivery, so spacing is checked where
    // alerts are raised: the log's times. The pause is announced when it
    // happens (checked once above), so it may follow an alert closely.
    let log = h.log(&["--webhook", &pms.to_string()]);
    let mut raised: Vec<chrono::DateTime<chrono::FixedOffset>> = log
        .iter()
        .filter(|e| e["outcome"] == "alert")
        .map(|e| chrono::DateTime::parse_from_rfc3339(e["at"].as_str().unwrap()).unwrap())
        .collect();
    raised.sort();
    for pair in raised.windows(2) {
        assert!(
            pair[1] - pair[0] >= chrono::Duration::milliseconds(500),
            "two alerts within one interval: {raised:?}"
        );
    }
    assert!(raised.len() >= 3, "{raised:?}");

    // Resume: the backlog (the first event and the three kept) is delivered,
    // and the recovery is announced once.
    let out = h.ok(&["webhook", "resume", &pms.to_string()]);
    assert!(out.contains("4 waiting deliveries"), "{out}");
    let got = rx.wait_for(4).await;
    let ids: std::collections::HashSet<String> = got
        .iter()
        .map(|r| r.json()["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(ids.contains(&first));
    assert!(later.iter().all(|u| ids.contains(u)));
    eventually("the recovery announced to the alert webhook", || {
        alerts
            .received()
            .iter()
            .any(|r| r.json()["type"] == "herald.webhook.recovered")
    });
    let log = wait_until(&h, "the recovery in the log", |l| {
        count(l, "recovered") == 1
    });
    assert_eq!(count(&log, "resumed"), 1);
    let (_, w) = s
        .send(M::GET, s.url(&format!("/api/v1/webhooks/{pms}")), None)
        .await;
    assert!(
        w["health"]["paused_at"].is_null() && w["health"]["failing_since"].is_null(),
        "{w:#}"
    );
    assert_eq!(w["health"]["last_status"], "delivered");
    // Announced once: more successes announce nothing more.
    h.ok(&["emit", "ticket.login"]);
    rx.wait_for(5).await;
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(count(&h.log(&[]), "recovered"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_and_resume_by_hand_through_the_api() {
    let rx = Receiver::start().await;
    let h = Herald::new();
    let id = h.add("w", &rx.url("/"), &[]);
    let s = h.serve();
    let (st, w) = s
        .send(
            M::POST,
            s.url(&format!("/api/v1/webhooks/{id}/pause")),
            None,
        )
        .await;
    assert_eq!(st, 200, "{w}");
    assert!(w["health"]["paused_at"].is_string());
    h.ok(&["emit", "system.start"]);
    h.ok(&["emit", "system.start"]);
    h.wait_sql("SELECT count(*) FROM deliveries WHERE state = 'pending'", 2);
    let (st, r) = s
        .send(
            M::POST,
            s.url(&format!("/api/v1/webhooks/{id}/resume")),
            None,
        )
        .await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["backlog"], 2);
    rx.wait_for(2).await;
    let (st, r) = s
        .send(
            M::POST,
            s.url(&format!("/api/v1/webhooks/{id}/resume")),
            None,
        )
        .await;
    assert_eq!(st, 409, "resuming a webhook that is not paused: {r}");
    assert!(r["error"].as_str().unwrap().contains("is not paused"));
    let (st, _) = s
        .send(M::POST, s.url("/api/v1/webhooks/999/pause"), None)
        .await;
    assert_eq!(st, 404);
    let (st, _) = s
        .send(M::POST, s.url("/api/v1/webhooks/999/resume"), None)
        .await;
    assert_eq!(st, 404);
    assert_eq!(h.cli(&["webhook", "resume", "999"]).status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_one_delivery_a_webhooks_failed_ones_and_a_time_range() {
    let rx = Receiver::start().await;
    rx.set_status(500);
    let h = Herald::new();
    let id = h.add(
        "w",
        &rx.url("/"),
        &["--retry", "once", "--body", r#"{"id": "<<event.uuid>>"}"#],
    );
    let s = h.serve();
    let mut uuids = Vec::new();
    for _ in 0..3 {
        uuids.push(h.ok(&["emit", "ticket.login"]).trim().to_owned());
    }
    h.wait_log(&[], 3);
    let failed: Vec<Value> =
        serde_json::from_str(&h.ok(&["deliveries", "--state", "failed", "--json"])).unwrap();
    assert_eq!(failed.len(), 3);
    rx.set_status(200);

    // One delivery, from the CLI.
    let one = failed
        .iter()
        .find(|d| d["event_uuid"] == uuids[0].as_str())
        .unwrap();
    let out = h.ok(&["retry", "--delivery", &one["id"].to_string()]);
    assert!(out.contains("queued 1 deliveries again"), "{out}");
    let a = h.wait_log(&["--event", &uuids[0]], 2);
    assert_eq!(a[0]["outcome"], "delivered");
    assert_eq!(
        a[0]["attempt"], 2,
        "a replay is a new attempt with the same event uuid"
    );
    // Replaying it while it is... delivered is fine; while pending it is refused.
    assert_eq!(
        h.cli(&["retry", "--delivery", "99999"]).status.code(),
        Some(2)
    );

    // All failed of the webhook, from the API.
    let (st, r) = s
        .send(
            M::POST,
            s.url("/api/v1/deliveries/retry"),
            Some(&json!({"webhook_id": id, "failed_only": true}).to_string()),
        )
        .await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["queued"], 2);
    rx.wait_for(3).await;
    wait_until(&h, "two more deliveries", |l| count(l, "delivered") == 3);

    // Everything of a time range (delivered ones too).
    let from = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let to = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let out = h.ok(&["retry", "--from", &from, "--to", &to]);
    assert!(out.contains("queued 3 deliveries again"), "{out}");
    rx.wait_for(6).await;
    // A range with nothing in it.
    let out = h.ok(&[
        "retry",
        "--from",
        "2001-01-01T00:00:00Z",
        "--to",
        "2001-01-02T00:00:00Z",
    ]);
    assert!(out.contains("queued 0 deliveries again"), "{out}");

    // Malformed replays are refused with a reason.
    for (body, status, needle) in [
        (json!({}), 400, "say what to replay"),
        (json!({"from": "yesterday"}), 400, "RFC 3339"),
        (
            json!({"from": to, "to": from}),
            400,
            "from must be before to",
        ),
        (
            json!({"delivery_id": 99999}),
            404,
            "delivery 99999 not found",
        ),
        (json!({"webhook_id": 99999}), 404, "webhook 99999 not found"),
        (json!({"webhook": 1}), 400, "unknown field"),
    ] {
        let (st, r) = s
            .send(
                M::POST,
                s.url("/api/v1/deliveries/retry"),
                Some(&body.to_string()),
            )
            .await;
        assert_eq!(st, status, "{body}: {r}");
        assert!(r["error"].as_str().unwrap().contains(needle), "{body}: {r}");
    }
    let e = h.cli(&["retry"]);
    assert_eq!(e.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&e.stderr).contains("say what to replay"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_a_pending_delivery_is_refused() {
    let rx = Receiver::start().await;
    rx.set_delay(Duration::from_secs(3600));
    let h = Herald::new();
    h.add("w", &rx.url("/"), &["--timeout", "300"]);
    let s = h.serve();
    h.ok(&["emit", "system.start"]);
    rx.wait_for(1).await;
    let (st, r) = s
        .send(
            M::POST,
            s.url("/api/v1/deliveries/retry"),
            Some(r#"{"delivery_id": 1}"#),
        )
        .await;
    assert_eq!(st, 409, "{r}");
    assert!(r["error"].as_str().unwrap().contains("still pending"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_event_goes_through_the_whole_path_and_reports_at_once() {
    let rx = Receiver::start().await;
    let h = Herald::new();
    let id = h.add_webhook(&[
        "--name",
        "w",
        "--url",
        &rx.url("/"),
        "--events",
        "ticket.*",
        "--enabled",
        "false",
        "--body",
        r#"{"type": "<<event.type>>", "limit": "<<limit>>"}"#,
        "--auth",
        r#"{"kind": "bearer", "token": "t0ken"}"#,
        "--signing",
        r#"{"kind": "standard"}"#,
    ]);
    let secret = {
        let w: Value = serde_json::from_str(&h.ok(&[
            "webhook",
            "show",
            &id.to_string(),
            "--json",
            "--reveal",
        ]))
        .unwrap();
        w["signing"]["secrets"][0]["secret"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    // From the CLI, without a server, on a disabled webhook.
    let out = h.ok(&[
        "test",
        &id.to_string(),
        "--type",
        "ticket.logout.limit_exceeded",
    ]);
    assert!(
        out.starts_with("delivered ticket.logout.limit_exceeded event"),
        "{out}"
    );
    assert!(out.contains("HTTP 200"), "{out}");
    let got = rx.wait_for(1).await;
    assert_eq!(got[0].json()["type"], "ticket.logout.limit_exceeded");
    assert_eq!(got[0].headers["authorization"], "Bearer t0ken");
    verify_signature(&json!({
        "scheme": "standard", "secret": secret, "body": got[0].body,
        "headers": {
            "webhook-id": got[0].headers["webhook-id"],
            "webhook-timestamp": got[0].headers["webhook-timestamp"],
            "webhook-signature": got[0].headers["webhook-signature"],
        }
    }))
    .unwrap();
    // The test is logged as one, and the webhook's health is untouched.
    let log = h.log(&[]);
    assert_eq!(log.len(), 1);
    assert_eq!(log[0]["test"], true);
    assert!(log[0]["delivery_id"].is_null());
    assert_eq!(h.sql_count("SELECT count(*) FROM deliveries"), 0);

    // From the API, with a failing endpoint.
    rx.set_status(503);
    let s = h.serve();
    let (st, r) = s
        .send(
            M::POST,
            s.url(&format!("/api/v1/webhooks/{id}/test")),
            Some(r#"{"type": "ticket.login"}"#),
        )
        .await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["outcome"], "failed");
    assert_eq!(r["http_status"], 503);
    assert_eq!(r["error"], "HTTP 503");
    let (_, w) = s
        .send(M::GET, s.url(&format!("/api/v1/webhooks/{id}")), None)
        .await;
    assert!(
        w["health"]["failing_since"].is_null(),
        "a test does not count: {w:#}"
    );
    let e = h.cli(&["test", &id.to_string()]);
    assert_eq!(e.status.code(), Some(1), "a refused test exits 1");
    assert!(String::from_utf8_lossy(&e.stdout).starts_with("FAILED"));
    // Bad requests.
    let (st, _) = s
        .send(M::POST, s.url("/api/v1/webhooks/999/test"), None)
        .await;
    assert_eq!(st, 404);
    let (st, r) = s
        .send(
            M::POST,
            s.url(&format!("/api/v1/webhooks/{id}/test")),
            Some(r#"{"type": "Not A Type"}"#),
        )
        .await;
    assert_eq!(st, 400, "{r}");
    assert_eq!(h.cli(&["test", "999"]).status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_endpoint_does_not_delay_a_healthy_one_and_limits_hold() {
    let stuck = Receiver::start().await;
    stuck.set_delay(Duration::from_secs(3600));
    let healthy = Receiver::start().await;
    let mut h = Herald::new();
    // Fewer global slots than events: before per-webhook limits, the stuck
    // endpoint took every slot and the healthy one got nothing.
    h.set_env("HERALD_DELIVERY_CONCURRENCY", "4");
    h.add(
        "stuck",
        &stuck.url("/"),
        &["--timeout", "300", "--max-in-flight", "2"],
    );
    let dead = format!("http://127.0.0.1:{}/", refused_port());
    h.add("dead", &dead, &[]);
    h.add("healthy", &healthy.url("/"), &[]);
    let _s = h.serve();
    for _ in 0..10 {
        h.ok(&["emit", "system.start"]);
    }
    healthy.wait_for(10).await;
    assert_eq!(stuck.received().len(), 2, "max_in_flight 2 holds");
    assert!(stuck.max_concurrent() <= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ordered_webhook_sends_one_at_a_time_in_order_and_a_failure_holds_the_rest() {
    let rx = Receiver::start().await;
    rx.set_delay(Duration::from_millis(30));
    rx.fail_next(2, 503);
    let h = Herald::new();
    let retry = schedule(&[0.2, 0.2, 0.2]);
    h.add(
        "ordered",
        &rx.url("/"),
        &["--ordered", "--retry", &retry, "--body", r#"{"n": <<n>>}"#],
    );
    // Queued before the server starts, so all are due at once.
    for n in 1..=6 {
        h.ok(&[
            "emit",
            "system.start",
            "--data",
            &json!({"n": n}).to_string(),
        ]);
    }
    let _s = h.serve();
    let got = rx.wait_for(8).await;
    let order: Vec<i64> = got
        .iter()
        .map(|r| r.json()["n"].as_i64().unwrap())
        .collect();
    assert_eq!(
        order,
        [1, 1, 1, 2, 3, 4, 5, 6],
        "the failing first event held the rest"
    );
    assert_eq!(rx.max_concurrent(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_carry_up_to_max_events_in_one_well_formed_request() {
    let json_rx = Receiver::start().await;
    let xml_rx = Receiver::start().await;
    let h = Herald::new();
    let json_id = h.add_webhook(&[
        "--name", "json", "--url", &json_rx.url("/"), "--events", "ticket.*", "--batch", "5/1",
        "--body",
        r#"[<% for e in events %><% if not loop.first %>,<% endif %>{"id": "<<e.event.uuid>>", "room": "<<e.backend_data.pms.room>>"}<% endfor %>]"#,
    ]);
    h.add_webhook(&[
        "--name", "xml", "--url", &xml_rx.url("/"), "--events", "ticket.*", "--batch", "100/0.5",
        "--mime", "application/xml",
        "--body", r#"<events><% for e in events %><event id="<<e.event.uuid>>"><<e.event.ticket_id>></event><% endfor %></events>"#,
    ]);
    // Twelve events at once (one transaction), with values that need escaping.
    let mut sql = String::from("BEGIN;");
    for i in 0..12 {
        sql.push_str(&format!(
            "INSERT INTO events (type, ticket_id, data) VALUES ('ticket.login', 'T<{i}>&\"', '{{\"backend_data\": {{\"pms\": {{\"room\": \"{i}\\\"\"}}}}}}');"
        ));
    }
    sql.push_str("COMMIT;");
    h.sql(&sql);
    let _s = h.serve();
    wait_until(&h, "twelve deliveries to each", |l| {
        count(l, "delivered") == 24
    });
    let sizes: Vec<usize> = json_rx
        .received()
        .iter()
        .map(|r| r.json().as_array().unwrap().len())
        .collect();
    let mut sorted = sizes.clone();
    sorted.sort();
    assert_eq!(sorted, [2, 5, 5], "{sizes:?}");
    let rooms: std::collections::HashSet<String> = json_rx
        .received()
        .iter()
        .flat_map(|r| r.json().as_array().unwrap().clone())
        .map(|e| e["room"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(rooms.len(), 12);
    assert!(rooms.contains("7\""));
    // The XML batch: one request, twelve elements, escaped text.
    let xml = xml_rx.received();
    assert_eq!(xml.len(), 1);
    let mut reader = quick_xml::Reader::from_str(&xml[0].body);
    let (mut events, mut texts) = (0, Vec::new());
    loop {
        match reader.read_event().unwrap() {
            quick_xml::events::Event::Start(e) if e.name().into_inner() == "event" => events += 1,
            quick_xml::events::Event::Text(t) => texts.push(t.into_inner().into_owned()),
            quick_xml::events::Event::GeneralRef(r) => texts.push(
                match r.xml10_content().as_ref() {
                    "lt" => "<",
                    "gt" => ">",
                    "amp" => "&",
                    "quot" => "\"",
                    "apos" => "'",
                    other => panic!("unexpected entity {other}"),
                }
                .to_owned(),
            ),
            quick_xml::events::Event::Eof => break,
            _ => {}
        }
    }
    assert_eq!(events, 12, "{}", xml[0].body);
    assert!(texts.concat().contains("T<3>&\""), "{texts:?}");
    // One log entry per event; the request itself is logged once per batch.
    let log = h.log(&["--webhook", &json_id.to_string()]);
    assert_eq!(log.len(), 12);
    assert!(
        log.iter()
            .all(|e| e["error"].as_str().unwrap().starts_with("batch of"))
    );
    let per_batch: HashMap<String, usize> = log.iter().fold(HashMap::new(), |mut m, e| {
        *m.entry(e["error"].as_str().unwrap().to_owned())
            .or_default() += 1;
        m
    });
    assert_eq!(per_batch["batch of 5"], 10);
    assert_eq!(per_batch["batch of 2"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_event_of_a_batch_keeps_its_own_retry_count() {
    let rx = Receiver::start().await;
    rx.fail_next(2, 503);
    let h = Herald::new();
    let retry = schedule(&[1.0]);
    h.add("b", &rx.url("/"), &["--batch", "10/30", "--retry", &retry, "--body", r#"[<% for e in events %><% if not loop.first %>,<% endif %>"<<e.event.uuid>>"<% endfor %>]"#]);
    // A waits for the batch to fill, which it never does; made old, it goes
    // alone, and fails.
    let _s = h.serve();
    let a = h.ok(&["emit", "system.start"]).trim().to_owned();
    // Make A look 30 s old once routed, so it goes without waiting.
    h.wait_sql("SELECT count(*) FROM deliveries", 1);
    h.sql("UPDATE deliveries SET created_at = '2000-01-01T00:00:00.000Z'");
    rx.wait_for(1).await;
    // B arrives while A waits for its retry: both go in the next request,
    // which fails too. A has used its one retry and fails for good; B, on
    // its first try, is retried and delivered alone.
    let b = h.ok(&["emit", "system.start"]).trim().to_owned();
    let got = rx.wait_for(3).await;
    let sizes: Vec<usize> = got
        .iter()
        .map(|r| r.json().as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, [1, 2, 1], "{got:#?}");
    assert_eq!(got[2].json()[0], b.as_str());
    let a_log = h.wait_log(&["--event", &a], 2);
    assert_eq!(a_log[0]["outcome"], "failed");
    assert!(a_log[0]["retry_at"].is_null(), "{a_log:#?}");
    let b_log = h.wait_log(&["--event", &b], 2);
    assert_eq!(b_log[0]["outcome"], "delivered", "{b_log:#?}");
}

#[test]
fn batching_settings_are_checked() {
    let h = Herald::new();
    for (args, needle) in [
        (vec!["--batch", "0/5"], "max_events"),
        (vec!["--batch", "five"], "MAX_EVENTS/MAX_WAIT_SECONDS"),
        (vec!["--batch", "5/1", "--ordered"], "cannot be combined"),
        (
            vec!["--batch", "5/1", "--body", r#"{"id": "<<event.uuid>>"}"#],
            "does not use `events`",
        ),
        (vec!["--retry", "5,x"], "--retry"),
        (
            vec!["--retry", r#"{"kind":"fixed","interval":1,"retries":0}"#],
            "retries",
        ),
        (vec!["--max-in-flight", "0"], "max_in_flight"),
    ] {
        let mut all = vec![
            "webhook",
            "add",
            "--name",
            "w",
            "--url",
            "http://127.0.0.1:9/",
            "--events",
            "*",
        ];
        all.extend(args.iter());
        let out = h.cli(&all);
        let err = String::from_utf8_lossy(&out.stderr);
        if needle.starts_with("does not use") {
            // A single-event template in a batching webhook renders no
            // events list: it is accepted (valid JSON) with a warning.
            assert!(out.status.success(), "{args:?}: {err}");
            assert!(err.contains(needle), "{args:?}: {err}");
        } else {
            assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
            assert!(err.contains(needle), "{args:?}: {err}");
        }
    }
}

#[test]
fn herald_event_types_are_reserved_for_herald() {
    let h = Herald::new();
    let out = h.cli(&["emit", "herald.webhook.failing"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("reserved"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_row_corrupted_by_hand_fails_its_deliveries_with_the_reason() {
    let rx = Receiver::start().await;
    let h = Herald::new();
    let id = h.add("w", &rx.url("/"), &[]);
    h.sql(&format!(
        "UPDATE webhooks SET retry = '{{\"kind\": \"sometimes\"}}' WHERE id = {id}"
    ));
    let _s = h.serve();
    let uuid = h.ok(&["emit", "system.start"]).trim().to_owned();
    let log = h.wait_log(&["--event", &uuid], 1);
    assert_eq!(log[0]["outcome"], "failed");
    let error = log[0]["error"].as_str().unwrap();
    assert!(
        error.starts_with(&format!("webhook {id} cannot be read: webhook {id} retry:")),
        "{error}"
    );
    assert!(
        log[0]["retry_at"].is_null(),
        "nothing to retry with: {log:#?}"
    );
    h.wait_sql("SELECT count(*) FROM deliveries WHERE state = 'failed'", 1);
    assert!(rx.received().is_empty());
}
