//! The deliverer: claims due deliveries, renders each request, sends it with
//! bounded concurrency, and records the attempt in the event log together
//! with the delivery's new state.

pub mod client;
pub mod mask;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::auth::{self, token::TokenCache};
use crate::event::now_rfc3339;
use crate::render::{CompiledRequest, RenderedRequest};
use crate::sign;
use crate::store::{AttemptDetail, DeliveryJob, Error as StoreError, NewLogEntry, Outcome, Store};
use crate::webhook::Webhook;

/// Longest wait between looks for due deliveries when nothing wakes us.
const IDLE: Duration = Duration::from_secs(1);
/// Pause after a storage error.
const ON_ERROR: Duration = Duration::from_secs(1);

/// A webhook with its templates compiled, cached until the webhook changes.
struct Prepared {
    updated_at: String,
    webhook: Arc<Webhook>,
    compiled: Result<Arc<CompiledRequest>, String>,
}

/// Settings of the deliverer.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Requests in flight at once.
    pub concurrency: usize,
    /// How long in-flight requests may finish on shutdown.
    pub shutdown_grace: Duration,
    /// Largest body kept in the log.
    pub max_logged_body_bytes: usize,
}

/// Sends deliveries. Cheap to clone.
#[derive(Clone)]
pub struct Deliverer {
    store: Store,
    client: reqwest::Client,
    settings: Settings,
    cache: Arc<Mutex<HashMap<i64, Arc<Prepared>>>>,
    tokens: TokenCache,
    shutdown: CancellationToken,
}

impl Deliverer {
    /// A deliverer over `store`, stopping when `shutdown` is cancelled.
    pub fn new(store: Store, settings: Settings, shutdown: CancellationToken) -> Deliverer {
        let client = client::build_client();
        Deliverer {
            store,
            tokens: TokenCache::new(client.clone()),
            client,
            settings,
            cache: Arc::default(),
            shutdown,
        }
    }

    /// The loop: claim as many due deliveries as there are free slots, send
    /// them, repeat when woken (`routed`), when a slot frees, or every `IDLE`.
    /// On shutdown, stops claiming and lets requests in flight finish within
    /// the grace period; unfinished ones are sent again after the next start.
    pub async fn run(self, routed: Arc<Notify>) {
        let shutdown = self.shutdown.clone();
        let slots = Arc::new(Semaphore::new(self.settings.concurrency));
        let freed = Arc::new(Notify::new());
        let mut tasks = JoinSet::new();
        loop {
            while tasks.try_join_next().is_some() {}
            let free = slots.available_permits();
            let mut full_batch = false;
            if free > 0 {
                match self.store.run(move |s| s.claim_due(free)).await {
                    Ok(jobs) => {
                        full_batch = jobs.len() == free;
                        for job in jobs {
                            let permit = slots
                                .clone()
                                .try_acquire_owned()
                                .expect("a slot per claimed job");
                            let this = self.clone();
                            let freed = freed.clone();
                            tasks.spawn(async move {
                                match job {
                                    Ok(job) => this.attempt(job).await,
                                    Err(bad) => {
                                        let r = this
                                            .store
                                            .run(move |s| s.fail_unreadable(bad.delivery_id, &bad.reason))
                                            .await;
                                        if let Err(e) = r {
                                            tracing::error!(error = %e, "cannot record unreadable delivery");
                                        }
                                    }
                                }
                                drop(permit);
                                freed.notify_one();
                            });
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot claim deliveries; retrying");
                        tokio::select! {
                            _ = tokio::time::sleep(ON_ERROR) => continue,
                            _ = shutdown.cancelled() => break,
                        }
                    }
                }
            }
            if full_batch && slots.available_permits() > 0 {
                continue;
            }
            tokio::select! {
                _ = routed.notified() => {}
                _ = freed.notified() => {}
                _ = tokio::time::sleep(IDLE) => {}
                _ = shutdown.cancelled() => break,
            }
        }
        let in_flight = tasks.len();
        if in_flight > 0 {
            tracing::info!(in_flight, grace = ?self.settings.shutdown_grace, "waiting for requests in flight");
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
            }
        }
    }

    /// The webhook of `job` with compiled templates, from the cache when current.
    async fn prepared(&self, job: &DeliveryJob) -> Result<Arc<Prepared>, StoreError> {
        if let Some(p) = self.cache.lock().expect("cache lock").get(&job.webhook_id)
            && p.updated_at == job.webhook_updated_at
        {
            return Ok(p.clone());
        }
        let id = job.webhook_id;
        let webhook = self.store.run(move |s| s.webhook(id)).await?;
        let compiled = CompiledRequest::compile(&webhook.spec, Some(webhook.id))
            .map(Arc::new)
            .map_err(|e| format!("template error: {e}"));
        let p = Arc::new(Prepared {
            updated_at: webhook.updated_at.clone(),
            webhook: Arc::new(webhook),
            compiled,
        });
        self.cache.lock().expect("cache lock").insert(id, p.clone());
        Ok(p)
    }

    /// One attempt: render, send, record.
    async fn attempt(&self, job: DeliveryJob) {
        let delivery_id = job.delivery_id;
        let mut entry = NewLogEntry {
            at: now_rfc3339(),
            delivered: false,
            event_uuid: job.event.uuid.clone(),
            event_type: job.event.kind.clone(),
            ticket_id: job.event.ticket_id.clone(),
            webhook_id: job.webhook_id,
            delivery_id,
            attempt: job.attempt,
            ..Default::default()
        };
        let prepared = loop {
            match self.prepared(&job).await {
                Ok(p) => break p,
                // Deleted meanwhile: its deliveries went with it.
                Err(StoreError::NotFound(_)) => return,
                Err(StoreError::Corrupt(reason)) => {
                    entry.error = Some(format!(
                        "webhook {} cannot be read: {reason}",
                        job.webhook_id
                    ));
                    self.record(delivery_id, Outcome::Failed, entry).await;
                    return;
                }
                Err(e) => {
                    tracing::warn!(delivery_id, error = %e, "cannot load webhook; trying again");
                    if self.pause(ON_ERROR).await.is_err() {
                        return; // Shutdown: the claim is logged and released at the next start.
                    }
                }
            }
        };
        let webhook = &prepared.webhook;
        entry.webhook_name = webhook.spec.name.clone();
        match prepared.compiled.clone() {
            Err(message) => entry.error = Some(message),
            Ok(compiled) => {
                self.send_authenticated(webhook, &compiled, &job, &mut entry)
                    .await
            }
        }
        let outcome = if entry.delivered {
            Outcome::Delivered
        } else {
            tracing::info!(webhook = %webhook.spec.name, event = %entry.event_uuid, error = ?entry.error, "delivery failed");
            Outcome::Failed
        };
        self.record(delivery_id, outcome, entry).await;
    }

    /// Renders, authenticates, signs and sends one request, filling `entry`.
    /// With a fetched token, a 401 answer refreshes the token once and sends
    /// the request again.
    async fn send_authenticated(
        &self,
        webhook: &Webhook,
        compiled: &CompiledRequest,
        job: &DeliveryJob,
        entry: &mut NewLogEntry,
    ) {
        let spec = &webhook.spec;
        let max = self.settings.max_logged_body_bytes;
        let mut secrets = credential_forms(spec);
        let auth_header = auth::fixed_header(&spec.auth).map(|(name, _)| name);
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
                        return;
                    }
                }
            } else {
                None
            };
            let token = issued.as_ref().map(|i| i.token.expose());
            if let Some(t) = token {
                secrets.extend(mask::forms(t));
            }
            let rendered = compiled.render_shared(&job.event, token);
            let mut req = match rendered {
                Ok(r) => r,
                Err(e) => {
                    entry.error = Some(mask::scrub(&format!("template error: {e}"), &secrets));
                    return;
                }
            };
            // Fail safe: unless the token really appears in what was
            // rendered, it goes in `Authorization: Bearer`.
            let placed = token.is_some_and(|t| req.contains(t));
            auth::apply(&mut req, &spec.auth, token, placed);
            if let Err(e) = sign::apply(&mut req, &spec.signing, &job.event.uuid) {
                entry.error = Some(e);
                return;
            }
            let (result, took) = client::send(&self.client, &req, spec.timeout, max).await;
            entry.duration_ms = took.as_millis() as i64;
            entry.error = None;
            let mut response = None;
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
                        entry.error = Some(e);
                    }
                    response = Some(resp);
                }
                Err(e) => entry.error = Some(mask::scrub(&e.to_string(), &secrets)),
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
            return;
        }
    }

    /// Records an attempt, retrying while the database refuses (e.g. another
    /// writer holds it past the busy timeout): an unrecorded attempt would
    /// leave its delivery claimed until the next start. On shutdown it gives
    /// up; the claim is then logged and released at the next start.
    async fn record(&self, delivery_id: i64, outcome: Outcome, entry: NewLogEntry) {
        loop {
            let e = entry.clone();
            match self
                .store
                .run(move |s| s.finish_attempt(delivery_id, outcome, &e))
                .await
            {
                Ok(()) => return,
                Err(err) => {
                    tracing::error!(delivery_id, error = %err, "cannot record attempt; trying again");
                    if self.pause(ON_ERROR).await.is_err() {
                        return;
                    }
                }
            }
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

/// Every form of a webhook's secrets that may show up in logged text:
/// credentials as is and escaped, the full values of credential headers
/// (e.g. the base64 of basic credentials), signing secrets.
pub fn credential_forms(spec: &crate::webhook::WebhookSpec) -> Vec<String> {
    let mut out: Vec<String> = spec
        .auth
        .secret_values()
        .iter()
        .chain(spec.signing.secret_values().iter())
        .flat_map(|v| mask::forms(v))
        .collect();
    if let Some((_, value)) = auth::fixed_header(&spec.auth) {
        out.push(
            value
                .trim_start_matches("Basic ")
                .trim_start_matches("Bearer ")
                .to_owned(),
        );
    }
    out
}

/// The request and response as the log keeps them: secret-looking headers
/// (and the credential header, whatever its name) and URL parts masked, the
/// webhook's own secrets scrubbed wherever they appear (a token placed in
/// the body, a key echoed by the endpoint), bodies capped after scrubbing.
fn detail(
    req: &RenderedRequest,
    resp: Option<&client::Response>,
    max: usize,
    secrets: &[String],
    auth_header: Option<&str>,
) -> AttemptDetail {
    let scrub = |t: &str| mask::scrub(t, secrets);
    let headers = req.headers.iter().map(|(k, v)| {
        let is_auth = auth_header.is_some_and(|a| a.eq_ignore_ascii_case(k));
        (k.as_str(), if is_auth { mask::MASK } else { v.as_str() })
    });
    AttemptDetail {
        request_method: req.method.to_string(),
        request_url: scrub(&mask::url(&req.url)),
        request_headers: scrub(&mask::headers_text(headers)),
        request_body: mask::cap(&scrub(&req.body), max),
        response_headers: resp.map(|r| scrub(&mask::mask_header_lines(&r.headers))),
        response_body: resp.map(|r| scrub(&r.body)),
    }
}
