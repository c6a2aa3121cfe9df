//! What every page of the web admin is made with: the page templates, the
//! HTML error page, and a tab's page with its header figures.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use minijinja::{Environment, Value};
use serde::Serialize;

use crate::store::Session;
use crate::surfaces::shared::AppState;

/// The page templates, compiled on first use and kept for the process's
/// life. They are embedded at build time and never change, so one shared
/// copy is a constant, not state: it lives here rather than in
/// [`AppState`], which the lower layers know.
pub(super) fn pages() -> &'static Pages {
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
        if let Some(held) = crate::base::repeats::admit(&format!("page: {detail}")) {
            tracing::error!(error = %detail, "web admin page failed{}", crate::base::repeats::summary(held));
        }
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
            e @ crate::store::Error::Storage { .. } => {
                let api = crate::surfaces::shared::ApiError::from_store(e);
                WebError::new(api.status(), api.message().to_owned())
            }
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
pub(super) async fn tab_page(
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
        // The global switch, shown in the header while it is off.
        map.insert("sending".into(), state.live.borrow().sending.into());
        map.insert(
            "stats".into(),
            serde_json::to_value(stats).map_err(WebError::internal)?,
        );
    }
    let html = pages().render(template, ctx)?;
    Ok(html.into_response())
}

/// Compiles the page templates now, so a broken one stops the start
/// instead of the first page request.
pub fn compile_pages() {
    pages();
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
