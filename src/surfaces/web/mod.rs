//! The web admin: server-rendered pages (minijinja templates from
//! `templates/web/`, embedded at build time) for the Webhooks, Event log and
//! General settings tabs, the login, and the static CSS/JS from `web/`.
//!
//! Every page but the login and `/static/` sits behind
//! [`session::require_session`]; pages call [`crate::surfaces::shared::ops`] and the store,
//! like the REST API, and scripts on the pages call the REST API with the
//! session (see [`crate::surfaces::api`]'s gate).

mod assets;
mod charts;
mod form;
mod log;
mod page;
pub mod session;
mod settings;
mod webhooks;

use axum::Router;
use axum::response::{Redirect, Response};
use axum::routing::{get, post};

use crate::surfaces::shared::AppState;
pub use page::{Pages, WebError, compile_pages};

/// `GET /static/{file}` and the login page are public; every other page
/// needs a session.
pub fn router(state: AppState) -> Router<AppState> {
    let pages = Router::new()
        .route("/", get(|| async { Redirect::to("/webhooks") }))
        .route("/webhooks", get(webhooks::list))
        .route(
            "/webhooks/new",
            get(webhooks::new_form).post(webhooks::create),
        )
        .route("/webhooks/preview", post(webhooks::preview))
        .route(
            "/webhooks/{id}",
            get(webhooks::edit_form).post(webhooks::save),
        )
        .route(
            "/webhooks/{id}/delete",
            get(webhooks::delete_form).post(webhooks::delete),
        )
        .route("/webhooks/{id}/{action}", post(webhooks::action))
        .route("/log", get(log::list))
        .route("/log/stream", get(log::stream))
        .route("/log/retry", post(log::retry))
        .route("/log/{id}", get(log::entry))
        .route("/settings", get(settings::page).post(settings::save))
        .route("/settings/api-keys", post(settings::create_key))
        .route("/settings/api-keys/{id}/revoke", post(settings::revoke_key))
        .route("/settings/password", post(settings::change_password))
        .route("/logout", post(session::logout))
        .layer(axum::middleware::from_fn_with_state(
            state,
            session::require_session,
        ));
    Router::new()
        .route("/login", get(session::login_page).post(session::login))
        .route("/static/{file}", get(assets::serve))
        .route("/favicon.ico", get(assets::favicon))
        .merge(pages)
        .layer(axum::middleware::map_response(security_headers))
}

/// The Content-Security-Policy of every page: scripts, styles and
/// connections from herald itself only (no inline script or style, no
/// `eval`), no framing, forms posting only to herald.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; \
frame-ancestors 'none'; base-uri 'none'; object-src 'none'";

/// Puts the browser-side protections on every answer of the web admin
/// (pages, error pages, redirects, static files): the CSP, no MIME
/// sniffing, no referrer sent on, no framing (also for browsers without
/// `frame-ancestors`).
async fn security_headers(mut resp: Response) -> Response {
    use axum::http::{HeaderValue, header};
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    resp
}
