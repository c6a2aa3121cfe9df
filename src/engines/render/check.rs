//! The save-time check of a webhook's templates: they compile, and render a
//! sample of every event type the webhook subscribes to into a request
//! herald can send; names no known event carries are warned about.

use std::sync::Arc;

use super::{CompiledRequest, Error, environment, parse_headers, samples};
use crate::base::event::Event;
use crate::spec::field::FieldError;
use crate::spec::webhook::WebhookSpec;

/// Top-level names every context has, besides the data fields.
const CONTEXT_NAMES: &[&str] = &["event", "webhook", "auth"];

/// A template error as a refused field, with its line and column.
impl From<Error> for FieldError {
    fn from(e: Error) -> Self {
        let message = match (e.line, e.column) {
            (Some(l), Some(c)) => format!("line {l}, column {c}: {}", e.message),
            (Some(l), None) => format!("line {l}: {}", e.message),
            _ => e.message,
        };
        FieldError::new(e.field, message)
    }
}

/// What a save-time check found that is worth telling but not refusing.
pub type Warnings = Vec<String>;

/// Checks a webhook's templates as the save path does: they compile, and for
/// a sample of every known event type its patterns select, the rendered URL
/// is an http(s) URL, header values are valid and the body is well-formed.
/// Returns warnings about names no known event carries.
pub fn check(spec: &WebhookSpec) -> Result<Warnings, Error> {
    let compiled = CompiledRequest::compile(spec, None)?;
    let mut types: Vec<String> = crate::base::event::known_types_matching(&spec.events)
        .into_iter()
        .map(str::to_owned)
        .collect();
    if types.is_empty() {
        // Only custom types: check with a generic event of the first pattern's type.
        types.push(
            spec.events
                .first()
                .map(|p| p.trim_end_matches(".*").to_owned())
                .unwrap_or_else(|| "custom".into()),
        );
    }
    if spec.batch.is_some() {
        // A batch of one and of every type: both must come out well-formed.
        let all: Vec<Arc<Event>> = types
            .iter()
            .map(|k| Arc::new(samples::sample_event(k)))
            .collect();
        for batch in [&all[..1], &all[..]] {
            compiled.render_batch(batch, None).map_err(|mut e| {
                e.message = format!(
                    "rendering a batch of {} sample event(s): {}",
                    batch.len(),
                    e.message
                );
                e
            })?;
        }
        let mut warnings = unknown_names(spec);
        warnings.extend(unknown_patterns(spec));
        if !spec.body_template.contains("events") {
            warnings.push(
                "the webhook batches events, but the body does not use `events`: iterate them with <% for e in events %> … <% endfor %>".into(),
            );
        }
        return Ok(warnings);
    }
    let mut duplicates = std::collections::BTreeSet::new();
    for kind in &types {
        let event = samples::sample_event(kind);
        let rendered = compiled.render(&event).map_err(|mut e| {
            e.message = format!("rendering a sample {kind} event: {}", e.message);
            e
        })?;
        if spec.body_format == crate::spec::request::BodyFormat::Json {
            duplicates.extend(super::duplicate_keys::duplicate_keys(&rendered.body));
        }
    }
    let mut warnings = unknown_names(spec);
    warnings.extend(unknown_patterns(spec));
    warnings.extend(duplicates.into_iter().map(|key| {
        format!("the body has the key {key:?} more than once; it is sent as written, and most receivers keep only the last")
    }));
    Ok(warnings)
}

/// Patterns that select none of the types herald knows (nor their
/// aliases): kept — custom types are routed like any other — but worth a
/// second look for a typo.
fn unknown_patterns(spec: &WebhookSpec) -> Warnings {
    spec.events
        .iter()
        .filter(|p| crate::base::event::known_types_matching(std::slice::from_ref(*p)).is_empty())
        .map(|p| format!("the event pattern {p:?} matches none of the types herald knows; it is kept, and events of such a type are sent"))
        .collect()
}

/// Names used by the templates that neither herald nor any known event provides.
fn unknown_names(spec: &WebhookSpec) -> Warnings {
    let known_fields = samples::known_data_fields();
    let env = environment();
    let mut names = std::collections::BTreeSet::new();
    let mut sources = vec![spec.url.as_str(), spec.body_template.as_str()];
    let headers = parse_headers(&spec.headers).unwrap_or_default();
    sources.extend(headers.iter().map(|h| h.value.as_str()));
    for src in sources {
        let src = super::curly::to_angle(src);
        if let Ok(t) = env.template_from_str(&src) {
            names.extend(t.undeclared_variables(false));
        }
    }
    names
        .into_iter()
        .filter(|n| !CONTEXT_NAMES.contains(&n.as_str()) && !known_fields.contains(n.as_str()))
        .filter(|n| !(spec.batch.is_some() && n == "events"))
        .map(|n| format!("no known event carries a field named {n:?}; it will render empty unless your events have it"))
        .collect()
}
