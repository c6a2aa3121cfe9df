//! Sample events of every known type (`templates/samples/*.json`), used to
//! check templates at save time, for `herald render` previews and test sends.

use std::collections::BTreeSet;

use crate::base::event::{Event, NewEvent};

/// The sample event files, embedded at build time.
const SAMPLES: &[(&str, &str)] = &[
    (
        "ticket.login",
        include_str!("../../../templates/samples/ticket.login.json"),
    ),
    (
        "ticket.logout",
        include_str!("../../../templates/samples/ticket.logout.json"),
    ),
    (
        "ticket.logout.timeout",
        include_str!("../../../templates/samples/ticket.logout.timeout.json"),
    ),
    (
        "ticket.logout.limit_exceeded",
        include_str!("../../../templates/samples/ticket.logout.limit_exceeded.json"),
    ),
    (
        "ticket.revoked",
        include_str!("../../../templates/samples/ticket.revoked.json"),
    ),
    (
        "system.start",
        include_str!("../../../templates/samples/system.start.json"),
    ),
    (
        "system.userlimit_exceeded",
        include_str!("../../../templates/samples/system.userlimit_exceeded.json"),
    ),
    (
        "system.backup.started",
        include_str!("../../../templates/samples/system.backup.started.json"),
    ),
    (
        "system.backup.done",
        include_str!("../../../templates/samples/system.backup.done.json"),
    ),
    (
        "system.backup.error",
        include_str!("../../../templates/samples/system.backup.error.json"),
    ),
    (
        "herald.webhook.failing",
        include_str!("../../../templates/samples/herald.webhook.failing.json"),
    ),
    (
        "herald.webhook.paused",
        include_str!("../../../templates/samples/herald.webhook.paused.json"),
    ),
    (
        "herald.webhook.recovered",
        include_str!("../../../templates/samples/herald.webhook.recovered.json"),
    ),
    (
        "herald.storage.low",
        include_str!("../../../templates/samples/herald.storage.low.json"),
    ),
    (
        "herald.storage.ok",
        include_str!("../../../templates/samples/herald.storage.ok.json"),
    ),
];

/// Every data field the appliance documents, for save-time warnings.
const DOCUMENTED_FIELDS: &[&str] = &[
    "client_ip",
    "client_mac",
    "client_vlan_rt",
    "login_type",
    "limit",
    "description",
    "template_id",
    "template_name",
    "ticket_type",
    "ticket_parent_group",
    "ticket_price",
    "backend",
    "backend_group",
    "backend_data",
    "timestamp_created",
    "timestamp_first_logon",
    "timestamp_expires",
    "timestamp_lastseen",
    "shared_limits",
    "time_limit",
    "time_used",
    "volume_limit",
    "volume_used_download",
    "volume_used_upload",
    "volume_used",
    "webhook_id",
    "webhook_name",
    "failing_since",
    "failures",
    "last_error",
    "paused",
    "message",
    // the generic sample
    "test",
    // herald.storage.*
    "path",
    "free_mb",
    "min_free_mb",
];

/// The data of the generic sample, for a type herald has no sample of.
const GENERIC_SAMPLE: &str = r#"{
  "uuid": "5f0c2d7e-8a41-4b6f-9e3d-1c7a2b9f0e55",
  "type": "custom",
  "created_at": "2026-11-20T08:15:02Z",
  "ticket_id": null,
  "data": {"description": "a test event sent by herald", "test": true}
}"#;

/// Which sample an event of `kind` is made from: `templates/samples/TYPE.json`
/// for a type herald knows (or the guide's alias of one), else the generic
/// sample. Said by test sends, so the admin knows what was sent.
pub fn sample_source(kind: &str) -> String {
    match sample_text(kind) {
        (Some(k), _) => format!("templates/samples/{k}.json"),
        (None, _) => format!("a generic sample (herald has none for {kind})"),
    }
}

/// The sample text for `kind`, and the type whose sample it is.
fn sample_text(kind: &str) -> (Option<&'static str>, &'static str) {
    let alias = crate::base::event::alias_of(kind);
    SAMPLES
        .iter()
        .find(|(k, _)| *k == kind || Some(*k) == alias)
        .map_or((None, GENERIC_SAMPLE), |(k, t)| (Some(*k), *t))
}

/// The type a test send of a webhook uses when none is asked for: the first
/// known type its patterns select, else its first pattern naming a type
/// (`vehicle.created`; `vehicle.*` gives `vehicle.test`), else ticket.login.
pub fn default_test_type(patterns: &[String]) -> String {
    if let Some(t) = crate::base::event::known_types_matching(patterns).first() {
        return (*t).to_owned();
    }
    patterns
        .iter()
        .find(|p| p.as_str() != "*")
        .map(|p| match p.strip_suffix(".*") {
            Some(prefix) => format!("{prefix}.test"),
            None => p.clone(),
        })
        .unwrap_or_else(|| "ticket.login".into())
}

/// The sample event of `kind` (see [`sample_source`]), carrying that type.
pub fn sample_event(kind: &str) -> Event {
    let text = sample_text(kind).1;
    let raw: NewEvent = serde_json::from_str(text).expect("embedded sample events are valid");
    let valid = raw.check_fields().expect("embedded sample events validate");
    Event {
        id: 0,
        uuid: valid.uuid,
        kind: kind.to_owned(),
        created_at: valid.created_at,
        ticket_id: valid.ticket_id,
        data: valid.data,
    }
}

/// Field names any known event may carry.
pub fn known_data_fields() -> BTreeSet<&'static str> {
    DOCUMENTED_FIELDS.iter().copied().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_types_get_the_generic_sample_and_aliases_their_types_sample() {
        let e = sample_event("vehicle.created");
        assert_eq!(e.kind, "vehicle.created");
        assert_eq!(e.data["test"], true);
        assert!(e.ticket_id.is_none());
        assert!(sample_source("vehicle.created").contains("generic"));
        let alias = sample_event("ticket.logged_in");
        assert_eq!(alias.kind, "ticket.logged_in");
        assert_eq!(alias.data, sample_event("ticket.login").data);
        assert_eq!(
            sample_source("ticket.logged_in"),
            "templates/samples/ticket.login.json"
        );
        let p = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(default_test_type(&p(&["system.*"])), "system.start");
        assert_eq!(
            default_test_type(&p(&["vehicle.created"])),
            "vehicle.created"
        );
        assert_eq!(default_test_type(&p(&["vehicle.*"])), "vehicle.test");
        assert_eq!(
            default_test_type(&p(&["herald.*"])),
            "herald.webhook.failing"
        );
        assert_eq!(default_test_type(&p(&[])), "ticket.login");
    }

    #[test]
    fn every_known_type_has_a_sample_of_its_own_type() {
        for kind in crate::base::event::KNOWN_TYPES {
            let text = SAMPLES.iter().find(|(k, _)| k == kind).expect("sample").1;
            let raw: NewEvent = serde_json::from_str(text).unwrap();
            assert_eq!(&raw.kind, kind);
            let e = sample_event(kind);
            for field in e.data.keys() {
                assert!(
                    known_data_fields().contains(field.as_str()),
                    "{kind}: {field}"
                );
            }
        }
    }
}
