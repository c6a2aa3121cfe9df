//! Access to the listener: API keys with scopes, revocation, and the admin
//! password (generated on first start, argon2-hashed, changed by the CLI).

use reqwest::Method as M;
use serde_json::{Value, json};

use crate::utils::*;

/// Every API route, with a method it answers.
const ROUTES: &[(&str, &str)] = &[
    ("POST", "/api/v1/events"),
    ("GET", "/api/v1/webhooks"),
    ("POST", "/api/v1/webhooks"),
    ("GET", "/api/v1/webhooks/1"),
    ("PUT", "/api/v1/webhooks/1"),
    ("DELETE", "/api/v1/webhooks/1"),
    ("POST", "/api/v1/webhooks/1/copy"),
    ("POST", "/api/v1/webhooks/1/rotate-secret"),
    ("POST", "/api/v1/webhooks/1/test"),
    ("POST", "/api/v1/webhooks/1/pause"),
    ("POST", "/api/v1/webhooks/1/resume"),
    ("GET", "/api/v1/deliveries"),
    ("POST", "/api/v1/deliveries/retry"),
    ("GET", "/api/v1/log"),
    ("GET", "/api/v1/api-keys"),
    ("POST", "/api/v1/api-keys"),
    ("DELETE", "/api/v1/api-keys/1"),
    ("GET", "/api/v1/no-such-route"),
];

fn method(m: &str) -> M {
    m.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_api_route_refuses_without_a_valid_key() {
    let h = Herald::new();
    let s = h.serve();
    let anonymous = reqwest::Client::new();
    let forged = bearer_client("hk_not-a-key");
    for (m, path) in ROUTES {
        let resp = anonymous
            .request(method(m), s.url(path))
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401, "{m} {path} without a key");
        assert_eq!(
            resp.headers()["www-authenticate"],
            "Bearer realm=\"herald\""
        );
        let body: Value = resp.json().await.unwrap();
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("authentication required"),
            "{body}"
        );
        let (st, body) = send_with(&forged, method(m), s.url(path), Some("{}")).await;
        assert_eq!(st, 401, "{m} {path} with a forged key: {body}");
        assert_eq!(body["error"], "the API key is unknown or revoked");
    }
    // Liveness stays open, and nothing was changed by the refused calls.
    let resp = anonymous.get(s.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(h.sql_count("SELECT count(*) FROM webhooks"), 0);
    assert_eq!(h.sql_count("SELECT count(*) FROM events"), 0);
    assert_eq!(h.sql_count("SELECT count(*) FROM api_keys"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_key_may_only_read() {
    let h = Herald::new();
    let s = h.serve();
    let read = h.api_key("read");
    let client = bearer_client(&read);
    for path in [
        "/api/v1/webhooks",
        "/api/v1/log",
        "/api/v1/deliveries",
        "/api/v1/api-keys",
    ] {
        let (st, body) = send_with(&client, M::GET, s.url(path), None).await;
        assert_eq!(st, 200, "{path}: {body}");
    }
    for (m, path) in ROUTES.iter().filter(|(m, _)| *m != "GET") {
        let (st, body) = send_with(&client, method(m), s.url(path), Some("{}")).await;
        assert_eq!(st, 403, "{m} {path}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains("scope read"),
            "{body}"
        );
    }
    assert_eq!(h.sql_count("SELECT count(*) FROM events"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_are_made_listed_without_the_key_and_revoked() {
    let h = Herald::new();
    let s = h.serve();
    let (st, made) = s
        .send(
            M::POST,
            s.url("/api/v1/api-keys"),
            Some(r#"{"name": "monitoring", "scope": "read"}"#),
        )
        .await;
    assert_eq!(st, 201, "{made}");
    let key = made["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("hk_"));
    let id = made["api_key"]["id"].as_i64().unwrap();
    // Listed by API and CLI with a hint, never the key; the database keeps a digest only.
    let (_, list) = s.send(M::GET, s.url("/api/v1/api-keys"), None).await;
    let text = list.to_string();
    assert!(!text.contains(&key) && !text.contains(&s.key), "{text}");
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|k| k["name"] == "monitoring" && k["scope"] == "read")
    );
    let cli = h.ok(&["admin", "api-key", "list"]);
    assert!(cli.contains("monitoring") && !cli.contains(&key), "{cli}");
    assert_eq!(
        h.sql_count(&format!(
            "SELECT count(*) FROM api_keys WHERE digest LIKE '%{}%' OR hint = '{key}'",
            &key[3..]
        )),
        0
    );
    // It works, then, revoked, it does not.
    let client = bearer_client(&key);
    let (st, _) = send_with(&client, M::GET, s.url("/api/v1/webhooks"), None).await;
    assert_eq!(st, 200);
    let (st, revoked) = s
        .send(M::DELETE, s.url(&format!("/api/v1/api-keys/{id}")), None)
        .await;
    assert_eq!(st, 200, "{revoked}");
    assert!(revoked["revoked_at"].is_string());
    let (st, _) = send_with(&client, M::GET, s.url("/api/v1/webhooks"), None).await;
    assert_eq!(st, 401);
    assert!(h.ok(&["admin", "api-key", "list"]).contains("REVOKED"));
    // Refused requests.
    for (body, status) in [
        (json!({"name": "x", "scope": "root"}), 400),
        (json!({"name": "  ", "scope": "read"}), 400),
        (json!({"scope": "read"}), 400),
    ] {
        let (st, r) = s
            .send(M::POST, s.url("/api/v1/api-keys"), Some(&body.to_string()))
            .await;
        assert_eq!(st, status, "{body}: {r}");
    }
    let (st, _) = s.send(M::DELETE, s.url("/api/v1/api-keys/999"), None).await;
    assert_eq!(st, 404);
    let out = h.cli(&[
        "admin", "api-key", "create", "--name", "x", "--scope", "root",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        h.cli(&["admin", "api-key", "revoke", "999"]).status.code(),
        Some(2)
    );
}

/// The server checks keys in memory; a key revoked by the CLI (another
/// process) is refused within a second, and one made by the CLI works at once.
#[tokio::test(flavor = "multi_thread")]
async fn keys_made_or_revoked_by_the_cli_hold_for_the_running_server() {
    let h = Herald::new();
    let s = h.serve();
    let key = h.api_key("read");
    let client = bearer_client(&key);
    let (st, _) = send_with(&client, M::GET, s.url("/api/v1/webhooks"), None).await;
    assert_eq!(st, 200, "a key made by the CLI did not work at once");
    let id = h.sql_count("SELECT max(id) FROM api_keys");
    h.ok(&["admin", "api-key", "revoke", &id.to_string()]);
    std::thread::sleep(std::time::Duration::from_secs(1));
    let (st, body) = send_with(&client, M::GET, s.url("/api/v1/webhooks"), None).await;
    assert_eq!(
        st, 401,
        "still accepted a second after the CLI revoked it: {body}"
    );
    // The server's own key still works.
    let (st, _) = s.send(M::GET, s.url("/api/v1/webhooks"), None).await;
    assert_eq!(st, 200);
}

#[test]
fn first_start_writes_an_initial_password_and_set_password_replaces_it() {
    use std::os::unix::fs::PermissionsExt;
    let h = Herald::new();
    let s = h.serve();
    let file = h.db().parent().unwrap().join("initial-admin-password");
    assert!(s.log().contains("initial-admin-password"), "{}", s.log());
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let password = std::fs::read_to_string(&file).unwrap().trim().to_owned();
    assert!(password.len() >= 20, "{password}");
    let stored = h.sql_rows("SELECT value FROM settings WHERE key = 'admin_password_hash'");
    assert!(stored[0].starts_with("$argon2id$") && !stored[0].contains(&password));
    drop(s);
    // A second start keeps the password.
    let s = h.serve();
    assert!(!s.log().contains("initial-admin-password"));
    drop(s);
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), password);

    let out = h.cli_stdin(&["admin", "set-password"], Some("too short\n"));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 10 characters"));
    let out = h.cli_stdin(
        &["admin", "set-password"],
        Some("a much better passphrase\n"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!file.exists(), "the initial password file is removed");
    let changed = h.sql_rows("SELECT value FROM settings WHERE key = 'admin_password_hash'");
    assert_ne!(changed, stored);
    assert!(changed[0].starts_with("$argon2id$"));
}
