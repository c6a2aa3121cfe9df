//! What the appliance's own webhook guide promises, taken verbatim: its
//! example body with `{{…}}` placeholders, its event names, and
//! `backend_data` sent as a string of JSON.

use serde_json::{Value, json};

use crate::utils::{Herald, Receiver, repo_file};

/// The ticket.login sample, as `herald emit` reads it on stdin, with its
/// data changed by `edit`.
fn login_event(edit: impl FnOnce(&mut Value)) -> String {
    let text = std::fs::read_to_string(repo_file("templates/samples/ticket.login.json")).unwrap();
    let mut event: Value = serde_json::from_str(&text).unwrap();
    edit(&mut event);
    event.to_string()
}

/// The guide's example body, pasted exactly as printed (`{{…}}`, tabs,
/// trailing spaces, "volume_limit" twice), sends the same JSON as the
/// `<<…>>` preset; saving it warns about the key written twice.
#[tokio::test(flavor = "multi_thread")]
async fn the_guides_example_body_pasted_verbatim_sends_what_the_preset_sends() {
    let rx = Receiver::start().await;
    let h = Herald::new();
    let guide = repo_file("tests/data/iacbox-guide-example.txt");
    let out = h.cli(&[
        "webhook",
        "add",
        "--name",
        "guide",
        "--url",
        &rx.url("/guide"),
        "--events",
        "ticket.*",
        "--body-file",
        guide.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let warnings = String::from_utf8_lossy(&out.stderr);
    assert!(
        warnings.contains(r#"the body has the key "volume_limit" more than once"#),
        "{warnings}"
    );
    assert!(!warnings.contains("no known event carries"), "{warnings}");
    let preset = repo_file("templates/presets/iacbox-example.json.tmpl");
    h.add_webhook(&[
        "--name",
        "preset",
        "--url",
        &rx.url("/preset"),
        "--events",
        "ticket.*",
        "--body-file",
        preset.to_str().unwrap(),
    ]);
    let _server = h.serve();
    h.ok_stdin(&["emit"], &login_event(|_| {}));
    let got = rx.wait_for(2).await;
    let body = |path: &str| got.iter().find(|r| r.uri == path).unwrap().body.clone();
    let (from_guide, from_preset) = (body("/guide"), body("/preset"));
    assert!(!from_guide.contains("{{"), "{from_guide}");
    assert_eq!(
        from_guide.matches("\"volume_limit\"").count(),
        2,
        "sent as written"
    );
    let (a, b): (Value, Value) = (
        serde_json::from_str(&from_guide).unwrap(),
        serde_json::from_str(&from_preset).unwrap(),
    );
    assert_eq!(a, b);
    assert_eq!(a["id"], "0b8c8a4e-6f2d-4c1e-9a57-3f1d2b9e7c10");
    assert_eq!(a["room_number"], "214");
    assert_eq!(a["volume_limit"], "5368709120");
}

/// The guide's names (`ticket.logged_in`, `ticket.logged_out.limit_exceeded`)
/// and herald's (`ticket.login`, `ticket.logout.limit_exceeded`) are one: a
/// webhook subscribed to either gets events queued under either. A pattern
/// no known type matches is kept, with a warning.
#[tokio::test(flavor = "multi_thread")]
async fn the_guides_event_names_are_aliases_of_heralds() {
    let rx = Receiver::start().await;
    let h = Herald::new();
    let body = [
        "--body",
        r#"{"type": "<<event.type>>", "ticket": "<<event.ticket_id>>"}"#,
    ];
    let add = |name: &str, events: &str| {
        let url = rx.url(&format!("/{name}"));
        let mut args = vec!["--name", name, "--url", &url, "--events", events];
        args.extend_from_slice(&body);
        h.add_webhook(&args);
    };
    add("guide", "ticket.logged_in,ticket.logged_out.limit_exceeded");
    add("herald", "ticket.login,ticket.logout.limit_exceeded");
    let custom = h.cli(&[
        "webhook",
        "add",
        "--name",
        "fleet",
        "--url",
        &rx.url("/fleet"),
        "--events",
        "vehicle.created",
    ]);
    assert!(custom.status.success(), "{custom:?}");
    assert!(
        String::from_utf8_lossy(&custom.stderr).contains(
            r#"the event pattern "vehicle.created" matches none of the types herald knows"#
        ),
        "{custom:?}"
    );
    let _server = h.serve();
    for (kind, ticket) in [
        ("ticket.login", "T-1"),
        ("ticket.logged_in", "T-2"),
        ("ticket.logout.limit_exceeded", "T-3"),
        ("ticket.logged_out.limit_exceeded", "T-4"),
        ("ticket.logout", "T-5"),
    ] {
        h.ok(&["emit", kind, "--ticket", ticket]);
    }
    let got = rx.wait_for(8).await;
    for hook in ["/guide", "/herald"] {
        let mut tickets: Vec<String> = got
            .iter()
            .filter(|r| r.uri == hook)
            .map(|r| r.json()["ticket"].as_str().unwrap().to_owned())
            .collect();
        tickets.sort();
        assert_eq!(tickets, ["T-1", "T-2", "T-3", "T-4"], "{hook}");
    }
    // Each event keeps the type it was queued under.
    let t2 = got
        .iter()
        .find(|r| r.uri == "/herald" && r.json()["ticket"] == "T-2")
        .unwrap();
    assert_eq!(t2.json()["type"], "ticket.logged_in");
}

/// `backend_data` as the guide types it — a string holding JSON — is read
/// into by `<<backend_data.pms.room>>`, as if it were the object.
#[tokio::test(flavor = "multi_thread")]
async fn backend_data_sent_as_a_json_string_is_read_into() {
    let rx = Receiver::start().await;
    let h = Herald::new();
    let preset = repo_file("templates/presets/iacbox-example.json.tmpl");
    h.add_webhook(&[
        "--name",
        "pms",
        "--url",
        &rx.url("/pms"),
        "--events",
        "ticket.*",
        "--body-file",
        preset.to_str().unwrap(),
    ]);
    h.add_webhook(&[
        "--name",
        "whole",
        "--url",
        &rx.url("/whole"),
        "--events",
        "ticket.*",
        "--body",
        r#"{"backend_data": <<backend_data>>}"#,
    ]);
    let _server = h.serve();
    let as_string = json!({"pms": {"room": "305", "name": "Doe"}}).to_string();
    h.ok_stdin(
        &["emit"],
        &login_event(|e| e["data"]["backend_data"] = json!(as_string)),
    );
    let got = rx.wait_for(2).await;
    let pms = got.iter().find(|r| r.uri == "/pms").unwrap().json();
    assert_eq!(pms["room_number"], "305");
    // Written whole, it stays the string it came as.
    let whole = got.iter().find(|r| r.uri == "/whole").unwrap().json();
    assert_eq!(whole["backend_data"], json!(as_string));
}

/// A test send takes any type: a known one (or a guide alias) is sent with
/// its sample, any other with a generic sample of that type; without
/// `--type` the webhook's own patterns choose; CLI and API say which sample
/// was used.
#[tokio::test(flavor = "multi_thread")]
async fn test_sends_take_any_type_and_say_which_sample_they_used() {
    let rx = Receiver::start().await;
    let h = Herald::new();
    let body = [
        "--body",
        r#"{"type": "<<event.type>>", "room": "<<backend_data.pms.room>>"}"#,
    ];
    let mut args = vec!["--name", "fleet", "--url", "", "--events", "vehicle.*"];
    let url = rx.url("/fleet");
    args[3] = &url;
    args.extend_from_slice(&body);
    let fleet = h.add_webhook(&args).to_string();
    let url = rx.url("/backup");
    let mut args = vec![
        "--name",
        "backup",
        "--url",
        &url,
        "--events",
        "system.backup.*",
    ];
    args.extend_from_slice(&body);
    let backup = h.add_webhook(&args).to_string();

    let out = h.ok(&["test", &fleet, "--type", "vehicle.created"]);
    assert!(out.starts_with("delivered vehicle.created event"), "{out}");
    assert!(
        out.contains("(sample: a generic sample (herald has none for vehicle.created))"),
        "{out}"
    );
    let out = h.ok(&["test", &fleet]);
    assert!(out.starts_with("delivered vehicle.test event"), "{out}");
    let out = h.ok(&["test", &backup]);
    assert!(
        out.starts_with("delivered system.backup.started event"),
        "{out}"
    );
    assert!(
        out.contains("(sample: templates/samples/system.backup.started.json)"),
        "{out}"
    );
    let out = h.ok(&["test", &backup, "--type", "ticket.logged_in", "--json"]);
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["event_type"], "ticket.logged_in");
    assert_eq!(report["sample"], "templates/samples/ticket.login.json");

    let server = h.serve();
    let (status, report) = server
        .send(
            reqwest::Method::POST,
            server.url(&format!("/api/v1/webhooks/{fleet}/test")),
            None,
        )
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["event_type"], "vehicle.test");
    assert!(
        report["sample"].as_str().unwrap().contains("generic"),
        "{report}"
    );

    let got = rx.wait_for(5).await;
    let types: Vec<String> = got
        .iter()
        .map(|r| r.json()["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        types,
        [
            "vehicle.created",
            "vehicle.test",
            "system.backup.started",
            "ticket.logged_in",
            "vehicle.test"
        ]
    );
    // The alias got the login sample's data; the generic sample has none of it.
    assert_eq!(got[3].json()["room"], "214");
    assert_eq!(got[0].json()["room"], "");
}

/// The global switch (the guide's "enable the webhooks feature"): with
/// `delivery.enabled = false` events are queued and routed but nothing is
/// sent, and every page says so; turned on in General settings, what
/// waited is delivered in order, without a restart.
#[tokio::test(flavor = "multi_thread")]
async fn the_global_switch_holds_every_delivery_until_it_is_turned_on() {
    let mut h = Herald::new();
    h.set_env("HERALD_DELIVERY_ENABLED", "false");
    let rx = Receiver::start().await;
    h.add(
        "w",
        &rx.url("/"),
        &[
            "--ordered",
            "--body",
            r#"{"ticket": "<<event.ticket_id>>"}"#,
        ],
    );
    let server = h.serve();
    for n in 1..=3 {
        h.ok(&["emit", "ticket.login", "--ticket", &format!("T-{n}")]);
    }
    h.wait_sql("SELECT count(*) FROM deliveries WHERE state = 'pending'", 3);
    // Bounded look for a send that must not happen.
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    assert!(rx.received().is_empty(), "sent while sending is off");
    let web = crate::web::WebSession::login(&server, &crate::web::initial_password(&h)).await;
    let (_, page) = web.get("/webhooks").await;
    assert!(page.contains(r#"id="sending-off""#), "{page}");
    let (_, settings) = web.get("/settings").await;
    assert!(settings.contains("delivery.enabled"), "{settings}");
    let fields = [
        ("delivery.enabled", "true"),
        ("router.read_interval", "0.2"),
        ("cleanup.schedule", "0 0 * * * *"),
        ("cleanup.retention_days", "7"),
        ("delivery.pause_after", "86400"),
        ("alerts.after", "300"),
        ("alerts.interval", "3600"),
    ];
    let r = web.post("/settings", &fields, true).await;
    assert_eq!(r.status(), 303);
    let got = rx.wait_for(3).await;
    let tickets: Vec<Value> = got.iter().map(|r| r.json()["ticket"].clone()).collect();
    assert_eq!(tickets, [json!("T-1"), json!("T-2"), json!("T-3")]);
    let (_, page) = web.get("/webhooks").await;
    assert!(!page.contains(r#"id="sending-off""#));
}

/// Other products' create calls work as they are: RCManager's
/// `{url, events, description}` (no name: named after the host), and
/// LubeLogger's `discord://host/path` (sent as https with the Discord
/// preset, and the save says so); the CLI takes `--preset NAME`.
#[tokio::test(flavor = "multi_thread")]
async fn other_products_create_calls_work_as_they_are() {
    use reqwest::Method as M;
    let h = Herald::new();
    let s = h.serve();
    let (status, created) = s
        .send(
            M::POST,
            s.url("/api/v1/webhooks"),
            Some(
                &json!({"url": "http://rc.example.test:8080/hook", "events": ["ticket.*"],
                        "description": "RCManager: guest check-ins"})
                .to_string(),
            ),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["webhook"]["id"].as_i64().unwrap();
    let (_, got) = s
        .send(M::GET, s.url(&format!("/api/v1/webhooks/{id}")), None)
        .await;
    assert_eq!(got["name"], "rc.example.test");
    assert_eq!(got["description"], "RCManager: guest check-ins");

    let (status, discord) = s
        .send(
            M::POST,
            s.url("/api/v1/webhooks"),
            Some(&json!({"url": "discord://discord.example.test/api/webhooks/1/tok", "events": ["*"]}).to_string()),
        )
        .await;
    assert_eq!(status, 201, "{discord}");
    let w = &discord["webhook"];
    assert_eq!(w["url"], "https://discord.example.test/api/webhooks/1/tok");
    assert_eq!(w["name"], "discord.example.test");
    assert!(
        w["body_template"]
            .as_str()
            .unwrap()
            .contains("allowed_mentions"),
        "{w}"
    );
    assert!(
        discord["warnings"].as_array().unwrap().iter().any(|m| m
            .as_str()
            .unwrap()
            .contains("discord:// URL is sent as https://discord.example.test")),
        "{discord}"
    );

    let out = h.cli(&[
        "webhook",
        "add",
        "--url",
        "http://127.0.0.1:9/slack",
        "--events",
        "herald.*",
        "--preset",
        "slack",
        "--description",
        "ops channel",
    ]);
    assert!(out.status.success(), "{out:?}");
    let list: Value = serde_json::from_str(&h.ok(&["webhook", "list", "--json"])).unwrap();
    let slack = list
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["url"] == "http://127.0.0.1:9/slack")
        .unwrap();
    assert_eq!(slack["name"], "127.0.0.1");
    assert_eq!(slack["description"], "ops channel");
    assert!(
        slack["body_template"]
            .as_str()
            .unwrap()
            .contains("\"blocks\"")
    );
    let bad = h.cli(&[
        "webhook",
        "add",
        "--url",
        "http://127.0.0.1:9/",
        "--events",
        "*",
        "--preset",
        "teams",
    ]);
    assert_eq!(bad.status.code(), Some(2), "{bad:?}");
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("no preset \"teams\"; the presets are"),
        "{bad:?}"
    );
}
