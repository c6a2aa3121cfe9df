//! The REST handlers: `/api/v1/events`, `/api/v1/webhooks…`,
//! `/api/v1/deliveries…`, `/api/v1/log`, `/api/v1/api-keys`, `/healthz`,
//! with the request and answer types the OpenAPI document is made from
//! (each handler's `#[utoipa::path]`). They call
//! [`crate::surfaces::shared::ops`] and the store's read methods; they
//! never write SQL.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::base::event::NewEvent;
use crate::spec::webhook::WebhookPatch;
use crate::store::{DeliveryFilter, LogFilter, Replay};
use crate::surfaces::shared::ops;
use crate::surfaces::shared::{ApiError, AppState};

/// `202` of `POST /api/v1/events`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Queued {
    /// The event's uuid (given, or made by herald).
    pub uuid: String,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Its time (given, or the time of ingest).
    pub created_at: String,
}

/// `200` of `POST /api/v1/webhooks/{id}/resume`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Resumed {
    /// The webhook, no longer paused.
    pub webhook: crate::spec::webhook::Webhook,
    /// Deliveries waiting, sent now.
    pub backlog: usize,
}

/// `200` of `POST /api/v1/deliveries/retry`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct RetryQueued {
    /// Deliveries queued to be sent again.
    pub queued: usize,
}

/// `201` of `POST /api/v1/api-keys`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct CreatedKey {
    /// The key as listed.
    pub api_key: crate::store::ApiKey,
    /// The key itself: shown this once.
    pub key: String,
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
#[utoipa::path(post, path = "/api/v1/events", tag = "events", request_body = crate::base::event::NewEvent, responses((status = 202, description = "Queued: its uuid, type and time", body = Queued), (status = 400, description = "The request is not valid; the message says why", body = crate::surfaces::shared::error::Body), (status = 401, description = "No API key, or an unknown or revoked one", body = crate::surfaces::shared::error::Body), (status = 403, description = "The key's scope does not allow this", body = crate::surfaces::shared::error::Body), (status = 409, description = "An event with this uuid is already queued", body = crate::surfaces::shared::error::Body), (status = 503, description = "The database cannot take events now (read-only, locked); try again after Retry-After", body = crate::surfaces::shared::error::Body), (status = 507, description = "The disk is full, or free space is below database.min_free_mb", body = crate::surfaces::shared::error::Body)))]
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
        Json(Queued {
            uuid: queued.uuid,
            kind: queued.kind,
            created_at: queued.created_at,
        }),
    ))
}

/// `GET /api/v1/webhooks`.
#[utoipa::path(get, path = "/api/v1/webhooks", tag = "webhooks", responses((status = 200, description = "Every webhook, secrets masked", body = Vec<crate::spec::webhook::Webhook>), (status = 400, description = "The request is not valid; the message says why", body = crate::surfaces::shared::error::Body), (status = 401, description = "No API key, or an unknown or revoked one", body = crate::surfaces::shared::error::Body), (status = 403, description = "The key's scope does not allow this", body = crate::surfaces::shared::error::Body)))]
pub async fn list_webhooks(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(state.store.run(|s| s.webhooks()).await?))
}

/// `POST /api/v1/webhooks`: 201 with the webhook and save-time warnings.
#[utoipa::path(post, path = "/api/v1/webhooks", tag = "webhooks", request_body = crate::spec::webhook::WebhookPatch, responses((status = 201, description = "Made: the webhook and save-time warnings", body = crate::surfaces::shared::ops::Saved), (status = 400, description = "The request is not valid; the message says why", body = crate::surfaces::shared::error::Body), (status = 401, description = "No API key, or an unknown or revoked one", body = crate::surfaces::shared::error::Body), (status = 403, description = "The key's scope does not allow this", body = crate::surfaces::shared::error::Body)))]
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
#[utoipa::path(get, path = "/api/v1/webhooks/{id}", tag = "webhooks", params(("id" = i64, Path, description = "Webhook id")), responses((status = 200, description = "The webhook, secrets masked", body = crate::spec::webhook::Webhook), (status = 400, description = "The request is not valid; the message says why", body = crate::surfaces::shared::error::Body), (status = 401, description = "No API key, or an unknown or revoked one", body = crate::surfaces::shared::error::Body), (status = 403, description = "The key's scope does not allow this", body = crate::surfaces::shared::error::Body), (status = 404, description = "No such webhook", body = crate::surfaces::shared::error::Body)))]
pub async fn get_webhook(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let id = parse_id(&id)?;
    Ok(Json(blocking(&state, move |s| ops::webhook(s, id)).await?))
}

/// `PUT /api/v1/webhooks/{id}`: fields left out keep their values.
#[utoipa::path(put, path = "/api/v1/webhooks/{id}", tag = "webhooks", params(("id" = i64, Path, description = "Webhook id")), request_body = crate::spec::webhook::WebhookPatch, responses((status = 200, description = "Saved: only the fields given changed", body = crate::surfaces::shared::ops::Saved), (status = 400, description = "The request is not valid; the message says why", body = crate::surfaces::shared::error::Body), (status = 401, description = "No API key, or an unknown or revoked one", body = crate::surfaces::shared::error::Body), (status = 403, description = "The key's scope does not allow this", body = crate::surfaces::shared::error::Body), (status = 404, description = "No such webhook", body = crate::surfaces::shared::error::Body), (status = 409, description = "Changed by someone else meanwhile", body = crate::surfaces::shared::error::Body)))]
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
#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", tag = "webhooks", params(("id" = i64, Path, description = "Webhook id")), responses((status = 204, description = "Deleted, with its pending deliveries"), (status = 400, description = "The request is not valid; the message says why", body = crate::surfaces::shared::error::Body), (status = 401, description = "No API key, or an unknown or revoked one", body = crate::surfaces::shared::error::Body), (status = 403, description = "The key's scope does not allow this", body = crate::surfaces::shared::error::Body), (status = 404, description = "No such webhook", body = crate::surfaces::shared::error::Body)))]
pub async fn delete_webhook(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let id = parse_id(&id)?;
    blocking(&state, move |s| ops::delete_webhook(s, id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/webhooks/{id}/copy`: optional body with fields to change on the copy.
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/copy", tag = "webhooks", params(("id" = i64, Path, description = "Webhook id")), request_body(content = Option<crate::spec::webhook::WebhookPatch>, description = "Fields to change on the copy (optional)"), responses((status = 201, description = "The copy", body = crate::surfaces::shared::ops::Saved), (status = 400, description = "The request is not valid; the message says why", body = crate::surfaces::shared::error::Body), (status = 401, description = "No API key, or an unknown or revoked one", body = crate::surfaces::shared::error::Body), (status = 403, description = "The key's scope does not allow this", body = crate::surfaces::shared::error::Body), (status = 404, description = "No such webhook", body = crate::surfaces::shared::error::Body)))]
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
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct RotateRequest {
    /// Hours the old secret keeps signing (default 24).
    overlap_hours: Option<f64>,
}

/// Longest overlap of old and new signing secrets.
const MAX_OVERLAP_HOURS: f64 = 24.0 * 30.0;

/// `POST /api/v1/webhooks/{id}/rotate-secret`: 200 with the new secret, shown once.
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/rotate-secret", tag = "webhooks", params(("id" = i64, Path, description = "Webhook id")), request_body(content = Option<RotateRequest>, description = "How long the old secret keeps signing (optional)"), responses((status = 200, description = "The webhook and its new secret, shown once", body = crate::surfaces::shared::ops::Saved), (status = 400, description = "The request is not valid; the message says why", body = crate::surfaces::shared::error::Body), (status = 401, description = "No API key, or an unknown or revoked one", body = crate::surfaces::shared::error::Body), (status = 403, description = "The key's scope does not allow this", body = crate::surfaces::shared::error::Body), (status = 404, description = "No such webhook", body = crate::surfaces::shared::error::Body)))]
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
#[derive(Debug, Deserialize, utoipa::IntoParams)]
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
#[utoipa::path(get, path = "/api/v1/log", tag = "log", params(LogQuery), responses((status = 200, description = "Log entries, newest first", body = Vec<crate::store::LogEntry>), (status = 400, description = "The request is not valid; the message says why", body = crate::surfaces::shared::error::Body), (status = 401, description = "No API key, or an unknown or revoked one", body = crate::surfaces::shared::error::Body), (status = 403, description = "The key's scope does not allow this", body = crate::surfaces::shared::error::Body)))]
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
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
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
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/test", tag = "webhooks", params(("id" = i64, Path, description = "Webhook id")), request_body(content = Option<TestRequest>, description = "The sample event type (optional)"), responses((status = 200, description = "The attempt, logged as a test; `outcome` says whether the endpoint accepted it", body = crate::pipeline::deliver::TestReport), (status = 400, description = "The request is not valid; the message says why", body = crate::surfaces::shared::error::Body), (status = 401, description = "No API key, or an unknown or revoked one", body = crate::surfaces::shared::error::Body), (status = 403, description = "The key's scope does not allow this", body = crate::surfaces::shared::error::Body), (status = 404, description = "No such webhook", body = crate::surfaces::shared::error::Body)))]
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
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/pause", tag = "webhooks", params(("id" = i64, Path, description = "Webhook id")), responses((status = 200, description = "Paused: nothing is sent until resumed", body = crate::spec::webhook::Webhook), (status = 400, description = "The request is not valid; the message says why", body = crate::surfaces::shared::error::Body), (status = 401, description = "No API key, or an unknown or revoked one", body = crate::surfaces::shared::error::Body), (status = 403, description = "The key's scope does not allow this", body = crate::surfaces::shared::error::Body), (status = 404, description = "No such webhook", body = crate::surfaces::shared::error::Body)))]
pub async fn pause_webhook(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let id = parse_id(&id)?;
    Ok(Json(blocking(&state, move |s| ops::pause(s, id)).await?))
}

/// `POST /api/v1/webhooks/{id}/resume`: clears the pause; the backlog is sent.
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/resume", tag = "webhooks", params(("id" = i64, Path, description = "Webhook id")), responses((status = 200, description = "Resumed; `backlog` deliveries are sent now", body = Resumed), (status = 409, description = "The webhook is not paused", body = crate::surfaces::shared::error::Body), (status = 400, description = "The request is not valid; the message says why", body = crate::surfaces::shared::error::Body), (status = 401, description = "No API key, or an unknown or revoked one", body = crate::surfaces::shared::error::Body), (status = 403, description = "The key's scope does not allow this", body = crate::surfaces::shared::error::Body), (status = 404, description = "No such webhook", body = crate::surfaces::shared::error::Body)))]
pub async fn resume_webhook(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let id = parse_id(&id)?;
    let (webhook, backlog) = blocking(&state, move |s| ops::resume(s, id)).await?;
    state.deliver_wake.notify_one();
    Ok(Json(Resumed { webhook, backlog }))
}

/// Query of `GET /api/v1/deliveries`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DeliveryQuery {
    webhook: Option<i64>,
    state: Option<String>,
    event: Option<String>,
    limit: Option<usize>,
}

/// `GET /api/v1/deliveries?webhook=&state=pending|delivered|failed&event=&limit=`.
#[utoipa::path(get, path = "/api/v1/deliveries", tag = "deliveries", params(DeliveryQuery), responses((status = 200, description = "Deliveries, newest first", body = Vec<crate::store::DeliveryRow>), (status = 400, description = "The request is not valid; the message says why", body = crate::surfaces::shared::error::Body), (status = 401, description = "No API key, or an unknown or revoked one", body = crate::surfaces::shared::error::Body), (status = 403, description = "The key's scope does not allow this", body = crate::surfaces::shared::error::Body)))]
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
#[utoipa::path(post, path = "/api/v1/deliveries/retry", tag = "deliveries", request_body = crate::store::Replay, responses((status = 200, description = "How many deliveries were queued again", body = RetryQueued), (status = 400, description = "The request is not valid; the message says why", body = crate::surfaces::shared::error::Body), (status = 401, description = "No API key, or an unknown or revoked one", body = crate::surfaces::shared::error::Body), (status = 403, description = "The key's scope does not allow this", body = crate::surfaces::shared::error::Body), (status = 404, description = "No such delivery or webhook", body = crate::surfaces::shared::error::Body), (status = 409, description = "The delivery is still pending", body = crate::surfaces::shared::error::Body)))]
pub async fn retry_deliveries(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let body = read_body(body)?;
    let which: Replay = parse_json(
        &body,
        "{\"delivery_id\": N} or {\"webhook_id\": N, \"failed_only\": true} or {\"from\": T, \"to\": T}",
    )?;
    let queued = blocking(&state, move |s| ops::replay(s, &which))
        .await?
        .len();
    state.deliver_wake.notify_one();
    Ok(Json(RetryQueued { queued }))
}

/// `GET /api/v1/api-keys`: every key, masked (name, hint, scope, times).
#[utoipa::path(get, path = "/api/v1/api-keys", tag = "api-keys", responses((status = 200, description = "Every key, without the keys themselves", body = Vec<crate::store::ApiKey>), (status = 400, description = "The request is not valid; the message says why", body = crate::surfaces::shared::error::Body), (status = 401, description = "No API key, or an unknown or revoked one", body = crate::surfaces::shared::error::Body), (status = 403, description = "The key's scope does not allow this", body = crate::surfaces::shared::error::Body)))]
pub async fn list_api_keys(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(state.store.run(|s| s.api_keys()).await?))
}

/// Body of `POST /api/v1/api-keys`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewApiKey {
    name: String,
    scope: crate::engines::access::Scope,
    /// A stream key's event patterns (array, or one comma-separated string).
    #[schema(value_type = Option<Vec<String>>)]
    events: Option<serde_json::Value>,
    /// A stream key's match filters, `{"field": "value"}`.
    #[serde(rename = "match")]
    #[schema(value_type = Option<std::collections::HashMap<String, String>>)]
    matches: Option<serde_json::Value>,
}

/// `POST /api/v1/api-keys` `{"name", "scope": "read"|"admin"|"stream"|"ingest",
/// "events": [...], "match": {...}}` (the last two for stream keys): 201
/// with the key, shown this once.
#[utoipa::path(post, path = "/api/v1/api-keys", tag = "api-keys", request_body = NewApiKey, responses((status = 201, description = "The key as listed and the key itself, shown once", body = CreatedKey), (status = 400, description = "The request is not valid; the message says why", body = crate::surfaces::shared::error::Body), (status = 401, description = "No API key, or an unknown or revoked one", body = crate::surfaces::shared::error::Body), (status = 403, description = "The key's scope does not allow this", body = crate::surfaces::shared::error::Body)))]
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
        Json(CreatedKey {
            api_key: listed,
            key,
        }),
    ))
}

/// `DELETE /api/v1/api-keys/{id}`: revokes it; 200 with the key as listed.
#[utoipa::path(delete, path = "/api/v1/api-keys/{id}", tag = "api-keys", params(("id" = i64, Path, description = "API key id")), responses((status = 200, description = "Revoked (also when it already was)", body = crate::store::ApiKey), (status = 400, description = "The request is not valid; the message says why", body = crate::surfaces::shared::error::Body), (status = 401, description = "No API key, or an unknown or revoked one", body = crate::surfaces::shared::error::Body), (status = 403, description = "The key's scope does not allow this", body = crate::surfaces::shared::error::Body), (status = 404, description = "No such key", body = crate::surfaces::shared::error::Body)))]
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
