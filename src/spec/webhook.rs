//! Webhooks: what an admin configures for one endpoint, and the checks a
//! configuration must pass before it is stored (nothing half-stored: a spec is
//! validated whole, then written in one statement).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::spec::auth::{self, Auth};
use crate::spec::field::FieldError;
use crate::spec::request::{BodyFormat, Method};
use crate::spec::retry::RetryPolicy;
use crate::spec::signing::Signing;

/// Default request timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest allowed request timeout.
const MAX_TIMEOUT: Duration = Duration::from_secs(300);
/// Longest name.
const MAX_NAME_LEN: usize = 200;
/// Longest description.
pub const MAX_DESCRIPTION_LEN: usize = 1000;
/// Largest template or header text.
const MAX_TEMPLATE_BYTES: usize = 256 * 1024;
/// Default requests in flight per webhook.
pub const DEFAULT_MAX_IN_FLIGHT: u32 = 16;
/// Most requests in flight per webhook.
const MAX_IN_FLIGHT: u32 = 256;
/// Most events in one batch.
const MAX_BATCH_EVENTS: u32 = 10_000;
/// Longest a batch may wait to fill, in seconds.
const MAX_BATCH_WAIT: f64 = 3600.0;

/// Batching: up to `max_events` events, or whatever arrived within
/// `max_wait` seconds of the oldest, go out in one request whose body
/// template iterates `<% for e in events %>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    /// Most events per request.
    pub max_events: u32,
    /// Seconds the oldest event waits for the batch to fill.
    pub max_wait: f64,
}

impl Batch {
    /// Checks the limits.
    pub fn check(&self) -> Result<(), FieldError> {
        if !(1..=MAX_BATCH_EVENTS).contains(&self.max_events) {
            return Err(FieldError::new(
                "batch",
                format!("max_events must be between 1 and {MAX_BATCH_EVENTS}"),
            ));
        }
        if !(0.0..=MAX_BATCH_WAIT).contains(&self.max_wait) {
            return Err(FieldError::new(
                "batch",
                format!("max_wait must be between 0 and {MAX_BATCH_WAIT} seconds"),
            ));
        }
        Ok(())
    }

    /// How long the oldest event waits for the batch to fill.
    pub fn wait(&self) -> Duration {
        Duration::from_secs_f64(self.max_wait)
    }
}

/// Everything an admin sets on a webhook.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct WebhookSpec {
    /// Display name.
    pub name: String,
    /// What the webhook is for, in the admin's words (optional).
    pub description: String,
    /// URL template.
    pub url: String,
    /// HTTP method.
    pub method: Method,
    /// Event patterns: `ticket.login`, `ticket.*`, `*`.
    pub events: Vec<String>,
    /// Header templates, `Field: Value` per line.
    pub headers: String,
    /// Body template; empty for no body.
    pub body_template: String,
    /// Body format.
    #[serde(rename = "body_mime")]
    pub body_format: BodyFormat,
    /// Store request/response headers and bodies in the event log.
    pub log_bodies: bool,
    /// Deliver at all; a disabled webhook's pending deliveries wait.
    pub enabled: bool,
    /// Request timeout.
    #[serde(rename = "timeout_ms", serialize_with = "millis")]
    #[schema(value_type = u64)]
    pub timeout: Duration,
    /// How requests authenticate (output with secrets masked).
    #[serde(serialize_with = "masked_auth")]
    pub auth: Auth,
    /// How requests are signed (output with secrets masked).
    #[serde(serialize_with = "masked_signing")]
    pub signing: Signing,
    /// When failed attempts are tried again.
    pub retry: RetryPolicy,
    /// Requests in flight at once to this endpoint.
    pub max_in_flight: u32,
    /// One request at a time, in event order; a failing event holds the
    /// ones behind it until it is delivered or fails for good.
    pub ordered: bool,
    /// Follow 3xx redirects (up to 5) instead of counting them as failures.
    pub follow_redirects: bool,
    /// Several events per request; `None` sends one request per event.
    pub batch: Option<Batch>,
}

fn masked_auth<S: serde::Serializer>(a: &Auth, s: S) -> Result<S::Ok, S::Error> {
    a.masked().serialize(s)
}

fn masked_signing<S: serde::Serializer>(a: &Signing, s: S) -> Result<S::Ok, S::Error> {
    a.masked().serialize(s)
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

/// A stored webhook.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Webhook {
    /// Stable id.
    pub id: i64,
    /// Its settings.
    #[serde(flatten)]
    pub spec: WebhookSpec,
    /// When it was created.
    pub created_at: String,
    /// When it was last changed; compiled templates are cached by it.
    pub updated_at: String,
    /// How its deliveries are going (kept apart from its settings).
    pub health: Health,
}

/// How a webhook's deliveries are going: the failure streak, pause and the
/// last attempt. Written by the deliverer and the health monitor.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Health {
    /// Set while paused: nothing is sent until an admin resumes it.
    pub paused_at: Option<String>,
    /// Why it was paused.
    pub pause_reason: Option<String>,
    /// First failure of the current streak of failed attempts.
    pub failing_since: Option<String>,
    /// Failed attempts in a row.
    pub failure_streak: i64,
    /// The last attempt's error, while failing.
    pub last_error: Option<String>,
    /// When the last attempt was made.
    pub last_attempt_at: Option<String>,
    /// `delivered` or `failed`: the last attempt's outcome.
    pub last_status: Option<String>,
}

/// A change to a webhook: each field left out keeps its value. Used by the
/// API (create, update) and the CLI (add, edit).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookPatch {
    /// Display name.
    pub name: Option<String>,
    /// What the webhook is for.
    pub description: Option<String>,
    /// URL template.
    pub url: Option<String>,
    /// `POST`, `GET`, `PUT` or `DELETE`.
    pub method: Option<String>,
    /// Event patterns.
    pub events: Option<Vec<String>>,
    /// Header lines.
    pub headers: Option<String>,
    /// Body template.
    pub body_template: Option<String>,
    /// `application/json` or `application/xml`.
    pub body_mime: Option<String>,
    /// Log bodies and headers.
    pub log_bodies: Option<bool>,
    /// Enabled.
    pub enabled: Option<bool>,
    /// Timeout in milliseconds.
    pub timeout_ms: Option<u64>,
    /// Authentication; secrets sent as `***` keep their stored value.
    pub auth: Option<Auth>,
    /// Signing; secrets sent as `***` keep their stored value.
    pub signing: Option<Signing>,
    /// Retry policy.
    pub retry: Option<RetryPolicy>,
    /// Requests in flight at once.
    pub max_in_flight: Option<u32>,
    /// Strict event order, one request at a time.
    pub ordered: Option<bool>,
    /// Follow redirects.
    pub follow_redirects: Option<bool>,
    /// Batching; `null` turns it off.
    #[serde(default, deserialize_with = "present")]
    pub batch: Option<Option<Batch>>,
    /// Read-only fields of a webhook as returned by the API, accepted and
    /// ignored so a GET → edit → PUT round trip works.
    #[serde(default, rename = "id")]
    #[schema(value_type = Option<Object>, read_only)]
    pub _id: Option<serde::de::IgnoredAny>,
    /// Ignored (read-only).
    #[serde(default, rename = "created_at")]
    #[schema(value_type = Option<Object>, read_only)]
    pub _created_at: Option<serde::de::IgnoredAny>,
    /// Ignored (read-only).
    #[serde(default, rename = "updated_at")]
    #[schema(value_type = Option<Object>, read_only)]
    pub _updated_at: Option<serde::de::IgnoredAny>,
    /// Ignored (read-only).
    #[serde(default, rename = "health")]
    #[schema(value_type = Option<Object>, read_only)]
    pub _health: Option<serde::de::IgnoredAny>,
}

/// A field that may be given as `null` (to clear it): present → `Some`.
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

impl WebhookSpec {
    /// A minimal valid spec: POST of an empty JSON body to `url` for all events.
    pub fn example(url: &str) -> WebhookSpec {
        WebhookSpec {
            name: "example".into(),
            description: String::new(),
            url: url.into(),
            method: Method::Post,
            events: vec!["*".into()],
            headers: String::new(),
            body_template: String::new(),
            body_format: BodyFormat::Json,
            log_bodies: false,
            enabled: true,
            timeout: DEFAULT_TIMEOUT,
            auth: Auth::None,
            signing: Signing::None,
            retry: RetryPolicy::default(),
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            ordered: false,
            follow_redirects: false,
            batch: None,
        }
    }

    /// Builds a new spec from a patch; `name`, `url` and `events` are required.
    pub fn from_patch(patch: WebhookPatch) -> Result<WebhookSpec, FieldError> {
        let name = patch
            .name
            .clone()
            .ok_or_else(|| FieldError::new("name", "is required"))?;
        let url = patch
            .url
            .clone()
            .ok_or_else(|| FieldError::new("url", "is required"))?;
        if patch.events.is_none() {
            return Err(FieldError::new(
                "events",
                "is required: e.g. [\"ticket.*\"] or [\"*\"]",
            ));
        }
        let mut spec = WebhookSpec {
            name,
            url,
            ..WebhookSpec::example("")
        };
        spec.events.clear();
        spec.apply(patch)?;
        Ok(spec)
    }

    /// Applies a patch field by field (unchecked but for where stored secrets
    /// may go; save through [`crate::engines::check::webhook`]).
    pub fn apply(&mut self, patch: WebhookPatch) -> Result<(), FieldError> {
        // Stored secrets stay with the origin they were given for: kept
        // (left out, or sent back as "***") only while that origin stays.
        let keeps_stored_secret = patch.auth.as_ref().is_none_or(Auth::has_mask);
        let stored_for = self.auth.secret_goes_to(&self.url).map(auth::origin);
        if let Some(v) = patch.name {
            self.name = v;
        }
        if let Some(v) = patch.description {
            self.description = v;
        }
        if let Some(v) = patch.url {
            self.url = v;
        }
        if let Some(v) = patch.method {
            self.method = v.parse()?;
        }
        if let Some(v) = patch.events {
            self.events = v;
        }
        if let Some(v) = patch.headers {
            self.headers = v;
        }
        if let Some(v) = patch.body_template {
            self.body_template = v;
        }
        if let Some(v) = patch.body_mime {
            self.body_format = v.parse()?;
        }
        if let Some(v) = patch.log_bodies {
            self.log_bodies = v;
        }
        if let Some(v) = patch.enabled {
            self.enabled = v;
        }
        if let Some(v) = patch.timeout_ms {
            self.timeout = Duration::from_millis(v);
        }
        if let Some(mut v) = patch.auth {
            if v.has_mask() && v.kind() != self.auth.kind() {
                return Err(FieldError::new(
                    "auth",
                    format!(
                        "\"***\" keeps a stored secret only for the same kind (stored: {}); give the {} secret itself",
                        self.auth.kind(),
                        v.kind()
                    ),
                ));
            }
            v.keep_secrets_from(&self.auth);
            self.auth = v;
        }
        let has_secret = self.auth.secret_values().iter().any(|s| !s.is_empty());
        if keeps_stored_secret
            && has_secret
            && let (Some(old), Some(new)) = (
                stored_for,
                self.auth.secret_goes_to(&self.url).map(auth::origin),
            )
            && old != new
        {
            let name = self.auth.secret_name();
            return Err(FieldError::new(
                "auth",
                format!(
                    "the stored {kind} {name} was given for {old}, and it would now go to {new}: enter the {name} again (a stored secret never follows a change of host)",
                    kind = self.auth.kind()
                ),
            ));
        }
        if let Some(mut v) = patch.signing {
            if v.has_mask() && std::mem::discriminant(&v) != std::mem::discriminant(&self.signing) {
                return Err(FieldError::new(
                    "signing",
                    "\"***\" keeps a stored secret only for the same kind; give the secret itself",
                ));
            }
            v.keep_secrets_from(&self.signing);
            self.signing = v;
        }
        if let Some(v) = patch.retry {
            self.retry = v;
        }
        if let Some(v) = patch.max_in_flight {
            self.max_in_flight = v;
        }
        if let Some(v) = patch.ordered {
            self.ordered = v;
        }
        if let Some(v) = patch.follow_redirects {
            self.follow_redirects = v;
        }
        if let Some(v) = patch.batch {
            self.batch = v;
        }
        Ok(())
    }

    /// Checks every field but the templates, and normalises them (trimmed
    /// name and URL, deduplicated patterns). The templates need the template
    /// engine: [`crate::engines::check::webhook`] runs this, then them.
    pub fn check(&mut self) -> Result<(), FieldError> {
        self.check_with(|_| Ok(()))
    }

    /// [`WebhookSpec::check`], with `auth_templates` run right after the
    /// auth settings' own checks (so errors come in the order of the
    /// fields): the engine layer's check of a token flow's templates.
    pub fn check_with(
        &mut self,
        auth_templates: impl FnOnce(&Auth) -> Result<(), FieldError>,
    ) -> Result<(), FieldError> {
        self.name = self.name.trim().to_owned();
        if self.name.is_empty() {
            return Err(FieldError::new("name", "must not be empty"));
        }
        if self.name.chars().count() > MAX_NAME_LEN {
            return Err(FieldError::new(
                "name",
                format!("is longer than {MAX_NAME_LEN} characters"),
            ));
        }
        self.description = self.description.trim().to_owned();
        if self.description.chars().count() > MAX_DESCRIPTION_LEN {
            return Err(FieldError::new(
                "description",
                format!("is longer than {MAX_DESCRIPTION_LEN} characters"),
            ));
        }
        self.url = self.url.trim().to_owned();
        if self.url.is_empty() {
            return Err(FieldError::new("url", "must not be empty"));
        }
        self.events = self
            .events
            .iter()
            .map(|p| p.trim().to_owned())
            .filter(|p| !p.is_empty())
            .collect();
        self.events.dedup();
        if self.events.is_empty() {
            return Err(FieldError::new(
                "events",
                "must name at least one event pattern, e.g. ticket.* or *",
            ));
        }
        for p in &self.events {
            crate::base::event::check_pattern(p).map_err(|m| FieldError::new("events", m))?;
        }
        for (field, text) in [
            ("url", &self.url),
            ("headers", &self.headers),
            ("body_template", &self.body_template),
        ] {
            if text.len() > MAX_TEMPLATE_BYTES {
                return Err(FieldError::new(
                    field,
                    format!("is larger than {MAX_TEMPLATE_BYTES} bytes"),
                ));
            }
        }
        if self.timeout.is_zero() || self.timeout > MAX_TIMEOUT {
            return Err(FieldError::new(
                "timeout_ms",
                format!("must be between 1 and {} ms", MAX_TIMEOUT.as_millis()),
            ));
        }
        self.auth.check()?;
        auth_templates(&self.auth)?;
        self.signing.check()?;
        self.retry.check()?;
        if !(1..=MAX_IN_FLIGHT).contains(&self.max_in_flight) {
            return Err(FieldError::new(
                "max_in_flight",
                format!("must be between 1 and {MAX_IN_FLIGHT}"),
            ));
        }
        if let Some(b) = &self.batch {
            b.check()?;
            if self.ordered {
                return Err(FieldError::new(
                    "batch",
                    "batching and strict ordering cannot be combined; choose one",
                ));
            }
        }
        self.check_auth_and_signing_together()
    }
}

impl WebhookSpec {
    /// What only the combination of settings can get wrong: a signature
    /// header that would overwrite the credential header (or one herald
    /// sets), and `<<auth.token>>` without a token to fill it.
    fn check_auth_and_signing_together(&self) -> Result<(), FieldError> {
        let auth_header = auth::header_name(&self.auth);
        if let Some(h) = auth_header
            && auth::RESERVED_HEADERS.contains(&h.to_ascii_lowercase().as_str())
        {
            return Err(FieldError::new(
                "auth",
                format!("{h} is set by herald and cannot carry a credential"),
            ));
        }
        for sig in self.signing.header_names() {
            if auth::RESERVED_HEADERS.contains(&sig.to_ascii_lowercase().as_str())
                || auth_header.is_some_and(|a| a.eq_ignore_ascii_case(sig))
            {
                return Err(FieldError::new(
                    "signing",
                    format!(
                        "the signature header {sig} would replace the credential header or one herald sets"
                    ),
                ));
            }
        }
        let uses_token = [&self.url, &self.headers, &self.body_template]
            .iter()
            .any(|t| t.contains("auth.token"));
        if uses_token && !self.auth.fetches_token() {
            return Err(FieldError::new(
                "auth",
                "the templates use <<auth.token>>, which only the token and oauth2 kinds provide",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patch(json: serde_json::Value) -> WebhookPatch {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn required_fields() {
        let e = WebhookSpec::from_patch(patch(serde_json::json!({"name": "n"}))).unwrap_err();
        assert_eq!(e.field, "url");
    }
}
