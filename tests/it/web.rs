//! The web admin over real HTTP against the real binary: what answers
//! without a session, CSRF, the login limit, secrets in pages, and settings
//! that apply without a restart. (The browser walk-through is browser.rs.)

use reqwest::Method;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::json;

use crate::utils::*;

/// Form bodies as a browser sends them (reqwest's own `form` is not built in).
pub(crate) trait FormBody {
    fn form<T: serde::Serialize + ?Sized>(self, fields: &T) -> Self;
}

impl FormBody for reqwest::RequestBuilder {
    fn form<T: serde::Serialize + ?Sized>(self, fields: &T) -> Self {
        self.header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(serde_urlencoded::to_string(fields).unwrap())
    }
}

/// A logged-in browser, by hand: the session cookie and the CSRF token.
pub(crate) struct WebSession {
    pub(crate) http: reqwest::Client,
    pub(crate) base: String,
    pub(crate) cookie: String,
    pub(crate) csrf: String,
}

/// A client that shows redirects instead of following them.
pub(crate) fn plain_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The value of `name=` in the response's Set-Cookie headers.
pub(crate) fn set_cookie(resp: &reqwest::Response, name: &str) -> Option<(String, String)> {
    resp.headers().get_all(SET_COOKIE).iter().find_map(|v| {
        let text = v.to_str().ok()?;
        let value = text.strip_prefix(&format!("{name}="))?;
        Some((value.split(';').next()?.to_owned(), text.to_owned()))
    })
}

/// The `value` of the first hidden `csrf` input or csrf meta tag in a page.
pub(crate) fn csrf_in(html: &str) -> String {
    for marker in ["name=\"csrf\" value=\"", "name=\"csrf-token\" content=\""] {
        if let Some(rest) = html.split(marker).nth(1) {
            return rest.split('"').next().unwrap().to_owned();
        }
    }
    panic!("no CSRF token in page:\n{html}");
}

/// Posts the login form; returns the response.
pub(crate) async fn post_login(base: &str, password: &str) -> reqwest::Response {
    post_login_as(base, password, None, None).await
}

/// Posts the login form from source address `from` (any 127.x address),
/// sending the device cookie `device` if given.
pub(crate) async fn post_login_as(
    base: &str,
    password: &str,
    from: Option<std::net::IpAddr>,
    device: Option<&str>,
) -> reqwest::Response {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .local_address(from)
        .build()
        .unwrap();
    let page = http.get(format!("{base}/login")).send().await.unwrap();
    let (login_cookie, _) = set_cookie(&page, "herald_login").expect("login cookie");
    let token = csrf_in(&page.text().await.unwrap());
    let mut cookies = format!("herald_login={login_cookie}");
    if let Some(d) = device {
        cookies.push_str(&format!("; herald_device={d}"));
    }
    http.post(format!("{base}/login"))
        .header(COOKIE, cookies)
        .form(&[
            ("password", password),
            ("csrf", &token),
            ("next", "/webhooks"),
        ])
        .send()
        .await
        .unwrap()
}

impl WebSession {
    /// Logs in with `password`.
    pub(crate) async fn login(server: &Server, password: &str) -> WebSession {
        let base = server.url("");
        let resp = post_login(&base, password).await;
        assert_eq!(resp.status(), 303, "login should redirect");
        let (cookie, attributes) = set_cookie(&resp, "herald_session").expect("session cookie");
        for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
            assert!(attributes.contains(attr), "{attributes} lacks {attr}");
        }
        assert!(!attributes.contains("Secure"), "no Secure over plain HTTP");
        let mut s = WebSession {
            http: plain_client(),
            base,
            cookie,
            csrf: String::new(),
        };
        let (status, page) = s.get("/webhooks").await;
        assert_eq!(status, 200);
        s.csrf = csrf_in(&page);
        s
    }

    pub(crate) async fn get(&self, path: &str) -> (u16, String) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .header(COOKIE, format!("herald_session={}", self.cookie))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// Posts a form (the CSRF token added unless `csrf` is false).
    pub(crate) async fn post(
        &self,
        path: &str,
        fields: &[(&str, &str)],
        csrf: bool,
    ) -> reqwest::Response {
        let mut fields: Vec<(&str, &str)> = fields.to_vec();
        if csrf {
            fields.push(("csrf", &self.csrf));
        }
        self.http
            .post(format!("{}{path}", self.base))
            .header(COOKIE, format!("herald_session={}", self.cookie))
            .form(&fields)
            .send()
            .await
            .unwrap()
    }
}

pub(crate) fn initial_password(h: &Herald) -> String {
    std::fs::read_to_string(h.dir.path().join("initial-admin-password"))
        .unwrap()
        .trim()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn nothing_but_login_static_and_healthz_answers_without_a_session_or_key() {
    let h = Herald::new();
    let server = h.serve();
    let id = h.add("w", "http://127.0.0.1:9/", &[]);
    let http = plain_client();
    for (path, public) in [
        ("/login", true),
        ("/static/app.css", true),
        ("/static/app.js", true),
        ("/favicon.ico", true),
        ("/healthz", true),
        ("/", false),
        ("/webhooks", false),
        ("/webhooks/new", false),
        (&format!("/webhooks/{id}"), false),
        (&format!("/webhooks/{id}/delete"), false),
        ("/log", false),
        ("/log/1", false),
        ("/log/stream", false),
        ("/settings", false),
    ] {
        for cookie in [None, Some("herald_session=forged")] {
            let mut req = http.get(server.url(path));
            if let Some(c) = cookie {
                req = req.header(COOKIE, c);
            }
            let r = req.send().await.unwrap();
            if public {
                assert_eq!(r.status(), 200, "{path} is public");
            } else if path == "/" {
                // The root redirects to the webhooks page, which needs a session.
                assert_eq!(r.status(), 303);
            } else {
                assert_eq!(r.status(), 303, "{path} without a session");
                let to = r.headers()[LOCATION].to_str().unwrap();
                assert!(to.starts_with("/login?next="), "{path} → {to}");
            }
        }
    }
    for path in [
        "/webhooks/new".to_owned(),
        format!("/webhooks/{id}"),
        format!("/webhooks/{id}/disable"),
        format!("/webhooks/{id}/delete"),
        "/webhooks/preview".into(),
        "/log/retry".into(),
        "/settings".into(),
        "/settings/api-keys".into(),
        "/settings/api-keys/1/revoke".into(),
        "/settings/password".into(),
        "/logout".into(),
    ] {
        let r = http
            .post(server.url(&path))
            .header(COOKIE, "herald_session=forged")
            .form(&[("name", "x"), ("csrf", "x")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "POST {path} without a session");
    }
    for path in ["/api/v1/webhooks", "/api/v1/log", "/api/v1/api-keys"] {
        let r = http
            .get(server.url(path))
            .header(COOKIE, "herald_session=forged")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{path} with a forged session");
    }
    // Nothing changed.
    let (_, w) = server
        .send(
            Method::GET,
            server.url(&format!("/api/v1/webhooks/{id}")),
            None,
        )
        .await;
    assert_eq!(w["enabled"], true);
    assert_eq!(w["name"], "w");
    assert_eq!(h.sql_count("SELECT count(*) FROM webhooks"), 1);
    assert_eq!(h.sql_count("SELECT count(*) FROM sessions"), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn forms_and_api_writes_need_the_sessions_csrf_token() {
    let h = Herald::new();
    let server = h.serve();
    let id = h.add("w", "http://127.0.0.1:9/", &[]);
    let s = WebSession::login(&server, &initial_password(&h)).await;
    let disable = format!("/webhooks/{id}/disable");
    let r = s.post(&disable, &[], false).await;
    assert_eq!(r.status(), 403, "no token");
    let r = s.post(&disable, &[("csrf", "guessed")], false).await;
    assert_eq!(r.status(), 403, "wrong token");
    assert_eq!(
        h.sql_count(&format!("SELECT enabled FROM webhooks WHERE id = {id}")),
        1
    );
    let r = s.post(&disable, &[], true).await;
    assert_eq!(r.status(), 303);
    assert_eq!(
        h.sql_count(&format!("SELECT enabled FROM webhooks WHERE id = {id}")),
        0
    );
    // Another session's token is not this one's.
    let other = WebSession::login(&server, &initial_password(&h)).await;
    assert_ne!(other.csrf, s.csrf);
    let r = s
        .post(
            &format!("/webhooks/{id}/enable"),
            &[("csrf", &other.csrf)],
            false,
        )
        .await;
    assert_eq!(r.status(), 403);

    // The API with the session cookie: reads pass, writes need X-CSRF-Token.
    let api = |m: Method, path: &str| {
        s.http
            .request(m, server.url(path))
            .header(COOKIE, format!("herald_session={}", s.cookie))
    };
    let r = api(Method::GET, "/api/v1/webhooks").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let pause = format!("/api/v1/webhooks/{id}/pause");
    let r = api(Method::POST, &pause).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        h.sql_count(&format!(
            "SELECT count(*) FROM webhooks WHERE id = {id} AND paused_at IS NOT NULL"
        )),
        0
    );
    let r = api(Method::POST, &pause)
        .header("X-CSRF-Token", &s.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // The login form needs its own token (cookie and field agreeing).
    let r = plain_client()
        .post(server.url("/login"))
        .form(&[("password", initial_password(&h).as_str()), ("csrf", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(set_cookie(&r, "herald_session").is_none());

    // Logging out ends the session for good.
    let r = s.post("/logout", &[], true).await;
    assert_eq!(r.status(), 303);
    let (status, _) = s.get("/webhooks").await;
    assert_eq!(status, 303);
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_logins_are_limited_per_address() {
    let h = Herald::new();
    let server = h.serve();
    let base = server.url("");
    for _ in 0..5 {
        let r = post_login(&base, "wrong password").await;
        assert_eq!(r.status(), 401);
        assert!(r.text().await.unwrap().contains("Wrong password."));
    }
    // Even the right password is refused now, with a time to come back.
    let r = post_login(&base, &initial_password(&h)).await;
    assert_eq!(r.status(), 429);
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(wait > 0 && wait <= 15 * 60, "Retry-After {wait}");
    assert!(set_cookie(&r, "herald_session").is_none());
    assert!(r.text().await.unwrap().contains("Too many failed logins"));
    assert_eq!(h.sql_count("SELECT count(*) FROM sessions"), 0);
    assert!(server.log().contains("failed web admin login"));
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_never_appear_in_a_page_or_api_response() {
    let h = Herald::new();
    let server = h.serve();
    let rx = Receiver::start().await;
    rx.require_auth(Some("Basic dXNlcjpwdy1TRUNSRVQtMQ=="));
    let secrets = ["pw-SECRET-1", "hmac-SECRET-2", "tok-SECRET-3"];
    let (status, created) = server
        .send(
            Method::POST,
            server.url("/api/v1/webhooks"),
            Some(
                &json!({
                    "name": "basic", "url": rx.url("/a"), "events": ["ticket.login"],
                    "body_template": "{\"u\": \"<<event.uuid>>\"}", "log_bodies": true,
                    "retry": {"kind": "once"},
                    "auth": {"kind": "basic", "username": "user", "password": secrets[0]},
                    "signing": {"kind": "hmac", "secret": secrets[1]},
                })
                .to_string(),
            ),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["webhook"]["id"].as_i64().unwrap();
    let (status, _) = server
        .send(
            Method::POST,
            server.url("/api/v1/webhooks"),
            Some(
                &json!({
                    "name": "bearer", "url": rx.url("/b"), "events": ["system.start"],
                    "auth": {"kind": "bearer", "token": secrets[2]},
                })
                .to_string(),
            ),
        )
        .await;
    assert_eq!(status, 201);
    let password = initial_password(&h);
    let s = WebSession::login(&server, &password).await;

    // The edit form posted back unchanged keeps the stored secrets: the
    // receiver still accepts the credentials.
    let (_, form) = s.get(&format!("/webhooks/{id}")).await;
    assert!(form.contains("value=\"***\""), "secrets show masked");
    let fields = form_fields(&form);
    let pairs: Vec<(&str, &str)> = fields
        .iter()
        .filter(|(k, _)| k != "csrf")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .chain([("action", "save")])
        .collect();
    let r = s.post(&format!("/webhooks/{id}"), &pairs, true).await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    h.ok(&["emit", "ticket.login", "--ticket", "T-1"]);
    let got = rx.wait_for(1).await;
    assert_eq!(
        got[0].headers["authorization"],
        "Basic dXNlcjpwdy1TRUNSRVQtMQ=="
    );
    let entries = h.wait_log(&["--webhook", &id.to_string()], 1);
    assert_eq!(entries[0]["outcome"], "delivered", "{entries:#?}");

    let mut pages = vec![
        "/webhooks".to_owned(),
        format!("/webhooks/{id}"),
        format!("/webhooks/{}", id + 1),
        format!("/webhooks/{id}/delete"),
        "/log".into(),
        "/settings".into(),
    ];
    pages.extend(entries.iter().map(|e| format!("/log/{}", e["id"])));
    for page in &pages {
        let (status, html) = s.get(page).await;
        assert_eq!(status, 200, "{page}");
        for secret in secrets
            .iter()
            .chain([&password.as_str(), &server.key.as_str()])
        {
            assert!(!html.contains(secret), "{page} shows {secret}");
        }
    }
    for path in ["/api/v1/webhooks", "/api/v1/log", "/api/v1/api-keys"] {
        let (status, body) = server.send(Method::GET, server.url(path), None).await;
        assert_eq!(status, 200);
        let text = body.to_string();
        for secret in secrets
            .iter()
            .chain([&password.as_str(), &server.key.as_str()])
        {
            assert!(!text.contains(secret), "{path} shows {secret}");
        }
    }
}

/// The named inputs, selects and textareas of a page's webhook form as
/// the browser would post them (checked boxes only; selected options).
fn form_fields(html: &str) -> Vec<(String, String)> {
    let form = html
        .split("id=\"webhook-form\"")
        .nth(1)
        .and_then(|s| s.split("</form>").next())
        .expect("webhook form");
    let attr = |tag: &str, name: &str| -> Option<String> {
        let rest = tag.split(&format!(" {name}=\"")).nth(1)?;
        Some(unescape(rest.split('"').next()?))
    };
    let mut out = Vec::new();
    for part in form.split('<').skip(1) {
        let tag = part.split('>').next().unwrap_or("");
        if let Some(rest) = tag.strip_prefix("input ") {
            let Some(name) = attr(rest, "name") else {
                continue;
            };
            let kind = attr(rest, "type").unwrap_or_else(|| "text".into());
            if kind == "checkbox" && !rest.contains(" checked") {
                continue;
            }
            let value = attr(rest, "value").unwrap_or_else(|| "on".into());
            out.push((name, value));
        } else if let Some(rest) = tag.strip_prefix("textarea ") {
            let name = attr(rest, "name").unwrap();
            let body = part.split_once('>').map(|(_, b)| b).unwrap_or("");
            out.push((name, unescape(body)));
        } else if let Some(rest) = tag.strip_prefix("select ") {
            let name = attr(rest, "name").unwrap();
            let select = form
                .split(tag)
                .nth(1)
                .unwrap()
                .split("</select>")
                .next()
                .unwrap();
            let selected = select
                .split("<option ")
                .skip(1)
                .find(|o| o.contains(" selected"))
                .or_else(|| select.split("<option ").nth(1))
                .and_then(|o| attr(&format!(" {o}"), "value"))
                .unwrap_or_default();
            out.push((name, selected));
        }
    }
    out
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&#x2f;", "/")
        .replace("&amp;", "&")
}

#[tokio::test(flavor = "multi_thread")]
async fn settings_saved_in_the_page_apply_at_once_and_win_over_the_config_after_a_restart() {
    let mut h = Herald::new();
    // An hour between reads: only the saved setting can make a plain SQL
    // insert arrive while the test waits.
    h.set_env("HERALD_ROUTER_READ_INTERVAL", "3600");
    let server = h.serve();
    let rx = Receiver::start().await;
    h.add("w", &rx.url("/"), &["--retry", "once"]);
    let s = WebSession::login(&server, &initial_password(&h)).await;
    let (_, page) = s.get("/settings").await;
    assert!(
        page.contains("environment HERALD_ROUTER_READ_INTERVAL"),
        "source shown"
    );

    let fields = |interval: &'static str, schedule: &'static str| {
        vec![
            ("router.read_interval", interval),
            ("cleanup.schedule", schedule),
            ("cleanup.retention_days", "7"),
            ("delivery.pause_after", "86400"),
            ("alerts.after", "300"),
            ("alerts.interval", "3600"),
            ("delivery.enabled", "true"),
        ]
    };
    // Refused values name their key, keep what was typed, store nothing.
    for (bad, key) in [
        (fields("0", "0 0 * * * *"), "router.read_interval"),
        (fields("0.2", "every hour"), "cleanup.schedule"),
    ] {
        let r = s.post("/settings", &bad, true).await;
        assert_eq!(r.status(), 400);
        let html = r.text().await.unwrap();
        assert!(html.contains(key), "the error names {key}");
        assert!(html.contains(&format!(
            "value=\"{}\"",
            bad.iter().find(|(k, _)| *k == key).unwrap().1
        )));
    }
    // Every refused value is named, not only the first.
    let r = s.post("/settings", &fields("0", "every hour"), true).await;
    assert_eq!(r.status(), 400);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("router.read_interval = 0:") && html.contains("cleanup.schedule = "),
        "both errors shown: {html}"
    );
    assert_eq!(
        h.sql_count("SELECT count(*) FROM settings WHERE key LIKE 'ui:%'"),
        0
    );

    let r = s
        .post("/settings", &fields("0.2", "0 0 * * * *"), true)
        .await;
    assert_eq!(r.status(), 303);
    // Only the changed key is stored.
    assert_eq!(
        h.sql_rows("SELECT key || '=' || value FROM settings WHERE key LIKE 'ui:%'"),
        ["ui:router.read_interval=0.2"]
    );
    h.sql(
        "INSERT INTO events (uuid, type, created_at, data) VALUES
         ('7d2c6f7e-2a51-4c1a-9d0e-000000000001', 'ticket.login', '2026-11-23T10:00:00Z', '{}')",
    );
    rx.wait_for(1).await;

    // After a restart the saved value still wins over the environment.
    drop(server);
    let server = h.serve();
    let s = WebSession::login(&server, &initial_password(&h)).await;
    let (_, page) = s.get("/settings").await;
    assert!(page.contains("value=\"0.2\""));
    assert!(page.contains("saved here"));
    h.sql(
        "INSERT INTO events (uuid, type, created_at, data) VALUES
         ('7d2c6f7e-2a51-4c1a-9d0e-000000000002', 'ticket.login', '2026-11-23T10:00:01Z', '{}')",
    );
    rx.wait_for(2).await;
    // Saving the config's value again follows the config again.
    let r = s
        .post("/settings", &fields("3600", "0 0 * * * *"), true)
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(
        h.sql_count("SELECT count(*) FROM settings WHERE key LIKE 'ui:%'"),
        0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn changing_the_password_logs_out_other_sessions() {
    let h = Herald::new();
    let server = h.serve();
    let old = initial_password(&h);
    let a = WebSession::login(&server, &old).await;
    let b = WebSession::login(&server, &old).await;
    let change = |current: &'static str, new: &'static str, repeat: &'static str| {
        vec![("current", current), ("new", new), ("repeat", repeat)]
    };
    let r = a
        .post(
            "/settings/password",
            &change("wrong", "a new password", "a new password"),
            true,
        )
        .await;
    assert_eq!(r.status(), 400);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("current password is wrong")
    );
    let current: &'static str = Box::leak(old.clone().into_boxed_str());
    let r = a
        .post(
            "/settings/password",
            &change(current, "short", "short"),
            true,
        )
        .await;
    assert_eq!(r.status(), 400);
    let r = a
        .post(
            "/settings/password",
            &change(current, "a new password", "a new password"),
            true,
        )
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(a.get("/webhooks").await.0, 200, "this session stays");
    assert!(
        !h.dir.path().join("initial-admin-password").exists(),
        "the generated password's file is gone"
    );
    assert_eq!(b.get("/webhooks").await.0, 303, "the other one ended");
    assert_eq!(post_login(&server.url(""), &old).await.status(), 401);
    let c = WebSession::login(&server, "a new password").await;
    // The CLI's set-password ends every session.
    let out = h.cli_stdin(&["admin", "set-password"], Some("another password\n"));
    assert!(out.status.success());
    assert_eq!(a.get("/webhooks").await.0, 303);
    assert_eq!(c.get("/webhooks").await.0, 303);
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_outside_a_form_body_or_header_and_foreign_redirects_are_refused() {
    let h = Herald::new();
    let server = h.serve();
    let id = h.add("w", "http://127.0.0.1:9/", &[]);
    let s = WebSession::login(&server, &initial_password(&h)).await;
    let disable = server.url(&format!("/webhooks/{id}/disable"));
    let cookie = format!("herald_session={}", s.cookie);
    // The right token, but in a body type a cross-site form could send as it likes.
    let r = s
        .http
        .post(&disable)
        .header(COOKIE, &cookie)
        .header(reqwest::header::CONTENT_TYPE, "text/plain")
        .body(format!("csrf={}", s.csrf))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = s
        .http
        .post(&disable)
        .header(COOKIE, &cookie)
        .header("X-CSRF-Token", "guessed")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        h.sql_count(&format!("SELECT enabled FROM webhooks WHERE id = {id}")),
        1
    );
    // After login only local paths are followed; a tab would let a browser
    // read `/<TAB>/evil` as `//evil`.
    for next in [
        "/%09/evil.example",
        "//evil.example",
        "https://evil.example",
    ] {
        let r = s
            .http
            .get(server.url(&format!("/login?next={next}")))
            .header(COOKIE, &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303);
        assert_eq!(r.headers()[LOCATION], "/webhooks", "next={next}");
    }
    let r = s
        .post(
            "/log/retry",
            &[("webhook", &id.to_string()), ("back", "/\t/evil.example")],
            true,
        )
        .await;
    assert_eq!(r.status(), 303);
    assert!(
        r.headers()[LOCATION]
            .to_str()
            .unwrap()
            .starts_with("/log?notice=retried")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_form_older_than_the_webhook_is_refused_and_a_copy_signs_with_its_own_secret() {
    let h = Herald::new();
    let server = h.serve();
    let (status, created) = server
        .send(
            Method::POST,
            server.url("/api/v1/webhooks"),
            Some(
                &json!({"name": "signed", "url": "http://127.0.0.1:9/", "events": ["ticket.login"],
                        "signing": {"kind": "standard"}})
                .to_string(),
            ),
        )
        .await;
    assert_eq!(status, 201);
    let id = created["webhook"]["id"].as_i64().unwrap();
    let original_secret = created["new_secret"].as_str().unwrap().to_owned();
    let s = WebSession::login(&server, &initial_password(&h)).await;
    let (_, form) = s.get(&format!("/webhooks/{id}")).await;
    let fields = form_fields(&form);
    // Someone else renames it after the form was loaded.
    let (status, _) = server
        .send(
            Method::PUT,
            server.url(&format!("/api/v1/webhooks/{id}")),
            Some(r#"{"name": "renamed by the API"}"#),
        )
        .await;
    assert_eq!(status, 200);
    let pairs = |action: &'static str| -> Vec<(String, String)> {
        fields
            .iter()
            .filter(|(k, _)| k != "csrf")
            .cloned()
            .chain([("action".to_owned(), action.to_owned())])
            .collect()
    };
    let save = pairs("save");
    let save: Vec<(&str, &str)> = save.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let r = s.post(&format!("/webhooks/{id}"), &save, true).await;
    assert_eq!(r.status(), 409);
    assert!(r.text().await.unwrap().contains("changed by someone else"));
    assert_eq!(
        h.sql_rows(&format!("SELECT name FROM webhooks WHERE id = {id}")),
        ["renamed by the API"]
    );
    // Save as copy: a new webhook with its own secret, shown once.
    let copy = pairs("copy");
    let copy: Vec<(&str, &str)> = copy.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let r = s.post(&format!("/webhooks/{id}"), &copy, true).await;
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    let shown = page
        .split("id=\"new-secret\">")
        .nth(1)
        .and_then(|p| p.split('<').next())
        .expect("the copy's secret is shown once");
    assert!(shown.starts_with("whsec_"));
    assert_ne!(shown, original_secret);
    assert_eq!(h.sql_count("SELECT count(*) FROM webhooks"), 2);
    let (_, again) = s.get(&format!("/webhooks/{}", id + 1)).await;
    assert!(!again.contains(shown), "shown once only");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_live_log_stream_tells_of_new_entries_and_ends_with_the_session() {
    let h = Herald::new();
    let server = h.serve();
    let rx = Receiver::start().await;
    h.add("w", &rx.url("/"), &[]);
    let s = WebSession::login(&server, &initial_password(&h)).await;
    // An entry written before the stream opens but after the page the
    // stream continues (`after=0`: the page showed none) is announced.
    h.ok(&["emit", "ticket.login", "--ticket", "T-1"]);
    h.wait_log(&[], 1);
    let mut resp = s
        .http
        .get(server.url("/log/stream?after=0"))
        .header(COOKIE, format!("herald_session={}", s.cookie))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut seen = String::new();
    tokio::time::timeout(PATIENCE, async {
        while !seen.contains("event: entries") {
            let chunk = resp.chunk().await.unwrap().expect("stream open");
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await
    .expect("an entries event");
    s.post("/logout", &[], true).await;
    tokio::time::timeout(PATIENCE, async {
        while let Ok(Some(_)) = resp.chunk().await {}
    })
    .await
    .expect("the stream ends after logout");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_cleanup_schedule_applies_at_once_and_cleanup_now_uses_the_saved_retention() {
    let h = Herald::new();
    let server = h.serve();
    let old_entry = "INSERT INTO log (at, outcome, error) VALUES ('2020-01-01T00:00:00.000Z', 'invalid', 'old')";
    h.sql(old_entry);
    let s = WebSession::login(&server, &initial_password(&h)).await;
    // Hourly by default: only the new schedule (every second) can run it while the test waits.
    let r = s
        .post(
            "/settings",
            &[
                ("router.read_interval", "0.2"),
                ("cleanup.schedule", "* * * * * *"),
                ("cleanup.retention_days", "30"),
                ("delivery.pause_after", "86400"),
                ("alerts.after", "300"),
                ("alerts.interval", "3600"),
                ("delivery.enabled", "true"),
            ],
            true,
        )
        .await;
    assert_eq!(r.status(), 303);
    eventually("the cleanup ran on its new schedule", || {
        h.sql_count("SELECT count(*) FROM log WHERE error = 'old'") == 0
    });
    // `cleanup --now` takes the retention saved in the page, not the default 7.
    h.sql(old_entry);
    let out = h.ok(&["cleanup", "--now"]);
    assert!(out.contains("older than 30 days"), "{out}");
    assert_eq!(
        h.sql_count("SELECT count(*) FROM log WHERE error = 'old'"),
        0
    );
}

#[test]
fn saved_settings_this_version_refuses_leave_herald_running_on_the_config() {
    let h = Herald::new();
    h.api_key("read"); // creates the database
    h.sql(
        "INSERT INTO settings (key, value, updated_at) VALUES ('ui:router.read_interval', '0', '2026-11-23T10:00:00Z')",
    );
    let server = h.serve();
    assert!(
        server
            .log()
            .contains("settings saved in the web admin are invalid"),
        "{}",
        server.log()
    );
    // `cleanup --now` refuses them with a way out instead of guessing.
    let out = h.cli(&["cleanup", "--now"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("save them again"));
}
