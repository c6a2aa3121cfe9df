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

/// A URL with user info and secret-looking query values masked.
pub fn url(url: &str) -> String {
    let Ok(mut u) = reqwest::Url::parse(url) else {
        return url.to_owned();
    };
    if u.password().is_some() {
        let _ = u.set_password(Some(MASK));
    }
    if u.query().is_some() {
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .map(|(k, v)| {
                let v = if is_secret_name(&k) {
                    MASK.to_owned()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        u.query_pairs_mut().clear().extend_pairs(pairs);
    }
    u.to_string()
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
            "http://u:***@h/p?token=***&room=1"
        );
        assert_eq!(url("http://h/p"), "http://h/p");
    }

    #[test]
    fn cap_cuts_on_char_boundary() {
        assert_eq!(cap("ab", 5), "ab");
        assert_eq!(cap("üü", 3), "ü …[cut, 4 bytes in all]");
    }
}
