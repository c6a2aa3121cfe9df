//! Requests in flight, as the delivery loop counts them: per webhook (for
//! its `max_in_flight`) and by delivery (logged as interrupted when a stop
//! cuts them short).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::store::DeliveryJob;

/// Requests in flight: how many per webhook (for its limit), and the
/// deliveries of requests that ended without their answer (cut short by a
/// stop: logged as interrupted). Shared with the tasks sending them.
#[derive(Clone, Default)]
pub(super) struct InFlight(Arc<Mutex<Flying>>);

#[derive(Default)]
struct Flying {
    per_webhook: HashMap<i64, usize>,
    cut_short: Vec<i64>,
}

/// One request counted in [`InFlight`] until dropped.
pub(super) struct InFlightGuard {
    map: InFlight,
    webhook_id: i64,
    deliveries: Vec<i64>,
    answered: bool,
}

impl InFlight {
    pub(super) fn start(&self, job: &DeliveryJob) -> InFlightGuard {
        let deliveries: Vec<i64> = job.items.iter().map(|i| i.delivery_id).collect();
        let mut f = self.0.lock().expect("in-flight lock");
        *f.per_webhook.entry(job.webhook_id).or_default() += 1;
        InFlightGuard {
            map: self.clone(),
            webhook_id: job.webhook_id,
            deliveries,
            answered: false,
        }
    }

    pub(super) fn snapshot(&self) -> HashMap<i64, usize> {
        self.0.lock().expect("in-flight lock").per_webhook.clone()
    }

    /// The deliveries of requests that ended before their answer (aborted
    /// by a stop, or panicked), since the last call.
    pub(super) fn take_cut_short(&self) -> Vec<i64> {
        let mut f = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let mut ids = std::mem::take(&mut f.cut_short);
        ids.sort_unstable();
        ids
    }
}

impl InFlightGuard {
    /// The request's attempt is over (answered, failed, or nothing to
    /// send): if its task is aborted from now on, it was not cut short.
    pub(super) fn answered(&mut self) {
        self.answered = true;
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
        if !self.answered {
            f.cut_short.extend(&self.deliveries);
        }
    }
}
