//! `herald webhook …`: add, list, show, edit, copy, remove, enable,
//! disable, pause, resume webhooks and rotate their signing secrets.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::base::config::Config;
use crate::store::Store;
use crate::surfaces::shared::ops;
use clap::{Args, Subcommand};

use super::input::{parse_setting, read_text};
use crate::spec::webhook::{Webhook, WebhookPatch};

/// `herald webhook …`.
#[derive(Debug, Subcommand)]
pub enum WebhookCommand {
    /// Create a webhook (url and events are required; the name defaults to
    /// the URL's host).
    Add(WebhookArgs),
    /// List webhooks.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one webhook with its templates (secrets masked).
    Show {
        /// Webhook id.
        id: i64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Print secrets (passwords, tokens, keys, signing secrets) in clear.
        #[arg(long)]
        reveal: bool,
    },
    /// Make a new Standard Webhooks signing secret; the old one keeps
    /// signing alongside it (two signatures) for the overlap.
    RotateSecret {
        /// Webhook id.
        id: i64,
        /// Hours the old secret keeps signing.
        #[arg(long, default_value_t = 24.0)]
        overlap_hours: f64,
    },
    /// Change the settings given; the rest keep their values.
    Edit {
        /// Webhook id.
        id: i64,
        #[command(flatten)]
        args: WebhookArgs,
    },
    /// Save a copy of a webhook, with any settings given changed.
    Copy {
        /// Webhook id.
        id: i64,
        #[command(flatten)]
        args: WebhookArgs,
    },
    /// Delete a webhook and its pending deliveries (its log stays).
    Rm {
        /// Webhook id.
        id: i64,
    },
    /// Enable a webhook: new events are routed to it, waiting deliveries are sent.
    Enable {
        /// Webhook id.
        id: i64,
    },
    /// Disable a webhook: new events are not routed to it; deliveries already
    /// queued for it wait until it is enabled again.
    Disable {
        /// Webhook id.
        id: i64,
    },
    /// Pause a webhook: its new events are kept but nothing is sent until
    /// it is resumed (herald also pauses a webhook after delivery.pause_after
    /// of failures).
    Pause {
        /// Webhook id.
        id: i64,
    },
    /// Resume a paused webhook: clears its failure streak and sends its
    /// whole backlog.
    Resume {
        /// Webhook id.
        id: i64,
    },
}

/// `herald webhook list` as a table: columns as wide as their longest
/// value, the URL (the one that can be very long) last, so nothing after it
/// is pushed out of line.
fn list_table(all: &[crate::spec::webhook::Webhook]) -> String {
    let rows: Vec<[String; 6]> = all
        .iter()
        .map(|w| {
            let state = if !w.spec.enabled {
                "disabled"
            } else if w.health.paused_at.is_some() {
                "PAUSED"
            } else if w.health.failing_since.is_some() {
                "failing"
            } else {
                "enabled"
            };
            [
                w.id.to_string(),
                state.to_owned(),
                w.spec.method.to_string(),
                w.spec.name.clone(),
                w.spec.events.join(","),
                w.spec.url.clone(),
            ]
        })
        .collect();
    let header = ["ID", "STATE", "METHOD", "NAME", "EVENTS", "URL"].map(str::to_owned);
    let width = |i: usize| {
        std::iter::once(&header)
            .chain(&rows)
            .map(|r| r[i].chars().count())
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..5).map(width).collect();
    let mut out = String::new();
    for r in std::iter::once(&header).chain(&rows) {
        let mut line = format!("{:>w$}", r[0], w = widths[0]);
        for i in 1..5 {
            line.push_str(&format!("  {:<w$}", r[i], w = widths[i]));
        }
        line.push_str("  ");
        line.push_str(&r[5]);
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Webhook settings on the command line.
#[derive(Debug, Args, Default)]
pub struct WebhookArgs {
    /// Display name (default for a new webhook: the URL's host).
    #[arg(long)]
    pub name: Option<String>,
    /// What the webhook is for (shown in the admin).
    #[arg(long)]
    pub description: Option<String>,
    /// URL (a template: placeholders are percent-encoded).
    #[arg(long)]
    pub url: Option<String>,
    /// POST, GET, PUT or DELETE (default POST).
    #[arg(long)]
    pub method: Option<String>,
    /// Event patterns, comma-separated: ticket.login, ticket.*, *.
    #[arg(long, value_delimiter = ',')]
    pub events: Option<Vec<String>>,
    /// A header `Field: Value` (a template); repeat for more.
    #[arg(long = "header", value_name = "FIELD: VALUE")]
    pub headers: Vec<String>,
    /// Headers from a file, one `Field: Value` per line (replaces --header).
    #[arg(long, value_name = "FILE", conflicts_with = "headers")]
    pub headers_file: Option<PathBuf>,
    /// Body template text.
    #[arg(long, conflicts_with_all = ["body_file", "preset"])]
    pub body: Option<String>,
    /// Body from a shipped preset: iacbox-example, generic.json, generic.xml,
    /// slack, discord (see templates/presets/README.md).
    #[arg(long, value_name = "NAME", conflicts_with = "body_file")]
    pub preset: Option<String>,
    /// Body template from a file (e.g. templates/presets/iacbox-example.json.tmpl).
    #[arg(long, value_name = "FILE")]
    pub body_file: Option<PathBuf>,
    /// Body MIME type: application/json (default) or application/xml.
    #[arg(long)]
    pub mime: Option<String>,
    /// Log request/response headers and bodies (secrets masked).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub log_bodies: Option<bool>,
    /// Enabled (default true).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub enabled: Option<bool>,
    /// Request timeout in seconds (default 30).
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<f64>,
    /// Authentication as JSON, e.g. '{"kind":"bearer","token":"…"}' (kinds:
    /// none, basic, bearer, apikey, custom, token, oauth2; see the README).
    /// A secret given as "***" keeps the stored one.
    #[arg(long, value_name = "JSON")]
    pub auth: Option<String>,
    /// Signing as JSON: '{"kind":"standard"}' (herald generates the secret)
    /// or '{"kind":"hmac","header":"X-Signature","secret":"…","encoding":"hex"}'.
    #[arg(long, value_name = "JSON")]
    pub signing: Option<String>,
    /// Retry policy: `once` (no retries), delays in seconds `5,30,120,600,3600`
    /// (the default), or JSON such as '{"kind":"fixed","interval":60,"retries":10}'.
    #[arg(long, value_name = "POLICY")]
    pub retry: Option<String>,
    /// Requests in flight at once to this endpoint (default 16).
    #[arg(long, value_name = "N")]
    pub max_in_flight: Option<u32>,
    /// Strict event order: one request at a time; a failing event holds the
    /// ones behind it.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub ordered: Option<bool>,
    /// Follow 3xx redirects (up to 5); by default a 3xx is a failure.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub follow_redirects: Option<bool>,
    /// Batching: `MAX_EVENTS/MAX_WAIT_SECONDS` (e.g. 500/5) sends up to that
    /// many events per request; the body iterates <% for e in events %>.
    /// `off` sends one request per event (the default).
    #[arg(long, value_name = "N/SECONDS")]
    pub batch: Option<String>,
}

/// Parses `--retry`: `once`, comma-separated delays, or JSON.
fn parse_retry(text: &str) -> anyhow::Result<crate::spec::retry::RetryPolicy> {
    use crate::spec::retry::RetryPolicy;
    let t = text.trim();
    let bad = |m: String| crate::spec::field::FieldError::new("retry", m).into();
    if t == "once" {
        return Ok(RetryPolicy::Once);
    }
    if t.starts_with('{') {
        return serde_json::from_str(t).map_err(|e| bad(format!("--retry is not valid: {e}")));
    }
    let delays = t
        .split(',')
        .map(|d| d.trim().parse::<f64>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| {
            bad(format!(
                "--retry {t:?}: give `once`, delays in seconds such as 5,30,120, or JSON"
            ))
        })?;
    Ok(RetryPolicy::Schedule {
        delays,
        jitter: crate::spec::retry::DEFAULT_JITTER,
    })
}

/// Parses `--batch`: `off` or `MAX_EVENTS/MAX_WAIT_SECONDS`.
fn parse_batch(text: &str) -> anyhow::Result<Option<crate::spec::webhook::Batch>> {
    let t = text.trim();
    if t == "off" {
        return Ok(None);
    }
    let parsed = t.split_once('/').and_then(|(n, w)| {
        Some(crate::spec::webhook::Batch {
            max_events: n.trim().parse().ok()?,
            max_wait: w.trim().parse().ok()?,
        })
    });
    match parsed {
        Some(b) => Ok(Some(b)),
        None => Err(crate::spec::field::FieldError::new(
            "batch",
            format!("--batch {t:?}: give MAX_EVENTS/MAX_WAIT_SECONDS such as 500/5, or off"),
        )
        .into()),
    }
}

impl WebhookArgs {
    /// The settings given, as a patch.
    fn into_patch(self) -> anyhow::Result<WebhookPatch> {
        let headers = match (&self.headers_file, self.headers.is_empty()) {
            (Some(f), _) => Some(read_text(f)?),
            (None, false) => Some(self.headers.join("\n")),
            (None, true) => None,
        };
        let body_template = match (self.body, &self.body_file, &self.preset) {
            (Some(b), _, _) => Some(b),
            (None, Some(f), _) => Some(read_text(f)?),
            (None, None, Some(p)) => Some(
                crate::engines::render::presets::preset(p)
                    .ok_or_else(|| {
                        let names: Vec<&str> = crate::engines::render::presets::PRESETS
                            .iter()
                            .map(|(k, _, _)| *k)
                            .collect();
                        crate::spec::field::FieldError::new(
                            "preset",
                            format!("no preset {p:?}; the presets are {}", names.join(", ")),
                        )
                    })?
                    .to_owned(),
            ),
            (None, None, None) => None,
        };
        // An XML preset brings its MIME type unless one is given.
        let mime = self.mime.or_else(|| {
            self.preset
                .as_deref()
                .filter(|p| p.ends_with(".xml"))
                .map(|_| "application/xml".to_owned())
        });
        let timeout_ms = match self.timeout {
            Some(t) if !(t.is_finite() && t > 0.0) => {
                return Err(crate::spec::field::FieldError::new(
                    "timeout",
                    "--timeout must be a positive number of seconds",
                )
                .into());
            }
            // Round up: a tiny timeout must not become 0 ms.
            Some(t) => Some((t * 1000.0).ceil() as u64),
            None => None,
        };
        Ok(WebhookPatch {
            name: self.name,
            description: self.description,
            url: self.url,
            method: self.method,
            events: self.events,
            headers,
            body_template,
            body_mime: mime,
            log_bodies: self.log_bodies,
            enabled: self.enabled,
            timeout_ms,
            auth: parse_setting("auth", self.auth)?,
            signing: parse_setting("signing", self.signing)?,
            retry: self.retry.as_deref().map(parse_retry).transpose()?,
            max_in_flight: self.max_in_flight,
            ordered: self.ordered,
            follow_redirects: self.follow_redirects,
            batch: self.batch.as_deref().map(parse_batch).transpose()?,
            ..Default::default()
        })
    }
}

fn print_webhook(w: &Webhook, json: bool, reveal: bool) -> anyhow::Result<()> {
    // Serialising a webhook masks its secrets; --reveal puts them back.
    let (auth, signing) = if reveal {
        (
            serde_json::to_value(&w.spec.auth)?,
            serde_json::to_value(&w.spec.signing)?,
        )
    } else {
        (
            serde_json::to_value(w.spec.auth.masked())?,
            serde_json::to_value(w.spec.signing.masked())?,
        )
    };
    if json {
        let mut v = serde_json::to_value(w)?;
        v["auth"] = auth;
        v["signing"] = signing;
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let s = &w.spec;
    println!("id:          {}", w.id);
    println!("name:        {}", s.name);
    println!("enabled:     {}", s.enabled);
    println!("method:      {}", s.method);
    println!("url:         {}", s.url);
    println!("events:      {}", s.events.join(", "));
    println!("body mime:   {}", s.body_format.mime());
    println!("log bodies:  {}", s.log_bodies);
    println!("timeout:     {:?}", s.timeout);
    println!("retry:       {}", s.retry.describe());
    println!(
        "in flight:   {}{}",
        s.max_in_flight,
        if s.ordered {
            " (ordered: one at a time, in event order)"
        } else {
            ""
        }
    );
    println!(
        "redirects:   {}",
        if s.follow_redirects {
            "followed"
        } else {
            "not followed"
        }
    );
    if let Some(b) = &s.batch {
        println!(
            "batch:       up to {} events or {} s",
            b.max_events, b.max_wait
        );
    }
    let h = &w.health;
    match (&h.paused_at, &h.failing_since) {
        (Some(at), _) => println!(
            "state:       PAUSED since {at}: {}",
            h.pause_reason.as_deref().unwrap_or("")
        ),
        (None, Some(since)) => println!(
            "state:       failing since {since} ({} attempts in a row; last error: {})",
            h.failure_streak,
            h.last_error.as_deref().unwrap_or("")
        ),
        (None, None) => println!(
            "state:       {}",
            h.last_status
                .as_deref()
                .map(|s| format!("ok (last attempt {s})"))
                .unwrap_or_else(|| "no attempts yet".into())
        ),
    }
    println!("auth:        {auth}");
    println!("signing:     {signing}");
    println!("updated:     {}", w.updated_at);
    println!("headers:");
    for l in s.headers.lines() {
        println!("  {l}");
    }
    println!("body template:");
    for l in s.body_template.lines() {
        println!("  {l}");
    }
    Ok(())
}

fn report_saved(saved: &ops::Saved, verb: &str) {
    let w = &saved.webhook;
    println!("{verb} webhook {} ({})", w.id, w.spec.name);
    if let Some(secret) = &saved.new_secret {
        println!(
            "signing secret (shown once; give it to the receiver): {}",
            secret.expose()
        );
    }
    for warning in &saved.warnings {
        eprintln!("warning: {warning}");
    }
}

/// `herald webhook …`.
pub fn run(config: &Config, cmd: WebhookCommand) -> anyhow::Result<ExitCode> {
    let store = match cmd {
        WebhookCommand::List { .. } | WebhookCommand::Show { .. } => {
            Store::open_existing_configured(config)?
        }
        _ => Store::open_configured(config)?,
    };
    match cmd {
        WebhookCommand::Add(args) => {
            report_saved(&ops::create_webhook(&store, args.into_patch()?)?, "created");
        }
        WebhookCommand::List { json } => {
            let all = store.webhooks()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else if all.is_empty() {
                println!("no webhooks; add one with `herald webhook add`");
            } else {
                print!("{}", list_table(&all));
            }
        }
        WebhookCommand::Show { id, json, reveal } => {
            print_webhook(&ops::webhook(&store, id)?, json, reveal)?
        }
        WebhookCommand::Edit { id, args } => {
            report_saved(
                &ops::update_webhook(&store, id, args.into_patch()?, None)?,
                "updated",
            );
        }
        WebhookCommand::Copy { id, args } => {
            report_saved(
                &ops::copy_webhook(&store, id, args.into_patch()?)?,
                "created",
            );
        }
        WebhookCommand::RotateSecret { id, overlap_hours } => {
            if !(overlap_hours.is_finite() && (0.0..=720.0).contains(&overlap_hours)) {
                return Err(crate::spec::field::FieldError::new(
                    "overlap",
                    "--overlap-hours must be between 0 and 720",
                )
                .into());
            }
            let overlap = std::time::Duration::from_secs_f64(overlap_hours * 3600.0);
            report_saved(
                &ops::rotate_secret(&store, id, overlap)?,
                "rotated the signing secret of",
            );
        }
        WebhookCommand::Rm { id } => {
            ops::delete_webhook(&store, id)?;
            println!("deleted webhook {id}");
        }
        WebhookCommand::Enable { id } => {
            ops::set_enabled(&store, id, true)?;
            println!("enabled webhook {id}");
        }
        WebhookCommand::Disable { id } => {
            ops::set_enabled(&store, id, false)?;
            println!("disabled webhook {id}");
        }
        WebhookCommand::Pause { id } => {
            ops::pause(&store, id)?;
            println!("paused webhook {id}: its events are kept until `herald webhook resume {id}`");
        }
        WebhookCommand::Resume { id } => {
            let (_, backlog) = ops::resume(&store, id)?;
            println!("resumed webhook {id}: {backlog} waiting deliveries are sent now");
        }
    }
    Ok(ExitCode::SUCCESS)
}
