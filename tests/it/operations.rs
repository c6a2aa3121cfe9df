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
