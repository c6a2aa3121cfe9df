//! Signatures on the wire: Standard Webhooks (`webhook-id`,
//! `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256 of
//! "id.timestamp.body">`) and a plain HMAC-SHA256 of the body, computed over
//! the exact bytes sent.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::spec::signing::{Encoding, Signing, current, standard_key};

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

/// The headers that sign `body` for event `id` at `timestamp` (Unix
/// seconds); secrets expired by `now` (RFC 3339) no longer sign.
pub fn headers(
    signing: &Signing,
    id: &str,
    now: chrono::DateTime<chrono::Utc>,
    body: &[u8],
) -> Vec<(String, String)> {
    let timestamp = now.timestamp();
    match signing {
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

/// Signs a rendered request now (last step before sending: the signature
/// covers the exact body bytes sent).
/// Fails (and nothing is sent) when no secret is current.
pub fn apply(
    req: &mut crate::engines::render::RenderedRequest,
    signing: &Signing,
    event_uuid: &str,
) -> Result<(), String> {
    let headers = headers(signing, event_uuid, chrono::Utc::now(), req.body.as_bytes());
    if headers
        .iter()
        .any(|(k, v)| k == "webhook-signature" && v.is_empty())
    {
        return Err("signing: no current Standard Webhooks secret; rotate or set one".into());
    }
    for (name, value) in headers {
        crate::engines::auth::set_header(&mut req.headers, &name, value);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::signing::Encoding;

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
        let h = headers(&s, "id", t("2026-01-01T12:00:00Z"), b"{}");
        assert_eq!(h[2].1.split(' ').count(), 2);
        // Expiry compares times, not text: +02:00 offsets are handled.
        let h = headers(&s, "id", t("2026-01-01T23:30:00-02:00"), b"{}");
        assert_eq!(
            h[2].1.split(' ').count(),
            1,
            "the old secret expired at 00:00Z (01:30Z now)"
        );
        assert!(s.prepare(t("2026-01-03T00:00:00Z")).is_none());
        assert_eq!(s.secret_values().len(), 1, "expired secrets are dropped");
    }
}
