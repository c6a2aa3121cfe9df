//! The e-mail alert settings (`alerts.smtp_*`), checked: the server, how
//! the connection is protected, the login, the sender and the recipients.
//! Read by [`super::config`]; used by the mail engine.

use super::secret::Secret;

/// E-mail alerts (`alerts.smtp_*`); `None` in the config when
/// `alerts.smtp_host` is empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Smtp {
    /// The SMTP server.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// How the connection is protected.
    pub tls: SmtpTls,
    /// Login, when the server wants one.
    pub username: Option<String>,
    /// Its password (never printed).
    pub password: Secret,
    /// The sender address.
    pub from: String,
    /// The recipients.
    pub to: Vec<String>,
}

/// `alerts.smtp_tls`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (refused if the server can't).
    StartTls,
    /// TLS from the first byte (SMTPS, port 465).
    Tls,
    /// No encryption: only for a relay on the same host or a test.
    None,
}

/// The keys as written in `[alerts]`.
pub struct Settings<'a> {
    /// `smtp_host`; empty turns e-mail alerts off.
    pub host: &'a str,
    /// `smtp_port`.
    pub port: u64,
    /// `smtp_tls`.
    pub tls: &'a str,
    /// `smtp_username`.
    pub username: &'a str,
    /// `smtp_password`.
    pub password: &'a str,
    /// `smtp_from`.
    pub from: &'a str,
    /// `smtp_to`.
    pub to: &'a [String],
}

/// A refused key, its value and why.
#[derive(Debug)]
pub struct Refused {
    /// The key, e.g. `alerts.smtp_to`.
    pub key: &'static str,
    /// The value as written.
    pub value: String,
    /// Why it is refused.
    pub reason: String,
}

impl Smtp {
    /// Checks the settings: off when the host is empty; else a port, a TLS
    /// mode, a sender and at least one recipient that look like addresses.
    pub fn from_settings(s: Settings<'_>) -> Result<Option<Smtp>, Refused> {
        let host = s.host.trim();
        if host.is_empty() {
            return Ok(None);
        }
        let refused = |key: &'static str, value: &str, reason: &str| Refused {
            key,
            value: value.to_owned(),
            reason: reason.to_owned(),
        };
        let port = u16::try_from(s.port)
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| {
                refused(
                    "alerts.smtp_port",
                    &s.port.to_string(),
                    "must be between 1 and 65535",
                )
            })?;
        let tls = match s.tls {
            "starttls" => SmtpTls::StartTls,
            "tls" => SmtpTls::Tls,
            "none" => SmtpTls::None,
            other => {
                return Err(refused(
                    "alerts.smtp_tls",
                    other,
                    "must be \"starttls\", \"tls\" or \"none\"",
                ));
            }
        };
        let address = |key: &'static str, v: &str| -> Result<String, Refused> {
            let v = v.trim();
            match v.split_once('@') {
                Some((user, domain))
                    if !user.is_empty()
                        && !domain.is_empty()
                        && !v.contains(char::is_whitespace) =>
                {
                    Ok(v.to_owned())
                }
                _ => Err(refused(
                    key,
                    v,
                    "must be an e-mail address such as herald@example.com",
                )),
            }
        };
        let from = address("alerts.smtp_from", s.from)?;
        if s.to.is_empty() {
            return Err(refused(
                "alerts.smtp_to",
                "[]",
                "name at least one recipient when alerts.smtp_host is set",
            ));
        }
        let to =
            s.to.iter()
                .map(|t| address("alerts.smtp_to", t))
                .collect::<Result<_, _>>()?;
        let username = Some(s.username.trim().to_owned()).filter(|u| !u.is_empty());
        Ok(Some(Smtp {
            host: host.to_owned(),
            port,
            tls,
            username,
            password: Secret::new(s.password),
            from,
            to,
        }))
    }
}
