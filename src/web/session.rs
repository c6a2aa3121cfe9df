//! Logins and sessions of the web admin: the login page, the session cookie
//! (HttpOnly, SameSite=Strict, Secure over HTTPS), the CSRF token every
//! write must carry, and the limit on failed logins.
//!
//! Only the SHA-256 of a session cookie is stored (table `sessions`), so a
//! copy of the database logs nobody in. A session ends after
//! [`IDLE`] without use, [`MAX_AGE`] after login, at logout, or when the
//! password changes.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::Extension;
use axum::body::{Body, to_bytes};
use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::WebError;
use crate::server::AppState;
use crate::store::{Session, now_ms};

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "herald_session";
/// Name of the cookie holding the login form's CSRF token (before a session exists).
const LOGIN_COOKIE: &str = "herald_login";
/// Header a script sends the CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Form field a page sends the CSRF token in.
pub const CSRF_FIELD: &str = "csrf";
/// A session unused this long ends.
pub const IDLE: Duration = Duration::from_secs(8 * 3600);
/// A session ends this long after login, used or not.
pub const MAX_AGE: Duration = Duration::from_secs(7 * 86_400);
/// Failed logins one address may make within [`FAILURE_WINDOW`].
pub const MAX_FAILURES_PER_ADDRESS: usize = 5;
/// Failed logins all addresses together may make within [`FAILURE_WINDOW`].
const MAX_FAILURES_TOTAL: usize = 50;
/// How long a failed login counts against its address.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);

/// Counts failed logins per client address and in total, in memory: a
/// restart forgets them, which costs an attacker a restart per five tries.
#[derive(Default)]
pub struct LoginLimiter {
    failures: Mutex<Failures>,
}

#[derive(Default)]
struct Failures {
    by_address: HashMap<IpAddr, VecDeque<Instant>>,
    all: VecDeque<Instant>,
}

fn forget_old(q: &mut VecDeque<Instant>, now: Instant) {
    while q
        .front()
        .is_some_and(|t| now.duration_since(*t) >= FAILURE_WINDOW)
    {
        q.pop_front();
    }
}

impl LoginLimiter {
    /// `Some(wait)` while `ip` (or everyone) has used up its failed logins.
    fn blocked(&self, ip: IpAddr) -> Option<Duration> {
        let now = Instant::now();
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        forget_old(&mut f.all, now);
        let mut wait = None;
        if f.all.len() >= MAX_FAILURES_TOTAL {
            wait = f
                .all
                .front()
                .map(|t| FAILURE_WINDOW - now.duration_since(*t));
        }
        if let Some(q) = f.by_address.get_mut(&ip) {
            forget_old(q, now);
            if q.len() >= MAX_FAILURES_PER_ADDRESS {
                let w = q.front().map(|t| FAILURE_WINDOW - now.duration_since(*t));
                wait = wait.max(w);
            }
            if q.is_empty() {
                f.by_address.remove(&ip);
            }
        }
        wait
    }

    /// Starts a login attempt from `ip`: `Err(wait)` while it (or everyone)
    /// has used up its failed logins; otherwise the attempt counts as failed
    /// until [`LoginLimiter::succeeded`] says otherwise. Counting before the
    /// password is checked keeps parallel guesses within the limit.
    pub fn attempt(&self, ip: IpAddr) -> Result<(), Duration> {
        if let Some(wait) = self.blocked(ip) {
            return Err(wait);
        }
        let now = Instant::now();
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        f.all.push_back(now);
        f.by_address.entry(ip).or_default().push_back(now);
        Ok(())
    }

    /// A good login: its attempt does not count, and its address starts afresh.
    pub fn succeeded(&self, ip: IpAddr) {
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        f.all.pop_back();
        f.by_address.remove(&ip);
    }
}

/// A session cookie or CSRF token ([`crate::access::new_token`]).
fn random_token() -> Result<String, WebError> {
    crate::access::new_token().map_err(WebError::internal)
}

/// Compares two tokens in time that does not depend on where they differ.
pub fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// Did the request reach us over HTTPS? herald listens on plain HTTP; a TLS
/// proxy in front says so with `X-Forwarded-Proto: https`. (A client lying
/// about it only makes its own cookie stricter.)
fn over_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// A `Set-Cookie` value with herald's cookie attributes.
fn set_cookie(name: &str, value: &str, max_age: Duration, secure: bool) -> HeaderValue {
    let mut c = format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
        max_age.as_secs()
    );
    if secure {
        c.push_str("; Secure");
    }
    HeaderValue::from_str(&c).expect("cookie values are base64url")
}

/// The live session of a request, if its cookie names one (and extends it).
pub async fn current(state: &AppState, headers: &HeaderMap) -> Result<Option<Session>, WebError> {
    let Some(token) = cookie(headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    let digest = crate::access::key_digest(token);
    let session = state
        .store
        .run(move |s| {
            s.touch_session(
                &digest,
                now_ms(),
                IDLE.as_millis() as i64,
                MAX_AGE.as_millis() as i64,
            )
        })
        .await?;
    Ok(session)
}

/// Is `method` one that changes nothing (and so needs no CSRF token)?
pub fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Checks the CSRF token of a write: the `X-CSRF-Token` header, or the
/// `csrf` field of a form body (read and put back). `Err` is the response.
pub async fn check_csrf(
    session: &Session,
    req: Request,
    max_body: usize,
) -> Result<Request, Response> {
    let refuse = || {
        WebError::new(
            StatusCode::FORBIDDEN,
            "the form's security token is missing or stale: reload the page and try again",
        )
        .into_response()
    };
    if let Some(sent) = req.headers().get(CSRF_HEADER) {
        return match sent.to_str() {
            Ok(t) if same_token(t, &session.csrf) => Ok(req),
            _ => Err(refuse()),
        };
    }
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Err(refuse());
    }
    let (parts, body) = req.into_parts();
    let bytes = to_bytes(body, max_body).await.map_err(|_| {
        WebError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "the form is larger than server.max_body_bytes",
        )
        .into_response()
    })?;
    let token = form_urlencoded_value(&bytes, CSRF_FIELD);
    match token {
        Some(t) if same_token(&t, &session.csrf) => {
            Ok(Request::from_parts(parts, Body::from(bytes)))
        }
        _ => Err(refuse()),
    }
}

/// The first value of `name` in a form body.
fn form_urlencoded_value(body: &[u8], name: &str) -> Option<String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// The gate of every page: a live session, and on writes its CSRF token.
/// Without a session a page redirects to the login page (coming back after).
pub async fn require_session(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let session = match current(&state, req.headers()).await {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let Some(session) = session else {
        if is_safe(req.method()) {
            let path = req
                .uri()
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/");
            let target = format!(
                "/login?next={}",
                percent_encoding::utf8_percent_encode(path, percent_encoding::NON_ALPHANUMERIC)
            );
            return Redirect::to(&target).into_response();
        }
        return WebError::new(
            StatusCode::UNAUTHORIZED,
            "your session has ended: log in again",
        )
        .into_response();
    };
    let mut req = req;
    if !is_safe(req.method()) {
        req = match check_csrf(&session, req, state.config.max_body_bytes).await {
            Ok(r) => r,
            Err(resp) => return resp,
        };
    }
    req.extensions_mut().insert(session);
    let mut resp = next.run(req).await;
    // Pages show data an admin may not want cached on a shared machine.
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// Query of the login page.
#[derive(Debug, Default, Deserialize)]
pub struct LoginQuery {
    /// Where to go after logging in (a local path).
    next: Option<String>,
}

/// Only local paths are followed after login (no open redirect): a single
/// leading `/`, and no backslash, whitespace or control character (browsers
/// drop tabs and new lines, so `/\t/evil` would become `//evil`).
pub fn local_path(next: Option<&str>) -> &str {
    match next {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && !p
                    .chars()
                    .any(|c| c == '\\' || c.is_whitespace() || c.is_control()) =>
        {
            p
        }
        _ => "/webhooks",
    }
}

/// `GET /login`: the login form, with a fresh token in a cookie and the form.
pub async fn login_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<LoginQuery>,
) -> Result<Response, WebError> {
    if current(&state, &headers).await?.is_some() {
        return Ok(Redirect::to(local_path(q.next.as_deref())).into_response());
    }
    login_form(&state, &headers, q.next.as_deref(), None, StatusCode::OK)
}

/// The login form with `error`, setting a new login token.
fn login_form(
    state: &AppState,
    headers: &HeaderMap,
    next: Option<&str>,
    error: Option<String>,
    status: StatusCode,
) -> Result<Response, WebError> {
    let token = random_token()?;
    let html = state.pages.render(
        "login.html",
        serde_json::json!({
            "csrf": token,
            "next": local_path(next),
            "error": error,
        }),
    )?;
    let mut resp = (status, html).into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie(
            LOGIN_COOKIE,
            &token,
            Duration::from_secs(3600),
            over_https(headers),
        ),
    );
    Ok(resp)
}

/// The login form as posted.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    password: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    next: Option<String>,
}

/// `POST /login`: checks the login token and the password (argon2); on
/// success starts a session and goes to `next`.
pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<LoginForm>,
) -> Result<Response, WebError> {
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !same_token(expected, &form.csrf) {
        return login_form(
            &state,
            &headers,
            form.next.as_deref(),
            Some("The login form expired. Enter the password again.".into()),
            StatusCode::FORBIDDEN,
        );
    }
    let ip = peer.ip();
    if let Err(wait) = state.logins.attempt(ip) {
        let minutes = wait.as_secs().div_ceil(60).max(1);
        let mut resp = login_form(
            &state,
            &headers,
            form.next.as_deref(),
            Some(format!(
                "Too many failed logins. Try again in {minutes} minute{}.",
                if minutes == 1 { "" } else { "s" }
            )),
            StatusCode::TOO_MANY_REQUESTS,
        )?;
        resp.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(wait.as_secs().max(1)),
        );
        return Ok(resp);
    }
    let password = form.password;
    let ok = state
        .store
        .run(move |s| {
            Ok(s.admin_password_hash()?
                .is_some_and(|h| crate::access::verify_password(&h, &password)))
        })
        .await?;
    if !ok {
        tracing::warn!(client = %ip, "failed web admin login");
        return login_form(
            &state,
            &headers,
            form.next.as_deref(),
            Some("Wrong password.".into()),
            StatusCode::UNAUTHORIZED,
        );
    }
    state.logins.succeeded(ip);
    let token = random_token()?;
    let csrf = random_token()?;
    let digest = crate::access::key_digest(&token);
    let now = now_ms();
    state
        .store
        .run(move |s| s.insert_session(&digest, &csrf, now, now + IDLE.as_millis() as i64))
        .await?;
    tracing::info!(client = %ip, "web admin login");
    let secure = over_https(&headers);
    let mut resp = Redirect::to(local_path(form.next.as_deref())).into_response();
    let h = resp.headers_mut();
    h.append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, &token, MAX_AGE, secure),
    );
    h.append(
        header::SET_COOKIE,
        set_cookie(LOGIN_COOKIE, "", Duration::ZERO, secure),
    );
    Ok(resp)
}

/// `POST /logout` (behind the session gate, so with a CSRF token).
pub async fn logout(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    let digest = session.digest.clone();
    state.store.run(move |s| s.delete_session(&digest)).await?;
    let mut resp = Redirect::to("/login").into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, "", Duration::ZERO, over_https(&headers)),
    );
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_failures_block_an_address_not_others() {
        let l = LoginLimiter::default();
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        // A good login does not count.
        l.attempt(a).unwrap();
        l.succeeded(a);
        for _ in 0..MAX_FAILURES_PER_ADDRESS {
            assert!(l.attempt(a).is_ok());
        }
        assert!(
            l.attempt(a).is_err(),
            "the sixth attempt is refused before any password check"
        );
        let wait = l.blocked(a).expect("blocked after five failures");
        assert!(wait <= FAILURE_WINDOW && wait > FAILURE_WINDOW - Duration::from_secs(60));
        assert!(l.blocked(b).is_none());
    }

    #[test]
    fn only_local_paths_are_followed() {
        assert_eq!(local_path(Some("/log?x=1")), "/log?x=1");
        assert_eq!(local_path(Some("//evil.example")), "/webhooks");
        assert_eq!(local_path(Some("https://evil.example")), "/webhooks");
        assert_eq!(local_path(Some("/\\evil")), "/webhooks");
        assert_eq!(local_path(Some("/\t/evil.example")), "/webhooks");
        assert_eq!(local_path(Some("/\n/evil.example")), "/webhooks");
        assert_eq!(local_path(Some("/ /evil.example")), "/webhooks");
        assert_eq!(local_path(None), "/webhooks");
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, "a=1; herald_session=abc".parse().unwrap());
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "b"), None);
        assert!(same_token("abc", "abc"));
        assert!(!same_token("abc", "abd"));
        assert!(!same_token("abc", "ab"));
    }

    #[test]
    fn the_csrf_field_is_read_from_a_form() {
        assert_eq!(
            form_urlencoded_value(b"a=1&csrf=x%2By&b=2", "csrf").as_deref(),
            Some("x+y")
        );
        assert_eq!(form_urlencoded_value(b"a=1", "csrf"), None);
    }
}
