//! The webhook form: its flat fields (`auth_kind`, `retry_delays`, …) to a
//! [`WebhookPatch`] and back. Both directions go through one map of field
//! values, so a form that failed validation is shown again as typed.
//!
//! Secrets are never sent to the browser: a stored secret shows as
//! [`MASK`] (sent back, it keeps the stored value) and a secret typed into a
//! form that failed validation is not echoed (the page asks for it again).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::base::secret::MASK;
use crate::spec::field::FieldError;
use crate::spec::webhook::{Webhook, WebhookPatch};

/// Form fields holding secrets.
pub const SECRET_FIELDS: &[&str] = &[
    "auth_password",
    "auth_token",
    "auth_key",
    "auth_value",
    "token_password",
    "oauth_client_secret",
    "hmac_secret",
];

/// A posted form: `(name, value)` pairs in order (a multi-select repeats its name).
#[derive(Debug, Clone, Default)]
pub struct FormData(pub Vec<(String, String)>);

impl FormData {
    /// A form from literal pairs, for tests.
    #[cfg(test)]
    pub fn from_pairs(pairs: &[(&str, &str)]) -> FormData {
        FormData(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    /// The first value of `name`, or "".
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    /// Every value of `name`.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Is checkbox `name` ticked?
    pub fn checked(&self, name: &str) -> bool {
        !self.get(name).is_empty()
    }
}

/// A number field; empty gives `default`.
fn number(form: &FormData, name: &str, field: &str, default: f64) -> Result<f64, FieldError> {
    let text = form.get(name).trim();
    if text.is_empty() {
        return Ok(default);
    }
    text.parse::<f64>()
        .ok()
        .filter(|n| n.is_finite())
        .ok_or_else(|| FieldError::new(field, format!("{text:?} is not a number")))
}

/// A whole-number field; empty gives `default`.
fn whole(form: &FormData, name: &str, field: &str, default: u64) -> Result<u64, FieldError> {
    let text = form.get(name).trim();
    if text.is_empty() {
        return Ok(default);
    }
    text.parse::<u64>()
        .map_err(|_| FieldError::new(field, format!("{text:?} is not a whole number")))
}

/// The event patterns: ticked known types plus the free patterns (split on
/// commas, spaces or new lines), each once, in order.
fn events(form: &FormData) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let free = form.get("events_extra");
    for p in form
        .all("events")
        .into_iter()
        .chain(free.split(|c: char| c == ',' || c.is_whitespace()))
    {
        let p = p.trim();
        if !p.is_empty() && !out.iter().any(|e| e == p) {
            out.push(p.to_owned());
        }
    }
    out
}

/// The authentication part of the patch.
fn auth(form: &FormData) -> Result<Value, FieldError> {
    let f = |n| form.get(n);
    Ok(match f("auth_kind") {
        "" | "none" => json!({"kind": "none"}),
        "basic" => {
            json!({"kind": "basic", "username": f("auth_username"), "password": f("auth_password")})
        }
        "bearer" => json!({"kind": "bearer", "token": f("auth_token")}),
        "apikey" => {
            let header = if f("auth_header").trim().is_empty() {
                "apikey"
            } else {
                f("auth_header")
            };
            json!({"kind": "apikey", "header": header, "key": f("auth_key")})
        }
        "custom" => json!({"kind": "custom", "header": f("auth_header"), "value": f("auth_value")}),
        "token" => json!({
            "kind": "token",
            "url": f("token_url"),
            "method": if f("token_method").is_empty() { "POST" } else { f("token_method") },
            "headers": f("token_headers"),
            "body_template": f("token_body_template"),
            "body_mime": if f("token_body_mime").is_empty() { "application/json" } else { f("token_body_mime") },
            "username": f("token_username"),
            "password": f("token_password"),
            "basic": form.checked("token_basic"),
            "token_path": if f("token_path").trim().is_empty() { "auth_token" } else { f("token_path") },
            "refresh_minutes": number(form, "token_refresh_minutes", "auth", 30.0)?,
        }),
        "oauth2" => json!({
            "kind": "oauth2",
            "token_url": f("oauth_token_url"),
            "client_id": f("oauth_client_id"),
            "client_secret": f("oauth_client_secret"),
            "scope": Some(f("oauth_scope").trim()).filter(|s| !s.is_empty()),
            "refresh_minutes": number(form, "oauth_refresh_minutes", "auth", 30.0)?,
        }),
        other => {
            return Err(FieldError::new(
                "auth",
                format!("{other:?} is not an authentication kind"),
            ));
        }
    })
}

/// The signing part; `None` keeps the stored Standard Webhooks secrets.
fn signing(form: &FormData) -> Result<Option<Value>, FieldError> {
    let f = |n| form.get(n);
    Ok(match f("signing_kind") {
        "" | "none" => Some(json!({"kind": "none"})),
        // Already signing this way: keep its secrets (rotate from the CLI/API).
        "standard" if form.checked("signing_keep") => None,
        // New: herald generates a secret on save and shows it once.
        "standard" => Some(json!({"kind": "standard", "secrets": []})),
        "hmac" => Some(json!({
            "kind": "hmac",
            "header": if f("hmac_header").trim().is_empty() { "X-Signature" } else { f("hmac_header") },
            "secret": f("hmac_secret"),
            "encoding": if f("hmac_encoding").is_empty() { "hex" } else { f("hmac_encoding") },
        })),
        other => {
            return Err(FieldError::new(
                "signing",
                format!("{other:?} is not a signing kind"),
            ));
        }
    })
}

/// The retry policy.
fn retry(form: &FormData) -> Result<Value, FieldError> {
    let jitter = number(form, "retry_jitter", "retry", 10.0)? / 100.0;
    Ok(match form.get("retry_kind") {
        "once" => json!({"kind": "once"}),
        "" | "schedule" => {
            let delays = form
                .get("retry_delays")
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|d| !d.is_empty())
                .map(|d| {
                    d.parse::<f64>()
                        .ok()
                        .filter(|n| n.is_finite())
                        .ok_or_else(|| {
                            FieldError::new("retry", format!("{d:?} is not a number of seconds"))
                        })
                })
                .collect::<Result<Vec<_>, _>>()?;
            json!({"kind": "schedule", "delays": delays, "jitter": jitter})
        }
        "fixed" => json!({
            "kind": "fixed",
            "interval": number(form, "retry_interval", "retry", 60.0)?,
            "retries": whole(form, "retry_retries", "retry", 5)?,
            "jitter": jitter,
        }),
        other => {
            return Err(FieldError::new(
                "retry",
                format!("{other:?} is not a retry policy"),
            ));
        }
    })
}

/// The whole form as a patch (every field given).
pub fn to_patch(form: &FormData) -> Result<WebhookPatch, FieldError> {
    let mut patch = json!({
        "name": form.get("name").trim(),
        "description": form.get("description").trim(),
        "url": form.get("url").trim(),
        "method": form.get("method"),
        "events": events(form),
        "headers": form.get("headers"),
        "body_template": form.get("body_template"),
        "body_mime": form.get("body_mime"),
        "log_bodies": form.checked("log_bodies"),
        "enabled": form.checked("enabled"),
        "timeout_ms": (number(form, "timeout_seconds", "timeout_ms", 30.0)? * 1000.0).round().max(0.0) as u64,
        "auth": auth(form)?,
        "retry": retry(form)?,
        "max_in_flight": whole(
            form,
            "max_in_flight",
            "max_in_flight",
            crate::spec::webhook::DEFAULT_MAX_IN_FLIGHT as u64,
        )?,
        "ordered": form.checked("ordered"),
        "follow_redirects": form.checked("follow_redirects"),
        "batch": if form.checked("batch_on") {
            json!({
                "max_events": whole(form, "batch_max_events", "batch", 100)?,
                "max_wait": number(form, "batch_max_wait", "batch", 5.0)?,
            })
        } else {
            Value::Null
        },
    });
    if let Some(s) = signing(form)? {
        patch["signing"] = s;
    }
    // Left out, these keep their value (a new webhook's default).
    for key in ["method", "body_mime"] {
        if form.get(key).is_empty() {
            patch.as_object_mut().map(|m| m.remove(key));
        }
    }
    serde_json::from_value(patch).map_err(|e| FieldError::new("form", e.to_string()))
}

/// The field values a form shows: name → string (or list, for `events`).
pub type Values = BTreeMap<String, Value>;

/// The values of a posted form, to show it again. Typed secrets are not
/// echoed: editing a stored webhook they show as the mask again (which
/// keeps the stored value when saved), on a new one they are blank.
pub fn values_from_form(form: &FormData, editing: bool) -> Values {
    let mut v = Values::new();
    for (k, val) in &form.0 {
        if k == "events" || k == super::session::CSRF_FIELD {
            continue;
        }
        let shown = if SECRET_FIELDS.contains(&k.as_str()) && val != MASK {
            if editing {
                MASK.to_owned()
            } else {
                String::new()
            }
        } else {
            val.clone()
        };
        v.insert(k.clone(), Value::String(shown));
    }
    v.insert("events".into(), json!(form.all("events")));
    v
}

/// The values of a stored webhook (secrets masked), split into the known
/// types `known` ticks and the free patterns.
pub fn values_from_webhook(w: &Webhook, known: &[String]) -> Values {
    // The serialised webhook is the masked one: secrets come out as ***.
    let j = serde_json::to_value(w).unwrap_or_default();
    let s = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        // Whole numbers as typed on a new form (`5`, not `5.0`).
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
            _ => n.to_string(),
        },
        v => v.to_string(),
    };
    let mut v = Values::new();
    let mut set = |k: &str, val: String| {
        v.insert(k.to_owned(), Value::String(val));
    };
    for k in [
        "name",
        "description",
        "url",
        "method",
        "headers",
        "body_template",
        "body_mime",
        "updated_at",
    ] {
        set(k, s(&j[k]));
    }
    let flag = |b: bool| if b { "on".to_owned() } else { String::new() };
    set("log_bodies", flag(w.spec.log_bodies));
    set("enabled", flag(w.spec.enabled));
    set("ordered", flag(w.spec.ordered));
    set("follow_redirects", flag(w.spec.follow_redirects));
    set(
        "timeout_seconds",
        format!("{}", w.spec.timeout.as_secs_f64()),
    );
    set("max_in_flight", w.spec.max_in_flight.to_string());
    let a = &j["auth"];
    let kind = s(&a["kind"]);
    match kind.as_str() {
        "basic" => {
            set("auth_username", s(&a["username"]));
            set("auth_password", s(&a["password"]));
        }
        "bearer" => set("auth_token", s(&a["token"])),
        "apikey" => {
            set("auth_header", s(&a["header"]));
            set("auth_key", s(&a["key"]));
        }
        "custom" => {
            set("auth_header", s(&a["header"]));
            set("auth_value", s(&a["value"]));
        }
        "token" => {
            for (field, key) in [
                ("token_url", "url"),
                ("token_method", "method"),
                ("token_headers", "headers"),
                ("token_body_template", "body_template"),
                ("token_body_mime", "body_mime"),
                ("token_username", "username"),
                ("token_password", "password"),
                ("token_path", "token_path"),
                ("token_refresh_minutes", "refresh_minutes"),
            ] {
                set(field, s(&a[key]));
            }
            set("token_basic", flag(a["basic"].as_bool().unwrap_or(false)));
        }
        "oauth2" => {
            for (field, key) in [
                ("oauth_token_url", "token_url"),
                ("oauth_client_id", "client_id"),
                ("oauth_client_secret", "client_secret"),
                ("oauth_scope", "scope"),
                ("oauth_refresh_minutes", "refresh_minutes"),
            ] {
                set(field, s(&a[key]));
            }
        }
        _ => {}
    }
    set("auth_kind", kind);
    let g = &j["signing"];
    let skind = s(&g["kind"]);
    if skind == "standard" {
        set("signing_keep", "on".into());
    }
    if skind == "hmac" {
        set("hmac_header", s(&g["header"]));
        set("hmac_secret", s(&g["secret"]));
        set("hmac_encoding", s(&g["encoding"]));
    }
    set("signing_kind", skind);
    let r = &j["retry"];
    set("retry_kind", s(&r["kind"]));
    if let Some(delays) = r["delays"].as_array() {
        set(
            "retry_delays",
            delays.iter().map(s).collect::<Vec<_>>().join(", "),
        );
    }
    set("retry_interval", s(&r["interval"]));
    set("retry_retries", s(&r["retries"]));
    if let Some(j) = r["jitter"].as_f64() {
        // Shown as a percentage without rounding, so a save keeps it exactly.
        set(
            "retry_jitter",
            format!("{}", (j * 100.0 * 1e6).round() / 1e6),
        );
    }
    if let Some(b) = &w.spec.batch {
        set("batch_on", "on".into());
        set("batch_max_events", b.max_events.to_string());
        set("batch_max_wait", b.max_wait.to_string());
    }
    let (ticked, free): (Vec<&String>, Vec<&String>) =
        w.spec.events.iter().partition(|e| known.contains(e));
    set(
        "events_extra",
        free.iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    );
    v.insert("events".into(), json!(ticked));
    v
}

/// The values of a new webhook's form, with `body` from a preset.
pub fn values_for_new(body: &str, mime: &str) -> Values {
    let mut v = Values::new();
    for (k, val) in [
        ("method", "POST"),
        ("body_mime", mime),
        ("enabled", "on"),
        ("timeout_seconds", "30"),
        ("max_in_flight", "16"),
        ("auth_kind", "none"),
        ("signing_kind", "none"),
        ("retry_kind", "schedule"),
        ("retry_delays", "5, 30, 120, 600, 3600"),
        ("retry_jitter", "10"),
        ("body_template", body),
    ] {
        v.insert(k.into(), Value::String(val.into()));
    }
    v.insert("events".into(), json!([]));
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::webhook::WebhookSpec;

    fn form(pairs: &[(&str, &str)]) -> FormData {
        FormData::from_pairs(pairs)
    }

    #[test]
    fn a_full_form_becomes_a_spec() {
        let f = form(&[
            ("name", " PMS "),
            ("url", "http://127.0.0.1:9/x"),
            ("method", "PUT"),
            ("events", "ticket.login"),
            ("events", "ticket.logout"),
            ("events_extra", "system.*, ticket.login"),
            ("body_template", "{\"u\":\"<<event.uuid>>\"}"),
            ("body_mime", "application/json"),
            ("enabled", "on"),
            ("timeout_seconds", "2.5"),
            ("auth_kind", "basic"),
            ("auth_username", "u"),
            ("auth_password", "p"),
            ("signing_kind", "hmac"),
            ("hmac_secret", "s3"),
            ("retry_kind", "fixed"),
            ("retry_interval", "7"),
            ("retry_retries", "3"),
            ("retry_jitter", "0"),
            ("max_in_flight", "2"),
            ("batch_on", "on"),
            ("batch_max_events", "10"),
            ("batch_max_wait", "1"),
        ]);
        let spec = WebhookSpec::from_patch(to_patch(&f).unwrap()).unwrap();
        assert_eq!(spec.name, "PMS");
        assert_eq!(spec.events, ["ticket.login", "ticket.logout", "system.*"]);
        assert_eq!(spec.timeout.as_millis(), 2500);
        assert_eq!(spec.auth.kind(), "basic");
        assert!(!spec.log_bodies);
        assert_eq!(spec.batch.as_ref().unwrap().max_events, 10);
        assert_eq!(
            spec.retry,
            crate::spec::retry::RetryPolicy::Fixed {
                interval: 7.0,
                retries: 3,
                jitter: 0.0
            }
        );
    }

    /// `spec` as a stored webhook.
    fn stored(spec: WebhookSpec) -> Webhook {
        Webhook {
            id: 1,
            spec,
            created_at: String::new(),
            updated_at: String::new(),
            health: Default::default(),
        }
    }

    /// Posts the values a stored webhook's form shows; returns the spec after.
    fn round_trip(spec: &WebhookSpec) -> WebhookSpec {
        let v = values_from_webhook(&stored(spec.clone()), &["ticket.login".to_owned()]);
        let mut pairs = Vec::new();
        for (k, val) in &v {
            match val {
                Value::Array(a) => pairs.extend(
                    a.iter()
                        .map(|x| (k.clone(), x.as_str().unwrap().to_owned())),
                ),
                Value::String(s) => pairs.push((k.clone(), s.clone())),
                _ => {}
            }
        }
        let mut again = spec.clone();
        again.apply(to_patch(&FormData(pairs)).unwrap()).unwrap();
        again
    }

    #[test]
    fn every_kind_of_setting_survives_an_unchanged_save() {
        use crate::base::secret::Secret;
        use crate::spec::auth::{Auth, OAuth2, TokenFlow};
        use crate::spec::retry::RetryPolicy;
        use crate::spec::signing::{Encoding, Signing, SigningSecret};
        let mut spec = WebhookSpec::example("http://127.0.0.1:9/x");
        spec.batch = Some(crate::spec::webhook::Batch {
            max_events: 7,
            max_wait: 2.5,
        });
        spec.ordered = true;
        spec.follow_redirects = true;
        spec.max_in_flight = 3;
        let auths = [
            Auth::Basic {
                username: "u".into(),
                password: Secret::new("p"),
            },
            Auth::Apikey {
                header: "X-Key".into(),
                key: Secret::new("k"),
            },
            Auth::Custom {
                header: "X-C".into(),
                value: Secret::new("v"),
            },
            Auth::Token(TokenFlow {
                url: "http://127.0.0.1:9/auth".into(),
                method: crate::spec::request::Method::Get,
                headers: "X-A: 1".into(),
                body_template: "{\"u\": \"<<auth.username>>\"}".into(),
                body_mime: crate::spec::request::BodyFormat::Json,
                username: "tu".into(),
                password: Secret::new("tp"),
                basic: true,
                token_path: "data.token".into(),
                refresh_minutes: 12.5,
            }),
            Auth::Oauth2(OAuth2 {
                token_url: "http://127.0.0.1:9/token".into(),
                client_id: "cid".into(),
                client_secret: Secret::new("cs"),
                scope: Some("events".into()),
                refresh_minutes: 3.0,
            }),
        ];
        let signings = [
            Signing::Hmac {
                header: "X-Sig".into(),
                secret: Secret::new("h"),
                encoding: Encoding::Base64,
            },
            Signing::Standard {
                secrets: vec![SigningSecret {
                    secret: crate::spec::signing::generate_secret(),
                    expires_at: None,
                }],
            },
        ];
        let retries = [
            RetryPolicy::Fixed {
                interval: 7.0,
                retries: 3,
                jitter: 0.125,
            },
            RetryPolicy::Schedule {
                delays: vec![1.5, 60.0],
                jitter: 0.0,
            },
            RetryPolicy::Once,
        ];
        for (i, auth) in auths.iter().enumerate() {
            spec.auth = auth.clone();
            spec.signing = signings[i % 2].clone();
            spec.retry = retries[i % 3].clone();
            assert_eq!(round_trip(&spec), spec, "{auth:?}");
        }
    }

    #[test]
    fn a_stored_webhook_shows_masked_and_comes_back_the_same() {
        let mut spec = WebhookSpec::example("http://127.0.0.1:9/x");
        spec.auth = crate::spec::auth::Auth::Bearer {
            token: crate::base::secret::Secret::new("tok-secret"),
        };
        spec.events = vec!["ticket.login".into(), "custom.*".into()];
        let v = values_from_webhook(&stored(spec.clone()), &["ticket.login".to_owned()]);
        assert_eq!(v["auth_token"], MASK);
        assert_eq!(v["events_extra"], "custom.*");
        // Whole seconds as a new form shows them, not `5.0, 30.0`.
        assert_eq!(v["retry_delays"], "5, 30, 120, 600, 3600");
        assert!(!serde_json::to_string(&v).unwrap().contains("tok-secret"));
        // Posting the shown values back changes nothing but keeps the secret.
        assert_eq!(round_trip(&spec), spec);
    }

    #[test]
    fn bad_numbers_name_their_field_and_typed_secrets_are_not_echoed() {
        let f = form(&[("timeout_seconds", "soon"), ("hmac_secret", "typed")]);
        assert_eq!(to_patch(&f).unwrap_err().field, "timeout_ms");
        let f = form(&[("retry_delays", "5, x")]);
        assert_eq!(to_patch(&f).unwrap_err().field, "retry");
        let typed = form(&[("hmac_secret", "typed"), ("auth_token", MASK)]);
        let v = values_from_form(&typed, false);
        assert_eq!(v["hmac_secret"], "");
        assert_eq!(v["auth_token"], MASK);
        // Editing: the mask again, so saving keeps the stored secret.
        assert_eq!(values_from_form(&typed, true)["hmac_secret"], MASK);
    }
}
