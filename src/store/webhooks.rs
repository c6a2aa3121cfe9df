//! The `webhooks` table.

use std::time::Duration;

use rusqlite::params;

use super::Error;
use super::sqlite::Sqlite;
use crate::base::event::now_rfc3339;
use crate::spec::webhook::{Health, Webhook, WebhookSpec};

/// Unix milliseconds as herald shows times: RFC 3339 UTC.
pub fn ms_to_rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

const COLUMNS: &str = "id, name, url, method, events, headers, body_template, body_mime, log_bodies, enabled, timeout_ms, created_at, updated_at, auth, signing,
                       retry, max_in_flight, ordered, follow_redirects, batch,
                       paused_at, pause_reason, failing_since_ms, failure_streak, last_error, last_attempt_at, last_status, description";

/// Settings as stored: JSON with the secrets in it (the file is mode 0600).
pub(super) fn stored<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("settings serialise")
}

/// Builds a [`Webhook`] from a row selected with [`COLUMNS`].
fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<Webhook, Error>> {
    let id: i64 = r.get(0)?;
    let method: String = r.get(3)?;
    let events: String = r.get(4)?;
    let mime: String = r.get(7)?;
    let corrupt = |what: &str, e: String| Error::Corrupt(format!("webhook {id} {what}: {e}"));
    let spec = (|| {
        Ok(WebhookSpec {
            name: r.get(1)?,
            description: r.get(27)?,
            url: r.get(2)?,
            method: method
                .parse()
                .map_err(|e: crate::spec::field::FieldError| corrupt("method", e.message))?,
            events: serde_json::from_str(&events).map_err(|e| corrupt("events", e.to_string()))?,
            headers: r.get(5)?,
            body_template: r.get(6)?,
            body_format: mime
                .parse()
                .map_err(|e: crate::spec::field::FieldError| corrupt("body_mime", e.message))?,
            log_bodies: r.get(8)?,
            enabled: r.get(9)?,
            timeout: Duration::from_millis(r.get::<_, i64>(10)?.max(1) as u64),
            auth: serde_json::from_str(&r.get::<_, String>(13)?)
                .map_err(|e| corrupt("auth", e.to_string()))?,
            signing: serde_json::from_str(&r.get::<_, String>(14)?)
                .map_err(|e| corrupt("signing", e.to_string()))?,
            retry: serde_json::from_str(&r.get::<_, String>(15)?)
                .map_err(|e| corrupt("retry", e.to_string()))?,
            max_in_flight: r.get::<_, i64>(16)?.clamp(1, u32::MAX as i64) as u32,
            ordered: r.get(17)?,
            follow_redirects: r.get(18)?,
            batch: match r.get::<_, Option<String>>(19)? {
                None => None,
                Some(t) => {
                    Some(serde_json::from_str(&t).map_err(|e| corrupt("batch", e.to_string()))?)
                }
            },
        })
    })();
    let spec = match spec {
        Ok(s) => s,
        Err(Error::Database(e)) => return Err(e.into_inner()),
        Err(e) => return Ok(Err(e)),
    };
    Ok(Ok(Webhook {
        id,
        spec,
        created_at: r.get(11)?,
        updated_at: r.get(12)?,
        health: Health {
            paused_at: r.get(20)?,
            pause_reason: r.get(21)?,
            failing_since: r.get::<_, Option<i64>>(22)?.map(ms_to_rfc3339),
            failure_streak: r.get(23)?,
            last_error: r.get(24)?,
            last_attempt_at: r.get(25)?,
            last_status: r.get(26)?,
        },
    }))
}

impl Sqlite {
    /// Stores a new, already checked webhook.
    pub fn insert_webhook(&self, spec: &WebhookSpec) -> Result<Webhook, Error> {
        let now = now_rfc3339();
        let spec = spec.to_owned();
        let id = self.write(move |c| {
            c.execute(
                "INSERT INTO webhooks (name, url, method, events, headers, body_template, body_mime, log_bodies, enabled, timeout_ms, created_at, updated_at, auth, signing,
                                       retry, max_in_flight, ordered, follow_redirects, batch, description)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)",
                params![
                    spec.name, spec.url, spec.method.as_str(), serde_json::to_string(&spec.events).expect("strings serialise"),
                    spec.headers, spec.body_template, spec.body_format.mime(), spec.log_bodies, spec.enabled,
                    spec.timeout.as_millis() as i64, now, stored(&spec.auth), stored(&spec.signing),
                    stored(&spec.retry), spec.max_in_flight, spec.ordered, spec.follow_redirects, spec.batch.as_ref().map(stored),
                    spec.description
                ],
            )?;
            Ok(c.last_insert_rowid())
        })?;
        self.webhook(id)
    }

    /// Replaces every setting of webhook `id` with an already checked spec,
    /// if it is still at version `seen_updated_at` (else [`Error::Conflict`]:
    /// someone changed it meanwhile, and their change must not be lost).
    pub fn update_webhook(
        &self,
        id: i64,
        seen_updated_at: &str,
        spec: &WebhookSpec,
    ) -> Result<Webhook, Error> {
        let mut now = now_rfc3339();
        if now.as_str() <= seen_updated_at {
            // Same millisecond (or a clock step): keep versions distinct.
            now = format!("{seen_updated_at}+");
        }
        let seen_updated_at = seen_updated_at.to_owned();
        let spec = spec.to_owned();
        let changed = self.write(move |c| {
            Ok(c.execute(
                "UPDATE webhooks SET name = ?2, url = ?3, method = ?4, events = ?5, headers = ?6, body_template = ?7,
                 body_mime = ?8, log_bodies = ?9, enabled = ?10, timeout_ms = ?11, updated_at = ?12,
                 auth = ?14, signing = ?15, retry = ?16, max_in_flight = ?17, ordered = ?18, follow_redirects = ?19, batch = ?20,
                 description = ?21
                 WHERE id = ?1 AND updated_at = ?13",
                params![
                    id, spec.name, spec.url, spec.method.as_str(), serde_json::to_string(&spec.events).expect("strings serialise"),
                    spec.headers, spec.body_template, spec.body_format.mime(), spec.log_bodies, spec.enabled,
                    spec.timeout.as_millis() as i64, now, seen_updated_at, stored(&spec.auth), stored(&spec.signing),
                    stored(&spec.retry), spec.max_in_flight, spec.ordered, spec.follow_redirects, spec.batch.as_ref().map(stored),
                    spec.description
                ],
            )?)
        })?;
        if changed == 0 {
            self.webhook(id)?; // NotFound when it is gone
            return Err(Error::Conflict(format!("webhook {id}")));
        }
        self.webhook(id)
    }

    /// Enables or disables webhook `id` without touching its other settings.
    pub fn set_webhook_enabled(&self, id: i64, enabled: bool) -> Result<Webhook, Error> {
        let n = self.write(move |c| {
            Ok(c.execute(
                "UPDATE webhooks SET enabled = ?2, updated_at = ?3 WHERE id = ?1",
                params![id, enabled, now_rfc3339()],
            )?)
        })?;
        if n == 0 {
            return Err(Error::NotFound(format!("webhook {id}")));
        }
        self.webhook(id)
    }

    /// Reads webhook `id`.
    pub fn webhook(&self, id: i64) -> Result<Webhook, Error> {
        self.read(|c| {
            c.query_row(
                &format!("SELECT {COLUMNS} FROM webhooks WHERE id = ?1"),
                [id],
                from_row,
            )
            .map_err(super::not_found(format!("webhook {id}")))?
        })
    }

    /// All webhooks, by id.
    pub fn webhooks(&self) -> Result<Vec<Webhook>, Error> {
        self.read(|c| {
            let mut stmt =
                c.prepare_cached(&format!("SELECT {COLUMNS} FROM webhooks ORDER BY id"))?;
            let rows = stmt.query_map([], from_row)?;
            let mut out = Vec::new();
            for row in rows {
                out.push(row??);
            }
            Ok(out)
        })
    }

    /// Deletes webhook `id` and its deliveries (its log entries stay until cleanup).
    pub fn delete_webhook(&self, id: i64) -> Result<(), Error> {
        let n = self.write(move |c| Ok(c.execute("DELETE FROM webhooks WHERE id = ?1", [id])?))?;
        if n == 0 {
            return Err(Error::NotFound(format!("webhook {id}")));
        }
        Ok(())
    }
}
