//! Routing and delivery through `herald serve`: fan-out, methods, the event
//! log for every outcome, invalid events, waking, disabled webhooks, shutdown.

use std::time::Duration;

use crate::utils::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fans_out_by_pattern() {
    let rx = Receiver::start().await;
    let h = Herald::new();
    let exact = h.add_webhook(&[
        "--name",
        "exact",
        "--url",
        &rx.url("/exact"),
        "--events",
        "ticket.login",
    ]);
    let prefix = h.add_webhook(&[
        "--name",
        "prefix",
        "--url",
        &rx.url("/prefix"),
        "--events",
        "ticket.*",
    ]);
    let all = h.add("all", &rx.url("/all"), &[]);
    let system = h.add_webhook(&[
        "--name",
        "system",
        "--url",
        &rx.url("/system"),
        "--events",
        "system.*",
    ]);
    let _server = h.serve();

    h.ok(&["emit", "ticket.login", "--ticket", "T-1"]);
    h.ok(&["emit", "ticket.logout.timeout", "--ticket", "T-1"]);
    h.ok(&["emit", "system.start"]);
    // 3 + 2 + 2 deliveries.
    let got = rx.wait_for(7).await;
    let log = h.wait_log(&[], 7);
    let mut paths: Vec<String> = got.iter().map(|r| r.uri.clone()).collect();
    paths.sort();
    assert_eq!(
        paths,
        [
            "/all", "/all", "/all", "/exact", "/prefix", "/prefix", "/system"
        ]
    );
    assert!(
        log.iter()
            .all(|e| e["outcome"] == "delivered" && e["http_status"] == 200),
        "{log:#?}"
    );
    let count = |id: i64| h.log(&["--webhook", &id.to_string()]).len();
    assert_eq!(
        (count(exact), count(prefix), count(all), count(system)),
        (1, 2, 3, 1)
    );
    // Nothing more arrives: no duplicate routing.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(rx.received().len(), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn methods_urls_and_headers_are_templated() {
    let rx = Receiver::start().await;
    let h = Herald::new();
    for method in ["GET", "PUT", "DELETE", "POST"] {
        h.add_webhook(&[
            "--name",
            method,
            "--method",
            method,
            "--events",
            "ticket.*",
            "--url",
            &format!(
                "{}/{}/<<event.ticket_id>>?room=<<backend_data.pms.room>>&d=<<description>>",
                rx.url(""),
                method.to_lowercase()
            ),
            "--header",
            "X-Event: <<event.type>>",
            "--header",
            "X-Desc: <<description>>",
            "--body",
            if method == "GET" {
                ""
            } else {
                r#"{"uuid": "<<event.uuid>>"}"#
            },
        ]);
    }
    let _server = h.serve();
    h.cli_stdin(
        &["emit"],
        Some(&std::fs::read_to_string(repo_file("templates/samples/ticket.login.json")).unwrap()),
    );
    let mut got = rx.wait_for(4).await;
    got.sort_by(|a, b| a.method.cmp(&b.method));
    let methods: Vec<&str> = got.iter().map(|r| r.method.as_str()).collect();
    assert_eq!(methods, ["DELETE", "GET", "POST", "PUT"]);
    for r in &got {
        let m = r.method.to_lowercase();
        assert_eq!(
            r.uri,
            format!("/{m}/T-100234?room=214&d=Room%20214%20-%20Mr.%20M%C3%BCller")
        );
        assert_eq!(r.headers["x-event"], "ticket.login");
        assert_eq!(r.headers["x-desc"], "Room 214 - Mr. Müller");
        if r.method == "GET" {
            assert_eq!(r.body, "");
            assert!(!r.headers.contains_key("content-type"));
        } else {
            assert_eq!(r.json()["uuid"], "0b8c8a4e-6f2d-4c1e-9a57-3f1d2b9e7c10");
            assert_eq!(r.headers["content-type"], "application/json");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_records_success_500_refused_and_timeout() {
    let ok = Receiver::start().await;
    let failing = Receiver::start().await;
    failing.set_status(500);
    let slow = Receiver::start().await;
    slow.set_delay(Duration::from_secs(20));
    let h = Herald::new();
    let w_ok = h.add(
        "ok",
        &ok.url("/"),
        &[
            "--log-bodies",
            "--header",
            "Authorization: Bearer s3cret",
            "--header",
            "X-Api-Key: k3y",
            "--body",
            r#"{"t":"<<event.type>>"}"#,
        ],
    );
    // Failures are final here ("send once"); retries have their own tests.
    let w_500 = h.add("five-hundred", &failing.url("/"), &["--retry", "once"]);
    let refused = format!("http://127.0.0.1:{}/", refused_port());
    let w_refused = h.add("refused", &refused, &["--retry", "once"]);
    let w_slow = h.add(
        "slow",
        &slow.url("/"),
        &["--timeout", "0.5", "--retry", "once"],
    );
    let _server = h.serve();
    let uuid = h.ok(&["emit", "ticket.login"]).trim().to_owned();

    h.wait_log(&[], 4);
    let entry = |w: i64| {
        let l = h.log(&["--webhook", &w.to_string()]);
        assert_eq!(l.len(), 1, "{l:#?}");
        assert_eq!(l[0]["event_uuid"], uuid.as_str());
        assert_eq!(l[0]["event_type"], "ticket.login");
        l[0].clone()
    };
    let e = entry(w_ok);
    assert_eq!(e["outcome"], "delivered");
    assert_eq!(e["http_status"], 200);
    let d = &e["detail"];
    assert_eq!(d["request_body"], r#"{"t":"ticket.login"}"#);
    assert_eq!(d["response_body"], "receiver says hi");
    let req_headers = d["request_headers"].as_str().unwrap();
    assert!(req_headers.contains("Authorization: ***"), "{req_headers}");
    assert!(req_headers.contains("X-Api-Key: ***"), "{req_headers}");
    assert!(
        !req_headers.contains("s3cret") && !req_headers.contains("k3y"),
        "{req_headers}"
    );
    // The receiver did get the real secret.
    assert_eq!(ok.received()[0].headers["authorization"], "Bearer s3cret");

    let e = entry(w_500);
    assert_eq!(e["outcome"], "failed");
    assert_eq!(e["http_status"], 500);
    assert_eq!(e["error"], "HTTP 500");
    assert!(
        e.get("detail").is_none(),
        "bodies are not logged unless asked: {e}"
    );

    let e = entry(w_refused);
    assert_eq!(e["outcome"], "failed");
    assert!(e["http_status"].is_null());
    assert!(
        e["error"]
            .as_str()
            .unwrap()
            .starts_with("connection refused"),
        "{e}"
    );

    let e = entry(w_slow);
    assert_eq!(e["outcome"], "failed");
    assert!(
        e["error"]
            .as_str()
            .unwrap()
            .starts_with("timed out after 500ms"),
        "{e}"
    );

    let failed = h.log(&["--failed"]);
    assert_eq!(failed.len(), 3);
    // The same through the API.
    let (_, api) = _server
        .send(
            reqwest::Method::GET,
            _server.url(&format!("/api/v1/log?failed=true&webhook={w_refused}")),
            None,
        )
        .await;
    let api = api.as_array().unwrap();
    assert_eq!(api.len(), 1);
    assert_eq!(api[0]["webhook_name"], "refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_rows_are_marked_and_the_loop_goes_on() {
    let rx = Receiver::start().await;
    let h = Herald::new();
    h.add("all", &rx.url("/"), &[]);
    let _server = h.serve();
    h.sql(
        "INSERT INTO events (type, data) VALUES ('ticket.login', '[1,2]');
         INSERT INTO events (type, data) VALUES ('ticket.login', '{not json');
         INSERT INTO events (type, data) VALUES ('Not A Type', '{}');
         INSERT INTO events (type, data, created_at) VALUES ('ticket.login', '{}', 'yesterday');
         INSERT INTO events (type, data) VALUES ('ticket.login', CAST(x'7b2261223a22ff227d' AS TEXT));
         INSERT INTO events (type, data) VALUES ('ticket.login', x'7b7d');
         INSERT INTO events (type, ticket_id, data) VALUES ('ticket.logout', 'T-7', '{\"volume_used\": 12}');",
    );
    let got = rx.wait_for(1).await;
    assert_eq!(got[0].method, "POST");
    let failed = h.wait_log(&["--failed"], 6);
    let errors: Vec<&str> = failed
        .iter()
        .map(|e| e["error"].as_str().unwrap())
        .collect();
    assert!(failed.iter().all(|e| e["outcome"] == "invalid"));
    let mut reasons = vec![
        "must be a JSON object, got an array",
        "not valid JSON",
        "event type \"Not A Type\"",
        "created_at \"yesterday\"",
    ];
    if !on_postgres() {
        // SQLite columns hold any bytes; PostgreSQL's text columns refuse
        // what is not UTF-8 at the INSERT (its x'..' literals are bit
        // strings, which arrive as text that is not JSON).
        reasons.extend([
            "column data is not valid UTF-8 text",
            "column data holds a BLOB",
        ]);
    }
    for reason in reasons {
        assert!(
            errors.iter().any(|e| e.contains(reason)),
            "{reason}: {errors:?}"
        );
    }
    assert_eq!(
        h.sql_count("SELECT count(*) FROM events WHERE state = 'invalid' AND error IS NOT NULL"),
        6
    );
    assert_eq!(
        h.sql_count("SELECT count(*) FROM events WHERE state = 'routed'"),
        1
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rx.received().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emit_wakes_the_router_without_waiting_for_the_interval() {
    let rx = Receiver::start().await;
    let mut h = Herald::new();
    // An interval far beyond the test's patience: only a wake-up can deliver.
    h.set_env("HERALD_ROUTER_READ_INTERVAL", "3600");
    h.add("all", &rx.url("/"), &[]);
    let server = h.serve();
    tokio::time::sleep(Duration::from_millis(300)).await;
    h.ok(&["emit", "system.start"]);
    rx.wait_for(1).await;
    // And through the API.
    let resp = server
        .client()
        .post(server.url("/api/v1/events"))
        .body(r#"{"type":"system.backup.started"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    rx.wait_for(2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_inserted_events_are_read_on_the_interval() {
    let rx = Receiver::start().await;
    let h = Herald::new();
    h.add_webhook(&["--name", "all", "--url", &rx.url("/"), "--events", "ticket.*", "--body", r#"{"u":"<<event.uuid>>","t":"<<event.ticket_id>>","c":"<<event.created_at>>","v":<<volume_used>>}"#]);
    let _server = h.serve();
    h.sql("INSERT INTO events (type, ticket_id, data) VALUES ('ticket.login', 'T-42', '{\"volume_used\": 7}')");
    let got = rx.wait_for(1).await;
    let body = got[0].json();
    assert_eq!(body["t"], "T-42");
    assert_eq!(body["v"], 7);
    // uuid and created_at got their defaults.
    assert!(
        uuid::Uuid::parse_str(body["u"].as_str().unwrap()).is_ok(),
        "{body}"
    );
    assert!(
        chrono::DateTime::parse_from_rfc3339(body["c"].as_str().unwrap()).is_ok(),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_webhook_gets_no_new_events_and_its_queued_deliveries_wait() {
    let rx = Receiver::start().await;
    rx.set_delay(Duration::from_millis(1500));
    let mut h = Herald::new();
    // One request at a time, so the second delivery queues behind the first.
    h.set_env("HERALD_DELIVERY_CONCURRENCY", "1");
    let id = h
        .add("w", &rx.url("/"), &["--body", r#"{"t":"<<event.type>>"}"#])
        .to_string();
    let _server = h.serve();
    h.ok(&["emit", "system.backup.started"]);
    h.ok(&["emit", "system.backup.done"]);
    rx.wait_for(1).await;
    // Both events routed (the second may lag the first under load).
    h.wait_sql("SELECT count(*) FROM deliveries", 2);
    h.ok(&["webhook", "disable", &id]);
    // Routed while disabled: not for this webhook.
    h.ok(&["emit", "system.start"]);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        rx.received().len(),
        1,
        "the queued delivery waits while disabled"
    );
    assert_eq!(
        h.sql_count("SELECT count(*) FROM deliveries WHERE state = 'pending'"),
        1
    );
    rx.set_delay(Duration::ZERO);
    h.ok(&["webhook", "enable", &id]);
    let got = rx.wait_for(2).await;
    assert_eq!(got[1].json()["t"], "system.backup.done");
    h.wait_log(&[], 2);
    assert_eq!(
        h.sql_count("SELECT count(*) FROM deliveries"),
        2,
        "system.start was not routed to the disabled webhook"
    );
    assert_eq!(
        h.sql_count("SELECT count(*) FROM deliveries WHERE state = 'delivered'"),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_in_flight_requests_finish_and_exits_zero() {
    let rx = Receiver::start().await;
    rx.set_delay(Duration::from_millis(1500));
    let h = Herald::new();
    h.add("w", &rx.url("/"), &[]);
    let server = h.serve();
    h.ok(&["emit", "system.start"]);
    rx.wait_for(1).await;
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
    // The in-flight request finished and was recorded before exit.
    let log = h.log(&[]);
    assert_eq!(log.len(), 1, "{log:#?}");
    assert_eq!(log[0]["outcome"], "delivered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_on_the_same_database_is_refused() {
    if on_postgres() {
        // One router per SQLite file; on PostgreSQL routers share one
        // database by design (tests/pg/routers.rs).
        println!("SQLite only");
        return;
    }
    let h = Herald::new();
    let _server = h.serve();
    let out = h.cli(&["serve"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("another herald is already serving"),
        "{out:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_reset_errors_are_put_in_plain_words() {
    // https:// to a plain-HTTP receiver: the TLS handshake fails.
    let rx = Receiver::start().await;
    // A listener that accepts and closes at once: the connection is reset.
    let closer = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closer_port = closer.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in closer.incoming() {
            drop(stream);
        }
    });
    let h = Herald::new();
    let tls = h.add(
        "tls",
        &format!("https://{}/", rx.addr),
        &["--retry", "once"],
    );
    let reset = h.add(
        "reset",
        &format!("http://127.0.0.1:{closer_port}/"),
        &["--retry", "once"],
    );
    let _server = h.serve();
    h.ok(&["emit", "system.start"]);
    h.wait_log(&[], 2);
    let error_of = |id: i64| {
        h.log(&["--webhook", &id.to_string()])[0]["error"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let e = error_of(tls);
    assert!(e.starts_with(&format!("TLS error with {}", rx.addr)), "{e}");
    let e = error_of(reset);
    assert!(
        e.starts_with(&format!("connection reset by 127.0.0.1:{closer_port}")),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_values_cannot_inject_headers_or_url_parts() {
    let rx = Receiver::start().await;
    let h = Herald::new();
    let secret_url = format!(
        "http://user:pa55word@{}/hook/abcdefghijklmnopqrstuvwxyz012345/<<description>>?token=t0ken&room=<<backend_data.pms.room>>",
        rx.addr
    );
    let id = h.add(
        "hostile",
        &secret_url,
        &["--log-bodies", "--header", "X-Desc: <<description>>"],
    );
    let server = h.serve();
    let resp = server
        .client()
        .post(server.url("/api/v1/events"))
        .json(&serde_json::json!({"type": "ticket.login", "data": {
            "description": "a\r\nX-Injected: yes\r\n\r\n/../?#&",
            "backend_data": {"pms": {"room": "1&admin=true#x"}}
        }}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let got = rx.wait_for(1).await;
    let r = &got[0];
    assert!(!r.headers.contains_key("x-injected"), "{r:#?}");
    assert_eq!(r.headers["x-desc"], "a  X-Injected: yes    /../?#&");
    assert_eq!(
        r.uri,
        "/hook/abcdefghijklmnopqrstuvwxyz012345/a%0D%0AX-Injected%3A%20yes%0D%0A%0D%0A%2F..%2F%3F%23%26?token=t0ken&room=1%26admin%3Dtrue%23x"
    );
    // The log keeps the request, with the secrets in the URL masked.
    let log = h.wait_log(&["--webhook", &id.to_string()], 1);
    let logged_url = log[0]["detail"]["request_url"].as_str().unwrap();
    assert!(
        logged_url.starts_with(&format!("http://***@{}/hook/***/", rx.addr)),
        "{logged_url}"
    );
    assert!(
        logged_url.contains("token=***&room=1%26admin%3Dtrue%23x"),
        "{logged_url}"
    );
    for secret in ["pa55word", "t0ken", "abcdefghijklmnopqrstuvwxyz012345"] {
        assert!(
            !serde_json::to_string(&log).unwrap().contains(secret),
            "{secret} leaked: {log:#?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transport_errors_do_not_leak_url_secrets() {
    let h = Herald::new();
    let port = refused_port();
    h.add(
        "w",
        &format!("http://user:pa55word@127.0.0.1:{port}/x?apikey=k3y"),
        &[],
    );
    let server = h.serve();
    let uuid = h.ok(&["emit", "system.start"]).trim().to_owned();
    let log = h.wait_log(&["--event", &uuid], 1);
    assert_eq!(
        log[0]["error"],
        format!("connection refused by 127.0.0.1:{port}")
    );
    let all = serde_json::to_string(&h.log(&[])).unwrap() + &server.log();
    assert!(!all.contains("pa55word") && !all.contains("k3y"), "{all}");
    // --event filters.
    assert_eq!(
        h.log(&["--event", "00000000-0000-4000-8000-000000000000"])
            .len(),
        0
    );
}

/// A queue longer than one batch is routed batch after batch at once, not
/// one batch per read interval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_longer_than_a_batch_is_routed_without_waiting_for_the_interval() {
    let rx = Receiver::start().await;
    let mut h = Herald::new();
    h.set_env("HERALD_ROUTER_BATCH_SIZE", "5");
    h.set_env("HERALD_ROUTER_READ_INTERVAL", "3600");
    h.add("all", &rx.url("/"), &[]);
    h.sql(&"INSERT INTO events (type, data) VALUES ('ticket.login', '{}');".repeat(23));
    let _server = h.serve();
    assert_eq!(rx.wait_for(23).await.len(), 23);
    assert_eq!(
        h.sql_count("SELECT count(*) FROM events WHERE state = 'queued'"),
        0
    );
}
