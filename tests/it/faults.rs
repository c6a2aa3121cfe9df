//! Faults of the appliance itself: the database's disk fills up, free space
//! falls below the watermark, another process holds the write lock, and
//! herald's own stderr cannot be written. Each test checks the answers
//! producers get, how much herald logs meanwhile, and that every
//! acknowledged event is delivered once the fault is gone.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::utils::{Herald, PATIENCE, Receiver, Server, bearer_client, eventually};

/// A tmpfs of a few MB mounted for one test (an appliance's small data
/// partition), unmounted when dropped. Needs root: tests running as
/// another user skip themselves, saying so; as root (as in CI) a failed
/// mount fails the test.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(mb: u32) -> Option<SmallDisk> {
        if !is_root() {
            eprintln!("SKIPPED: mounting a small tmpfs needs root");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={mb}m,mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .status()
            .expect("run mount");
        assert!(status.success(), "cannot mount a {mb} MB tmpfs as root");
        Some(SmallDisk { dir })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes a filler file until the disk is full, or until only
    /// `leave_kb` are left.
    fn fill(&self, leave_kb: u64) {
        use std::io::Write;
        let mut f = std::fs::File::create(self.path("filler")).unwrap();
        let chunk = vec![0u8; 4096];
        while free_kb(self.dir.path()) > leave_kb + 4 {
            if f.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = f.sync_all();
    }

    fn unfill(&self) {
        std::fs::remove_file(self.path("filler")).unwrap();
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Free KB on the file system holding `dir`, from `df`.
fn free_kb(dir: &Path) -> u64 {
    let out = Command::new("df")
        .args(["-k", "--output=avail"])
        .arg(dir)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .unwrap()
}

/// Posts one event with a 2 KB field; returns the status, `Retry-After`
/// and the answer's JSON. A connection closed without an answer fails the
/// test: that is what the listener must never do.
async fn post_event(
    client: &reqwest::Client,
    server: &Server,
    n: usize,
) -> (u16, Option<String>, Value) {
    let body = json!({"type": "ticket.login", "ticket_id": format!("T-{n}"), "data": {"pad": "x".repeat(2000)}});
    let resp = client
        .post(server.url("/api/v1/events"))
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("event {n}: no answer: {e}"));
    let status = resp.status().as_u16();
    let retry = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, retry, resp.json().await.unwrap_or(Value::Null))
}

/// The uuids of the events every request the receiver got carried.
fn delivered(receiver: &Receiver) -> HashSet<String> {
    receiver
        .received()
        .iter()
        .filter_map(|r| r.headers.get("x-id").cloned())
        .collect()
}

async fn healthz(server: &Server) -> Value {
    reqwest::get(server.url("/healthz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The disk under the database fills up: ingest answers 507 naming the
/// full disk (never 500, never a closed connection), `herald emit` exits 75
/// with the same words, `/healthz` says so, the log says it once instead of
/// once per request — and once space is back, new events are taken and
/// every event acknowledged before, during and after is delivered.
#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_answers_507_logs_once_and_loses_nothing() {
    let Some(disk) = SmallDisk::mount(6) else {
        return;
    };
    let mut h = Herald::new();
    h.set_env(
        "HERALD_DATABASE_PATH",
        &disk.path("herald.db").display().to_string(),
    );
    h.set_env("HERALD_DATABASE_MIN_FREE_MB", "0");
    let receiver = Receiver::start().await;
    h.add(
        "sink",
        &receiver.url("/in"),
        &["--header", "X-Id: <<event.uuid>>"],
    );
    let server = h.serve();
    let client = bearer_client(&server.key);
    let mut acknowledged = HashSet::new();
    for n in 0..5 {
        let (status, _, body) = post_event(&client, &server, n).await;
        assert_eq!(status, 202, "{body}");
        acknowledged.insert(body["uuid"].as_str().unwrap().to_owned());
    }
    disk.fill(0);
    let (mut refused, mut message) = (0, String::new());
    for n in 5..400 {
        let (status, _, body) = post_event(&client, &server, n).await;
        match status {
            202 => {
                acknowledged.insert(body["uuid"].as_str().unwrap().to_owned());
            }
            507 => {
                refused += 1;
                message = body["error"].as_str().unwrap().to_owned();
            }
            other => panic!("event {n}: {other} {body}"),
        }
    }
    assert!(refused > 0, "the full disk refused nothing");
    let db = disk.path("herald.db").display().to_string();
    assert_eq!(message, format!("the disk holding {db} is full"));
    let health = healthz(&server).await;
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(health["storage"]["fault"], "disk_full", "{health}");
    // A small write may still fit now and then (space freed inside the
    // WAL); what fits is kept and must be delivered like the rest.
    let mut emit_refused = None;
    for _ in 0..20 {
        let emit = h.cli(&["emit", "ticket.login", "--ticket", "T-cli"]);
        match emit.status.code() {
            Some(0) => {
                acknowledged.insert(String::from_utf8_lossy(&emit.stdout).trim().to_owned());
            }
            Some(75) => {
                emit_refused = Some(String::from_utf8_lossy(&emit.stderr).into_owned());
                break;
            }
            _ => panic!("herald emit on a full disk: {emit:?}"),
        }
    }
    let emit_refused = emit_refused.expect("herald emit was never refused on a full disk");
    assert!(
        emit_refused.contains(&format!("the disk holding {db} is full")),
        "{emit_refused}"
    );
    // One line when the fault began, at most one from each part that met it
    // (writer, checkpoints, router, deliverer), instead of one per request.
    assert!(refused >= 100, "only {refused} refused");
    let log = server.log();
    let lines = log.lines().filter(|l| l.contains("full")).count();
    assert!(
        lines <= 10,
        "{lines} lines about the full disk for {refused} refused events:\n{log}"
    );

    disk.unfill();
    let mut accepted_again = false;
    for n in 400..600 {
        let (status, _, body) = post_event(&client, &server, n).await;
        if status == 202 {
            acknowledged.insert(body["uuid"].as_str().unwrap().to_owned());
            accepted_again = true;
            break;
        }
        assert_eq!(status, 507, "{body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(accepted_again, "no event taken after space came back");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !acknowledged.is_subset(&delivered(&receiver)) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "acknowledged events were not delivered: {} of {}",
            acknowledged.intersection(&delivered(&receiver)).count(),
            acknowledged.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(healthz(&server).await["status"], "ok");
    assert!(
        server.log().contains("the database can be written again"),
        "{}",
        server.log()
    );
}

/// Below `database.min_free_mb` new events are refused with 507 before the
/// disk is full, `herald.storage.low` reaches a webhook subscribed to it,
/// deliveries of what was taken go on, and once space is back events are
/// taken again and `herald.storage.ok` follows.
#[tokio::test(flavor = "multi_thread")]
async fn below_the_free_space_watermark_events_are_refused_and_an_alert_is_sent() {
    let Some(disk) = SmallDisk::mount(12) else {
        return;
    };
    let mut h = Herald::new();
    h.set_env(
        "HERALD_DATABASE_PATH",
        &disk.path("herald.db").display().to_string(),
    );
    h.set_env("HERALD_DATABASE_MIN_FREE_MB", "5");
    let sink = Receiver::start().await;
    let alerts = Receiver::start().await;
    h.add(
        "sink",
        &sink.url("/in"),
        &["--header", "X-Id: <<event.uuid>>"],
    );
    h.add_webhook(&[
        "--name",
        "ops",
        "--url",
        &alerts.url("/alerts"),
        "--events",
        "herald.storage.*",
        "--body",
        r#"{"type": "<<event.type>>", "min_free_mb": <<min_free_mb>>, "message": "<<message>>"}"#,
    ]);
    let server = h.serve();
    let client = bearer_client(&server.key);
    let (status, _, first) = post_event(&client, &server, 0).await;
    assert_eq!(status, 202, "{first}");
    sink.wait_for(1).await;

    disk.fill(3_000);
    let mut answer = (0, Value::Null);
    for n in 1..200 {
        let (status, _, body) = post_event(&client, &server, n).await;
        if status == 507 {
            answer = (status, body);
            break;
        }
        assert_eq!(status, 202, "{body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(answer.0, 507, "nothing was refused below the watermark");
    let message = answer.1["error"].as_str().unwrap().to_owned();
    assert!(
        message.contains("below database.min_free_mb (5 MB)"),
        "{message}"
    );
    let low = alerts.wait_for(1).await;
    let alert = low[0].json();
    assert_eq!(alert["type"], "herald.storage.low", "{alert}");
    assert_eq!(alert["min_free_mb"], 5, "{alert}");
    assert!(
        alert["message"]
            .as_str()
            .unwrap()
            .contains("below database.min_free_mb"),
        "{alert}"
    );
    let health = healthz(&server).await;
    assert_eq!(health["storage"]["fault"], "low_space", "{health}");

    disk.unfill();
    eventually("events are taken again", || {
        let rt = tokio::runtime::Handle::current();
        let (status, _, _) =
            tokio::task::block_in_place(|| rt.block_on(post_event(&client, &server, 999)));
        status == 202
    });
    let both = alerts.wait_for(2).await;
    assert_eq!(both[1].json()["type"], "herald.storage.ok");
    let taken = h.sql_count("SELECT count(*) FROM events WHERE type = 'ticket.login'");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while (delivered(&sink).len() as i64) < taken {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not every event taken was delivered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Another process (the appliance's own SQL, a shell) holds the write lock
/// past `database.busy_timeout`: ingest answers 503 with `Retry-After` and
/// says who holds what, `herald emit` exits 75; once the lock is released
/// everything acknowledged is delivered.
#[tokio::test(flavor = "multi_thread")]
async fn a_write_lock_held_by_another_process_answers_503_with_retry_after() {
    let mut h = Herald::new();
    h.set_env("HERALD_DATABASE_BUSY_TIMEOUT", "0.2");
    let receiver = Receiver::start().await;
    h.add(
        "sink",
        &receiver.url("/in"),
        &["--header", "X-Id: <<event.uuid>>"],
    );
    let server = h.serve();
    let client = bearer_client(&server.key);
    let (status, _, body) = post_event(&client, &server, 0).await;
    assert_eq!(status, 202, "{body}");
    let mut acknowledged = HashSet::from([body["uuid"].as_str().unwrap().to_owned()]);

    let web = crate::web::WebSession::login(&server, &crate::web::initial_password(&h)).await;
    let holder = rusqlite::Connection::open(h.db()).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let (status, retry, body) = post_event(&client, &server, 1).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(retry.as_deref(), Some("5"));
    let message = body["error"].as_str().unwrap();
    assert!(
        message.starts_with("another process has held the write lock on"),
        "{message}"
    );
    assert!(message.contains("database.busy_timeout"), "{message}");
    for n in 2..12 {
        let (status, _, body) = post_event(&client, &server, n).await;
        assert_eq!(status, 503, "{body}");
    }
    let emit = h.cli(&["emit", "ticket.login", "--ticket", "T-cli"]);
    assert_eq!(emit.status.code(), Some(75), "{emit:?}");
    assert!(
        String::from_utf8_lossy(&emit.stderr).contains("write lock"),
        "{emit:?}"
    );
    // Eleven refused events: one line about the lock (at most one per part
    // of herald that met it), not one per request.
    let lines = server
        .log()
        .lines()
        .filter(|l| l.contains("write lock"))
        .count();
    assert!((1..=5).contains(&lines), "{lines} lines:\n{}", server.log());
    assert_eq!(healthz(&server).await["storage"]["fault"], "locked");
    // Every page of the web admin shows it in a red banner.
    let (status, page) = web.get("/webhooks").await;
    assert_eq!(status, 200);
    assert!(page.contains(r#"class="storage-banner""#), "{page}");
    assert!(
        page.contains("another process has held the write lock"),
        "{page}"
    );
    holder.execute_batch("COMMIT").unwrap();
    drop(holder);

    let (status, _, body) = post_event(&client, &server, 2).await;
    assert_eq!(status, 202, "{body}");
    acknowledged.insert(body["uuid"].as_str().unwrap().to_owned());
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !acknowledged.is_subset(&delivered(&receiver)) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "acknowledged events were not delivered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, page) = web.get("/webhooks").await;
    assert!(
        !page.contains("storage-banner"),
        "the banner stayed after the lock was released"
    );
}

/// `herald serve` whose stdout and stderr cannot be written — a full
/// device (/dev/full answers every write with "no space left") or a pipe
/// nobody reads any more — still answers, takes events and delivers them.
/// (Before, the first log line that failed panicked the request logging
/// it, and its connection was closed unanswered.)
#[tokio::test(flavor = "multi_thread")]
async fn unwritable_stdout_and_stderr_do_not_stop_the_listener() {
    for output in ["full device", "closed pipe"] {
        let h = Herald::new();
        let receiver = Receiver::start().await;
        // A refused endpoint makes herald log on every attempt.
        h.add(
            "sink",
            &receiver.url("/in"),
            &["--header", "X-Id: <<event.uuid>>"],
        );
        h.add(
            "dead",
            &format!("http://127.0.0.1:{}/gone", crate::utils::refused_port()),
            &[],
        );
        let key = h.api_key("admin");
        let port = crate::utils::refused_port();
        let mut c = h.command();
        c.arg("serve")
            .env("HERALD_SERVER_LISTEN", format!("127.0.0.1:{port}"))
            .stdin(Stdio::null());
        let mut child = match output {
            "full device" => {
                let full = || {
                    std::fs::OpenOptions::new()
                        .write(true)
                        .open("/dev/full")
                        .unwrap()
                };
                c.stdout(full()).stderr(full()).spawn().unwrap()
            }
            _ => {
                let mut child = c
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap();
                drop(child.stdout.take());
                drop(child.stderr.take());
                child
            }
        };
        let base = format!("http://127.0.0.1:{port}");
        let client = bearer_client(&key);
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while client.get(format!("{base}/healthz")).send().await.is_err() {
            assert!(
                child.try_wait().unwrap().is_none(),
                "{output}: herald serve exited"
            );
            assert!(
                tokio::time::Instant::now() < deadline,
                "{output}: herald serve never answered"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut uuids = HashSet::new();
        for n in 0..50 {
            let resp = client
                .post(format!("{base}/api/v1/events"))
                .json(&json!({"type": "ticket.login", "ticket_id": format!("T-{n}")}))
                .send()
                .await
                .unwrap_or_else(|e| panic!("{output}: event {n} got no answer: {e}"));
            assert_eq!(resp.status().as_u16(), 202, "{output}");
            let body: Value = resp.json().await.unwrap();
            uuids.insert(body["uuid"].as_str().unwrap().to_owned());
            // A bad request is logged too.
            let bad = client
                .post(format!("{base}/api/v1/events"))
                .body("not json")
                .send()
                .await
                .unwrap_or_else(|e| panic!("{output}: bad request {n} got no answer: {e}"));
            assert_eq!(bad.status().as_u16(), 400, "{output}");
        }
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while !uuids.is_subset(&delivered(&receiver)) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{output}: events not delivered"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "{output}: herald serve exited"
        );
        let _ = child.kill();
        let _ = child.wait();
    }
}
