//! The command line: webhook management, emit, config checks, cleanup.

use crate::utils::*;

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn webhook_commands_manage_webhooks() {
    let h = Herald::new();
    let id = h.add_webhook(&[
        "--name",
        "pms",
        "--url",
        "http://127.0.0.1:9/x",
        "--events",
        "ticket.login,ticket.logout",
        "--header",
        "X-A: 1",
        "--timeout",
        "2.5",
    ]);
    let shown: serde_json::Value =
        serde_json::from_str(&h.ok(&["webhook", "show", &id.to_string(), "--json"])).unwrap();
    assert_eq!(
        shown["events"],
        serde_json::json!(["ticket.login", "ticket.logout"])
    );
    assert_eq!(shown["timeout_ms"], 2500);
    assert_eq!(shown["headers"], "X-A: 1");
    assert!(
        h.ok(&["webhook", "show", &id.to_string()])
            .contains("name:        pms")
    );

    h.ok(&[
        "webhook",
        "edit",
        &id.to_string(),
        "--method",
        "get",
        "--log-bodies",
    ]);
    let shown: serde_json::Value =
        serde_json::from_str(&h.ok(&["webhook", "show", &id.to_string(), "--json"])).unwrap();
    assert_eq!(shown["method"], "GET");
    assert_eq!(shown["log_bodies"], true);
    assert_eq!(shown["name"], "pms", "fields not given keep their value");
    h.ok(&["webhook", "edit", &id.to_string(), "--log-bodies", "false"]);

    let copy_out = h.ok(&["webhook", "copy", &id.to_string(), "--name", "pms-2"]);
    assert!(copy_out.contains("(pms-2)"), "{copy_out}");
    h.ok(&["webhook", "disable", &id.to_string()]);
    let long = format!("http://127.0.0.1:9/{}", "very-long-path/".repeat(6));
    let long_id = h.add("a much longer name than the others", &long, &[]);
    let list = h.ok(&["webhook", "list"]);
    assert!(
        list.contains("disabled") && list.contains("pms-2"),
        "{list}"
    );
    // Columns line up whatever the lengths: each row's URL starts under
    // the header's URL.
    let lines: Vec<&str> = list.lines().collect();
    let url_at = lines[0].find("URL").expect("a header row");
    for l in &lines[1..] {
        assert!(l[url_at..].starts_with("http://"), "{list}");
    }
    h.sql(&format!("DELETE FROM webhooks WHERE id = {long_id}"));

    // Refusals name the field and exit 2, storing nothing.
    let out = h.cli(&[
        "webhook",
        "add",
        "--name",
        "bad",
        "--url",
        "http://127.0.0.1:9/",
        "--events",
        "*",
        "--body",
        "{\"a\": \"<<x\"}",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("body_template: line 1, column"),
        "{}",
        stderr(&out)
    );
    let out = h.cli(&["webhook", "edit", &id.to_string(), "--url", "ftp://x/"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("url:"), "{}", stderr(&out));
    let out = h.cli(&[
        "webhook",
        "add",
        "--name",
        "no-events",
        "--url",
        "http://127.0.0.1:9/",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("events: is required"),
        "{}",
        stderr(&out)
    );
    let out = h.cli(&["webhook", "show", "999"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("webhook 999 not found"));
    assert_eq!(h.sql_count("SELECT count(*) FROM webhooks"), 2);

    // Warnings do not block saving.
    let out = h.cli(&[
        "webhook",
        "add",
        "--name",
        "typo",
        "--url",
        "http://127.0.0.1:9/",
        "--events",
        "*",
        "--body",
        "{\"r\": \"<<roomnumber>>\"}",
    ]);
    assert!(out.status.success());
    assert!(
        stderr(&out).contains("warning: no known event carries a field named \"roomnumber\""),
        "{}",
        stderr(&out)
    );

    h.ok(&["webhook", "rm", &id.to_string()]);
    assert_eq!(h.sql_count("SELECT count(*) FROM webhooks"), 2);
}

#[test]
fn emit_accepts_flags_files_and_stdin_and_refuses_bad_input() {
    let h = Herald::new();
    let uuid = h.ok(&[
        "emit",
        "ticket.login",
        "--ticket",
        "T-1",
        "--data",
        r#"{"volume_used": 3}"#,
    ]);
    assert!(uuid::Uuid::parse_str(uuid.trim()).is_ok());
    let f = write_file(&h, "d.json", r#"{"client_ip": "10.0.0.1"}"#);
    h.ok(&["emit", "ticket.logout", "--data-file", &f]);
    let sample = std::fs::read_to_string(repo_file("templates/samples/ticket.login.json")).unwrap();
    let out = h.cli_stdin(&["emit"], Some(&sample));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "0b8c8a4e-6f2d-4c1e-9a57-3f1d2b9e7c10"
    );
    let room = h.sql_json_text("data", "backend_data.pms.room");
    assert_eq!(
        h.sql_count(&format!(
            "SELECT count(*) FROM events WHERE ticket_id = 'T-100234' AND {room} = '214'"
        )),
        1
    );

    for (args, stdin, words) in [
        (
            vec!["emit", "ticket.login", "--data", "[1]"],
            None,
            "must be a JSON object",
        ),
        (
            vec!["emit", "ticket.login", "--data", "{oops"],
            None,
            "--data is not valid JSON",
        ),
        (vec!["emit", "Bad Type"], None, "not valid"),
        (
            vec!["emit"],
            Some("not json"),
            "stdin is not an event as JSON",
        ),
        (vec!["emit"], Some(&sample[..]), "already exists"),
    ] {
        let out = h.cli_stdin(&args, stdin);
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr(&out).contains(words), "{args:?}: {}", stderr(&out));
    }
    assert_eq!(h.sql_count("SELECT count(*) FROM events"), 3);
}

/// Arguments, an environment variable to set, and words the error must contain.
type ConfigCase<'a> = (&'a [&'a str], Option<(&'a str, &'a str)>, &'a str);

#[test]
fn check_config_names_what_is_wrong() {
    let h = Herald::new();
    assert!(h.ok(&["check-config"]).contains("configuration is valid"));
    let bad = write_file(&h, "bad.toml", "[router]\nbatch_size = 0\n");
    let bad2 = write_file(&h, "bad2.toml", "[router]\nread_intervall = 1\n");
    let cases: [ConfigCase; 5] = [
        (
            &["--config", &bad, "check-config"],
            None,
            "router.batch_size = 0: must be between 1 and 10000",
        ),
        (
            &["check-config"],
            Some(("HERALD_ROUTER_READ_INTERVAL", "0.01")),
            "router.read_interval = 0.01: must be between 0.1 and 3600",
        ),
        (
            &["--config", &bad2, "serve"],
            None,
            "unknown key `read_intervall` in [router]",
        ),
        (
            &["--config", "/nonexistent/herald.toml", "check-config"],
            None,
            "cannot read config file /nonexistent/herald.toml",
        ),
        (
            &["check-config"],
            Some(("HERALD_ROUTER_SPEED", "1")),
            "HERALD_ROUTER_SPEED is not a herald setting",
        ),
    ];
    for (args, env, words) in cases {
        let mut h2 = Herald::new();
        if let Some((k, v)) = env {
            h2.set_env(k, v);
        }
        let out = h2.cli(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(stderr(&out).contains(words), "{args:?}: {}", stderr(&out));
    }
    let good = write_file(
        &h,
        "good.toml",
        "[router]\nbatch_size = 20\n[cleanup]\nretention_days = 3\n",
    );
    let out = h.ok(&["--config", &good, "check-config"]);
    assert!(
        out.contains("batch_size        = 20") && out.contains("retention_days   = 3"),
        "{out}"
    );
    // The file's read_interval is overridden by the test's environment (0.2 s).
    assert!(out.contains("read_interval     = 200ms"), "{out}");
}

#[test]
fn cleanup_removes_only_what_is_past_retention() {
    let h = Herald::new();
    h.add_webhook(&[
        "--name",
        "w",
        "--url",
        &format!("http://127.0.0.1:{}/", refused_port()),
        "--events",
        "*",
        "--retry",
        "once",
    ]);
    // Four events routed through a real server run (all fail: nothing listens).
    {
        let _s = h.serve();
        for _ in 0..4 {
            h.ok(&["emit", "system.start"]);
        }
        h.wait_log(&[], 4);
    }
    // A fifth, still queued, and a pending delivery for an old event.
    h.ok(&["emit", "system.start"]);
    let old = h.sql_days_ago(8);
    let recent = h.sql_days_ago(6);
    h.sql(&format!(
        "UPDATE log SET at = {old} WHERE id IN (1, 2);
         UPDATE log SET at = {recent} WHERE id = 3;
         UPDATE events SET routed_at = {old} WHERE id IN (1, 2, 3);
         UPDATE events SET routed_at = {recent} WHERE id = 4;
         UPDATE deliveries SET state = 'pending' WHERE event_id = 3;"
    ));
    let out = h.ok(&["cleanup", "--now"]);
    assert!(
        out.contains("deleted 2 log entries and 2 events older than 7 days"),
        "{out}"
    );
    assert_eq!(
        h.sql_count("SELECT count(*) FROM log WHERE id IN (3, 4)"),
        2,
        "log 3 and 4 stay"
    );
    assert_eq!(h.sql_count("SELECT count(*) FROM log"), 2);
    // Event 3 is old but still has a pending delivery; 4 is recent; 5 is queued.
    assert_eq!(
        h.sql_count("SELECT count(*) FROM events WHERE id IN (3, 4, 5)"),
        3
    );
    assert_eq!(h.sql_count("SELECT count(*) FROM events"), 3);
    assert_eq!(
        h.sql_count("SELECT count(*) FROM deliveries"),
        2,
        "deliveries of deleted events go with them"
    );
    let out = h.cli(&["cleanup"]);
    assert!(!out.status.success());
}

#[test]
fn read_only_commands_do_not_create_a_missing_database() {
    let mut h = Herald::new();
    if let Some(port) = h.postgres.as_ref().map(|pg| pg.port()) {
        // PostgreSQL: no file to create; a server that does not answer is
        // a clear error, its password never shown.
        h.postgres.as_ref().unwrap().stop();
        let url = format!("postgres://herald:s3cret@127.0.0.1:{port}/postgres");
        h.set_env("HERALD_DATABASE_URL", &url);
        for args in [&["log"][..], &["webhook", "list"]] {
            let out = h.cli(args);
            // 75 (EX_TEMPFAIL): try again later, as for a locked database.
            assert_eq!(out.status.code(), Some(75), "{args:?}");
            let err = stderr(&out);
            assert!(
                err.contains("cannot be reached") || err.contains("cannot take this now"),
                "{args:?}: {err}"
            );
            assert!(err.contains("herald:****@127.0.0.1"), "{err}");
            assert!(!err.contains("s3cret"), "{err}");
        }
        assert!(!h.db().exists());
        return;
    }
    for args in [
        &["log"][..],
        &["webhook", "list"],
        &["webhook", "show", "1"],
        &["render", "--webhook", "1", "--event", "-"],
    ] {
        let out = h.cli(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            stderr(&out).contains("no such file; herald has not used this database.path yet"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    assert!(!h.db().exists());
}

#[test]
fn the_cleanup_job_runs_on_its_schedule_inside_serve() {
    let mut h = Herald::new();
    // Every second, so the test need not wait an hour.
    h.set_env("HERALD_CLEANUP_SCHEDULE", "* * * * * *");
    h.add_webhook(&[
        "--name",
        "w",
        "--url",
        &format!("http://127.0.0.1:{}/", refused_port()),
        "--events",
        "*",
        "--retry",
        "once",
    ]);
    let _s = h.serve();
    h.ok(&["emit", "system.start"]);
    h.ok(&["emit", "system.start"]);
    h.wait_log(&[], 2);
    let old = h.sql_days_ago(30);
    h.sql(&format!(
        "UPDATE log SET at = {old} WHERE id = 1;
         UPDATE events SET routed_at = {old} WHERE id = 1;"
    ));
    let deadline = std::time::Instant::now() + PATIENCE;
    while h.sql_count("SELECT count(*) FROM log") != 1
        || h.sql_count("SELECT count(*) FROM events") != 1
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the scheduled cleanup did not run"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(h.sql_count("SELECT id FROM log"), 2);
    assert_eq!(h.sql_count("SELECT id FROM events"), 2);
}

#[test]
fn without_ca_certificates_serve_and_test_fail_with_a_clear_error() {
    // A system without CA certificates (Debian without ca-certificates):
    // rustls finds none at the paths it is pointed to.
    let mut h = Herald::new();
    h.set_env("SSL_CERT_FILE", "/nonexistent/ca.pem");
    h.set_env("SSL_CERT_DIR", "/nonexistent");
    let id = h.add("w", "https://127.0.0.1:9/", &[]);
    for args in [vec!["serve"], vec!["test", &id.to_string()]] {
        let out = h.cli(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains("cannot set up the HTTP client")
                && err.contains("ca-certificates")
                && !err.contains("panicked"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn the_packaged_config_file_is_valid() {
    // /etc/herald/herald.toml as the Debian package installs it.
    let h = Herald::new();
    let file = repo_file("packaging/herald.toml");
    let out = h.ok(&["--config", file.to_str().unwrap(), "check-config"]);
    assert!(out.contains("configuration is valid"), "{out}");
    assert!(
        out.contains("server.listen            = 127.0.0.1:0"),
        "{out}"
    );
}

#[test]
fn output_to_a_closed_pipe_ends_quietly() {
    // `herald check-config | head -0`: the reader is gone before herald writes.
    let h = Herald::new();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .arg("check-config")
        .env("HERALD_DATABASE_PATH", h.db())
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.code(), Some(141), "{err}");
}
