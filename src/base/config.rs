//! Configuration: the embedded default `config/herald.toml`, the admin's file
//! laid over it, then `HERALD_<SECTION>_<KEY>` environment variables.
//!
//! Parsing ("as written", [`RawConfig`]) and validation ("as used", [`Config`])
//! are kept apart: everything herald reads at run time is a typed, checked
//! value, and every mistake is reported with the key that holds it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use super::smtp::{Smtp, SmtpTls};

/// The default configuration, which is also the documentation of every key.
pub const DEFAULT_CONFIG: &str = include_str!("../../config/herald.toml");

/// Environment variables starting with `HERALD_` that are not config keys.
const NON_KEY_VARIABLES: &[&str] = &["HERALD_CONFIG", "HERALD_LOG"];

/// Why a configuration could not be loaded; each message names the key or file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("config file {path} is not valid TOML: {message}")]
    Syntax { path: PathBuf, message: String },
    /// A key is unknown or has the wrong type.
    #[error("{origin}: {message}")]
    Shape { origin: String, message: String },
    /// A `HERALD_*` variable names no key.
    #[error(
        "environment variable {0} is not a herald setting (see config/herald.toml for the keys)"
    )]
    UnknownVariable(String),
    /// A value is out of range or malformed.
    #[error("{key} = {value}: {reason}")]
    Invalid {
        key: &'static str,
        value: String,
        reason: String,
    },
}

/// The configuration as written: every section and key, unvalidated.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// `[server]`
    pub server: RawServer,
    /// `[database]`
    pub database: RawDatabase,
    /// `[router]`
    pub router: RawRouter,
    /// `[delivery]`
    pub delivery: RawDelivery,
    /// `[cleanup]`
    pub cleanup: RawCleanup,
    /// `[alerts]`
    pub alerts: RawAlerts,
    /// `[stream]`
    pub stream: RawStream,
    /// `[log]`
    pub log: RawLog,
    /// `[metrics]`
    pub metrics: RawMetrics,
}

/// `[metrics]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetrics {
    pub public: bool,
}

/// `[log]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    pub format: String,
}

/// `log.format`: how log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines (colours on a terminal).
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// `[stream]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStream {
    pub max_subscribers: u64,
    pub buffer: u64,
}

/// `[alerts]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlerts {
    #[serde(deserialize_with = "number")]
    pub after: f64,
    #[serde(deserialize_with = "number")]
    pub interval: f64,
    pub smtp_host: String,
    pub smtp_port: u64,
    pub smtp_tls: String,
    pub smtp_username: String,
    pub smtp_password: String,
    pub smtp_from: String,
    pub smtp_to: Vec<String>,
}

/// `[server]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: String,
    pub max_body_bytes: u64,
    #[serde(deserialize_with = "number")]
    pub header_timeout: f64,
    #[serde(deserialize_with = "number")]
    pub body_timeout: f64,
    pub max_connections: u64,
}

/// `[database]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDatabase {
    pub url: String,
    pub path: String,
    pub durability: String,
    #[serde(deserialize_with = "number")]
    pub busy_timeout: f64,
    pub min_free_mb: u64,
    #[serde(deserialize_with = "number")]
    pub lease: f64,
}

/// `database.url`: a PostgreSQL connection URL. Shown only masked
/// ([`DatabaseUrl::masked`]): it may carry a password.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// Checks the form `postgres://[user[:password]@]host[:port]/database[?…]`
    /// (also `postgresql://`); the server checks the rest.
    pub fn parse(url: &str) -> Result<DatabaseUrl, String> {
        let rest = url
            .strip_prefix("postgres://")
            .or_else(|| url.strip_prefix("postgresql://"))
            .ok_or("expected postgres://user:password@host:port/database")?;
        let authority = rest.split(['/', '?']).next().unwrap_or_default();
        let host = authority.rsplit('@').next().unwrap_or_default();
        if host.is_empty() {
            return Err("names no host (postgres://user:password@host:port/database)".into());
        }
        Ok(DatabaseUrl(url.to_owned()))
    }

    /// The URL itself, password included: only for connecting.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with its password replaced by `****`: for logs and
    /// `check-config`.
    pub fn masked(&self) -> String {
        let Some((scheme, rest)) = self.0.split_once("://") else {
            return "****".into();
        };
        // The user part ends at the last '@' before the host (a password
        // may hold '/', '?' or '@' unencoded); without one, no password.
        let host_start = match rest.rfind('@') {
            Some(at) => at + 1,
            None => 0,
        };
        let end = rest[host_start..]
            .find(['/', '?'])
            .map_or(rest.len(), |e| host_start + e);
        let (authority, tail) = rest.split_at(end);
        let masked = match authority.rsplit_once('@') {
            Some((user_info, host)) => match user_info.split_once(':') {
                Some((user, _)) => format!("{user}:****@{host}"),
                None => authority.to_owned(),
            },
            None => authority.to_owned(),
        };
        // `password=` among the query's options is masked too.
        let tail = match tail.split_once('?') {
            Some((path, query)) => {
                let query: Vec<String> = query
                    .split('&')
                    .map(|kv| match kv.split_once('=') {
                        Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=****"),
                        _ => kv.to_owned(),
                    })
                    .collect();
                format!("{path}?{}", query.join("&"))
            }
            None => tail.to_owned(),
        };
        format!("{scheme}://{masked}{tail}")
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.masked())
    }
}

impl std::fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.masked())
    }
}

/// `database.durability`: whether a commit waits for the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Every commit synced: an acknowledged event survives a power cut.
    Full,
    /// Synced at checkpoints only: survives a crash of herald, not
    /// necessarily a power cut.
    Normal,
}

/// `[router]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRouter {
    #[serde(deserialize_with = "number")]
    pub read_interval: f64,
    pub batch_size: u64,
}

/// `[delivery]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDelivery {
    pub enabled: bool,
    pub concurrency: u64,
    #[serde(deserialize_with = "number")]
    pub shutdown_grace: f64,
    pub max_logged_body_bytes: u64,
    #[serde(deserialize_with = "number")]
    pub max_retry_after: f64,
    #[serde(deserialize_with = "number")]
    pub pause_after: f64,
    pub deny_networks: Vec<String>,
    pub allow_networks: Vec<String>,
    pub deny_private: bool,
}

/// `[cleanup]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCleanup {
    pub schedule: String,
    pub retention_days: u64,
    pub batch_size: u64,
}

/// The validated configuration herald runs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the HTTP listener binds.
    pub listen: SocketAddr,
    /// Largest accepted request body on the listener.
    pub max_body_bytes: usize,
    /// How long a connection may take to send a request's headers, and
    /// stay idle between requests.
    pub header_timeout: Duration,
    /// How long a request's body may take to arrive.
    pub body_timeout: Duration,
    /// Connections the listener holds open at once.
    pub max_connections: usize,
    /// How log lines are written.
    pub log_format: LogFormat,
    /// Whether `GET /metrics` answers without an API key.
    pub metrics_public: bool,
    /// Live-stream subscribers open at once.
    pub stream_max_subscribers: usize,
    /// Events a live-stream subscriber may fall behind before it is dropped.
    pub stream_buffer: usize,
    /// PostgreSQL server and database (`database.url`); `None`: SQLite at
    /// `database_path`.
    pub database_url: Option<DatabaseUrl>,
    /// SQLite database file; with `database_url` set, only the directory
    /// of local files (the first admin password).
    pub database_path: PathBuf,
    /// Whether each commit is synced to disk.
    pub durability: Durability,
    /// How long a write waits for another process's write lock.
    pub busy_timeout: Duration,
    /// Free bytes below which new events are refused (0: never).
    pub min_free_bytes: u64,
    /// PostgreSQL: how long a delivery claim holds unless renewed.
    pub lease: Duration,
    /// Interval between reads of the queue when nothing wakes the router.
    pub read_interval: Duration,
    /// Events routed per transaction.
    pub router_batch_size: usize,
    /// Whether webhooks are sent at all (the global switch).
    pub delivery_enabled: bool,
    /// Requests in flight at once.
    pub delivery_concurrency: usize,
    /// How long in-flight requests may finish on shutdown.
    pub shutdown_grace: Duration,
    /// Largest body stored in the event log.
    pub max_logged_body_bytes: usize,
    /// Longest wait a `Retry-After` answer can ask for.
    pub max_retry_after: Duration,
    /// E-mail alerts, when `alerts.smtp_host` is set.
    pub smtp: Option<Smtp>,
    /// Pause a webhook whose deliveries failed this long; `None`: never.
    pub pause_after: Option<Duration>,
    /// Networks herald never sends to (webhooks, token URLs, redirects).
    pub deny_networks: Vec<ipnet::IpNet>,
    /// Networks herald sends to even when denied above or as private.
    pub allow_networks: Vec<ipnet::IpNet>,
    /// Also refuse private LAN ranges (RFC 1918, fc00::/7).
    pub deny_private: bool,
    /// Raise the first alert once a webhook has failed this long.
    pub alert_after: Duration,
    /// Repeat the alert for a failing webhook this often.
    pub alert_interval: Duration,
    /// When the cleanup job runs.
    pub cleanup_schedule: cron::Schedule,
    /// The cleanup schedule as written, for display.
    pub cleanup_schedule_text: String,
    /// Age past which log entries and finished events are deleted.
    pub retention: Duration,
    /// Rows deleted per cleanup transaction.
    pub cleanup_batch_size: usize,
    /// Where each key not left at its default came from (`section.key` →
    /// "config file PATH" or "environment VAR"), for the settings page.
    pub origins: std::collections::BTreeMap<String, String>,
    /// The merged table (defaults, file, environment) this was validated
    /// from, so web-saved settings can be laid over it and checked the same way.
    table: toml::Table,
}

/// The keys an admin may change in the web admin while herald runs (see
/// [`crate::base::live`]); saved values win over the config file.
pub const LIVE_KEYS: &[&str] = &[
    "delivery.enabled",
    "router.read_interval",
    "cleanup.schedule",
    "cleanup.retention_days",
    "delivery.pause_after",
    "alerts.after",
    "alerts.interval",
];

impl Config {
    /// Loads the defaults, then `file` (if any), then the `HERALD_*` variables
    /// in `env`, and validates the result.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, Error> {
        let mut table: toml::Table =
            toml::from_str(DEFAULT_CONFIG).expect("embedded default config is valid TOML");
        let mut origins = std::collections::BTreeMap::new();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
                path: path.to_owned(),
                source,
            })?;
            let overlay: toml::Table = toml::from_str(&text).map_err(|e| Error::Syntax {
                path: path.to_owned(),
                message: e.to_string(),
            })?;
            // Check the file on its own first, so an unknown key is reported
            // against the file that holds it.
            check_shape(&table, &overlay, &path.display().to_string())?;
            for (section, keys) in &overlay {
                if let toml::Value::Table(keys) = keys {
                    for key in keys.keys() {
                        origins.insert(
                            format!("{section}.{key}"),
                            format!("config file {}", path.display()),
                        );
                    }
                }
            }
            merge(&mut table, overlay);
        }
        for (name, value) in env {
            let Some(rest) = name.strip_prefix("HERALD_") else {
                continue;
            };
            if NON_KEY_VARIABLES.contains(&name.as_str()) {
                continue;
            }
            let key = apply_env(&mut table, &name, rest, &value)?;
            origins.insert(key, format!("environment {name}"));
        }
        let mut config = validate_table(&table)?;
        config.origins = origins;
        config.table = table;
        Ok(config)
    }

    /// This configuration with settings saved in the web admin laid over
    /// it: each `(key, value)` names one of [`LIVE_KEYS`] and is typed like
    /// the key's default; the result is validated like a config file.
    pub fn with_ui(&self, values: &[(String, String)]) -> Result<Config, Error> {
        let mut table = self.table.clone();
        for (key, value) in values {
            let unknown = || Error::Shape {
                origin: "settings saved in the web admin".into(),
                message: format!("{key} cannot be changed there"),
            };
            if !LIVE_KEYS.contains(&key.as_str()) {
                return Err(unknown());
            }
            let (section, name) = key.split_once('.').ok_or_else(unknown)?;
            let Some(toml::Value::Table(keys)) = table.get_mut(section) else {
                return Err(unknown());
            };
            let current = keys.get(name).ok_or_else(unknown)?;
            let typed = typed_value(current, value, key)?;
            keys.insert(name.to_owned(), typed);
        }
        let mut config = validate_table(&table)?;
        config.origins = self.origins.clone();
        config.table = table;
        Ok(config)
    }

    /// A key's value as herald shows it on the settings page (`10.0`, `"0 0 * * * *"` unquoted).
    pub fn value_text(&self, key: &str) -> Option<String> {
        let (section, name) = key.split_once('.')?;
        match self.table.get(section)?.get(name)? {
            toml::Value::String(s) => Some(s.clone()),
            v => Some(v.to_string()),
        }
    }

    /// The defaults alone, as used when herald runs without a config file.
    pub fn defaults() -> Config {
        Config::load(None, std::iter::empty()).expect("embedded default config validates")
    }
}

/// Reads a number written either as `10` or `10.0`: admins write both.
fn number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Number {
        Int(i64),
        Float(f64),
    }
    Ok(match Number::deserialize(d)? {
        Number::Int(i) => i as f64,
        Number::Float(f) => f,
    })
}

/// Rejects keys of `overlay` that the defaults do not have.
fn check_shape(defaults: &toml::Table, overlay: &toml::Table, origin: &str) -> Result<(), Error> {
    for (section, value) in overlay {
        let Some(toml::Value::Table(known)) = defaults.get(section) else {
            return Err(Error::Shape {
                origin: origin.into(),
                message: format!(
                    "unknown section [{section}]; known sections: {}",
                    defaults.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            });
        };
        let toml::Value::Table(keys) = value else {
            return Err(Error::Shape {
                origin: origin.into(),
                message: format!("[{section}] must be a table"),
            });
        };
        for key in keys.keys() {
            if !known.contains_key(key) {
                return Err(Error::Shape {
                    origin: origin.into(),
                    message: format!(
                        "unknown key `{key}` in [{section}]; known keys: {}",
                        known.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                });
            }
        }
    }
    Ok(())
}

/// Lays `overlay` over `base`, section by section.
fn merge(base: &mut toml::Table, overlay: toml::Table) {
    for (key, value) in overlay {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(key, v);
            }
        }
    }
}

/// Deserialises and validates a merged table.
fn validate_table(table: &toml::Table) -> Result<Config, Error> {
    // Through text, so a type error shows the offending `key = value` line.
    let merged = toml::to_string(table).expect("a TOML table serialises");
    let raw: RawConfig = toml::from_str(&merged).map_err(|e: toml::de::Error| Error::Shape {
        origin: "configuration (defaults, file and environment merged)".into(),
        message: e.to_string(),
    })?;
    raw.validate()
}

/// `value` typed like `current` (the key's default): a whole number given
/// for a float key stays a float. `origin` names the variable or key in errors.
fn typed_value(current: &toml::Value, value: &str, origin: &str) -> Result<toml::Value, Error> {
    let shape = |message: String| Error::Shape {
        origin: origin.to_owned(),
        message,
    };
    Ok(match current {
        toml::Value::String(_) => toml::Value::String(value.to_owned()),
        toml::Value::Integer(_) => value
            .trim()
            .parse::<i64>()
            .map(toml::Value::Integer)
            .or_else(|_| value.trim().parse::<f64>().map(toml::Value::Float))
            .map_err(|_| shape(format!("expected a whole number, got {value:?}")))?,
        toml::Value::Float(_) => value
            .trim()
            .parse::<f64>()
            .map(toml::Value::Float)
            .map_err(|_| shape(format!("expected a number, got {value:?}")))?,
        toml::Value::Boolean(_) => value
            .trim()
            .parse::<bool>()
            .map(toml::Value::Boolean)
            .map_err(|_| shape(format!("expected true or false, got {value:?}")))?,
        // A list of strings, written comma-separated: `10.0.0.0/8,::1/128`.
        toml::Value::Array(_) => toml::Value::Array(
            value
                .split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(|item| toml::Value::String(item.to_owned()))
                .collect(),
        ),
        _ => return Err(shape("this key cannot be set this way".into())),
    })
}

/// `alerts.smtp_*` checked (see [`super::smtp::Smtp::from_settings`]).
fn smtp(a: &RawAlerts) -> Result<Option<Smtp>, Error> {
    Smtp::from_settings(super::smtp::Settings {
        host: &a.smtp_host,
        port: a.smtp_port,
        tls: &a.smtp_tls,
        username: &a.smtp_username,
        password: &a.smtp_password,
        from: &a.smtp_from,
        to: &a.smtp_to,
    })
    .map_err(|e| Error::Invalid {
        key: e.key,
        value: e.value,
        reason: e.reason,
    })
}

/// Applies one `HERALD_SECTION_KEY=value`, typed like the default it
/// replaces. Returns the key it set (`section.key`).
fn apply_env(
    table: &mut toml::Table,
    name: &str,
    rest: &str,
    value: &str,
) -> Result<String, Error> {
    let lower = rest.to_ascii_lowercase();
    for (section, keys) in table.iter_mut() {
        let Some(key_part) = lower.strip_prefix(&format!("{section}_")) else {
            continue;
        };
        let toml::Value::Table(keys) = keys else {
            continue;
        };
        let Some(current) = keys.get(key_part) else {
            continue;
        };
        if matches!(current, toml::Value::Table(_)) {
            return Err(Error::UnknownVariable(name.to_owned()));
        }
        let parsed = typed_value(current, value, name)?;
        keys.insert(key_part.to_owned(), parsed);
        return Ok(format!("{section}.{key_part}"));
    }
    Err(Error::UnknownVariable(name.to_owned()))
}

/// Checks `min <= value <= max`, naming the key when it is not.
fn in_range<T: PartialOrd + std::fmt::Display + Copy>(
    key: &'static str,
    value: T,
    min: T,
    max: T,
) -> Result<T, Error> {
    // Written so that NaN (which compares false with everything) is refused.
    if !(min..=max).contains(&value) {
        return Err(Error::Invalid {
            key,
            value: value.to_string(),
            reason: format!("must be between {min} and {max}"),
        });
    }
    Ok(value)
}

/// Parses a list of networks: CIDRs (`10.0.0.0/8`, `fe80::/10`) or single
/// addresses (`192.0.2.7`, taken as /32 or /128), naming the key and the
/// item that is neither.
fn networks(key: &'static str, items: &[String]) -> Result<Vec<ipnet::IpNet>, Error> {
    items
        .iter()
        .map(|item| {
            let text = item.trim();
            text.parse::<ipnet::IpNet>()
                .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map(|net| net.trunc())
                .map_err(|_| Error::Invalid {
                    key,
                    value: item.clone(),
                    reason: "not a network: write a CIDR such as 10.0.0.0/8 or fe80::/10, or one address".into(),
                })
        })
        .collect()
}

impl RawConfig {
    /// Checks every value and converts it to the type herald uses.
    pub fn validate(self) -> Result<Config, Error> {
        let listen: SocketAddr = self.server.listen.parse().map_err(|_| Error::Invalid {
            key: "server.listen",
            value: self.server.listen.clone(),
            reason: "expected an address with port, e.g. 127.0.0.1:8470 or [::1]:8470".into(),
        })?;
        let max_body_bytes = in_range(
            "server.max_body_bytes",
            self.server.max_body_bytes,
            1024,
            64 << 20,
        )? as usize;
        let header_timeout = in_range(
            "server.header_timeout",
            self.server.header_timeout,
            0.1,
            3600.0,
        )?;
        let body_timeout = in_range("server.body_timeout", self.server.body_timeout, 0.1, 3600.0)?;
        let max_connections = in_range(
            "server.max_connections",
            self.server.max_connections,
            8,
            65_536,
        )?;
        let database_url = match self.database.url.trim() {
            "" => None,
            url => Some(DatabaseUrl::parse(url).map_err(|reason| Error::Invalid {
                key: "database.url",
                value: DatabaseUrl(url.to_owned()).masked(),
                reason,
            })?),
        };
        if self.database.path.trim().is_empty() {
            return Err(Error::Invalid {
                key: "database.path",
                value: String::new(),
                reason: "must name a file".into(),
            });
        }
        let durability = match self.database.durability.as_str() {
            "full" => Durability::Full,
            "normal" => Durability::Normal,
            other => {
                return Err(Error::Invalid {
                    key: "database.durability",
                    value: other.to_owned(),
                    reason: "must be \"full\" or \"normal\"".into(),
                });
            }
        };
        let busy_timeout = in_range(
            "database.busy_timeout",
            self.database.busy_timeout,
            0.05,
            600.0,
        )?;
        let min_free_mb = in_range(
            "database.min_free_mb",
            self.database.min_free_mb,
            0,
            1 << 30,
        )?;
        let lease = in_range("database.lease", self.database.lease, 3.0, 600.0)?;
        let read_interval = in_range(
            "router.read_interval",
            self.router.read_interval,
            0.1,
            3600.0,
        )?;
        let router_batch_size = in_range("router.batch_size", self.router.batch_size, 1, 10_000)?;
        let concurrency = in_range("delivery.concurrency", self.delivery.concurrency, 1, 1024)?;
        let grace = in_range(
            "delivery.shutdown_grace",
            self.delivery.shutdown_grace,
            0.0,
            300.0,
        )?;
        let max_logged = in_range(
            "delivery.max_logged_body_bytes",
            self.delivery.max_logged_body_bytes,
            0,
            16 << 20,
        )?;
        let max_retry_after = in_range(
            "delivery.max_retry_after",
            self.delivery.max_retry_after,
            0.0,
            86_400.0,
        )?;
        let pause_after = in_range(
            "delivery.pause_after",
            self.delivery.pause_after,
            0.0,
            30.0 * 86_400.0,
        )?;
        let deny_networks = networks("delivery.deny_networks", &self.delivery.deny_networks)?;
        let allow_networks = networks("delivery.allow_networks", &self.delivery.allow_networks)?;
        let alert_after = in_range("alerts.after", self.alerts.after, 0.0, 7.0 * 86_400.0)?;
        let alert_interval =
            in_range("alerts.interval", self.alerts.interval, 0.1, 7.0 * 86_400.0)?;
        let cleanup_schedule: cron::Schedule =
            self.cleanup.schedule.parse().map_err(|e| Error::Invalid {
                key: "cleanup.schedule",
                value: self.cleanup.schedule.clone(),
                reason: format!(
                    "not a cron expression with seconds (sec min hour day month weekday): {e}"
                ),
            })?;
        let retention_days = in_range(
            "cleanup.retention_days",
            self.cleanup.retention_days,
            1,
            3650,
        )?;
        let cleanup_batch = in_range("cleanup.batch_size", self.cleanup.batch_size, 1, 100_000)?;
        let stream_max_subscribers = in_range(
            "stream.max_subscribers",
            self.stream.max_subscribers,
            0,
            10_000,
        )?;
        let stream_buffer = in_range("stream.buffer", self.stream.buffer, 16, 1_000_000)?;
        let log_format = match self.log.format.as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err(Error::Invalid {
                    key: "log.format",
                    value: other.to_owned(),
                    reason: "must be \"text\" or \"json\"".into(),
                });
            }
        };
        Ok(Config {
            listen,
            max_body_bytes,
            header_timeout: Duration::from_secs_f64(header_timeout),
            body_timeout: Duration::from_secs_f64(body_timeout),
            max_connections: max_connections as usize,
            log_format,
            metrics_public: self.metrics.public,
            stream_max_subscribers: stream_max_subscribers as usize,
            stream_buffer: stream_buffer as usize,
            database_url,
            database_path: PathBuf::from(self.database.path),
            durability,
            busy_timeout: Duration::from_secs_f64(busy_timeout),
            min_free_bytes: min_free_mb.saturating_mul(1_000_000),
            lease: Duration::from_secs_f64(lease),
            read_interval: Duration::from_secs_f64(read_interval),
            router_batch_size: router_batch_size as usize,
            delivery_enabled: self.delivery.enabled,
            delivery_concurrency: concurrency as usize,
            shutdown_grace: Duration::from_secs_f64(grace),
            max_logged_body_bytes: max_logged as usize,
            max_retry_after: Duration::from_secs_f64(max_retry_after),
            pause_after: (pause_after > 0.0).then(|| Duration::from_secs_f64(pause_after)),
            deny_networks,
            allow_networks,
            deny_private: self.delivery.deny_private,
            alert_after: Duration::from_secs_f64(alert_after),
            alert_interval: Duration::from_secs_f64(alert_interval),
            smtp: smtp(&self.alerts)?,
            cleanup_schedule,
            cleanup_schedule_text: self.cleanup.schedule,
            retention: Duration::from_secs(retention_days * 86_400),
            cleanup_batch_size: cleanup_batch as usize,
            origins: Default::default(),
            table: toml::Table::new(),
        })
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
