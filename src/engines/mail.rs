//! E-mail alerts over SMTP (`alerts.smtp_*`): one message per alert, to
//! every recipient, through lettre with rustls (the same TLS stack and
//! system roots as the HTTP client).

use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::base::config::{Smtp, SmtpTls};

/// Longest subject line; the whole message is in the body.
const SUBJECT_CHARS: usize = 120;

/// Why a mail could not be set up or sent.
#[derive(Debug, Clone, thiserror::Error)]
#[error("e-mail alert: {0}")]
pub struct Error(String);

/// Sends alert mails. Cheap to clone.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
}

impl Mailer {
    /// A mailer for the configured server; fails on an address lettre
    /// cannot read or a host it cannot use for TLS.
    pub fn new(smtp: &Smtp) -> Result<Mailer, Error> {
        let mailbox = |a: &str| {
            a.parse::<Mailbox>()
                .map_err(|e| Error(format!("{a:?} is not an address: {e}")))
        };
        let builder = match smtp.tls {
            SmtpTls::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&smtp.host),
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&smtp.host),
            SmtpTls::None => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
                &smtp.host,
            )),
        }
        .map_err(|e| Error(format!("cannot use {}: {e}", smtp.host)))?;
        let mut builder = builder
            .port(smtp.port)
            .timeout(Some(std::time::Duration::from_secs(30)));
        if let Some(user) = &smtp.username {
            builder = builder.credentials(Credentials::new(
                user.clone(),
                smtp.password.expose().to_owned(),
            ));
        }
        Ok(Mailer {
            transport: builder.build(),
            from: mailbox(&smtp.from)?,
            to: smtp
                .to
                .iter()
                .map(|t| mailbox(t))
                .collect::<Result<_, _>>()?,
        })
    }

    /// Sends one alert: `herald KIND: MESSAGE` as the subject (cut to 120
    /// characters), the whole message as the text body.
    pub async fn send_alert(&self, kind: &str, message: &str) -> Result<(), Error> {
        let mut subject: String = format!("herald {kind}: {message}")
            .chars()
            .filter(|c| !c.is_control())
            .take(SUBJECT_CHARS)
            .collect();
        if subject.chars().count() == SUBJECT_CHARS {
            subject.push('…');
        }
        let mut builder = Message::builder().from(self.from.clone()).subject(subject);
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        let mail = builder
            .header(ContentType::TEXT_PLAIN)
            .body(format!("{message}\n\n-- \nherald, the event router\n"))
            .map_err(|e| Error(format!("cannot build the message: {e}")))?;
        self.transport
            .send(mail)
            .await
            .map(drop)
            .map_err(|e| Error(format!("cannot send through the SMTP server: {e}")))
    }
}
