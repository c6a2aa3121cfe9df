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
    // herald.storage.*
    "path",
    "free_mb",
    "min_free_mb",
];

/// The sample event of `kind`; for a type herald does not know, a ticket.login
/// sample carrying that type.
pub fn sample_event(kind: &str) -> Event {
    let text = SAMPLES
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, t)| *t)
        .unwrap_or(SAMPLES[0].1);
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
