//! How a webhook's requests are signed, as the admin configures it: Standard
//! Webhooks (secrets `whsec_…`, with rotation) or a plain HMAC-SHA256 in a
//! header of the admin's choice; the secrets' life cycle (generate, rotate,
//! expire). Computing signatures is [`crate::engines::sign`].

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

use crate::base::secret::{MASK, MIN_SECRET_LEN, Secret};
use crate::spec::field::FieldError;

/// Prefix of Standard Webhooks secrets.
pub const WHSEC: &str = "whsec_";
/// Random bytes in a generated secret.
const SECRET_BYTES: usize = 24;

/// How the plain HMAC is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// Lower-case hex (default).
    #[default]
    Hex,
    /// Standard base64 with padding.
    Base64,
}

/// One Standard Webhooks secret; an old one keeps signing until it expires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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
pub fn standard_key(secret: &str) -> Result<Vec<u8>, String> {
    let b64 = secret.strip_prefix(WHSEC).unwrap_or(secret);
    let key = B64
        .decode(b64)
        .map_err(|_| "a Standard Webhooks secret must be whsec_ followed by base64".to_owned())?;
    if key.is_empty() {
        return Err("the secret is empty".into());
    }
    Ok(key)
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
                if http::HeaderName::from_bytes(header.as_bytes()).is_err() {
                    return err(format!("hmac: {header:?} is not a valid header name"));
                }
                if secret.expose().is_empty() || secret.is_mask() {
                    return err("hmac: the secret is empty".into());
                }
                if secret.expose().len() < MIN_SECRET_LEN {
                    return err(format!(
                        "hmac: the secret is {} characters; herald needs at least {MIN_SECRET_LEN} to keep it out of the event log",
                        secret.expose().chars().count()
                    ));
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
}

/// Is a secret with this expiry still signing at `now`?
pub fn current(expires_at: Option<&str>, now: chrono::DateTime<chrono::Utc>) -> bool {
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
