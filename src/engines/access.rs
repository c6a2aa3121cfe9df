//! Who may use herald's listener: the admin password (an argon2 hash, a
//! generated initial one written to a private file on first start) and API
//! keys with a read-only or admin scope. Secrets are generated here and
//! only their hashes are stored.

use std::path::{Path, PathBuf};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;
use sha2::Digest;

/// Prefix of every API key, so a leaked one is recognisable (and scannable).
pub const KEY_PREFIX: &str = "hk_";
/// Shortest admin password accepted.
pub const MIN_PASSWORD_CHARS: usize = 10;
/// Longest admin password accepted (argon2 takes any length; this bounds work).
const MAX_PASSWORD_BYTES: usize = 1024;
/// File name of the generated first password, beside the database.
pub const INITIAL_PASSWORD_FILE: &str = "initial-admin-password";

/// Why an access operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The password is too short or too long.
    #[error(
        "the password must have at least {MIN_PASSWORD_CHARS} characters and at most {MAX_PASSWORD_BYTES} bytes"
    )]
    WeakPassword,
    /// Hashing failed (should not happen with valid parameters).
    #[error("cannot hash the password: {0}")]
    Hash(String),
    /// The OS random source failed.
    #[error("no randomness from the operating system: {0}")]
    Random(String),
    /// The initial password file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The initial password file could not be removed.
    #[error("cannot remove {path}: {source}")]
    Remove {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The live stream's path: the one route a `stream` key may use.
pub const STREAM_PATH: &str = "/api/v1/stream";
/// The ingest path: the one route an `ingest` key may use (POST).
pub const INGEST_PATH: &str = "/api/v1/events";

/// What an API key may do.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// GET requests only (the live stream included, every event).
    Read,
    /// Everything.
    Admin,
    /// Only the live stream, within the event patterns and match filters
    /// stored on the key (a kiosk screen, a dashboard).
    Stream,
    /// Only `POST /api/v1/events` (the appliance's producer).
    Ingest,
}

impl Scope {
    /// Every scope, most powerful last.
    pub const ALL: [Scope; 4] = [Scope::Ingest, Scope::Stream, Scope::Read, Scope::Admin];

    /// The name as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Admin => "admin",
            Scope::Stream => "stream",
            Scope::Ingest => "ingest",
        }
    }

    /// May a request with this method to this path be made with this scope?
    pub fn allows(self, method: &axum::http::Method, path: &str) -> bool {
        use axum::http::Method;
        let reads = matches!(*method, Method::GET | Method::HEAD);
        match self {
            Scope::Admin => true,
            Scope::Read => reads,
            Scope::Stream => reads && path == STREAM_PATH,
            Scope::Ingest => *method == Method::POST && path == INGEST_PATH,
        }
    }

    /// What the scope allows, for a refusal's message.
    pub fn explain(self) -> &'static str {
        match self {
            Scope::Admin => "everything",
            Scope::Read => "GET requests only",
            Scope::Stream => "only GET /api/v1/stream",
            Scope::Ingest => "only POST /api/v1/events",
        }
    }
}

impl std::str::FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| format!("scope {s:?} is not read, admin, stream or ingest"))
    }
}

/// `n` random bytes, base64url without padding.
fn random_text(n: usize) -> Result<String, Error> {
    let mut b = vec![0u8; n];
    getrandom::fill(&mut b).map_err(|e| Error::Random(e.to_string()))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b))
}

/// A new API key: `hk_` and 32 random bytes.
pub fn new_api_key() -> Result<String, Error> {
    Ok(format!("{KEY_PREFIX}{}", random_text(32)?))
}

/// A new session cookie or CSRF token: 32 random bytes.
pub fn new_token() -> Result<String, Error> {
    random_text(32)
}

/// A new admin password for first start: 18 random bytes (24 characters).
pub fn new_password() -> Result<String, Error> {
    random_text(18)
}

/// What is stored of an API key: its SHA-256, hex. Keys are 256 random
/// bits, so a fast hash is enough (unlike passwords).
pub fn key_digest(key: &str) -> String {
    // Every API request computes this: a `format!` per byte was 60 % of it.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = sha2::Sha256::digest(key.as_bytes());
    let mut out = String::with_capacity(digest.len() * 2);
    for b in digest.iter() {
        out.push(HEX[(b >> 4) as usize] as char);
        out.push(HEX[(b & 0xf) as usize] as char);
    }
    out
}

/// The first characters of a key, shown in listings to tell keys apart.
pub fn key_hint(key: &str) -> String {
    format!("{}…", &key[..KEY_PREFIX.len() + 6])
}

/// Hashes an admin password with argon2id (the crate's defaults).
pub fn hash_password(password: &str) -> Result<String, Error> {
    if password.chars().count() < MIN_PASSWORD_CHARS || password.len() > MAX_PASSWORD_BYTES {
        return Err(Error::WeakPassword);
    }
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| Error::Random(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| Error::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::Hash(e.to_string()))
}

/// A device cookie for a browser that just logged in: `<id>.<mac>`, the mac
/// keyed with the admin password's stored hash, so changing the password
/// forgets every device. See `crate::surfaces::shared::limiter`.
pub fn new_device_cookie(password_hash: &str) -> Result<String, Error> {
    let id = random_text(18)?;
    let mac = device_mac(password_hash, &id);
    Ok(format!("{id}.{mac}"))
}

/// The device id of `cookie` if this password hash issued it.
pub fn device_id(password_hash: &str, cookie: &str) -> Option<String> {
    let (id, mac) = cookie.split_once('.')?;
    same_secret(&device_mac(password_hash, id), mac).then(|| id.to_owned())
}

/// Compares two secrets in time that does not depend on where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn device_mac(password_hash: &str, id: &str) -> String {
    use hmac::{Hmac, KeyInit, Mac};
    let mut m = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(password_hash.as_bytes())
        .expect("HMAC takes any key length");
    m.update(b"herald-device:");
    m.update(id.as_bytes());
    m.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Does `password` match the stored `hash`? A malformed hash matches nothing.
pub fn verify_password(hash: &str, password: &str) -> bool {
    if password.len() > MAX_PASSWORD_BYTES {
        return false;
    }
    PasswordHash::new(hash)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Where the generated first password is written: beside the database.
pub fn initial_password_path(database: &Path) -> PathBuf {
    database
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .join(INITIAL_PASSWORD_FILE)
}

/// Writes the first password to a file only its owner can read.
pub fn write_initial_password(path: &Path, password: &str) -> Result<(), Error> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let write = || -> std::io::Result<()> {
        let _ = std::fs::remove_file(path);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)?;
        writeln!(f, "{password}")?;
        f.sync_all()
    };
    write().map_err(|source| Error::Write {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_cookies_are_bound_to_the_password_hash() {
        let c = new_device_cookie("hash-1").unwrap();
        let id = device_id("hash-1", &c).expect("issued by this hash");
        assert!(c.starts_with(&id));
        assert_eq!(device_id("hash-2", &c), None, "a new password forgets it");
        assert_eq!(device_id("hash-1", &format!("{id}.00")), None);
        assert_eq!(device_id("hash-1", "no-dot"), None);
    }

    #[test]
    fn passwords_hash_and_verify() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password(&h, "correct horse battery"));
        assert!(!verify_password(&h, "correct horse batterY"));
        assert!(!verify_password("not a hash", "x"));
        assert!(matches!(hash_password("short"), Err(Error::WeakPassword)));
    }

    #[test]
    fn keys_are_random_prefixed_and_hashed() {
        let a = new_api_key().unwrap();
        let b = new_api_key().unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with(KEY_PREFIX) && a.len() == KEY_PREFIX.len() + 43);
        assert_eq!(key_digest(&a).len(), 64);
        // Lower-case hex SHA-256, as stored by every version: keys made
        // before keep working.
        assert_eq!(
            key_digest("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_ne!(key_digest(&a), key_digest(&b));
        assert!(key_hint(&a).starts_with(&a[..9]));
    }

    #[test]
    fn scopes_allow_only_their_routes() {
        use axum::http::Method;
        let w = "/api/v1/webhooks";
        assert!(Scope::Read.allows(&Method::GET, w));
        assert!(Scope::Read.allows(&Method::GET, STREAM_PATH));
        assert!(!Scope::Read.allows(&Method::POST, INGEST_PATH));
        assert!(!Scope::Read.allows(&Method::DELETE, w));
        assert!(Scope::Admin.allows(&Method::PUT, w));
        assert!(Scope::Stream.allows(&Method::GET, STREAM_PATH));
        assert!(!Scope::Stream.allows(&Method::GET, w));
        assert!(!Scope::Stream.allows(&Method::GET, "/api/v1/log"));
        assert!(Scope::Ingest.allows(&Method::POST, INGEST_PATH));
        assert!(!Scope::Ingest.allows(&Method::GET, INGEST_PATH));
        assert!(!Scope::Ingest.allows(&Method::GET, STREAM_PATH));
        assert!(!Scope::Ingest.allows(&Method::POST, "/api/v1/webhooks"));
        for s in Scope::ALL {
            assert_eq!(s.as_str().parse::<Scope>().unwrap(), s);
        }
        assert!("root".parse::<Scope>().is_err());
    }

    #[test]
    fn initial_password_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = initial_password_path(&dir.path().join("h.db"));
        write_initial_password(&p, "pw").unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "pw\n");
    }
}
