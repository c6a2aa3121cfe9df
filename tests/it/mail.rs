//! E-mail alerts (`alerts.smtp_*`) against a real SMTP receiver on
//! 127.0.0.1 (aiosmtpd, tests/smtp_receiver.py).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::utils::{Herald, eventually, refused_port, repo_file};

/// The receiver process, killed when dropped.
struct Smtp {
    child: Child,
    port: u16,
    file: std::path::PathBuf,
}

impl Smtp {
    fn start(dir: &std::path::Path) -> Smtp {
        let port = refused_port();
        let file = dir.join("mail.txt");
        let mut child = Command::new("python3")
            .arg(repo_file("tests/smtp_receiver.py"))
            .arg(port.to_string())
            .arg(&file)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(
            line.trim(),
            "ready",
            "the SMTP receiver did not start (pip install -r tests/requirements.txt)"
        );
        Smtp { child, port, file }
    }

    fn mail(&self) -> String {
        std::fs::read_to_string(&self.file).unwrap_or_default()
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A webhook that keeps failing, alerted at once.
fn failing_webhook(h: &mut Herald) {
    h.set_env("HERALD_ALERTS_AFTER", "0");
    h.set_env("HERALD_ALERTS_INTERVAL", "0.5");
    let retry =
        json!({"kind": "fixed", "interval": 0.1, "retries": 1000, "jitter": 0.0}).to_string();
    let url = format!("http://127.0.0.1:{}/", refused_port());
    h.add_webhook(&[
        "--name",
        "hotel PMS",
        "--url",
        &url,
        "--events",
        "ticket.*",
        "--retry",
        &retry,
    ]);
}

/// An alert (a webhook failing) reaches every recipient by e-mail, with
/// the alert's message as subject and body.
#[test]
fn alerts_are_sent_by_e_mail() {
    let mut h = Herald::new();
    let smtp = Smtp::start(h.dir.path());
    failing_webhook(&mut h);
    h.set_env("HERALD_ALERTS_SMTP_HOST", "127.0.0.1");
    h.set_env("HERALD_ALERTS_SMTP_PORT", &smtp.port.to_string());
    h.set_env("HERALD_ALERTS_SMTP_TLS", "none");
    h.set_env("HERALD_ALERTS_SMTP_FROM", "herald@appliance.test");
    h.set_env(
        "HERALD_ALERTS_SMTP_TO",
        "ops@example.test,night@example.test",
    );
    let check = h.ok(&["check-config"]);
    assert!(check.contains("alerts.smtp_host"), "{check}");
    let _server = h.serve();
    h.ok(&["emit", "ticket.login"]);
    eventually("an alert mail", || smtp.mail().contains("===="));
    let mail = smtp.mail();
    assert!(mail.contains("MAIL FROM: herald@appliance.test"), "{mail}");
    assert!(
        mail.contains("RCPT TO: ops@example.test,night@example.test"),
        "{mail}"
    );
    assert!(
        mail.contains("Subject: herald alert: webhook \"hotel PMS\""),
        "{mail}"
    );
    assert!(mail.contains("connection refused"), "{mail}");
}

/// An SMTP server that cannot be reached loses the mail, says so once in
/// the log (not once per alert), and herald goes on alerting by its other
/// paths.
#[test]
fn an_unreachable_smtp_server_is_logged_once_and_changes_nothing_else() {
    let mut h = Herald::new();
    failing_webhook(&mut h);
    h.set_env("HERALD_ALERTS_SMTP_HOST", "127.0.0.1");
    h.set_env("HERALD_ALERTS_SMTP_PORT", &refused_port().to_string());
    h.set_env("HERALD_ALERTS_SMTP_TLS", "none");
    h.set_env("HERALD_ALERTS_SMTP_TO", "ops@example.test");
    let server = h.serve();
    h.ok(&["emit", "ticket.login"]);
    // Several alerts, each in the event log.
    eventually("three alerts in the log", || {
        h.log(&[])
            .iter()
            .filter(|e| e["outcome"] == "alert")
            .count()
            >= 3
    });
    std::thread::sleep(Duration::from_millis(300));
    let log = server.log();
    assert_eq!(
        log.matches("could not be sent by e-mail").count(),
        1,
        "{log}"
    );
}

/// Settings that cannot work are refused at start, naming the key.
#[test]
fn bad_smtp_settings_are_refused() {
    let mut h = Herald::new();
    h.set_env("HERALD_ALERTS_SMTP_HOST", "127.0.0.1");
    let out = h.cli(&["check-config"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("alerts.smtp_to"),
        "{out:?}"
    );
    h.set_env("HERALD_ALERTS_SMTP_TO", "ops@example.test");
    h.set_env("HERALD_ALERTS_SMTP_TLS", "ssl");
    let out = h.cli(&["check-config"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("alerts.smtp_tls"),
        "{out:?}"
    );
    h.set_env("HERALD_ALERTS_SMTP_TLS", "none");
    h.set_env("HERALD_ALERTS_SMTP_FROM", "not an address");
    let out = h.cli(&["check-config"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("alerts.smtp_from"),
        "{out:?}"
    );
}
