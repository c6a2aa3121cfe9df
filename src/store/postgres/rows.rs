//! Row decoders shared by the PostgreSQL modules: a `webhooks` row into a
//! [`Webhook`] and an `api_keys` row into an [`ApiKey`], read exactly as the
//! SQLite backend reads its rows (the same defaults for hand-edited text and
//! the same [`Error::Corrupt`] messages).

use std::time::Duration;

use tokio_postgres::Row;

use crate::engines::access::Scope;
use crate::spec::field::FieldError;
use crate::spec::webhook::{Health, Webhook, WebhookSpec};
use crate::store::access::limits_from;
use crate::store::{ApiKey, Error, ms_to_rfc3339};

/// The `webhooks` columns [`webhook`] reads, in its order.
pub(super) const WEBHOOK_COLUMNS: &str = "id, name, url, method, events, headers, body_template, body_mime, log_bodies, enabled, timeout_ms, created_at, updated_at, auth, signing,
     retry, max_in_flight, ordered, follow_redirects, batch,
     paused_at, pause_reason, failing_since_ms, failure_streak, last_error, last_attempt_at, last_status, description";

/// Builds a [`Webhook`] from a row selected with [`WEBHOOK_COLUMNS`]; a
/// setting that cannot be read back is [`Error::Corrupt`] naming it.
pub(super) fn webhook(r: &Row) -> Result<Webhook, Error> {
    let id: i64 = r.try_get(0)?;
    let corrupt = |what: &str, e: String| Error::Corrupt(format!("webhook {id} {what}: {e}"));
    let method: String = r.try_get(3)?;
    let events: String = r.try_get(4)?;
    let mime: String = r.try_get(7)?;
    let auth: String = r.try_get(13)?;
    let signing: String = r.try_get(14)?;
    let retry: String = r.try_get(15)?;
    let spec = WebhookSpec {
        name: r.try_get(1)?,
        description: r.try_get(27)?,
        url: r.try_get(2)?,
        method: method
            .parse()
            .map_err(|e: FieldError| corrupt("method", e.message))?,
        events: serde_json::from_str(&events).map_err(|e| corrupt("events", e.to_string()))?,
        headers: r.try_get(5)?,
        body_template: r.try_get(6)?,
        body_format: mime
            .parse()
            .map_err(|e: FieldError| corrupt("body_mime", e.message))?,
        log_bodies: r.try_get(8)?,
        enabled: r.try_get(9)?,
        timeout: Duration::from_millis(r.try_get::<_, i64>(10)?.max(1) as u64),
        auth: serde_json::from_str(&auth).map_err(|e| corrupt("auth", e.to_string()))?,
        signing: serde_json::from_str(&signing).map_err(|e| corrupt("signing", e.to_string()))?,
        retry: serde_json::from_str(&retry).map_err(|e| corrupt("retry", e.to_string()))?,
        max_in_flight: r.try_get::<_, i64>(16)?.clamp(1, u32::MAX as i64) as u32,
        ordered: r.try_get(17)?,
        follow_redirects: r.try_get(18)?,
        batch: match r.try_get::<_, Option<String>>(19)? {
            None => None,
            Some(t) => Some(serde_json::from_str(&t).map_err(|e| corrupt("batch", e.to_string()))?),
        },
    };
    Ok(Webhook {
        id,
        spec,
        created_at: r.try_get(11)?,
        updated_at: r.try_get(12)?,
        health: Health {
            paused_at: r.try_get(20)?,
            pause_reason: r.try_get(21)?,
            failing_since: r.try_get::<_, Option<i64>>(22)?.map(ms_to_rfc3339),
            failure_streak: r.try_get(23)?,
            last_error: r.try_get(24)?,
            last_attempt_at: r.try_get(25)?,
            last_status: r.try_get(26)?,
        },
    })
}

/// An [`ApiKey`] from a row selected with [`KEY_COLUMNS`]. An unknown scope
/// text (edited by hand past the CHECK) reads as `ingest`, the least; the
/// listener refuses such a key (`live_api_keys` leaves it out).
pub(super) fn api_key(r: &Row) -> Result<ApiKey, Error> {
    let scope: String = r.try_get(3)?;
    Ok(ApiKey {
        id: r.try_get(0)?,
        name: r.try_get(1)?,
        hint: r.try_get(2)?,
        scope: scope.parse().unwrap_or(Scope::Ingest),
        created_at: r.try_get(4)?,
        revoked_at: r.try_get(5)?,
        limits: limits_from(r.try_get(6)?, r.try_get(7)?),
    })
}
