//! Outgoing authentication and signing against real local auth servers and
//! receivers; signatures checked by an independent verifier.

use std::time::Duration;

use serde_json::{Value, json};

use crate::utils::*;

/// Adds a webhook with `auth` (JSON) and more flags; returns its id.
fn add_with_auth(h: &Herald, url: &str, auth: &Value, extra: &[&str]) -> i64 {
    let auth = auth.to_string();
    let mut args = vec![
        "--name", "w", "--url", url, "--events", "*", "--auth", &auth, "--retry", "once",
    ];
    args.extend_from_slice(extra);
    h.add_webhook(&args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixed_credentials_are_sent_and_never_shown() {
    let rx = Receiver::start().await;
    let h = Herald::new();
    let kinds = [
        (
            json!({"kind": "basic", "username": "Aladdin", "password": "open sesame"}),
            "authorization",
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==",
            "open sesame",
        ),
        (
            json!({"kind": "bearer", "token": "b3arer-t0ken"}),
            "authorization",
            "Bearer b3arer-t0ken",
            "b3arer-t0ken",
        ),
        (
            json!({"kind": "apikey", "key": "k3y-value"}),
            "apikey",
            "k3y-value",
            "k3y-value",
        ),
        (
            json!({"kind": "apikey", "header": "X-Key", "key": "k3y-other"}),
            "x-key",
            "k3y-other",
            "k3y-other",
        ),
        (
            json!({"kind": "custom", "header": "X-Site", "value": "s1te-secret"}),
            "x-site",
            "s1te-secret",
            "s1te-secret",
        ),
    ];
    for (i, (auth, ..)) in kinds.iter().enumerate() {
        add_with_auth(
            &h,
            &rx.url(&format!("/{i}")),
            auth,
            &["--log-bodies", "--body", r#"{"e":"<<event.type>>"}"#],
        );
    }
    let server = h.serve();
    h.ok(&["emit", "system.start"]);
    let got = rx.wait_for(kinds.len()).await;
    for (i, (_, header, value, _)) in kinds.iter().enumerate() {
        let r = got.iter().find(|r| r.uri == format!("/{i}")).unwrap();
        assert_eq!(
            r.headers.get(*header).map(String::as_str),
            Some(*value),
            "{i}"
        );
    }
    h.wait_log(&[], kinds.len());
    // Nowhere to be read: log, API, CLI show, render.
    let log = serde_json::to_string(&h.log(&[])).unwrap();
    let api = server.get_text("/api/v1/webhooks").await;
    let mut shown = String::new();
    for id in 1..=kinds.len() {
        shown += &h.ok(&["webhook", "show", &id.to_string(), "--json"]);
        shown += &h.ok(&[
            "render",
            "--webhook",
            &id.to_string(),
            "--event",
            repo_file("templates/samples/system.start.json")
                .to_str()
                .unwrap(),
        ]);
    }
    for (_, _, _, secret) in &kinds {
        for (place, text) in [("log", &log), ("api", &api), ("show/render", &shown)] {
            assert!(!text.contains(secret), "{secret} in {place}: {text}");
        }
    }
    assert!(api.contains(r#""password":"***""#), "{api}");
    // --reveal shows them to the local admin.
    assert!(
        h.ok(&["webhook", "show", "1", "--reveal"])
            .contains("open sesame")
    );
    let revealed = h.ok(&[
        "render",
        "--webhook",
        "2",
        "--reveal",
        "--event",
        repo_file("templates/samples/system.start.json")
            .to_str()
            .unwrap(),
    ]);
    assert!(
        revealed.contains("Authorization: Bearer b3arer-t0ken"),
        "{revealed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_masked_secret_sent_back_keeps_the_stored_one() {
    let rx = Receiver::start().await;
    let h = Herald::new();
    let id = add_with_auth(
        &h,
        &rx.url("/"),
        &json!({"kind": "bearer", "token": "orig1nal"}),
        &[],
    );
    let server = h.serve();
    let url = server.url(&format!("/api/v1/webhooks/{id}"));
    let (_, w) = server.send(reqwest::Method::GET, url.clone(), None).await;
    assert_eq!(w["auth"]["token"], "***");
    // Send the GET body back with a changed name: the token stays.
    let mut back = w.clone();
    back["name"] = "renamed".into();
    let (status, answer) = server
        .send(reqwest::Method::PUT, url, Some(&back.to_string()))
        .await;
    assert_eq!(status, 200, "{answer}");
    h.ok(&["emit", "system.start"]);
    assert_eq!(
        rx.wait_for(1).await[0].headers["authorization"],
        "Bearer orig1nal"
    );
    // Replacing it works too.
    h.ok(&[
        "webhook",
        "edit",
        &id.to_string(),
        "--auth",
        r#"{"kind":"bearer","token":"n3w-token"}"#,
    ]);
    h.ok(&["emit", "system.start"]);
    assert_eq!(
        rx.wait_for(2).await[1].headers["authorization"],
        "Bearer n3w-token"
    );
}

fn token_flow(auth: &Receiver, path: &str, extra: Value) -> Value {
    let mut a = json!({
        "kind": "token",
        "url": auth.url("/login"),
        "body_template": "{\"user\": \"<<auth.username>>\", \"pass\": \"<<auth.password>>\"}",
        "username": "herald",
        "password": "pa\"ss",
        "token_path": path,
    });
    for (k, v) in extra.as_object().unwrap() {
        a[k] = v.clone();
    }
    a
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_is_fetched_once_and_reused() {
    let auth = Receiver::start_with_body(r#"{"data": {"tokens": [{"value": "tok-{n}"}]}}"#).await;
    let rx = Receiver::start().await;
    let h = Herald::new();
    add_with_auth(
        &h,
        &rx.url("/"),
        &token_flow(&auth, "data.tokens[0].value", json!({})),
        &["--log-bodies"],
    );
    let s = h.serve();
    for _ in 0..5 {
        h.ok(&["emit", "system.start"]);
    }
    let got = rx.wait_for(5).await;
    assert!(
        got.iter()
            .all(|r| r.headers["authorization"] == "Bearer tok-1"),
        "{got:#?}"
    );
    assert_eq!(auth.received().len(), 1);
    // One fetch, counted as such in /metrics.
    let metrics = s.get_text("/metrics").await;
    assert!(
        metrics.contains("herald_token_fetches_total{webhook=\"1\",outcome=\"ok\"} 1\n"),
        "{metrics}"
    );
    // The auth request: rendered body with the credentials, JSON-escaped.
    let req = &auth.received()[0];
    assert_eq!(req.method, "POST");
    assert_eq!(
        serde_json::from_str::<Value>(&req.body).unwrap(),
        json!({"user": "herald", "pass": "pa\"ss"})
    );
    let log = serde_json::to_string(&h.wait_log(&[], 5)).unwrap();
    assert!(
        !log.contains("tok-1"),
        "fetched tokens are scrubbed from the log: {log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_is_refreshed_after_its_interval() {
    let auth = Receiver::start_with_body(r#"{"auth_token": "tok-{n}"}"#).await;
    let rx = Receiver::start().await;
    let h = Herald::new();
    // 0.01 minutes = 0.6 s.
    add_with_auth(
        &h,
        &rx.url("/"),
        &token_flow(&auth, "auth_token", json!({"refresh_minutes": 0.01})),
        &[],
    );
    let _s = h.serve();
    h.ok(&["emit", "system.start"]);
    rx.wait_for(1).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    h.ok(&["emit", "system.start"]);
    let got = rx.wait_for(2).await;
    assert_eq!(got[0].headers["authorization"], "Bearer tok-1");
    assert_eq!(got[1].headers["authorization"], "Bearer tok-2");
    assert_eq!(auth.received().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_401_refreshes_the_token_and_repeats_the_request_once() {
    let auth = Receiver::start_with_body(r#"{"auth": {"token": "tok-{n}"}}"#).await;
    let rx = Receiver::start().await;
    // The endpoint already revoked tok-1.
    rx.require_auth(Some("Bearer tok-2"));
    let h = Herald::new();
    add_with_auth(
        &h,
        &rx.url("/"),
        &token_flow(&auth, "auth.token", json!({})),
        &[],
    );
    let _s = h.serve();
    h.ok(&["emit", "system.start"]);
    let log = h.wait_log(&[], 1);
    assert_eq!(log[0]["outcome"], "delivered", "{log:#?}");
    assert_eq!(auth.received().len(), 2);
    let got = rx.received();
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].headers["authorization"], "Bearer tok-2");

    // An endpoint that refuses every token: one repeat, then the attempt fails.
    rx.require_auth(Some("Bearer never"));
    h.ok(&["emit", "system.start"]);
    let log = h.wait_log(&[], 2);
    assert_eq!(log[0]["outcome"], "failed");
    assert_eq!(
        log[0]["error"],
        "HTTP 401 (also with a freshly fetched token)"
    );
    assert_eq!(rx.received().len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xml_token_answers_are_read_by_element_path() {
    let auth = Receiver::start_with_body(
        "<?xml version=\"1.0\"?><response><auth><token>x-{n}&amp;y</token></auth></response>",
    )
    .await;
    let rx = Receiver::start().await;
    let h = Herald::new();
    let flow = token_flow(
        &auth,
        "auth.token",
        json!({
            "method": "POST", "body_mime": "application/xml", "basic": true,
            "body_template": "<login user=\"<<auth.username>>\"><pw><<auth.password>></pw></login>",
        }),
    );
    add_with_auth(&h, &rx.url("/"), &flow, &[]);
    let _s = h.serve();
    h.ok(&["emit", "system.start"]);
    assert_eq!(
        rx.wait_for(1).await[0].headers["authorization"],
        "Bearer x-1&y"
    );
    let req = &auth.received()[0];
    assert_eq!(req.body, "<login user=\"herald\"><pw>pa\"ss</pw></login>");
    assert_eq!(req.headers["content-type"], "application/xml");
    assert_eq!(req.headers["authorization"], "Basic aGVyYWxkOnBhInNz");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_failures_are_logged_and_nothing_is_sent_without_auth() {
    let rx = Receiver::start().await;
    let failing =
        Receiver::start_with_body(r#"{"error": "backend down, password pa"ss rejected"}"#).await;
    failing.set_status(500);
    let tokenless = Receiver::start_with_body(r#"{"status": "ok"}"#).await;
    let h = Herald::new();
    let w500 = add_with_auth(
        &h,
        &rx.url("/"),
        &token_flow(&failing, "auth_token", json!({})),
        &[],
    );
    let wnone = add_with_auth(
        &h,
        &rx.url("/"),
        &token_flow(&tokenless, "auth_token", json!({})),
        &[],
    );
    let down =
        json!({"kind": "token", "url": format!("http://127.0.0.1:{}/login", refused_port())});
    let wdown = add_with_auth(&h, &rx.url("/"), &down, &[]);
    let _s = h.serve();
    h.ok(&["emit", "system.start"]);
    h.wait_log(&[], 3);
    let error = |id: i64| {
        h.log(&["--webhook", &id.to_string()])[0]["error"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let e = error(w500);
    assert!(e.starts_with(&format!("auth server POST {} answered HTTP 500: {{\"error\": \"backend down, password *** rejected\"}}", failing.url("/login"))), "{e}");
    let e = error(wnone);
    assert!(
        e.contains("answered without a token at `auth_token`: {\"status\":\"***\"}"),
        "{e}"
    );
    let e = error(wdown);
    assert!(e.contains("connection refused"), "{e}");
    assert_eq!(
        rx.received().len(),
        0,
        "nothing is sent without its authentication"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_deliveries_cause_one_token_fetch() {
    let auth = Receiver::start_with_body(r#"{"auth_token": "tok-{n}"}"#).await;
    // Slow enough that every delivery asks while the first fetch runs.
    auth.set_delay(Duration::from_millis(500));
    let rx = Receiver::start().await;
    let mut h = Herald::new();
    h.set_env("HERALD_DELIVERY_CONCURRENCY", "64");
    add_with_auth(
        &h,
        &rx.url("/"),
        &token_flow(&auth, "auth_token", json!({})),
        &[],
    );
    let _s = h.serve();
    // All 50 queued in one transaction: routed in one batch, sent at once.
    let mut sql = String::from("BEGIN;");
    for _ in 0..50 {
        sql.push_str("INSERT INTO events (type) VALUES ('system.start');");
    }
    sql.push_str("COMMIT;");
    h.sql(&sql);
    let got = rx.wait_for(50).await;
    assert!(
        got.iter()
            .all(|r| r.headers["authorization"] == "Bearer tok-1")
    );
    assert_eq!(auth.received().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_placed_by_the_template_is_not_added_as_a_header() {
    let auth = Receiver::start_with_body(r#"{"auth_token": "tok-{n}"}"#).await;
    let rx = Receiver::start().await;
    let h = Herald::new();
    add_with_auth(
        &h,
        &rx.url("/"),
        &token_flow(&auth, "auth_token", json!({})),
        &["--body", r#"{"token": "<<auth.token>>"}"#, "--log-bodies"],
    );
    let _s = h.serve();
    h.ok(&["emit", "system.start"]);
    let r = &rx.wait_for(1).await[0];
    assert_eq!(r.json()["token"], "tok-1");
    assert!(!r.headers.contains_key("authorization"));
    let log = h.wait_log(&[], 1);
    assert_eq!(log[0]["detail"]["request_body"], r#"{"token": "***"}"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth2_client_credentials() {
    let auth = Receiver::start_with_body(
        r#"{"access_token": "oa-{n}", "token_type": "Bearer", "expires_in": 3600}"#,
    )
    .await;
    let rx = Receiver::start().await;
    let h = Herald::new();
    let o = json!({"kind": "oauth2", "token_url": auth.url("/oauth/token"), "client_id": "herald", "client_secret": "cl1ent-secret", "scope": "events write"});
    add_with_auth(&h, &rx.url("/"), &o, &[]);
    let _s = h.serve();
    h.ok(&["emit", "system.start"]);
    h.ok(&["emit", "system.start"]);
    let got = rx.wait_for(2).await;
    assert!(
        got.iter()
            .all(|r| r.headers["authorization"] == "Bearer oa-1")
    );
    assert_eq!(auth.received().len(), 1);
    let req = &auth.received()[0];
    assert_eq!(
        req.body,
        "grant_type=client_credentials&scope=events%20write"
    );
    assert_eq!(
        req.headers["content-type"],
        "application/x-www-form-urlencoded"
    );
    assert_eq!(
        req.headers["authorization"],
        "Basic aGVyYWxkOmNsMWVudC1zZWNyZXQ="
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_auth_and_signing_settings_are_refused() {
    let h = Herald::new();
    for (flag, value, words) in [
        ("--auth", r#"{"kind":"magic"}"#, "--auth is not valid"),
        (
            "--auth",
            r#"{"kind":"bearer","token":""}"#,
            "auth: bearer: the token is empty",
        ),
        (
            "--auth",
            r#"{"kind":"token","url":"http://127.0.0.1:1/","token_path":"a[x]"}"#,
            "token_path",
        ),
        (
            "--signing",
            r#"{"kind":"hmac","secret":""}"#,
            "signing: hmac: the secret is empty",
        ),
        (
            "--signing",
            r#"{"kind":"standard","secrets":[{"secret":"whsec_%%%"}]}"#,
            "whsec_ followed by base64",
        ),
    ] {
        let out = h.cli(&[
            "webhook",
            "add",
            "--name",
            "n",
            "--url",
            "http://127.0.0.1:9/",
            "--events",
            "*",
            flag,
            value,
        ]);
        assert_eq!(out.status.code(), Some(2), "{value}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(words), "{value}: {err}");
    }
    assert_eq!(h.sql_count("SELECT count(*) FROM webhooks"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standard_webhooks_signatures_verify_independently_across_rotation() {
    let rx = Receiver::start().await;
    let h = Herald::new();
    let out = h.ok(&[
        "webhook",
        "add",
        "--name",
        "s",
        "--url",
        &rx.url("/"),
        "--events",
        "*",
        "--signing",
        r#"{"kind":"standard"}"#,
        "--body",
        r#"{"id":"<<event.uuid>>","d":"<<description>>"}"#,
    ]);
    let first = out
        .split("signing secret (shown once; give it to the receiver): ")
        .nth(1)
        .unwrap()
        .trim()
        .to_owned();
    assert!(first.starts_with("whsec_"), "{out}");
    let _s = h.serve();
    let uuid = h
        .ok(&[
            "emit",
            "system.start",
            "--data",
            r#"{"description": "ünïcode \"quoted\""}"#,
        ])
        .trim()
        .to_owned();
    let r = rx.wait_for(1).await[0].clone();
    assert_eq!(r.headers["webhook-id"], uuid);
    let verify = |secret: &str, r: &Received| {
        verify_signature(&json!({
            "scheme": "standard", "secret": secret, "body": r.body,
            "headers": {
                "webhook-id": r.headers["webhook-id"],
                "webhook-timestamp": r.headers["webhook-timestamp"],
                "webhook-signature": r.headers["webhook-signature"],
            }
        }))
    };
    verify(&first, &r).unwrap();
    assert!(
        verify("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", &r).is_err(),
        "a wrong secret fails"
    );
    let mut tampered = r.clone();
    tampered.body.push(' ');
    assert!(verify(&first, &tampered).is_err(), "a changed body fails");

    // Rotate: both secrets sign during the overlap.
    let out = h.ok(&["webhook", "rotate-secret", "1", "--overlap-hours", "1"]);
    let second = out
        .split("give it to the receiver): ")
        .nth(1)
        .unwrap()
        .trim()
        .to_owned();
    assert_ne!(first, second);
    h.ok(&["emit", "system.start"]);
    let r = rx.wait_for(2).await[1].clone();
    assert_eq!(r.headers["webhook-signature"].split(' ').count(), 2);
    verify(&first, &r).unwrap();
    verify(&second, &r).unwrap();
    // The secrets appear nowhere else.
    let shown = h.ok(&["webhook", "show", "1", "--json"]);
    assert!(
        !shown.contains(&first[6..]) && !shown.contains(&second[6..]),
        "{shown}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_hmac_signatures_verify_independently() {
    let rx = Receiver::start().await;
    let h = Herald::new();
    for (i, enc) in ["hex", "base64"].iter().enumerate() {
        let signing = json!({"kind": "hmac", "header": "X-Signature", "secret": "s3cr3t-ключ", "encoding": enc}).to_string();
        h.add_webhook(&[
            "--name",
            enc,
            "--url",
            &rx.url(&format!("/{i}")),
            "--events",
            "*",
            "--signing",
            &signing,
            "--log-bodies",
            "--body",
            r#"{"d":"<<description>>"}"#,
        ]);
    }
    let _s = h.serve();
    h.ok(&[
        "emit",
        "system.start",
        "--data",
        r#"{"description": "ünïcode"}"#,
    ]);
    let got = rx.wait_for(2).await;
    for (i, enc) in ["hex", "base64"].iter().enumerate() {
        let r = got.iter().find(|r| r.uri == format!("/{i}")).unwrap();
        let input = |body: &str| json!({"scheme": "hmac", "secret": "s3cr3t-ключ", "encoding": enc, "signature": r.headers["x-signature"], "body": body});
        verify_signature(&input(&r.body)).unwrap();
        assert!(verify_signature(&input("{}")).is_err());
    }
    let log = serde_json::to_string(&h.wait_log(&[], 2)).unwrap();
    assert!(
        log.contains("X-Signature: ***") && !log.contains("s3cr3t"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth2_expires_in_is_honoured() {
    // expires_in 2 s: refreshed after ~1 s, long before refresh_minutes.
    let auth = Receiver::start_with_body(r#"{"access_token": "oa-{n}", "expires_in": 2}"#).await;
    let rx = Receiver::start().await;
    let h = Herald::new();
    let o = json!({"kind": "oauth2", "token_url": auth.url("/t"), "client_id": "c", "client_secret": "s3cret-value"});
    add_with_auth(&h, &rx.url("/"), &o, &[]);
    let _s = h.serve();
    h.ok(&["emit", "system.start"]);
    rx.wait_for(1).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    h.ok(&["emit", "system.start"]);
    let got = rx.wait_for(2).await;
    assert_eq!(got[1].headers["authorization"], "Bearer oa-2");
    assert_eq!(auth.received().len(), 2);
}

/// Queues `n` events in one transaction, so they are routed and sent together.
fn burst(h: &Herald, n: usize) {
    let mut sql = String::from("BEGIN;");
    for _ in 0..n {
        sql.push_str("INSERT INTO events (type) VALUES ('system.start');");
    }
    sql.push_str("COMMIT;");
    h.sql(&sql);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_401s_at_once_share_one_refresh() {
    let auth = Receiver::start_with_body(r#"{"auth_token": "tok-{n}"}"#).await;
    auth.set_delay(Duration::from_millis(200));
    let rx = Receiver::start().await;
    rx.require_auth(Some("Bearer tok-2"));
    let h = Herald::new();
    add_with_auth(
        &h,
        &rx.url("/"),
        &token_flow(&auth, "auth_token", json!({})),
        &[],
    );
    let _s = h.serve();
    burst(&h, 20);
    let log = h.wait_log(&[], 20);
    assert!(log.iter().all(|e| e["outcome"] == "delivered"), "{log:#?}");
    assert_eq!(
        auth.received().len(),
        2,
        "one fetch, then one refresh for all the 401s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_auth_server_is_not_hammered() {
    let auth = Receiver::start_with_body(r#"{"error": "down"}"#).await;
    auth.set_status(503);
    auth.set_delay(Duration::from_millis(200));
    let rx = Receiver::start().await;
    let h = Herald::new();
    add_with_auth(
        &h,
        &rx.url("/"),
        &token_flow(&auth, "auth_token", json!({})),
        &[],
    );
    let _s = h.serve();
    burst(&h, 20);
    let log = h.wait_log(&[], 20);
    assert!(
        log.iter()
            .all(|e| e["error"].as_str().unwrap().contains("answered HTTP 503")),
        "{log:#?}"
    );
    assert_eq!(
        auth.received().len(),
        1,
        "the failure is shared for a moment"
    );
    assert_eq!(rx.received().len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_token_flow_and_a_token_placed_in_a_header() {
    let auth = Receiver::start_with_body(r#"{"auth_token": "tok-{n}"}"#).await;
    let rx = Receiver::start().await;
    let h = Herald::new();
    let flow = json!({"kind": "token", "method": "GET", "url": auth.url("/token?user=<<auth.username>>"), "username": "he rald", "password": "pw-1234"});
    add_with_auth(
        &h,
        &rx.url("/"),
        &flow,
        &["--header", "X-Token: <<auth.token>>"],
    );
    let _s = h.serve();
    h.ok(&["emit", "system.start"]);
    let r = &rx.wait_for(1).await[0];
    assert_eq!(r.headers["x-token"], "tok-1");
    assert!(
        !r.headers.contains_key("authorization"),
        "the template placed the token"
    );
    let req = &auth.received()[0];
    assert_eq!(req.method, "GET");
    assert_eq!(req.uri, "/token?user=he%20rald");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_error_does_not_quote_the_answer_values() {
    // The token is there, under another name than the path says.
    let auth = Receiver::start_with_body(r#"{"access_token": "leaky-t0ken-value"}"#).await;
    let rx = Receiver::start().await;
    let h = Herald::new();
    add_with_auth(
        &h,
        &rx.url("/"),
        &token_flow(&auth, "auth_token", json!({})),
        &[],
    );
    let _s = h.serve();
    h.ok(&["emit", "system.start"]);
    let log = h.wait_log(&[], 1);
    let e = log[0]["error"].as_str().unwrap();
    assert!(
        e.contains(r#"without a token at `auth_token`: {"access_token":"***"}"#),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_rotation_new_secret_and_kind_changes() {
    use reqwest::Method;
    let h = Herald::new();
    let server = h.serve();
    let s = &server;
    let send = |m: Method, path: String, body: Value| {
        let text = (!body.is_null()).then(|| body.to_string());
        let url = s.url(&path);
        async move { s.send(m, url, text.as_deref()).await }
    };
    let (status, created) = send(
        Method::POST,
        "/api/v1/webhooks".into(),
        json!({"name": "s", "url": "http://127.0.0.1:9/", "events": ["*"], "signing": {"kind": "standard"},
               "auth": {"kind": "bearer", "token": "t0ken-one"}}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let first = created["new_secret"].as_str().unwrap().to_owned();
    assert!(first.starts_with("whsec_"), "{created}");
    assert_eq!(created["webhook"]["signing"]["secrets"][0]["secret"], "***");
    let id = created["webhook"]["id"].as_i64().unwrap();
    let webhook = format!("/api/v1/webhooks/{id}");

    // Sending the masked GET body back keeps everything; no new secret.
    let (_, w) = send(Method::GET, webhook.clone(), Value::Null).await;
    let (_, back) = send(Method::PUT, webhook.clone(), w).await;
    assert!(back.get("new_secret").is_none(), "{back}");
    let shown = h.ok(&["webhook", "show", &id.to_string(), "--json", "--reveal"]);
    assert!(
        shown.contains(&first) && shown.contains("t0ken-one"),
        "{shown}"
    );

    // "***" with another kind: refused, nothing changed.
    let (status, e) = send(
        Method::PUT,
        webhook.clone(),
        json!({"auth": {"kind": "apikey", "key": "***"}}),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        e["error"]
            .as_str()
            .unwrap()
            .contains("only for the same kind (stored: bearer)"),
        "{e}"
    );

    // Rotation through the API.
    let rotate = format!("/api/v1/webhooks/{id}/rotate-secret");
    let (_, rotated) = send(Method::POST, rotate.clone(), json!({"overlap_hours": 2})).await;
    let second = rotated["new_secret"].as_str().unwrap();
    assert!(second.starts_with("whsec_") && second != first, "{rotated}");
    assert_eq!(
        rotated["webhook"]["signing"]["secrets"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let (status, _) = send(Method::POST, rotate, json!({"overlap_hours": -1})).await;
    assert_eq!(status, 400);
    // <<auth.token>> without a token kind, and a signature header over the credential: refused.
    for (patch, words) in [
        (
            json!({"body_template": "{\"t\": \"<<auth.token>>\"}"}),
            "only the token and oauth2 kinds",
        ),
        (
            json!({"signing": {"kind": "hmac", "header": "Authorization", "secret": "s3cret"}}),
            "would replace the credential header",
        ),
    ] {
        let (status, e) = send(Method::PUT, webhook.clone(), patch).await;
        assert_eq!(status, 400);
        assert!(e["error"].as_str().unwrap().contains(words), "{e}");
    }
}

#[test]
fn render_masks_token_and_hmac_settings_unless_revealed() {
    let h = Herald::new();
    let flow = json!({"kind": "token", "url": "http://127.0.0.1:9/login", "username": "u", "password": "pw-secret-1", "basic": true});
    let signing = json!({"kind": "hmac", "header": "X-Sig", "secret": "hm4c-secret"}).to_string();
    add_with_auth(
        &h,
        "http://127.0.0.1:9/x",
        &flow,
        &["--signing", &signing, "--body", r#"{"a":1}"#],
    );
    let sample = repo_file("templates/samples/system.start.json");
    let out = h.ok(&[
        "render",
        "--webhook",
        "1",
        "--event",
        sample.to_str().unwrap(),
    ]);
    assert!(
        out.contains("Authorization: Bearer <token fetched from the auth URL at send time>"),
        "{out}"
    );
    assert!(out.contains("X-Sig: "), "{out}");
    let shown = h.ok(&["webhook", "show", "1"]) + &h.ok(&["webhook", "list", "--json"]) + &out;
    assert!(
        !shown.contains("pw-secret-1") && !shown.contains("hm4c-secret"),
        "{shown}"
    );
}
