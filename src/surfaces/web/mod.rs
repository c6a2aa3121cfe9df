//! The web admin: server-rendered pages (minijinja templates from
//! `templates/web/`, embedded at build time) for the Webhooks, Event log and
//! General settings tabs, the login, and the static CSS/JS from `web/`.
//!
//! Every page but the login and `/static/` sits behind
//! [`session::require_session`]; pages call [`crate::surfaces::shared::ops`] and the store,
//! like the REST API, and scripts on the pages call the REST API with the
//! session (see [`crate::surfaces::api`]'s gate).

mod assets;
mod form;
mod log;
pub mod session;
mod settings;
mod webhooks;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use minijinja::{Environment, Value};
use serde::Serialize;

use crate::store::Session;
use crate::surfaces::shared::AppState;

/// The page templates, compiled on first use and kept for the process's
/// life. They are embedded at build time and never change, so one shared
/// copy is a constant, not state: it lives here rather than in
/// [`AppState`], which the lower layers know.
fn pages() -> &'static Pages {
    static PAGES: std::sync::LazyLock<Pages> = std::sync::LazyLock::new(Pages::new);
    &PAGES
}

/// The page templates, compiled once.
pub struct Pages {
    env: Environment<'static>,
}

/// Each page template, by name, as embedded.
const TEMPLATES: &[(&str, &str)] = &[
    (
        "base.html",
        include_str!("../../../templates/web/base.html"),
    ),
    (
        "login.html",
        include_str!("../../../templates/web/login.html"),
    ),
    (
        "webhooks.html",
        include_str!("../../../templates/web/webhooks.html"),
    ),
    (
        "webhook_form.html",
        include_str!("../../../templates/web/webhook_form.html"),
    ),
    (
        "webhook_delete.html",
        include_str!("../../../templates/web/webhook_delete.html"),
    ),
    ("log.html", include_str!("../../../templates/web/log.html")),
    (
        "log_rows.html",
        include_str!("../../../templates/web/log_rows.html"),
    ),
    (
        "log_entry.html",
        include_str!("../../../templates/web/log_entry.html"),
    ),
    (
        "settings.html",
        include_str!("../../../templates/web/settings.html"),
    ),
];

impl Pages {
    /// Compiles every template; a broken one is a build-time bug, caught by tests.
    pub fn new() -> Pages {
        let mut env = Environment::new();
        // `.html` templates escape every value by default.
        for (name, text) in TEMPLATES {
            env.add_template(name, text)
                .unwrap_or_else(|e| panic!("page template {name} does not compile: {e:#}"));
        }
        Pages { env }
    }

    /// Renders page `name` with `ctx` (any serialisable value; secrets
    /// must already be masked).
    pub fn render(&self, name: &str, ctx: impl Serialize) -> Result<Html<String>, WebError> {
        let ctx = Value::from(minijinja::value::Serde(&ctx));
        let t = self
            .env
            .get_template(name)
            .map_err(|e| WebError::internal(format!("{e:#}")))?;
        t.render(ctx)
            .map(Html)
            .map_err(|e| WebError::internal(format!("page {name}: {e:#}")))
    }
}

impl Default for Pages {
    fn default() -> Self {
        Pages::new()
    }
}

/// A page that could not be shown: an HTML error page with its status.
#[derive(Debug)]
pub struct WebError {
    status: StatusCode,
    message: String,
}

impl WebError {
    /// An error the admin can act on.
    pub fn new(status: StatusCode, message: impl Into<String>) -> WebError {
        WebError {
            status,
            message: message.into(),
        }
    }

    /// A failure of herald itself (logged; the page says to look at the log).
    pub fn internal(detail: impl std::fmt::Display) -> WebError {
        tracing::error!(error = %detail, "web admin page failed");
        WebError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "herald could not show this page; the server log has the details",
        )
    }

    /// 404 for a missing thing.
    pub fn not_found(what: impl std::fmt::Display) -> WebError {
        WebError::new(StatusCode::NOT_FOUND, format!("{what} does not exist"))
    }
}

impl From<crate::store::Error> for WebError {
    fn from(e: crate::store::Error) -> Self {
        match e {
            crate::store::Error::NotFound(what) => WebError::not_found(what),
            e => WebError::internal(e),
        }
    }
}

impl From<crate::surfaces::shared::ops::Error> for WebError {
    fn from(e: crate::surfaces::shared::ops::Error) -> Self {
        let api = crate::surfaces::shared::ApiError::from(e);
        WebError::new(api.status(), api.message().to_owned())
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        // Plain markup (no template) so an error page never fails itself.
        let body = format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>herald: {status}</title><link rel=\"stylesheet\" href=\"/static/app.css\"></head><body><main class=\"narrow\"><h1>{status}</h1><p class=\"error\" role=\"alert\">{message}</p><p><a href=\"/webhooks\">Back to the admin</a></p></main></body></html>",
            status = self.status,
            message = minijinja::HtmlEscape(&self.message),
        );
        (self.status, Html(body)).into_response()
    }
}

/// Renders a tab's page with the header figures, the session's CSRF token
/// and the notice of the last action.
async fn tab_page(
    state: &AppState,
    session: &Session,
    template: &'static str,
    tab: &'static str,
    mut ctx: serde_json::Value,
) -> Result<Response, WebError> {
    let stats = state.store.run(|s| s.header_stats()).await?;
    if let Some(map) = ctx.as_object_mut() {
        map.insert("tab".into(), tab.into());
        map.insert("csrf".into(), session.csrf.clone().into());
        map.insert(
            "stats".into(),
            serde_json::to_value(stats).map_err(WebError::internal)?,
        );
    }
    let html = pages().render(template, ctx)?;
    Ok(html.into_response())
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_template_compiles_and_escapes() {
        let pages = Pages::new();
        let html = pages
            .render(
                "login.html",
                serde_json::json!({"csrf": "t", "next": "/", "error": "<script>x</script>"}),
            )
            .unwrap();
        assert!(html.0.contains("&lt;script&gt;x"), "{}", html.0);
        assert!(!html.0.contains("<script>x"));
    }
}
