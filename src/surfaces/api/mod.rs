//! The REST API, ingest and `/healthz`. Handlers call
//! [`crate::surfaces::shared::ops`] and the store's read methods; they never
//! write SQL.
//!
//! REST handlers: `/api/v1/events`, `/api/v1/webhooks…`, `/api/v1/log`,
//! `/api/v1/api-keys`, `/healthz`; the live stream `/api/v1/stream` ([`stream`]);
//! `/metrics` ([`metrics`]).

mod guard;
mod metrics;
mod stream;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::base::event::NewEvent;
use crate::spec::webhook::WebhookPatch;
use crate::store::{DeliveryFilter, LogFilter, Replay};
use crate::surfaces::shared::ops;
use crate::surfaces::shared::{ApiError, AppState};

/// The REST API's routes: `/healthz` open, everything under `/api/` behind
/// an API key or a web admin session ([`guard::require_api_key`]).
pub fn router(state: AppState) -> Router<AppState> {
    let api = Router::new()
        .route("/api/v1/events", post(post_event))
        .route("/api/v1/webhooks", get(list_webhooks).post(create_webhook))
        .route(
            "/api/v1/webhooks/{id}",
            get(get_webhook).put(update_webhook).delete(delete_webhook),
        )
        .route("/api/v1/webhooks/{id}/copy", post(copy_webhook))
        .route("/api/v1/webhooks/{id}/rotate-secret", post(rotate_secret))
        .route("/api/v1/webhooks/{id}/test", post(test_webhook))
        .route("/api/v1/webhooks/{id}/pause", post(pause_webhook))
        .route("/api/v1/webhooks/{id}/resume", post(resume_webhook))
        .route("/api/v1/deliveries", get(list_deliveries))
        .route("/api/v1/deliveries/retry", post(retry_deliveries))
        .route("/api/v1/log", get(log))
        .route("/api/v1/api-keys", get(list_api_keys).post(create_api_key))
        .route("/api/v1/api-keys/{id}", delete(revoke_api_key))
        .route(crate::engines::access::STREAM_PATH, get(stream::stream))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::require_api_key,
        ));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics::metrics))
        .merge(api)
}

/// Most log entries one request returns.
const MAX_LOG_PAGE: usize = 1000;

/// Parses a JSON body with a message that says where it is wrong.
fn parse_json<T: DeserializeOwned>(body: &[u8], what: &str) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(format!(
            "the request body is empty; expected {what} as JSON"
        )));
    }
    serde_json::from_slice(body).map_err(|e| {
        let kind = if e.is_data() {
            "has the wrong shape"
        } else {
            "is not valid JSON"
        };
        ApiError::bad_request(format!("the request body {kind} ({what}): {e}"))
    })
}

/// The request body, or the reason it could not be read (413 when too large)
/// in the API's error shape.
fn read_body(b: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    b.map_err(|r| {
        let status = r.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                status,
                "the request body is larger than server.max_body_bytes",
            )
        } else {
            ApiError::new(status, r.body_text())
        }
    })
}

/// A JSON body that may be left out (empty means the defaults).
fn optional_json<T: DeserializeOwned + Default>(
    body: Result<Bytes, BytesRejection>,
    what: &str,
) -> Result<T, ApiError> {
    let body = read_body(body)?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    parse_json(&body, what)
}

/// Runs a blocking admin operation off the async workers.
async fn blocking<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&crate::store::Store) -> Result<T, ops::Error> + Send + 'static,
) -> Result<T, ApiError> {
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || f(&store))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::from)
}

/// `GET /healthz`: liveness, queue figures, and the storage condition:
/// `status` is `degraded` and `storage` says why while the database cannot
/// take new events (disk full, read-only, locked, low space). Always 200
/// while herald answers: it is alive, and delivers what it holds.
pub async fn healthz(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let (queued, pending, condition) = state
        .store
        .run(|s| Ok((s.queue_depth()?, s.pending_deliveries()?, s.condition())))
        .await?;
    let status = if condition.is_some() {
        "degraded"
    } else {
        "ok"
    };
    Ok(Json(json!({
        "status": status,
        "queued_events": queued,
        "pending_deliveries": pending,
        "storage": condition,
    })))
}

/// `POST /api/v1/events`: queue one event; 202 with its uuid.
pub async fn post_event(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let body = read_body(body)?;
    let event: NewEvent = parse_json(&body, "an event {\"type\": ..., \"data\": {...}}")?;
    let queued = ops::queue_event_async(&state.store, event).await?;
    state.wake.notify_one();
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"uuid": queued.uuid, "type": queued.kind, "created_at": queued.created_at})),
    ))
}

/// `GET /api/v1/webhooks`.
pub async fn list_webhooks(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(state.store.run(|s| s.webhooks()).await?))
}

/// `POST /api/v1/webhooks`: 201 with the webhook and save-time warnings.
pub async fn create_webhook(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let body = read_body(body)?;
    let patch: WebhookPatch = parse_json(&body, "a webhook")?;
    let saved = blocking(&state, move |s| ops::create_webhook(s, patch)).await?;
    Ok((StatusCode::CREATED, Json(saved)))
}

/// `GET /api/v1/webhooks/{id}`.
pub async fn get_webhook(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let id = parse_id(&id)?;
    Ok(Json(blocking(&state, move |s| ops::webhook(s, id)).await?))
}

/// `PUT /api/v1/webhooks/{id}`: fields left out keep their values.
pub async fn update_webhook(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let id = parse_id(&id)?;
    let body = read_body(body)?;
    let patch: WebhookPatch = parse_json(&body, "webhook fields")?;
    Ok(Json(
        blocking(&state, move |s| ops::update_webhook(s, id, patch, None)).await?,
    ))
}

/// `DELETE /api/v1/webhooks/{id}`: 204.
pub async fn delete_webhook(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let id = parse_id(&id)?;
    blocking(&state, move |s| ops::delete_webhook(s, id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/webhooks/{id}/copy`: optional body with fields to change on the copy.
pub async fn copy_webhook(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let id = parse_id(&id)?;
    let patch: WebhookPatch = optional_json(body, "webhook fields for the copy")?;
    let saved = blocking(&state, move |s| ops::copy_webhook(s, id, patch)).await?;
    Ok((StatusCode::CREATED, Json(saved)))
}

/// Body of `POST /api/v1/webhooks/{id}/rotate-secret`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateRequest {
    /// Hours the old secret keeps signing (default 24).
    overlap_hours: Option<f64>,
}

/// Longest overlap of old and new signing secrets.
const MAX_OVERLAP_HOURS: f64 = 24.0 * 30.0;

/// `POST /api/v1/webhooks/{id}/rotate-secret`: 200 with the new secret, shown once.
pub async fn rotate_secret(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let id = parse_id(&id)?;
    let req: RotateRequest = optional_json(body, "{\"overlap_hours\": 24}")?;
    let hours = req.overlap_hours.unwrap_or(24.0);
    if !(0.0..=MAX_OVERLAP_HOURS).contains(&hours) {
        return Err(ApiError::bad_request(format!(
            "overlap_hours must be between 0 and {MAX_OVERLAP_HOURS}"
        )));
    }
    let overlap = std::time::Duration::from_secs_f64(hours * 3600.0);
    Ok(Json(
        blocking(&state, move |s| ops::rotate_secret(s, id, overlap)).await?,
    ))
}

/// Query of `GET /api/v1/log`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    webhook: Option<i64>,
    event: Option<String>,
    #[serde(default)]
    failed: bool,
    before: Option<i64>,
    limit: Option<usize>,
}

/// `GET /api/v1/log?webhook=&event=&failed=&before=&limit=`: newest first.
pub async fn log(
    State(state): State<AppState>,
    query: Result<Query<LogQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let filter = LogFilter {
        webhook_id: q.webhook,
        event_uuid: q.event,
        failed: q.failed,
        before_id: q.before,
        limit: q.limit.unwrap_or(100).clamp(1, MAX_LOG_PAGE),
        ..LogFilter::default()
    };
    Ok(Json(
        state.store.run(move |s| s.log_entries(&filter)).await?,
    ))
}

/// Body of `POST /api/v1/webhooks/{id}/test`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestRequest {
    /// Sample event type, any type (default: the first type the webhook's
    /// patterns select).
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// `POST /api/v1/webhooks/{id}/test`: sends a sample event through the full
/// path now and answers with the logged attempt (200 whether or not the
/// endpoint accepted it: `outcome` says).
pub async fn test_webhook(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let id = parse_id(&id)?;
    let req: TestRequest = optional_json(body, "{\"type\": \"ticket.login\"}")?;
    let webhook = blocking(&state, move |s| ops::webhook(s, id)).await?;
    let kind = req.kind.unwrap_or_else(|| {
        crate::engines::render::samples::default_test_type(&webhook.spec.events)
    });
    ops::check_test_type(&kind)?;
    Ok(Json(state.deliverer.test_send(webhook, &kind).await?))
}

/// `POST /api/v1/webhooks/{id}/pause`: nothing is sent until resumed.
pub async fn pause_webhook(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let id = parse_id(&id)?;
    Ok(Json(blocking(&state, move |s| ops::pause(s, id)).await?))
}

/// `POST /api/v1/webhooks/{id}/resume`: clears the pause; the backlog is sent.
pub async fn resume_webhook(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let id = parse_id(&id)?;
    let (webhook, backlog) = blocking(&state, move |s| ops::resume(s, id)).await?;
    state.deliver_wake.notify_one();
    Ok(Json(json!({"webhook": webhook, "backlog": backlog})))
}

/// Query of `GET /api/v1/deliveries`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryQuery {
    webhook: Option<i64>,
    state: Option<String>,
    event: Option<String>,
    limit: Option<usize>,
}

/// `GET /api/v1/deliveries?webhook=&state=pending|delivered|failed&event=&limit=`.
pub async fn list_deliveries(
    State(state): State<AppState>,
    query: Result<Query<DeliveryQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    if let Some(st) = &q.state
        && !["pending", "delivered", "failed"].contains(&st.as_str())
    {
        return Err(ApiError::bad_request(format!(
            "state {st:?} is not one of pending, delivered, failed"
        )));
    }
    let filter = DeliveryFilter {
        webhook_id: q.webhook,
        state: q.state,
        event_uuid: q.event,
        limit: q.limit.unwrap_or(100).clamp(1, MAX_LOG_PAGE),
        ..DeliveryFilter::default()
    };
    Ok(Json(state.store.run(move |s| s.deliveries(&filter)).await?))
}

/// `POST /api/v1/deliveries/retry` with `{"delivery_id"}`, `{"webhook_id",
/// "failed_only"}` and/or `{"from", "to"}`: queues finished deliveries again.
pub async fn retry_deliveries(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let body = read_body(body)?;
    let which: Replay = parse_json(
        &body,
        "{\"delivery_id\": N} or {\"webhook_id\": N, \"failed_only\": true} or {\"from\": T, \"to\": T}",
    )?;
    let queued = blocking(&state, move |s| ops::replay(s, &which)).await?;
    state.deliver_wake.notify_one();
    Ok(Json(json!({"queued": queued})))
}

/// `GET /api/v1/api-keys`: every key, masked (name, hint, scope, times).
pub async fn list_api_keys(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(state.store.run(|s| s.api_keys()).await?))
}

/// Body of `POST /api/v1/api-keys`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewApiKey {
    name: String,
    scope: crate::engines::access::Scope,
    /// A stream key's event patterns (array, or one comma-separated string).
    events: Option<serde_json::Value>,
    /// A stream key's match filters, `{"field": "value"}`.
    #[serde(rename = "match")]
    matches: Option<serde_json::Value>,
}

/// `POST /api/v1/api-keys` `{"name", "scope": "read"|"admin"|"stream"|"ingest",
/// "events": [...], "match": {...}}` (the last two for stream keys): 201
/// with the key, shown this once.
pub async fn create_api_key(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let body = read_body(body)?;
    let req: NewApiKey = parse_json(
        &body,
        "{\"name\": \"…\", \"scope\": \"read\", \"admin\", \"stream\" or \"ingest\", \"events\": […], \"match\": {…}}",
    )?;
    let limits = if req.events.is_some() || req.matches.is_some() {
        Some(
            crate::base::subscription::Subscription::from_json(
                req.events.as_ref(),
                req.matches.as_ref(),
            )
            .map_err(ApiError::bad_request)?,
        )
    } else {
        None
    };
    let (listed, key) = blocking(&state, move |s| {
        ops::create_api_key(s, &req.name, req.scope, limits)
    })
    .await?;
    state.keys.changed().await;
    Ok((
        StatusCode::CREATED,
        Json(json!({"api_key": listed, "key": key})),
    ))
}

/// `DELETE /api/v1/api-keys/{id}`: revokes it; 200 with the key as listed.
pub async fn revoke_api_key(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let id = parse_id(&id)?;
    let revoked = blocking(&state, move |s| ops::revoke_api_key(s, id)).await?;
    state.keys.changed().await;
    Ok(Json(revoked))
}

/// A known route with another method: 405 in the API's shape.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this route",
    )
}

/// Anything else: 404 in the API's shape.
pub async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such route")
}

fn parse_id(text: &str) -> Result<i64, ApiError> {
    text.parse::<i64>()
        .ok()
        .filter(|i| *i > 0)
        .ok_or_else(|| ApiError::bad_request(format!("id {text:?} is not a positive whole number")))
}
