//! Delivery claims on PostgreSQL: leases written to the row.
//!
//! A claim sets `claimed_by` (this router) and `lease_until` (unix ms);
//! the router renews its leases while their requests run ([`renew`]), and
//! a settlement clears them. A router that dies stops renewing: once its
//! leases expire any other router takes those deliveries over, so what is
//! sent twice is at most what it had in flight.
//!
//! A claim pass locks the webhooks it serves (`FOR UPDATE SKIP LOCKED`):
//! two routers never claim for one webhook at once, so `max_in_flight`
//! (counted from live leases, whoever holds them) and strict order hold
//! across routers.

use std::collections::HashMap;
use std::sync::Arc;

use tokio_postgres::Row;

use super::Postgres;
use crate::base::event::now_rfc3339;
use crate::spec::webhook::Batch;
use crate::store::deliveries::{ClaimedRow, jobs};
use crate::store::events::QueuedEvent;
use crate::store::{ClaimPass, Claimed, Error, INTERRUPTED, Outcome, Settled, Unreadable, now_ms};

/// A due delivery as a claim pass reads it.
struct DueRow {
    id: i64,
    event_id: i64,
    attempts: i64,
    tries: i64,
    next_attempt_at: i64,
    created_at: String,
}

const DUE_COLUMNS: &str = "id, event_id, attempts, tries, next_attempt_at, created_at";

fn due_row(r: &Row) -> DueRow {
    DueRow {
        id: r.get(0),
        event_id: r.get(1),
        attempts: r.get(2),
        tries: r.get(3),
        next_attempt_at: r.get(4),
        created_at: r.get(5),
    }
}

/// A webhook deliveries may be claimed for: enabled and not paused.
struct Active {
    id: i64,
    updated_at: String,
    max_in_flight: usize,
    ordered: bool,
    batch: Option<Batch>,
}

/// Milliseconds since `created_at`; a time in the future counts as old.
fn age_ms(created_at: &str, now: i64) -> i64 {
    chrono::DateTime::parse_from_rfc3339(created_at)
        .map(|t| now - t.timestamp_millis())
        .map(|a| if a < 0 { i64::MAX } else { a })
        .unwrap_or(i64::MAX)
}

/// One webhook's claimed rows: one request each, or one for all (batched).
struct Group {
    webhook_id: i64,
    updated_at: String,
    batched: bool,
    rows: Vec<DueRow>,
}

impl Postgres {
    /// Claims due deliveries for up to `free` requests, as SQLite's
    /// `claim_due`, with leases in the rows: each webhook gets at most its
    /// `max_in_flight` requests in flight across all routers; an ordered
    /// webhook only its oldest pending delivery, when none is in flight; a
    /// batching webhook one request per full batch (or one that waited
    /// `max_wait`). `in_flight` (this router's own) is already in the
    /// leases and not needed.
    pub(in crate::store) async fn claim_due(
        &self,
        free: usize,
        _in_flight: &HashMap<i64, usize>,
        start: usize,
    ) -> Result<ClaimPass, Error> {
        let result = self.claim_pass(free, start).await;
        self.noted(result)
    }

    async fn claim_pass(&self, free: usize, start: usize) -> Result<ClaimPass, Error> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let now = now_ms();
        let lease_until = now + self.lease().as_millis() as i64;
        // Webhooks another router is claiming for right now are skipped:
        // it serves them this instant.
        let mut active: Vec<Active> = tx
            .query(
                "SELECT id, updated_at, max_in_flight, ordered, batch FROM webhooks
                 WHERE enabled AND paused_at IS NULL ORDER BY id FOR UPDATE SKIP LOCKED",
                &[],
            )
            .await?
            .iter()
            .map(|r| Active {
                id: r.get(0),
                updated_at: r.get(1),
                max_in_flight: r.get::<_, i64>(2).max(1) as usize,
                ordered: r.get(3),
                // A corrupt batch setting sends one by one, as on SQLite.
                batch: r
                    .get::<_, Option<String>>(4)
                    .and_then(|t| serde_json::from_str(&t).ok()),
            })
            .collect();
        if !active.is_empty() {
            let n = start % active.len();
            active.rotate_left(n);
        }
        let ids: Vec<i64> = active.iter().map(|w| w.id).collect();
        let live: HashMap<i64, i64> = tx
            .query(
                "SELECT webhook_id, count(*) FROM deliveries
                 WHERE webhook_id = ANY($1) AND state = 'pending'
                   AND claimed_by IS NOT NULL AND lease_until > $2
                 GROUP BY webhook_id",
                &[&ids, &now],
            )
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let mut pass = ClaimPass::default();
        let note_due = |pass: &mut ClaimPass, at: Option<i64>| {
            if let Some(at) = at {
                pass.next_due_ms = Some(pass.next_due_ms.map_or(at, |d| d.min(at)));
            }
        };
        let mut groups = Vec::new();
        let mut free = free;
        for w in &active {
            let busy = live.get(&w.id).copied().unwrap_or(0) as usize;
            let busy = match &w.batch {
                // A batch's rows are one request.
                Some(b) => busy.div_ceil(b.max_events.max(1) as usize),
                None => busy,
            };
            let room = if w.ordered { 1 } else { w.max_in_flight }.saturating_sub(busy);
            if room == 0 {
                // A lease ending (settled here or expired elsewhere) frees it.
                note_due(&mut pass, self.next_lease_end(&tx, w.id, now).await?);
                continue;
            }
            if free == 0 {
                pass.starved = true;
                break;
            }
            let claimable = "state = 'pending' AND (claimed_by IS NULL OR lease_until <= $2)";
            if w.ordered {
                let head = tx
                    .query_opt(
                        &format!(
                            "SELECT {DUE_COLUMNS}, claimed_by IS NOT NULL AND lease_until > $2
                             FROM deliveries WHERE webhook_id = $1 AND state = 'pending'
                             ORDER BY id LIMIT 1"
                        ),
                        &[&w.id, &now],
                    )
                    .await?;
                let Some(head) = head else { continue };
                if head.get::<_, bool>(6) {
                    continue;
                }
                let head = due_row(&head);
                if head.next_attempt_at > now {
                    note_due(&mut pass, Some(head.next_attempt_at));
                    continue;
                }
                groups.push(Group {
                    webhook_id: w.id,
                    updated_at: w.updated_at.clone(),
                    batched: false,
                    rows: vec![head],
                });
                free -= 1;
                continue;
            }
            let (want, batch) = match &w.batch {
                Some(b) => (b.max_events as usize, Some(b)),
                None => (room.min(free), None),
            };
            let rows: Vec<DueRow> = tx
                .query(
                    &format!(
                        "SELECT {DUE_COLUMNS} FROM deliveries
                         WHERE webhook_id = $1 AND {claimable} AND next_attempt_at <= $2
                         ORDER BY next_attempt_at, id LIMIT $3"
                    ),
                    &[&w.id, &now, &(want as i64)],
                )
                .await?
                .iter()
                .map(due_row)
                .collect();
            let requests = match batch {
                Some(b) => {
                    let oldest = rows
                        .iter()
                        .map(|r| age_ms(&r.created_at, now))
                        .max()
                        .unwrap_or(0);
                    let wait = b.wait().as_millis() as i64;
                    let retry = rows.iter().any(|r| r.tries > 0);
                    if rows.is_empty() {
                        0
                    } else if rows.len() < want && oldest < wait && !retry {
                        note_due(&mut pass, Some(now + (wait - oldest).max(1)));
                        0
                    } else {
                        groups.push(Group {
                            webhook_id: w.id,
                            updated_at: w.updated_at.clone(),
                            batched: true,
                            rows,
                        });
                        1
                    }
                }
                None => {
                    let n = rows.len();
                    if n > 0 {
                        groups.push(Group {
                            webhook_id: w.id,
                            updated_at: w.updated_at.clone(),
                            batched: false,
                            rows,
                        });
                    }
                    n
                }
            };
            free -= requests;
            if requests < room && free == 0 {
                pass.starved = true;
            } else if requests < room {
                let next: Option<i64> = tx
                    .query_one(
                        "SELECT min(greatest(next_attempt_at, coalesce(lease_until, 0)))
                         FROM deliveries WHERE webhook_id = $1 AND state = 'pending'
                           AND greatest(next_attempt_at, coalesce(lease_until, 0)) > $2",
                        &[&w.id, &now],
                    )
                    .await?
                    .get(0);
                note_due(&mut pass, next);
            }
        }
        let claimed: Vec<i64> = groups
            .iter()
            .flat_map(|g| g.rows.iter().map(|r| r.id))
            .collect();
        if claimed.is_empty() {
            tx.commit().await?;
            return Ok(pass);
        }
        // The rows were read claimable in this transaction, whose webhook
        // locks keep other routers' claim passes off them; the condition is
        // repeated so a settlement racing on an expired lease changes nothing.
        tx.execute(
            "UPDATE deliveries SET claimed_by = $2, lease_until = $3
             WHERE id = ANY($1) AND state = 'pending' AND (claimed_by IS NULL OR lease_until <= $4)",
            &[&claimed, &self.owner(), &lease_until, &now],
        )
        .await?;
        let event_ids: Vec<i64> = groups
            .iter()
            .flat_map(|g| g.rows.iter().map(|r| r.event_id))
            .collect();
        let mut events: HashMap<i64, QueuedEvent> = tx
            .query(
                "SELECT id, uuid, type, created_at, ticket_id, data FROM events WHERE id = ANY($1)",
                &[&event_ids],
            )
            .await?
            .iter()
            .map(|r| {
                let e = QueuedEvent {
                    id: r.get(0),
                    uuid: r.get(1),
                    kind: r.get(2),
                    created_at: r.get(3),
                    ticket_id: r.get(4),
                    data: r.get(5),
                    unreadable: None,
                    source: None,
                };
                (e.id, e)
            })
            .collect();
        tx.commit().await?;
        self.remember(claimed.iter().copied());
        tracing::trace!(free, requests = groups.len(), "claim pass");
        pass.claimed = groups
            .into_iter()
            .flat_map(|g| into_jobs(g, &mut events))
            .collect();
        Ok(pass)
    }

    /// When the first live lease of webhook `id` ends.
    async fn next_lease_end(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        id: i64,
        now: i64,
    ) -> Result<Option<i64>, Error> {
        Ok(tx
            .query_one(
                "SELECT min(lease_until) FROM deliveries
                 WHERE webhook_id = $1 AND state = 'pending' AND claimed_by IS NOT NULL
                   AND lease_until > $2",
                &[&id, &now],
            )
            .await?
            .get(0))
    }

    /// Records attempts and settles their deliveries in one transaction, as
    /// SQLite's `finish_attempts`, clearing their leases. Returns whether
    /// a health changed in a way the monitor must look at.
    ///
    /// Settlements are grouped: the settler commits whatever queued while
    /// the previous transaction ran in one transaction (as SQLite's
    /// writer groups commits), so a busy router spends one commit on many.
    pub(in crate::store) async fn finish_attempts(
        &self,
        requests: Arc<Vec<Settled>>,
    ) -> Result<bool, Error> {
        let (done, answer) = tokio::sync::oneshot::channel();
        self.inner
            .settle_queue
            .send((requests, done))
            .map_err(|_| Error::Task("the settler stopped".into()))?;
        let result = answer
            .await
            .unwrap_or_else(|_| Err(Error::Task("the settler stopped".into())));
        self.noted(result)
    }

    /// Settles `requests` in one transaction.
    pub(super) async fn settle(&self, requests: &[&Settled]) -> Result<bool, Error> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let now = now_rfc3339();
        // Only while this router's claim holds: if its lease ran out and
        // another router took the delivery over, that router settles it
        // (this attempt is still logged).
        let settle = tx
            .prepare_cached(
                "UPDATE deliveries SET state = $2, claimed_by = NULL, lease_until = NULL,
                        next_attempt_at = coalesce($3, next_attempt_at), last_error = $4,
                        updated_at = $5, attempts = attempts + 1, tries = tries + 1
                 WHERE id = $1 AND claimed_by = $6 AND state = 'pending'",
            )
            .await?;
        let mut poke = false;
        // Webhook rows are updated in id order, as every transaction that
        // locks several does: two settlements cannot deadlock.
        let mut in_order: Vec<&Settled> = requests.to_vec();
        in_order.sort_by_key(|r| r.first().map(|(e, _)| e.webhook_id));
        for request in in_order {
            for (entry, outcome) in request {
                let (state, next) = match outcome {
                    Outcome::Delivered => ("delivered", None),
                    Outcome::RetryAt(ms) => ("pending", Some(*ms)),
                    Outcome::Failed => ("failed", None),
                };
                let retry_at = next.map(crate::store::ms_to_rfc3339);
                super::log::insert_entry(&tx, entry, retry_at.as_deref()).await?;
                if let Some(id) = entry.delivery_id {
                    let owner = self.owner();
                    let n = tx
                        .execute(&settle, &[&id, &state, &next, &entry.error, &now, &owner])
                        .await?;
                    if n == 0 {
                        tracing::warn!(
                            delivery = id,
                            "an attempt settled after another router took the delivery over (this router's lease had run out); that router decides its state"
                        );
                    }
                }
            }
            let Some((e, _)) = request.first().filter(|(e, _)| !e.test) else {
                continue;
            };
            let gave_up = request.iter().any(|(_, o)| *o == Outcome::Failed);
            poke |= super::health::note_attempt(
                &tx,
                e.webhook_id,
                e.delivered,
                e.error.as_deref(),
                &now,
                gave_up,
            )
            .await?;
        }
        tx.commit().await?;
        self.forget(
            requests
                .iter()
                .flat_map(|r| r.iter().filter_map(|(e, _)| e.delivery_id)),
        );
        Ok(poke)
    }

    /// Gives back the leases of a request that will not be settled (its
    /// deliveries are gone: the webhook was deleted while it was sent).
    pub(in crate::store) fn release_unsettled(&self, webhook_id: i64, delivery_ids: &[i64]) {
        let ids = delivery_ids.to_vec();
        self.forget(ids.iter().copied());
        let done = self.block(async {
            let c = self.client().await?;
            c.execute(
                "UPDATE deliveries SET claimed_by = NULL, lease_until = NULL
                 WHERE id = ANY($1) AND claimed_by = $2",
                &[&ids, &self.owner()],
            )
            .await?;
            Ok(())
        });
        if let Err(e) = done {
            // Not lost: no longer renewed, the leases expire and the rows
            // are claimable again.
            tracing::warn!(webhook = webhook_id, error = %e, "cannot give back leases");
        }
    }

    /// Run once at start: logs the attempts of leases that expired (a
    /// router stopped with requests in flight) as interrupted and frees
    /// them; they do not count against the retry policy (a claim counts
    /// nothing until settled). Live leases of other routers are theirs.
    pub(in crate::store) fn release_claims(&self) -> Result<usize, Error> {
        self.block(async {
            let mut c = self.client().await?;
            let tx = c.transaction().await?;
            let now = now_ms();
            // Freed and logged in one statement: of two routers starting
            // together, only the one that frees a row logs it.
            let n = tx
                .execute(
                    "WITH freed AS (
                         UPDATE deliveries SET claimed_by = NULL, lease_until = NULL
                         WHERE claimed_by IS NOT NULL AND lease_until <= $3 AND state = 'pending'
                         RETURNING id, event_id, webhook_id, attempts
                     )
                     INSERT INTO log (at, outcome, event_uuid, event_type, ticket_id, webhook_id,
                                      webhook_name, delivery_id, attempt, error)
                     SELECT $1, 'failed', e.uuid, e.type, e.ticket_id, w.id, w.name, d.id,
                            d.attempts + 1, $2
                     FROM freed d
                     JOIN events e ON e.id = d.event_id
                     JOIN webhooks w ON w.id = d.webhook_id
                     ORDER BY d.id",
                    &[&now_rfc3339(), &INTERRUPTED, &now],
                )
                .await?;
            tx.commit().await?;
            Ok(n as usize)
        })
    }

    /// Logs the attempts of `delivery_ids` as interrupted (a stop cut them
    /// short) and counts them; they stay pending, their leases given back
    /// so another router sends them at once.
    pub(in crate::store) fn interrupt(&self, delivery_ids: Vec<i64>) -> Result<(), Error> {
        self.forget(delivery_ids.iter().copied());
        self.block(async {
            let mut c = self.client().await?;
            let tx = c.transaction().await?;
            tx.execute(
                "INSERT INTO log (at, outcome, event_uuid, event_type, ticket_id, webhook_id,
                                  webhook_name, delivery_id, attempt, error)
                 SELECT $1, 'failed', e.uuid, e.type, e.ticket_id, w.id, w.name, d.id,
                        d.attempts + 1, $2
                 FROM deliveries d
                 JOIN events e ON e.id = d.event_id
                 JOIN webhooks w ON w.id = d.webhook_id
                 WHERE d.id = ANY($3) AND d.state = 'pending'
                 ORDER BY d.id",
                &[&now_rfc3339(), &INTERRUPTED, &delivery_ids],
            )
            .await?;
            tx.execute(
                "UPDATE deliveries SET attempts = attempts + 1, claimed_by = NULL, lease_until = NULL
                 WHERE id = ANY($1) AND state = 'pending' AND claimed_by = $2",
                &[&delivery_ids, &self.owner()],
            )
            .await?;
            tx.execute("SELECT pg_notify('herald_deliveries', '')", &[])
                .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Marks a delivery failed without an attempt (its event cannot be read).
    pub(in crate::store) fn fail_unreadable(&self, bad: &Unreadable) -> Result<(), Error> {
        self.forget([bad.delivery_id]);
        self.block(async {
            let mut c = self.client().await?;
            let tx = c.transaction().await?;
            let now = now_rfc3339();
            let error = format!("the event cannot be read: {}", bad.reason);
            tx.execute(
                "INSERT INTO log (at, outcome, event_uuid, event_type, webhook_id, webhook_name,
                                  delivery_id, attempt, error)
                 SELECT $1, 'failed', e.uuid, e.type, w.id, w.name, d.id, d.attempts + 1, $3
                 FROM deliveries d
                 JOIN events e ON e.id = d.event_id
                 JOIN webhooks w ON w.id = d.webhook_id
                 WHERE d.id = $2",
                &[&now, &bad.delivery_id, &error],
            )
            .await?;
            tx.execute(
                "UPDATE deliveries SET state = 'failed', claimed_by = NULL, lease_until = NULL,
                        attempts = attempts + 1, last_error = $3, updated_at = $2
                 WHERE id = $1",
                &[&bad.delivery_id, &now, &error],
            )
            .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Extends this router's live leases (every third of a lease, see
    /// [`Postgres::renew_leases_forever`]): requests longer than a lease are
    /// not taken over while they run.
    pub(super) async fn renew_leases(&self) -> Result<u64, Error> {
        let ids = self.working_on();
        if ids.is_empty() {
            return Ok(0);
        }
        let c = self.client().await?;
        let until = now_ms() + self.lease().as_millis() as i64;
        Ok(c.execute(
            "UPDATE deliveries SET lease_until = $3
             WHERE id = ANY($2) AND claimed_by = $1 AND state = 'pending'",
            &[&self.owner(), &ids, &until],
        )
        .await?)
    }
}

/// The requests of one webhook's claimed rows, with their events parsed
/// (an event that cannot be read becomes an entry of its own).
fn into_jobs(group: Group, events: &mut HashMap<i64, QueuedEvent>) -> Vec<Claimed> {
    let rows = group
        .rows
        .into_iter()
        .map(|row| ClaimedRow {
            delivery_id: row.id,
            attempts: row.attempts,
            tries: row.tries,
            event: match events.get(&row.event_id).cloned() {
                Some(e) => e.parse().map(Arc::new),
                None => Err("the event row was deleted".to_owned()),
            },
        })
        .collect();
    jobs(group.webhook_id, &group.updated_at, group.batched, rows)
}

#[cfg(test)]
#[path = "claims_tests.rs"]
mod tests;
