//! The `webhooks` table on PostgreSQL: a webhook's settings, written whole
//! (an update only over the version it was read at), toggled, read and
//! deleted, as on SQLite.

use deadpool_postgres::Object;
use tokio_postgres::types::ToSql;

use super::Postgres;
use super::rows::{self, WEBHOOK_COLUMNS};
use crate::base::event::now_rfc3339;
use crate::spec::webhook::{Webhook, WebhookSpec};
use crate::store::Error;
use crate::store::webhooks::stored;

/// A spec's settings as written: `$1`..`$17` of both the insert and the
/// update, in [`SPEC_SET`]'s order.
struct SpecValues<'a> {
    spec: &'a WebhookSpec,
    method: &'static str,
    mime: &'static str,
    events: String,
    timeout_ms: i64,
    auth: String,
    signing: String,
    retry: String,
    max_in_flight: i64,
    batch: Option<String>,
}

/// The columns [`SpecValues`] writes, as `column = $n`.
const SPEC_SET: &str =
    "name = $1, url = $2, method = $3, events = $4, headers = $5, body_template = $6,
     body_mime = $7, log_bodies = $8, enabled = $9, timeout_ms = $10, auth = $11, signing = $12,
     retry = $13, max_in_flight = $14, ordered = $15, follow_redirects = $16, batch = $17";

/// The same columns, for an insert's column list.
const SPEC_COLUMNS: &str =
    "name, url, method, events, headers, body_template, body_mime, log_bodies,
     enabled, timeout_ms, auth, signing, retry, max_in_flight, ordered, follow_redirects, batch";

impl<'a> SpecValues<'a> {
    fn of(spec: &'a WebhookSpec) -> SpecValues<'a> {
        SpecValues {
            spec,
            method: spec.method.as_str(),
            mime: spec.body_format.mime(),
            events: stored(&spec.events),
            timeout_ms: spec.timeout.as_millis() as i64,
            auth: stored(&spec.auth),
            signing: stored(&spec.signing),
            retry: stored(&spec.retry),
            max_in_flight: i64::from(spec.max_in_flight),
            batch: spec.batch.as_ref().map(stored),
        }
    }

    /// `$1`..`$17`, then `more`.
    fn params<'p>(&'p self, more: &[&'p (dyn ToSql + Sync)]) -> Vec<&'p (dyn ToSql + Sync)> {
        let s = self.spec;
        let mut p: Vec<&(dyn ToSql + Sync)> = vec![
            &s.name,
            &s.url,
            &self.method,
            &self.events,
            &s.headers,
            &s.body_template,
            &self.mime,
            &s.log_bodies,
            &s.enabled,
            &self.timeout_ms,
            &self.auth,
            &self.signing,
            &self.retry,
            &self.max_in_flight,
            &s.ordered,
            &s.follow_redirects,
            &self.batch,
        ];
        p.extend_from_slice(more);
        p
    }
}

/// Reads webhook `id` on connection `c`; [`Error::NotFound`] when it is gone.
async fn read(c: &Object, id: i64) -> Result<Webhook, Error> {
    let stmt = c
        .prepare_cached(&format!(
            "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id = $1"
        ))
        .await?;
    match c.query_opt(&stmt, &[&id]).await? {
        Some(row) => rows::webhook(&row),
        None => Err(Error::NotFound(format!("webhook {id}"))),
    }
}

impl Postgres {
    /// Stores a new, already checked webhook.
    pub(in crate::store) fn insert_webhook(&self, spec: &WebhookSpec) -> Result<Webhook, Error> {
        self.block(async {
            let c = self.client().await?;
            let values = SpecValues::of(spec);
            let now = now_rfc3339();
            let stmt = c
                .prepare_cached(&format!(
                    "INSERT INTO webhooks ({SPEC_COLUMNS}, description, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
                             $18, $19, $19)
                     RETURNING {WEBHOOK_COLUMNS}"
                ))
                .await?;
            let row = c
                .query_one(&stmt, &values.params(&[&spec.description, &now]))
                .await?;
            rows::webhook(&row)
        })
    }

    /// Replaces every setting of webhook `id` with an already checked spec,
    /// if it is still at version `seen_updated_at` (else [`Error::Conflict`]:
    /// someone changed it meanwhile, and their change must not be lost).
    pub(in crate::store) fn update_webhook(
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
        self.block(async {
            let c = self.client().await?;
            let values = SpecValues::of(spec);
            let stmt = c
                .prepare_cached(&format!(
                    "UPDATE webhooks SET {SPEC_SET}, description = $18, updated_at = $19
                     WHERE id = $20 AND updated_at = $21
                     RETURNING {WEBHOOK_COLUMNS}"
                ))
                .await?;
            let row = c
                .query_opt(
                    &stmt,
                    &values.params(&[&spec.description, &now, &id, &seen_updated_at]),
                )
                .await?;
            match row {
                Some(row) => rows::webhook(&row),
                None => {
                    read(&c, id).await?; // NotFound when it is gone
                    Err(Error::Conflict(format!("webhook {id}")))
                }
            }
        })
    }

    /// Enables or disables webhook `id` without touching its other settings.
    pub(in crate::store) fn set_webhook_enabled(
        &self,
        id: i64,
        enabled: bool,
    ) -> Result<Webhook, Error> {
        self.block(async {
            let c = self.client().await?;
            let stmt = c
                .prepare_cached(&format!(
                    "UPDATE webhooks SET enabled = $2, updated_at = $3 WHERE id = $1 RETURNING {WEBHOOK_COLUMNS}"
                ))
                .await?;
            match c.query_opt(&stmt, &[&id, &enabled, &now_rfc3339()]).await? {
                Some(row) => rows::webhook(&row),
                None => Err(Error::NotFound(format!("webhook {id}"))),
            }
        })
    }

    /// Reads webhook `id`.
    pub(in crate::store) fn webhook(&self, id: i64) -> Result<Webhook, Error> {
        self.block(async {
            let c = self.client().await?;
            read(&c, id).await
        })
    }

    /// All webhooks, by id.
    pub(in crate::store) fn webhooks(&self) -> Result<Vec<Webhook>, Error> {
        self.block(async {
            let c = self.client().await?;
            let stmt = c
                .prepare_cached(&format!(
                    "SELECT {WEBHOOK_COLUMNS} FROM webhooks ORDER BY id"
                ))
                .await?;
            c.query(&stmt, &[])
                .await?
                .iter()
                .map(rows::webhook)
                .collect()
        })
    }

    /// Deletes webhook `id` and its deliveries (its log entries stay until cleanup).
    pub(in crate::store) fn delete_webhook(&self, id: i64) -> Result<(), Error> {
        self.block(async {
            let c = self.client().await?;
            let stmt = c
                .prepare_cached("DELETE FROM webhooks WHERE id = $1")
                .await?;
            if c.execute(&stmt, &[&id]).await? == 0 {
                return Err(Error::NotFound(format!("webhook {id}")));
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::test_server::TempPostgres;
    use super::*;
    use crate::base::config::DatabaseUrl;
    use crate::spec::request::{BodyFormat, Method};
    use crate::spec::webhook::Batch;

    /// A server, a new database's name on it, and a store on that database.
    fn store() -> (TempPostgres, String, Postgres) {
        let server = TempPostgres::start();
        let url = server.new_database();
        let store = Postgres::open(&DatabaseUrl::parse(&url).unwrap()).unwrap();
        let db = url.rsplit('/').next().unwrap().to_owned();
        (server, db, store)
    }

    #[test]
    fn a_webhook_is_stored_read_back_whole_and_listed_by_id() {
        let (_server, _db, s) = store();
        let mut spec = WebhookSpec::example("http://127.0.0.1:9/");
        spec.description = "d".into();
        spec.method = Method::Put;
        spec.body_format = BodyFormat::Xml;
        spec.events = vec!["ticket.*".into(), "system.start".into()];
        spec.headers = "X-A: 1".into();
        spec.body_template = "<a/>".into();
        spec.timeout = Duration::from_millis(2_500);
        spec.log_bodies = true;
        spec.ordered = true;
        spec.follow_redirects = true;
        spec.max_in_flight = 7;
        spec.batch = Some(Batch {
            max_events: 10,
            max_wait: 1.5,
        });
        let a = s.insert_webhook(&spec).unwrap();
        assert_eq!(a.spec, spec);
        assert_eq!(a.created_at, a.updated_at);
        assert_eq!(a.health.failure_streak, 0);
        assert!(a.health.paused_at.is_none() && a.health.failing_since.is_none());
        assert_eq!(s.webhook(a.id).unwrap(), a);
        let b = s
            .insert_webhook(&WebhookSpec::example("http://b/"))
            .unwrap();
        assert_eq!(b.spec.batch, None);
        let ids: Vec<i64> = s.webhooks().unwrap().iter().map(|w| w.id).collect();
        assert_eq!(ids, vec![a.id, b.id]);
    }

    #[test]
    fn stale_webhook_update_is_a_conflict_and_changes_nothing() {
        let (_server, _db, s) = store();
        let spec = WebhookSpec::example("http://127.0.0.1:9/");
        let w = s.insert_webhook(&spec).unwrap();
        let mut first = spec.clone();
        first.name = "first".into();
        first.batch = Some(Batch {
            max_events: 2,
            max_wait: 0.5,
        });
        let after_first = s.update_webhook(w.id, &w.updated_at, &first).unwrap();
        assert_ne!(after_first.updated_at, w.updated_at);
        assert_eq!(after_first.created_at, w.created_at);
        assert_eq!(after_first.spec, first);
        let mut second = spec.clone();
        second.name = "second".into();
        // Based on the version before the first change: refused.
        assert!(matches!(
            s.update_webhook(w.id, &w.updated_at, &second),
            Err(Error::Conflict(m)) if m == format!("webhook {}", w.id)
        ));
        assert_eq!(s.webhook(w.id).unwrap().spec, first);
        // Based on the version now: taken.
        let again = s
            .update_webhook(w.id, &after_first.updated_at, &second)
            .unwrap();
        assert_eq!(again.spec, second);
        assert!(matches!(
            s.update_webhook(999, "x", &second),
            Err(Error::NotFound(m)) if m == "webhook 999"
        ));
    }

    #[test]
    fn enabling_and_deleting_need_the_webhook_to_exist() {
        let (server, db, s) = store();
        let w = s
            .insert_webhook(&WebhookSpec::example("http://a/"))
            .unwrap();
        let off = s.set_webhook_enabled(w.id, false).unwrap();
        assert!(!off.spec.enabled);
        assert_eq!(off.spec.name, w.spec.name);
        assert!(s.set_webhook_enabled(w.id, true).unwrap().spec.enabled);
        assert!(matches!(
            s.set_webhook_enabled(999, true),
            Err(Error::NotFound(m)) if m == "webhook 999"
        ));
        server.psql(
            &db,
            &format!(
                "INSERT INTO events (type) VALUES ('system.start');
                 INSERT INTO deliveries (event_id, webhook_id, next_attempt_at, created_at, updated_at)
                 SELECT id, {}, 0, 't', 't' FROM events",
                w.id
            ),
        );
        s.delete_webhook(w.id).unwrap();
        assert!(matches!(
            s.webhook(w.id),
            Err(Error::NotFound(m)) if m == format!("webhook {}", w.id)
        ));
        assert!(matches!(s.delete_webhook(w.id), Err(Error::NotFound(_))));
        assert!(s.webhooks().unwrap().is_empty());
        // Its deliveries went with it.
        assert_eq!(server.psql(&db, "SELECT count(*) FROM deliveries"), "0");
    }

    #[test]
    fn a_row_edited_by_hand_is_corrupt_not_a_crash() {
        let (server, db, s) = store();
        let w = s
            .insert_webhook(&WebhookSpec::example("http://a/"))
            .unwrap();
        server.psql(&db, "UPDATE webhooks SET retry = 'nope'");
        let err = s.webhook(w.id).unwrap_err();
        assert!(
            matches!(&err, Error::Corrupt(m) if m.starts_with(&format!("webhook {} retry: ", w.id))),
            "{err:?}"
        );
        assert!(matches!(s.webhooks(), Err(Error::Corrupt(_))));
        // A stale update of a corrupt row says so, as on SQLite.
        assert!(matches!(
            s.update_webhook(w.id, "x", &WebhookSpec::example("http://a/")),
            Err(Error::Corrupt(_))
        ));
    }
}
