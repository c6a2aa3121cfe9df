//! The API's OpenAPI 3.1 document, `GET /api/v1/openapi.json`: derived
//! from the handlers' own `#[utoipa::path]` annotations and types, and the
//! router is built from the same list of routes ([`routes`]), so the
//! document cannot name a route the router lacks, nor miss one.

use std::sync::OnceLock;

use axum::Json;
use axum::response::IntoResponse;
use utoipa::OpenApi;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::surfaces::shared::AppState;

/// The document's frame: title, version, security schemes, tags.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "herald",
        description = "Templated event router: event ingest, webhooks, deliveries, the event log, API keys and the live stream. Every route needs an API key (`Authorization: Bearer hk_…`) whose scope allows it; see the README's API keys section.",
        license(name = "MIT")
    ),
    modifiers(&Security),
    security(("bearer" = [])),
    components(schemas(crate::surfaces::shared::error::Body)),
    tags(
        (name = "events", description = "Queue events"),
        (name = "webhooks", description = "Webhooks"),
        (name = "deliveries", description = "Deliveries and replay"),
        (name = "log", description = "The event log"),
        (name = "api-keys", description = "API keys"),
        (name = "stream", description = "The live event stream"),
        (name = "meta", description = "This document")
    )
)]
struct ApiDoc;

/// The security schemes: a bearer API key, or (the live stream only) the
/// key as the `api_key` query parameter.
struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("hk_…")
                    .description(Some("An API key: `herald admin api-key create`"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_key_query",
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                "api_key",
                "The API key in the query (GET /api/v1/stream only: browsers cannot set headers on a WebSocket)",
            ))),
        );
    }
}

/// Every `/api/v1` route with its handler, for the router and the
/// document alike.
pub fn routes() -> OpenApiRouter<AppState> {
    use super::handlers::*;
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(post_event))
        .routes(routes!(list_webhooks, create_webhook))
        .routes(routes!(get_webhook, update_webhook, delete_webhook))
        .routes(routes!(copy_webhook))
        .routes(routes!(rotate_secret))
        .routes(routes!(test_webhook))
        .routes(routes!(pause_webhook))
        .routes(routes!(resume_webhook))
        .routes(routes!(list_deliveries))
        .routes(routes!(retry_deliveries))
        .routes(routes!(log))
        .routes(routes!(list_api_keys, create_api_key))
        .routes(routes!(revoke_api_key))
        .routes(routes!(super::stream::stream))
        .routes(routes!(openapi_json))
}

/// The document, built once.
pub fn document() -> &'static utoipa::openapi::OpenApi {
    static DOC: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    DOC.get_or_init(|| routes().into_openapi())
}

/// `GET /api/v1/openapi.json`.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta", responses((status = 200, description = "This document (OpenAPI 3.1)", content_type = "application/json")))]
pub async fn openapi_json() -> impl IntoResponse {
    Json(document())
}
