//! The one error response of the API: 4xx with a message (and the field at
//! fault) for the caller's mistakes; 507/503 naming what is wrong with the
//! database's storage; anything else logged and answered with a generic 500.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::surfaces::shared::ops;

/// An API error response: `{"error": "...", "field": "..."}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    field: Option<String>,
    /// Seconds for a `Retry-After` header (a 503 that passes by itself).
    retry_after: Option<u64>,
}

/// Seconds a producer is asked to wait when the database is locked or
/// cannot be written for now.
const RETRY_AFTER_SECS: u64 = 5;

/// The body of every API error, as sent.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub struct Body<'a> {
    /// What is wrong, for a person.
    error: &'a str,
    /// The webhook field at fault, when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl ApiError {
    /// A 4xx (or other) answer with a message for the caller.
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            field: None,
            retry_after: None,
        }
    }

    /// The answer for a store error: 404 for a missing row; 507 when the
    /// disk is full (or free space is below the watermark) and 503 with
    /// `Retry-After` when the database is read-only or locked — a producer
    /// can tell "retry later" from "herald is broken"; 500 for the rest.
    /// Storage faults are logged by the store when they begin, not here
    /// once per request.
    pub fn from_store(e: crate::store::Error) -> ApiError {
        match e {
            crate::store::Error::NotFound(what) => {
                ApiError::new(StatusCode::NOT_FOUND, format!("{what} not found"))
            }
            crate::store::Error::Storage { fault, message } => {
                if fault.is_space() {
                    ApiError::new(StatusCode::INSUFFICIENT_STORAGE, message)
                } else {
                    let mut e = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message);
                    e.retry_after = Some(RETRY_AFTER_SECS);
                    e
                }
            }
            e => ApiError::internal(e),
        }
    }

    /// 400 Bad Request.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    /// The status sent.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The message sent.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// 500, after logging the cause.
    pub fn internal(cause: impl std::fmt::Display) -> ApiError {
        let cause = cause.to_string();
        if let Some(held) = crate::base::repeats::admit(&format!("request: {cause}")) {
            tracing::error!(error = %cause, "request failed{}", crate::base::repeats::summary(held));
        }
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error; see herald's log",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            error: &self.message,
            field: self.field.as_deref(),
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}

impl From<ops::Error> for ApiError {
    fn from(e: ops::Error) -> Self {
        match e {
            ops::Error::InvalidEvent(e) => ApiError::bad_request(e.to_string()),
            ops::Error::DuplicateEvent(_) => ApiError::new(StatusCode::CONFLICT, e.to_string()),
            ops::Error::InvalidWebhook(f) => ApiError {
                status: StatusCode::BAD_REQUEST,
                message: f.to_string(),
                field: Some(f.field),
                retry_after: None,
            },
            ops::Error::WebhookNotFound(_) => ApiError::new(StatusCode::NOT_FOUND, e.to_string()),
            ops::Error::WebhookConflict(_) => ApiError::new(StatusCode::CONFLICT, e.to_string()),
            ops::Error::BadRequest(m) => ApiError::bad_request(m),
            ops::Error::DeliveryNotFound(_) => ApiError::new(StatusCode::NOT_FOUND, e.to_string()),
            ops::Error::DeliveryPending(_) | ops::Error::NotPaused(_) => {
                ApiError::new(StatusCode::CONFLICT, e.to_string())
            }
            ops::Error::ApiKeyNotFound(_) => ApiError::new(StatusCode::NOT_FOUND, e.to_string()),
            ops::Error::Access(e) => ApiError::internal(e),
            ops::Error::Store(e) => ApiError::from_store(e),
        }
    }
}

impl From<crate::store::Error> for ApiError {
    fn from(e: crate::store::Error) -> Self {
        ApiError::from_store(e)
    }
}
