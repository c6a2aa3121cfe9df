//! The template context of an event, looked up lazily: a placeholder reads
//! only the field it names, so an event with many fields costs no more than
//! the fields a template uses (building the whole context eagerly was 60% of
//! render time; see BENCHMARKS.md). Nested objects are lazy views too.

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
            k => self
                .event
                .data
                .get(k)
                .map(|v| field(&self.event, Path::of(&[k]), v)),
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
            "data" => Value::from_object(DataMap {
                event: e.clone(),
                path: Path::of(&[]),
            }),
            _ => return None,
        })
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Str(&["uuid", "type", "created_at", "ticket_id", "data"])
    }
}

/// Where a nested object sits in an event's data: the keys from the top.
#[derive(Debug, Clone)]
struct Path(Arc<[String]>);

impl Path {
    fn of(keys: &[&str]) -> Path {
        Path(keys.iter().map(|k| (*k).to_owned()).collect())
    }

    fn then(&self, key: &str) -> Path {
        Path(self.0.iter().cloned().chain([key.to_owned()]).collect())
    }

    /// The object at this path in `event`'s data.
    fn resolve<'a>(
        &self,
        event: &'a Event,
    ) -> Option<&'a serde_json::Map<String, serde_json::Value>> {
        let mut map = &event.data;
        for key in self.0.iter() {
            map = map.get(key)?.as_object()?;
        }
        Some(map)
    }
}

/// A data value for the template: an object stays a lazy view (a
/// placeholder such as `backend_data.pms.room` converts only the room, not
/// all of `backend_data`); a string holding a JSON object (the appliance
/// guide types `backend_data` "string: Json of backend data") renders as
/// the string and reads into the object; anything else is converted as it
/// is.
fn field(event: &Arc<Event>, path: Path, value: &serde_json::Value) -> Value {
    match value {
        serde_json::Value::Object(_) => Value::from_object(DataMap {
            event: event.clone(),
            path,
        }),
        serde_json::Value::String(s) if s.trim_start().starts_with('{') => {
            match serde_json::from_str::<serde_json::Value>(s) {
                Ok(parsed @ serde_json::Value::Object(_)) => Value::from_object(JsonText {
                    text: s.clone(),
                    parsed,
                }),
                _ => Value::from(s.as_str()),
            }
        }
        other => Value::from(Serde(other)),
    }
}

/// A string field whose text is a JSON object: written as the string it
/// is (`<<backend_data>>`), read into as the object (`<<backend_data.pms.room>>`).
#[derive(Debug)]
struct JsonText {
    text: String,
    parsed: serde_json::Value,
}

impl Object for JsonText {
    fn repr(self: &Arc<Self>) -> minijinja::value::ObjectRepr {
        minijinja::value::ObjectRepr::Plain
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let value = self.parsed.get(key.as_str()?)?;
        Some(Value::from(Serde(value)))
    }

    fn is_true(self: &Arc<Self>) -> bool {
        true
    }

    fn render(self: &Arc<Self>, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// An object of the event's data, read lazily; keys in the data's order,
/// so iterating it or `|json` gives what converting it whole would.
#[derive(Debug)]
struct DataMap {
    event: Arc<Event>,
    path: Path,
}

impl Object for DataMap {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let key = key.as_str()?;
        let value = self.path.resolve(&self.event)?.get(key)?;
        Some(field(&self.event, self.path.then(key), value))
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        let keys: Vec<Value> = self
            .path
            .resolve(&self.event)
            .map(|m| m.keys().map(|k| Value::from(k.as_str())).collect())
            .unwrap_or_default();
        Enumerator::Values(keys)
    }

    fn enumerator_len(self: &Arc<Self>) -> Option<usize> {
        self.path.resolve(&self.event).map(|m| m.len())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `backend_data` as a string of JSON (as the appliance guide types it)
    /// is read into by a path, and written whole as the string it is, in
    /// every slot: a JSON value stays a JSON string.
    #[test]
    fn a_string_holding_a_json_object_is_read_into() {
        let mut event = crate::engines::render::samples::sample_event("ticket.login");
        let text = r#"{"pms": {"room": "214", "name": "Doe"}}"#;
        event
            .data
            .insert("backend_data".into(), serde_json::json!(text));
        event
            .data
            .insert("note".into(), serde_json::json!("{not json"));
        let ctx = context(&Arc::new(event), &Value::from(()), None);
        let env = minijinja::Environment::new();
        let render = |t: &str| env.template_from_str(t).unwrap().render(&ctx).unwrap();
        assert_eq!(
            render("{{ backend_data.pms.room }}/{{ backend_data.pms.name }}"),
            "214/Doe"
        );
        assert_eq!(render("{{ backend_data }}"), text);
        assert_eq!(render("{{ note }}|{{ note.x }}"), "{not json|");
        assert_eq!(render("{% if backend_data %}yes{% endif %}"), "yes");
        let whole = ctx.get_attr("backend_data").unwrap();
        assert_eq!(
            crate::engines::render::escape::write_slot(
                crate::engines::render::escape::Slot::JsonValue,
                &whole
            ),
            serde_json::to_string(text).unwrap()
        );
    }

    /// The event's data converted whole: what the lazy views must equal.
    fn eager(event: &Event) -> Value {
        let mut top: serde_json::Map<String, serde_json::Value> = event.data.clone();
        top.insert("event".into(), serde_json::json!({"data": event.data}));
        Value::from(Serde(&top))
    }

    #[test]
    fn lazy_objects_render_as_the_data_converted_whole() {
        let mut event = crate::engines::render::samples::sample_event("ticket.login");
        event.data.insert(
            "nested".into(),
            serde_json::json!({"z": 1, "a": {"deep": [1, {"x": "y"}], "s": "t"}, "empty": {}, "n": null}),
        );
        let event = Arc::new(event);
        let lazy = context(&event, &Value::from(()), None);
        let whole = eager(&event);
        // Serialised as the `json` filter does.
        for key in ["nested", "backend_data"] {
            let (a, b) = (lazy.get_attr(key).unwrap(), whole.get_attr(key).unwrap());
            assert_eq!(
                serde_json::to_string(&a).unwrap(),
                serde_json::to_string(&b).unwrap(),
                "{key}"
            );
        }
        let data = |v: &Value| v.get_attr("event").unwrap().get_attr("data").unwrap();
        assert_eq!(
            serde_json::to_string(&data(&lazy)).unwrap(),
            serde_json::to_string(&data(&whole)).unwrap()
        );
        let env = minijinja::Environment::new();
        for template in [
            "{% for k, v in nested|items %}{{ k }}={{ v }};{% endfor %}",
            "{% for k in nested %}{{ k }},{% endfor %}",
            "{{ nested|length }} {{ nested.a|length }} {{ nested.empty|length }}",
            "{% if nested.empty %}full{% else %}empty{% endif %} {% if nested.a %}full{% endif %}",
            "{{ nested.a.deep[1].x }} {{ nested.a.s }} {{ nested.n }} {{ nested.missing is undefined }}",
            "{{ event.data.nested.a.s }} {{ nested }}",
            "{{ nested.a.deep }} {{ backend_data }}",
        ] {
            let t = env.template_from_str(template).unwrap();
            assert_eq!(
                t.render(&lazy).unwrap(),
                t.render(&whole).unwrap(),
                "{template}"
            );
        }
    }
}
