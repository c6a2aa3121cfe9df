//! The HTTP listener (axum on hyper): event ingest, the REST API,
//! `/healthz`, and the web admin's pages ([`crate::web`]). Handlers call [`crate::admin`] and the store's read methods;
//! they never write SQL.

mod api;
mod error;
mod guard;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};
use tokio::sync::Notify;

use crate::store::Store;

pub use error::ApiError;

/// What every handler may use: cheap handles, built once at start.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub store: Store,
    /// Wakes the router after an ingest.
    pub wake: Arc<Notify>,
    /// Wakes the deliverer after a replay or resume.
    pub deliver_wake: Arc<Notify>,
    /// Sends test events.
    pub deliverer: crate::deliver::Deliverer,
    /// The configuration as loaded (file and environment over the
    /// defaults), without the web admin's saved settings.
    pub config: Arc<crate::config::Config>,
    /// The settings the running loops read; the settings page replaces them.
    pub live: Arc<tokio::sync::watch::Sender<crate::live::Live>>,
    /// The web admin's page templates.
    pub pages: Arc<crate::web::Pages>,
    /// Failed logins per client address.
    pub logins: Arc<crate::web::session::LoginLimiter>,
    /// Cancelled at shutdown: long-lived answers (the event log's live
    /// stream) end then instead of holding the shutdown.
    pub shutdown: tokio_util::sync::CancellationToken,
}

/// All routes, with the body limit applied: `/healthz`, `/login` and
/// `/static/` open; everything under `/api/` behind an API key or a web
/// admin session; every page behind a session.
pub fn router(state: AppState) -> Router {
    let max_body_bytes = state.config.max_body_bytes;
    let api = Router::new()
        .route("/api/v1/events", post(api::post_event))
        .route(
            "/api/v1/webhooks",
            get(api::list_webhooks).post(api::create_webhook),
        )
        .route(
            "/api/v1/webhooks/{id}",
            get(api::get_webhook)
                .put(api::update_webhook)
                .delete(api::delete_webhook),
        )
        .route("/api/v1/webhooks/{id}/copy", post(api::copy_webhook))
        .route(
            "/api/v1/webhooks/{id}/rotate-secret",
            post(api::rotate_secret),
        )
        .route("/api/v1/webhooks/{id}/test", post(api::test_webhook))
        .route("/api/v1/webhooks/{id}/pause", post(api::pause_webhook))
        .route("/api/v1/webhooks/{id}/resume", post(api::resume_webhook))
        .route("/api/v1/deliveries", get(api::list_deliveries))
        .route("/api/v1/deliveries/retry", post(api::retry_deliveries))
        .route("/api/v1/log", get(api::log))
        .route(
            "/api/v1/api-keys",
            get(api::list_api_keys).post(api::create_api_key),
        )
        .route("/api/v1/api-keys/{id}", delete(api::revoke_api_key))
        .fallback(api::not_found)
        .method_not_allowed_fallback(api::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::require_api_key,
        ));
    Router::new()
        .route("/healthz", get(api::healthz))
        .merge(api)
        .merge(crate::web::router(state.clone()))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}
