//! The `settings` and `api_keys` tables: the admin password's hash and the
//! API keys (their digests, never the keys).

use rusqlite::params;
use serde::Serialize;

use super::Error;
use super::sqlite::Sqlite;
use crate::base::event::now_rfc3339;
use crate::base::subscription::{FieldMatch, Subscription};
use crate::engines::access::Scope;

/// Settings key of the admin password's argon2 hash.
pub(super) const ADMIN_PASSWORD: &str = "admin_password_hash";

/// An API key as listed: never the key itself.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ApiKey {
    /// Id (what `revoke` takes).
    pub id: i64,
    /// What the admin called it.
    pub name: String,
    /// The key's first characters.
    pub hint: String,
    /// `read`, `admin`, `stream` or `ingest`.
    pub scope: Scope,
    /// When it was made.
    pub created_at: String,
    /// When it was revoked; a revoked key is refused.
    pub revoked_at: Option<String>,
    /// A `stream` key's limits: the events it may receive.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limits: Option<Subscription>,
}

/// A key the listener accepts, as its in-memory view holds it.
#[derive(Debug, Clone)]
pub struct LiveKey {
    /// Id.
    pub id: i64,
    /// What the admin called it (shown with its open streams).
    pub name: String,
    /// SHA-256 of the key, hex.
    pub digest: String,
    /// What it may do.
    pub scope: Scope,
    /// A `stream` key's limits.
    pub limits: Option<Subscription>,
}

pub(super) const KEY_COLUMNS: &str =
    "id, name, hint, scope, created_at, revoked_at, events, filters";

/// A stream key's limits from its `events` and `filters` columns (JSON
/// arrays); `None` when the key has none. A text that cannot be read
/// (edited by hand) limits the key to nothing it could match.
pub(super) fn limits_from(events: Option<String>, filters: Option<String>) -> Option<Subscription> {
    let events = events?;
    let read = || -> Option<Subscription> {
        let events: Vec<String> = serde_json::from_str(&events).ok()?;
        let filters: Vec<String> = match &filters {
            Some(f) => serde_json::from_str(f).ok()?,
            None => Vec::new(),
        };
        let filters = filters
            .iter()
            .map(|f| FieldMatch::parse(f))
            .collect::<Result<_, _>>()
            .ok()?;
        Subscription::new(events, filters).ok()
    };
    Some(read().unwrap_or_else(|| Subscription {
        events: vec!["none.unreadable-limits".into()],
        matches: Vec::new(),
    }))
}

/// An [`ApiKey`] from a row selected with [`KEY_COLUMNS`]. An unknown scope
/// text (edited by hand past the CHECK) reads as `ingest`, the least; the
/// listener refuses such a key (see [`Store::live_api_keys`]).
fn key_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ApiKey> {
    let scope: String = r.get(3)?;
    Ok(ApiKey {
        id: r.get(0)?,
        name: r.get(1)?,
        hint: r.get(2)?,
        scope: scope.parse().unwrap_or(Scope::Ingest),
        created_at: r.get(4)?,
        revoked_at: r.get(5)?,
        limits: limits_from(r.get(6)?, r.get(7)?),
    })
}

impl Sqlite {
    /// The admin password's hash, if one was set.
    pub fn admin_password_hash(&self) -> Result<Option<String>, Error> {
        self.read(|c| {
            match c.query_row(
                "SELECT value FROM settings WHERE key = ?1",
                [ADMIN_PASSWORD],
                |r| r.get(0),
            ) {
                Ok(v) => Ok(Some(v)),
                Err(rusqlite::Error::QueryReturnedNoRows) => Ok(None),
                Err(e) => Err(e.into()),
            }
        })
    }

    /// Stores the admin password's hash. With `only_if_unset`, keeps one
    /// already there and returns false (two starts racing for the first
    /// password: the first wins).
    pub fn set_admin_password_hash(&self, hash: &str, only_if_unset: bool) -> Result<bool, Error> {
        let hash = hash.to_owned();
        self.write(move |c| {
            let sql = if only_if_unset {
                "INSERT OR IGNORE INTO settings (key, value, updated_at) VALUES (?1, ?2, ?3)"
            } else {
                "INSERT INTO settings (key, value, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at"
            };
            Ok(c.execute(sql, params![ADMIN_PASSWORD, hash, now_rfc3339()])? == 1)
        })
    }

    /// Stores a new API key by its digest, with a stream key's `limits`.
    pub fn insert_api_key(
        &self,
        name: &str,
        hint: &str,
        digest: &str,
        scope: Scope,
        limits: Option<&Subscription>,
    ) -> Result<ApiKey, Error> {
        let (name, hint, digest) = (name.to_owned(), hint.to_owned(), digest.to_owned());
        let (events, filters) = match limits {
            Some(l) => (
                Some(serde_json::to_string(&l.events).expect("strings serialise")),
                Some(
                    serde_json::to_string(
                        &l.matches.iter().map(|m| m.to_string()).collect::<Vec<_>>(),
                    )
                    .expect("strings serialise"),
                ),
            ),
            None => (None, None),
        };
        let id = self.write(move |c| {
            c.execute(
                "INSERT INTO api_keys (name, hint, digest, scope, created_at, events, filters)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    name,
                    hint,
                    digest,
                    scope.as_str(),
                    now_rfc3339(),
                    events,
                    filters
                ],
            )?;
            Ok(c.last_insert_rowid())
        })?;
        self.api_key(id)
    }

    /// All API keys, revoked ones included, by id.
    pub fn api_keys(&self) -> Result<Vec<ApiKey>, Error> {
        self.read(|c| {
            let mut stmt =
                c.prepare_cached(&format!("SELECT {KEY_COLUMNS} FROM api_keys ORDER BY id"))?;
            let rows = stmt.query_map([], key_from_row)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// API key `id` as listed.
    pub fn api_key(&self, id: i64) -> Result<ApiKey, Error> {
        self.read(|c| {
            c.prepare_cached(&format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = ?1"))?
                .query_row([id], key_from_row)
                .map_err(super::not_found(format!("API key {id}")))
        })
    }

    /// Every live (not revoked) key, for the listener's in-memory view of
    /// the keys. A key whose scope text is unknown (edited by hand) is left
    /// out: refused.
    pub fn live_api_keys(&self) -> Result<Vec<LiveKey>, Error> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, name, digest, scope, events, filters FROM api_keys WHERE revoked_at IS NULL",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, Option<String>>(4)?,
                    r.get::<_, Option<String>>(5)?,
                ))
            })?;
            let mut keys = Vec::new();
            for row in rows {
                let (id, name, digest, scope, events, filters) = row?;
                if let Ok(scope) = scope.parse() {
                    keys.push(LiveKey {
                        id,
                        name,
                        digest,
                        scope,
                        limits: limits_from(events, filters),
                    });
                }
            }
            Ok(keys)
        })
    }

    /// Revokes key `id` (idempotent). [`Error::NotFound`] when there is none.
    pub fn revoke_api_key(&self, id: i64) -> Result<ApiKey, Error> {
        let n = self.write(move |c| {
            Ok(c.execute(
                "UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?2) WHERE id = ?1",
                params![id, now_rfc3339()],
            )?)
        })?;
        if n == 0 {
            return Err(Error::NotFound(format!("API key {id}")));
        }
        self.api_key(id)
    }
}
