//! Following a redirect by hand: the next request's URL, method and body
//! (as browsers and RFC 9110 do), and the credentials that stay behind when
//! the redirect leaves the origin they were given for.

use crate::engines::render::RenderedRequest;
use crate::spec::request::Method;

/// Headers that are credentials whoever added them.
const ALWAYS_CREDENTIALS: &[&str] = &["authorization", "proxy-authorization", "cookie"];

/// Headers that describe a body, dropped with it.
const BODY_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "content-encoding",
    "transfer-encoding",
];

/// Whether `status` is a redirect herald can follow.
pub(super) fn is_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

/// One request of a chain of redirects.
#[derive(Debug, Clone)]
pub(super) struct Hop {
    pub(super) url: url::Url,
    pub(super) method: reqwest::Method,
    pub(super) headers: Vec<(String, String)>,
    pub(super) body: Option<String>,
}

impl Hop {
    /// The rendered request as the chain's first hop.
    pub(super) fn first(req: &RenderedRequest) -> Result<Hop, String> {
        let url = url::Url::parse(&req.url).map_err(|e| format!("the URL is not valid: {e}"))?;
        Ok(Hop {
            url,
            method: match req.method {
                Method::Post => reqwest::Method::POST,
                Method::Get => reqwest::Method::GET,
                Method::Put => reqwest::Method::PUT,
                Method::Delete => reqwest::Method::DELETE,
            },
            headers: req.headers.clone(),
            body: (!req.body.is_empty()).then(|| req.body.clone()),
        })
    }

    /// The request a `status` answer with `location` asks for. 303 (and 301
    /// or 302 to a POST) turn it into a GET without a body; 307 and 308
    /// repeat it. To another origin, the credentials stay behind: the
    /// headers named in `credentials` (and `Authorization`, `Cookie`, …) and
    /// any header holding one of `secrets`; a body holding one refuses the
    /// redirect. Errors say why the redirect is not followed.
    pub(super) fn next(
        mut self,
        status: u16,
        location: &str,
        credentials: &[String],
        secrets: &[String],
    ) -> Result<Hop, String> {
        let target = self.url.join(location).map_err(|_| {
            format!(
                "the Location {:?} is not a URL",
                location.chars().take(200).collect::<String>()
            )
        })?;
        if !matches!(target.scheme(), "http" | "https") {
            return Err(format!(
                "to a {}: URL; only http and https are followed",
                target.scheme()
            ));
        }
        let to_get = status == 303 && self.method != reqwest::Method::HEAD
            || matches!(status, 301 | 302) && self.method == reqwest::Method::POST;
        if to_get {
            self.method = reqwest::Method::GET;
            self.body = None;
            self.headers
                .retain(|(k, _)| !BODY_HEADERS.iter().any(|b| k.eq_ignore_ascii_case(b)));
        }
        if target.origin() != self.url.origin() {
            let holds_secret =
                |text: &str| secrets.iter().any(|s| !s.is_empty() && text.contains(s));
            if self.body.as_deref().is_some_and(holds_secret) {
                return Err(format!(
                    "to {}, another origin, and the request body holds a credential, which herald sends only to its own origin",
                    target.origin().ascii_serialization()
                ));
            }
            self.headers.retain(|(name, value)| {
                let named = credentials
                    .iter()
                    .map(String::as_str)
                    .chain(ALWAYS_CREDENTIALS.iter().copied())
                    .chain(["host"])
                    .any(|c| name.eq_ignore_ascii_case(c));
                !named && !holds_secret(value)
            });
        }
        self.url = target;
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hop(method: Method, body: &str) -> Hop {
        Hop::first(&RenderedRequest {
            method,
            url: "https://a.example/in?x=1".into(),
            headers: vec![
                ("Content-Type".into(), "application/json".into()),
                ("X-Api-Key".into(), "k3y-value".into()),
                ("Authorization".into(), "Bearer t0ken".into()),
                ("webhook-signature".into(), "v1,abc".into()),
                ("X-Note".into(), "has t0ken inside".into()),
                ("X-Plain".into(), "kept".into()),
            ],
            body: body.into(),
        })
        .unwrap()
    }

    const NONE: &[String] = &[];

    fn names(h: &Hop) -> Vec<&str> {
        h.headers.iter().map(|(k, _)| k.as_str()).collect()
    }

    #[test]
    fn same_origin_keeps_every_header_and_cross_origin_drops_credentials() {
        let added = ["X-Api-Key".to_owned(), "webhook-signature".to_owned()];
        let secrets = ["t0ken".to_owned(), "k3y-value".to_owned()];
        let same = hop(Method::Post, "{}")
            .next(307, "/other", &added, &secrets)
            .unwrap();
        assert_eq!(same.url.as_str(), "https://a.example/other");
        assert_eq!(same.headers.len(), 6);
        assert_eq!(same.body.as_deref(), Some("{}"));
        let other_port = hop(Method::Post, "{}")
            .next(307, "https://a.example:8443/in", &added, &secrets)
            .unwrap();
        assert_eq!(names(&other_port), ["Content-Type", "X-Plain"]);
        assert_eq!(other_port.method, reqwest::Method::POST);
        let other_scheme = hop(Method::Post, "{}")
            .next(308, "http://a.example/in", &added, &secrets)
            .unwrap();
        assert_eq!(names(&other_scheme), ["Content-Type", "X-Plain"]);
        // Nothing named: the standard credential headers still stay behind.
        let bare = hop(Method::Post, "{}")
            .next(307, "https://b.example/", NONE, NONE)
            .unwrap();
        assert!(!names(&bare).contains(&"Authorization"));
        assert!(names(&bare).contains(&"X-Api-Key"));
    }

    #[test]
    fn see_other_and_a_moved_post_become_a_get_without_body() {
        for (status, method, becomes_get) in [
            (303, Method::Post, true),
            (303, Method::Put, true),
            (302, Method::Post, true),
            (301, Method::Post, true),
            (302, Method::Put, false),
            (307, Method::Post, false),
            (308, Method::Delete, false),
        ] {
            let next = hop(method, "{\"a\":1}")
                .next(status, "/n", NONE, NONE)
                .unwrap();
            assert_eq!(
                next.method == reqwest::Method::GET,
                becomes_get,
                "{status} {method:?}"
            );
            assert_eq!(next.body.is_none(), becomes_get, "{status}");
            assert_eq!(names(&next).contains(&"Content-Type"), !becomes_get);
        }
    }

    #[test]
    fn a_body_holding_a_secret_does_not_go_to_another_origin_nor_does_a_strange_scheme() {
        let secrets = ["t0ken".to_owned()];
        let err = hop(Method::Post, "{\"token\":\"t0ken\"}")
            .next(307, "https://b.example/", NONE, &secrets)
            .unwrap_err();
        assert!(err.to_string().contains("https://b.example"), "{err}");
        // The same body may go on to its own origin, and a 303 drops it anyway.
        assert!(
            hop(Method::Post, "{\"token\":\"t0ken\"}")
                .next(307, "/x", NONE, &secrets)
                .is_ok()
        );
        assert!(
            hop(Method::Post, "{\"token\":\"t0ken\"}")
                .next(303, "https://b.example/", NONE, &secrets)
                .is_ok()
        );
        let err = hop(Method::Get, "")
            .next(302, "file:///etc/passwd", NONE, &secrets)
            .unwrap_err();
        assert!(err.to_string().contains("only http and https"), "{err}");
    }
}
