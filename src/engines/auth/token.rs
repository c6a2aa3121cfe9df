//! Fetched tokens: calling the auth URL (the appliance's token flow, or
//! OAuth2 client credentials), picking the token from the answer, and a
//! per-webhook cache that refreshes on its interval or after a 401, with one
//! fetch at a time per webhook (no thundering herd on the auth server).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value as Json;

use super::{basic_header, set_header};
use crate::base::secret::Secret;
use crate::engines::http as client;
use crate::engines::mask;
use crate::engines::render::{CompiledRequest, RenderedRequest};
use crate::spec::auth::{Auth, OAuth2, Step, TokenFlow, parse_path};
use crate::spec::request::Method;
use crate::spec::webhook::WebhookSpec;

/// How long a failed fetch is answered from memory, so many deliveries at
/// once do not each call a failing auth server.
const FAILURE_HOLD: Duration = Duration::from_secs(2);
/// Refresh this long before an OAuth2 `expires_in` runs out.
const EXPIRY_MARGIN: Duration = Duration::from_secs(30);
/// Characters of the auth server's answer quoted in errors.
const EXCERPT_CHARS: usize = 200;
/// Largest auth answer read.
const MAX_ANSWER_BYTES: usize = 256 * 1024;

/// Why no token could be had; the delivery attempt fails with this message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The auth request's templates do not render.
    #[error("auth request template: {0}")]
    Template(String),
    /// The auth server could not be reached.
    #[error("auth server {url}: {error}")]
    Request { url: String, error: client::Error },
    /// The auth server answered with a non-2xx status.
    #[error("auth server {method} {url} answered HTTP {status}: {excerpt}")]
    Status {
        method: String,
        url: String,
        status: u16,
        excerpt: String,
    },
    /// The token cannot be sent in a header.
    #[error("auth server {url} answered with a token that is not a valid header value")]
    BadToken { url: String },
    /// The answer has no token where the path says.
    #[error("auth server {url} answered without a token at `{path}`: {excerpt}")]
    NoToken {
        url: String,
        path: String,
        excerpt: String,
    },
}

/// The token at `path` in a JSON answer: a string, or a number as text.
pub fn lookup_json(answer: &Json, path: &str) -> Option<String> {
    let mut v = answer;
    for step in parse_path(path).ok()? {
        v = match step {
            Step::Key(k) => v.get(&k)?,
            Step::Index(i) => v.get(i)?,
        };
    }
    match v {
        Json::String(s) if !s.is_empty() => Some(s.clone()),
        Json::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The token at an element path in an XML answer (`auth.token`, with or
/// without the root element's name first; `[n]` picks the n-th match).
pub fn lookup_xml(answer: &str, path: &str) -> Option<String> {
    use quick_xml::events::Event as X;
    let steps = parse_path(path).ok()?;
    // Elements as (path of names, text).
    let mut reader = quick_xml::Reader::from_str(answer);
    let mut stack: Vec<String> = Vec::new();
    let mut counts: HashMap<Vec<String>, usize> = HashMap::new();
    let mut indexed: Vec<String> = Vec::new();
    let mut text = String::new();
    let mut found: Vec<(Vec<String>, String)> = Vec::new();
    loop {
        match reader.read_event().ok()? {
            X::Start(s) => {
                let name = s.local_name().as_ref().to_owned();
                stack.push(name.clone());
                // Counted per parent: item[1].t is the t of the second item.
                let mut key = indexed.clone();
                key.push(name.clone());
                let n = counts.entry(key).or_default();
                indexed.push(format!("{name}[{n}]"));
                *n += 1;
                text.clear();
            }
            X::Text(t) => text.push_str(&t.into_inner()),
            X::CData(c) => text.push_str(&c.into_inner()),
            X::GeneralRef(r) => {
                if let Ok(Some(c)) = r.resolve_char_ref() {
                    text.push(c);
                } else if let Some(s) =
                    quick_xml::escape::resolve_predefined_entity(&r.into_inner())
                {
                    text.push_str(s);
                }
            }
            X::End(_) => {
                found.push((indexed.clone(), text.trim().to_owned()));
                stack.pop();
                indexed.pop();
                text.clear();
            }
            X::Eof => break,
            _ => {}
        }
    }
    let wanted: Vec<String> = {
        let mut w = Vec::new();
        for s in &steps {
            match s {
                Step::Key(k) => w.push(format!("{k}[0]")),
                Step::Index(i) => {
                    let last = w.pop()?;
                    let name = last.split('[').next()?.to_owned();
                    w.push(format!("{name}[{i}]"));
                }
            }
        }
        w
    };
    found
        .into_iter()
        .find(|(p, t)| !t.is_empty() && (p == &wanted || p.get(1..) == Some(&wanted[..])))
        .map(|(_, t)| t)
}

/// Compiles a token flow's auth request (URL, headers, body) as templates.
pub fn compile_flow(t: &TokenFlow) -> Result<CompiledRequest, crate::engines::render::Error> {
    let spec = WebhookSpec {
        name: "auth".into(),
        url: t.url.clone(),
        method: t.method,
        headers: t.headers.clone(),
        body_template: t.body_template.clone(),
        body_format: t.body_mime,
        ..WebhookSpec::example(&t.url)
    };
    let compiled = CompiledRequest::compile(&spec, None)?;
    // Render once with sample credentials, so a broken body is refused at save.
    compiled.render_in(&auth_context("user", "password"))?;
    Ok(compiled)
}

/// The context of an auth request's templates.
fn auth_context(username: &str, password: &str) -> minijinja::Value {
    minijinja::context! { auth => minijinja::context! { username => username, password => password } }
}

/// A fetched token and how long it may be used.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The token.
    pub token: Secret,
    /// Use it for at most this long.
    pub lifetime: Duration,
}

/// Quotes the start of an answer, with the credentials scrubbed (before
/// cutting, so no part of one survives the cut).
fn excerpt(body: &str, secrets: &[String]) -> String {
    let scrubbed = mask::scrub(body, secrets);
    let mut e: String = scrubbed.chars().take(EXCERPT_CHARS).collect();
    if scrubbed.chars().count() > EXCERPT_CHARS {
        e.push('…');
    }
    e
}

/// The shape of an answer that has no token where expected, without its
/// values: the answer may hold the token under another name.
fn redacted_shape(body: &str) -> String {
    fn redact(v: &Json) -> Json {
        match v {
            Json::Object(m) => {
                Json::Object(m.iter().map(|(k, v)| (k.clone(), redact(v))).collect())
            }
            Json::Array(a) => Json::Array(a.iter().map(redact).collect()),
            Json::Null | Json::Bool(_) => v.clone(),
            _ => Json::String(mask::MASK.into()),
        }
    }
    match serde_json::from_str::<Json>(body) {
        Ok(v) => excerpt(&redact(&v).to_string(), &[]),
        Err(_) => format!(
            "an answer of {} bytes that is not JSON (values not shown)",
            body.len()
        ),
    }
}

/// The forms a credential can take on the wire, to scrub from error texts.
fn credential_forms(values: &[&str], basic: Option<(&str, &str)>) -> Vec<String> {
    let mut out: Vec<String> = values.iter().flat_map(|v| mask::forms(v)).collect();
    if let Some((user, password)) = basic {
        out.push(
            basic_header(user, password)
                .trim_start_matches("Basic ")
                .to_owned(),
        );
    }
    out
}

/// The URL a token kind calls.
fn auth_url(auth: &Auth) -> &str {
    match auth {
        Auth::Token(t) => &t.url,
        Auth::Oauth2(o) => &o.token_url,
        _ => "",
    }
}

/// `application/x-www-form-urlencoded` encoding of one value.
fn form_encode(s: &str) -> String {
    crate::engines::render::escape::url_component(s)
}

fn minutes(m: f64) -> Duration {
    Duration::from_secs_f64(m * 60.0)
}

/// Calls the auth server once.
pub async fn fetch(
    http: &client::Client,
    auth: &Auth,
    timeout: Duration,
) -> Result<Fetched, Error> {
    match auth {
        Auth::Token(t) => fetch_flow(http, t, timeout).await,
        Auth::Oauth2(o) => fetch_oauth2(http, o, timeout).await,
        _ => unreachable!("only token kinds fetch"),
    }
}

async fn send(
    http: &client::Client,
    req: &RenderedRequest,
    timeout: Duration,
    secrets: &[String],
) -> Result<String, Error> {
    // The auth URL's query may carry credentials (GET flows): not shown.
    let url = mask::without_query(&mask::url(&req.url));
    let (result, _) = http
        .send(req, timeout, MAX_ANSWER_BYTES, client::Redirects::Refuse)
        .await;
    let resp = result.map_err(|error| Error::Request {
        url: url.clone(),
        error,
    })?;
    if !(200..300).contains(&resp.status) {
        return Err(Error::Status {
            method: req.method.to_string(),
            url,
            status: resp.status,
            excerpt: excerpt(&resp.body, secrets),
        });
    }
    Ok(resp.body)
}

async fn fetch_flow(
    http: &client::Client,
    t: &TokenFlow,
    timeout: Duration,
) -> Result<Fetched, Error> {
    let compiled = compile_flow(t).map_err(|e| Error::Template(e.to_string()))?;
    let mut req = compiled
        .render_in(&auth_context(&t.username, t.password.expose()))
        .map_err(|e| Error::Template(e.to_string()))?;
    if t.basic {
        set_header(
            &mut req.headers,
            "Authorization",
            basic_header(&t.username, t.password.expose()),
        );
    }
    let secrets = credential_forms(
        &[t.password.expose()],
        t.basic
            .then_some((t.username.as_str(), t.password.expose())),
    );
    let body = send(http, &req, timeout, &secrets).await?;
    let token = match serde_json::from_str::<Json>(&body) {
        Ok(json) => lookup_json(&json, &t.token_path),
        Err(_) => lookup_xml(&body, &t.token_path),
    };
    match token {
        Some(token) => Ok(Fetched {
            token: Secret::new(token),
            lifetime: minutes(t.refresh_minutes),
        }),
        None => Err(Error::NoToken {
            url: mask::without_query(&mask::url(&req.url)),
            path: t.token_path.clone(),
            excerpt: redacted_shape(&body),
        }),
    }
}

async fn fetch_oauth2(
    http: &client::Client,
    o: &OAuth2,
    timeout: Duration,
) -> Result<Fetched, Error> {
    let mut body = "grant_type=client_credentials".to_owned();
    if let Some(scope) = o.scope.as_deref().filter(|s| !s.is_empty()) {
        body.push_str("&scope=");
        body.push_str(&crate::engines::render::escape::url_component(scope));
    }
    let req = RenderedRequest {
        method: Method::Post,
        url: o.token_url.clone(),
        headers: vec![
            (
                "Content-Type".into(),
                "application/x-www-form-urlencoded".into(),
            ),
            ("Accept".into(), "application/json".into()),
            (
                "Authorization".into(),
                basic_header(&o.client_id, o.client_secret.expose()),
            ),
        ],
        body,
    };
    let secrets = credential_forms(
        &[o.client_secret.expose()],
        Some((
            &form_encode(&o.client_id),
            &form_encode(o.client_secret.expose()),
        )),
    );
    let answer = send(http, &req, timeout, &secrets).await?;
    let json: Json = serde_json::from_str(&answer).unwrap_or(Json::Null);
    let Some(token) = lookup_json(&json, "access_token") else {
        return Err(Error::NoToken {
            url: mask::without_query(&mask::url(&o.token_url)),
            path: "access_token".into(),
            excerpt: redacted_shape(&answer),
        });
    };
    let mut lifetime = minutes(o.refresh_minutes);
    if let Some(expires) = json
        .get("expires_in")
        .and_then(|v| v.as_f64().or_else(|| v.as_str()?.parse().ok()))
        .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
    {
        lifetime = lifetime.min(expires.saturating_sub(EXPIRY_MARGIN).max(expires / 2));
    }
    Ok(Fetched {
        token: Secret::new(token),
        lifetime,
    })
}

/// The cached token of one webhook.
#[derive(Default)]
struct Slot {
    /// The auth settings the token was fetched with.
    version: String,
    /// Fetches so far; tells a 401 caller whether a newer token exists.
    generation: u64,
    token: Option<(Secret, Instant)>,
    failure: Option<(Instant, Error)>,
}

/// Tokens per webhook, shared by all deliveries.
#[derive(Clone)]
pub struct TokenCache {
    http: client::Client,
    slots: Arc<Mutex<HashMap<i64, Arc<tokio::sync::Mutex<Slot>>>>>,
}

impl TokenCache {
    /// An empty cache fetching with `http`.
    pub fn new(http: client::Client) -> TokenCache {
        TokenCache {
            http,
            slots: Arc::default(),
        }
    }

    /// The token for webhook `id` with settings `auth`: cached while fresh,
    /// fetched otherwise. `refused` is the generation of a token the endpoint
    /// answered 401 to: unless a newer one was fetched meanwhile, a new one
    /// is fetched. Callers for one webhook queue on its slot, so of many
    /// concurrent callers (and of many concurrent 401s) only one fetches.
    pub async fn token(
        &self,
        id: i64,
        auth: &Auth,
        timeout: Duration,
        refused: Option<u64>,
    ) -> Result<Issued, Error> {
        // New settings, new token (any other change of the webhook keeps it).
        let version = serde_json::to_string(auth).expect("settings serialise");
        let slot = self
            .slots
            .lock()
            .expect("token slots")
            .entry(id)
            .or_default()
            .clone();
        let mut slot = slot.lock().await;
        let now = Instant::now();
        let newer = refused.is_none_or(|g| slot.generation > g);
        if slot.version == version && newer {
            if let Some((token, until)) = &slot.token
                && *until > now
            {
                return Ok(Issued {
                    token: token.clone(),
                    generation: slot.generation,
                });
            }
            if let Some((at, e)) = &slot.failure
                && now.duration_since(*at) < FAILURE_HOLD
            {
                return Err(e.clone());
            }
        }
        slot.version = version;
        slot.token = None;
        slot.generation += 1;
        match fetch(&self.http, auth, timeout).await.and_then(|f| {
            match reqwest::header::HeaderValue::from_str(&format!("Bearer {}", f.token.expose())) {
                Ok(_) => Ok(f),
                Err(_) => Err(Error::BadToken {
                    url: mask::without_query(&mask::url(auth_url(auth))),
                }),
            }
        }) {
            Ok(f) => {
                metrics::counter!(crate::base::metrics::TOKEN_FETCHES, "webhook" => id.to_string(), "outcome" => "ok").increment(1);
                slot.failure = None;
                slot.token = Some((f.token.clone(), Instant::now() + f.lifetime));
                Ok(Issued {
                    token: f.token,
                    generation: slot.generation,
                })
            }
            Err(e) => {
                metrics::counter!(crate::base::metrics::TOKEN_FETCHES, "webhook" => id.to_string(), "outcome" => "failed").increment(1);
                slot.failure = Some((Instant::now(), e.clone()));
                Err(e)
            }
        }
    }
}

/// A token and the fetch it came from.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The token.
    pub token: Secret,
    /// Which fetch of this webhook's slot produced it (counts from 1).
    pub generation: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_paths() {
        let a = json!({"auth_token": "t0", "auth": {"token": "t1"}, "data": {"tokens": [{"value": "t2"}, {"value": 3}]}});
        assert_eq!(lookup_json(&a, "auth_token").as_deref(), Some("t0"));
        assert_eq!(lookup_json(&a, "auth.token").as_deref(), Some("t1"));
        assert_eq!(
            lookup_json(&a, "data.tokens[0].value").as_deref(),
            Some("t2")
        );
        assert_eq!(
            lookup_json(&a, "data.tokens[1].value").as_deref(),
            Some("3")
        );
        assert_eq!(lookup_json(&a, "data.tokens[2].value"), None);
        assert_eq!(lookup_json(&a, "auth"), None, "an object is not a token");
    }

    #[test]
    fn xml_paths() {
        let x = "<?xml version=\"1.0\"?><response><auth><token>x&amp;1</token></auth><list><t>a</t><t>b</t></list></response>";
        assert_eq!(lookup_xml(x, "auth.token").as_deref(), Some("x&1"));
        assert_eq!(lookup_xml(x, "response/auth/token").as_deref(), Some("x&1"));
        assert_eq!(lookup_xml(x, "list.t[1]").as_deref(), Some("b"));
        assert_eq!(lookup_xml(x, "auth.missing"), None);
        let items = "<r><item><t>a</t></item><item><t>b</t></item></r>";
        assert_eq!(lookup_xml(items, "item[1].t").as_deref(), Some("b"));
        assert_eq!(lookup_xml(items, "item.t").as_deref(), Some("a"));
    }

    #[test]
    fn path_syntax() {
        assert!(crate::spec::auth::check_path("data.tokens[0].value").is_ok());
        assert!(crate::spec::auth::check_path("a..b").is_err());
        assert!(crate::spec::auth::check_path("a[x]").is_err());
        assert!(crate::spec::auth::check_path("a[0").is_err());
        assert!(crate::spec::auth::check_path("").is_err());
    }

    #[test]
    fn excerpts_scrub_credentials() {
        assert_eq!(
            excerpt("bad password hunter2", &["hunter2".into()]),
            "bad password ***"
        );
        let long = format!("{}hunter2", "x".repeat(EXCERPT_CHARS - 3));
        assert!(
            !excerpt(&long, &["hunter2".into()]).contains("hunt"),
            "scrubbed before the cut"
        );
        assert_eq!(
            redacted_shape(r#"{"access_token": "s3cret", "n": 1, "ok": true}"#),
            r#"{"access_token":"***","n":"***","ok":true}"#
        );
        assert!(!redacted_shape("<t>s3cret</t>").contains("s3cret"));
    }
}
