//! The settler: one task that takes answered attempts from the requests
//! that made them and hands the store whole batches to settle in one write
//! (log entries, deliveries' state, webhooks' health). A request ends as
//! soon as its answer is in; its place among the unsettled attempts (see
//! [`super::MAX_UNSETTLED`]) is given back once its batch has committed.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, mpsc};
use tokio_util::sync::CancellationToken;

use crate::base::repeats;
use crate::store::{Settled, Store};

/// Most requests settled in one write.
const MAX_BATCH: usize = 256;
/// Pause after a failed write before trying again.
const ON_ERROR: Duration = Duration::from_secs(1);

/// An answered attempt on its way to the settler.
pub(super) struct Answered {
    /// Its log entries and outcomes.
    pub(super) settled: Settled,
    /// Its place among the unsettled attempts.
    pub(super) place: OwnedSemaphorePermit,
}

/// What the settler tells when a batch has committed.
pub(super) struct Listeners {
    /// The health monitor, when a health changed in a way it must look at.
    pub(super) health: Arc<Notify>,
    /// The delivery loop: an ordered webhook's next event waits for this.
    pub(super) settled: Arc<Notify>,
}

/// Settles what arrives on `answered` until every sender is gone. When a
/// batch's write fails, its requests are settled one at a time (see
/// [`settle_alone`]); once `shutdown` has begun a refused write is given
/// up: its deliveries are still pending and sent again after the next start.
pub(super) async fn run(
    store: Store,
    mut answered: mpsc::UnboundedReceiver<Answered>,
    listeners: Listeners,
    shutdown: CancellationToken,
) {
    while let Some(first) = answered.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match answered.try_recv() {
                Ok(a) => batch.push(a),
                Err(_) => break,
            }
        }
        let (requests, places): (Vec<Settled>, Vec<OwnedSemaphorePermit>) =
            batch.into_iter().map(|a| (a.settled, a.place)).unzip();
        let requests = Arc::new(requests);
        let poke = match store.finish_attempts(requests.clone()).await {
            Ok(poke) => poke,
            Err(e) => {
                note(&e);
                let mut poke = false;
                for request in requests.iter() {
                    poke |= settle_alone(&store, request.clone(), &shutdown).await;
                }
                poke
            }
        };
        drop(places);
        if poke {
            listeners.health.notify_one();
        }
        listeners.settled.notify_one();
    }
}

/// Tries of a request whose write fails for another reason than the
/// storage (a full disk, a lock, a read-only file, which are waited out):
/// past them, it is given up so it cannot hold the others.
const MAX_TRIES: usize = 10;

/// Settles one request, trying again every second while the database
/// refuses and shutdown has not begun. Returns the health poke. A write
/// that keeps failing for another reason than the storage is given up
/// after [`MAX_TRIES`]: its deliveries stay claimed (not sent again) until
/// the next start, which sends them again.
async fn settle_alone(store: &Store, request: Settled, shutdown: &CancellationToken) -> bool {
    let ids: Vec<i64> = request.iter().filter_map(|(e, _)| e.delivery_id).collect();
    let request = Arc::new(vec![request]);
    let mut tries = 0;
    loop {
        match store.finish_attempts(request.clone()).await {
            Ok(poke) => return poke,
            Err(e) => {
                note(&e);
                tries += 1;
                if !matches!(e, crate::store::Error::Storage { .. }) && tries >= MAX_TRIES {
                    tracing::error!(deliveries = ?ids, error = %e, "giving up recording an attempt; its deliveries are sent again after the next start");
                    return false;
                }
                tokio::select! {
                    _ = tokio::time::sleep(ON_ERROR) => {}
                    _ = shutdown.cancelled() => return false,
                }
            }
        }
    }
}

fn note(e: &crate::store::Error) {
    if let Some(held) = repeats::admit(&format!("record: {e}")) {
        tracing::error!(error = %e, "cannot record attempts; trying again{}", repeats::summary(held));
    }
}
