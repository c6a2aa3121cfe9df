//! Signed payloads: Standard Webhooks (`webhook-id`, `webhook-timestamp`,
//! `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, with
//! secret rotation) and a plain HMAC-SHA256 of the body in a header of the
//! admin's choice.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::auth::{MASK, Secret};
use crate::webhook::FieldError;

/// Prefix of Standard Webhooks secrets.
const WHSEC: &str = "whsec_";
/// Random bytes in a generated secret.
const SECRET_BYTES: usize = 24;

/// How the plain HMAC is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// Lower-case hex (default).
    #[default]
    Hex,
    /// Standard base64 with padding.
    Base64,
}

/// One Standard Webhooks secret; an old one keeps signing until it expires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningSecret {
    /// `whsec_<base64>`.
    pub secret: Secret,
    /// RFC 3339 time after which it no longer signs; `None` for the current one.
    #[serde(default)]
    pub expires_at: Option<String>,
}

fn default_signature_header() -> String {
    "X-Signature".into()
}

/// How a webhook's requests are signed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Signing {
    /// Not signed.
    #[default]
    None,
    /// Standard Webhooks; an empty `secrets` list makes herald generate one on save.
    Standard {
        #[serde(default)]
        secrets: Vec<SigningSecret>,
    },
    /// HMAC-SHA256 of the body in one header.
    Hmac {
        #[serde(default = "default_signature_header")]
        header: String,
        secret: Secret,
        #[serde(default)]
        encoding: Encoding,
    },
}

/// A fresh `whsec_…` secret from the operating system's random source.
pub fn generate_secret() -> Secret {
    let mut bytes = [0u8; SECRET_BYTES];
    getrandom::fill(&mut bytes).expect("the operating system's random source works");
    Secret::new(format!("{WHSEC}{}", B64.encode(bytes)))
}

/// The key bytes of a `whsec_` secret (the prefix is optional).
fn standard_key(secret: &str) -> Result<Vec<u8>, String> {
    let b64 = secret.strip_prefix(WHSEC).unwrap_or(secret);
    let key = B64
        .decode(b64)
        .map_err(|_| "a Standard Webhooks secret must be whsec_ followed by base64".to_owned())?;
    if key.is_empty() {
        return Err("the secret is empty".into());
    }
    Ok(key)
}

fn mac(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().to_vec()
}

/// `v1,<base64 HMAC-SHA256(key, "id.timestamp.body")>`.
pub fn standard_signature(
    secret: &str,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, String> {
    let key = standard_key(secret)?;
    let ts = timestamp.to_string();
    let sig = mac(&key, &[id.as_bytes(), b".", ts.as_bytes(), b".", body]);
    Ok(format!("v1,{}", B64.encode(sig)))
}

/// HMAC-SHA256 of `body` keyed by the secret's bytes, hex or base64.
pub fn hmac_signature(secret: &str, body: &[u8], encoding: Encoding) -> String {
    let sig = mac(secret.as_bytes(), &[body]);
    match encoding {
        Encoding::Hex => sig.iter().map(|b| format!("{b:02x}")).collect(),
        Encoding::Base64 => B64.encode(sig),
    }
}

impl Signing {
    /// A copy with secrets masked, for output.
    pub fn masked(&self) -> Signing {
        let mut s = self.clone();
        match &mut s {
            Signing::None => {}
            Signing::Standard { secrets } => {
                for k in secrets {
                    k.secret = Secret::new(MASK);
                }
            }
            Signing::Hmac { secret, .. } => *secret = Secret::new(MASK),
        }
        s
    }

    /// Masked secrets sent back keep the stored ones (same kind only).
    pub fn keep_secrets_from(&mut self, old: &Signing) {
        match (self, old) {
            // Masked or left out: the stored secrets stay (a new secret only
            // through rotation, so receivers keep verifying).
            (Signing::Standard { secrets }, Signing::Standard { secrets: o })
                if secrets.is_empty() || secrets.iter().any(|k| k.secret.is_mask()) =>
            {
                *secrets = o.clone();
            }
            (Signing::Hmac { secret, .. }, Signing::Hmac { secret: o, .. }) if secret.is_mask() => {
                *secret = o.clone();
            }
            _ => {}
        }
    }

    /// Fills in a generated secret when Standard Webhooks has none, and drops
    /// expired ones. Returns the generated secret, to show the admin once.
    pub fn prepare(&mut self, now: chrono::DateTime<chrono::Utc>) -> Option<Secret> {
        let Signing::Standard { secrets } = self else {
            return None;
        };
        secrets.retain(|k| current(k.expires_at.as_deref(), now));
        if secrets.is_empty() {
            let s = generate_secret();
            secrets.push(SigningSecret {
                secret: s.clone(),
                expires_at: None,
            });
            return Some(s);
        }
        None
    }

    /// Makes a new current secret; the previous ones keep signing until
    /// `expires_at`. Returns the new secret.
    pub fn rotate(
        &mut self,
        now: chrono::DateTime<chrono::Utc>,
        overlap: chrono::Duration,
    ) -> Result<Secret, FieldError> {
        let expires_at = (now + overlap).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let Signing::Standard { secrets } = self else {
            return Err(FieldError::new(
                "signing",
                "only Standard Webhooks secrets rotate; set a new hmac secret instead",
            ));
        };
        secrets.retain(|k| current(k.expires_at.as_deref(), now));
        for k in secrets.iter_mut().filter(|k| k.expires_at.is_none()) {
            k.expires_at = Some(expires_at.clone());
        }
        let s = generate_secret();
        secrets.insert(
            0,
            SigningSecret {
                secret: s.clone(),
                expires_at: None,
            },
        );
        Ok(s)
    }

    /// Checks the settings.
    pub fn check(&self) -> Result<(), FieldError> {
        let err = |m: String| Err(FieldError::new("signing", m));
        match self {
            Signing::None => Ok(()),
            Signing::Standard { secrets } => {
                if secrets.iter().filter(|k| k.expires_at.is_none()).count() != 1 {
                    return err("standard: exactly one secret must be current (without \
                                expires_at); leave secrets out to have herald generate one"
                        .into());
                }
                for k in secrets {
                    if let Err(m) = standard_key(k.secret.expose()) {
                        return err(format!("standard: {m}"));
                    }
                    if let Some(t) = &k.expires_at
                        && chrono::DateTime::parse_from_rfc3339(t).is_err()
                    {
                        return err(format!(
                            "standard: expires_at {t:?} is not an RFC 3339 time"
                        ));
                    }
                }
                Ok(())
            }
            Signing::Hmac { header, secret, .. } => {
                if reqwest::header::HeaderName::from_bytes(header.as_bytes()).is_err() {
                    return err(format!("hmac: {header:?} is not a valid header name"));
                }
                if secret.expose().is_empty() || secret.is_mask() {
                    return err("hmac: the secret is empty".into());
                }
                Ok(())
            }
        }
    }

    /// The headers this signing sets.
    pub fn header_names(&self) -> Vec<&str> {
        match self {
            Signing::None => Vec::new(),
            Signing::Standard { .. } => {
                vec!["webhook-id", "webhook-timestamp", "webhook-signature"]
            }
            Signing::Hmac { header, .. } => vec![header.as_str()],
        }
    }

    /// Does any secret hold the mask (a client sending back what it read)?
    pub fn has_mask(&self) -> bool {
        self.secret_values().iter().any(|s| s == MASK)
    }

    /// Every secret value, to scrub from anything logged.
    pub fn secret_values(&self) -> Vec<String> {
        match self {
            Signing::None => Vec::new(),
            Signing::Standard { secrets } => secrets
                .iter()
                .map(|k| k.secret.expose().to_owned())
                .collect(),
            Signing::Hmac { secret, .. } => vec![secret.expose().to_owned()],
        }
    }

    /// The headers that sign `body` for event `id` at `timestamp` (Unix
    /// seconds); secrets expired by `now` (RFC 3339) no longer sign.
    pub fn headers(
        &self,
        id: &str,
        now: chrono::DateTime<chrono::Utc>,
        body: &[u8],
    ) -> Vec<(String, String)> {
        let timestamp = now.timestamp();
        match self {
            Signing::None => Vec::new(),
            Signing::Standard { secrets } => {
                let sigs: Vec<String> = secrets
                    .iter()
                    .filter(|k| current(k.expires_at.as_deref(), now))
                    .filter_map(|k| standard_signature(k.secret.expose(), id, timestamp, body).ok())
                    .collect();
                vec![
                    ("webhook-id".into(), id.to_owned()),
                    ("webhook-timestamp".into(), timestamp.to_string()),
                    ("webhook-signature".into(), sigs.join(" ")),
                ]
            }
            Signing::Hmac {
                header,
                secret,
                encoding,
            } => vec![(
                header.clone(),
                hmac_signature(secret.expose(), body, *encoding),
            )],
        }
    }
}

/// Signs a rendered request now (last step before sending: the signature
/// covers the exact body bytes sent).
/// Fails (and nothing is sent) when no secret is current.
pub fn apply(
    req: &mut crate::render::RenderedRequest,
    signing: &Signing,
    event_uuid: &str,
) -> Result<(), String> {
    let headers = signing.headers(event_uuid, chrono::Utc::now(), req.body.as_bytes());
    if headers
        .iter()
        .any(|(k, v)| k == "webhook-signature" && v.is_empty())
    {
        return Err("signing: no current Standard Webhooks secret; rotate or set one".into());
    }
    for (name, value) in headers {
        crate::auth::set_header(&mut req.headers, &name, value);
    }
    Ok(())
}

/// Is a secret with this expiry still signing at `now`?
fn current(expires_at: Option<&str>, now: chrono::DateTime<chrono::Utc>) -> bool {
    match expires_at.map(chrono::DateTime::parse_from_rfc3339) {
        None => true,
        Some(Ok(t)) => t > now,
        Some(Err(_)) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_webhooks_reference_vector() {
        // The vector of the Standard Webhooks reference library.
        let sig = standard_signature(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        )
        .unwrap();
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn plain_hmac_rfc4231_case_2() {
        let hex = hmac_signature("Jefe", b"what do ya want for nothing?", Encoding::Hex);
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let b64 = hmac_signature("Jefe", b"what do ya want for nothing?", Encoding::Base64);
        assert_eq!(b64, "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM=");
    }

    #[test]
    fn rotation_signs_with_both_until_expiry() {
        let t = |text: &str| chrono::DateTime::parse_from_rfc3339(text).unwrap().to_utc();
        let mut s = Signing::Standard { secrets: vec![] };
        let first = s.prepare(t("2026-01-01T00:00:00Z")).unwrap();
        assert!(first.expose().starts_with("whsec_"));
        let second = s
            .rotate(t("2026-01-01T00:00:00Z"), chrono::Duration::days(1))
            .unwrap();
        assert_ne!(first, second);
        assert!(s.check().is_ok());
        let h = s.headers("id", t("2026-01-01T12:00:00Z"), b"{}");
        assert_eq!(h[2].1.split(' ').count(), 2);
        // Expiry compares times, not text: +02:00 offsets are handled.
        let h = s.headers("id", t("2026-01-01T23:30:00-02:00"), b"{}");
        assert_eq!(
            h[2].1.split(' ').count(),
            1,
            "the old secret expired at 00:00Z (01:30Z now)"
        );
        assert!(s.prepare(t("2026-01-03T00:00:00Z")).is_none());
        assert_eq!(s.secret_values().len(), 1, "expired secrets are dropped");
    }

    #[test]
    fn only_expiring_secrets_are_refused_and_resending_keeps_them() {
        let only_old = Signing::Standard {
            secrets: vec![SigningSecret {
                secret: generate_secret(),
                expires_at: Some("2020-01-01T00:00:00Z".into()),
            }],
        };
        assert!(
            only_old
                .check()
                .unwrap_err()
                .message
                .contains("exactly one secret must be current")
        );
        let mut stored = Signing::Standard { secrets: vec![] };
        stored.prepare(chrono::Utc::now());
        let mut resent = Signing::Standard { secrets: vec![] };
        resent.keep_secrets_from(&stored);
        assert_eq!(
            resent, stored,
            "re-sending {{\"kind\":\"standard\"}} keeps the secret"
        );
    }

    #[test]
    fn masks_and_keeps() {
        let old = Signing::Hmac {
            header: "X-Sig".into(),
            secret: Secret::new("s3"),
            encoding: Encoding::Hex,
        };
        assert!(!serde_json::to_string(&old.masked()).unwrap().contains("s3"));
        let mut back = old.masked();
        back.keep_secrets_from(&old);
        assert_eq!(back, old);
        assert!(
            Signing::Standard {
                secrets: vec![SigningSecret {
                    secret: Secret::new("whsec_!!"),
                    expires_at: None
                }]
            }
            .check()
            .is_err()
        );
    }
}
