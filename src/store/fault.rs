//! What keeps the database from being written, in plain words: a full
//! disk, a read-only file, another process holding the write lock, or free
//! space below the watermark. Every write passes [`Watch::after_write`], so
//! the condition is known the moment it begins and cleared by the first
//! write that succeeds again; ingest asks [`Watch::check_space`] first, so
//! new events are refused before the disk fills to the last byte.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use super::{Error, Fault};
use crate::base::repeats;

/// The storage condition as `/healthz`, the API and the web admin show it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Condition {
    /// What is wrong.
    pub fault: Fault,
    /// What is wrong, in plain words, naming the database file.
    pub message: String,
    /// Since when (RFC 3339).
    pub since: String,
}

/// How often free space is measured at most.
const SPACE_EVERY: Duration = Duration::from_secs(1);

/// The store's view of its own storage. One per [`super::Store`].
pub(super) struct Watch {
    pub(super) path: PathBuf,
    /// Refuse new events below this many free bytes (0: never).
    pub(super) min_free: u64,
    busy_timeout: Duration,
    /// The write fault seen last, until a write succeeds.
    fault: Mutex<Option<(Condition, u64)>>,
    /// Free bytes, and when they were measured.
    space: Mutex<Option<(Instant, u64)>>,
    /// Whether `herald.storage.low` was raised and not yet answered by
    /// `herald.storage.ok`.
    pub(super) low_alerted: AtomicBool,
}

impl Watch {
    pub(super) fn new(path: &Path, min_free: u64, busy_timeout: Duration) -> Watch {
        Watch {
            path: path.to_owned(),
            min_free,
            busy_timeout,
            fault: Mutex::new(None),
            space: Mutex::new(None),
            low_alerted: AtomicBool::new(false),
        }
    }

    /// Turns an engine error that means "cannot write now" into
    /// [`Error::Storage`] and remembers it; a success clears what was
    /// remembered. The condition is logged when it begins and when it ends,
    /// never once per failed write.
    pub(super) fn after_write<T>(&self, result: Result<T, Error>) -> Result<T, Error> {
        match result {
            Ok(v) => {
                let mut fault = self.fault.lock().unwrap_or_else(|p| p.into_inner());
                // On a nearly full disk writes that fit come and go: the
                // beginning and the end are each logged at most once a minute.
                if let Some((c, failed)) = fault.take()
                    && let Some(held) = repeats::admit(&format!("storage ok: {}", c.message))
                {
                    tracing::info!(since = %c.since, failed_writes = failed, "the database can be written again ({}){}", c.message, repeats::summary(held));
                }
                Ok(v)
            }
            Err(e) => {
                let Some(kind) = e.engine_fault() else {
                    return Err(e);
                };
                let message = self.describe(kind);
                let mut fault = self.fault.lock().unwrap_or_else(|p| p.into_inner());
                match fault.as_mut() {
                    Some((c, failed)) if c.fault == kind => *failed += 1,
                    _ => {
                        if let Some(held) = repeats::admit(&format!("storage: {message}")) {
                            tracing::error!(error = %e, "{message}; writes are refused until it is fixed{}", repeats::summary(held));
                        }
                        *fault = Some((
                            Condition {
                                fault: kind,
                                message: message.clone(),
                                since: crate::base::event::now_rfc3339(),
                            },
                            1,
                        ));
                    }
                }
                Err(Error::Storage {
                    fault: kind,
                    message,
                })
            }
        }
    }

    /// Refuses new events while free space is below the watermark.
    pub(super) fn check_space(&self) -> Result<(), Error> {
        match self.low_space() {
            Some(message) => Err(Error::Storage {
                fault: Fault::LowSpace,
                message,
            }),
            None => Ok(()),
        }
    }

    /// The condition now: a write fault if one is remembered, else low
    /// space, else none.
    pub(super) fn condition(&self) -> Option<Condition> {
        let fault = self.fault.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((c, _)) = fault.as_ref() {
            return Some(c.clone());
        }
        drop(fault);
        self.low_space().map(|message| Condition {
            fault: Fault::LowSpace,
            message,
            since: crate::base::event::now_rfc3339(),
        })
    }

    /// Why new events are refused for space, if they are.
    pub(super) fn low_space(&self) -> Option<String> {
        if self.min_free == 0 {
            return None;
        }
        let free = self.free_bytes()?;
        (free < self.min_free).then(|| {
            format!(
                "the disk holding {} has {} MB free, below database.min_free_mb ({} MB); new events are refused until space is freed",
                self.path.display(),
                free / 1_000_000,
                self.min_free / 1_000_000
            )
        })
    }

    /// Free bytes on the database's file system, measured at most once a
    /// second; `None` when it cannot be measured (then nothing is refused).
    pub(super) fn free_bytes(&self) -> Option<u64> {
        let mut space = self.space.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, free)) = *space
            && at.elapsed() < SPACE_EVERY
        {
            return Some(free);
        }
        let free = free_space(&self.path)?;
        *space = Some((Instant::now(), free));
        Some(free)
    }

    fn describe(&self, fault: Fault) -> String {
        let path = self.path.display();
        match fault {
            Fault::DiskFull => format!("the disk holding {path} is full"),
            Fault::LowSpace => format!("the disk holding {path} is nearly full"),
            Fault::ReadOnly => {
                format!("the database {path} cannot be written (a read-only file or file system)")
            }
            Fault::Locked => format!(
                "another process has held the write lock on {path} for more than {:?} (database.busy_timeout)",
                self.busy_timeout
            ),
            // Only the PostgreSQL backend sees it; it describes it itself.
            Fault::Unreachable => format!("the database {path} cannot be reached"),
        }
    }
}

/// Bytes available to herald on the file system holding `path` (its
/// directory when the file does not exist yet).
fn free_space(path: &Path) -> Option<u64> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let st = rustix::fs::statvfs(dir).ok()?;
    Some(st.f_bavail.saturating_mul(st.f_frsize))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_space_is_measured_and_a_missing_directory_is_unknown() {
        let dir = tempfile::tempdir().unwrap();
        assert!(free_space(&dir.path().join("h.db")).is_some_and(|b| b > 0));
        assert_eq!(free_space(Path::new("/no/such/dir/h.db")), None);
    }

    #[test]
    fn below_the_watermark_new_events_are_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.db");
        let free = free_space(&path).unwrap();
        let watch = Watch::new(&path, free.saturating_mul(2), Duration::from_secs(1));
        let e = watch.check_space().unwrap_err();
        assert!(
            matches!(
                e,
                Error::Storage {
                    fault: Fault::LowSpace,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("database.min_free_mb"), "{e}");
        assert_eq!(watch.condition().unwrap().fault, Fault::LowSpace);
        let roomy = Watch::new(&path, 1, Duration::from_secs(1));
        roomy.check_space().unwrap();
        assert_eq!(roomy.condition(), None);
    }
}
