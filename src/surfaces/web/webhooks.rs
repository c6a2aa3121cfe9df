//! The Webhooks tab: the list, the form (create, edit, save as copy),
//! delete with confirmation, enable/disable/pause/resume, and the live
//! preview the form's script asks for as the admin types.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Redirect, Response};
use axum::{Extension, Form};
use serde::Deserialize;
use serde_json::json;

use super::form::{self, FormData, Values};
use super::page::{WebError, tab_page};
use crate::base::event::KNOWN_TYPES;
use crate::engines::render::{self, CompiledRequest, samples};
use crate::spec::field::FieldError;
use crate::spec::request::BodyFormat;
use crate::spec::webhook::WebhookSpec;
use crate::store::Session;
use crate::surfaces::shared::AppState;
use crate::surfaces::shared::ops;

use crate::engines::render::presets::PRESETS;

/// The presets as the pages list them.
fn presets() -> Vec<serde_json::Value> {
    PRESETS
        .iter()
        .map(|(k, label, _)| json!({"key": k, "label": label}))
        .collect()
}

/// Notices an action redirects with (`?notice=…`): fixed texts, so nothing
/// from the URL is shown.
fn notice_text(code: Option<&str>) -> Option<&'static str> {
    Some(match code? {
        "created" => "Webhook created.",
        "saved" => "Webhook saved.",
        "copied" => "Saved as a new webhook (copy).",
        "deleted" => "Webhook deleted.",
        "enabled" => "Webhook enabled.",
        "disabled" => "Webhook disabled: its new events are not routed to it.",
        "paused" => "Webhook paused: its events wait until it is resumed.",
        "resumed" => "Webhook resumed: its waiting events are being sent.",
        _ => return None,
    })
}

/// `?notice=` of a page.
#[derive(Debug, Default, Deserialize)]
pub struct NoticeQuery {
    notice: Option<String>,
}

/// `GET /webhooks`.
pub async fn list(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Query(q): Query<NoticeQuery>,
) -> Result<Response, WebError> {
    let now = chrono::Utc::now();
    let since = super::charts::since(now);
    let (webhooks, hourly) = state
        .store
        .run(move |s| Ok((s.webhooks()?, s.hourly_log(&since)?)))
        .await?;
    let hours = super::charts::last_hours(now);
    let mut per = super::charts::by_webhook(&hourly, &hours);
    let charts: serde_json::Map<String, serde_json::Value> = webhooks
        .iter()
        .map(|w| {
            // A webhook with nothing in the last 24 hours: empty hours.
            let series = per
                .remove(&w.id)
                .unwrap_or_else(|| super::charts::all(&[], &hours));
            (
                w.id.to_string(),
                json!(super::charts::svg(
                    &series,
                    true,
                    &format!("Webhook {}", w.id)
                )),
            )
        })
        .collect();
    tab_page(
        &state,
        &session,
        "webhooks.html",
        "webhooks",
        json!({
            "webhooks": webhooks,
            "charts": charts,
            "presets": presets(),
            "notice": notice_text(q.notice.as_deref()),
        }),
    )
    .await
}

/// The test form's first type: the first one the form's patterns select.
fn default_test_type(values: &Values) -> String {
    let ticked = values
        .get("events")
        .and_then(|v| v.as_array())
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned));
    let extra = values
        .get("events_extra")
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|p| !p.is_empty())
        .map(str::to_owned);
    let patterns: Vec<String> = ticked.chain(extra).collect();
    crate::engines::render::samples::default_test_type(&patterns)
}

/// Renders the form page.
#[allow(clippy::too_many_arguments)]
async fn form_page(
    state: &AppState,
    session: &Session,
    id: Option<i64>,
    values: Values,
    error: Option<FieldError>,
    notice: Option<String>,
    new_secret: Option<String>,
    status: StatusCode,
) -> Result<Response, WebError> {
    let mut resp = tab_page(
        state,
        session,
        "webhook_form.html",
        "webhooks",
        json!({
            "id": id,
            "v": values,
            "error": error.map(|e| json!({"field": e.field, "message": e.message})),
            "notice": notice,
            "new_secret": new_secret,
            "known_types": KNOWN_TYPES,
            "test_type": default_test_type(&values),
            // The appliance guide's name of each type that has one.
            "aliases": crate::base::event::TYPE_ALIASES
                .iter()
                .map(|(guide, herald)| (herald.to_string(), json!(guide)))
                .collect::<serde_json::Map<_, _>>(),
            "presets": presets(),
        }),
    )
    .await?;
    *resp.status_mut() = status;
    Ok(resp)
}

/// `?preset=` of the new-webhook form.
#[derive(Debug, Default, Deserialize)]
pub struct NewQuery {
    preset: Option<String>,
}

/// `GET /webhooks/new[?preset=NAME]`: an empty form, or one whose body
/// starts from a preset.
pub async fn new_form(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Query(q): Query<NewQuery>,
) -> Result<Response, WebError> {
    let preset = match q.preset.as_deref().filter(|p| !p.is_empty()) {
        None => None,
        Some(p) => Some(
            PRESETS
                .iter()
                .find(|(k, _, _)| *k == p)
                .ok_or_else(|| WebError::not_found(format!("preset {p:?}")))?,
        ),
    };
    let (body, mime) = match preset {
        Some((k, _, body)) if k.ends_with(".xml") => (*body, "application/xml"),
        Some((_, _, body)) => (*body, "application/json"),
        None => ("", "application/json"),
    };
    let values = form::values_for_new(body, mime);
    form_page(
        &state,
        &session,
        None,
        values,
        None,
        None,
        None,
        StatusCode::OK,
    )
    .await
}

/// `POST /webhooks/new`.
pub async fn create(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    let data = FormData(pairs);
    let saved = match form::to_patch(&data) {
        Ok(patch) => {
            let store = state.store.clone();
            tokio::task::spawn_blocking(move || ops::create_webhook(&store, patch))
                .await
                .map_err(WebError::internal)?
        }
        Err(e) => Err(ops::Error::InvalidWebhook(e)),
    };
    saved_or_form(&state, &session, None, &data, saved, "created").await
}

/// After a save: the form again with the error, or with a generated
/// secret shown once, or a redirect to the saved webhook.
async fn saved_or_form(
    state: &AppState,
    session: &Session,
    id: Option<i64>,
    data: &FormData,
    saved: Result<ops::Saved, ops::Error>,
    notice: &str,
) -> Result<Response, WebError> {
    match saved {
        Ok(saved) => {
            let new_id = saved.webhook.id;
            if let Some(secret) = saved.new_secret {
                // Shown this once so the receiver can be set up; not stored in any page after.
                let values = form::values_from_webhook(&saved.webhook, &known());
                return form_page(
                    state,
                    session,
                    Some(new_id),
                    values,
                    None,
                    notice_text(Some(notice)).map(str::to_owned),
                    Some(secret.expose().to_owned()),
                    StatusCode::OK,
                )
                .await;
            }
            Ok(Redirect::to(&format!("/webhooks/{new_id}?notice={notice}")).into_response())
        }
        Err(ops::Error::InvalidWebhook(e)) => {
            form_page(
                state,
                session,
                id,
                form::values_from_form(data, id.is_some()),
                Some(e),
                None,
                None,
                StatusCode::BAD_REQUEST,
            )
            .await
        }
        Err(e @ ops::Error::WebhookConflict(_)) => {
            form_page(
                state,
                session,
                id,
                form::values_from_form(data, id.is_some()),
                Some(FieldError::new("form", e.to_string())),
                None,
                None,
                StatusCode::CONFLICT,
            )
            .await
        }
        Err(e) => Err(e.into()),
    }
}

fn known() -> Vec<String> {
    KNOWN_TYPES.iter().map(|s| s.to_string()).collect()
}

fn parse_id(id: &str) -> Result<i64, WebError> {
    id.parse()
        .map_err(|_| WebError::not_found(format!("webhook {id:?}")))
}

/// `GET /webhooks/{id}`: the edit form.
pub async fn edit_form(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
    Query(q): Query<NoticeQuery>,
) -> Result<Response, WebError> {
    let id = parse_id(&id)?;
    let w = state.store.run(move |s| s.webhook(id)).await?;
    let values = form::values_from_webhook(&w, &known());
    // What the save found worth a word (e.g. a name no event carries),
    // shown each time the webhook is opened.
    let warnings = render::check(&w.spec).unwrap_or_default();
    let notice = notice_text(q.notice.as_deref()).map(|n| {
        if warnings.is_empty() {
            n.to_owned()
        } else {
            format!("{n} Warning: {}", warnings.join("; "))
        }
    });
    form_page(
        &state,
        &session,
        Some(id),
        values,
        None,
        notice,
        None,
        StatusCode::OK,
    )
    .await
}

/// `POST /webhooks/{id}`: save (`action=save`) or save as copy (`action=copy`).
pub async fn save(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    let id = parse_id(&id)?;
    let data = FormData(pairs);
    let copy = data.get("action") == "copy";
    let saved = match form::to_patch(&data) {
        Ok(mut patch) => {
            let store = state.store.clone();
            let seen = data.get("updated_at").to_owned();
            tokio::task::spawn_blocking(move || {
                if copy {
                    // An unchanged name gets " (copy)" added.
                    let current = ops::webhook(&store, id)?;
                    if patch.name.as_deref().map(str::trim) == Some(current.spec.name.as_str()) {
                        patch.name = None;
                    }
                    ops::copy_webhook(&store, id, patch)
                } else {
                    // Refused if changed (API, CLI, another tab) since the form was loaded.
                    let seen = Some(seen.as_str()).filter(|s| !s.is_empty());
                    ops::update_webhook(&store, id, patch, seen)
                }
            })
            .await
            .map_err(WebError::internal)?
        }
        Err(e) => Err(ops::Error::InvalidWebhook(e)),
    };
    let notice = if copy { "copied" } else { "saved" };
    saved_or_form(&state, &session, Some(id), &data, saved, notice).await
}

/// `GET /webhooks/{id}/delete`: asks before deleting.
pub async fn delete_form(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let id = parse_id(&id)?;
    let w = state.store.run(move |s| s.webhook(id)).await?;
    tab_page(
        &state,
        &session,
        "webhook_delete.html",
        "webhooks",
        json!({ "w": w }),
    )
    .await
}

/// `POST /webhooks/{id}/delete`.
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let id = parse_id(&id)?;
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || ops::delete_webhook(&store, id))
        .await
        .map_err(WebError::internal)??;
    Ok(Redirect::to("/webhooks?notice=deleted").into_response())
}

/// `POST /webhooks/{id}/{enable|disable|pause|resume}`.
pub async fn action(
    State(state): State<AppState>,
    Path((id, action)): Path<(String, String)>,
) -> Result<Response, WebError> {
    let id = parse_id(&id)?;
    let store = state.store.clone();
    let act = action.clone();
    let notice = tokio::task::spawn_blocking(move || -> Result<&'static str, WebError> {
        Ok(match act.as_str() {
            "enable" => {
                ops::set_enabled(&store, id, true)?;
                "enabled"
            }
            "disable" => {
                ops::set_enabled(&store, id, false)?;
                "disabled"
            }
            "pause" => {
                ops::pause(&store, id)?;
                "paused"
            }
            "resume" => {
                ops::resume(&store, id)?;
                "resumed"
            }
            other => return Err(WebError::not_found(format!("action {other:?}"))),
        })
    })
    .await
    .map_err(WebError::internal)??;
    match notice {
        "enabled" | "resumed" => state.deliver_wake.notify_one(),
        _ => {}
    }
    Ok(Redirect::to(&format!("/webhooks?notice={notice}")).into_response())
}

/// `POST /webhooks/preview`: the exact request the form would send for a
/// sample event of `sample_type`, or the first template error with its
/// field, line and column. Answers JSON for the form's script.
pub async fn preview(Form(pairs): Form<Vec<(String, String)>>) -> Result<Response, WebError> {
    let data = FormData(pairs);
    let kind = match data.get("sample_type") {
        "" => "ticket.login".to_owned(),
        k => k.to_owned(),
    };
    let id = data.get("id").parse::<i64>().ok();
    let out = tokio::task::spawn_blocking(move || preview_json(&data, &kind, id))
        .await
        .map_err(WebError::internal)?;
    Ok(Json(out).into_response())
}

/// The preview answer (kept apart from HTTP for its tests).
fn preview_json(data: &FormData, kind: &str, id: Option<i64>) -> serde_json::Value {
    let field_error = |e: FieldError| json!({"error": {"field": e.field, "message": e.message}});
    let mut patch = match form::to_patch(data) {
        Ok(p) => p,
        Err(e) => return field_error(e),
    };
    // A form with no events yet previews the chosen sample.
    if patch.events.as_ref().is_none_or(|e| e.is_empty()) {
        patch.events = Some(vec![kind.to_owned()]);
    }
    if patch.name.as_deref().is_none_or(|n| n.trim().is_empty()) {
        patch.name = Some("preview".into());
    }
    // Start from a complete example so a half-filled form still previews.
    let mut spec = WebhookSpec::example("http://example.invalid/");
    if let Err(e) = spec.apply(patch) {
        return field_error(e);
    }
    let compiled = match CompiledRequest::compile(&spec, id) {
        Ok(c) => c,
        Err(e) => return template_error(&e),
    };
    let event = Arc::new(samples::sample_event(kind));
    let rendered = if spec.batch.is_some() {
        compiled.render_batch(&[event], None)
    } else {
        compiled.render(&event)
    };
    let req = match rendered {
        Ok(r) => r,
        Err(e) => return template_error(&e),
    };
    let mut added = Vec::new();
    match spec.auth.kind() {
        "none" => {}
        "basic" => added.push("Authorization: Basic *** (from the credentials)".to_owned()),
        "bearer" | "token" | "oauth2" => {
            added.push("Authorization: Bearer *** (token added when sent)".to_owned())
        }
        "apikey" | "custom" => {
            if let crate::spec::auth::Auth::Apikey { header, .. }
            | crate::spec::auth::Auth::Custom { header, .. } = &spec.auth
            {
                added.push(format!("{header}: ***"));
            }
        }
        _ => {}
    }
    match &spec.signing {
        crate::spec::signing::Signing::None => {}
        crate::spec::signing::Signing::Standard { .. } => added.push(
            "webhook-id, webhook-timestamp, webhook-signature (Standard Webhooks, computed when sent)"
                .into(),
        ),
        crate::spec::signing::Signing::Hmac { header, .. } => {
            added.push(format!("{header}: HMAC-SHA256 of the body, computed when sent"))
        }
    }
    let warning = match spec.body_format {
        _ if req.body.is_empty() => None,
        BodyFormat::Json => render::check_json(&req.body).err(),
        BodyFormat::Xml => render::check_xml(&req.body).err(),
    }
    .map(|w| format!("the body is not well-formed: {w}"))
    .or_else(|| {
        let twice = render::duplicate_keys::duplicate_keys(&req.body);
        (!twice.is_empty()).then(|| {
            format!(
                "the body has {} more than once; it is sent as written, and most receivers keep only the last",
                twice.iter().map(|k| format!("{k:?}")).collect::<Vec<_>>().join(", ")
            )
        })
    });
    json!({
        "request": {
            "method": req.method.as_str(),
            "url": req.url,
            "headers": req.headers.iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>(),
            "added": added,
            "body": req.body,
        },
        "warning": warning,
    })
}

fn template_error(e: &render::Error) -> serde_json::Value {
    json!({"error": {"field": e.field, "line": e.line, "column": e.column, "message": e.message}})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> FormData {
        FormData::from_pairs(pairs)
    }

    #[test]
    fn preview_renders_the_sample_and_points_at_errors() {
        let ok = preview_json(
            &form(&[
                ("url", "http://127.0.0.1:9/<<event.type>>"),
                ("body_template", "{\"t\": \"<<event.type>>\"}"),
                ("body_mime", "application/json"),
            ]),
            "ticket.logout",
            None,
        );
        assert_eq!(
            ok["request"]["url"], "http://127.0.0.1:9/ticket.logout",
            "{ok}"
        );
        assert_eq!(ok["request"]["body"], "{\"t\": \"ticket.logout\"}");
        let bad = preview_json(
            &form(&[
                ("url", "http://127.0.0.1:9/"),
                (
                    "body_template",
                    "{\n  \"a\": \"<<event.uuid>>\",\n  \"b\": \"<% if %>\"\n}",
                ),
                ("body_mime", "application/json"),
            ]),
            "ticket.login",
            None,
        );
        assert_eq!(bad["error"]["field"], "body_template");
        assert_eq!(bad["error"]["line"], 3, "{bad}");
    }

    #[test]
    fn every_preset_previews_for_every_known_type() {
        for (key, _, body) in PRESETS {
            let mime = if key.ends_with(".xml") {
                "application/xml"
            } else {
                "application/json"
            };
            for kind in KNOWN_TYPES {
                let out = preview_json(
                    &form(&[
                        ("url", "http://127.0.0.1:9/"),
                        ("body_template", body),
                        ("body_mime", mime),
                    ]),
                    kind,
                    None,
                );
                assert!(out["request"].is_object(), "{key} {kind}: {out}");
                assert!(out["warning"].is_null(), "{key} {kind}: {out}");
            }
        }
    }

    /// The chat presets show an alert's message (herald.* events carry
    /// `message`, not `description`).
    #[test]
    fn chat_presets_show_an_alerts_message() {
        for (key, _, body) in PRESETS
            .iter()
            .filter(|(k, _, _)| k.contains("slack") || k.contains("discord"))
        {
            for kind in ["herald.webhook.paused", "herald.storage.low"] {
                let out = preview_json(
                    &form(&[
                        ("url", "http://127.0.0.1:9/"),
                        ("body_template", body),
                        ("body_mime", "application/json"),
                    ]),
                    kind,
                    None,
                );
                let sent = out["request"]["body"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                let message = crate::engines::render::samples::sample_event(kind).data["message"]
                    .as_str()
                    .unwrap()
                    .to_owned();
                let shown = serde_json::to_string(&message[..60]).unwrap();
                assert!(
                    sent.contains(&shown[1..shown.len() - 1]),
                    "{key} {kind}: {sent}"
                );
                assert!(!sent.contains("(no description)"), "{key} {kind}: {sent}");
            }
        }
    }
}
