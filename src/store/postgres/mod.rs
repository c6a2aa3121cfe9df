//! The PostgreSQL backend: any number of `herald serve` processes (routers)
//! on one database.
//!
//! The same operations as SQLite's, with what sharing needs: events are
//! routed under `FOR UPDATE SKIP LOCKED` (each exactly once), deliveries
//! are claimed with a lease written to the row (`claimed_by`,
//! `lease_until`; an expired lease is anyone's), wake-ups come by
//! `LISTEN`/`NOTIFY` ([`listen`]), and once-per-cluster work (migrations,
//! outage alerts, cleanup) runs under advisory locks.
//!
//! Connections come from a deadpool pool driven by a small runtime of the
//! backend's own, so the blocking calls of [`super::Store`] work from any
//! thread: a CLI command, a `spawn_blocking` task, or a test.

mod access;
mod claims;
mod deliveries;
mod events;
mod health;
mod listen;
mod log;
mod rows;
mod sessions;
mod webhooks;

use std::collections::HashSet;
use std::future::Future;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio::sync::Notify;

use super::{Condition, Error, Options, Settled};
use crate::base::config::DatabaseUrl;
use crate::base::event::now_rfc3339;

/// Schema versions, applied in order; `herald_schema.version` is the index
/// of the last one applied. Never edit a released migration: add one.
const MIGRATIONS: &[&str] = &[include_str!("migrations/001_initial.sql")];

/// The advisory lock migrations hold ("herald" in ASCII): two routers
/// starting together migrate one after the other.
const MIGRATION_LOCK: i64 = 0x6865_7261_6c64;

/// Connections in the pool: the deliverer's claims and settlements, the
/// router, the listener's requests and the CLI share them.
const POOL_SIZE: usize = 16;

/// How long a call waits for a connection (server down: the call fails
/// with [`Fault::Unreachable`] after this, and is tried again by its
/// caller).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A cheap, cloneable handle on a PostgreSQL database.
#[derive(Clone)]
pub(super) struct Postgres {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    runtime: OwnRuntime,
    url: DatabaseUrl,
    /// This router's name in delivery leases: host, pid and a random part.
    owner: String,
    /// Fired by `NOTIFY herald_events` / `herald_deliveries`.
    notify: Arc<Notify>,
    /// The connection fault seen last, until a call succeeds again.
    fault: Mutex<Option<Condition>>,
    /// How long a delivery claim holds without renewal.
    lease: Duration,
    /// Deliveries this router claimed and has not settled or given back:
    /// the leases it renews.
    working_on: Mutex<HashSet<i64>>,
    /// Settlements waiting for the [`settler`]: what queues
    /// while one commits shares the next transaction.
    settle_queue: tokio::sync::mpsc::UnboundedSender<Waiting>,
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Postgres")
            .field("url", &self.inner.url)
            .field("owner", &self.inner.owner)
            .finish()
    }
}

/// The backend's runtime: drives the pool's connections and the listener.
/// Shut down without waiting when the last handle goes (also from inside
/// another runtime, where a plain drop would panic).
struct OwnRuntime(Option<tokio::runtime::Runtime>);

impl Drop for OwnRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

impl Postgres {
    /// Connects to `url`, migrates the schema under an advisory lock, and
    /// starts listening for wake-ups. A server that does not answer is
    /// [`Fault::Unreachable`] (a `herald serve` tries again with backoff).
    #[cfg(test)]
    pub(super) fn open(url: &DatabaseUrl) -> Result<Postgres, Error> {
        Postgres::open_with(url, &Options::default())
    }

    /// [`Postgres::open`] with `database.lease` from `options`.
    pub(super) fn open_with(url: &DatabaseUrl, options: &Options) -> Result<Postgres, Error> {
        let connect_err = |message: String| Error::Connect {
            url: url.masked(),
            message,
        };
        let mut config = tokio_postgres::Config::from_str(url.expose())
            .map_err(|e| connect_err(format!("database.url: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        config.application_name("herald");
        // A connection whose peer vanished without a word (a partition) is
        // noticed in about a minute, not the kernel's two hours.
        config.keepalives(true);
        config.keepalives_idle(Duration::from_secs(30));
        let (settle_queue, settlements) = tokio::sync::mpsc::unbounded_channel();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("herald-pg")
            .enable_all()
            .build()
            .map_err(|e| connect_err(format!("cannot start its runtime: {e}")))?;
        let manager = Manager::from_config(
            config.clone(),
            tokio_postgres::NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(CONNECT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .recycle_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| connect_err(e.to_string()))?;
        let store = Postgres {
            inner: Arc::new(Inner {
                pool,
                runtime: OwnRuntime(Some(runtime)),
                url: url.clone(),
                owner: owner_name(),
                notify: Arc::new(Notify::new()),
                fault: Mutex::new(None),
                lease: options.lease,
                working_on: Mutex::default(),
                settle_queue,
            }),
        };
        store
            .block(async { store.migrate().await })
            .map_err(|e| match e {
                // Say which server: the URL, its password masked.
                Error::Storage { fault, message } => Error::Storage {
                    fault,
                    message: format!("{message} (database.url {})", url.masked()),
                },
                e => e,
            })?;
        let handle = store.handle();
        handle.spawn(listen::run(config, store.inner.notify.clone()));
        // The tasks hold the store weakly: dropping the last handle ends
        // them with the runtime.
        handle.spawn(renew_leases_forever(Arc::downgrade(&store.inner)));
        handle.spawn(settler(Arc::downgrade(&store.inner), settlements));
        Ok(store)
    }

    /// The backend runtime's handle.
    fn handle(&self) -> tokio::runtime::Handle {
        self.inner
            .runtime
            .0
            .as_ref()
            .expect("runtime present until drop")
            .handle()
            .clone()
    }

    /// Runs `fut` to its end on the calling thread, its connections driven
    /// by the backend's runtime; notes a lost or refused connection (see
    /// [`Postgres::condition`]).
    fn block<T>(&self, fut: impl Future<Output = Result<T, Error>>) -> Result<T, Error> {
        let handle = self.handle();
        let result = match tokio::runtime::Handle::try_current() {
            // On an async worker (or a blocking task): leave the worker's
            // slot to others while this waits.
            Ok(_) => tokio::task::block_in_place(|| handle.block_on(fut)),
            Err(_) => handle.block_on(fut),
        };
        self.noted(result)
    }

    /// Remembers a connection fault in `result`, or clears the one
    /// remembered when `result` is a success; logs when one begins and ends.
    fn noted<T>(&self, result: Result<T, Error>) -> Result<T, Error> {
        let mut fault = self.inner.fault.lock().unwrap_or_else(|p| p.into_inner());
        match &result {
            Err(Error::Storage { fault: f, message }) => {
                if fault.is_none() {
                    tracing::warn!(database = %self.inner.url, "{message}");
                }
                if fault.as_ref().map(|c| c.fault) != Some(*f) {
                    *fault = Some(Condition {
                        fault: *f,
                        message: message.clone(),
                        since: now_rfc3339(),
                    });
                }
            }
            Ok(_) if fault.is_some() => {
                tracing::info!(database = %self.inner.url, "the PostgreSQL database answers again");
                *fault = None;
            }
            _ => {}
        }
        result
    }

    /// A pooled connection.
    async fn client(&self) -> Result<deadpool_postgres::Object, Error> {
        Ok(self.inner.pool.get().await?)
    }

    /// This router's name in delivery leases.
    fn owner(&self) -> &str {
        &self.inner.owner
    }

    /// How long a delivery claim holds without renewal.
    fn lease(&self) -> Duration {
        self.inner.lease
    }

    /// Notes deliveries this router has just claimed (their leases are
    /// renewed until [`Postgres::forget`]).
    fn remember(&self, ids: impl IntoIterator<Item = i64>) {
        self.working().extend(ids);
    }

    /// Stops renewing the leases of `ids` (settled, interrupted or given back).
    pub(super) fn forget(&self, ids: impl IntoIterator<Item = i64>) {
        let mut working = self.working();
        for id in ids {
            working.remove(&id);
        }
    }

    /// The deliveries whose leases this router renews.
    fn working_on(&self) -> Vec<i64> {
        self.working().iter().copied().collect()
    }

    fn working(&self) -> std::sync::MutexGuard<'_, HashSet<i64>> {
        self.inner
            .working_on
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// The URL with its password masked.
    pub(super) fn describe(&self) -> String {
        self.inner.url.masked()
    }

    /// Fired when another router (or a producer's SQL) queued events or
    /// made deliveries due.
    pub(super) fn notifications(&self) -> Arc<Notify> {
        self.inner.notify.clone()
    }

    /// A lost or refused connection, until a call succeeds again.
    pub(super) fn condition(&self) -> Option<Condition> {
        self.inner
            .fault
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Schema version after migration.
    pub(super) fn schema_version(&self) -> Result<i64, Error> {
        self.block(async {
            let c = self.client().await?;
            let row = c
                .query_one("SELECT version FROM herald_schema", &[])
                .await?;
            Ok(row.get(0))
        })
    }

    /// Applies the migrations the database has not seen, in one
    /// transaction under [`MIGRATION_LOCK`]: a second router starting at
    /// the same moment waits, then finds nothing to do.
    async fn migrate(&self) -> Result<(), Error> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS herald_schema (version BIGINT NOT NULL);
             INSERT INTO herald_schema (version) SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM herald_schema);",
        )
        .await?;
        let current: i64 = tx
            .query_one("SELECT version FROM herald_schema", &[])
            .await?
            .get(0);
        let supported = MIGRATIONS.len() as i64;
        if current > supported {
            return Err(Error::TooNew {
                found: current,
                supported,
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
            tx.batch_execute(sql).await?;
            tx.execute("UPDATE herald_schema SET version = $1", &[&(i as i64 + 1)])
                .await?;
        }
        tx.commit().await?;
        if current < supported {
            tracing::info!(
                database = %self.inner.url,
                from = current,
                to = supported,
                "PostgreSQL schema migrated"
            );
        }
        Ok(())
    }

    /// Takes the run of job `name` scheduled at `at_ms` for this router:
    /// true for exactly one router of those asking for the same time.
    pub(super) fn claim_scheduled_run(&self, name: &str, at_ms: i64) -> Result<bool, Error> {
        self.block(async {
            let c = self.client().await?;
            let n = c
                .execute(
                    "INSERT INTO cluster_jobs (name, last_run_ms) VALUES ($1, $2)
                     ON CONFLICT (name) DO UPDATE SET last_run_ms = excluded.last_run_ms
                     WHERE cluster_jobs.last_run_ms < excluded.last_run_ms",
                    &[&name, &at_ms],
                )
                .await?;
            Ok(n == 1)
        })
    }

    /// Runs `f` only if no other router holds advisory lock `key` now (a
    /// once-per-cluster job: cleanup, outage alerts); `None` when another
    /// does. The lock is the transaction's, released at its end.
    async fn once_per_cluster<T>(
        &self,
        key: i64,
        f: impl AsyncFnOnce(&deadpool_postgres::Transaction<'_>) -> Result<T, Error>,
    ) -> Result<Option<T>, Error> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let got: bool = tx
            .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&key])
            .await?
            .get(0);
        if !got {
            return Ok(None);
        }
        let out = f(&tx).await?;
        tx.commit().await?;
        Ok(Some(out))
    }
}

/// Renews this router's leases every third of a lease, so two renewals may
/// fail before another router takes its deliveries over; until the store
/// is gone.
async fn renew_leases_forever(store: std::sync::Weak<Inner>) {
    loop {
        let Some(lease) = store.upgrade().map(|s| s.lease) else {
            return;
        };
        tokio::time::sleep(lease / 3).await;
        let Some(inner) = store.upgrade() else { return };
        let pg = Postgres { inner };
        let renewed = pg.renew_leases().await;
        if let Err(e) = pg.noted(renewed) {
            tracing::debug!(error = %e, "leases not renewed");
        }
    }
}

/// A settlement waiting for the settler, with where its answer goes.
type Waiting = (
    Arc<Vec<Settled>>,
    tokio::sync::oneshot::Sender<Result<bool, Error>>,
);

/// Most requests one settling transaction takes.
const SETTLE_AT_ONCE: usize = 256;

/// Settles what queues, a transaction at a time, each taking everything
/// waiting (up to [`SETTLE_AT_ONCE`] requests); ends when the store is gone.
async fn settler(
    store: std::sync::Weak<Inner>,
    mut queue: tokio::sync::mpsc::UnboundedReceiver<Waiting>,
) {
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        while batch.iter().map(|(r, _)| r.len()).sum::<usize>() < SETTLE_AT_ONCE {
            match queue.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let Some(inner) = store.upgrade() else { return };
        let pg = Postgres { inner };
        let requests: Vec<&Settled> = batch.iter().flat_map(|(r, _)| r.iter()).collect();
        let result = pg.settle(&requests).await;
        for (_, done) in batch {
            let _ = done.send(result.clone());
        }
    }
}

/// This process's name in leases: `host:pid:random`, unique per start.
fn owner_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "herald".into());
    format!(
        "{host}:{}:{}",
        std::process::id(),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

#[cfg(test)]
pub(crate) mod test_server;

#[cfg(test)]
mod tests {
    use super::*;
    use test_server::TempPostgres;

    fn url(s: &str) -> DatabaseUrl {
        DatabaseUrl::parse(s).unwrap()
    }

    #[test]
    fn opens_migrates_and_two_routers_starting_together_do_not_race() {
        let server = TempPostgres::start();
        let db = server.new_database();
        let opened: Vec<Result<Postgres, Error>> = std::thread::scope(|s| {
            let a = s.spawn(|| Postgres::open(&url(&db)));
            let b = s.spawn(|| Postgres::open(&url(&db)));
            vec![a.join().unwrap(), b.join().unwrap()]
        });
        for store in &opened {
            let store = store.as_ref().expect("both open");
            assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as i64);
        }
        assert_eq!(
            server.psql(
                db.rsplit('/').next().unwrap(),
                "SELECT count(*) FROM herald_schema"
            ),
            "1"
        );
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let server = TempPostgres::start();
        let db = server.new_database();
        drop(Postgres::open(&url(&db)).unwrap());
        let name = db.rsplit('/').next().unwrap().to_owned();
        server.psql(&name, "UPDATE herald_schema SET version = 99");
        assert!(matches!(
            Postgres::open(&url(&db)),
            Err(Error::TooNew { found: 99, .. })
        ));
    }

    #[test]
    fn a_server_that_is_down_is_unreachable_not_a_crash() {
        let server = TempPostgres::start();
        let db = server.new_database();
        server.stop();
        let err = Postgres::open(&url(&db)).unwrap_err();
        assert!(err.is_unreachable(), "{err:?}");
        assert!(!err.to_string().contains("secret"));
    }
}
