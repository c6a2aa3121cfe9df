//! Security hardening (issue 16), each test against the real binary: what an
//! attacker on the same box could do before, and must not be able to now.

use std::net::IpAddr;

use crate::utils::*;
use crate::web::{WebSession, initial_password, post_login, post_login_as, set_cookie};

/// A stolen session may not guess the current password without limit: the
/// password change counts wrong guesses like the login does.
#[tokio::test(flavor = "multi_thread")]
async fn the_password_change_limits_guesses_of_the_current_password() {
    let h = Herald::new();
    let server = h.serve();
    let right = initial_password(&h);
    let s = WebSession::login(&server, &right).await;
    let hash_sql = "SELECT value FROM settings WHERE key = 'admin_password_hash'";
    let before = h.sql_rows(hash_sql);
    assert_eq!(before.len(), 1);
    let change = |current: String| {
        let s = &s;
        async move {
            let fields = [
                ("current", current.as_str()),
                ("new", "a new password, long enough"),
                ("repeat", "a new password, long enough"),
            ];
            let r = s.post("/settings/password", &fields, true).await;
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    for i in 0..5 {
        let (status, page) = change(format!("guess {i}")).await;
        assert_eq!(status, 400, "guess {i}");
        assert!(page.contains("the current password is wrong"), "{page}");
    }
    // The sixth try is refused before any check, even with the right password.
    let (status, page) = change(right.clone()).await;
    assert_eq!(status, 429, "{page}");
    assert!(page.contains("Too many failed logins"), "{page}");
    assert_eq!(h.sql_rows(hash_sql), before, "the password did not change");
    assert!(
        server
            .log()
            .contains("wrong current password in a password change")
    );
}

/// Failed logins from many addresses slow guessing down, but do not lock the
/// admin's own browser out: a browser that logged in before carries a device
/// cookie, and the limit on all addresses together does not apply to it.
#[tokio::test(flavor = "multi_thread")]
async fn failures_from_many_addresses_do_not_lock_out_a_known_browser() {
    let h = Herald::new();
    let server = h.serve();
    let base = server.url("");
    let right = initial_password(&h);
    // The admin's browser logs in once and keeps its device cookie.
    let first = post_login(&base, &right).await;
    assert_eq!(first.status(), 303);
    let (device, attributes) = set_cookie(&first, "herald_device").expect("a device cookie");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(attributes.contains(attr), "{attributes} lacks {attr}");
    }
    // Fifty failures from ten other loopback addresses.
    for a in 0..10u8 {
        let from: IpAddr = format!("127.0.3.{}", a + 1).parse().unwrap();
        for _ in 0..5 {
            let r = post_login_as(&base, "wrong", Some(from), None).await;
            assert_eq!(r.status(), 401);
        }
    }
    // An unknown address is held off, right password or not ...
    let stranger: IpAddr = "127.0.4.1".parse().unwrap();
    let r = post_login_as(&base, &right, Some(stranger), None).await;
    assert_eq!(r.status(), 429);
    // ... a forged device cookie counts as no cookie ...
    let r = post_login_as(&base, &right, Some(stranger), Some("forged.00ff")).await;
    assert_eq!(r.status(), 429);
    // ... but the admin's browser, from any address, logs in.
    let r = post_login_as(&base, &right, Some(stranger), Some(&device)).await;
    assert_eq!(r.status(), 303, "the known browser is not locked out");
    assert!(set_cookie(&r, "herald_session").is_some());
    // The device has a limit of its own: five wrong guesses, then it waits.
    for _ in 0..5 {
        let r = post_login_as(&base, "wrong", None, Some(&device)).await;
        assert_eq!(r.status(), 401);
    }
    let r = post_login_as(&base, &right, None, Some(&device)).await;
    assert_eq!(r.status(), 429);
}

/// Every answer of the web admin carries the browser-side protections: a
/// CSP without inline script and without framing, no sniffing, no referrer.
#[tokio::test(flavor = "multi_thread")]
async fn html_answers_carry_security_headers() {
    let h = Herald::new();
    let server = h.serve();
    let s = WebSession::login(&server, &initial_password(&h)).await;
    let http = crate::web::plain_client();
    let cookie = format!("herald_session={}", s.cookie);
    for path in [
        "/login",
        "/webhooks",
        "/log",
        "/settings",
        "/webhooks/999999",
        "/static/app.css",
    ] {
        let r = http
            .get(server.url(path))
            .header(reqwest::header::COOKIE, &cookie)
            .send()
            .await
            .unwrap();
        let h = r.headers();
        let csp = h
            .get("content-security-policy")
            .unwrap_or_else(|| panic!("{path}: no CSP"))
            .to_str()
            .unwrap();
        for part in [
            "script-src 'self'",
            "frame-ancestors 'none'",
            "object-src 'none'",
        ] {
            assert!(csp.contains(part), "{path}: CSP {csp} lacks {part}");
        }
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
            "{csp}"
        );
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
    }
}

/// A credential too short to scrub from logged answers is refused at save
/// (API, CLI); one just long enough is scrubbed even from an answer that
/// echoes it.
#[tokio::test(flavor = "multi_thread")]
async fn short_secrets_are_refused_and_the_shortest_accepted_is_scrubbed() {
    let h = Herald::new();
    let server = h.serve();
    let (status, body) = server
        .send(
            reqwest::Method::POST,
            server.url("/api/v1/webhooks"),
            Some(
                r#"{"name": "n", "url": "http://127.0.0.1:9/", "events": ["*"],
                    "auth": {"kind": "apikey", "key": "abc"}}"#,
            ),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["field"], "auth");
    assert!(
        body["error"].as_str().unwrap().contains("at least 4"),
        "{body}"
    );
    let out = h.cli(&[
        "webhook",
        "add",
        "--name",
        "n",
        "--url",
        "http://127.0.0.1:9/",
        "--events",
        "*",
        "--signing",
        r#"{"kind": "hmac", "secret": "xy"}"#,
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 4"));
    assert_eq!(
        h.sql_count("SELECT count(*) FROM webhooks"),
        0,
        "nothing stored"
    );

    // Four characters are accepted, and scrubbed from an echoing answer.
    let rx = Receiver::start_with_body("you sent key=abcd, thanks").await;
    let id = h.add(
        "echo",
        &rx.url("/hook"),
        &[
            "--log-bodies",
            "true",
            "--auth",
            r#"{"kind": "apikey", "key": "abcd"}"#,
        ],
    );
    let out = h.cli(&["test", &id.to_string()]);
    assert!(out.status.success(), "{out:?}");
    let entry = &h.wait_log(&["--webhook", &id.to_string()], 1)[0];
    let answer = entry["detail"]["response_body"].as_str().unwrap();
    assert_eq!(answer, "you sent key=***, thanks");
    assert!(!entry.to_string().contains("abcd"), "{entry}");
}

/// A stored secret stays with the origin it was given for: moving a webhook
/// (or its auth URL) to another host with the secret left out or masked is
/// refused, naming the secret to enter again; same-origin edits keep it.
#[tokio::test(flavor = "multi_thread")]
async fn a_stored_secret_does_not_follow_a_url_to_another_host() {
    use reqwest::Method;
    let h = Herald::new();
    let server = h.serve();
    let home = Receiver::start().await;
    let other = Receiver::start().await;
    let (status, created) = server
        .send(
            Method::POST,
            server.url("/api/v1/webhooks"),
            Some(
                &serde_json::json!({"name": "crm", "url": home.url("/hook"), "events": ["*"],
                    "auth": {"kind": "apikey", "header": "X-Api-Key", "key": "key-SECRET-1"}})
                .to_string(),
            ),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["webhook"]["id"].as_i64().unwrap();
    let put = |body: serde_json::Value| {
        let server = &server;
        async move {
            server
                .send(
                    Method::PUT,
                    server.url(&format!("/api/v1/webhooks/{id}")),
                    Some(&body.to_string()),
                )
                .await
        }
    };
    // Another port is another origin: left out, or masked, the key is not kept.
    for body in [
        serde_json::json!({"url": other.url("/hook")}),
        serde_json::json!({"url": other.url("/hook"), "auth": {"kind": "apikey", "header": "X-Api-Key", "key": "***"}}),
    ] {
        let (status, answer) = put(body).await;
        assert_eq!(status, 400, "{answer}");
        assert_eq!(answer["field"], "auth");
        let message = answer["error"].as_str().unwrap();
        assert!(message.contains("enter the key again"), "{message}");
    }
    // A copy to another host is refused the same way.
    let (status, answer) = server
        .send(
            Method::POST,
            server.url(&format!("/api/v1/webhooks/{id}/copy")),
            Some(&serde_json::json!({"url": other.url("/hook")}).to_string()),
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    // The CLI too.
    let out = h.cli(&[
        "webhook",
        "edit",
        &id.to_string(),
        "--url",
        &other.url("/x"),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("enter the key again"));
    // Nothing moved: a test send still goes home, with the key.
    let (status, report) = server
        .send(
            Method::POST,
            server.url(&format!("/api/v1/webhooks/{id}/test")),
            None,
        )
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        home.wait_for(1).await[0].headers["x-api-key"],
        "key-SECRET-1"
    );
    assert!(
        other.received().is_empty(),
        "nothing reached the other host"
    );
    // Same origin, another path: the key is kept.
    let (status, _) = put(serde_json::json!({"url": home.url("/elsewhere")})).await;
    assert_eq!(status, 200);
    // Another host with the key given again: saved, and sent there.
    let (status, answer) = put(serde_json::json!({"url": other.url("/hook"),
        "auth": {"kind": "apikey", "header": "X-Api-Key", "key": "key-SECRET-2"}}))
    .await;
    assert_eq!(status, 200, "{answer}");

    // The token flow's password stays with its auth URL.
    let (status, created) = server
        .send(
            Method::POST,
            server.url("/api/v1/webhooks"),
            Some(
                &serde_json::json!({"name": "pms", "url": home.url("/hook"), "events": ["*"],
                    "auth": {"kind": "token", "url": home.url("/login"), "username": "u", "password": "pw-SECRET-3"}})
                .to_string(),
            ),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let token_id = created["webhook"]["id"].as_i64().unwrap();
    let (status, answer) = server
        .send(
            Method::PUT,
            server.url(&format!("/api/v1/webhooks/{token_id}")),
            Some(
                &serde_json::json!({"auth": {"kind": "token", "url": other.url("/login"), "username": "u", "password": "***"}})
                    .to_string(),
            ),
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("enter the password again"),
        "{answer}"
    );
}
