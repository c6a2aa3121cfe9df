//! The outgoing authentication a webhook can use, as the admin configures
//! it, and its checks. How each kind is put on a request is
//! [`crate::engines::auth`].

use serde::{Deserialize, Serialize};

use crate::base::secret::{MASK, MIN_SECRET_LEN, Secret};
use crate::spec::field::FieldError;
use crate::spec::request::{BodyFormat, Method};

fn default_apikey_header() -> String {
    "apikey".into()
}

fn default_refresh_minutes() -> f64 {
    30.0
}

fn default_token_path() -> String {
    "auth_token".into()
}

fn default_post() -> Method {
    Method::Post
}

fn default_json() -> BodyFormat {
    BodyFormat::Json
}

/// The appliance's token flow: call an auth URL, pick the token from its answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenFlow {
    /// Auth URL.
    pub url: String,
    /// `POST` (default) or `GET`.
    #[serde(default = "default_post")]
    pub method: Method,
    /// Header templates, `Field: Value` per line.
    #[serde(default)]
    pub headers: String,
    /// Body template; `<<auth.username>>` and `<<auth.password>>` are available.
    #[serde(default)]
    pub body_template: String,
    /// Body format of the auth request.
    #[serde(default = "default_json")]
    pub body_mime: BodyFormat,
    /// User name for the body template and basic credentials.
    #[serde(default)]
    pub username: String,
    /// Password for the body template and basic credentials.
    #[serde(default)]
    pub password: Secret,
    /// Also send `username`/`password` as HTTP basic credentials.
    #[serde(default)]
    pub basic: bool,
    /// Where the token is in the answer: `auth_token`, `auth.token`,
    /// `data.tokens[0].value`; for XML answers an element path (`auth.token`).
    #[serde(default = "default_token_path")]
    pub token_path: String,
    /// Minutes after which the token is fetched again.
    #[serde(default = "default_refresh_minutes")]
    pub refresh_minutes: f64,
}

/// OAuth2 client credentials: a ready-made token flow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OAuth2 {
    /// Token endpoint.
    pub token_url: String,
    /// Client id (sent as basic user).
    pub client_id: String,
    /// Client secret (sent as basic password).
    pub client_secret: Secret,
    /// Optional scope.
    #[serde(default)]
    pub scope: Option<String>,
    /// Minutes after which the token is fetched again (or sooner, by `expires_in`).
    #[serde(default = "default_refresh_minutes")]
    pub refresh_minutes: f64,
}

/// How a webhook authenticates to its endpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Auth {
    /// No authentication.
    #[default]
    None,
    /// `Authorization: Basic base64(username:password)`.
    Basic { username: String, password: Secret },
    /// `Authorization: Bearer <token>`.
    Bearer { token: Secret },
    /// A key in a header (default `apikey`).
    Apikey {
        #[serde(default = "default_apikey_header")]
        header: String,
        key: Secret,
    },
    /// Any header name and value.
    Custom { header: String, value: Secret },
    /// A token fetched from an auth URL.
    Token(TokenFlow),
    /// An OAuth2 client-credentials token.
    Oauth2(OAuth2),
}

/// Fewest minutes between token refreshes (0.6 s: for tests and very short-lived tokens).
const MIN_REFRESH_MINUTES: f64 = 0.01;

impl Auth {
    /// A copy with every secret replaced by [`MASK`], for output.
    pub fn masked(&self) -> Auth {
        let mut a = self.clone();
        match &mut a {
            Auth::None => {}
            Auth::Basic { password, .. } => *password = password.masked(),
            Auth::Bearer { token } => *token = token.masked(),
            Auth::Apikey { key, .. } => *key = key.masked(),
            Auth::Custom { value, .. } => *value = value.masked(),
            Auth::Token(t) => t.password = t.password.masked(),
            Auth::Oauth2(o) => o.client_secret = o.client_secret.masked(),
        }
        a
    }

    /// Secrets sent back as [`MASK`] keep the value of `old` (same kind only).
    pub fn keep_secrets_from(&mut self, old: &Auth) {
        fn keep(new: &mut Secret, old: &Secret) {
            if new.is_mask() {
                *new = old.clone();
            }
        }
        match (self, old) {
            (Auth::Basic { password, .. }, Auth::Basic { password: o, .. }) => keep(password, o),
            (Auth::Bearer { token }, Auth::Bearer { token: o }) => keep(token, o),
            (Auth::Apikey { key, .. }, Auth::Apikey { key: o, .. }) => keep(key, o),
            (Auth::Custom { value, .. }, Auth::Custom { value: o, .. }) => keep(value, o),
            (Auth::Token(t), Auth::Token(o)) => keep(&mut t.password, &o.password),
            (Auth::Oauth2(t), Auth::Oauth2(o)) => keep(&mut t.client_secret, &o.client_secret),
            _ => {}
        }
    }

    /// The kind's name as written in JSON.
    pub fn kind(&self) -> &'static str {
        match self {
            Auth::None => "none",
            Auth::Basic { .. } => "basic",
            Auth::Bearer { .. } => "bearer",
            Auth::Apikey { .. } => "apikey",
            Auth::Custom { .. } => "custom",
            Auth::Token(_) => "token",
            Auth::Oauth2(_) => "oauth2",
        }
    }

    /// Does any secret hold the mask (a client sending back what it read)?
    pub fn has_mask(&self) -> bool {
        self.secret_values().iter().any(|s| s == MASK)
    }

    /// Every secret value, to scrub from anything logged.
    pub fn secret_values(&self) -> Vec<String> {
        let s = match self {
            Auth::None => return Vec::new(),
            Auth::Basic { password, .. } => password,
            Auth::Bearer { token } => token,
            Auth::Apikey { key, .. } => key,
            Auth::Custom { value, .. } => value,
            Auth::Token(t) => &t.password,
            Auth::Oauth2(o) => &o.client_secret,
        };
        vec![s.expose().to_owned()]
    }

    /// Where this kind's stored secret is sent: the webhook's own URL for
    /// fixed credentials, the auth URL for the token flow, the token URL for
    /// OAuth2; `None` without a secret.
    pub fn secret_goes_to<'a>(&'a self, webhook_url: &'a str) -> Option<&'a str> {
        match self {
            Auth::None => None,
            Auth::Basic { .. }
            | Auth::Bearer { .. }
            | Auth::Apikey { .. }
            | Auth::Custom { .. } => Some(webhook_url),
            Auth::Token(t) => Some(&t.url),
            Auth::Oauth2(o) => Some(&o.token_url),
        }
    }

    /// The name of this kind's secret field, for messages.
    pub fn secret_name(&self) -> &'static str {
        match self {
            Auth::None => "secret",
            Auth::Basic { .. } | Auth::Token(_) => "password",
            Auth::Bearer { .. } => "token",
            Auth::Apikey { .. } => "key",
            Auth::Custom { .. } => "value",
            Auth::Oauth2(_) => "client_secret",
        }
    }

    /// Does this kind fetch a token?
    pub fn fetches_token(&self) -> bool {
        matches!(self, Auth::Token(_) | Auth::Oauth2(_))
    }

    /// Checks the settings (not the token flow's templates, which need the
    /// template engine); `field` errors name `auth`.
    pub fn check(&self) -> Result<(), FieldError> {
        self.check_fields()?;
        // Every secret must be long enough to be scrubbed from the log.
        match self.secret_values().first() {
            Some(s) if !s.is_empty() && s.len() < MIN_SECRET_LEN => Err(FieldError::new(
                "auth",
                format!(
                    "{}: the secret is {} characters; herald needs at least {MIN_SECRET_LEN} to keep it out of the event log",
                    self.kind(),
                    s.chars().count()
                ),
            )),
            _ => Ok(()),
        }
    }

    /// The checks of each kind's own fields.
    fn check_fields(&self) -> Result<(), FieldError> {
        let err = |m: String| Err(FieldError::new("auth", m));
        let header_ok = |h: &str| http::HeaderName::from_bytes(h.as_bytes()).is_ok();
        let secret_ok = |s: &Secret| !s.expose().is_empty() && !s.is_mask();
        match self {
            Auth::None => Ok(()),
            Auth::Basic { username, password } => {
                if username.contains(':') {
                    return err("basic: the username cannot contain ':'".into());
                }
                if password.is_mask() {
                    return err("basic: the password is \"***\" (a masked value) but there is no stored one to keep".into());
                }
                if !secret_ok(password) && username.is_empty() {
                    return err("basic: give a username and a password".into());
                }
                Ok(())
            }
            Auth::Bearer { token } if !secret_ok(token) => {
                err("bearer: the token is empty (or \"***\" with no stored token to keep)".into())
            }
            Auth::Bearer { token } if http::HeaderValue::from_str(token.expose()).is_err() => err(
                "bearer: the token is not a valid header value (printable ASCII, no line breaks)"
                    .into(),
            ),
            Auth::Apikey { header, key } => {
                if !header_ok(header) {
                    return err(format!("apikey: {header:?} is not a valid header name"));
                }
                if !secret_ok(key) {
                    return err(
                        "apikey: the key is empty (or \"***\" with no stored key to keep)".into(),
                    );
                }
                if http::HeaderValue::from_str(key.expose()).is_err() {
                    return err("apikey: the key is not a valid header value (printable ASCII, no line breaks)".into());
                }
                Ok(())
            }
            Auth::Custom { header, value } => {
                if !header_ok(header) {
                    return err(format!("custom: {header:?} is not a valid header name"));
                }
                if http::HeaderValue::from_str(value.expose()).is_err() || !secret_ok(value) {
                    return err("custom: the value is empty or not a valid header value".into());
                }
                Ok(())
            }
            Auth::Bearer { .. } => Ok(()),
            Auth::Token(t) => {
                check_url("token", &t.url)?;
                if t.basic && t.username.contains(':') {
                    return err(
                        "token: with basic credentials the username cannot contain ':'".into(),
                    );
                }
                if t.password.is_mask() {
                    return err("token: the password is \"***\" (a masked value) but there is no stored one to keep".into());
                }
                if !matches!(t.method, Method::Post | Method::Get) {
                    return err("token: the auth request's method must be POST or GET".into());
                }
                check_path(&t.token_path)
                    .map_err(|m| FieldError::new("auth", format!("token: token_path: {m}")))?;
                // The auth request's own templates are checked with the
                // webhook's (`crate::engines::check`).
                check_refresh("token", t.refresh_minutes)
            }
            Auth::Oauth2(o) => {
                check_url("oauth2", &o.token_url)?;
                if o.client_id.is_empty() || !secret_ok(&o.client_secret) {
                    return err("oauth2: give client_id and client_secret".into());
                }
                check_refresh("oauth2", o.refresh_minutes)
            }
        }
    }
}

fn check_url(kind: &str, url: &str) -> Result<(), FieldError> {
    match url::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(()),
        _ => Err(FieldError::new(
            "auth",
            format!("{kind}: {url:?} is not an http:// or https:// URL"),
        )),
    }
}

fn check_refresh(kind: &str, minutes: f64) -> Result<(), FieldError> {
    if !(MIN_REFRESH_MINUTES..=7.0 * 24.0 * 60.0).contains(&minutes) {
        return Err(FieldError::new(
            "auth",
            format!(
                "{kind}: refresh_minutes must be between {MIN_REFRESH_MINUTES} and 10080 (a week)"
            ),
        ));
    }
    Ok(())
}

/// The origin (scheme, host, port) a URL or URL template points at, for
/// comparing: `https://pms.example:443/a` and `https://PMS.example/b` are
/// the same. A template whose host is not plain text is compared by its
/// text up to the path.
pub fn origin(url: &str) -> String {
    let url = url.trim();
    if let Ok(u) = url::Url::parse(url)
        && u.host().is_some()
    {
        return u.origin().ascii_serialization();
    }
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    format!(
        "{}://{}",
        scheme.to_ascii_lowercase(),
        authority.to_ascii_lowercase()
    )
}

/// Headers herald sets itself, which no credential or signature may use.
pub const RESERVED_HEADERS: &[&str] = &["host", "content-length", "content-type"];

/// The header name a fixed-credential kind uses, if any.
pub fn header_name(auth: &Auth) -> Option<&str> {
    match auth {
        Auth::Basic { .. } | Auth::Bearer { .. } | Auth::Token(_) | Auth::Oauth2(_) => {
            Some("Authorization")
        }
        Auth::Apikey { header, .. } | Auth::Custom { header, .. } => Some(header),
        Auth::None => None,
    }
}

/// One step of a token path: a key or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `name`: a key of an object (JSON) or a child element (XML).
    Key(String),
    /// `[n]`: the n-th item, counting from 0.
    Index(usize),
}

/// Parses `data.tokens[0].value` (or `auth/token`) into steps.
pub fn parse_path(path: &str) -> Result<Vec<Step>, String> {
    let mut steps = Vec::new();
    for part in path.split(['.', '/']) {
        let (name, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if name.is_empty() && rest.is_empty() {
            return Err(format!("{path:?} has an empty step"));
        }
        if !name.is_empty() {
            steps.push(Step::Key(name.to_owned()));
        }
        while !rest.is_empty() {
            let close = rest
                .find(']')
                .ok_or_else(|| format!("{path:?} has an unclosed ["))?;
            let index = rest[1..close]
                .parse::<usize>()
                .map_err(|_| format!("{path:?}: [{}] is not an index", &rest[1..close]))?;
            steps.push(Step::Index(index));
            rest = &rest[close + 1..];
            if !rest.is_empty() && !rest.starts_with('[') {
                return Err(format!("{path:?}: unexpected {rest:?} after ]"));
            }
        }
    }
    if steps.is_empty() {
        return Err("is empty".into());
    }
    Ok(steps)
}

/// Checks a token path's syntax.
pub fn check_path(path: &str) -> Result<(), String> {
    parse_path(path).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_print() {
        let a = Auth::Basic {
            username: "u".into(),
            password: Secret::new("hunter2"),
        };
        assert!(!format!("{a:?}").contains("hunter2"));
        assert!(
            !serde_json::to_string(&a.masked())
                .unwrap()
                .contains("hunter2")
        );
        // Storage keeps the value.
        assert!(serde_json::to_string(&a).unwrap().contains("hunter2"));
    }

    #[test]
    fn a_minimal_token_flow_passes_its_checks() {
        let t: Auth =
            serde_json::from_str(r#"{"kind":"token","url":"http://127.0.0.1:1/login"}"#).unwrap();
        assert!(t.check().is_ok());
        assert!(t.fetches_token());
    }

    #[test]
    fn origins_compare_scheme_host_and_port() {
        assert_eq!(
            origin("https://PMS.example:443/a"),
            origin("https://pms.example/b?x")
        );
        assert_ne!(
            origin("http://pms.example/"),
            origin("https://pms.example/")
        );
        assert_ne!(
            origin("http://127.0.0.1:8000/"),
            origin("http://127.0.0.1:8001/")
        );
        assert_eq!(
            origin("https://<<h>>.example/x"),
            origin("https://<<h>>.example/y")
        );
        assert_ne!(
            origin("https://<<h>>.example/x"),
            origin("https://<<h>>.other/x")
        );
    }

    #[test]
    fn checks_name_the_problem() {
        let bad = [
            (
                r#"{"kind":"bearer","token":""}"#,
                "bearer: the token is empty",
            ),
            (
                r#"{"kind":"bearer","token":"a\u0001"}"#,
                "not a valid header value",
            ),
            (
                r#"{"kind":"basic","username":"u","password":"***"}"#,
                "masked value",
            ),
            (
                r#"{"kind":"basic","username":"a:b","password":"p"}"#,
                "cannot contain ':'",
            ),
            (
                r#"{"kind":"token","url":"http://127.0.0.1:1/","password":"***"}"#,
                "masked value",
            ),
            (
                r#"{"kind":"apikey","header":"bad header","key":"k"}"#,
                "not a valid header name",
            ),
            (
                r#"{"kind":"custom","header":"X-A","value":"a\nb"}"#,
                "not a valid header value",
            ),
            (
                r#"{"kind":"token","url":"ftp://x/"}"#,
                "not an http:// or https:// URL",
            ),
            (
                r#"{"kind":"token","url":"http://127.0.0.1:1/","token_path":"a..b"}"#,
                "token_path",
            ),
            (
                r#"{"kind":"token","url":"http://127.0.0.1:1/","refresh_minutes":0}"#,
                "refresh_minutes",
            ),
            (
                r#"{"kind":"oauth2","token_url":"http://127.0.0.1:1/","client_id":"","client_secret":"s"}"#,
                "client_id",
            ),
            (
                r#"{"kind":"apikey","key":"abc"}"#,
                "the secret is 3 characters; herald needs at least 4",
            ),
            (
                r#"{"kind":"basic","username":"u","password":"pw"}"#,
                "at least 4",
            ),
        ];
        for (b, words) in bad {
            let a: Auth = serde_json::from_str(b).unwrap();
            let e = a.check().expect_err(b);
            assert_eq!(e.field, "auth", "{b}");
            assert!(e.message.contains(words), "{b}: {}", e.message);
        }
    }
}
