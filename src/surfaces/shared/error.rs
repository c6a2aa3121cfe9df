//! The one error response of the API: 4xx with a message (and the field at
//! fault) for the caller's mistakes; anything else logged once and answered
//! with a generic 500.

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
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
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
        tracing::error!(error = %cause, "request failed");
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
        (self.status, Json(body)).into_response()
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
            ops::Error::Store(e) => ApiError::internal(e),
        }
    }
}

impl From<crate::store::Error> for ApiError {
    fn from(e: crate::store::Error) -> Self {
        match e {
            crate::store::Error::NotFound(what) => {
                ApiError::new(StatusCode::NOT_FOUND, format!("{what} not found"))
            }
            e => ApiError::internal(e),
        }
    }
}
