//! Which deliveries this process has claimed: in memory, not in the
//! database. A claim costs no write, so a request waits for no commit
//! before it is sent; its settlement is the one write of an attempt.
//!
//! Only one `herald serve` uses a SQLite database at a time (the lock
//! file), so the process's memory is the whole truth about what is in
//! flight. After a crash nothing is claimed: every delivery still pending
//! is sent again (at most the requests in flight and the attempts not yet
//! settled arrive twice).
//!
//! A claim pass reads on a read-only connection whose snapshot may predate
//! a settlement that committed meanwhile, so a settled delivery is not
//! forgotten by a pass that is running: it stays *released*, and skipped,
//! until the next pass begins (whose snapshot has the commit).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A due delivery as a claim pass reads it (its event is looked up only
/// for the rows a request takes).
#[derive(Debug, Clone)]
pub(super) struct DueRow {
    pub(super) delivery_id: i64,
    pub(super) event_id: i64,
    pub(super) attempts: i64,
    pub(super) tries: i64,
    pub(super) claimed: bool,
    pub(super) next_attempt_at: i64,
    pub(super) created_at: String,
}

impl DueRow {
    /// The row's place in the due order: `(next_attempt_at, id)`.
    pub(super) fn key(&self) -> (i64, i64) {
        (self.next_attempt_at, self.delivery_id)
    }
}

/// How long a webhook's read position among retries is kept before a
/// pass reads its due retries from the start again, picking up any that
/// became due behind it (a replay committed while a pass read).
const RESTART_EVERY: Duration = Duration::from_secs(1);

/// Per webhook: rows read ahead (claimed, not yet taken by a request) and
/// where the next reads go on. Due rows come in two runs: first attempts
/// (`next_attempt_at` 0), in id order — new ones always come after the
/// last one read, as ids grow with each commit of the one writer — then
/// retries, in `(next_attempt_at, id)` order.
#[derive(Default)]
pub(super) struct Ahead {
    rows: HashMap<i64, VecDeque<DueRow>>,
    /// The last first attempt read.
    fresh_after: HashMap<i64, i64>,
    /// The last retry read, and since when reads go on from it.
    retry_after: HashMap<i64, ((i64, i64), Instant)>,
}

/// The claim book. Shared by every clone of a [`super::Store`].
#[derive(Default)]
pub(super) struct Claims {
    book: Mutex<Book>,
    /// Rows read ahead; held for a whole claim pass, so passes never overlap.
    ahead: Mutex<Ahead>,
}

#[derive(Default)]
struct Book {
    /// Claimed deliveries (in flight or being settled), by webhook.
    claimed: HashMap<i64, HashSet<i64>>,
    /// Deliveries settled since the running pass began: its snapshot may
    /// still show them pending. Id → webhook.
    released: HashMap<i64, i64>,
    /// Claimed deliveries read ahead, not handed to a request yet.
    waiting: HashSet<i64>,
}

impl Book {
    /// Takes `ids` of `webhook` out of the claimed ones.
    fn unclaim(&mut self, webhook: i64, ids: &[i64]) {
        if let Some(set) = self.claimed.get_mut(&webhook) {
            for id in ids {
                set.remove(id);
            }
            if set.is_empty() {
                self.claimed.remove(&webhook);
            }
        }
    }
}

/// One claim pass, begun with [`Claims::begin`]: the snapshot it reads
/// must be taken after it began.
pub(super) struct Pass<'a> {
    claims: &'a Claims,
    /// The rows read ahead, this pass's alone.
    pub(super) ahead: std::sync::MutexGuard<'a, Ahead>,
}

impl Claims {
    /// Begins a pass; waits for a running one to end.
    pub(super) fn begin(&self) -> Pass<'_> {
        let ahead = self.ahead.lock().unwrap_or_else(|p| p.into_inner());
        // Settlements released so far have committed: this pass's snapshot,
        // taken after this, has them.
        self.lock().released.clear();
        Pass {
            claims: self,
            ahead,
        }
    }

    /// Gives back `webhook`'s rows read ahead (its reads start over) and
    /// lists its deliveries still claimed: in flight, or answered and
    /// being settled. Waits for a running pass.
    pub(super) fn hold_only_in_flight(&self, webhook: i64) -> Vec<i64> {
        let ahead = self
            .ahead
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drop_webhook(webhook);
        self.give_back(webhook, &ahead);
        self.lock()
            .claimed
            .get(&webhook)
            .map(|ids| ids.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Whether delivery `id` is being sent: claimed for a request (in
    /// flight or being settled), not merely read ahead.
    pub(super) fn is_sending(&self, id: i64) -> bool {
        let book = self.lock();
        !book.waiting.contains(&id) && book.claimed.values().any(|ids| ids.contains(&id))
    }

    /// Forgets the claims of `ids` of `webhook` once their settlement (or
    /// deletion) has committed.
    pub(super) fn release(&self, webhook: i64, ids: &[i64]) {
        let mut book = self.lock();
        book.unclaim(webhook, ids);
        for id in ids {
            book.released.insert(*id, webhook);
        }
    }

    /// Forgets the claims of `ids` of `webhook` that were never sent (read
    /// ahead for a webhook that stopped, or whose rows are gone): they may
    /// be claimed again at once.
    pub(super) fn give_back(&self, webhook: i64, ids: &[i64]) {
        let mut book = self.lock();
        for id in ids {
            book.waiting.remove(id);
        }
        book.unclaim(webhook, ids);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Pass<'_> {
    /// How many of `webhook`'s deliveries a read may find pending though
    /// they are not free: a read asks for this many more rows than it wants.
    pub(super) fn taken(&self, webhook: i64) -> usize {
        let book = self.claims.lock();
        book.claimed.get(&webhook).map_or(0, HashSet::len)
            + book.released.values().filter(|w| **w == webhook).count()
    }

    /// Whether delivery `id` may be claimed: neither claimed nor released.
    pub(super) fn is_free(&self, webhook: i64, id: i64) -> bool {
        let book = self.claims.lock();
        !book.released.contains_key(&id)
            && !book.claimed.get(&webhook).is_some_and(|s| s.contains(&id))
    }

    /// Takes up to `n` rows read ahead for `webhook`, for requests.
    pub(super) fn take_ahead(&mut self, webhook: i64, n: usize) -> Vec<DueRow> {
        let rows = self.ahead.take(webhook, n);
        let mut book = self.claims.lock();
        for r in &rows {
            book.waiting.remove(&r.delivery_id);
        }
        rows
    }

    /// Keeps claimed `rows` of `webhook` read ahead for later requests.
    pub(super) fn keep_ahead(&mut self, webhook: i64, rows: Vec<DueRow>) {
        self.claims
            .lock()
            .waiting
            .extend(rows.iter().map(|r| r.delivery_id));
        self.ahead.keep(webhook, rows);
    }

    /// Claims `ids` of `webhook`.
    pub(super) fn claim(&self, webhook: i64, ids: impl IntoIterator<Item = i64>) {
        let mut book = self.claims.lock();
        book.claimed.entry(webhook).or_default().extend(ids);
    }
}

impl Ahead {
    /// Takes up to `n` rows read ahead for `webhook`.
    pub(super) fn take(&mut self, webhook: i64, n: usize) -> Vec<DueRow> {
        let Some(rows) = self.rows.get_mut(&webhook) else {
            return Vec::new();
        };
        let n = n.min(rows.len());
        rows.drain(..n).collect()
    }

    /// Keeps `rows` of `webhook` (claimed) for later requests.
    pub(super) fn keep(&mut self, webhook: i64, rows: impl IntoIterator<Item = DueRow>) {
        self.rows.entry(webhook).or_default().extend(rows);
    }

    /// The last first attempt of `webhook` read, if any: reads go on
    /// after it.
    pub(super) fn fresh_after(&self, webhook: i64) -> Option<i64> {
        self.fresh_after.get(&webhook).copied()
    }

    /// Notes the last first attempt of `webhook` read.
    pub(super) fn set_fresh_after(&mut self, webhook: i64, id: i64) {
        let at = self.fresh_after.entry(webhook).or_insert(id);
        *at = (*at).max(id);
    }

    /// The last retry of `webhook` read, unless reads of its retries are
    /// due to start over (every [`RESTART_EVERY`]).
    pub(super) fn retry_after(&mut self, webhook: i64) -> Option<(i64, i64)> {
        match self.retry_after.get(&webhook) {
            Some((key, since)) if since.elapsed() < RESTART_EVERY => Some(*key),
            Some(_) => {
                self.retry_after.remove(&webhook);
                None
            }
            None => None,
        }
    }

    /// Notes the last retry of `webhook` read.
    pub(super) fn set_retry_after(&mut self, webhook: i64, key: (i64, i64)) {
        let since = self
            .retry_after
            .get(&webhook)
            .map_or_else(Instant::now, |(_, s)| *s);
        self.retry_after.insert(webhook, (key, since));
    }

    /// The rows read ahead for `webhook`, to be given back (it now sends
    /// in order or in batches, which read from the table each time);
    /// its reads start over.
    pub(super) fn drop_webhook(&mut self, webhook: i64) -> Vec<i64> {
        self.fresh_after.remove(&webhook);
        self.retry_after.remove(&webhook);
        self.rows
            .remove(&webhook)
            .map(|rows| rows.iter().map(|r| r.delivery_id).collect())
            .unwrap_or_default()
    }

    /// Every row read ahead, to be given back (a pass failed); all reads
    /// start over.
    pub(super) fn drop_all(&mut self) -> Vec<(i64, Vec<i64>)> {
        self.fresh_after.clear();
        self.retry_after.clear();
        self.rows
            .drain()
            .map(|(w, rows)| (w, rows.iter().map(|r| r.delivery_id).collect()))
            .collect()
    }

    /// Webhooks with rows read ahead that are not in `active` (paused,
    /// disabled, deleted): their rows, to be given back.
    pub(super) fn drop_inactive(&mut self, active: &HashSet<i64>) -> Vec<(i64, Vec<i64>)> {
        // Rows given back lie behind the read positions: start over.
        self.fresh_after.retain(|w, _| active.contains(w));
        self.retry_after.retain(|w, _| active.contains(w));
        let gone: Vec<i64> = self
            .rows
            .keys()
            .filter(|w| !active.contains(w))
            .copied()
            .collect();
        gone.into_iter()
            .filter_map(|w| {
                self.rows
                    .remove(&w)
                    .map(|r| (w, r.iter().map(|r| r.delivery_id).collect()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_release_is_skipped_by_the_pass_it_happened_in_only() {
        let c = Claims::default();
        {
            let p = c.begin();
            assert!(p.is_free(1, 10));
            p.claim(1, [10, 11, 12]);
            assert!(!p.is_free(1, 10));
            assert_eq!(p.taken(1), 3);
        }
        assert!(c.is_sending(10));
        let running = c.begin();
        // Settled while `running` reads: its snapshot may predate the commit.
        c.release(1, &[10]);
        assert!(!c.is_sending(10));
        assert!(
            !running.is_free(1, 10),
            "released, maybe pending in its snapshot"
        );
        assert_eq!(running.taken(1), 3);
        // Never sent: free at once.
        c.give_back(1, &[12]);
        assert!(running.is_free(1, 12));
        drop(running);
        let next = c.begin();
        assert!(
            next.is_free(1, 10),
            "began after the commit: sees it settled"
        );
        assert!(!next.is_free(1, 11));
        assert_eq!(next.taken(1), 1);
        assert_eq!(next.taken(2), 0);
    }
}
