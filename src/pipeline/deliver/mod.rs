//! The deliverer: claims due deliveries (within the global and per-webhook
//! limits), renders each request, sends it, decides by the webhook's retry
//! policy, and records the attempt in the event log together with the
//! deliveries' new state and the webhook's health.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::base::event::{Event, now_rfc3339};
use crate::base::repeats;
use crate::engines::auth::{self, token::TokenCache};
use crate::engines::render::CompiledRequest;
use crate::engines::retry::{self, Decision, Failure};
use crate::engines::sign;
use crate::engines::{http as client, mask};

mod in_flight;
mod logged;
mod settler;
use crate::spec::webhook::Webhook;
use crate::store::{
    AttemptDetail, DeliveryJob, Error as StoreError, NewLogEntry, Outcome, Store, now_ms,
};
use in_flight::InFlight;
pub use logged::credential_forms;
use logged::detail;

/// Longest wait between looks for due deliveries when nothing wakes us.
const IDLE: Duration = Duration::from_secs(1);
/// Pause after a storage error.
const ON_ERROR: Duration = Duration::from_secs(1);
/// Shortest sleep before a due time, so a due time in the past cannot spin.
const MIN_WAIT_MS: i64 = 5;
/// Times the loop lets other tasks run between a wake-up and its claim pass.
const YIELDS_BEFORE_A_PASS: usize = 2;
/// Most answered attempts waiting for their settlement to commit. A
/// request's slot is free once its answer is in (the settlement commits
/// with others meanwhile); past this many, answered requests keep their
/// slots until the writer catches up. After a crash, at most the requests
/// in flight and these are sent twice.
pub const MAX_UNSETTLED: usize = 256;

/// A webhook with its templates compiled, cached until the webhook changes.
struct Prepared {
    updated_at: String,
    webhook: Arc<Webhook>,
    compiled: Result<Arc<CompiledRequest>, String>,
}

/// Settings of the deliverer.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Requests in flight at once, over all webhooks.
    pub concurrency: usize,
    /// How long in-flight requests may finish on shutdown.
    pub shutdown_grace: Duration,
    /// Largest body kept in the log.
    pub max_logged_body_bytes: usize,
    /// Longest wait a `Retry-After` answer can ask for.
    pub max_retry_after: Duration,
    /// The addresses requests may go to (the SSRF guard).
    pub networks: client::guard::NetworkGuard,
}

/// Sends deliveries. Cheap to clone.
#[derive(Clone)]
pub struct Deliverer {
    store: Store,
    client: client::Client,
    settings: Settings,
    cache: Arc<Mutex<HashMap<i64, Arc<Prepared>>>>,
    tokens: TokenCache,
    shutdown: CancellationToken,
    /// Told when an attempt changed a webhook's health (see [`crate::pipeline::health`]).
    health: Arc<Notify>,
}

/// The result of a test send, as `herald test --json` and
/// `POST /api/v1/webhooks/{id}/test` answer it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct TestReport {
    /// `delivered` or `failed`.
    pub outcome: &'static str,
    /// The sample event's fresh uuid.
    pub event_uuid: String,
    /// The sample event's type.
    pub event_type: String,
    /// Which sample it was made from (`templates/samples/ticket.login.json`,
    /// or the generic sample for a type herald has none of).
    pub sample: String,
    /// The endpoint's status, when it answered.
    pub http_status: Option<u16>,
    /// Time from send to answer.
    pub duration_ms: i64,
    /// Why it failed, in plain words.
    pub error: Option<String>,
    /// Request and response, when the webhook logs them (secrets masked).
    pub detail: Option<AttemptDetail>,
}

impl TestReport {
    /// Whether the endpoint accepted the event.
    pub fn delivered(&self) -> bool {
        self.outcome == "delivered"
    }
}

impl From<&NewLogEntry> for TestReport {
    fn from(e: &NewLogEntry) -> Self {
        TestReport {
            outcome: if e.delivered { "delivered" } else { "failed" },
            event_uuid: e.event_uuid.clone(),
            event_type: e.event_type.clone(),
            sample: crate::engines::render::samples::sample_source(&e.event_type),
            http_status: e.http_status,
            duration_ms: e.duration_ms,
            error: e.error.clone(),
            detail: e.detail.clone(),
        }
    }
}

/// How one send went, before it is written for each event it carried.
struct Sent {
    /// The log entry's shared part (status, duration, error, detail).
    entry: NewLogEntry,
    /// Why it failed, for the retry policy; `None` when delivered.
    failure: Option<Failure>,
}

impl Deliverer {
    /// A deliverer over `store`, stopping when `shutdown` is cancelled.
    /// `health` is notified when an attempt changes a webhook's health.
    /// Fails when the HTTP client cannot be set up (no CA certificates).
    pub fn new(
        store: Store,
        settings: Settings,
        shutdown: CancellationToken,
        health: Arc<Notify>,
    ) -> Result<Deliverer, client::SetupError> {
        let client = client::Client::new(settings.networks.clone())?;
        Ok(Deliverer {
            store,
            tokens: TokenCache::new(client.clone()),
            client,
            settings,
            cache: Arc::default(),
            shutdown,
            health,
        })
    }

    /// The loop: claim what the free slots and each webhook's limits allow,
    /// send it, repeat when woken (`routed`), when a request finishes, when
    /// the next retry falls due, or every `IDLE`. On shutdown, stops
    /// claiming and lets requests in flight finish within the grace period;
    /// unfinished ones are sent again after the next start. While the
    /// global switch (`delivery.enabled`, in `live`) is off it claims
    /// nothing; requests already in flight finish.
    /// Each turn beats `heartbeat` (at least every [`IDLE`]).
    pub async fn run(
        self,
        routed: Arc<Notify>,
        mut live: crate::base::live::Receiver,
        heartbeat: Arc<crate::pipeline::heartbeat::Heartbeat>,
    ) {
        let shutdown = self.shutdown.clone();
        let slots = Arc::new(Semaphore::new(self.settings.concurrency));
        let unsettled = Arc::new(Semaphore::new(MAX_UNSETTLED));
        let freed = Arc::new(Notify::new());
        let in_flight = InFlight::default();
        let (to_settler, answered) = tokio::sync::mpsc::unbounded_channel();
        let settler = tokio::spawn(settler::run(
            self.store.clone(),
            answered,
            settler::Listeners {
                health: self.health.clone(),
                settled: freed.clone(),
            },
            shutdown.clone(),
        ));
        let mut tasks: JoinSet<()> = JoinSet::new();
        let mut turn = 0usize;
        loop {
            heartbeat.beat();
            while tasks.try_join_next().is_some() {}
            let free = slots.available_permits();
            let mut wait = IDLE;
            let sending = live.borrow_and_update().sending;
            if free > 0 && sending {
                let busy = in_flight.snapshot();
                turn = turn.wrapping_add(1);
                match self.store.claim_due(free, &busy, turn).await {
                    Ok(pass) => {
                        if let Some(due) = pass.next_due_ms {
                            let ms = (due - now_ms()).clamp(MIN_WAIT_MS, IDLE.as_millis() as i64);
                            wait = Duration::from_millis(ms as u64);
                        }
                        for claimed in pass.claimed {
                            let this = self.clone();
                            let freed = freed.clone();
                            match claimed {
                                Ok(job) => {
                                    // Counted out by the guard even if the task panics
                                    // or is aborted, before the loop is woken.
                                    let mut guard = in_flight.start(&job);
                                    let slots = slots.clone();
                                    let unsettled = unsettled.clone();
                                    let to_settler = to_settler.clone();
                                    let permit = slots.clone().try_acquire_owned();
                                    if permit.is_err() {
                                        // The claim pass takes no more than the free
                                        // slots; should that ever break, the job waits
                                        // for a slot instead of being dropped.
                                        tracing::error!("more claims than free slots");
                                    }
                                    tasks.spawn(async move {
                                        let permit = match permit {
                                            Ok(p) => Some(p),
                                            Err(_) => slots.acquire_owned().await.ok(),
                                        };
                                        let settled = this.attempt(job).await;
                                        guard.answered();
                                        // The slot is free as soon as the answer is in;
                                        // the settler commits it with others (group
                                        // commit) while the next request goes out.
                                        let place = unsettled.acquire_owned().await;
                                        if let (Some(settled), Ok(place)) = (settled, place) {
                                            // Fails only once the settler has ended: the
                                            // delivery stays pending, sent again after start.
                                            let sent = to_settler.send(settler::Answered { settled, place });
                                            if sent.is_err() && !this.shutdown.is_cancelled() {
                                                tracing::error!("the settler has stopped; an attempt is sent again after the next start");
                                            }
                                        }
                                        drop(permit);
                                        drop(guard);
                                        freed.notify_one();
                                    });
                                }
                                // No request: a write only, without a slot.
                                Err(bad) => {
                                    tasks.spawn(async move {
                                        this.fail_unreadable(bad).await;
                                        freed.notify_one();
                                    });
                                }
                            }
                        }
                    }
                    Err(e) => {
                        if let Some(held) = repeats::admit(&format!("claim: {e}")) {
                            tracing::error!(error = %e, "cannot claim deliveries; retrying{}", repeats::summary(held));
                        }
                        wait = ON_ERROR;
                    }
                }
            }
            tokio::select! {
                _ = routed.notified() => {}
                _ = freed.notified() => {}
                _ = crate::base::live::changed(&mut live) => {}
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.cancelled() => break,
            }
            // Let the requests whose answers are already in finish first,
            // so one claim pass fills several free slots at once (a pass
            // per freed slot cost a read and two thread wake-ups each).
            for _ in 0..YIELDS_BEFORE_A_PASS {
                tokio::task::yield_now().await;
            }
        }
        let unfinished = tasks.len();
        let settled = async move {
            drop(to_settler);
            if let Err(e) = settler.await {
                tracing::error!(error = %e, "the settler ended abnormally");
            }
        };
        if unfinished > 0 {
            tracing::info!(in_flight = unfinished, grace = ?self.settings.shutdown_grace, "waiting for requests in flight");
            let drain = async { while tasks.join_next().await.is_some() {} };
            if tokio::time::timeout(self.settings.shutdown_grace, drain)
                .await
                .is_err()
            {
                tracing::warn!(
                    left = tasks.len(),
                    "grace period over; unfinished deliveries are sent again after restart"
                );
                tasks.abort_all();
                while tasks.join_next().await.is_some() {}
                // Only requests aborted before their answer: an answered
                // one waiting for its settlement is not an interruption.
                let cut_short = in_flight.take_cut_short();
                if !cut_short.is_empty() {
                    let store = self.store.clone();
                    let n = cut_short.len();
                    if let Err(e) = store.run(move |s| s.interrupt(cut_short)).await {
                        tracing::warn!(error = %e, deliveries = n, "cannot log the interrupted attempts");
                    }
                }
            }
        }
        // Answered attempts still queued for the settler are written.
        settled.await;
    }

    /// The webhook `id` with compiled templates, from the cache when it is
    /// at version `updated_at`.
    async fn prepared(&self, id: i64, updated_at: &str) -> Result<Arc<Prepared>, StoreError> {
        if let Some(p) = self.cache.lock().expect("cache lock").get(&id)
            && p.updated_at == updated_at
        {
            return Ok(p.clone());
        }
        let webhook = self.store.run(move |s| s.webhook(id)).await?;
        let p = Arc::new(Prepared::new(webhook));
        self.cache.lock().expect("cache lock").insert(id, p.clone());
        Ok(p)
    }

    /// Fails a delivery whose event cannot be read, for good.
    async fn fail_unreadable(&self, bad: crate::store::Unreadable) {
        let id = bad.delivery_id;
        let bad = Arc::new(bad);
        loop {
            let b = bad.clone();
            match self.store.run(move |s| s.fail_unreadable(&b)).await {
                Ok(()) => {
                    metrics::counter!(crate::base::metrics::DELIVERIES, "webhook" => bad.webhook_id.to_string(), "outcome" => "failed").increment(1);
                    return;
                }
                Err(e) => {
                    if let Some(held) = repeats::admit(&format!("unreadable: {e}")) {
                        tracing::error!(delivery_id = id, error = %e, "cannot record unreadable delivery; trying again{}", repeats::summary(held));
                    }
                    if self.pause(ON_ERROR).await.is_err() {
                        return;
                    }
                }
            }
        }
    }

    /// One attempt of a request (one event, or a batch): render, send and
    /// decide (delivered, retry at, failed). Returns what to record, or
    /// `None` when there is nothing to (the webhook was deleted meanwhile,
    /// or shutdown began while its load was retried).
    async fn attempt(&self, job: DeliveryJob) -> Option<Vec<(NewLogEntry, Outcome)>> {
        let mut base = NewLogEntry {
            at: now_rfc3339(),
            webhook_id: job.webhook_id,
            ..Default::default()
        };
        let prepared = loop {
            match self.prepared(job.webhook_id, &job.webhook_updated_at).await {
                Ok(p) => break p,
                // Deleted meanwhile: its deliveries went with it.
                Err(StoreError::NotFound(_)) => {
                    let ids: Vec<i64> = job.items.iter().map(|i| i.delivery_id).collect();
                    self.store.release_unsettled(job.webhook_id, &ids);
                    return None;
                }
                Err(StoreError::Corrupt(reason)) => {
                    base.error = Some(format!(
                        "webhook {} cannot be read: {reason}",
                        job.webhook_id
                    ));
                    let settled: Vec<(NewLogEntry, Outcome)> = per_event(&job, &base)
                        .into_iter()
                        .map(|e| (e, Outcome::Failed))
                        .collect();
                    count(job.webhook_id, None, &settled);
                    return Some(settled);
                }
                Err(e) => {
                    tracing::warn!(webhook = job.webhook_id, error = %e, "cannot load webhook; trying again");
                    if self.pause(ON_ERROR).await.is_err() {
                        return None; // Shutdown: sent again after the next start.
                    }
                }
            }
        };
        let webhook = &prepared.webhook;
        base.webhook_name = webhook.spec.name.clone();
        let events: Vec<Arc<Event>> = job.items.iter().map(|i| i.event.clone()).collect();
        let sent = self.send(&prepared, &events, job.batched, base).await;
        // Each event by its own tries: a batch may mix a fresh event with
        // one on its last retry.
        let unit = retry::random_unit();
        let entries = per_event(&job, &sent.entry);
        let settled: Vec<(NewLogEntry, Outcome)> = job
            .items
            .iter()
            .zip(entries)
            .map(|(item, entry)| {
                let outcome = match &sent.failure {
                    None => Outcome::Delivered,
                    Some(failure) => match retry::decide(
                        &webhook.spec.retry,
                        item.tries,
                        failure,
                        self.settings.max_retry_after,
                        unit,
                    ) {
                        Decision::RetryIn(wait) => Outcome::RetryAt(
                            now_ms() + wait.as_millis().min(i64::MAX as u128) as i64,
                        ),
                        Decision::GiveUp => Outcome::Failed,
                    },
                };
                (entry, outcome)
            })
            .collect();
        if sent.failure.is_some() {
            tracing::info!(webhook = %webhook.spec.name, events = events.len(), error = ?sent.entry.error, "delivery failed");
        }
        // A request that went out has a duration (or at least a status).
        let requested = sent.entry.duration_ms > 0 || sent.entry.http_status.is_some();
        count(
            webhook.id,
            requested.then_some(sent.entry.duration_ms),
            &settled,
        );
        Some(settled)
    }

    /// Sends a sample event of type `kind` (a batch of one for a batching
    /// webhook) to `webhook` through the whole path (render, authenticate,
    /// sign), whatever its state (disabled and paused webhooks too), and logs
    /// the attempt as a test. No delivery is made and the webhook's health
    /// is not touched. Returns what happened, as CLI and API report it.
    pub async fn test_send(&self, webhook: Webhook, kind: &str) -> Result<TestReport, StoreError> {
        let mut event = crate::engines::render::samples::sample_event(kind);
        event.uuid = uuid::Uuid::new_v4().to_string();
        let base = NewLogEntry {
            at: now_rfc3339(),
            webhook_id: webhook.id,
            webhook_name: webhook.spec.name.clone(),
            event_uuid: event.uuid.clone(),
            event_type: event.kind.clone(),
            ticket_id: event.ticket_id.clone(),
            test: true,
            ..Default::default()
        };
        let batched = webhook.spec.batch.is_some();
        let prepared = Prepared::new(webhook);
        let sent = self
            .send(&prepared, &[Arc::new(event)], batched, base)
            .await;
        let entry = sent.entry;
        let report = TestReport::from(&entry);
        self.store.run(move |s| s.insert_log_entry(&entry)).await?;
        Ok(report)
    }

    /// Renders, authenticates, signs and sends one request for `events`,
    /// returning the log entry's shared part (from `base`) and the failure.
    async fn send(
        &self,
        prepared: &Prepared,
        events: &[Arc<Event>],
        batched: bool,
        mut base: NewLogEntry,
    ) -> Sent {
        let failure = match prepared.compiled.clone() {
            Err(message) => {
                base.error = Some(message);
                Some(Failure::Permanent)
            }
            Ok(compiled) => {
                self.send_authenticated(&prepared.webhook, &compiled, events, batched, &mut base)
                    .await
            }
        };
        Sent {
            entry: base,
            failure,
        }
    }

    /// Renders, authenticates, signs and sends one request, filling `entry`;
    /// returns why it failed, if it did. With a fetched token, a 401 answer
    /// refreshes the token once and sends the request again.
    async fn send_authenticated(
        &self,
        webhook: &Webhook,
        compiled: &CompiledRequest,
        events: &[Arc<Event>],
        batched: bool,
        entry: &mut NewLogEntry,
    ) -> Option<Failure> {
        let spec = &webhook.spec;
        let max = self.settings.max_logged_body_bytes;
        let mut secrets = credential_forms(spec);
        let auth_header = auth::fixed_header(&spec.auth).map(|(name, _)| name);
        // The message id receivers de-duplicate on: the event's uuid, or for
        // a batch one made of its first event's uuid and its size.
        let message_id = match (batched, events.first()) {
            (false, Some(e)) => e.uuid.clone(),
            (true, Some(e)) => format!("batch-{}-{}", e.uuid, events.len()),
            (_, None) => return Some(Failure::Permanent),
        };
        let mut refused: Option<u64> = None;
        loop {
            let issued = if spec.auth.fetches_token() {
                match self
                    .tokens
                    .token(webhook.id, &spec.auth, spec.timeout, refused)
                    .await
                {
                    Ok(t) => Some(t),
                    Err(e) => {
                        // Nothing is sent without its authentication.
                        entry.error = Some(mask::scrub(&e.to_string(), &secrets));
                        return Some(Failure::Transport);
                    }
                }
            } else {
                None
            };
            let token = issued.as_ref().map(|i| i.token.expose());
            if let Some(t) = token {
                secrets.extend(mask::forms(t));
            }
            let rendered = if batched {
                compiled.render_batch(events, token)
            } else {
                compiled.render_shared(&events[0], token)
            };
            let mut req = match rendered {
                Ok(r) => r,
                Err(e) => {
                    entry.error = Some(mask::scrub(&format!("template error: {e}"), &secrets));
                    return Some(Failure::Permanent);
                }
            };
            // Fail safe: unless the token really appears in what was
            // rendered, it goes in `Authorization: Bearer`.
            let placed = token.is_some_and(|t| req.contains(t));
            let templated = req.headers.clone();
            auth::apply(&mut req, &spec.auth, token, placed);
            if let Err(e) = sign::apply(&mut req, &spec.signing, &message_id) {
                entry.error = Some(e);
                return Some(Failure::Permanent);
            }
            // What authentication and signing added stays with the origin
            // on a redirect (see `client::Credentials`).
            let added: Vec<String> = req
                .headers
                .iter()
                .filter(|h| !templated.contains(h))
                .map(|(name, _)| name.clone())
                .collect();
            let redirects = if spec.follow_redirects {
                client::Redirects::Follow(client::Credentials {
                    headers: &added,
                    secrets: &secrets,
                })
            } else {
                client::Redirects::Refuse
            };
            let (result, took) = self.client.send(&req, spec.timeout, max, redirects).await;
            entry.duration_ms = took.as_millis() as i64;
            entry.error = None;
            let mut response = None;
            let mut failure = None;
            match result {
                Ok(resp) => {
                    entry.http_status = Some(resp.status);
                    entry.delivered = (200..300).contains(&resp.status);
                    if resp.status == 401
                        && refused.is_none()
                        && let Some(i) = &issued
                    {
                        // The token may have been revoked early: once, get
                        // a newer one and repeat the request.
                        refused = Some(i.generation);
                        continue;
                    }
                    if !entry.delivered {
                        let mut e = client::Error::Status(resp.status).to_string();
                        if resp.status == 401 && refused.is_some() {
                            e.push_str(" (also with a freshly fetched token)");
                        }
                        if (300..400).contains(&resp.status) && !spec.follow_redirects {
                            e.push_str(" (redirects are not followed unless the webhook sets follow_redirects)");
                        }
                        entry.error = Some(e);
                        failure = Some(Failure::Status {
                            status: resp.status,
                            retry_after: resp
                                .retry_after
                                .as_deref()
                                .and_then(|v| retry::parse_retry_after(v, chrono::Utc::now())),
                        });
                    }
                    response = Some(resp);
                }
                Err(e) => {
                    entry.error = Some(mask::scrub(&e.to_string(), &secrets));
                    // A refused address stays refused until the config
                    // changes: trying again would only repeat the refusal.
                    failure = Some(if matches!(e, client::Error::Refused { .. }) {
                        Failure::Permanent
                    } else {
                        Failure::Transport
                    });
                }
            }
            if spec.log_bodies {
                entry.detail = Some(detail(
                    &req,
                    response.as_ref(),
                    max,
                    &secrets,
                    auth_header.as_deref(),
                ));
            }
            return failure;
        }
    }

    /// Sleeps `d`, or returns `Err` at once when shutdown begins.
    async fn pause(&self, d: Duration) -> Result<(), ()> {
        tokio::select! {
            _ = tokio::time::sleep(d) => Ok(()),
            _ = self.shutdown.cancelled() => Err(()),
        }
    }
}

impl Prepared {
    fn new(webhook: Webhook) -> Prepared {
        let compiled = CompiledRequest::compile(&webhook.spec, Some(webhook.id))
            .map(Arc::new)
            .map_err(|e| format!("template error: {e}"));
        Prepared {
            updated_at: webhook.updated_at.clone(),
            webhook: Arc::new(webhook),
            compiled,
        }
    }
}

/// One log entry per event of the job, from the attempt's shared part. A
/// batch's request and response are logged once, with its first event.
fn per_event(job: &DeliveryJob, shared: &NewLogEntry) -> Vec<NewLogEntry> {
    job.items
        .iter()
        .enumerate()
        .map(|(n, item)| {
            let mut e = shared.clone();
            e.delivery_id = Some(item.delivery_id);
            e.attempt = Some(item.attempt);
            e.event_uuid = item.event.uuid.clone();
            e.event_type = item.event.kind.clone();
            e.ticket_id = item.event.ticket_id.clone();
            if n > 0 {
                e.detail = None;
            }
            if job.items.len() > 1 {
                let note = format!("batch of {}", job.items.len());
                e.error = Some(match e.error {
                    Some(err) => format!("{err} ({note})"),
                    None => note,
                });
            }
            e
        })
        .collect()
}
/// Counts an answered request for `/metrics`: each event's outcome, and
/// the request's duration once.
fn count(webhook: i64, duration_ms: Option<i64>, settled: &[(NewLogEntry, Outcome)]) {
    use crate::base::metrics::{DELIVERIES, DELIVERY_DURATION};
    let id = webhook.to_string();
    for (_, outcome) in settled {
        let outcome = match outcome {
            Outcome::Delivered => "delivered",
            Outcome::RetryAt(_) => "retry",
            Outcome::Failed => "failed",
        };
        metrics::counter!(DELIVERIES, "webhook" => id.clone(), "outcome" => outcome).increment(1);
    }
    if let Some(ms) = duration_ms {
        metrics::histogram!(DELIVERY_DURATION, "webhook" => id).record(ms as f64 / 1000.0);
    }
}
