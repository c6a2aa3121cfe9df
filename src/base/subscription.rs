//! What a live-stream subscriber receives: event patterns (as webhooks use
//! them) and match filters on event fields (`ticket_id=T-1`,
//! `backend_data.pms.room=214`), and whether a subscription stays within
//! the limits stored on a `stream` API key.

use serde_json::{Map, Value};

use crate::base::event::{Event, alias_of, check_pattern, pattern_matches};

/// Most patterns or match filters one subscription may name.
pub const MAX_TERMS: usize = 32;
/// Longest field path or value of a match filter, in bytes.
const MAX_TERM_BYTES: usize = 256;

/// One match filter: the event field at `path` (a column such as
/// `ticket_id`, or a data field with dots into objects) must equal `value`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct FieldMatch {
    /// `ticket_id`, `type`, `uuid`, or a data field path (`backend_group`,
    /// `backend_data.pms.room`).
    pub path: String,
    /// The value as text: a string field compares as is, a number or
    /// boolean by its JSON text (`214` matches `214` and `"214"`).
    pub value: String,
}

impl FieldMatch {
    /// Parses `path=value`.
    pub fn parse(text: &str) -> Result<FieldMatch, String> {
        let (path, value) = text
            .split_once('=')
            .ok_or_else(|| format!("match {text:?} is not FIELD=VALUE"))?;
        FieldMatch::new(path, value)
    }

    /// A checked filter on `path` for `value`.
    pub fn new(path: &str, value: &str) -> Result<FieldMatch, String> {
        let path = path.trim();
        let ok_segment = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        if path.len() > MAX_TERM_BYTES || !path.split('.').all(ok_segment) {
            return Err(format!(
                "match field {path:?} is not a field name or a dotted path (letters, digits, _ and -)"
            ));
        }
        if value.len() > MAX_TERM_BYTES {
            return Err(format!(
                "match value for {path} is longer than {MAX_TERM_BYTES} bytes"
            ));
        }
        Ok(FieldMatch {
            path: path.to_owned(),
            value: value.to_owned(),
        })
    }

    /// Does `event` have `value` at `path`?
    pub fn holds(&self, event: &Event) -> bool {
        let column = match self.path.as_str() {
            "type" => Some(event.kind.as_str()),
            "uuid" => Some(event.uuid.as_str()),
            "created_at" => Some(event.created_at.as_str()),
            "ticket_id" => Some(event.ticket_id.as_deref().unwrap_or("")),
            _ => None,
        };
        if let Some(text) = column {
            return text == self.value
                || (self.path == "type" && alias_of(text) == Some(self.value.as_str()));
        }
        lookup(&event.data, &self.path).is_some_and(|v| same_text(&v, &self.value))
    }
}

impl std::fmt::Display for FieldMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={}", self.path, self.value)
    }
}

/// The value at a dotted `path` of `data`; a string holding a JSON object
/// (the appliance guide types `backend_data` "string: Json of backend
/// data") is read into as that object.
fn lookup(data: &Map<String, Value>, path: &str) -> Option<Value> {
    let mut parts = path.split('.');
    let mut here = data.get(parts.next()?)?.clone();
    for part in parts {
        here = match here {
            Value::Object(mut m) => m.remove(part)?,
            Value::String(s) if s.trim_start().starts_with('{') => {
                match serde_json::from_str::<Value>(&s).ok()? {
                    Value::Object(mut m) => m.remove(part)?,
                    _ => return None,
                }
            }
            _ => return None,
        };
    }
    Some(here)
}

/// A scalar's text equals `text` (objects and arrays never do).
fn same_text(v: &Value, text: &str) -> bool {
    match v {
        Value::String(s) => s == text,
        Value::Number(n) => n.to_string() == text,
        Value::Bool(b) => (if *b { "true" } else { "false" }) == text,
        Value::Null => text.is_empty(),
        Value::Array(_) | Value::Object(_) => false,
    }
}

/// Which events a subscriber receives: those whose type one of `events`
/// selects and that hold every one of `matches`.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, utoipa::ToSchema)]
pub struct Subscription {
    /// Event patterns (`*`, `ticket.*`, `ticket.login`).
    pub events: Vec<String>,
    /// Field filters, all of which must hold (shown as an object, path →
    /// value, as subscribers send them).
    #[serde(rename = "match", serialize_with = "matches_as_object")]
    #[schema(value_type = std::collections::HashMap<String, String>)]
    pub matches: Vec<FieldMatch>,
}

/// Writes filters as `{"path": "value", …}`.
fn matches_as_object<S: serde::Serializer>(m: &[FieldMatch], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = s.serialize_map(Some(m.len()))?;
    for f in m {
        map.serialize_entry(&f.path, &f.value)?;
    }
    map.end()
}

impl Subscription {
    /// Everything (`*`, no filters): what an admin or read key may see.
    pub fn everything() -> Subscription {
        Subscription {
            events: vec!["*".into()],
            matches: Vec::new(),
        }
    }

    /// A checked subscription; `events` empty means `*`.
    pub fn new(events: Vec<String>, matches: Vec<FieldMatch>) -> Result<Subscription, String> {
        let mut events: Vec<String> = events
            .into_iter()
            .map(|e| e.trim().to_owned())
            .filter(|e| !e.is_empty())
            .collect();
        if events.is_empty() {
            events.push("*".into());
        }
        if events.len() > MAX_TERMS || matches.len() > MAX_TERMS {
            return Err(format!(
                "at most {MAX_TERMS} event patterns and {MAX_TERMS} match filters"
            ));
        }
        for e in &events {
            check_pattern(e)?;
        }
        Ok(Subscription { events, matches })
    }

    /// A subscription from JSON as subscribers and the API send it:
    /// `events` an array of patterns (or one comma-separated string),
    /// `match` an object of field → value (a scalar).
    pub fn from_json(
        events: Option<&Value>,
        matches: Option<&Value>,
    ) -> Result<Subscription, String> {
        let events = match events {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(s)) => s.split(',').map(str::to_owned).collect(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_owned)
                        .ok_or("events must be strings")
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err("events must be an array of patterns".into()),
        };
        let matches = match matches {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Object(m)) => m
                .iter()
                .map(|(path, v)| match v {
                    Value::String(s) => FieldMatch::new(path, s),
                    Value::Number(_) | Value::Bool(_) => FieldMatch::new(path, &v.to_string()),
                    _ => Err(format!(
                        "match value for {path} must be a string, number or boolean"
                    )),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err("match must be an object of field: value".into()),
        };
        Subscription::new(events, matches)
    }

    /// Parses comma-separated patterns and `FIELD=VALUE` filters.
    pub fn parse(events: &str, matches: &[String]) -> Result<Subscription, String> {
        let matches = matches
            .iter()
            .map(|m| FieldMatch::parse(m))
            .collect::<Result<_, _>>()?;
        Subscription::new(events.split(',').map(str::to_owned).collect(), matches)
    }

    /// Does the subscriber receive `event`?
    pub fn selects(&self, event: &Event) -> bool {
        self.events.iter().any(|p| pattern_matches(p, &event.kind))
            && self.matches.iter().all(|m| m.holds(event))
    }

    /// This subscription narrowed to what `limits` allows: every pattern
    /// must lie within one of the limit's patterns, no filter may ask a
    /// field the limits fix for another value, and the limit's filters
    /// always apply. `Err` names what is not allowed.
    pub fn within(&self, limits: &Subscription) -> Result<Subscription, String> {
        let outside: Vec<&str> = self
            .events
            .iter()
            .filter(|p| !limits.events.iter().any(|l| covers(l, p)))
            .map(String::as_str)
            .collect();
        if !outside.is_empty() {
            return Err(format!(
                "events {} are outside this key's limits ({})",
                outside.join(","),
                limits.events.join(",")
            ));
        }
        let mut matches = limits.matches.clone();
        for m in &self.matches {
            if let Some(fixed) = limits.matches.iter().find(|l| l.path == m.path)
                && fixed.value != m.value
            {
                return Err(format!("match {m} is outside this key's limits ({fixed})"));
            }
            if !matches.contains(m) {
                matches.push(m.clone());
            }
        }
        Ok(Subscription {
            events: self.events.clone(),
            matches,
        })
    }

    /// `ticket.*; backend_group=fidelio`, for listings.
    pub fn describe(&self) -> String {
        let mut text = self.events.join(",");
        for m in &self.matches {
            text.push_str(&format!("; {m}"));
        }
        text
    }
}

/// Does the limit pattern `limit` select every type `pattern` selects?
fn covers(limit: &str, pattern: &str) -> bool {
    if limit == pattern {
        return true;
    }
    match pattern.strip_suffix(".*") {
        // `*` selects all but herald's own events; a prefix selects what
        // is below it.
        Some(prefix) => match limit.strip_suffix(".*") {
            Some(l) => {
                prefix.len() > l.len()
                    && prefix.starts_with(l)
                    && prefix.as_bytes()[l.len()] == b'.'
            }
            None => {
                limit == "*" && !format!("{prefix}.").starts_with(crate::base::event::HERALD_PREFIX)
            }
        },
        None if pattern == "*" => false,
        None => pattern_matches(limit, pattern),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(kind: &str, ticket: Option<&str>, data: Value) -> Event {
        Event {
            id: 1,
            uuid: "u".into(),
            kind: kind.into(),
            created_at: "t".into(),
            ticket_id: ticket.map(str::to_owned),
            data: data.as_object().unwrap().clone(),
        }
    }

    #[test]
    fn matches_columns_data_paths_and_json_strings() {
        let e = event(
            "ticket.login",
            Some("T-1"),
            json!({"backend_group": "fidelio", "volume_used": 214,
                   "backend_data": "{\"pms\": {\"room\": 214}}"}),
        );
        for ok in [
            "ticket_id=T-1",
            "backend_group=fidelio",
            "volume_used=214",
            "backend_data.pms.room=214",
            "type=ticket.logged_in",
        ] {
            assert!(FieldMatch::parse(ok).unwrap().holds(&e), "{ok}");
        }
        for no in [
            "ticket_id=T-2",
            "backend_group=opera",
            "backend_data.pms.room=215",
            "missing=x",
            "backend_data.pms=x",
        ] {
            assert!(!FieldMatch::parse(no).unwrap().holds(&e), "{no}");
        }
        let nested = event(
            "ticket.login",
            None,
            json!({"backend_data": {"pms": {"room": "214"}}}),
        );
        assert!(
            FieldMatch::parse("backend_data.pms.room=214")
                .unwrap()
                .holds(&nested)
        );
        assert!(FieldMatch::parse("ticket_id").is_err());
        assert!(FieldMatch::parse("a..b=1").is_err());
        assert!(FieldMatch::parse("a b=1").is_err());
    }

    #[test]
    fn selects_by_pattern_and_every_filter() {
        let s = Subscription::parse("ticket.*", &["backend_group=fidelio".into()]).unwrap();
        assert!(s.selects(&event(
            "ticket.login",
            None,
            json!({"backend_group": "fidelio"})
        )));
        assert!(!s.selects(&event(
            "ticket.login",
            None,
            json!({"backend_group": "opera"})
        )));
        assert!(!s.selects(&event(
            "system.start",
            None,
            json!({"backend_group": "fidelio"})
        )));
        assert_eq!(
            Subscription::parse("", &[]).unwrap(),
            Subscription::everything()
        );
        assert!(Subscription::parse("tick et", &[]).is_err());
    }

    #[test]
    fn within_limits_narrows_or_names_what_is_refused() {
        let limits = Subscription::parse("ticket.*", &["backend_group=fidelio".into()]).unwrap();
        let asked =
            Subscription::parse("ticket.login,ticket.logout.*", &["ticket_id=T-1".into()]).unwrap();
        let got = asked.within(&limits).unwrap();
        assert_eq!(got.events, vec!["ticket.login", "ticket.logout.*"]);
        assert_eq!(got.matches.len(), 2, "the key's filter always applies");
        let err = Subscription::parse("ticket.*,system.*", &[])
            .unwrap()
            .within(&limits)
            .unwrap_err();
        assert!(
            err.contains("system.*") && !err.contains("ticket.*,system"),
            "{err}"
        );
        let err = Subscription::parse("*", &[])
            .unwrap()
            .within(&limits)
            .unwrap_err();
        assert!(err.contains('*'), "{err}");
        let err = Subscription::parse("ticket.*", &["backend_group=opera".into()])
            .unwrap()
            .within(&limits)
            .unwrap_err();
        assert!(err.contains("backend_group=opera"), "{err}");
        let all = Subscription::everything();
        assert!(
            Subscription::parse("ticket.*,system.backup.done", &[])
                .unwrap()
                .within(&all)
                .is_ok()
        );
        assert!(
            Subscription::parse("herald.*", &[])
                .unwrap()
                .within(&all)
                .is_err()
        );
        let exact = Subscription::parse("ticket.login", &[]).unwrap();
        assert!(
            Subscription::parse("ticket.logged_in", &[])
                .unwrap()
                .within(&exact)
                .is_ok()
        );
        assert!(
            Subscription::parse("ticket.*", &[])
                .unwrap()
                .within(&exact)
                .is_err()
        );
    }
}
