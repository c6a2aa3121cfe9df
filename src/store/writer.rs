//! The store's one writer: a thread that owns the write connection and
//! commits whatever writes have queued up (up to [`MAX_BATCH`]) in one
//! transaction — group commit. While one batch commits, the next queues.
//!
//! Each write runs in its own savepoint: one that fails is rolled back alone
//! and fails only its caller (so store methods need no transaction of their
//! own: what one write does is kept whole or not at all). A commit that fails fails every caller in the
//! batch, and none of the batch is kept. A caller's call returns only once
//! its batch is committed, so what it acknowledges is in the database.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak, mpsc};
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::error::{DbError, Error};

/// Most writes committed in one transaction.
const MAX_BATCH: usize = 256;

/// One queued write, type-erased for the queue.
trait Job: Send {
    /// Runs the write on the connection (inside the batch's transaction).
    /// Returns whether it succeeded.
    fn run(&mut self, conn: &mut Connection) -> bool;
    /// Tells the caller: its own result, unless the batch's commit failed.
    fn finish(self: Box<Self>, committed: &Result<(), Error>);
    /// Whether the write may wait [`LINGER`] for others to share its commit.
    fn can_wait(&self) -> bool;
}

struct Write<T, F> {
    f: Option<F>,
    result: Option<Result<T, Error>>,
    reply: Reply<T>,
    can_wait: bool,
}

/// How long a batch of writes nobody is waiting on to go on (settled
/// attempts) waits for more to share its commit: a commit rewrites the
/// same pages (log, deliveries, their indexes) and syncs once, whether it
/// carries two writes or two hundred. A write someone waits on (an event
/// to acknowledge, a saved webhook) commits at once, with whatever queued.
const LINGER: Duration = Duration::from_millis(1);

/// Where a write's result goes: a blocked thread, or an awaiting task
/// (woken directly, without a thread of the blocking pool in between).
enum Reply<T> {
    Blocking(mpsc::SyncSender<Result<T, Error>>),
    Async(tokio::sync::oneshot::Sender<Result<T, Error>>),
}

impl<T, F> Job for Write<T, F>
where
    T: Send,
    F: FnOnce(&mut Connection) -> Result<T, Error> + Send,
{
    fn run(&mut self, conn: &mut Connection) -> bool {
        let Some(f) = self.f.take() else {
            return false;
        };
        // A panicking write fails its caller, not the writer.
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| f(conn)))
            .unwrap_or_else(|_| Err(Error::Task("a database write panicked".into())));
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn can_wait(&self) -> bool {
        self.can_wait
    }

    fn finish(self: Box<Self>, committed: &Result<(), Error>) {
        let result = match (self.result, committed) {
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(_)), Err(e)) | (None, Err(e)) => Err(e.clone()),
            (Some(Ok(value)), Ok(())) => Ok(value),
            (None, Ok(())) => Err(Error::Task("the write was not run".into())),
        };
        // The caller may have given up waiting (its thread or task ended):
        // nothing to tell.
        match self.reply {
            Reply::Blocking(reply) => drop(reply.send(result)),
            Reply::Async(reply) => drop(reply.send(result)),
        }
    }
}

/// Longest a WAL truncation waits for readers to leave the WAL.
const TRUNCATE_WAIT: Duration = Duration::from_millis(50);
/// After a truncation that readers prevented, the next try waits this long.
const TRUNCATE_RETRY: Duration = Duration::from_secs(1);

/// How often committed pages are copied from the WAL into the database.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);

/// The handle on the writer thread. Cheap to clone; the writer and the
/// checkpointer end when the last handle is dropped.
#[derive(Clone)]
pub(super) struct Writer {
    queue: mpsc::Sender<Box<dyn Job>>,
    _alive: Arc<()>,
}

impl Writer {
    /// Starts the writer thread on `conn` (opened, migrated, in WAL mode,
    /// on the database at `path`, waiting `busy_timeout` for other writers),
    /// and the checkpointer beside it.
    pub(super) fn start(
        conn: Connection,
        path: &Path,
        busy_timeout: Duration,
    ) -> Result<Writer, Error> {
        let alive = Arc::new(());
        let mut wal_path = path.as_os_str().to_owned();
        wal_path.push("-wal");
        let wal = WalLimit {
            path: PathBuf::from(wal_path),
            busy_timeout,
            retry: None,
        };
        // Checkpoints (copying the WAL into the database, with its fsync)
        // run on a connection of their own, so no commit waits for one.
        // Without it the writer checkpoints itself, as SQLite does by default.
        match Connection::open(path) {
            Ok(checkpoints) => {
                let watch = Arc::downgrade(&alive);
                let started = std::thread::Builder::new()
                    .name("herald-db-checkpoint".into())
                    .spawn(move || checkpoint(checkpoints, watch));
                if started.is_ok() {
                    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot open a connection for checkpoints; the writer checkpoints itself")
            }
        }
        let (queue, jobs) = mpsc::channel::<Box<dyn Job>>();
        std::thread::Builder::new()
            .name("herald-db-writer".into())
            .spawn(move || run(conn, jobs, wal))
            .map_err(|e| Error::Task(format!("cannot start the database writer: {e}")))?;
        Ok(Writer {
            queue,
            _alive: alive,
        })
    }

    /// Queues `f` and blocks until its batch is committed; returns its
    /// result, or why it (or its batch) was not kept.
    pub(super) fn write<T, F>(&self, f: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, Error> + Send + 'static,
    {
        let (reply, answer) = mpsc::sync_channel(1);
        self.submit(f, Reply::Blocking(reply), false)?;
        answer.recv().map_err(|_| stopped())?
    }

    /// [`Writer::write`] for async callers: awaits the commit without
    /// blocking a thread. With `can_wait`, the write may wait up to
    /// [`LINGER`] for others to share its commit (for writes no one is
    /// held up by).
    pub(super) async fn write_async<T, F>(&self, f: F, can_wait: bool) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, Error> + Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.submit(f, Reply::Async(reply), can_wait)?;
        answer.await.map_err(|_| stopped())?
    }

    fn submit<T, F>(&self, f: F, reply: Reply<T>, can_wait: bool) -> Result<(), Error>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, Error> + Send + 'static,
    {
        let job = Box::new(Write {
            f: Some(f),
            result: None,
            reply,
            can_wait,
        });
        self.queue.send(job).map_err(|_| stopped())
    }
}

fn stopped() -> Error {
    Error::Task("the database writer has stopped".into())
}

/// WAL frames (pages) past which the writer empties the WAL itself between
/// two batches (a TRUNCATE checkpoint): under writes that never pause, the
/// checkpointer's PASSIVE checkpoints never catch up, and the WAL grew
/// without end (1.8 GB in a 200,000-event backlog). 4,096 frames are 16 MiB.
const WAL_TRUNCATE_FRAMES: i64 = 4096;

/// The checkpointer thread: every [`CHECKPOINT_EVERY`], a PASSIVE
/// checkpoint (it never waits for readers or the writer), until the
/// writer's handles are gone. A failure is logged once until one succeeds
/// again. (Under writes that never pause it cannot catch up; the writer
/// then empties the WAL itself, see [`WAL_TRUNCATE_FRAMES`].)
fn checkpoint(conn: Connection, alive: Weak<()>) {
    let mut failing = false;
    while alive.strong_count() > 0 {
        std::thread::sleep(CHECKPOINT_EVERY);
        match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            Ok(()) => failing = false,
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "a WAL checkpoint failed; trying again");
            }
            Err(_) => {}
        }
    }
}

/// Keeps the WAL file within [`WAL_TRUNCATE_FRAMES`]: the writer empties it
/// between two batches when it has grown past that.
struct WalLimit {
    path: PathBuf,
    /// The writer connection's usual busy timeout, restored afterwards.
    busy_timeout: Duration,
    /// After a truncation that could not finish: not before this time,
    /// unless the WAL has grown past the size given.
    retry: Option<(Instant, u64)>,
}

impl WalLimit {
    /// One stat per batch; the copy (about 16 MiB) holds the next batch for
    /// some milliseconds. A reader in the middle of a long read (a backup, a
    /// shell) makes it give up after [`TRUNCATE_WAIT`]; it tries again after
    /// [`TRUNCATE_RETRY`] or once another quarter of the limit was written,
    /// whichever comes first — so a try that lost to the checkpoint thread
    /// does not let the WAL grow for a whole second, and a long reader costs
    /// at most one wait per 4 MiB written.
    fn after_batch(&mut self, conn: &Connection) {
        let limit = WAL_TRUNCATE_FRAMES as u64 * 4096;
        let Ok(size) = std::fs::metadata(&self.path).map(|m| m.len()) else {
            return;
        };
        let waiting = self
            .retry
            .is_some_and(|(at, grown)| Instant::now() < at && size < grown);
        if waiting || size <= limit {
            return;
        }
        let truncated = conn.busy_timeout(TRUNCATE_WAIT).and_then(|()| {
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                r.get::<_, i64>(0)
            })
        });
        let _ = conn.busy_timeout(self.busy_timeout);
        let later = Some((Instant::now() + TRUNCATE_RETRY, size + limit / 4));
        self.retry = None;
        match truncated {
            Ok(0) => {}
            Ok(_) => {
                self.retry = later;
                tracing::debug!("the WAL could not be emptied now (a long read); trying again");
            }
            Err(e) => {
                self.retry = later;
                tracing::warn!(error = %e, "cannot empty the WAL; trying again later");
            }
        }
    }
}

/// The writer thread: takes what has queued up, runs it in one transaction,
/// commits, tells each caller; keeps the WAL within its limit.
fn run(mut conn: Connection, jobs: mpsc::Receiver<Box<dyn Job>>, mut wal: WalLimit) {
    while let Ok(first) = jobs.recv() {
        let linger_until = Instant::now() + LINGER;
        let mut can_wait = first.can_wait();
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            let next = match jobs.try_recv() {
                Ok(job) => Ok(job),
                Err(mpsc::TryRecvError::Empty) if can_wait => {
                    match linger_until.checked_duration_since(Instant::now()) {
                        Some(left) => jobs.recv_timeout(left).map_err(|_| ()),
                        None => Err(()),
                    }
                }
                Err(_) => Err(()),
            };
            match next {
                Ok(job) => {
                    can_wait &= job.can_wait();
                    batch.push(job);
                }
                Err(()) => break,
            }
        }
        let committed = commit_batch(&mut conn, &mut batch);
        for job in batch {
            job.finish(&committed);
        }
        wal.after_batch(&conn);
    }
}

/// Runs `batch` in one transaction, each write in a savepoint of its own.
fn commit_batch(conn: &mut Connection, batch: &mut [Box<dyn Job>]) -> Result<(), Error> {
    // Cached: parsing these four statements for every write cost more
    // than some writes themselves.
    let control = |conn: &Connection, sql: &str| conn.prepare_cached(sql)?.execute([]).map(drop);
    let mut transaction = || -> rusqlite::Result<()> {
        control(conn, "BEGIN IMMEDIATE")?;
        for job in batch.iter_mut() {
            control(conn, "SAVEPOINT write")?;
            if !job.run(conn) {
                control(conn, "ROLLBACK TO write")?;
            }
            control(conn, "RELEASE write")?;
        }
        control(conn, "COMMIT")
    };
    transaction().map_err(|e| {
        // Nothing of the batch is kept; the connection is ready for the next.
        if !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        Error::NotCommitted(DbError::new(e))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer on a fresh file with `schema`, and a reader of the same file.
    fn writer(schema: &str) -> (tempfile::TempDir, Writer, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.pragma_update(None, "foreign_keys", "ON").unwrap();
        conn.execute_batch(schema).unwrap();
        let reader = Connection::open(&path).unwrap();
        (
            dir,
            Writer::start(conn, &path, Duration::from_secs(10)).unwrap(),
            reader,
        )
    }

    fn count(c: &Connection, sql: &str) -> i64 {
        c.query_row(sql, [], |r| r.get(0)).unwrap()
    }

    /// Writes queued behind a slow one are committed together, keep each
    /// caller's order, and a failing write fails alone with nothing of it
    /// kept.
    #[test]
    fn queued_writes_commit_together_in_order_and_fail_alone() {
        let (_dir, w, reader) = writer(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, who INTEGER, n INTEGER, UNIQUE (who, n));",
        );
        // Holds the writer while the others queue.
        let slow = {
            let w = w.clone();
            std::thread::spawn(move || {
                w.write(|c| {
                    std::thread::sleep(Duration::from_millis(200));
                    c.execute("INSERT INTO t (who, n) VALUES (-1, 0)", [])?;
                    Ok(())
                })
            })
        };
        std::thread::sleep(Duration::from_millis(50));
        let callers: Vec<_> = (0..8)
            .map(|who| {
                let w = w.clone();
                std::thread::spawn(move || {
                    (0..5)
                        .map(|n| {
                            // Caller 3's third write breaks the unique key after
                            // writing a row of its own: only it fails.
                            w.write(move |c| {
                                c.execute("INSERT INTO t (who, n) VALUES (?1, ?2)", [who, n])?;
                                if who == 3 && n == 2 {
                                    c.execute("INSERT INTO t (who, n) VALUES (?1, ?2)", [who, 0])?;
                                }
                                Ok(c.last_insert_rowid())
                            })
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        slow.join().unwrap().unwrap();
        for (who, caller) in callers.into_iter().enumerate() {
            let results = caller.join().unwrap();
            let mut last = 0;
            for (n, r) in results.iter().enumerate() {
                if who == 3 && n == 2 {
                    let e = r.as_ref().unwrap_err().to_string();
                    assert!(e.contains("UNIQUE"), "{e}");
                    continue;
                }
                let id = *r.as_ref().unwrap();
                assert!(id > last, "caller {who}'s writes out of order");
                last = id;
            }
        }
        assert_eq!(count(&reader, "SELECT count(*) FROM t"), 1 + 8 * 5 - 1);
        assert_eq!(
            count(&reader, "SELECT count(*) FROM t WHERE who = 3 AND n = 2"),
            0,
            "the failed write's first row was kept"
        );
    }

    /// A commit that fails (here a deferred foreign key, checked only at
    /// COMMIT) fails every write of the batch, keeps none of them, and the
    /// writer goes on with the next batch.
    #[test]
    fn a_failed_commit_fails_every_caller_and_keeps_nothing() {
        let (_dir, w, reader) = writer(
            "CREATE TABLE parent (id INTEGER PRIMARY KEY);
             CREATE TABLE child (id INTEGER PRIMARY KEY,
                 parent INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED);",
        );
        let w = Arc::new(w);
        let slow = {
            let w = w.clone();
            std::thread::spawn(move || {
                w.write(|c| {
                    std::thread::sleep(Duration::from_millis(200));
                    c.execute("INSERT INTO parent (id) VALUES (1)", [])?;
                    Ok(())
                })
            })
        };
        std::thread::sleep(Duration::from_millis(50));
        let batch: Vec<_> = (0..4)
            .map(|i| {
                let w = w.clone();
                std::thread::spawn(move || {
                    w.write(move |c| {
                        // Write 2 points at a parent that does not exist.
                        let parent = if i == 2 { 99 } else { 1 };
                        c.execute("INSERT INTO child (parent) VALUES (?1)", [parent])?;
                        Ok(())
                    })
                })
            })
            .collect();
        slow.join().unwrap().unwrap();
        for caller in batch {
            let e = caller.join().unwrap().unwrap_err();
            assert!(matches!(e, Error::NotCommitted(_)), "{e}");
            assert!(e.to_string().contains("FOREIGN KEY"), "{e}");
        }
        assert_eq!(count(&reader, "SELECT count(*) FROM child"), 0);
        w.write(|c| Ok(c.execute("INSERT INTO child (parent) VALUES (1)", [])?))
            .unwrap();
        assert_eq!(count(&reader, "SELECT count(*) FROM child"), 1);
    }

    #[test]
    fn a_panicking_write_fails_its_caller_only() {
        let (_dir, w, reader) = writer("CREATE TABLE t (id INTEGER PRIMARY KEY);");
        let e = w
            .write(|_| -> Result<(), Error> { panic!("planted") })
            .unwrap_err();
        assert!(e.to_string().contains("panicked"), "{e}");
        w.write(|c| Ok(c.execute("INSERT INTO t DEFAULT VALUES", [])?))
            .unwrap();
        assert_eq!(count(&reader, "SELECT count(*) FROM t"), 1);
    }

    /// Writes that never pause (four threads, 64 MiB in all) do not grow the
    /// WAL without end: the checkpointer empties it past its limit.
    #[test]
    fn the_wal_stays_bounded_under_writes_that_never_pause() {
        let (dir, w, _reader) = writer("CREATE TABLE t (v BLOB);");
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let w = w.clone();
                std::thread::spawn(move || {
                    for _ in 0..200 {
                        w.write(|c| {
                            let mut s =
                                c.prepare_cached("INSERT INTO t VALUES (zeroblob(4000))")?;
                            for _ in 0..20 {
                                s.execute([])?;
                            }
                            Ok(())
                        })
                        .unwrap();
                    }
                })
            })
            .collect();
        let wal = dir.path().join("w.db-wal");
        let mut largest = 0;
        while threads.iter().any(|t| !t.is_finished()) {
            largest = largest.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
            std::thread::sleep(Duration::from_millis(20));
        }
        for t in threads {
            t.join().unwrap();
        }
        // 16,000 rows of 4 KB: 64 MiB went through the WAL.
        let limit = (WAL_TRUNCATE_FRAMES as u64) * 4096 * 5 / 2;
        assert!(
            largest < limit,
            "the WAL reached {largest} bytes (limit {limit})"
        );
    }

    /// A reader that holds an old snapshot (a backup, a shell) keeps the WAL
    /// from being emptied: writes go on meanwhile, and once the reader has
    /// left the next writes past the limit empty it.
    #[test]
    fn a_long_reader_delays_truncation_without_stopping_writes() {
        let (dir, w, reader) = writer("CREATE TABLE t (v BLOB);");
        let write_mib = |mib: usize| {
            for _ in 0..mib {
                w.write(|c| {
                    let mut s = c.prepare_cached("INSERT INTO t VALUES (zeroblob(4000))")?;
                    for _ in 0..256 {
                        s.execute([])?;
                    }
                    Ok(())
                })
                .unwrap();
            }
        };
        let wal = dir.path().join("w.db-wal");
        let wal_size = || std::fs::metadata(&wal).unwrap().len();
        reader.execute_batch("BEGIN").unwrap();
        assert_eq!(count(&reader, "SELECT count(*) FROM t"), 0);
        write_mib(40);
        let limit = WAL_TRUNCATE_FRAMES as u64 * 4096;
        assert!(
            wal_size() > 2 * limit,
            "the WAL was emptied under a reader's snapshot"
        );
        assert_eq!(
            count(&reader, "SELECT count(*) FROM t"),
            0,
            "the snapshot moved"
        );
        reader.execute_batch("COMMIT").unwrap();
        // Another quarter of the limit written lets the writer try again.
        write_mib(8);
        assert!(
            wal_size() < limit,
            "the WAL was not emptied: {} bytes",
            wal_size()
        );
        assert_eq!(count(&reader, "SELECT count(*) FROM t"), 48 * 256);
    }
}
