//! Masking secrets before anything reaches the event log.

/// The text that replaces a secret.
pub const MASK: &str = "***";

/// Parts of a header or parameter name that mark its value as secret.
const SECRET_WORDS: &[&str] = &[
    "authorization",
    "auth",
    "token",
    "secret",
    "password",
    "passwd",
    "apikey",
    "api-key",
    "api_key",
    "cookie",
    "signature",
    "session",
    "key",
    "credential",
];

/// Does a header (or query parameter) of this name carry a secret?
pub fn is_secret_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    SECRET_WORDS.iter().any(|w| lower.contains(w))
}

/// Headers as `Field: Value` lines with secret values masked.
pub fn headers_text<'a>(headers: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    headers
        .into_iter()
        .map(|(k, v)| {
            if is_secret_name(k) {
                format!("{k}: {MASK}")
            } else {
                format!("{k}: {v}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Masks `Field: Value` lines (as read from a response) whose names are secret.
pub fn mask_header_lines(text: &str) -> String {
    headers_text(text.lines().map(|l| l.split_once(": ").unwrap_or((l, ""))))
}

/// A URL with its password and secret-looking query values masked; the rest
/// is kept exactly as sent (no re-encoding).
pub fn url(url: &str) -> String {
    let (before_fragment, fragment) = match url.split_once('#') {
        Some((a, f)) => (a, Some(f)),
        None => (url, None),
    };
    let (base, query) = match before_fragment.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (before_fragment, None),
    };
    let mut out = mask_userinfo(base);
    if let Some(q) = query {
        out.push('?');
        let parts: Vec<String> = q
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) if is_secret_name(&percent_decode(k)) => format!("{k}={MASK}"),
                _ => pair.to_owned(),
            })
            .collect();
        out.push_str(&parts.join("&"));
    }
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    out
}

/// `scheme://userinfo@host/path` with the user info masked whole (a token
/// is often passed as the user name) and token-like path segments masked
/// (Slack and Discord put their secret in the path).
fn mask_userinfo(base: &str) -> String {
    let Some((scheme, rest)) = base.split_once("://") else {
        return base.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((_, host)) => format!("{MASK}@{host}"),
        None => authority.to_owned(),
    };
    let path: Vec<&str> = path
        .split('/')
        .map(|seg| if looks_like_token(seg) { MASK } else { seg })
        .collect();
    format!("{scheme}://{authority}{}", path.join("/"))
}

/// A path segment that is probably a secret: long, of token characters, and
/// not a UUID (event uuids in paths stay readable).
fn looks_like_token(seg: &str) -> bool {
    seg.len() >= 24
        && seg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && uuid::Uuid::try_parse(seg).is_err()
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(&s.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

/// Shortest secret value scrubbed from logged text: shorter ones would
/// garble the log. Saving refuses shorter secrets, so every stored one is
/// scrubbed.
const MIN_SCRUBBED_LEN: usize = crate::base::secret::MIN_SECRET_LEN;

/// `text` with every occurrence of the given secret values replaced by [`MASK`].
pub fn scrub(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_owned();
    // Longest first: one form may contain another.
    let mut sorted: Vec<&String> = secrets
        .iter()
        .filter(|s| s.len() >= MIN_SCRUBBED_LEN)
        .collect();
    sorted.sort_by_key(|s| std::cmp::Reverse(s.len()));
    for s in sorted {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), MASK);
        }
    }
    out
}

/// A secret as it may appear in text herald sends or receives: as is, as
/// JSON string content, XML-escaped, and percent-encoded.
pub fn forms(secret: &str) -> Vec<String> {
    use crate::engines::render::escape;
    let mut out = vec![
        secret.to_owned(),
        escape::json_string_content(secret),
        escape::xml_attr(secret),
        escape::url_component(secret),
    ];
    out.sort();
    out.dedup();
    out
}

/// A URL without its query and fragment (which may carry credentials).
pub fn without_query(url: &str) -> String {
    url.split(['?', '#']).next().unwrap_or(url).to_owned()
}

/// At most `max` bytes of `text`, cut on a character boundary and marked.
pub fn cap(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{} …[cut, {} bytes in all]", &text[..end], text.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_headers_are_masked() {
        let t = headers_text([
            ("Authorization", "Bearer abc"),
            ("X-Api-Key", "k"),
            ("X-Auth-Token", "t"),
            ("Content-Type", "application/json"),
        ]);
        assert_eq!(
            t,
            "Authorization: ***\nX-Api-Key: ***\nX-Auth-Token: ***\nContent-Type: application/json"
        );
        assert_eq!(
            mask_header_lines("set-cookie: a=b\nx: y"),
            "set-cookie: ***\nx: y"
        );
    }

    #[test]
    fn urls_are_masked() {
        assert_eq!(
            url("http://u:pw@h/p?token=abc&room=1"),
            "http://***@h/p?token=***&room=1"
        );
        assert_eq!(
            url("https://hooks.slack.com/services/T0001/B0002/abcdefghijklmnopqrstuvwx"),
            "https://hooks.slack.com/services/T0001/B0002/***"
        );
        assert_eq!(
            url("http://h/e/0b8c8a4e-6f2d-4c1e-9a57-3f1d2b9e7c10"),
            "http://h/e/0b8c8a4e-6f2d-4c1e-9a57-3f1d2b9e7c10"
        );
        assert_eq!(url("http://h/p"), "http://h/p");
        assert_eq!(
            url("http://h/p?room=2%2014&a%5Fkey=x#f"),
            "http://h/p?room=2%2014&a%5Fkey=***#f"
        );
        assert_eq!(url("http://tok@h:1/p@x"), "http://***@h:1/p@x");
    }

    #[test]
    fn cap_cuts_on_char_boundary() {
        assert_eq!(cap("ab", 5), "ab");
        assert_eq!(cap("üü", 3), "ü …[cut, 4 bytes in all]");
    }
}
