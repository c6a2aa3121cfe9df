//! Logins and sessions of the web admin: the login page, the session cookie
//! (HttpOnly, SameSite=Strict, Secure over HTTPS), the CSRF token every
//! write must carry, and the limit on failed logins.
//!
//! Only the SHA-256 of a session cookie is stored (table `sessions`), so a
//! copy of the database logs nobody in. A session ends after
//! [`IDLE`] without use, [`MAX_AGE`] after login, at logout, or when the
//! password changes.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Extension;
use axum::body::{Body, to_bytes};
use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::page::WebError;
use crate::store::{Session, now_ms};
use crate::surfaces::shared::AppState;
use crate::surfaces::shared::limiter::{Guesser, wait_message};
pub use crate::surfaces::shared::session::{
    CSRF_FIELD, CSRF_HEADER, DEVICE_COOKIE, DEVICE_MAX_AGE, IDLE, MAX_AGE, SESSION_COOKIE, cookie,
    current, guesser, is_safe, password_matches, same_token,
};

/// Name of the cookie holding the login form's CSRF token (before a session exists).
const LOGIN_COOKIE: &str = "herald_login";

/// A session cookie or CSRF token ([`crate::engines::access::new_token`]).
fn random_token() -> Result<String, WebError> {
    crate::engines::access::new_token().map_err(WebError::internal)
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
        Err(e) => return WebError::from(e).into_response(),
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
    login_form(&headers, q.next.as_deref(), None, StatusCode::OK)
}

/// The login form with `error`, setting a new login token.
fn login_form(
    headers: &HeaderMap,
    next: Option<&str>,
    error: Option<String>,
    status: StatusCode,
) -> Result<Response, WebError> {
    let token = random_token()?;
    let html = super::page::pages().render(
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
            &headers,
            form.next.as_deref(),
            Some("The login form expired. Enter the password again.".into()),
            StatusCode::FORBIDDEN,
        );
    }
    let ip = peer.ip();
    let (who, hash) = guesser(&state, &headers, ip).await?;
    if let Err(wait) = state.logins.attempt(&who) {
        let mut resp = login_form(
            &headers,
            form.next.as_deref(),
            Some(wait_message(wait)),
            StatusCode::TOO_MANY_REQUESTS,
        )?;
        resp.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(wait.as_secs().max(1)),
        );
        return Ok(resp);
    }
    let matched = password_matches(hash.as_deref(), form.password).await;
    let Some(hash) = hash.filter(|_| matched) else {
        tracing::warn!(client = %ip, "failed web admin login");
        return login_form(
            &headers,
            form.next.as_deref(),
            Some("Wrong password.".into()),
            StatusCode::UNAUTHORIZED,
        );
    };
    state.logins.succeeded(&who);
    // A browser that knows the password is a known device from now on.
    let device = match who {
        Guesser::Device(_) => None,
        Guesser::Address(_) => {
            Some(crate::engines::access::new_device_cookie(&hash).map_err(WebError::internal)?)
        }
    };
    let token = random_token()?;
    let csrf = random_token()?;
    let digest = crate::engines::access::key_digest(&token);
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
    if let Some(device) = device {
        h.append(
            header::SET_COOKIE,
            set_cookie(DEVICE_COOKIE, &device, DEVICE_MAX_AGE, secure),
        );
    }
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
    fn the_csrf_field_is_read_from_a_form() {
        assert_eq!(
            form_urlencoded_value(b"a=1&csrf=x%2By&b=2", "csrf").as_deref(),
            Some("x+y")
        );
        assert_eq!(form_urlencoded_value(b"a=1", "csrf"), None);
    }
}
