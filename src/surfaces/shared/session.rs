//! The web admin's session as every surface sees it: the cookie, the CSRF
//! token a write must carry, and the lookup of a live session. The REST API's
//! gate accepts a session as well as an API key, so this sits below both the
//! API and the pages.

use std::time::Duration;

use axum::http::{HeaderMap, Method, header};

use crate::store::{Session, now_ms};
use crate::surfaces::shared::AppState;
use crate::surfaces::shared::limiter::Guesser;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "herald_session";
/// Header a script sends the CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Form field a page sends the CSRF token in.
pub const CSRF_FIELD: &str = "csrf";
/// A session unused this long ends.
pub const IDLE: Duration = Duration::from_secs(8 * 3600);
/// A session ends this long after login, used or not.
pub const MAX_AGE: Duration = Duration::from_secs(7 * 86_400);
/// Compares two tokens in time that does not depend on where they differ.
pub fn same_token(a: &str, b: &str) -> bool {
    crate::engines::access::same_secret(a, b)
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

/// The live session of a request, if its cookie names one (and extends it;
/// while the database cannot be written, it is read without extending it).
pub async fn current(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<Session>, crate::store::Error> {
    let Some(token) = cookie(headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    let digest = crate::engines::access::key_digest(token);
    let session = state
        .store
        .run(move |s| {
            match s.touch_session(
                &digest,
                now_ms(),
                IDLE.as_millis() as i64,
                MAX_AGE.as_millis() as i64,
            ) {
                Err(crate::store::Error::Storage { .. }) => s.live_session(&digest, now_ms()),
                other => other,
            }
        })
        .await?;
    Ok(session)
}

/// Is `method` one that changes nothing (and so needs no CSRF token)?
pub fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Name of the cookie that marks a browser which logged in before (see
/// [`crate::surfaces::shared::limiter`]).
pub const DEVICE_COOKIE: &str = "herald_device";
/// How long a device cookie lasts.
pub const DEVICE_MAX_AGE: Duration = Duration::from_secs(365 * 86_400);

/// Reads the admin password's stored hash (once per request) and says who
/// is guessing: the browser's device id when its device cookie is valid for
/// that hash, else its address.
pub async fn guesser(
    state: &AppState,
    headers: &HeaderMap,
    ip: std::net::IpAddr,
) -> Result<(Guesser, Option<String>), crate::store::Error> {
    let hash = state.store.run(|s| s.admin_password_hash()).await?;
    let who = cookie(headers, DEVICE_COOKIE)
        .zip(hash.as_deref())
        .and_then(|(c, h)| crate::engines::access::device_id(h, c))
        .map_or(Guesser::Address(ip), Guesser::Device);
    Ok((who, hash))
}

/// Does `password` match the stored `hash`? Runs argon2 on the blocking
/// pool, outside the store. No hash, or a check that could not run, is no
/// match.
pub async fn password_matches(hash: Option<&str>, password: String) -> bool {
    let Some(hash) = hash.map(str::to_owned) else {
        return false;
    };
    tokio::task::spawn_blocking(move || crate::engines::access::verify_password(&hash, &password))
        .await
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
