//! The listener's view of the API keys, in memory: a request's key is
//! checked without a database read. The view is read again every
//! [`REFRESH`] (so a key revoked by `herald admin api-key revoke` in another
//! process is refused within a second), at once after a create or revoke
//! through this process, and when an unknown key arrives — at most
//! [`MISS_READS_PER_SECOND`] times a second, so unknown keys cannot make
//! every request a read.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::store::{Error, LiveKey, Store};

/// How often the view is read again.
pub const REFRESH: Duration = Duration::from_millis(500);
/// Reads caused by unknown keys, at most, per second (and at once).
const MISS_READS_PER_SECOND: f64 = 20.0;

/// A token bucket for reads caused by unknown keys.
struct Budget {
    tokens: f64,
    at: Instant,
}

impl Budget {
    /// Takes one read if the budget has one.
    fn take(&mut self) -> bool {
        let now = Instant::now();
        self.tokens = (self.tokens
            + now.duration_since(self.at).as_secs_f64() * MISS_READS_PER_SECOND)
            .min(MISS_READS_PER_SECOND);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Live keys by digest, with when they were read.
pub struct KeyCache {
    store: Store,
    keys: RwLock<Arc<HashMap<String, Arc<LiveKey>>>>,
    /// Bumped whenever a read finds the set of live keys changed, so open
    /// streams look again at whether their key still holds.
    generation: tokio::sync::watch::Sender<u64>,
    /// When the last read began.
    loaded: Mutex<Option<Instant>>,
    /// One reload at a time; others wait for it and use its result.
    reloading: tokio::sync::Mutex<()>,
    /// Reads left for unknown keys.
    misses: Mutex<Budget>,
}

impl KeyCache {
    /// An empty view of `store`'s keys; [`KeyCache::reload`] fills it.
    pub fn new(store: Store) -> KeyCache {
        KeyCache {
            store,
            keys: RwLock::new(Arc::default()),
            generation: tokio::sync::watch::Sender::new(0),
            loaded: Mutex::new(None),
            reloading: tokio::sync::Mutex::new(()),
            misses: Mutex::new(Budget {
                tokens: MISS_READS_PER_SECOND,
                at: Instant::now(),
            }),
        }
    }

    /// Reads the live keys again.
    pub async fn reload(&self) -> Result<(), Error> {
        let _one = self.reloading.lock().await;
        self.load().await
    }

    /// Reads the live keys; the caller holds `reloading`.
    async fn load(&self) -> Result<(), Error> {
        let began = Instant::now();
        let keys = self.store.run(|s| s.live_api_keys()).await?;
        let keys: HashMap<String, Arc<LiveKey>> = keys
            .into_iter()
            .map(|k| (k.digest.clone(), Arc::new(k)))
            .collect();
        let changed = {
            let mut held = self.keys.write().unwrap_or_else(|p| p.into_inner());
            let changed = held.len() != keys.len() || keys.keys().any(|d| !held.contains_key(d));
            *held = Arc::new(keys);
            changed
        };
        if changed {
            self.generation.send_modify(|g| *g += 1);
        }
        *self.loaded.lock().unwrap_or_else(|p| p.into_inner()) = Some(began);
        Ok(())
    }

    /// Reads the keys again after this process created or revoked one, so
    /// the change holds at once; a failed read is left to the next refresh.
    pub async fn changed(&self) {
        if let Err(e) = self.reload().await {
            tracing::warn!(error = %e, "cannot read the API keys again; the next refresh will");
        }
    }

    /// The live key with this digest, `None` when there is none.
    pub async fn lookup(&self, digest: &str) -> Result<Option<Arc<LiveKey>>, Error> {
        if let Some(key) = self.known(digest) {
            return Ok(Some(key));
        }
        // Perhaps made a moment ago by the CLI: read the keys once more,
        // within a budget, so a flood of unknown keys costs at most
        // MISS_READS_PER_SECOND reads (past it they are refused from memory).
        if !self.misses.lock().unwrap_or_else(|p| p.into_inner()).take() {
            return Ok(None);
        }
        let arrived = Instant::now();
        let _one = self.reloading.lock().await;
        // A read that began after this request arrived has its answer.
        let loaded = *self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        if loaded.is_none_or(|at| at < arrived) {
            self.load().await?;
        }
        Ok(self.known(digest))
    }

    /// The live key with this digest as last read (no database read).
    pub fn known(&self, digest: &str) -> Option<Arc<LiveKey>> {
        self.keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(digest)
            .cloned()
    }

    /// Changes whenever a read finds a key made or revoked: an open stream
    /// waits on it and then checks [`KeyCache::known`] for its key.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// Reads the keys every [`REFRESH`] until `shutdown`. A failed read is
    /// logged once and the last view kept: a key revoked meanwhile by
    /// another process works until the database can be read again.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut failing = false;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(REFRESH) => {}
            }
            match self.reload().await {
                Ok(()) => failing = false,
                Err(e) if !failing => {
                    failing = true;
                    tracing::error!(error = %e, "cannot read the API keys; using the last ones read");
                }
                Err(_) => {}
            }
        }
    }
}

/// Who made a request to the API, as the gate let it through: handlers
/// that depend on it (the live stream's limits) read it from the request's
/// extensions.
#[derive(Debug, Clone)]
pub enum Caller {
    /// A live API key.
    Key(Arc<LiveKey>),
    /// The web admin's session (an admin).
    Session,
}

/// The `Authorization: Bearer …` token of a request, if it sent one.
pub fn bearer_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// A refusal in the API's error shape; a 401 also names the scheme
/// (`WWW-Authenticate: Bearer`).
pub fn refusal(status: axum::http::StatusCode, message: &str) -> axum::response::Response {
    use axum::response::IntoResponse;
    let mut r = super::ApiError::new(status, message).into_response();
    if status == axum::http::StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            axum::http::header::WWW_AUTHENTICATE,
            axum::http::HeaderValue::from_static("Bearer realm=\"herald\""),
        );
    }
    r
}
