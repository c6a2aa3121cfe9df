//! The gate in front of the API: every `/api/` request needs an API key
//! (`Authorization: Bearer hk_…`) whose scope allows its method and path, or
//! the web admin's session cookie (writes then also need the session's CSRF
//! token in `X-CSRF-Token`, as the admin's pages send it). The live stream
//! also takes the key as `?api_key=` (a browser cannot set headers on a
//! WebSocket). `/healthz` stays open for liveness checks.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::engines::access;
use crate::surfaces::shared::keys::{Caller, bearer_token, refusal as refuse};
use crate::surfaces::shared::{ApiError, AppState};

/// The bearer token of a request, if it sent one; for the live stream also
/// its `api_key` query parameter.
fn bearer(req: &Request) -> Option<String> {
    bearer_token(req.headers()).map(str::to_owned).or_else(|| {
        if req.uri().path() != access::STREAM_PATH {
            return None;
        }
        serde_urlencoded::from_str::<Vec<(String, String)>>(req.uri().query()?)
            .ok()?
            .into_iter()
            .find(|(k, v)| k == "api_key" && !v.is_empty())
            .map(|(_, v)| v)
    })
}

/// Lets a request through only with a live API key that allows its method,
/// or a live web admin session (with its CSRF token on writes).
pub async fn require_api_key(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let Some(key) = bearer(&req) else {
        let session = match crate::surfaces::shared::session::current(&state, req.headers()).await {
            Ok(s) => s,
            Err(e) => return ApiError::internal(e).into_response(),
        };
        if let Some(session) = session {
            req.extensions_mut().insert(Caller::Session);
            if crate::surfaces::shared::session::is_safe(req.method()) {
                return next.run(req).await;
            }
            // Only the header counts here: API bodies are JSON, not forms.
            let sent = req
                .headers()
                .get(crate::surfaces::shared::session::CSRF_HEADER)
                .and_then(|v| v.to_str().ok());
            if sent.is_some_and(|t| crate::surfaces::shared::session::same_token(t, &session.csrf))
            {
                return next.run(req).await;
            }
            return refuse(
                StatusCode::FORBIDDEN,
                "a write with the web admin's session needs its CSRF token in X-CSRF-Token",
            );
        }
        return refuse(
            StatusCode::UNAUTHORIZED,
            "authentication required: send an API key as `Authorization: Bearer hk_…` (make one with `herald admin api-key create`)",
        );
    };
    let digest = access::key_digest(&key);
    let found = match state.keys.lookup(&digest).await {
        Ok(found) => found,
        Err(e) => return ApiError::internal(e).into_response(),
    };
    match found {
        None => refuse(
            StatusCode::UNAUTHORIZED,
            "the API key is unknown or revoked",
        ),
        Some(k) if !k.scope.allows(req.method(), req.uri().path()) => refuse(
            StatusCode::FORBIDDEN,
            &format!(
                "this API key has scope {}: it may do {}",
                k.scope.as_str(),
                k.scope.explain()
            ),
        ),
        Some(k) => {
            req.extensions_mut().insert(Caller::Key(k));
            next.run(req).await
        }
    }
}
