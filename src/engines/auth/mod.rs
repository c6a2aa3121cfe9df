//! Outgoing authentication on the wire: how each kind of
//! [`crate::spec::auth::Auth`] is put on a rendered request. Fixed
//! credentials (basic, bearer, API key, custom header) are headers added
//! after rendering; fetched tokens (`token`, `oauth2`) come from
//! [`token::TokenCache`], which fetches, caches and refreshes them.

pub mod token;

use crate::spec::auth::Auth;

/// `Authorization: Basic …` for a user and password.
pub fn basic_header(username: &str, password: &str) -> String {
    use base64::Engine;
    let raw = format!("{username}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// The header a fixed-credential kind adds, if any.
pub fn fixed_header(auth: &Auth) -> Option<(String, String)> {
    match auth {
        Auth::Basic { username, password } => Some((
            "Authorization".into(),
            basic_header(username, password.expose()),
        )),
        Auth::Bearer { token } => {
            Some(("Authorization".into(), format!("Bearer {}", token.expose())))
        }
        Auth::Apikey { header, key } => Some((header.clone(), key.expose().to_owned())),
        Auth::Custom { header, value } => Some((header.clone(), value.expose().to_owned())),
        Auth::None | Auth::Token(_) | Auth::Oauth2(_) => None,
    }
}

/// Puts a webhook's authentication on a rendered request: the fixed
/// credential header, or `Authorization: Bearer <token>` for a fetched token
/// unless the templates place `<<auth.token>>` themselves. Replaces headers
/// of the same name set by the templates.
pub fn apply(
    req: &mut crate::engines::render::RenderedRequest,
    auth: &Auth,
    token: Option<&str>,
    places_token: bool,
) {
    if let Some((name, value)) = fixed_header(auth) {
        set_header(&mut req.headers, &name, value);
    }
    if let Some(t) = token
        && !places_token
    {
        set_header(&mut req.headers, "Authorization", format!("Bearer {t}"));
    }
}

/// Sets `name: value`, replacing any header of that name the templates set.
pub fn set_header(headers: &mut Vec<(String, String)>, name: &str, value: String) {
    headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
    headers.push((name.to_owned(), value));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::secret::Secret;

    #[test]
    fn masked_secrets_sent_back_keep_the_stored_value() {
        let old = Auth::Bearer {
            token: Secret::new("t1"),
        };
        let mut new = old.masked();
        new.keep_secrets_from(&old);
        assert_eq!(new, old);
        let mut replaced = Auth::Bearer {
            token: Secret::new("t2"),
        };
        replaced.keep_secrets_from(&old);
        assert_eq!(fixed_header(&replaced).unwrap().1, "Bearer t2");
    }

    #[test]
    fn json_shapes() {
        let a: Auth = serde_json::from_str(r#"{"kind":"apikey","key":"k"}"#).unwrap();
        assert_eq!(fixed_header(&a).unwrap(), ("apikey".into(), "k".into()));
        let a: Auth = serde_json::from_str(
            r#"{"kind":"basic","username":"Aladdin","password":"open sesame"}"#,
        )
        .unwrap();
        assert_eq!(
            fixed_header(&a).unwrap().1,
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
        assert!(serde_json::from_str::<Auth>(r#"{"kind":"magic"}"#).is_err());
        let t: Auth =
            serde_json::from_str(r#"{"kind":"token","url":"http://127.0.0.1:1/login"}"#).unwrap();
        assert!(t.fetches_token());
    }
}
