//! `herald render` (the exact request, without sending it) and `herald test`
//! (a sample event sent now through the whole path).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::base::config::Config;
use crate::store::Store;
use crate::surfaces::shared::ops;
use clap::Args;

use super::input::read_text;
use crate::base::event::NewEvent;
use crate::engines::render::CompiledRequest;

/// What `herald render` shows where a fetched token would go.
const TOKEN_STAND_IN: &str = "<token fetched from the auth URL at send time>";

/// Arguments of `herald render`.
#[derive(Debug, Args)]
pub struct RenderArgs {
    /// Webhook id.
    #[arg(long)]
    pub webhook: i64,
    /// Event JSON file (as in shared/events/*.json); `-` for stdin.
    #[arg(long, value_name = "FILE")]
    pub event: PathBuf,
    /// Print secrets (credentials, keys) in clear instead of ***.
    #[arg(long)]
    pub reveal: bool,
}

/// Arguments of `herald test`.
#[derive(Debug, Args)]
pub struct TestArgs {
    /// Webhook id.
    pub webhook: i64,
    /// Event type of the sample, any type (e.g. vehicle.created): its sample
    /// in templates/samples/, or a generic one. Default: the first type the
    /// webhook's patterns select.
    #[arg(long = "type", value_name = "TYPE")]
    pub kind: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `herald render`: prints the request a webhook would send for an event.
pub fn render(config: &Config, args: RenderArgs) -> anyhow::Result<ExitCode> {
    let RenderArgs {
        webhook,
        event,
        reveal,
    } = args;
    let store = Store::open_existing_configured(config)?;
    let w = ops::webhook(&store, webhook)?;
    let raw: NewEvent = serde_json::from_str(&read_text(&event)?)
        .with_context(|| format!("{} is not an event as JSON", event.display()))?;
    // Not queued: herald's own herald.* samples may be rendered too.
    let valid = raw.check_fields()?;
    let event = crate::base::event::Event {
        id: 0,
        uuid: valid.uuid,
        kind: valid.kind,
        created_at: valid.created_at,
        ticket_id: valid.ticket_id,
        data: valid.data,
    };
    let compiled = CompiledRequest::compile(&w.spec, Some(w.id))?;
    // No network: a fetched token is shown as a stand-in.
    let token = w.spec.auth.fetches_token().then_some(TOKEN_STAND_IN);
    // A batching webhook's request for a batch of this one event.
    let mut req = if w.spec.batch.is_some() {
        compiled.render_batch(&[std::sync::Arc::new(event.clone())], token)?
    } else {
        match token {
            Some(t) => compiled.render_with_token(&event, t)?,
            None => compiled.render(&event)?,
        }
    };
    let placed = token.is_some_and(|t| req.contains(t));
    crate::engines::auth::apply(&mut req, &w.spec.auth, token, placed);
    crate::engines::sign::apply(&mut req, &w.spec.signing, &event.uuid)
        .map_err(anyhow::Error::msg)?;
    if !reveal {
        use crate::engines::mask;
        let secrets = crate::pipeline::deliver::credential_forms(&w.spec);
        let auth_header = crate::engines::auth::fixed_header(&w.spec.auth).map(|(n, _)| n);
        for (k, v) in req.headers.iter_mut() {
            *v = if auth_header
                .as_deref()
                .is_some_and(|a| a.eq_ignore_ascii_case(k))
            {
                mask::MASK.to_owned()
            } else {
                mask::scrub(v, &secrets)
            };
        }
        req.url = mask::scrub(&req.url, &secrets);
        req.body = mask::scrub(&req.body, &secrets);
    }
    print!("{req}");
    Ok(ExitCode::SUCCESS)
}

/// `herald test`: one sample event, sent now from this process.
pub fn test(config: &Config, args: TestArgs) -> anyhow::Result<ExitCode> {
    let TestArgs {
        webhook: id,
        kind,
        json,
    } = args;
    let store = Store::open_existing_configured(config)?;
    let webhook = ops::webhook(&store, id)?;
    let kind = kind.unwrap_or_else(|| {
        crate::engines::render::samples::default_test_type(&webhook.spec.events)
    });
    let kind = kind.as_str();
    ops::check_test_type(kind)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let entry = rt.block_on(async {
        let deliverer = crate::pipeline::deliver::Deliverer::new(
            store.clone(),
            crate::pipeline::deliver::Settings {
                concurrency: 1,
                shutdown_grace: config.shutdown_grace,
                max_logged_body_bytes: config.max_logged_body_bytes,
                max_retry_after: config.max_retry_after,
                networks: crate::engines::http::guard::NetworkGuard::from_config(config),
            },
            tokio_util::sync::CancellationToken::new(),
            std::sync::Arc::default(),
        )?;
        Ok::<_, anyhow::Error>(deliverer.test_send(webhook, kind).await?)
    })?;
    if json {
        println!("{}", serde_json::to_string_pretty(&entry)?);
    } else {
        println!(
            "{} {} event {} to webhook {id}: {} in {} ms{} (sample: {})",
            if entry.delivered() {
                "delivered"
            } else {
                "FAILED"
            },
            entry.event_type,
            entry.event_uuid,
            entry
                .http_status
                .map(|s| format!("HTTP {s}"))
                .unwrap_or_else(|| "no answer".into()),
            entry.duration_ms,
            entry
                .error
                .as_deref()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default(),
            entry.sample
        );
        if let Some(d) = &entry.detail
            && let Some(b) = &d.response_body
            && !b.is_empty()
        {
            println!("response body: {b}");
        }
    }
    Ok(if entry.delivered() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
