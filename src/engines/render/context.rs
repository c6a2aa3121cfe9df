//! The template context of an event, looked up lazily: a placeholder reads
//! only the field it names, so an event with many fields costs no more than
//! the fields a template uses (building the whole context eagerly was 60% of
//! render time; see BENCHMARKS.md).

use std::sync::Arc;

use minijinja::Value;
use minijinja::value::{Enumerator, Object, Serde};

use crate::base::event::Event;

/// Data fields not placed at the top level of the context: herald's own
/// names and minijinja's globals (a data field `range` must not break
/// templates that call range()). They stay reachable as `event.data.NAME`.
pub const SHADOWED_NAMES: &[&str] = &[
    "event",
    "webhook",
    "auth",
    "range",
    "dict",
    "namespace",
    "debug",
    "loop",
];

/// Top level: `event`, `webhook`, `auth` (with a fetched token), and every
/// data field by name.
#[derive(Debug)]
struct TopLevel {
    event: Arc<Event>,
    webhook: Value,
    auth: Option<Value>,
}

/// `event.*`: uuid, type, created_at, ticket_id, data.
#[derive(Debug)]
struct EventFields(Arc<Event>);

impl Object for TopLevel {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let key = key.as_str()?;
        match key {
            "event" => Some(Value::from_object(EventFields(self.event.clone()))),
            "webhook" => Some(self.webhook.clone()),
            "auth" => self.auth.clone(),
            k if SHADOWED_NAMES.contains(&k) => None,
            k => self.event.data.get(k).map(|v| Value::from(Serde(v))),
        }
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::NonEnumerable
    }
}

impl Object for EventFields {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let e = &self.0;
        Some(match key.as_str()? {
            "uuid" => Value::from(e.uuid.as_str()),
            "type" => Value::from(e.kind.as_str()),
            "created_at" => Value::from(e.created_at.as_str()),
            "ticket_id" => e
                .ticket_id
                .as_deref()
                .map(Value::from)
                .unwrap_or(Value::from(())),
            "data" => Value::from(Serde(&e.data)),
            _ => return None,
        })
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Str(&["uuid", "type", "created_at", "ticket_id", "data"])
    }
}

/// The context of `event` for a webhook; `auth.token` is set when the
/// webhook uses a fetched token.
pub fn context(event: &Arc<Event>, webhook: &Value, auth_token: Option<&str>) -> Value {
    Value::from_object(TopLevel {
        event: event.clone(),
        webhook: webhook.clone(),
        auth: auth_token.map(|t| minijinja::context! { token => t }),
    })
}

/// The context of a batch: `events`, a list whose items are each exactly
/// the context a single-event template sees (`<<e.event.uuid>>`,
/// `<<e.volume_used>>`), plus `webhook` and `auth` at the top.
pub fn batch_context(events: &[Arc<Event>], webhook: &Value, auth_token: Option<&str>) -> Value {
    let items: Vec<Value> = events
        .iter()
        .map(|e| context(e, webhook, auth_token))
        .collect();
    minijinja::context! {
        events => items,
        webhook => webhook.clone(),
        auth => auth_token.map(|t| minijinja::context! { token => t }),
    }
}
