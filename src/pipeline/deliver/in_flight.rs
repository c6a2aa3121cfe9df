//! Requests in flight, as the delivery loop counts them: per webhook (for
//! its `max_in_flight`) and by delivery (logged as interrupted when a stop
//! cuts them short).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use crate::store::DeliveryJob;

/// Requests in flight: how many per webhook (for its limit) and which
/// deliveries (logged as interrupted if a stop cuts them short). Shared
/// with the tasks sending them.
#[derive(Clone, Default)]
pub(super) struct InFlight(Arc<Mutex<Flying>>);

#[derive(Default)]
struct Flying {
    per_webhook: HashMap<i64, usize>,
    deliveries: HashSet<i64>,
}

/// One request counted in [`InFlight`] until dropped.
pub(super) struct InFlightGuard {
    map: InFlight,
    webhook_id: i64,
    deliveries: Vec<i64>,
}

impl InFlight {
    pub(super) fn start(&self, job: &DeliveryJob) -> InFlightGuard {
        let deliveries: Vec<i64> = job.items.iter().map(|i| i.delivery_id).collect();
        let mut f = self.0.lock().expect("in-flight lock");
        *f.per_webhook.entry(job.webhook_id).or_default() += 1;
        f.deliveries.extend(&deliveries);
        InFlightGuard {
            map: self.clone(),
            webhook_id: job.webhook_id,
            deliveries,
        }
    }

    pub(super) fn snapshot(&self) -> HashMap<i64, usize> {
        self.0.lock().expect("in-flight lock").per_webhook.clone()
    }

    /// The deliveries whose requests have not been answered yet.
    pub(super) fn deliveries(&self) -> Vec<i64> {
        let f = self.0.lock().expect("in-flight lock");
        let mut ids: Vec<i64> = f.deliveries.iter().copied().collect();
        ids.sort_unstable();
        ids
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        let mut f = self.map.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = f.per_webhook.get_mut(&self.webhook_id) {
            *n -= 1;
            if *n == 0 {
                f.per_webhook.remove(&self.webhook_id);
            }
        }
        for id in &self.deliveries {
            f.deliveries.remove(id);
        }
    }
}
