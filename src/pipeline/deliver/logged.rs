//! What the event log keeps of an attempt: the request and response with
//! every form of the webhook's secrets masked.

use crate::engines::render::RenderedRequest;
use crate::engines::{auth, http as client, mask};
use crate::store::AttemptDetail;

/// Every form of a webhook's secrets that may show up in logged text:
/// credentials as is and escaped, the full values of credential headers
/// (e.g. the base64 of basic credentials), signing secrets.
pub fn credential_forms(spec: &crate::spec::webhook::WebhookSpec) -> Vec<String> {
    let mut out: Vec<String> = spec
        .auth
        .secret_values()
        .iter()
        .chain(spec.signing.secret_values().iter())
        .flat_map(|v| mask::forms(v))
        .collect();
    if let Some((_, value)) = auth::fixed_header(&spec.auth) {
        out.push(
            value
                .trim_start_matches("Basic ")
                .trim_start_matches("Bearer ")
                .to_owned(),
        );
    }
    out
}

/// The request and response as the log keeps them: secret-looking headers
/// (and the credential header, whatever its name) and URL parts masked, the
/// webhook's own secrets scrubbed wherever they appear (a token placed in
/// the body, a key echoed by the endpoint), bodies capped after scrubbing.
pub(super) fn detail(
    req: &RenderedRequest,
    resp: Option<&client::Response>,
    max: usize,
    secrets: &[String],
    auth_header: Option<&str>,
) -> AttemptDetail {
    let scrub = |t: &str| mask::scrub(t, secrets);
    let headers = req.headers.iter().map(|(k, v)| {
        let is_auth = auth_header.is_some_and(|a| a.eq_ignore_ascii_case(k));
        (k.as_str(), if is_auth { mask::MASK } else { v.as_str() })
    });
    AttemptDetail {
        request_method: req.method.to_string(),
        request_url: scrub(&mask::url(&req.url)),
        request_headers: scrub(&mask::headers_text(headers)),
        request_body: mask::cap(&scrub(&req.body), max),
        response_headers: resp.map(|r| scrub(&mask::mask_header_lines(&r.headers))),
        response_body: resp.map(|r| scrub(&r.body)),
    }
}
