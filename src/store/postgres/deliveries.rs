//! The `deliveries` table on PostgreSQL: counts, listings and replays.
//! (Claims and settlements are in [`super::claims`].)
//!
//! Where SQLite keeps its claims in memory, a delivery here is being sent
//! while its row holds a live lease: `claimed_by` set and `lease_until`
//! still ahead. A replay clears the lease and wakes every router's
//! deliverer (`NOTIFY herald_deliveries`).

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use tokio_postgres::types::ToSql;

use super::Postgres;
use crate::base::event::now_rfc3339;
use crate::store::{DeliveryFilter, DeliveryRow, Error, Replay, ms_to_rfc3339, now_ms};

/// A statement's parameters, for filters built at run time.
type Params = Vec<Box<dyn ToSql + Sync + Send>>;

/// The parameters as tokio-postgres takes them.
fn refs(params: &Params) -> Vec<&(dyn ToSql + Sync)> {
    params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect()
}

/// Adds `value` to `params` and returns its placeholder (`$n`).
fn bind(params: &mut Params, value: impl ToSql + Sync + Send + 'static) -> String {
    params.push(Box::new(value));
    format!("${}", params.len())
}

impl Postgres {
    /// Deliveries not yet finished.
    pub(in crate::store) fn pending_deliveries(&self) -> Result<i64, Error> {
        self.block(async {
            let c = self.client().await?;
            let stmt = c
                .prepare_cached("SELECT count(*) FROM deliveries WHERE state = 'pending'")
                .await?;
            Ok(c.query_one(&stmt, &[]).await?.get(0))
        })
    }

    /// When the oldest pending delivery was made (`None`: none pending).
    /// Read per webhook through its pending index, not by scanning every
    /// delivery.
    pub(in crate::store) fn oldest_pending_delivery_at(&self) -> Result<Option<String>, Error> {
        self.block(async {
            let c = self.client().await?;
            let stmt = c
                .prepare_cached(
                    "SELECT created_at FROM deliveries WHERE id = (
                        SELECT min((SELECT min(d.id) FROM deliveries d
                                    WHERE d.webhook_id = w.id AND d.state = 'pending'))
                        FROM webhooks w)",
                )
                .await?;
            Ok(c.query_opt(&stmt, &[]).await?.map(|r| r.get(0)))
        })
    }

    /// Puts finished deliveries back in the queue, due now, for a new round
    /// of tries, their leases cleared: each resend is a new attempt in the
    /// log with the same event uuid. Deliveries still pending are left as
    /// they are. Returns their ids, in order; wakes every router's
    /// deliverer when there are any.
    pub(in crate::store) fn replay(&self, which: &Replay) -> Result<Vec<i64>, Error> {
        self.block(async {
            let mut c = self.client().await?;
            let tx = c.transaction().await?;
            if let Some(id) = which.delivery_id {
                let state: String = tx
                    .query_opt("SELECT state FROM deliveries WHERE id = $1", &[&id])
                    .await?
                    .ok_or_else(|| Error::NotFound(format!("delivery {id}")))?
                    .get(0);
                if state == "pending" {
                    return Err(Error::Conflict(format!(
                        "delivery {id} is still pending (in flight or waiting for its next try)"
                    )));
                }
            }
            if let Some(id) = which.webhook_id {
                tx.query_opt("SELECT 1 FROM webhooks WHERE id = $1", &[&id])
                    .await?
                    .ok_or_else(|| Error::NotFound(format!("webhook {id}")))?;
            }
            let mut params: Params = Vec::new();
            let mut filter = String::from("d.state <> 'pending'");
            if let Some(id) = which.delivery_id {
                filter += &format!(" AND d.id = {}", bind(&mut params, id));
            }
            if let Some(id) = which.webhook_id {
                filter += &format!(" AND d.webhook_id = {}", bind(&mut params, id));
            }
            if which.failed_only {
                filter += " AND d.state = 'failed'";
            }
            if which.from.is_some() || which.to.is_some() {
                // Event times are a producer's text: compared in Rust, where
                // one that is not a time is passed over (SQLite's julianday
                // gives NULL) rather than failing the replay.
                let rows = tx
                    .query(
                        &format!(
                            "SELECT d.id, e.created_at FROM deliveries d JOIN events e ON e.id = d.event_id
                             WHERE {filter} ORDER BY d.id FOR UPDATE OF d"
                        ),
                        &refs(&params),
                    )
                    .await?;
                let (from, to) = (
                    which.from.as_deref().map(instant),
                    which.to.as_deref().map(instant),
                );
                let ids: Vec<i64> = rows
                    .iter()
                    .filter(|r| {
                        instant(r.get(1)).is_some_and(|at| {
                            from.is_none_or(|f| f.is_some_and(|f| at >= f))
                                && to.is_none_or(|t| t.is_some_and(|t| at < t))
                        })
                    })
                    .map(|r| r.get(0))
                    .collect();
                filter += &format!(" AND d.id = ANY({})", bind(&mut params, ids));
            }
            let now = bind(&mut params, now_ms());
            let updated_at = bind(&mut params, now_rfc3339());
            let rows = tx
                .query(
                    &format!(
                        "UPDATE deliveries d SET state = 'pending', tries = 0, next_attempt_at = {now},
                                updated_at = {updated_at}, claimed_by = NULL, lease_until = NULL
                         WHERE {filter} RETURNING d.id"
                    ),
                    &refs(&params),
                )
                .await?;
            let mut ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
            ids.sort_unstable();
            if !ids.is_empty() {
                tx.execute("SELECT pg_notify('herald_deliveries', '')", &[])
                    .await?;
            }
            tx.commit().await?;
            Ok(ids)
        })
    }

    /// How the deliveries `ids` stand now: `(pending, delivered, failed)`
    /// (for `herald retry --wait`, which follows what it queued).
    pub(in crate::store) fn delivery_states(
        &self,
        ids: &[i64],
    ) -> Result<(usize, usize, usize), Error> {
        self.block(async {
            let c = self.client().await?;
            let stmt = c
                .prepare_cached(
                    "SELECT state, count(*) FROM deliveries WHERE id = ANY($1) GROUP BY state",
                )
                .await?;
            let mut counts = (0, 0, 0);
            for r in c.query(&stmt, &[&ids]).await? {
                let (state, n): (String, i64) = (r.get(0), r.get(1));
                match state.as_str() {
                    "pending" => counts.0 += n as usize,
                    "delivered" => counts.1 += n as usize,
                    _ => counts.2 += n as usize,
                }
            }
            Ok(counts)
        })
    }

    /// Deliveries, newest first, for listings (`herald deliveries`, the
    /// API). A pending delivery is `paused` while its webhook is, `sending`
    /// while a router holds a live lease on it, `retrying` once tried.
    pub(in crate::store) fn deliveries(
        &self,
        f: &DeliveryFilter,
    ) -> Result<Vec<DeliveryRow>, Error> {
        let mut params: Params = Vec::new();
        let now = bind(&mut params, now_ms());
        let mut filter = String::from("TRUE");
        if let Some(id) = f.webhook_id {
            filter += &format!(" AND d.webhook_id = {}", bind(&mut params, id));
        }
        if let Some(state) = &f.state {
            filter += &format!(" AND d.state = {}", bind(&mut params, state.clone()));
        }
        if let Some(uuid) = &f.event_uuid {
            filter += &format!(" AND e.uuid = {}", bind(&mut params, uuid.clone()));
        }
        if let Some(id) = f.delivery_id {
            filter += &format!(" AND d.id = {}", bind(&mut params, id));
        }
        let limit = bind(&mut params, f.limit.max(1) as i64);
        let sql = format!(
            "SELECT d.id, d.webhook_id, w.name, e.uuid, e.type, e.created_at, d.state, d.attempts, d.tries,
                    d.next_attempt_at, d.last_error, w.paused_at IS NOT NULL,
                    coalesce(d.claimed_by IS NOT NULL AND d.lease_until > {now}, false)
             FROM deliveries d
             JOIN events e ON e.id = d.event_id
             JOIN webhooks w ON w.id = d.webhook_id
             WHERE {filter}
             ORDER BY d.id DESC LIMIT {limit}"
        );
        self.block(async {
            let c = self.client().await?;
            let stmt = c.prepare_cached(&sql).await?;
            let rows = c.query(&stmt, &refs(&params)).await?;
            Ok(rows
                .iter()
                .map(|r| {
                    let state: String = r.get(6);
                    let tries: i64 = r.get(8);
                    let paused: bool = r.get(11);
                    let sending: bool = r.get(12);
                    let next: i64 = r.get(9);
                    let status = match state.as_str() {
                        "pending" if paused => "paused",
                        "pending" if sending => "sending",
                        "pending" if tries > 0 => "retrying",
                        s => s,
                    };
                    DeliveryRow {
                        id: r.get(0),
                        webhook_id: r.get(1),
                        webhook_name: r.get(2),
                        event_uuid: r.get(3),
                        event_type: r.get(4),
                        event_created_at: r.get(5),
                        status: status.to_owned(),
                        attempts: r.get(7),
                        next_attempt_at: (state == "pending" && tries > 0)
                            .then(|| ms_to_rfc3339(next)),
                        last_error: r.get(10),
                    }
                })
                .collect())
        })
    }
}

/// The instant a stored time stands for, read as SQLite's `julianday`
/// reads it: RFC 3339 in any offset, or a date with an optional time
/// (`T` or a space, UTC); `None` when it is not a time.
fn instant(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    const FORMATS: &[&str] = &[
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ];
    FORMATS
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
        .or_else(|| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })
        .map(|t| t.and_utc())
}

#[cfg(test)]
mod tests {
    use super::super::events::tests::{decide_parsed, event, setup, webhook};
    use super::instant;
    use crate::store::{DeliveryFilter, Error, Replay, Source, now_ms};

    /// Statuses of all deliveries, by id.
    fn statuses(pg: &super::Postgres) -> Vec<String> {
        let mut rows = pg
            .deliveries(&DeliveryFilter {
                limit: 100,
                ..DeliveryFilter::default()
            })
            .unwrap();
        rows.reverse();
        rows.into_iter().map(|r| r.status).collect()
    }

    #[test]
    fn listing_counts_and_replays_behave_as_on_sqlite() {
        let (server, _url, db, pg) = setup();
        let (w1, w2) = (
            webhook(&server, &db, r#"["*"]"#),
            webhook(&server, &db, r#"["*"]"#),
        );
        for (i, at) in [
            "2026-03-01T10:00:00.000Z",
            "2026-03-02T10:00:00+02:00",
            "2026-03-03T10:00:00.000Z",
        ]
        .iter()
        .enumerate()
        {
            let mut e = event(&format!("0b9b7c3e-7d4e-4c39-9d2a-3f1f2b1c0a0{i}"));
            e.created_at = (*at).into();
            pg.insert_event(&e, Source::Cli).unwrap();
        }
        assert_eq!(pg.oldest_pending_delivery_at().unwrap(), None);
        assert_eq!(pg.route_batch(10, decide_parsed).unwrap().deliveries, 6);
        assert_eq!(pg.pending_deliveries().unwrap(), 6);
        let first = server.psql(&db, "SELECT created_at FROM deliveries WHERE id = 1");
        assert_eq!(pg.oldest_pending_delivery_at().unwrap(), Some(first));

        let w3 = webhook(&server, &db, r#"["*"]"#);
        // 1 delivered, 2 failed, 3 sending (live lease), 4 lease expired,
        // 5 retrying, 6 of a paused webhook.
        let later = now_ms() + 60_000;
        server.psql(&db, &format!(
            "UPDATE deliveries SET state = 'delivered', attempts = 1 WHERE id = 1;
             UPDATE deliveries SET state = 'failed', attempts = 5, last_error = 'HTTP 500' WHERE id = 2;
             UPDATE deliveries SET claimed_by = 'r', lease_until = {later} WHERE id = 3;
             UPDATE deliveries SET claimed_by = 'r', lease_until = 1 WHERE id = 4;
             UPDATE deliveries SET tries = 1, attempts = 1, next_attempt_at = {later} WHERE id = 5;
             UPDATE webhooks SET paused_at = '2026-01-01T00:00:00Z' WHERE id = {w3};
             UPDATE deliveries SET webhook_id = {w3} WHERE id = 6"
        ));
        assert_eq!(
            statuses(&pg),
            [
                "delivered",
                "failed",
                "sending",
                "pending",
                "retrying",
                "paused"
            ]
        );
        let only = |f: DeliveryFilter| pg.deliveries(&DeliveryFilter { limit: 100, ..f }).unwrap();
        let r5 = only(DeliveryFilter {
            delivery_id: Some(5),
            ..Default::default()
        });
        assert_eq!(
            r5[0].next_attempt_at,
            Some(crate::store::ms_to_rfc3339(later))
        );
        assert_eq!(
            only(DeliveryFilter {
                webhook_id: Some(w1),
                ..Default::default()
            })
            .len(),
            3
        );
        assert_eq!(
            only(DeliveryFilter {
                webhook_id: Some(w2),
                ..Default::default()
            })
            .len(),
            2
        );
        assert_eq!(
            only(DeliveryFilter {
                state: Some("failed".into()),
                ..Default::default()
            })[0]
                .last_error
                .as_deref(),
            Some("HTTP 500")
        );
        let uuid = r5[0].event_uuid.clone();
        assert_eq!(
            only(DeliveryFilter {
                event_uuid: Some(uuid),
                ..Default::default()
            })
            .len(),
            2
        );
        let newest = pg
            .deliveries(&DeliveryFilter {
                limit: 0,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(
            newest.iter().map(|r| r.id).collect::<Vec<_>>(),
            [6],
            "newest first, at least one"
        );
        assert_eq!(pg.delivery_states(&[1, 2, 3, 99]).unwrap(), (1, 1, 1));
        assert_eq!(pg.delivery_states(&[]).unwrap(), (0, 0, 0));

        // Replays: errors as on SQLite.
        let replay = |r: Replay| pg.replay(&r);
        assert!(
            matches!(replay(Replay { delivery_id: Some(99), ..Default::default() }), Err(Error::NotFound(w)) if w == "delivery 99")
        );
        assert!(matches!(
            replay(Replay {
                delivery_id: Some(3),
                ..Default::default()
            }),
            Err(Error::Conflict(_))
        ));
        assert!(
            matches!(replay(Replay { webhook_id: Some(99), ..Default::default() }), Err(Error::NotFound(w)) if w == "webhook 99")
        );
        // Failed only: 2, not the pending 4.
        assert_eq!(
            replay(Replay {
                webhook_id: Some(w2),
                failed_only: true,
                ..Default::default()
            })
            .unwrap(),
            [2]
        );
        server.psql(&db, "UPDATE deliveries SET state = 'delivered', claimed_by = 'r', lease_until = 1 WHERE id IN (2, 3, 4)");
        // By time: event 2 was at 08:00Z on the 2nd (deliveries 3, 4).
        let range = |from: &str, to: &str| Replay {
            from: Some(from.into()),
            to: Some(to.into()),
            ..Default::default()
        };
        assert_eq!(
            replay(range(
                "2026-03-02T08:00:00.000Z",
                "2026-03-02T08:00:00.001Z"
            ))
            .unwrap(),
            [3, 4]
        );
        assert_eq!(
            server.psql(&db, "SELECT state, tries, claimed_by IS NULL, lease_until IS NULL, next_attempt_at > 0 FROM deliveries WHERE id = 3"),
            "pending|0|t|t|t"
        );
        assert_eq!(
            replay(Replay {
                to: Some("2026-03-02T08:00:00.000Z".into()),
                ..Default::default()
            })
            .unwrap(),
            [1, 2]
        );
        assert_eq!(
            replay(Replay {
                delivery_id: Some(1),
                ..Default::default()
            })
            .unwrap_err()
            .to_string(),
            "delivery 1 is still pending (in flight or waiting for its next try) was changed by someone else meanwhile"
        );
        assert_eq!(pg.delivery_states(&[1, 2, 3, 4]).unwrap(), (4, 0, 0));
    }

    #[test]
    fn times_read_as_julianday_reads_them() {
        let t = |s: &str| instant(s).map(|t| t.to_rfc3339());
        assert_eq!(
            t("2026-03-02T10:00:00+02:00").as_deref(),
            Some("2026-03-02T08:00:00+00:00")
        );
        assert_eq!(
            t("2026-03-02 10:00").as_deref(),
            Some("2026-03-02T10:00:00+00:00")
        );
        assert_eq!(
            t("2026-03-02").as_deref(),
            Some("2026-03-02T00:00:00+00:00")
        );
        assert_eq!(t("yesterday"), None);
    }
}
