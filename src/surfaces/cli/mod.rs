//! The command line: `herald serve`, `emit`, `webhook …`, `render`, `test`,
//! `retry`, `deliveries`, `log`, `cleanup`, `check-config`. Parsing is clap's; each command is a short
//! function over the library.

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};

use crate::surfaces::shared::ops;
use crate::base::config::Config;
use crate::base::event::NewEvent;
use crate::engines::render::CompiledRequest;
use crate::store::{LogFilter, Store};
use crate::spec::webhook::{Webhook, WebhookPatch};

/// herald — templated event router: delivers the appliance's events to
/// webhooks, rendered from templates, and logs every attempt.
#[derive(Debug, Parser)]
#[command(name = "herald", version, about, long_about = None, after_help = AFTER_HELP)]
pub struct Cli {
    /// Config file laid over the built-in defaults (see config/herald.toml).
    /// Without it herald runs on defaults: database under ./data/, listener
    /// on 127.0.0.1:8470.
    #[arg(long, short, global = true, env = "HERALD_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// What `herald render` shows where a fetched token would go.
const TOKEN_STAND_IN: &str = "<token fetched from the auth URL at send time>";

const AFTER_HELP: &str = "\
Environment: HERALD_<SECTION>_<KEY> overrides any config key (e.g. HERALD_ROUTER_READ_INTERVAL=1);
HERALD_LOG sets the log filter (e.g. debug, herald=trace).

Templates: placeholders <<event.uuid>>, <<event.type>>, <<event.created_at>>, <<event.ticket_id>>,
every data field by name (<<volume_used>>), dot paths (<<backend_data.pms.room>>); missing = empty.
Blocks: <% if … %>…<% endif %>, comments: <# … #>.";

/// herald's subcommands.
// Parsed once per run: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the router, the deliverer, the health monitor, the cleanup job and
    /// the HTTP listener: event ingest, REST API and the web admin at
    /// http://<server.listen>/ (first password in <database dir>/initial-admin-password).
    Serve,
    /// Queue an event. Without TYPE, reads a whole event as JSON from stdin
    /// ({"type": …, "ticket_id": …, "data": {…}}).
    Emit(EmitArgs),
    /// Manage webhooks.
    #[command(subcommand)]
    Webhook(WebhookCommand),
    /// Print the exact request a webhook would send for an event, without sending it.
    Render {
        /// Webhook id.
        #[arg(long)]
        webhook: i64,
        /// Event JSON file (as in shared/events/*.json); `-` for stdin.
        #[arg(long, value_name = "FILE")]
        event: PathBuf,
        /// Print secrets (credentials, keys) in clear instead of ***.
        #[arg(long)]
        reveal: bool,
    },
    /// Show the event log, newest first.
    Log {
        /// Only this webhook.
        #[arg(long)]
        webhook: Option<i64>,
        /// Only this event uuid.
        #[arg(long, value_name = "UUID")]
        event: Option<String>,
        /// Only failed attempts and invalid events.
        #[arg(long)]
        failed: bool,
        /// At most this many entries.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Print JSON (one array) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Send a sample event of a type to a webhook now, through the whole
    /// path (render, authentication, signing), and print the result. Works
    /// on disabled and paused webhooks; logged as a test. Exit status 1 when
    /// the endpoint did not accept it.
    Test {
        /// Webhook id.
        webhook: i64,
        /// Sample event type (templates/samples/), e.g. ticket.logout.
        #[arg(long = "type", default_value = "ticket.login", value_name = "TYPE")]
        kind: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Send finished deliveries again (each resend is a new attempt in the
    /// log with the same event uuid): one delivery, a webhook's deliveries,
    /// and/or those of events in a time range. A running herald picks them
    /// up within a second.
    Retry {
        /// One delivery (ids are in `herald deliveries` and `herald log`).
        #[arg(long, value_name = "ID")]
        delivery: Option<i64>,
        /// Deliveries of this webhook.
        #[arg(long, value_name = "ID")]
        webhook: Option<i64>,
        /// Only deliveries that failed for good (else delivered ones too).
        #[arg(long)]
        failed: bool,
        /// Events created at or after this time (RFC 3339).
        #[arg(long, value_name = "TIME")]
        from: Option<String>,
        /// Events created before this time (RFC 3339).
        #[arg(long, value_name = "TIME")]
        to: Option<String>,
    },
    /// List deliveries (one per event and webhook), newest first, with
    /// their status: pending, sending, retrying, paused, delivered, failed.
    Deliveries {
        /// Only this webhook.
        #[arg(long)]
        webhook: Option<i64>,
        /// Only this state: pending, delivered or failed.
        #[arg(long)]
        state: Option<String>,
        /// Only this event uuid.
        #[arg(long, value_name = "UUID")]
        event: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The admin password and API keys.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Run the cleanup job (log and event retention).
    Cleanup {
        /// Run it once, now (required: the schedule runs inside `herald serve`).
        #[arg(long)]
        now: bool,
    },
    /// Validate the configuration and print it as herald will use it.
    CheckConfig,
}

/// `herald admin …`.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Set the admin password, read from standard input (one line), e.g.
    /// `read -rs P && printf '%s' "$P" | herald admin set-password`.
    /// Removes the generated initial-admin-password file.
    SetPassword,
    /// API keys for the REST API (`Authorization: Bearer hk_…`).
    #[command(subcommand)]
    ApiKey(ApiKeyCommand),
}

/// `herald admin api-key …`.
#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Make a key; it is printed once (only its digest is kept).
    Create {
        /// What uses it, e.g. "monitoring".
        #[arg(long)]
        name: String,
        /// `read` (GET only) or `admin` (everything).
        #[arg(long, default_value = "read")]
        scope: String,
    },
    /// List keys (never the keys themselves).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key: it is refused from now on.
    Revoke {
        /// Key id (from `list`).
        id: i64,
    },
}

/// Arguments of `herald emit`.
#[derive(Debug, Args)]
pub struct EmitArgs {
    /// Event type, e.g. ticket.login.
    #[arg(value_name = "TYPE")]
    pub kind: Option<String>,
    /// Ticket id.
    #[arg(long)]
    pub ticket: Option<String>,
    /// Event data as a JSON object.
    #[arg(long, conflicts_with = "data_file")]
    pub data: Option<String>,
    /// Event data from a JSON file.
    #[arg(long, value_name = "FILE")]
    pub data_file: Option<PathBuf>,
    /// Event uuid (default: generated).
    #[arg(long)]
    pub uuid: Option<String>,
    /// Event time, RFC 3339 (default: now).
    #[arg(long)]
    pub created_at: Option<String>,
}

/// `herald webhook …`.
#[derive(Debug, Subcommand)]
pub enum WebhookCommand {
    /// Create a webhook (name, url and events are required).
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

/// Webhook settings on the command line.
#[derive(Debug, Args, Default)]
pub struct WebhookArgs {
    /// Display name.
    #[arg(long)]
    pub name: Option<String>,
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
    #[arg(long, conflicts_with = "body_file")]
    pub body: Option<String>,
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
    /// Requests in flight at once to this endpoint (default 4).
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
        let body_template = match (self.body, &self.body_file) {
            (Some(b), _) => Some(b),
            (None, Some(f)) => Some(read_text(f)?),
            (None, None) => None,
        };
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
            url: self.url,
            method: self.method,
            events: self.events,
            headers,
            body_template,
            body_mime: self.mime,
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

/// Parses a JSON setting flag, refusing it with the field's name.
fn parse_setting<T: serde::de::DeserializeOwned>(
    field: &str,
    text: Option<String>,
) -> anyhow::Result<Option<T>> {
    match text {
        None => Ok(None),
        Some(t) => serde_json::from_str(&t).map(Some).map_err(|e| {
            crate::spec::field::FieldError::new(field, format!("--{field} is not valid: {e}")).into()
        }),
    }
}

fn read_text(path: &Path) -> anyhow::Result<String> {
    if path == Path::new("-") {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("cannot read stdin")?;
        return Ok(s);
    }
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Loads the configuration for this invocation.
pub fn load_config(cli: &Cli) -> anyhow::Result<Config> {
    // Only HERALD_* variables matter; others may not even be UTF-8.
    let mut vars = Vec::new();
    for (k, v) in std::env::vars_os() {
        if !k.as_encoded_bytes().starts_with(b"HERALD_") {
            continue;
        }
        match (k.into_string(), v.into_string()) {
            (Ok(k), Ok(v)) => vars.push((k, v)),
            (k, _) => bail!("environment variable {k:?} is not valid UTF-8"),
        }
    }
    Ok(Config::load(cli.config.as_deref(), vars)?)
}

/// Runs a non-`serve` command. Errors a user must fix exit with 2, others 1.
pub fn run(cli: Cli, config: Config) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve => unreachable!("serve is run by main"),
        Command::CheckConfig => {
            println!("configuration is valid");
            println!("  server.listen            = {}", config.listen);
            println!("  server.max_body_bytes    = {}", config.max_body_bytes);
            println!(
                "  database.path            = {}",
                config.database_path.display()
            );
            println!("  router.read_interval     = {:?}", config.read_interval);
            println!("  router.batch_size        = {}", config.router_batch_size);
            println!(
                "  delivery.concurrency     = {}",
                config.delivery_concurrency
            );
            println!("  delivery.shutdown_grace  = {:?}", config.shutdown_grace);
            println!(
                "  delivery.max_logged_body_bytes = {}",
                config.max_logged_body_bytes
            );
            println!(
                "  cleanup.schedule         = {}",
                config.cleanup_schedule_text
            );
            println!(
                "  cleanup.retention_days   = {}",
                config.retention.as_secs() / 86_400
            );
            println!("  cleanup.batch_size       = {}", config.cleanup_batch_size);
            println!("  delivery.max_retry_after = {:?}", config.max_retry_after);
            println!(
                "  delivery.pause_after     = {}",
                config
                    .pause_after
                    .map(|d| format!("{d:?}"))
                    .unwrap_or_else(|| "never".into())
            );
            println!("  alerts.after             = {:?}", config.alert_after);
            println!("  alerts.interval          = {:?}", config.alert_interval);
            Ok(ExitCode::SUCCESS)
        }
        Command::Emit(args) => emit(&config, args),
        Command::Webhook(cmd) => webhook(&config, cmd),
        Command::Render {
            webhook,
            event,
            reveal,
        } => {
            let store = Store::open_existing(&config.database_path)?;
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
        Command::Log {
            webhook,
            event,
            failed,
            limit,
            json,
        } => {
            let store = Store::open_existing(&config.database_path)?;
            let entries = store.log_entries(&LogFilter {
                webhook_id: webhook,
                event_uuid: event,
                failed,
                before_id: None,
                limit,
                ..LogFilter::default()
            })?;
            if json {
                println!("{}", serde_json::to_string_pretty(&entries)?);
                return Ok(ExitCode::SUCCESS);
            }
            if entries.is_empty() {
                println!("no log entries");
            }
            for e in entries {
                println!(
                    "{}  {:<9} {:>4} {:>6}  {:<20} {:<28} {}  {}",
                    e.at,
                    e.outcome,
                    e.http_status
                        .map(|s| s.to_string())
                        .unwrap_or_else(|| "-".into()),
                    e.duration_ms
                        .map(|d| format!("{d}ms"))
                        .unwrap_or_else(|| "-".into()),
                    e.webhook_name.as_deref().unwrap_or("-"),
                    e.event_type.as_deref().unwrap_or("-"),
                    e.event_uuid.as_deref().unwrap_or("-"),
                    e.error.as_deref().unwrap_or(""),
                );
                if let Some(d) = e.detail {
                    println!("    > {} {}", d.request_method, d.request_url);
                    for l in d.request_headers.lines() {
                        println!("    > {l}");
                    }
                    if !d.request_body.is_empty() {
                        println!("    > {}", d.request_body.replace('\n', "\n    > "));
                    }
                    for l in d.response_headers.unwrap_or_default().lines() {
                        println!("    < {l}");
                    }
                    if let Some(b) = d.response_body.filter(|b| !b.is_empty()) {
                        println!("    < {}", b.replace('\n', "\n    < "));
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Test {
            webhook,
            kind,
            json,
        } => test(&config, webhook, &kind, json),
        Command::Retry {
            delivery,
            webhook,
            failed,
            from,
            to,
        } => {
            let store = Store::open_existing(&config.database_path)?;
            let n = ops::replay(
                &store,
                &crate::store::Replay {
                    delivery_id: delivery,
                    webhook_id: webhook,
                    failed_only: failed,
                    from,
                    to,
                },
            )?;
            println!("queued {n} deliveries again");
            Ok(ExitCode::SUCCESS)
        }
        Command::Deliveries {
            webhook,
            state,
            event,
            limit,
            json,
        } => {
            if let Some(st) = &state
                && !["pending", "delivered", "failed"].contains(&st.as_str())
            {
                return Err(crate::spec::field::FieldError::new(
                    "state",
                    format!("--state {st:?} is not one of pending, delivered, failed (retrying, sending and paused are pending)"),
                )
                .into());
            }
            let store = Store::open_existing(&config.database_path)?;
            let rows = store.deliveries(&crate::store::DeliveryFilter {
                webhook_id: webhook,
                state,
                event_uuid: event,
                limit,
                ..Default::default()
            })?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
                return Ok(ExitCode::SUCCESS);
            }
            if rows.is_empty() {
                println!("no deliveries");
            }
            for d in rows {
                println!(
                    "{:>6}  {:<9} {:>3}×  {:<20} {:<28} {}  {}{}",
                    d.id,
                    d.status,
                    d.attempts,
                    d.webhook_name,
                    d.event_type,
                    d.event_uuid,
                    d.last_error.as_deref().unwrap_or(""),
                    d.next_attempt_at
                        .map(|t| format!(" (next try {t})"))
                        .unwrap_or_default()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Admin(cmd) => admin_command(&config, cmd),
        Command::Cleanup { now } => {
            if !now {
                bail!(
                    "the cleanup schedule runs inside `herald serve`; use `herald cleanup --now` to run it once"
                );
            }
            let store = Store::open(&config.database_path)?;
            // The retention saved in the web admin wins, as in `serve`.
            let config = config
                .with_ui(&store.ui_settings()?)
                .context("the settings saved in the web admin are invalid; save them again")?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let stop = tokio_util::sync::CancellationToken::new();
            let report = rt.block_on(crate::pipeline::cleanup::run_once(
                &store,
                config.retention,
                config.cleanup_batch_size,
                &stop,
            ))?;
            println!(
                "deleted {} log entries and {} events older than {} days",
                report.log_entries,
                report.events,
                config.retention.as_secs() / 86_400
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `herald admin …`.
fn admin_command(config: &Config, cmd: AdminCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AdminCommand::SetPassword => {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .context("cannot read the password from stdin")?;
            let password = line.trim_end_matches(['\r', '\n']);
            let store = Store::open(&config.database_path)?;
            ops::set_password(&store, password, None)?;
            ops::remove_initial_password(&config.database_path)?;
            println!("admin password set");
        }
        AdminCommand::ApiKey(ApiKeyCommand::Create { name, scope }) => {
            let scope: crate::engines::access::Scope = scope
                .parse()
                .map_err(|m: String| ops::Error::BadRequest(m))?;
            let store = Store::open(&config.database_path)?;
            let (k, key) = ops::create_api_key(&store, &name, scope)?;
            eprintln!(
                "created API key {} ({}, {}); it is shown only now:",
                k.id,
                k.name,
                k.scope.as_str()
            );
            println!("{key}");
        }
        AdminCommand::ApiKey(ApiKeyCommand::List { json }) => {
            let store = Store::open_existing(&config.database_path)?;
            let keys = store.api_keys()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&keys)?);
            } else if keys.is_empty() {
                println!("no API keys; make one with `herald admin api-key create`");
            } else {
                for k in keys {
                    println!(
                        "{:>4}  {:<6} {:<14} {:<24} created {}{}",
                        k.id,
                        k.scope.as_str(),
                        k.hint,
                        k.name,
                        k.created_at,
                        k.revoked_at
                            .map(|r| format!(", REVOKED {r}"))
                            .unwrap_or_default()
                    );
                }
            }
        }
        AdminCommand::ApiKey(ApiKeyCommand::Revoke { id }) => {
            let store = Store::open_existing(&config.database_path)?;
            ops::revoke_api_key(&store, id)?;
            println!("revoked API key {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `herald test`: one sample event, sent now from this process.
fn test(config: &Config, id: i64, kind: &str, json: bool) -> anyhow::Result<ExitCode> {
    ops::check_test_type(kind)?;
    let store = Store::open_existing(&config.database_path)?;
    let webhook = ops::webhook(&store, id)?;
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
            "{} {} event {} to webhook {id}: {} in {} ms{}",
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
                .unwrap_or_default()
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

/// `herald emit`: validates, queues, wakes a running server.
fn emit(config: &Config, args: EmitArgs) -> anyhow::Result<ExitCode> {
    let event = match args.kind {
        Some(kind) => {
            let data = match (args.data, args.data_file) {
                (Some(d), _) => Some(serde_json::from_str(&d).context("--data is not valid JSON")?),
                (None, Some(f)) => Some(
                    serde_json::from_str(&read_text(&f)?)
                        .with_context(|| format!("{} is not valid JSON", f.display()))?,
                ),
                (None, None) => None,
            };
            NewEvent {
                kind,
                uuid: args.uuid,
                created_at: args.created_at,
                ticket_id: args.ticket,
                data,
            }
        }
        None => {
            if std::io::stdin().is_terminal() {
                bail!(
                    "give an event TYPE, or pipe an event as JSON to stdin (see herald emit --help)"
                );
            }
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("cannot read stdin")?;
            let mut e: NewEvent =
                serde_json::from_str(&text).context("stdin is not an event as JSON")?;
            // Flags given next to stdin win.
            if args.ticket.is_some() {
                e.ticket_id = args.ticket;
            }
            if args.uuid.is_some() {
                e.uuid = args.uuid;
            }
            if args.created_at.is_some() {
                e.created_at = args.created_at;
            }
            e
        }
    };
    let store = Store::open(&config.database_path)?;
    let queued = ops::queue_event(&store, event)?;
    crate::pipeline::wake::send(&config.database_path);
    println!("{}", queued.uuid);
    Ok(ExitCode::SUCCESS)
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
fn webhook(config: &Config, cmd: WebhookCommand) -> anyhow::Result<ExitCode> {
    let store = match cmd {
        WebhookCommand::List { .. } | WebhookCommand::Show { .. } => {
            Store::open_existing(&config.database_path)?
        }
        _ => Store::open(&config.database_path)?,
    };
    match cmd {
        WebhookCommand::Add(args) => {
            report_saved(
                &ops::create_webhook(&store, args.into_patch()?)?,
                "created",
            );
        }
        WebhookCommand::List { json } => {
            let all = store.webhooks()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else if all.is_empty() {
                println!("no webhooks; add one with `herald webhook add`");
            } else {
                for w in all {
                    println!(
                        "{:>4}  {:<8} {:<6} {:<24} {:<40} {}",
                        w.id,
                        if !w.spec.enabled {
                            "disabled"
                        } else if w.health.paused_at.is_some() {
                            "PAUSED"
                        } else if w.health.failing_since.is_some() {
                            "failing"
                        } else {
                            "enabled"
                        },
                        w.spec.method,
                        w.spec.name,
                        w.spec.url,
                        w.spec.events.join(",")
                    );
                }
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
