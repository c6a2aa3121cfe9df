//! The General settings tab: the settings that change while herald runs
//! (validated like the config file, saved in the database, winning over the
//! config file, applied at once), API keys, and the admin password.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use serde::{Deserialize, Serialize};

use super::form::FormData;
use super::page::{WebError, tab_page};
use crate::base::config::{Config, LIVE_KEYS};
use crate::base::live::Live;
use crate::store::Session;
use crate::surfaces::shared::AppState;
use crate::surfaces::shared::limiter::wait_message;
use crate::surfaces::shared::ops;
use crate::surfaces::shared::session::{guesser, password_matches};

/// How each live setting is labelled and explained on the page.
fn describe(key: &str) -> (&'static str, &'static str) {
    match key {
        "delivery.enabled" => (
            "Send webhooks (true or false)",
            "The global switch: false sends nothing. Events keep queueing and are delivered, in order, once it is true again.",
        ),
        "router.read_interval" => (
            "Read interval (seconds)",
            "How often the queue is read for events other software added; events sent through herald are routed at once. 0.1 to 3600.",
        ),
        "cleanup.schedule" => (
            "Cleanup schedule (cron with seconds)",
            "When old log entries and finished events are deleted: sec min hour day month weekday, e.g. 0 0 * * * * for hourly.",
        ),
        "cleanup.retention_days" => (
            "Retention (days)",
            "Log entries and finished events older than this are deleted. 1 to 3650.",
        ),
        "delivery.pause_after" => (
            "Pause a failing webhook after (seconds)",
            "A webhook that failed without a success for this long is paused until resumed; its events wait. 0 never pauses.",
        ),
        "alerts.after" => (
            "First alert after (seconds)",
            "How long a webhook must fail before the first alert, so short blips stay quiet. 0 to 604800.",
        ),
        "alerts.interval" => (
            "Repeat the alert every (seconds)",
            "While a webhook keeps failing, the alert is raised again this often. Alerts reach webhooks subscribed to herald.*.",
        ),
        _ => ("", ""),
    }
}

/// One row of the settings form.
#[derive(Debug, Serialize)]
struct Row {
    key: &'static str,
    label: &'static str,
    help: &'static str,
    value: String,
    source: String,
}

/// The rows: value shown (as typed, or effective) and where it comes from.
fn rows(base: &Config, saved: &[(String, String)], typed: Option<&FormData>) -> Vec<Row> {
    let effective = base.with_ui(saved).unwrap_or_else(|_| base.clone());
    LIVE_KEYS
        .iter()
        .map(|key| {
            let (label, help) = describe(key);
            let source = if saved.iter().any(|(k, _)| k == key) {
                "saved here (wins over the config file)".to_owned()
            } else {
                base.origins
                    .get(*key)
                    .cloned()
                    .unwrap_or_else(|| "built-in default".to_owned())
            };
            let value = match typed {
                Some(f) => f.get(key).to_owned(),
                None => effective.value_text(key).unwrap_or_default(),
            };
            Row {
                key,
                label,
                help,
                value,
                source,
            }
        })
        .collect()
}

/// Renders the page with an optional notice, error, and a new API key shown once.
async fn render(
    state: &AppState,
    session: &Session,
    typed: Option<&FormData>,
    notice: Option<String>,
    error: Option<String>,
    new_key: Option<String>,
    status: StatusCode,
) -> Result<Response, WebError> {
    let (saved, keys) = state
        .store
        .run(|s| Ok((s.ui_settings()?, s.api_keys()?)))
        .await?;
    let mut resp = tab_page(
        state,
        session,
        "settings.html",
        "settings",
        serde_json::json!({
            "rows": rows(&state.config, &saved, typed),
            "keys": keys,
            "subscribers": subscribers(state),
            "notice": notice,
            "error": error,
            "new_key": new_key,
        }),
    )
    .await?;
    *resp.status_mut() = status;
    Ok(resp)
}

/// The live stream's open subscribers, for the page: key name, protocol,
/// what they receive, since when, events sent.
fn subscribers(state: &AppState) -> Vec<serde_json::Value> {
    state
        .hub
        .subscribers()
        .iter()
        .map(|s| {
            serde_json::json!({
                "key_name": s.key_name,
                "protocol": s.protocol,
                "subscription": s.subscription.lock().unwrap_or_else(|p| p.into_inner()).describe(),
                "connected_at": s.connected_at,
                "sent": s.sent.load(std::sync::atomic::Ordering::Relaxed),
            })
        })
        .collect()
}

/// `?notice=` codes of this page.
#[derive(Debug, Default, Deserialize)]
pub struct SettingsQuery {
    notice: Option<String>,
}

fn notice_text(code: Option<&str>) -> Option<String> {
    Some(
        match code? {
            "saved" => "Settings saved and applied.",
            "revoked" => "API key revoked: it is refused from now on.",
            "password" => "Password changed. Other sessions were logged out.",
            _ => return None,
        }
        .to_owned(),
    )
}

/// `GET /settings`.
pub async fn page(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    axum::extract::Query(q): axum::extract::Query<SettingsQuery>,
) -> Result<Response, WebError> {
    render(
        &state,
        &session,
        None,
        notice_text(q.notice.as_deref()),
        None,
        None,
        StatusCode::OK,
    )
    .await
}

/// The values to store: every key whose value differs from the config
/// file's (typed, so `10` equals `10.0`); an equal one follows the file again.
/// Every refused value is named, one per line, not only the first.
fn changed_values(base: &Config, form: &FormData) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut refused = Vec::new();
    for key in LIVE_KEYS {
        let text = form.get(key).trim().to_owned();
        if text.is_empty() {
            refused.push(format!("{key}: a value is required"));
            continue;
        }
        match base.with_ui(&[(key.to_string(), text.clone())]) {
            Ok(one) if one.value_text(key) != base.value_text(key) => {
                out.push((key.to_string(), text));
            }
            Ok(_) => {}
            Err(e) => refused.push(e.to_string()),
        }
    }
    if refused.is_empty() {
        Ok(out)
    } else {
        Err(refused.join("\n"))
    }
}

/// `POST /settings`: validates all values together, stores them, applies them.
pub async fn save(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    let form = FormData(pairs);
    let checked = changed_values(&state.config, &form).and_then(|values| {
        state
            .config
            .with_ui(&values)
            .map(|c| (values, c))
            .map_err(|e| e.to_string())
    });
    let (values, effective) = match checked {
        Ok(v) => v,
        Err(message) => {
            return render(
                &state,
                &session,
                Some(&form),
                None,
                Some(message),
                None,
                StatusCode::BAD_REQUEST,
            )
            .await;
        }
    };
    let v = values.clone();
    state.store.run(move |s| s.replace_ui_settings(&v)).await?;
    state.live.send_replace(Live::from_config(&effective));
    tracing::info!(?values, "settings saved in the web admin and applied");
    Ok(Redirect::to("/settings?notice=saved").into_response())
}

/// The new-key form.
#[derive(Debug, Deserialize)]
pub struct KeyForm {
    name: String,
    scope: String,
    /// A stream key's event patterns, comma-separated.
    #[serde(default)]
    events: String,
    /// A stream key's match filters, `FIELD=VALUE`, one per line or
    /// separated by commas.
    #[serde(default, rename = "match")]
    matches: String,
}

/// `POST /settings/api-keys`: makes a key and shows it this once.
pub async fn create_key(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Form(f): Form<KeyForm>,
) -> Result<Response, WebError> {
    let scope = f
        .scope
        .parse::<crate::engines::access::Scope>()
        .map_err(|_| ops::Error::BadRequest("scope: choose read, admin, stream or ingest".into()));
    let filters: Vec<String> = f
        .matches
        .split([',', '\n'])
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(str::to_owned)
        .collect();
    // Given for another scope, they are refused (as by the API and CLI).
    let limits = if !f.events.trim().is_empty() || !filters.is_empty() {
        crate::base::subscription::Subscription::parse(&f.events, &filters)
            .map(Some)
            .map_err(ops::Error::BadRequest)
    } else {
        Ok(None)
    };
    // A scope or filter that cannot be read is answered like any refused key.
    let made = match scope.and_then(|scope| limits.map(|l| (scope, l))) {
        Ok((scope, limits)) => {
            let store = state.store.clone();
            let name = f.name.clone();
            tokio::task::spawn_blocking(move || ops::create_api_key(&store, &name, scope, limits))
                .await
                .map_err(WebError::internal)?
        }
        Err(e) => Err(e),
    };
    match made {
        Ok((listed, key)) => {
            state.keys.changed().await;
            render(
                &state,
                &session,
                None,
                Some(format!(
                    "API key \"{}\" created. Copy it now: it is not shown again.",
                    listed.name
                )),
                None,
                Some(key),
                StatusCode::OK,
            )
            .await
        }
        Err(ops::Error::BadRequest(m)) => {
            render(
                &state,
                &session,
                None,
                None,
                Some(m),
                None,
                StatusCode::BAD_REQUEST,
            )
            .await
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST /settings/api-keys/{id}/revoke`.
pub async fn revoke_key(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let id: i64 = id
        .parse()
        .map_err(|_| WebError::not_found(format!("API key {id:?}")))?;
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || ops::revoke_api_key(&store, id))
        .await
        .map_err(WebError::internal)??;
    state.keys.changed().await;
    Ok(Redirect::to("/settings?notice=revoked").into_response())
}

/// The password form.
#[derive(Debug, Deserialize)]
pub struct PasswordForm {
    current: String,
    new: String,
    repeat: String,
}

/// `POST /settings/password`: needs the current password; ends every other session.
pub async fn change_password(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Extension(session): Extension<Session>,
    Form(f): Form<PasswordForm>,
) -> Result<Response, WebError> {
    // The current password is a guess like a login's: a stolen session
    // must not be able to try passwords without limit.
    let (who, hash) = guesser(&state, &headers, peer.ip()).await?;
    if let Err(wait) = state.logins.attempt(&who) {
        return render(
            &state,
            &session,
            None,
            None,
            Some(format!("Password not changed: {}", wait_message(wait))),
            None,
            StatusCode::TOO_MANY_REQUESTS,
        )
        .await;
    }
    let store = state.store.clone();
    let keep = session.digest.clone();
    let database = state.config.database_path.clone();
    let right = password_matches(hash.as_deref(), f.current.clone()).await;
    let outcome = if !right {
        tracing::warn!(client = %peer.ip(), "wrong current password in a password change");
        Err("the current password is wrong".to_owned())
    } else {
        state.logins.succeeded(&who);
        tokio::task::spawn_blocking(move || -> Result<Result<(), String>, WebError> {
            if f.new != f.repeat {
                return Ok(Err("the new password and its repetition differ".into()));
            }
            match ops::set_password(&store, &f.new, Some(&keep)) {
                Ok(()) => {
                    ops::remove_initial_password(&database)?;
                    Ok(Ok(()))
                }
                Err(ops::Error::BadRequest(m)) => Ok(Err(m)),
                Err(e) => Err(e.into()),
            }
        })
        .await
        .map_err(WebError::internal)??
    };
    match outcome {
        Ok(()) => Ok(Redirect::to("/settings?notice=password").into_response()),
        Err(m) => {
            render(
                &state,
                &session,
                None,
                None,
                Some(format!("Password not changed: {m}.")),
                None,
                StatusCode::BAD_REQUEST,
            )
            .await
        }
    }
}
