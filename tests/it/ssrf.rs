//! The SSRF guard and redirects (issue 16, items 2 and 3), against the real
//! binary. Every refused address here is refused before a connection is
//! made; the only connections are to receivers on 127.0.0.1.

use serde_json::{Value, json};

use crate::utils::*;

const ALLOW: &str = "HERALD_DELIVERY_ALLOW_NETWORKS";
const HOW_TO_ALLOW: &str = "is in delivery.deny_networks; allow it with delivery.allow_networks";

/// `herald test ID --json` as JSON.
fn test_send(h: &Herald, id: i64) -> Value {
    let out = h.cli(&["test", &id.to_string(), "--json"]);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "herald test printed no JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn error_of(report: &Value) -> String {
    report["error"].as_str().unwrap_or_default().to_owned()
}

/// Loopback in all its spellings, by name and by address, is refused by
/// default; the message names the address and the key that allows it.
#[tokio::test(flavor = "multi_thread")]
async fn loopback_in_every_spelling_is_refused_until_allowed() {
    let mut h = Herald::new();
    h.unset_env(ALLOW);
    let rx = Receiver::start().await;
    let port = rx.addr.port();
    let spellings = [
        ("127.0.0.1", "127.0.0.1"),
        ("localhost", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("[::ffff:127.0.0.1]", "127.0.0.1"),
        ("[::1]", "::1"),
        ("0.0.0.0", "0.0.0.0"),
        ("[::]", "::"),
    ];
    for (i, (host, address)) in spellings.iter().enumerate() {
        let id = h.add(&format!("w{i}"), &format!("http://{host}:{port}/in"), &[]);
        let report = test_send(&h, id);
        assert_eq!(report["outcome"], "failed", "{host}: {report}");
        let error = error_of(&report);
        // `localhost` may resolve to ::1 first; either is refused.
        let named = error.contains(&format!("{address} {HOW_TO_ALLOW}"))
            || (*host == "localhost" && error.contains(&format!("::1 {HOW_TO_ALLOW}")));
        assert!(named, "{host}: {error}");
    }
    assert!(
        rx.received().is_empty(),
        "a refused request reached the receiver"
    );
    // Allowed explicitly, the same spelling goes through.
    h.set_env(ALLOW, "127.0.0.1/32");
    let id = h.add("allowed", &format!("http://127.1:{port}/in"), &[]);
    let report = test_send(&h, id);
    assert_eq!(report["outcome"], "delivered", "{report}");
    assert_eq!(rx.wait_for(1).await.len(), 1);
    // Private ranges are allowed by default; `deny_private` refuses them
    // (before any connection: nothing is sent off this machine).
    h.set_env("HERALD_DELIVERY_DENY_PRIVATE", "true");
    let id = h.add("lan", "http://10.1.2.3:9/in", &[]);
    let error = error_of(&test_send(&h, id));
    assert!(
        error.contains("10.1.2.3 is a private address and delivery.deny_private is true"),
        "{error}"
    );
}

/// A served herald does not read its own listener for a webhook (the
/// full-read SSRF), refuses for good rather than retrying, and says why.
#[tokio::test(flavor = "multi_thread")]
async fn a_webhook_pointed_at_herald_itself_fails_for_good_without_reading_it() {
    use reqwest::Method;
    let mut h = Herald::new();
    h.unset_env(ALLOW);
    let server = h.serve();
    let (status, created) = server
        .send(
            Method::POST,
            server.url("/api/v1/webhooks"),
            Some(
                &json!({"name": "self", "url": server.url("/api/v1/webhooks"), "method": "GET",
                    "events": ["*"], "log_bodies": true,
                    "headers": format!("Authorization: Bearer {}", server.key)})
                .to_string(),
            ),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let (status, _) = server
        .send(
            Method::POST,
            server.url("/api/v1/events"),
            Some(r#"{"type": "ticket.login", "ticket_id": "T-1"}"#),
        )
        .await;
    assert_eq!(status, 202);
    h.wait_sql("SELECT count(*) FROM deliveries WHERE state = 'failed'", 1);
    let log = h.log(&[]);
    assert_eq!(log.len(), 1, "refused once, not retried: {log:?}");
    let entry = &log[0];
    assert!(
        error_of(entry).contains(&format!("127.0.0.1 {HOW_TO_ALLOW}")),
        "{entry}"
    );
    assert!(entry["http_status"].is_null(), "{entry}");
    let shown = entry.to_string();
    assert!(
        !shown.contains("\"webhooks\""),
        "herald's answer was read: {shown}"
    );
}

/// The token flow's auth URL and every redirect target pass the guard too.
#[tokio::test(flavor = "multi_thread")]
async fn token_urls_and_redirect_targets_pass_the_guard() {
    let mut h = Herald::new();
    h.set_env(ALLOW, "127.0.0.1/32");
    let rx = Receiver::start().await;
    // The token server would be on ::1, which is not allowed.
    let auth = json!({"kind": "token", "url": "http://[::1]:9/token",
        "username": "u", "password": "pw-SECRET"});
    let id = h.add("token", &rx.url("/in"), &["--auth", &auth.to_string()]);
    let error = error_of(&test_send(&h, id));
    assert!(error.contains(&format!("::1 {HOW_TO_ALLOW}")), "{error}");
    assert!(rx.received().is_empty(), "sent without its token");
    // An allowed endpoint redirecting to a refused one.
    let redirector = Receiver::start().await;
    redirector.set_status(307);
    redirector.set_header("Location", "http://[::1]:9/elsewhere");
    let id = h.add("redirect", &redirector.url("/in"), &["--follow-redirects"]);
    let report = test_send(&h, id);
    assert_eq!(report["outcome"], "failed", "{report}");
    assert!(
        error_of(&report).contains(&format!("::1 {HOW_TO_ALLOW}")),
        "{report}"
    );
    assert_eq!(redirector.received().len(), 1);
}

/// With `follow_redirects`, credentials stay with their origin: to another
/// port the API key, the signature and `Authorization` are not sent, to
/// the same origin they are.
#[tokio::test(flavor = "multi_thread")]
async fn credentials_do_not_follow_a_redirect_to_another_origin() {
    let h = Herald::new();
    let target = Receiver::start().await;
    let redirector = Receiver::start().await;
    redirector.set_status(307);
    redirector.set_header("Location", &target.url("/moved"));
    let auth = json!({"kind": "apikey", "header": "X-Api-Key", "key": "key-SECRET-1"});
    let signing = json!({"kind": "hmac", "header": "X-Signature", "secret": "hmac-SECRET-2"});
    let id = h.add(
        "crm",
        &redirector.url("/in"),
        &[
            "--follow-redirects",
            "--auth",
            &auth.to_string(),
            "--signing",
            &signing.to_string(),
            "--header",
            "X-Plain: kept",
            "--header",
            "X-Echo: key-SECRET-1",
        ],
    );
    let report = test_send(&h, id);
    assert_eq!(report["outcome"], "delivered", "{report}");
    let first = &redirector.wait_for(1).await[0];
    assert_eq!(first.headers["x-api-key"], "key-SECRET-1");
    assert!(first.headers.contains_key("x-signature"));
    let moved = &target.wait_for(1).await[0];
    assert_eq!(moved.uri, "/moved");
    assert_eq!(moved.method, "POST", "a 307 repeats the request");
    assert_eq!(moved.body, first.body, "a 307 repeats the body");
    assert_eq!(moved.headers["x-plain"], "kept");
    for credential in ["x-api-key", "x-signature", "x-echo", "authorization"] {
        assert!(
            !moved.headers.contains_key(credential),
            "{credential} followed the redirect to another port: {:?}",
            moved.headers
        );
    }
    // Within the origin, everything is kept.
    let same = Receiver::start().await;
    same.fail_next(1, 308);
    same.set_header("Location", "/final");
    let id = h.add(
        "same",
        &same.url("/in"),
        &["--follow-redirects", "--auth", &auth.to_string()],
    );
    let report = test_send(&h, id);
    assert_eq!(report["outcome"], "delivered", "{report}");
    let got = same.wait_for(2).await;
    assert_eq!(got[1].uri, "/final");
    assert_eq!(got[1].headers["x-api-key"], "key-SECRET-1");
}
