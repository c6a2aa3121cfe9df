//! The claim pass: which due deliveries to send now, within the global
//! and per-webhook limits, strict order and batches. A read on a read-only
//! connection; what it claims is kept in memory (see [`super::claims`]).

use std::collections::HashMap;
use std::sync::Arc;

use rusqlite::params;

use super::claims::DueRow;
use super::deliveries::{ClaimPass, Claimed, ClaimedRow, jobs};
use super::sqlite::Sqlite;
use super::{Error, now_ms};
use crate::base::event::Event;
use crate::spec::webhook::Batch;

/// What a webhook allows the claim pass to take.
#[derive(Debug, Clone)]
struct Active {
    id: i64,
    updated_at: String,
    max_in_flight: usize,
    ordered: bool,
    batch: Option<Batch>,
}

/// Due rows a plain webhook's claim pass reads at once: the ones no
/// request takes now are kept claimed for the next passes.
const READ_AHEAD: usize = 64;

const DUE_COLUMNS: &str = "id, event_id, attempts, tries, claimed, next_attempt_at, created_at";

fn due_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DueRow> {
    Ok(DueRow {
        delivery_id: r.get(0)?,
        event_id: r.get(1)?,
        attempts: r.get(2)?,
        tries: r.get(3)?,
        claimed: r.get(4)?,
        next_attempt_at: r.get(5)?,
        created_at: r.get(6)?,
    })
}

/// Up to `limit` of webhook `w`'s due rows, in due order from the first.
fn due_from_start(
    tx: &rusqlite::Connection,
    w: i64,
    now: i64,
    limit: usize,
) -> Result<Vec<DueRow>, Error> {
    let rows = tx
        .prepare_cached(&format!(
            "SELECT {DUE_COLUMNS} FROM deliveries
             WHERE webhook_id = ?1 AND state = 'pending' AND claimed = 0 AND next_attempt_at <= ?2
             ORDER BY next_attempt_at, id LIMIT ?3"
        ))?
        .query_map(params![w, now, limit as i64], due_row)?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// About `fetch` of webhook `w`'s due rows after the read positions of
/// `claims` (first attempts, then retries; see [`super::claims::Ahead`]),
/// moving them on. A run without a position is read from its start, past
/// the rows this process holds; those are among the rows returned.
fn read_due(
    tx: &rusqlite::Connection,
    claims: &mut super::claims::Pass<'_>,
    w: i64,
    now: i64,
    fetch: usize,
) -> Result<Vec<DueRow>, Error> {
    let query = |sql: &str, p: &[&dyn rusqlite::ToSql]| -> Result<Vec<DueRow>, Error> {
        Ok(tx
            .prepare_cached(&format!("SELECT {DUE_COLUMNS} FROM deliveries WHERE webhook_id = ?1 AND state = 'pending' AND claimed = 0 AND {sql}"))?
            .query_map(p, due_row)?
            .collect::<Result<_, _>>()?)
    };
    let (after, limit) = match claims.ahead.fresh_after(w) {
        Some(id) => (id, fetch),
        None => (0, fetch + claims.taken(w)),
    };
    let mut rows = query(
        "next_attempt_at = 0 AND id > ?2 ORDER BY id LIMIT ?3",
        &[&w, &after, &(limit as i64)],
    )?;
    if let Some(last) = rows.last() {
        claims.ahead.set_fresh_after(w, last.delivery_id);
    }
    if rows.len() >= limit {
        return Ok(rows);
    }
    let limit = limit - rows.len();
    let retries = match claims.ahead.retry_after(w) {
        Some((at, id)) => {
            // Two range reads: SQLite scans a row-value range
            // (`(a, b) > (?, ?)`) from its start instead of seeking.
            let mut same = query(
                "next_attempt_at = ?2 AND id > ?3 ORDER BY id LIMIT ?4",
                &[&w, &at, &id, &(limit as i64)],
            )?;
            if same.len() < limit {
                same.extend(query(
                    "next_attempt_at > ?2 AND next_attempt_at <= ?3 ORDER BY next_attempt_at, id LIMIT ?4",
                    &[&w, &at, &now, &((limit - same.len()) as i64)],
                )?);
            }
            same
        }
        None => query(
            "next_attempt_at > 0 AND next_attempt_at <= ?2 ORDER BY next_attempt_at, id LIMIT ?3",
            &[&w, &now, &((limit + claims.taken(w)) as i64)],
        )?,
    };
    if let Some(last) = retries.last() {
        claims.ahead.set_retry_after(w, last.key());
    }
    rows.extend(retries);
    Ok(rows)
}

/// Where a claimed row's event comes from.
enum Source {
    /// Parsed by the router.
    Parsed(Arc<Event>),
    /// Read now, parsed once the read connection is given back.
    Row(super::events::QueuedEvent),
    /// The event row is gone (deleted by hand).
    Gone,
}

/// The rows one webhook's turn claimed, with their events.
struct ClaimedRows {
    webhook_id: i64,
    webhook_updated_at: String,
    batched: bool,
    rows: Vec<(DueRow, Source)>,
}

/// A claim pass as the read finishes it: rows claimed, events unparsed.
#[derive(Default)]
struct RawPass {
    claimed: Vec<ClaimedRows>,
    next_due_ms: Option<i64>,
    starved: bool,
}

/// Milliseconds since `created_at` (RFC 3339); a time in the future (clock
/// stepped back) counts as old, so nothing waits on a wrong clock.
fn age_ms(created_at: &str, now: i64) -> i64 {
    chrono::DateTime::parse_from_rfc3339(created_at)
        .map(|t| now - t.timestamp_millis())
        .map(|a| if a < 0 { i64::MAX } else { a })
        .unwrap_or(i64::MAX)
}

impl Sqlite {
    /// Claims due deliveries for up to `free` requests, visiting webhooks
    /// that are enabled and not paused, starting at the `start`-th (so no
    /// webhook is always served last). Each webhook gets at most its
    /// `max_in_flight` minus `in_flight[id]` requests; an ordered webhook
    /// only its oldest pending delivery, and only when nothing of it is in
    /// flight; a batching webhook one request per full batch, or per batch
    /// whose oldest event has waited `max_wait`.
    ///
    /// A read, not a write: claims are kept in memory (see [`super::claims`])
    /// until [`Store::finish_attempt`] settles them, so no request waits for
    /// a commit before it is sent.
    pub async fn claim_due(
        &self,
        free: usize,
        in_flight: &HashMap<i64, usize>,
        start: usize,
    ) -> Result<ClaimPass, Error> {
        let in_flight = in_flight.to_owned();
        let store = self.clone();
        let raw = tokio::task::spawn_blocking(move || store.claim_pass(free, &in_flight, start))
            .await
            .map_err(|e| Error::Task(e.to_string()))??;
        tracing::trace!(
            free,
            requests = raw.claimed.iter().map(|g| g.rows.len()).sum::<usize>(),
            "claim pass"
        );
        // Parsing is CPU work no read connection should be held for: it
        // happens here (or not at all, for an event the router parsed).
        Ok(ClaimPass {
            claimed: raw.claimed.into_iter().flat_map(into_jobs).collect(),
            next_due_ms: raw.next_due_ms,
            starved: raw.starved,
        })
    }

    /// The claim pass of [`Store::claim_due`], on a read-only connection in
    /// one read transaction (one snapshot). Plain webhooks' due rows are
    /// read [`READ_AHEAD`] at a time and kept claimed for the next passes;
    /// events are looked up only for the rows a request takes.
    fn claim_pass(
        &self,
        free: usize,
        in_flight: &HashMap<i64, usize>,
        start: usize,
    ) -> Result<RawPass, Error> {
        let mut claims = self.claims.begin();
        let mut pass = RawPass::default();
        let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.read(|c| self.claim_in(c, &mut claims, &mut pass, free, in_flight, start))
        }))
        .unwrap_or_else(|_| Err(Error::Task("a claim pass panicked".into())));
        match read {
            Ok(()) => Ok(pass),
            Err(e) => {
                // Nothing of a failed pass is sent: what it took is given
                // back, with every row read ahead, and reads start over.
                for group in &pass.claimed {
                    let ids: Vec<i64> = group.rows.iter().map(|(r, _)| r.delivery_id).collect();
                    self.claims.give_back(group.webhook_id, &ids);
                }
                for (webhook, ids) in claims.ahead.drop_all() {
                    self.claims.give_back(webhook, &ids);
                }
                Err(e)
            }
        }
    }

    /// The body of [`Store::claim_pass`]: fills `pass`.
    fn claim_in(
        &self,
        c: &mut rusqlite::Connection,
        claims: &mut super::claims::Pass<'_>,
        pass: &mut RawPass,
        free: usize,
        in_flight: &HashMap<i64, usize>,
        start: usize,
    ) -> Result<(), Error> {
        {
            let tx = c.transaction()?;
            let now = now_ms();
            let mut active = active_webhooks(&tx)?;
            let ids: std::collections::HashSet<i64> = active.iter().map(|w| w.id).collect();
            for (webhook, rows) in claims.ahead.drop_inactive(&ids) {
                self.claims.give_back(webhook, &rows);
            }
            if !active.is_empty() {
                let n = start % active.len();
                active.rotate_left(n);
            }
            let mut free = free;
            let note_due = |pass: &mut RawPass, at: Option<i64>| {
                if let Some(at) = at {
                    pass.next_due_ms = Some(pass.next_due_ms.map_or(at, |d| d.min(at)));
                }
            };
            for w in &active {
                let busy = in_flight.get(&w.id).copied().unwrap_or(0);
                let room = if w.ordered { 1 } else { w.max_in_flight }.saturating_sub(busy);
                if room == 0 {
                    continue; // A finishing request wakes the deliverer.
                }
                if free == 0 {
                    pass.starved = true;
                    break;
                }
                if w.ordered || w.batch.is_some() {
                    // Read ahead while it sent one by one (its settings changed).
                    let stale = claims.ahead.drop_webhook(w.id);
                    if !stale.is_empty() {
                        self.claims.give_back(w.id, &stale);
                    }
                }
                if w.ordered {
                    let head = tx
                        .prepare_cached(&format!(
                            "SELECT {DUE_COLUMNS} FROM deliveries
                             WHERE webhook_id = ?1 AND state = 'pending' ORDER BY id LIMIT 1"
                        ))?
                        .query_row([w.id], due_row);
                    let head = match head {
                        Ok(h) => h,
                        Err(rusqlite::Error::QueryReturnedNoRows) => continue,
                        Err(e) => return Err(e.into()),
                    };
                    // Still in flight, or settled after this snapshot: the
                    // settlement wakes the deliverer.
                    if head.claimed || !claims.is_free(w.id, head.delivery_id) {
                        continue;
                    }
                    if head.next_attempt_at > now {
                        note_due(pass, Some(head.next_attempt_at));
                        continue;
                    }
                    claims.claim(w.id, [head.delivery_id]);
                    pass.claimed
                        .push(claimed_rows(&tx, &self.parsed, w, vec![head], false)?);
                    free -= 1;
                    continue;
                }
                let requests = if let Some(b) = &w.batch {
                    // One batch per turn, read from the start past what
                    // this process holds.
                    let per_request = b.max_events as usize;
                    let skip = claims.taken(w.id);
                    let mut rows: Vec<DueRow> = due_from_start(&tx, w.id, now, per_request + skip)?
                        .into_iter()
                        .filter(|r| claims.is_free(w.id, r.delivery_id))
                        .collect();
                    rows.truncate(per_request);
                    let got = rows.len();
                    let oldest = rows
                        .iter()
                        .map(|r| age_ms(&r.created_at, now))
                        .max()
                        .unwrap_or(0);
                    let wait = b.wait().as_millis() as i64;
                    let retry = rows.iter().any(|r| r.tries > 0);
                    if got == 0 {
                        0
                    } else if got < per_request && oldest < wait && !retry {
                        note_due(pass, Some(now + (wait - oldest).max(1)));
                        0
                    } else {
                        claims.claim(w.id, rows.iter().map(|r| r.delivery_id));
                        pass.claimed
                            .push(claimed_rows(&tx, &self.parsed, w, rows, true)?);
                        free -= 1;
                        1
                    }
                } else {
                    let want = room.min(free);
                    let mut rows = claims.take_ahead(w.id, want);
                    if rows.len() < want {
                        let fetch = (want - rows.len()).max(READ_AHEAD);
                        let read = read_due(&tx, claims, w.id, now, fetch)?;
                        let fresh: Vec<DueRow> = read
                            .into_iter()
                            .filter(|r| claims.is_free(w.id, r.delivery_id))
                            .collect();
                        claims.claim(w.id, fresh.iter().map(|r| r.delivery_id));
                        let mut fresh = fresh.into_iter();
                        rows.extend(fresh.by_ref().take(want - rows.len()));
                        claims.keep_ahead(w.id, fresh.collect());
                    }
                    let n = rows.len();
                    free -= n;
                    if n > 0 {
                        pass.claimed
                            .push(claimed_rows(&tx, &self.parsed, w, rows, false)?);
                    }
                    n
                };
                if requests < room && free == 0 {
                    pass.starved = true;
                } else if requests < room {
                    // Everything due is claimed (or a batch is filling):
                    // wake when the next retry falls due.
                    let next: Option<i64> = tx
                        .prepare_cached(
                            "SELECT min(next_attempt_at) FROM deliveries
                             WHERE webhook_id = ?1 AND state = 'pending' AND claimed = 0 AND next_attempt_at > ?2",
                        )?
                        .query_row(params![w.id, now], |r| r.get(0))?;
                    note_due(pass, next);
                }
            }
            Ok(())
        }
    }
}

/// Webhooks deliveries may be claimed for: enabled and not paused.
fn active_webhooks(tx: &rusqlite::Connection) -> Result<Vec<Active>, Error> {
    let mut stmt = tx.prepare_cached(
        "SELECT id, updated_at, max_in_flight, ordered, batch FROM webhooks
         WHERE enabled = 1 AND paused_at IS NULL ORDER BY id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(Active {
            id: r.get(0)?,
            updated_at: r.get(1)?,
            max_in_flight: r.get::<_, i64>(2)?.max(1) as usize,
            ordered: r.get(3)?,
            // A corrupt batch setting sends one by one; the webhook's own
            // load reports the corruption on its attempts.
            batch: r
                .get::<_, Option<String>>(4)?
                .and_then(|t| serde_json::from_str(&t).ok()),
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The claimed `rows` of webhook `w` (one request each, or one request
/// for all when `batched`) with their events: from the router's parsed
/// events, else read from the table.
fn claimed_rows(
    tx: &rusqlite::Connection,
    parsed: &super::parsed::ParsedEvents,
    w: &Active,
    rows: Vec<DueRow>,
    batched: bool,
) -> Result<ClaimedRows, Error> {
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let source = match parsed.take(row.event_id) {
            Some(event) => Source::Parsed(event),
            None => {
                let read = tx
                    .prepare_cached(
                        "SELECT id, uuid, type, created_at, ticket_id, data FROM events WHERE id = ?1",
                    )?
                    .query_row([row.event_id], |r| super::events::queued_event(r, 0));
                match read {
                    Ok(e) => Source::Row(e),
                    Err(rusqlite::Error::QueryReturnedNoRows) => Source::Gone,
                    Err(e) => return Err(e.into()),
                }
            }
        };
        out.push((row, source));
    }
    Ok(ClaimedRows {
        webhook_id: w.id,
        webhook_updated_at: w.updated_at.clone(),
        batched,
        rows: out,
    })
}

/// The requests of one webhook's claimed rows: each event from the router's
/// parsed events, or parsed now. Events that cannot be read become
/// entries of their own.
fn into_jobs(group: ClaimedRows) -> Vec<Claimed> {
    let rows = group
        .rows
        .into_iter()
        .map(|(row, source)| ClaimedRow {
            delivery_id: row.delivery_id,
            attempts: row.attempts,
            tries: row.tries,
            event: match source {
                Source::Parsed(event) => Ok(event),
                Source::Row(row) => row.parse().map(Arc::new),
                Source::Gone => Err("the event row was deleted".to_owned()),
            },
        })
        .collect();
    jobs(
        group.webhook_id,
        &group.webhook_updated_at,
        group.batched,
        rows,
    )
}
