//! Sending one rendered request: the shared HTTP client, the success rule
//! (2xx within the timeout) and transport errors in plain words.

use std::time::{Duration, Instant};

use crate::engines::render::RenderedRequest;
use crate::spec::request::Method;

/// Connection set-up limit, within the webhook's own timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Response bytes past the logging cap still read to keep the connection.
const DRAIN_LIMIT: usize = 1 << 20;
/// Idle connections kept per host for reuse.
const IDLE_PER_HOST: usize = 32;

/// Why an attempt did not get a 2xx answer. The variants let a retry policy
/// decide what to do; `Display` is what the event log shows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// No answer within the webhook's timeout.
    #[error("timed out after {0:?} without a complete answer")]
    Timeout(Duration),
    /// No connection within the connect timeout.
    #[error("timed out after {0:?} connecting to {1}")]
    ConnectTimeout(Duration, String),
    /// Nothing listens on the endpoint's port.
    #[error("connection refused by {0}")]
    ConnectionRefused(String),
    /// The host name does not resolve.
    #[error("DNS lookup failed for {host}: {detail}")]
    Dns { host: String, detail: String },
    /// TLS handshake or certificate problem.
    #[error("TLS error with {host}: {detail}")]
    Tls { host: String, detail: String },
    /// The endpoint closed the connection mid-exchange.
    #[error("connection reset by {0}")]
    Reset(String),
    /// Any other failure to connect.
    #[error("could not connect to {host}: {detail}")]
    Connect { host: String, detail: String },
    /// The endpoint answered with a non-2xx status.
    #[error("HTTP {0}")]
    Status(u16),
    /// The request could not be built or sent for another reason.
    #[error("request failed: {0}")]
    Other(String),
}

/// The answer to a sent request.
#[derive(Debug, Clone)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// Response headers, `Field: Value` per line.
    pub headers: String,
    /// Up to `max_body` bytes of the body (lossy UTF-8), and whether it was cut.
    pub body: String,
    /// The `Retry-After` header, as sent.
    pub retry_after: Option<String>,
}

/// Most redirects followed for a webhook that follows them.
const MAX_REDIRECTS: usize = 5;

/// The HTTP client could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the HTTP client: {0} (on Debian, HTTPS needs the ca-certificates package)")]
pub struct SetupError(String);

/// Builds an HTTP client: rustls, connection reuse, and by default no
/// redirects followed (a 3xx is an answer, not a success); with
/// `follow_redirects`, up to [`MAX_REDIRECTS`]. Fails when the system has
/// no CA certificates to verify HTTPS endpoints with.
pub fn build_client(follow_redirects: bool) -> Result<reqwest::Client, SetupError> {
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .pool_max_idle_per_host(IDLE_PER_HOST)
        .redirect(if follow_redirects {
            reqwest::redirect::Policy::limited(MAX_REDIRECTS)
        } else {
            reqwest::redirect::Policy::none()
        })
        .user_agent(concat!("herald/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| {
            let mut chain = vec![e.to_string()];
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                chain.push(s.to_string());
                source = s.source();
            }
            SetupError(chain.join(": "))
        })
}

/// Sends `req`; returns the answer (any status) and how long it took.
/// `max_body` bytes of the response body are read and kept.
pub async fn send(
    client: &reqwest::Client,
    req: &RenderedRequest,
    timeout: Duration,
    max_body: usize,
) -> (Result<Response, Error>, Duration) {
    let started = Instant::now();
    let result = send_inner(client, req, timeout, max_body).await;
    (result, started.elapsed())
}

async fn send_inner(
    client: &reqwest::Client,
    req: &RenderedRequest,
    timeout: Duration,
    max_body: usize,
) -> Result<Response, Error> {
    let method = match req.method {
        Method::Post => reqwest::Method::POST,
        Method::Get => reqwest::Method::GET,
        Method::Put => reqwest::Method::PUT,
        Method::Delete => reqwest::Method::DELETE,
    };
    let host = reqwest::Url::parse(&req.url)
        .ok()
        .and_then(|u| {
            u.host_str().map(|h| match u.port() {
                Some(p) => format!("{h}:{p}"),
                None => h.to_owned(),
            })
        })
        .unwrap_or_else(|| req.url.clone());
    let mut builder = client.request(method, &req.url).timeout(timeout);
    for (k, v) in &req.headers {
        builder = builder.header(k, v);
    }
    if !req.body.is_empty() {
        builder = builder.body(req.body.clone());
    }
    let https = req.url.starts_with("https:");
    let classify = |e: reqwest::Error| classify(e, &host, https, timeout);
    let mut resp = builder.send().await.map_err(classify)?;
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| format!("{}: {}", k, String::from_utf8_lossy(v.as_bytes())))
        .collect::<Vec<_>>()
        .join("\n");
    // Read the body to its end (keeping `max_body` bytes) so the connection
    // can be reused; past `DRAIN_LIMIT` more, give the connection up instead.
    let mut body = Vec::new();
    let mut cut = false;
    let mut skipped = 0usize;
    while let Some(chunk) = resp.chunk().await.map_err(classify)? {
        let room = max_body.saturating_sub(body.len());
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            cut = true;
            skipped += chunk.len() - room;
            if skipped > DRAIN_LIMIT {
                break;
            }
        } else {
            body.extend_from_slice(&chunk);
        }
    }
    let mut body = String::from_utf8_lossy(&body).into_owned();
    if cut {
        body.push_str(" …[cut]");
    }
    Ok(Response {
        status,
        headers,
        body,
        retry_after,
    })
}

/// Puts a reqwest error into words an admin can act on.
fn classify(e: reqwest::Error, host: &str, https: bool, timeout: Duration) -> Error {
    // reqwest's messages name the whole URL, secrets included; the host is enough.
    let e = e.without_url();
    if e.is_timeout() && e.is_connect() {
        return Error::ConnectTimeout(CONNECT_TIMEOUT.min(timeout), host.to_owned());
    }
    if e.is_timeout() {
        return Error::Timeout(timeout);
    }
    // Walk the source chain for the root cause.
    let mut io_kind = None;
    let mut chain = Vec::new();
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            io_kind = Some(io.kind());
        }
        chain.push(err.to_string());
        source = err.source();
    }
    let detail = chain.last().cloned().unwrap_or_else(|| e.to_string());
    let all = chain.join(": ").to_ascii_lowercase();
    match io_kind {
        Some(std::io::ErrorKind::ConnectionRefused) => {
            return Error::ConnectionRefused(host.to_owned());
        }
        Some(
            std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::BrokenPipe,
        ) => {
            return Error::Reset(host.to_owned());
        }
        Some(std::io::ErrorKind::TimedOut) => return Error::Timeout(timeout),
        _ => {}
    }
    if all.contains("dns error") || all.contains("failed to lookup address") {
        return Error::Dns {
            host: host.to_owned(),
            detail,
        };
    }
    if all.contains("certificate") || all.contains("tls") || all.contains("handshake") {
        return Error::Tls {
            host: host.to_owned(),
            detail,
        };
    }
    if all.contains("connection closed")
        || all.contains("incomplete message")
        || all.contains("reset")
    {
        return Error::Reset(host.to_owned());
    }
    if e.is_connect() && https {
        // Connected (not refused, reset or timed out), but the secure session failed: rustls
        // reports protocol and certificate problems in its own words.
        return Error::Tls {
            host: host.to_owned(),
            detail,
        };
    }
    if e.is_connect() {
        return Error::Connect {
            host: host.to_owned(),
            detail,
        };
    }
    Error::Other(chain.join(": "))
}
