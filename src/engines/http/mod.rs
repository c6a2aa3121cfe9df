//! Sending one rendered request: the shared HTTP client, the SSRF guard
//! ([`guard`]), redirects followed hop by hop, and transport errors in
//! plain words.

mod redirect;

pub mod guard;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::engines::render::RenderedRequest;
use guard::NetworkGuard;
use redirect::{Hop, is_redirect};

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
    /// The SSRF guard refused the address (see [`guard`]).
    #[error("not sent to {host}: {reason}")]
    Refused { host: String, reason: String },
    /// A redirect herald does not follow.
    #[error("redirect not followed: {0}")]
    Redirect(String),
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
    /// The `Location` header, as sent.
    pub location: Option<String>,
}

/// Most redirects followed for a webhook that follows them.
const MAX_REDIRECTS: usize = 5;

/// The HTTP client could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the HTTP client: {0} (on Debian, HTTPS needs the ca-certificates package)")]
pub struct SetupError(String);

/// How a request treats a redirect answer.
#[derive(Debug, Clone, Copy)]
pub enum Redirects<'a> {
    /// A 3xx is the answer (counted as a failure by the deliverer).
    Refuse,
    /// Up to [`MAX_REDIRECTS`] are followed. To another origin (scheme,
    /// host, port), the credentials go no further: see [`Credentials`].
    Follow(Credentials<'a>),
}

/// What of a request is a credential, for redirects to another origin:
/// the named headers (those herald added for authentication and signing),
/// `Authorization`, `Proxy-Authorization`, `Cookie` and any header whose
/// value holds one of `secrets` are dropped; a body holding a secret stops
/// the redirect instead.
#[derive(Debug, Clone, Copy)]
pub struct Credentials<'a> {
    /// Headers herald added for authentication or signing.
    pub headers: &'a [String],
    /// Secret values in the forms they may take in a request.
    pub secrets: &'a [String],
}

/// herald's HTTP client: rustls, connection reuse, every address checked
/// by the SSRF guard, redirects followed (or not) by herald itself. Cheap
/// to clone.
#[derive(Clone)]
pub struct Client {
    inner: reqwest::Client,
    guard: Arc<NetworkGuard>,
}

impl Client {
    /// A client whose connections `guard` allows. Fails when the system
    /// has no CA certificates to verify HTTPS endpoints with.
    pub fn new(guard: NetworkGuard) -> Result<Client, SetupError> {
        let guard = Arc::new(guard);
        let inner = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .pool_max_idle_per_host(IDLE_PER_HOST)
            // Followed here, hop by hop, so each target passes the guard
            // and credentials stay with their origin.
            .redirect(reqwest::redirect::Policy::none())
            // Straight to the endpoint: a proxy from the environment would
            // connect where the guard cannot see.
            .no_proxy()
            .dns_resolver(Arc::new(guard::GuardedResolver(guard.clone())))
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
            })?;
        Ok(Client { inner, guard })
    }

    /// Sends `req`; returns the answer (any status) and how long it took,
    /// redirects included. `max_body` bytes of the response body are kept.
    pub async fn send(
        &self,
        req: &RenderedRequest,
        timeout: Duration,
        max_body: usize,
        redirects: Redirects<'_>,
    ) -> (Result<Response, Error>, Duration) {
        let started = Instant::now();
        let result = self.follow(req, timeout, max_body, redirects).await;
        (result, started.elapsed())
    }

    /// Sends `req` and, when allowed, the requests its redirects ask for,
    /// all within `timeout`.
    async fn follow(
        &self,
        req: &RenderedRequest,
        timeout: Duration,
        max_body: usize,
        redirects: Redirects<'_>,
    ) -> Result<Response, Error> {
        let deadline = Instant::now() + timeout;
        let mut hop = Hop::first(req).map_err(Error::Other)?;
        let mut followed = 0;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::Timeout(timeout));
            }
            let resp = self.exchange(&hop, left, timeout, max_body).await?;
            let Redirects::Follow(credentials) = redirects else {
                return Ok(resp);
            };
            let Some(location) = resp
                .location
                .as_deref()
                .filter(|_| is_redirect(resp.status))
            else {
                return Ok(resp);
            };
            if followed == MAX_REDIRECTS {
                return Err(Error::Redirect(format!(
                    "more than {MAX_REDIRECTS} redirects in a row"
                )));
            }
            followed += 1;
            hop = hop
                .next(
                    resp.status,
                    location,
                    credentials.headers,
                    credentials.secrets,
                )
                .map_err(Error::Redirect)?;
        }
    }

    /// One request and its answer. `left` bounds this exchange; `timeout`
    /// is the whole send's, for messages.
    async fn exchange(
        &self,
        hop: &Hop,
        left: Duration,
        timeout: Duration,
        max_body: usize,
    ) -> Result<Response, Error> {
        let host = match hop.url.port() {
            Some(p) => format!("{}:{p}", hop.url.host_str().unwrap_or_default()),
            None => hop.url.host_str().unwrap_or_default().to_owned(),
        };
        // An address written in the URL is connected to without a lookup,
        // so the resolver never sees it: check it here.
        let literal = match hop.url.host() {
            Some(url::Host::Ipv4(ip)) => Some(std::net::IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(std::net::IpAddr::V6(ip)),
            _ => None,
        };
        if let Some(ip) = literal {
            self.guard.check(ip).map_err(|r| Error::Refused {
                host: host.clone(),
                reason: r.to_string(),
            })?;
        }
        let mut builder = self
            .inner
            .request(hop.method.clone(), hop.url.clone())
            .timeout(left);
        for (k, v) in &hop.headers {
            builder = builder.header(k, v);
        }
        if let Some(body) = hop.body.as_ref().filter(|b| !b.is_empty()) {
            builder = builder.body(body.clone());
        }
        let https = hop.url.scheme() == "https";
        let classify = |e: reqwest::Error| classify(e, &host, https, timeout);
        let mut resp = builder.send().await.map_err(classify)?;
        let status = resp.status().as_u16();
        let header = |name: reqwest::header::HeaderName| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let retry_after = header(reqwest::header::RETRY_AFTER);
        let location = header(reqwest::header::LOCATION);
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
            location,
        })
    }
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
        if let Some(refused) = err.downcast_ref::<guard::Refused>() {
            // From the resolver: every address of the name was refused.
            return Error::Refused {
                host: host.to_owned(),
                reason: refused.to_string(),
            };
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
