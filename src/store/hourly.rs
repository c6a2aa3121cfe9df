//! The event log summed by hour, for the web admin's charts: per webhook
//! and hour, attempts delivered, failed and other entries (invalid events,
//! alerts), and request durations counted into buckets (a p95 estimate
//! without keeping every duration).

use rusqlite::params;

use super::Error;
use super::sqlite::Sqlite;

/// An attempt whose request went out: it has a duration or a status (one
/// stopped before sending — a token that could not be fetched, a refused
/// address — is logged with 0 ms and is not timed).
const SENT: &str = "((outcome = 'delivered' OR outcome = 'failed') AND (duration_ms > 0 OR http_status IS NOT NULL))";

/// Upper bounds (ms) of the duration buckets; a last, open bucket follows.
pub const DURATION_BUCKETS_MS: [i64; 12] =
    [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000];

/// The p95 of an hour whose slowest twentieth took longer than the last
/// bound (30 s).
pub const BEYOND_MS: i64 = 30_001;

/// One webhook's (or no webhook's) entries in one hour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HourlyLog {
    /// The webhook, `None` for entries of no webhook (invalid events).
    pub webhook_id: Option<i64>,
    /// `YYYY-MM-DDTHH` (UTC).
    pub hour: String,
    /// Attempts delivered.
    pub delivered: i64,
    /// Attempts failed.
    pub failed: i64,
    /// Other entries: invalid events, alerts, pauses.
    pub other: i64,
    /// Timed attempts per duration bucket ([`DURATION_BUCKETS_MS`], then
    /// longer).
    pub durations: Vec<i64>,
}

impl HourlyLog {
    /// The 95th percentile of the durations, as the upper bound of its
    /// bucket (ms); `None` without timed attempts; past the last bound,
    /// [`BEYOND_MS`].
    pub fn p95_ms(&self) -> Option<i64> {
        let total: i64 = self.durations.iter().sum();
        if total == 0 {
            return None;
        }
        let mut seen = 0;
        for (i, n) in self.durations.iter().enumerate() {
            seen += n;
            if seen * 100 >= total * 95 {
                return Some(DURATION_BUCKETS_MS.get(i).copied().unwrap_or(BEYOND_MS));
            }
        }
        None
    }
}

/// Counts per bucket from counts at or under each bound (the last: all
/// timed attempts), as the grouped read of either backend returns them.
pub(super) fn per_bucket(cumulative: Vec<i64>) -> Vec<i64> {
    let mut before = 0;
    cumulative
        .into_iter()
        .map(|c| {
            let n = c - before;
            before = c;
            n
        })
        .collect()
}

/// The grouped read of [`Store::hourly_log`].
fn hourly_sql() -> String {
    let buckets: String = DURATION_BUCKETS_MS
        .iter()
        .map(|b| format!(", sum({SENT} AND duration_ms <= {b})"))
        .collect();
    format!(
        "SELECT webhook_id, substr(at, 1, 13),
                sum(outcome = 'delivered'), sum(outcome = 'failed'),
                sum(outcome <> 'delivered' AND outcome <> 'failed'),
                sum({SENT}){buckets}
         FROM log WHERE at >= ?1 AND test = 0
         GROUP BY substr(at, 1, 13), webhook_id ORDER BY 2"
    )
}

impl Sqlite {
    /// Log entries since `since` (RFC 3339, UTC) by webhook and hour, test
    /// sends left out. One range read through the log's time index
    /// (grouped by hour first, so the planner does not prefer the webhook
    /// index and read the whole log; a test checks the plan).
    pub fn hourly_log(&self, since: &str) -> Result<Vec<HourlyLog>, Error> {
        let sql = hourly_sql();
        self.read(|c| {
            let mut stmt = c.prepare_cached(&sql)?;
            let rows = stmt.query_map(params![since], |r| {
                let mut cumulative = Vec::with_capacity(DURATION_BUCKETS_MS.len() + 1);
                for i in 0..DURATION_BUCKETS_MS.len() {
                    cumulative.push(r.get::<_, i64>(6 + i)?);
                }
                cumulative.push(r.get(5)?);
                let durations = per_bucket(cumulative);
                Ok(HourlyLog {
                    webhook_id: r.get(0)?,
                    hour: r.get(1)?,
                    delivered: r.get(2)?,
                    failed: r.get(3)?,
                    other: r.get(4)?,
                    durations,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::Sqlite as Store;

    #[test]
    fn p95_is_the_bound_of_its_bucket() {
        let mut h = HourlyLog {
            webhook_id: Some(1),
            hour: "2026-12-07T10".into(),
            delivered: 100,
            failed: 0,
            other: 0,
            durations: vec![0; DURATION_BUCKETS_MS.len() + 1],
        };
        assert_eq!(h.p95_ms(), None);
        h.durations[0] = 94; // <= 5 ms
        h.durations[3] = 6; // <= 50 ms
        assert_eq!(h.p95_ms(), Some(50));
        h.durations[3] = 0;
        h.durations[12] = 6; // past 30 s
        assert_eq!(h.p95_ms(), Some(BEYOND_MS));
    }

    #[test]
    fn the_log_is_summed_by_webhook_and_hour() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("h.db")).unwrap();
        store
            .write(|c| {
                c.execute_batch(
                    "INSERT INTO log (at, outcome, webhook_id, duration_ms) VALUES
                       ('2026-12-07T10:05:00.000Z', 'delivered', 1, 3),
                       ('2026-12-07T10:59:59.999Z', 'delivered', 1, 40),
                       ('2026-12-07T10:30:00.000Z', 'failed', 1, 7000),
                       ('2026-12-07T11:00:00.000Z', 'delivered', 1, 3),
                       ('2026-12-07T10:10:00.000Z', 'invalid', NULL, NULL),
                       ('2026-12-06T10:10:00.000Z', 'delivered', 1, 3);
                     INSERT INTO log (at, outcome, webhook_id, duration_ms, test) VALUES
                       ('2026-12-07T10:10:00.000Z', 'delivered', 1, 3, 1);
                     INSERT INTO log (at, outcome, webhook_id, duration_ms, error) VALUES
                       ('2026-12-07T10:20:00.000Z', 'failed', 1, 0, 'token fetch failed');",
                )?;
                Ok(())
            })
            .unwrap();
        let rows = store.hourly_log("2026-12-07T00:00:00.000Z").unwrap();
        let at10: Vec<&HourlyLog> = rows.iter().filter(|r| r.hour == "2026-12-07T10").collect();
        let w1 = at10.iter().find(|r| r.webhook_id == Some(1)).unwrap();
        assert_eq!(
            (w1.delivered, w1.failed, w1.other),
            (2, 2, 0),
            "the test send is left out"
        );
        assert_eq!(w1.durations.iter().sum::<i64>(), 3);
        assert_eq!(w1.durations[0], 1);
        assert_eq!(w1.durations[3], 1);
        assert_eq!(w1.durations[10], 1, "7 s is in the 10 s bucket");
        let none = at10.iter().find(|r| r.webhook_id.is_none()).unwrap();
        assert_eq!(none.other, 1);
        assert_eq!(rows.iter().filter(|r| r.hour == "2026-12-07T11").count(), 1);
        assert!(rows.iter().all(|r| r.hour.starts_with("2026-12-07")));
        // A range read through the time index, not the whole log.
        let plan: Vec<String> = store
            .read(|c| {
                let mut stmt = c.prepare(&format!("EXPLAIN QUERY PLAN {}", hourly_sql()))?;
                let rows =
                    stmt.query_map(["2026-12-07T00:00:00.000Z"], |r| r.get::<_, String>(3))?;
                Ok(rows.collect::<Result<_, _>>()?)
            })
            .unwrap();
        assert!(
            plan.iter().any(|d| d.contains("USING INDEX log_at")),
            "{plan:?}"
        );
    }
}
