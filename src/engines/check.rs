//! The whole save-time check of a webhook: its fields ([`WebhookSpec::check`]),
//! the token flow's own templates, then the webhook's templates rendered with
//! a sample of every event type it subscribes to. Every surface saves
//! through this, so a webhook is refused the same way by the API, the web
//! admin and the CLI.

use crate::engines::auth::token;
use crate::engines::render::{self, Warnings};
use crate::spec::auth::Auth;
use crate::spec::field::FieldError;
use crate::spec::webhook::WebhookSpec;

/// Checks (and normalises) `spec` whole. Returns warnings that do not block
/// saving; `Err` names the first refused field.
pub fn webhook(spec: &mut WebhookSpec) -> Result<Warnings, FieldError> {
    spec.check_with(|auth| match auth {
        // The auth request's own templates must compile and render.
        Auth::Token(flow) => token::compile_flow(flow)
            .map(|_| ())
            .map_err(|e| FieldError::new("auth", format!("token: {e}"))),
        _ => Ok(()),
    })?;
    Ok(render::check(spec)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::request::Method;
    use crate::spec::webhook::{DEFAULT_TIMEOUT, WebhookPatch};

    fn patch(json: serde_json::Value) -> WebhookPatch {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn minimal_patch_creates_a_valid_spec() {
        let mut s = WebhookSpec::from_patch(patch(serde_json::json!({
            "name": "pms", "url": "http://127.0.0.1:1/x", "events": ["ticket.*"]
        })))
        .unwrap();
        assert!(webhook(&mut s).unwrap().is_empty());
        assert_eq!(s.method, Method::Post);
        assert_eq!(s.timeout, DEFAULT_TIMEOUT);
    }

    #[test]
    fn each_bad_field_is_named() {
        let base = serde_json::json!({"name": "n", "url": "http://127.0.0.1:1/", "events": ["*"]});
        let field_of = |k: &str, v: serde_json::Value| {
            let mut j = base.clone();
            j[k] = v;
            let r = WebhookSpec::from_patch(patch(j)).and_then(|mut s| webhook(&mut s).map(|_| ()));
            r.unwrap_err().field
        };
        assert_eq!(field_of("url", "ftp://x/".into()), "url");
        assert_eq!(field_of("url", "not a url".into()), "url");
        assert_eq!(field_of("method", "PATCH".into()), "method");
        assert_eq!(field_of("events", serde_json::json!([])), "events");
        assert_eq!(
            field_of("events", serde_json::json!(["Ticket Login"])),
            "events"
        );
        assert_eq!(field_of("name", " ".into()), "name");
        assert_eq!(field_of("body_mime", "text/plain".into()), "body_mime");
        assert_eq!(field_of("timeout_ms", 0.into()), "timeout_ms");
        assert_eq!(field_of("headers", "nope".into()), "headers");
        assert_eq!(
            field_of("body_template", "{\"a\": <<x".into()),
            "body_template"
        );
    }

    #[test]
    fn a_broken_token_flow_is_named_before_later_fields() {
        // As before the split: the token flow is checked with the auth
        // settings, before retry, max_in_flight and the rest.
        let mut s = WebhookSpec::example("http://127.0.0.1:1/");
        s.auth = serde_json::from_str(
            r#"{"kind":"token","url":"http://127.0.0.1:1/","body_template":"{\"u\": <<auth.username"}"#,
        )
        .unwrap();
        s.max_in_flight = 0;
        assert_eq!(webhook(&mut s).unwrap_err().field, "auth");
    }

    #[test]
    fn a_token_flow_with_a_broken_body_is_refused() {
        let mut s = WebhookSpec::example("http://127.0.0.1:1/");
        s.auth = serde_json::from_str(
            r#"{"kind":"token","url":"http://127.0.0.1:1/","body_template":"{\"u\": <<auth.username"}"#,
        )
        .unwrap();
        let e = webhook(&mut s).unwrap_err();
        assert_eq!(e.field, "auth");
        assert!(e.message.contains("body_template"), "{}", e.message);
    }
}
