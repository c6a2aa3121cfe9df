//! The REST API: webhook management and event ingest, and how it refuses
//! malformed or hostile input without changing anything.

use serde_json::{Value, json};

use crate::utils::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_crud_and_copy() {
    use reqwest::Method as M;
    let h = Herald::new();
    let s = h.serve();
    let (st, created) = s.send(M::POST, s.url("/api/v1/webhooks"), Some(&json!({
        "name": "pms", "url": "http://127.0.0.1:9/in", "events": ["ticket.*"], "method": "PUT",
        "headers": "X-A: 1\nX-B: <<event.type>>", "body_template": "<a><<event.uuid>></a>", "body_mime": "application/xml",
        "log_bodies": true, "timeout_ms": 5000
    }).to_string())).await;
    assert_eq!(st, 201, "{created}");
    let w = &created["webhook"];
    let id = w["id"].as_i64().unwrap();
    assert_eq!(w["method"], "PUT");
    assert_eq!(w["body_mime"], "application/xml");
    assert_eq!(w["events"], json!(["ticket.*"]));
    assert_eq!(w["timeout_ms"], 5000);
    assert_eq!(created["warnings"], json!([]));

    let (st, got) = s
        .send(M::GET, s.url(&format!("/api/v1/webhooks/{id}")), None)
        .await;
    assert_eq!(st, 200);
    assert_eq!(got["name"], "pms");

    // PUT changes only the fields given.
    let (st, upd) = s
        .send(
            M::PUT,
            s.url(&format!("/api/v1/webhooks/{id}")),
            Some(r#"{"name": "pms2", "enabled": false}"#),
        )
        .await;
    assert_eq!(st, 200, "{upd}");
    assert_eq!(upd["webhook"]["name"], "pms2");
    assert_eq!(upd["webhook"]["enabled"], false);
    assert_eq!(upd["webhook"]["method"], "PUT");

    let (st, copy) = s
        .send(M::POST, s.url(&format!("/api/v1/webhooks/{id}/copy")), None)
        .await;
    assert_eq!(st, 201, "{copy}");
    assert_eq!(copy["webhook"]["name"], "pms2 (copy)");
    assert_ne!(copy["webhook"]["id"], id);
    assert_eq!(copy["webhook"]["body_template"], "<a><<event.uuid>></a>");
    let (st, copy2) = s
        .send(
            M::POST,
            s.url(&format!("/api/v1/webhooks/{id}/copy")),
            Some(r#"{"name": "other", "url": "http://127.0.0.1:9/other"}"#),
        )
        .await;
    assert_eq!(st, 201);
    assert_eq!(copy2["webhook"]["url"], "http://127.0.0.1:9/other");

    let (_, list) = s.send(M::GET, s.url("/api/v1/webhooks"), None).await;
    assert_eq!(list.as_array().unwrap().len(), 3);

    let (st, _) = s
        .send(M::DELETE, s.url(&format!("/api/v1/webhooks/{id}")), None)
        .await;
    assert_eq!(st, 204);
    let (st, e) = s
        .send(M::GET, s.url(&format!("/api/v1/webhooks/{id}")), None)
        .await;
    assert_eq!(st, 404);
    assert_eq!(e["error"], format!("webhook {id} not found"));
    let (st, _) = s
        .send(M::DELETE, s.url(&format!("/api/v1/webhooks/{id}")), None)
        .await;
    assert_eq!(st, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_webhooks_are_refused_naming_the_field_and_nothing_is_stored() {
    use reqwest::Method as M;
    let h = Herald::new();
    let s = h.serve();
    let base = json!({"name": "n", "url": "http://127.0.0.1:9/", "events": ["*"]});
    let cases: Vec<(Value, &str, &str)> = vec![
        (json!({"url": "ftp://127.0.0.1/"}), "url", "http"),
        (json!({"url": "http://"}), "url", "not a valid URL"),
        (
            json!({"method": "PATCH"}),
            "method",
            "POST, GET, PUT, DELETE",
        ),
        (json!({"events": []}), "events", "at least one"),
        (json!({"events": ["ticket.**"]}), "events", "not valid"),
        (
            json!({"body_template": "{\n  \"a\": \"<<event.uuid | >>\"\n}"}),
            "body_template",
            "line 2, column",
        ),
        (
            json!({"body_template": "{\"a\": <<event.uuid>>"}),
            "body_template",
            "not valid JSON",
        ),
        (
            json!({"body_template": "<a><b></a>", "body_mime": "application/xml"}),
            "body_template",
            "XML",
        ),
        (
            json!({"body_mime": "text/plain"}),
            "body_mime",
            "application/json",
        ),
        (json!({"headers": "no colon here"}), "headers", "line 1"),
        (
            json!({"headers": "Host: evil"}),
            "headers",
            "cannot be overridden",
        ),
        (json!({"timeout_ms": 0}), "timeout_ms", "between"),
        (json!({"name": ""}), "name", "empty"),
    ];
    for (change, field, words) in cases {
        let mut body = base.clone();
        for (k, v) in change.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (st, e) = s
            .send(M::POST, s.url("/api/v1/webhooks"), Some(&body.to_string()))
            .await;
        assert_eq!(st, 400, "{body} -> {e}");
        assert_eq!(e["field"], field, "{body} -> {e}");
        assert!(
            e["error"].as_str().unwrap().contains(words),
            "{body} -> {e}"
        );
    }
    // Shape errors.
    for bad in [
        "",
        "{",
        "[]",
        r#"{"name": 5}"#,
        r#"{"name":"n","url":"http://127.0.0.1:9/","events":["*"],"colour":"red"}"#,
    ] {
        let (st, e) = s.send(M::POST, s.url("/api/v1/webhooks"), Some(bad)).await;
        assert_eq!(st, 400, "{bad} -> {e}");
        assert!(
            e["error"].as_str().unwrap().contains("request body"),
            "{bad} -> {e}"
        );
    }
    assert_eq!(h.sql_count("SELECT count(*) FROM webhooks"), 0);

    // An update that fails leaves the webhook as it was.
    let (st, created) = s
        .send(M::POST, s.url("/api/v1/webhooks"), Some(&base.to_string()))
        .await;
    assert_eq!(st, 201);
    let id = created["webhook"]["id"].as_i64().unwrap();
    let (st, _) = s
        .send(
            M::PUT,
            s.url(&format!("/api/v1/webhooks/{id}")),
            Some(r#"{"name": "changed", "body_template": "{<<"}"#),
        )
        .await;
    assert_eq!(st, 400);
    let (_, w) = s
        .send(M::GET, s.url(&format!("/api/v1/webhooks/{id}")), None)
        .await;
    assert_eq!(w["name"], "n");
    for bad_id in ["abc", "0", "-1", "99999999999999999999"] {
        let (st, _) = s
            .send(M::GET, s.url(&format!("/api/v1/webhooks/{bad_id}")), None)
            .await;
        assert_eq!(st, 400, "{bad_id}");
    }
    let (st, _) = s
        .send(
            M::PUT,
            s.url("/api/v1/webhooks/424242"),
            Some(r#"{"name": "x"}"#),
        )
        .await;
    assert_eq!(st, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_events_get_400_and_change_nothing() {
    use reqwest::Method as M;
    let h = Herald::new();
    let s = h.serve();
    let url = s.url("/api/v1/events");
    let cases = [
        ("", "empty"),
        ("{", "not valid JSON"),
        ("[1]", "wrong shape"),
        (r#"{"data": {}}"#, "missing field `type`"),
        (
            r#"{"type": "ticket.login", "data": [1]}"#,
            "must be a JSON object",
        ),
        (
            r#"{"type": "ticket.login", "data": "x"}"#,
            "must be a JSON object",
        ),
        (r#"{"type": "Ticket Login"}"#, "not valid"),
        (
            r#"{"type": "ticket.login", "uuid": "xyz"}"#,
            "not a valid UUID",
        ),
        (
            r#"{"type": "ticket.login", "created_at": "yesterday"}"#,
            "RFC 3339",
        ),
        (
            r#"{"type": "ticket.login", "colour": "red"}"#,
            "unknown field `colour`",
        ),
        (r#"{"type": 5}"#, "wrong shape"),
    ];
    for (body, words) in cases {
        let (st, e) = s.send(M::POST, url.clone(), Some(body)).await;
        assert_eq!(st, 400, "{body} -> {e}");
        assert!(
            e["error"].as_str().unwrap().contains(words),
            "{body} -> {e}"
        );
    }
    // Too large: 413, nothing stored.
    let big = format!(
        r#"{{"type": "ticket.login", "data": {{"x": "{}"}}}}"#,
        "a".repeat(2 << 20)
    );
    let (st, e) = s.send(M::POST, url.clone(), Some(&big)).await;
    assert_eq!(st, 413);
    assert!(
        e["error"].as_str().unwrap().contains("max_body_bytes"),
        "{e}"
    );
    assert_eq!(h.sql_count("SELECT count(*) FROM events"), 0);

    // A good one, then the same uuid again: 409.
    let good = r#"{"type": "ticket.login", "uuid": "0b8c8a4e-6f2d-4c1e-9a57-3f1d2b9e7c10", "ticket_id": "T-1", "data": {"a": 1}}"#;
    let (st, ok) = s.send(M::POST, url.clone(), Some(good)).await;
    assert_eq!(st, 202, "{ok}");
    assert_eq!(ok["uuid"], "0b8c8a4e-6f2d-4c1e-9a57-3f1d2b9e7c10");
    let (st, e) = s.send(M::POST, url.clone(), Some(good)).await;
    assert_eq!(st, 409, "{e}");
    assert_eq!(h.sql_count("SELECT count(*) FROM events"), 1);
    // Unknown routes and bad log queries.
    let (st, e) = s.send(M::GET, s.url("/api/v1/nope"), None).await;
    assert_eq!(st, 404);
    assert_eq!(e["error"], "no such route");
    let (st, e) = s.send(M::DELETE, s.url("/api/v1/events"), None).await;
    assert_eq!(st, 405);
    assert_eq!(e["error"], "method not allowed on this route");
    let (st, e) = s.send(M::GET, s.url("/api/v1/log?webhook=abc"), None).await;
    assert_eq!(st, 400, "{e}");
    let (st, health) = s.send(M::GET, s.url("/healthz"), None).await;
    assert_eq!(st, 200);
    assert_eq!(health["status"], "ok");
}
