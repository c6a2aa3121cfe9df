//! What an operator relies on: systemd's notify protocol (a datagram socket
//! the test listens on stands in for systemd), and JSON log lines.

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use crate::utils::{Herald, PATIENCE};

/// Datagrams received until `want` is among them (or PATIENCE passes).
fn until(socket: &UnixDatagram, want: &str, seen: &mut Vec<String>) {
    let deadline = Instant::now() + PATIENCE;
    let mut buf = [0u8; 512];
    while !seen.iter().any(|m| m == want) {
        assert!(Instant::now() < deadline, "no {want} in {seen:?}");
        if let Ok(n) = socket.recv(&mut buf) {
            seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
}

/// READY=1 once it serves, WATCHDOG=1 while the delivery loop turns,
/// STOPPING=1 at SIGTERM; without NOTIFY_SOCKET it says nothing (every
/// other test).
#[test]
fn herald_tells_systemd_it_is_ready_alive_and_stopping() {
    let mut h = Herald::new();
    let path = h.dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    h.set_env("NOTIFY_SOCKET", &path.display().to_string());
    h.set_env("WATCHDOG_USEC", "3000000");
    let s = h.serve();
    let mut seen = Vec::new();
    until(&socket, "READY=1", &mut seen);
    assert_eq!(seen[0], "READY=1", "ready comes first: {seen:?}");
    // Every half interval (1.5 s) while the loop turns (it does at least
    // once a second): at least two more in 3.5 s.
    let since = Instant::now();
    let mut pings = 0;
    let mut buf = [0u8; 512];
    while since.elapsed() < Duration::from_millis(3500) {
        if let Ok(n) = socket.recv(&mut buf) {
            assert_eq!(&buf[..n], b"WATCHDOG=1");
            pings += 1;
        }
    }
    assert!(pings >= 2, "{pings} watchdog pings in 3.5 s");
    let log = s.log();
    let status = s.terminate();
    assert!(status.success(), "{status:?}\n{log}");
    until(&socket, "STOPPING=1", &mut seen);
}

/// A `NOTIFY_SOCKET` nobody listens on is said once in the log; herald
/// serves and delivers all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notify_socket_nobody_listens_on_does_not_stop_herald() {
    let mut h = Herald::new();
    let path = h.dir.path().join("nobody.sock");
    h.set_env("NOTIFY_SOCKET", &path.display().to_string());
    let rx = crate::utils::Receiver::start().await;
    h.add("pms", &rx.url("/"), &[]);
    let s = h.serve();
    h.ok(&["emit", "ticket.login"]);
    rx.wait_for(1).await;
    assert!(s.log().contains("cannot tell systemd"), "{}", s.log());
    assert!(s.terminate().success());
}

/// `log.format = "json"`: every line herald writes is one JSON object with
/// a timestamp, a level and the message; a bad value is refused.
#[test]
fn json_logs_are_one_object_per_line() {
    use std::io::{BufRead, BufReader};
    let mut h = Herald::new();
    h.set_env("HERALD_LOG_FORMAT", "json");
    let mut child = h
        .command()
        .arg("serve")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = Vec::new();
    for line in BufReader::new(stderr).lines() {
        let line = line.unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v["timestamp"].is_string() && v["level"].is_string(), "{v}");
        let ready = v["fields"]["message"] == "herald ready";
        lines.push(v);
        if ready {
            break;
        }
    }
    let ready = lines.last().unwrap();
    assert!(
        ready["fields"]["listen"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    let _ = child.kill();
    let _ = child.wait();
    h.set_env("HERALD_LOG_FORMAT", "xml");
    let out = h.cli(&["check-config"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("log.format = xml"));
}

/// Runs a Python `script` with `input` on its standard input (the tests'
/// independent checkers: `pip install -r tests/requirements.txt`).
fn python(script: &str, input: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = std::process::Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 (pip install -r tests/requirements.txt)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// A sample's name and sorted labels.
type SampleKey = (String, Vec<(String, String)>);
/// Samples by name and sorted labels.
type Samples = std::collections::HashMap<SampleKey, f64>;

/// `/metrics` text read by Python's prometheus_client parser (an
/// independent implementation of the format): `(sample name, labels) →
/// value`.
fn parse_metrics(text: &str) -> Samples {
    let script = "import sys, json\n\
        from prometheus_client.parser import text_string_to_metric_families\n\
        out = []\n\
        for f in text_string_to_metric_families(sys.stdin.read()):\n\
        \x20   for s in f.samples:\n\
        \x20       out.append([[s.name, sorted(s.labels.items())], s.value])\n\
        print(json.dumps(out))\n";
    let out = python(script, text);
    assert!(
        out.status.success(),
        "the parser refused it: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let samples: Vec<(SampleKey, f64)> = serde_json::from_slice(&out.stdout).unwrap();
    samples.into_iter().collect()
}

fn sample(m: &Samples, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut labels: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    labels.sort();
    *m.get(&(name.to_owned(), labels.clone()))
        .unwrap_or_else(|| panic!("no {name}{labels:?} in {:?}", m.keys().collect::<Vec<_>>()))
}

/// Counters move by exactly the deliveries made, by source, webhook and
/// outcome; gauges say what waits; `/metrics` needs a key of any scope.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_exactly_what_happened() {
    let h = Herald::new();
    let ok = crate::utils::Receiver::start().await;
    let failing = crate::utils::Receiver::start().await;
    failing.set_status(500);
    let w_ok = h.add("pms \"main\"", &ok.url("/"), &[]);
    let w_bad = h.add("broken", &failing.url("/"), &["--retry", "once"]);
    let s = h.serve();
    let ingest = crate::utils::bearer_client(&h.api_key("ingest"));
    for _ in 0..3 {
        let r = ingest
            .post(s.url("/api/v1/events"))
            .body(r#"{"type": "ticket.login"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
    }
    h.ok(&["emit", "system.start"]);
    h.ok(&["emit", "system.start"]);
    h.sql("INSERT INTO events (type) VALUES ('ticket.logout')");
    h.wait_log(&["--webhook", &w_ok.to_string()], 6);
    h.wait_log(&["--webhook", &w_bad.to_string()], 6);
    // No key: refused; an ingest key is enough.
    let r = reqwest::get(s.url("/metrics")).await.unwrap();
    assert_eq!(r.status(), 401);
    let r = crate::utils::bearer_client("hk_unknown")
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = ingest.get(s.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let m = parse_metrics(&r.text().await.unwrap());
    let (ok_id, bad_id) = (w_ok.to_string(), w_bad.to_string());
    assert_eq!(
        sample(&m, "herald_events_ingested_total", &[("source", "api")]),
        3.0
    );
    assert_eq!(
        sample(&m, "herald_events_ingested_total", &[("source", "cli")]),
        2.0
    );
    assert_eq!(
        sample(&m, "herald_events_ingested_total", &[("source", "sql")]),
        1.0
    );
    assert_eq!(sample(&m, "herald_events_routed_total", &[]), 6.0);
    assert_eq!(
        sample(
            &m,
            "herald_deliveries_total",
            &[("webhook", &ok_id), ("outcome", "delivered")]
        ),
        6.0
    );
    assert_eq!(
        sample(
            &m,
            "herald_deliveries_total",
            &[("webhook", &bad_id), ("outcome", "failed")]
        ),
        6.0
    );
    assert_eq!(
        sample(
            &m,
            "herald_delivery_duration_seconds_count",
            &[("webhook", &ok_id)]
        ),
        6.0
    );
    assert_eq!(
        sample(
            &m,
            "herald_delivery_duration_seconds_bucket",
            &[("webhook", &ok_id), ("le", "+Inf")]
        ),
        6.0
    );
    assert_eq!(sample(&m, "herald_queue_pending", &[]), 0.0);
    assert_eq!(sample(&m, "herald_events_queued", &[]), 0.0);
    assert_eq!(sample(&m, "herald_oldest_pending_seconds", &[]), 0.0);
    assert_eq!(
        sample(&m, "herald_webhook_paused", &[("webhook", &ok_id)]),
        0.0
    );
    assert_eq!(
        sample(
            &m,
            "herald_webhook_info",
            &[("webhook", &ok_id), ("name", "pms \"main\"")]
        ),
        1.0
    );
    assert_eq!(sample(&m, "herald_stream_subscribers", &[]), 0.0);
    assert!(
        m.keys()
            .all(|(_, labels)| labels.iter().all(|(_, v)| !v.contains("127.0.0.1"))),
        "a URL in a label"
    );
    // Two more: the counters move by exactly two.
    for _ in 0..2 {
        ingest
            .post(s.url("/api/v1/events"))
            .body(r#"{"type": "ticket.login"}"#)
            .send()
            .await
            .unwrap();
    }
    h.wait_log(&["--webhook", &w_ok.to_string()], 8);
    h.wait_log(&["--webhook", &w_bad.to_string()], 8);
    let m = parse_metrics(&crate::utils::get_text(&ingest, s.url("/metrics")).await);
    assert_eq!(
        sample(&m, "herald_events_ingested_total", &[("source", "api")]),
        5.0
    );
    assert_eq!(
        sample(
            &m,
            "herald_deliveries_total",
            &[("webhook", &ok_id), ("outcome", "delivered")]
        ),
        8.0
    );
    assert_eq!(
        sample(
            &m,
            "herald_deliveries_total",
            &[("webhook", &bad_id), ("outcome", "failed")]
        ),
        8.0
    );
}

/// `metrics.public = true` opens `/metrics` without a key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_metrics_need_no_key() {
    let mut h = Herald::new();
    h.set_env("HERALD_METRICS_PUBLIC", "true");
    let s = h.serve();
    let r = reqwest::get(s.url("/metrics")).await.unwrap();
    assert_eq!(r.status(), 200);
    let m = parse_metrics(&r.text().await.unwrap());
    assert_eq!(sample(&m, "herald_queue_pending", &[]), 0.0);
}

/// `herald cleanup --now` shows a running count on a terminal (a pty from
/// `script`) and stays quiet when stderr is not one.
#[test]
fn cleanup_shows_progress_only_on_a_terminal() {
    let mut h = Herald::new();
    h.set_env("HERALD_CLEANUP_BATCH_SIZE", "50");
    let old = |n: usize| {
        let rows: Vec<String> = (0..n)
            .map(|_| "('2020-01-01T00:00:00.000Z', 'delivered', 'u', 1)".to_owned())
            .collect();
        format!(
            "INSERT INTO log (at, outcome, event_uuid, webhook_id) VALUES {};",
            rows.join(", ")
        )
    };
    // The database exists once a command has made it.
    h.api_key("read");
    h.sql(&old(3000));
    let quiet = h.cli(&["cleanup", "--now"]);
    assert!(quiet.status.success());
    let stderr = String::from_utf8_lossy(&quiet.stderr);
    assert!(!stderr.contains("deleting"), "progress on a pipe: {stderr}");
    assert!(String::from_utf8_lossy(&quiet.stdout).contains("deleted 3000 log entries"));
    h.sql(&old(3000));
    let line = format!("{} cleanup --now", env!("CARGO_BIN_EXE_herald"));
    let on_tty = std::process::Command::new("script")
        .args(["-q", "-e", "-c", &line, "/dev/null"])
        .current_dir(h.dir.path())
        .envs(h.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("HERALD_LOG", "warn")
        .output()
        .expect("script (util-linux)");
    let shown = String::from_utf8_lossy(&on_tty.stdout);
    assert!(on_tty.status.success(), "{shown}");
    assert!(
        shown.contains("deleting: "),
        "no progress on a terminal: {shown}"
    );
    assert!(shown.contains("deleted 3000 log entries"), "{shown}");
}

/// `GET /api/v1/openapi.json` is valid OpenAPI 3.1 by an independent
/// validator (Python's openapi-spec-validator); every operation it names is
/// served by the router (none answers "no such route" or 405), and it names
/// exactly the `/api/v1` routes of the README's route table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_is_valid_and_names_every_route() {
    let h = Herald::new();
    let s = h.serve();
    let (st, doc) = s
        .send(reqwest::Method::GET, s.url("/api/v1/openapi.json"), None)
        .await;
    assert_eq!(st, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let out = python(
        "import sys, json\nfrom openapi_spec_validator import validate\nvalidate(json.load(sys.stdin))\nprint('valid')",
        &doc.to_string(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Every documented operation is served.
    let mut documented = std::collections::BTreeSet::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            let method = method.to_uppercase();
            documented.insert(format!("{method} {path}"));
            let url = s.url(&path.replace("{id}", "999999"));
            let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
            let (st, body) = s.send(m, url, Some("{}")).await;
            assert_ne!(st, 405, "{method} {path}: {body}");
            assert_ne!(body["error"], "no such route", "{method} {path}");
            // Errors have the documented shape.
            if st >= 400 {
                assert!(body["error"].is_string(), "{method} {path}: {body}");
            }
        }
        // Each operation names its responses and its security.
        for op in ops.as_object().unwrap().values() {
            assert!(
                op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{path}"
            );
        }
    }
    // And the README's table names the same /api/v1 routes.
    let readme = std::fs::read_to_string(crate::utils::repo_file("README.md")).unwrap();
    let table = &readme[readme.find("#### Routes").unwrap()..];
    let table = &table[..table.find("\n\n#").unwrap_or(table.len())];
    let mut in_readme = std::collections::BTreeSet::new();
    for line in table.lines().filter(|l| l.starts_with("| `")) {
        let first_cell = line.split(" | ").next().unwrap();
        for part in first_cell.split('`').skip(1).step_by(2) {
            if part.contains(" /api/v1/") {
                in_readme.insert(part.to_owned());
            }
        }
    }
    assert_eq!(
        documented, in_readme,
        "the document and the README's route table differ"
    );
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

/// `herald retry --wait` queues deliveries again and follows them until the
/// running herald has sent them all; quiet on a pipe but for the outcome.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_waits_for_the_replayed_deliveries() {
    let h = Herald::new();
    let rx = crate::utils::Receiver::start().await;
    let w = h.add("pms", &rx.url("/"), &[]);
    let _s = h.serve();
    for _ in 0..30 {
        h.ok(&["emit", "ticket.login"]);
    }
    rx.wait_for(30).await;
    h.wait_sql(
        "SELECT count(*) FROM deliveries WHERE state = 'delivered'",
        30,
    );
    let id = w.to_string();
    let out = tokio::task::spawn_blocking(move || h.cli(&["retry", "--webhook", &id, "--wait"]))
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("queued 30 deliveries again"), "{stdout}");
    assert!(stdout.contains("sent: 30 delivered, 0 failed"), "{stdout}");
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("sent ("),
        "a bar on a pipe"
    );
    assert_eq!(rx.received().len(), 60);
}

/// `herald retry --wait` exits 1 when replayed deliveries fail for good,
/// and says how many.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_wait_exits_1_when_deliveries_fail() {
    let h = Herald::new();
    let rx = crate::utils::Receiver::start().await;
    rx.set_status(500);
    let w = h.add("pms", &rx.url("/"), &["--retry", "once"]);
    let _s = h.serve();
    for _ in 0..3 {
        h.ok(&["emit", "ticket.login"]);
    }
    h.wait_sql("SELECT count(*) FROM deliveries WHERE state = 'failed'", 3);
    let id = w.to_string();
    let out = tokio::task::spawn_blocking(move || h.cli(&["retry", "--webhook", &id, "--wait"]))
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("sent: 0 delivered, 3 failed"), "{stdout}");
}
