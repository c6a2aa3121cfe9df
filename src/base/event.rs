//! Events: what producers put on the queue, how they are checked, and how a
//! webhook's event patterns (`ticket.login`, `ticket.*`, `*`) select them.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The event types the appliance produces. The list is open: other types are
/// routed like these; this list feeds sample events, the UI and save-time checks.
pub const KNOWN_TYPES: &[&str] = &[
    "ticket.login",
    "ticket.logout",
    "ticket.logout.timeout",
    "ticket.logout.limit_exceeded",
    "ticket.revoked",
    "system.start",
    "system.userlimit_exceeded",
    "system.backup.started",
    "system.backup.done",
    "system.backup.error",
    "herald.webhook.failing",
    "herald.webhook.paused",
    "herald.webhook.recovered",
    "herald.storage.low",
    "herald.storage.ok",
];

/// Longest accepted event type name.
const MAX_TYPE_LEN: usize = 128;
/// Longest accepted ticket id.
const MAX_TICKET_LEN: usize = 256;

/// Why an event was refused (at ingest) or marked invalid (by the router).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The type is empty, too long or has characters outside `a-z0-9_.-`.
    #[error(
        "event type {0:?} is not valid: use lower-case words separated by dots, e.g. ticket.login"
    )]
    BadType(String),
    /// `data` is not a JSON object.
    #[error("event data must be a JSON object, got {0}")]
    DataNotObject(&'static str),
    /// `data` is not JSON at all (only possible for rows written by SQL).
    #[error("event data is not valid JSON: {0}")]
    DataNotJson(String),
    /// The uuid is not a uuid.
    #[error("event uuid {0:?} is not a valid UUID")]
    BadUuid(String),
    /// `created_at` is not an RFC 3339 time.
    #[error("event created_at {0:?} is not an RFC 3339 time such as 2026-11-20T08:15:02Z")]
    BadTime(String),
    /// The ticket id is too long.
    #[error("ticket_id is longer than {MAX_TICKET_LEN} characters")]
    TicketTooLong,
    /// `herald.*` types are raised by herald itself.
    #[error("event type {0:?} is reserved: herald.* events are raised by herald itself")]
    ReservedType(String),
}

/// An event as a producer submits it: everything but the type is optional.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEvent {
    /// Event type, e.g. `ticket.login`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Producer-chosen uuid; herald generates one when absent.
    #[serde(default)]
    pub uuid: Option<String>,
    /// Producer's time; herald uses the time of ingest when absent.
    #[serde(default)]
    pub created_at: Option<String>,
    /// The guest ticket the event is about, if any.
    #[serde(default)]
    pub ticket_id: Option<String>,
    /// The event's fields; each is a template placeholder by its own name.
    #[serde(default)]
    pub data: Option<Value>,
}

/// A checked event, ready to be queued.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ValidEvent {
    /// Normalised lower-case hyphenated uuid.
    pub uuid: String,
    /// Event type.
    #[serde(rename = "type")]
    pub kind: String,
    /// RFC 3339 time: the producer's, or herald's at ingest (UTC, milliseconds).
    pub created_at: String,
    /// Ticket id, if any.
    pub ticket_id: Option<String>,
    /// The data object.
    pub data: Map<String, Value>,
}

/// An event as stored in the queue.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// Queue position (SQLite rowid).
    pub id: i64,
    /// Event uuid, the idempotency key receivers see.
    pub uuid: String,
    /// Event type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Creation time as stored.
    pub created_at: String,
    /// Ticket id, if any.
    pub ticket_id: Option<String>,
    /// The data object.
    pub data: Map<String, Value>,
}

/// The current time as herald stores it: RFC 3339, UTC, milliseconds.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// An RFC 3339 time in any offset as herald stores times (UTC, milliseconds,
/// `Z`), so stored times compare as text; `None` when it is not one.
pub fn to_stored_time(text: &str) -> Option<String> {
    chrono::DateTime::parse_from_rfc3339(text.trim())
        .ok()
        .map(|d| {
            d.with_timezone(&chrono::Utc)
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        })
}

/// Checks an event type name.
pub fn check_type(kind: &str) -> Result<(), Error> {
    let ok = !kind.is_empty()
        && kind.len() <= MAX_TYPE_LEN
        && !kind.starts_with('.')
        && !kind.ends_with('.')
        && !kind.contains("..")
        && kind
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::BadType(
            kind.chars().take(MAX_TYPE_LEN + 8).collect(),
        ))
    }
}

/// Requires a JSON object; `null` and a missing value mean an empty object.
pub fn check_data(data: Option<Value>) -> Result<Map<String, Value>, Error> {
    match data {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m),
        Some(other) => Err(Error::DataNotObject(json_kind(&other))),
    }
}

/// Parses stored data text (rows inserted by SQL may hold anything).
pub fn parse_stored_data(text: &str) -> Result<Map<String, Value>, Error> {
    let value: Value = serde_json::from_str(text).map_err(|e| Error::DataNotJson(e.to_string()))?;
    check_data(Some(value))
}

/// Checks and normalises a uuid.
pub fn check_uuid(text: &str) -> Result<String, Error> {
    uuid::Uuid::parse_str(text.trim())
        .map(|u| u.hyphenated().to_string())
        .map_err(|_| Error::BadUuid(text.chars().take(64).collect()))
}

/// Checks an RFC 3339 time. The producer's text is kept as written (trimmed):
/// receivers see exactly the time the appliance sent.
pub fn check_time(text: &str) -> Result<String, Error> {
    let text = text.trim();
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|_| text.to_owned())
        .map_err(|_| Error::BadTime(text.chars().take(64).collect()))
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl NewEvent {
    /// Checks every field, filling in uuid and time when the producer left them out.
    pub fn validate(self) -> Result<ValidEvent, Error> {
        if self.kind.starts_with(HERALD_PREFIX) {
            return Err(Error::ReservedType(self.kind));
        }
        self.check_fields()
    }

    /// [`NewEvent::validate`] without the reserved-type rule: for herald's
    /// own events (alerts, samples).
    pub fn check_fields(self) -> Result<ValidEvent, Error> {
        check_type(&self.kind)?;
        let uuid = match self.uuid.as_deref() {
            Some(u) if !u.trim().is_empty() => check_uuid(u)?,
            _ => uuid::Uuid::new_v4().to_string(),
        };
        let created_at = match self.created_at.as_deref() {
            Some(t) if !t.trim().is_empty() => check_time(t)?,
            _ => now_rfc3339(),
        };
        let ticket_id = self.ticket_id.filter(|t| !t.is_empty());
        if ticket_id
            .as_ref()
            .is_some_and(|t| t.chars().count() > MAX_TICKET_LEN)
        {
            return Err(Error::TicketTooLong);
        }
        Ok(ValidEvent {
            uuid,
            kind: self.kind,
            created_at,
            ticket_id,
            data: check_data(self.data)?,
        })
    }
}

/// The appliance guide's names for herald's types, `(guide, herald)`: its
/// data table speaks of `ticket.logged_in` and
/// `ticket.logged_out.limit_exceeded` where the samples (and herald) say
/// `ticket.login` and `ticket.logout.limit_exceeded`; the other logouts
/// follow the same rule.
pub const TYPE_ALIASES: &[(&str, &str)] = &[
    ("ticket.logged_in", "ticket.login"),
    ("ticket.logged_out", "ticket.logout"),
    ("ticket.logged_out.timeout", "ticket.logout.timeout"),
    (
        "ticket.logged_out.limit_exceeded",
        "ticket.logout.limit_exceeded",
    ),
];

/// The other name of `kind` (the guide's or herald's), if it has one.
pub fn alias_of(kind: &str) -> Option<&'static str> {
    TYPE_ALIASES.iter().find_map(|&(guide, herald)| {
        if kind == guide {
            Some(herald)
        } else if kind == herald {
            Some(guide)
        } else {
            None
        }
    })
}

/// Does `pattern` select events of type `kind`? A type and its alias (see
/// [`TYPE_ALIASES`]) are one: a pattern naming either selects both.
///
/// `*` selects all but herald's own `herald.*` events (alerts), which are
/// only selected by a pattern naming them; `prefix.*` selects every type
/// below `prefix.` (not `prefix` itself); anything else must be equal.
pub fn pattern_matches(pattern: &str, kind: &str) -> bool {
    matches_type(pattern, kind) || alias_of(kind).is_some_and(|a| matches_type(pattern, a))
}

/// [`pattern_matches`] for one name.
fn matches_type(pattern: &str, kind: &str) -> bool {
    if pattern == "*" {
        return !kind.starts_with(HERALD_PREFIX);
    }
    match pattern.strip_suffix(".*") {
        Some(prefix) => {
            kind.len() > prefix.len() + 1
                && kind.starts_with(prefix)
                && kind.as_bytes()[prefix.len()] == b'.'
        }
        None => pattern == kind,
    }
}

/// Prefix of the event types herald itself raises (alerts); producers
/// cannot use it.
pub const HERALD_PREFIX: &str = "herald.";

/// Checks a subscription pattern: `*`, a type, or a type prefix followed by `.*`.
pub fn check_pattern(pattern: &str) -> Result<(), String> {
    if pattern == "*" {
        return Ok(());
    }
    let base = pattern.strip_suffix(".*").unwrap_or(pattern);
    check_type(base).map_err(|_| {
        format!("event pattern {pattern:?} is not valid: use a type (ticket.login), a prefix with .* (ticket.*) or *")
    })
}

/// The known types a set of patterns selects, for sample rendering at save time.
pub fn known_types_matching(patterns: &[String]) -> Vec<&'static str> {
    KNOWN_TYPES
        .iter()
        .copied()
        .filter(|t| patterns.iter().any(|p| pattern_matches(p, t)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn patterns() {
        assert!(pattern_matches("*", "system.start"));
        assert!(pattern_matches("ticket.*", "ticket.login"));
        assert!(pattern_matches("ticket.*", "ticket.logout.timeout"));
        assert!(!pattern_matches("ticket.*", "ticket"));
        assert!(!pattern_matches("ticket.*", "tickets.login"));
        assert!(!pattern_matches("ticket.*", "system.start"));
        assert!(pattern_matches("ticket.logout.*", "ticket.logout.timeout"));
        assert!(!pattern_matches("ticket.logout.*", "ticket.logout"));
        assert!(pattern_matches("ticket.login", "ticket.login"));
        assert!(!pattern_matches("ticket.login", "ticket.logout"));
    }

    #[test]
    fn the_guides_names_are_aliases_both_ways() {
        assert!(pattern_matches("ticket.logged_in", "ticket.login"));
        assert!(pattern_matches("ticket.login", "ticket.logged_in"));
        assert!(pattern_matches(
            "ticket.logged_out.limit_exceeded",
            "ticket.logout.limit_exceeded"
        ));
        assert!(pattern_matches(
            "ticket.logout.limit_exceeded",
            "ticket.logged_out.limit_exceeded"
        ));
        assert!(pattern_matches(
            "ticket.logged_out.*",
            "ticket.logout.timeout"
        ));
        assert!(pattern_matches(
            "ticket.logout.*",
            "ticket.logged_out.timeout"
        ));
        assert!(!pattern_matches("ticket.logged_in", "ticket.logout"));
        assert!(!pattern_matches("ticket.logged_out.*", "ticket.login"));
        assert_eq!(alias_of("system.start"), None);
    }

    #[test]
    fn pattern_syntax() {
        assert!(check_pattern("*").is_ok());
        assert!(check_pattern("ticket.*").is_ok());
        assert!(check_pattern("ticket.login").is_ok());
        assert!(check_pattern("ticket.**").is_err());
        assert!(check_pattern("Ticket").is_err());
        assert!(check_pattern("").is_err());
        assert!(check_pattern("a b").is_err());
    }

    #[test]
    fn known_types_for_patterns() {
        let t = known_types_matching(&["system.backup.*".into()]);
        assert_eq!(
            t,
            vec![
                "system.backup.started",
                "system.backup.done",
                "system.backup.error"
            ]
        );
    }

    #[test]
    fn validate_fills_defaults() {
        let e = NewEvent {
            kind: "ticket.login".into(),
            ..Default::default()
        }
        .validate()
        .unwrap();
        assert!(uuid::Uuid::parse_str(&e.uuid).is_ok());
        assert!(chrono::DateTime::parse_from_rfc3339(&e.created_at).is_ok());
        assert!(e.data.is_empty());
    }

    #[test]
    fn validate_refuses_bad_fields() {
        let bad = |e: NewEvent| e.validate().unwrap_err();
        let base = NewEvent {
            kind: "ticket.login".into(),
            ..Default::default()
        };
        assert!(matches!(
            bad(NewEvent {
                data: Some(json!([1])),
                ..base.clone()
            }),
            Error::DataNotObject("an array")
        ));
        assert!(matches!(
            bad(NewEvent {
                uuid: Some("nope".into()),
                ..base.clone()
            }),
            Error::BadUuid(_)
        ));
        assert!(matches!(
            bad(NewEvent {
                created_at: Some("yesterday".into()),
                ..base.clone()
            }),
            Error::BadTime(_)
        ));
        assert!(matches!(
            bad(NewEvent {
                kind: "".into(),
                ..base.clone()
            }),
            Error::BadType(_)
        ));
    }

    #[test]
    fn stored_data_must_be_object() {
        assert!(parse_stored_data("{\"a\":1}").is_ok());
        assert!(matches!(
            parse_stored_data("[1]"),
            Err(Error::DataNotObject(_))
        ));
        assert!(matches!(
            parse_stored_data("{oops"),
            Err(Error::DataNotJson(_))
        ));
    }
}
