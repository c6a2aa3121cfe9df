//! The REST API, ingest and `/healthz` ([`handlers`]), the live stream
//! `/api/v1/stream` ([`stream`]), `/metrics` ([`metrics`]) and the OpenAPI
//! document ([`doc`]), from which the `/api/v1` routes are built.

mod doc;
mod guard;
mod handlers;
mod metrics;
mod stream;

pub use doc::document as openapi;

use axum::Router;
use axum::routing::get;

use crate::surfaces::shared::AppState;

/// The REST API's routes: `/healthz` open, everything under `/api/` behind
/// an API key or a web admin session ([`guard::require_api_key`]).
pub fn router(state: AppState) -> Router<AppState> {
    // The routes and the OpenAPI document come from one list (doc.rs).
    let (api, _document) = doc::routes().split_for_parts();
    let api = api
        .fallback(handlers::not_found)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::require_api_key,
        ));
    Router::new()
        .route("/healthz", get(handlers::healthz))
        .route("/metrics", get(metrics::metrics))
        .merge(api)
}
