//! The `settings` and `api_keys` tables on PostgreSQL: the admin password's
//! hash and the API keys (their digests, never the keys), as on SQLite.

use super::Postgres;
use super::rows;
use crate::base::event::now_rfc3339;
use crate::base::subscription::Subscription;
use crate::engines::access::Scope;
use crate::store::access::{ADMIN_PASSWORD, KEY_COLUMNS, limits_from};
use crate::store::{ApiKey, Error, LiveKey};

impl Postgres {
    /// The admin password's hash, if one was set.
    pub(in crate::store) fn admin_password_hash(&self) -> Result<Option<String>, Error> {
        self.block(async {
            let c = self.client().await?;
            let stmt = c
                .prepare_cached("SELECT value FROM settings WHERE key = $1")
                .await?;
            Ok(c.query_opt(&stmt, &[&ADMIN_PASSWORD])
                .await?
                .map(|r| r.get(0)))
        })
    }

    /// Stores the admin password's hash. With `only_if_unset`, keeps one
    /// already there and returns false (two starts racing for the first
    /// password: the first wins).
    pub(in crate::store) fn set_admin_password_hash(
        &self,
        hash: &str,
        only_if_unset: bool,
    ) -> Result<bool, Error> {
        self.block(async {
            let c = self.client().await?;
            let sql = if only_if_unset {
                "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3)
                 ON CONFLICT (key) DO NOTHING"
            } else {
                "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at"
            };
            let stmt = c.prepare_cached(sql).await?;
            Ok(c.execute(&stmt, &[&ADMIN_PASSWORD, &hash, &now_rfc3339()])
                .await?
                == 1)
        })
    }

    /// Stores a new API key by its digest, with a stream key's `limits`. A
    /// digest already stored is [`Error::Duplicate`].
    pub(in crate::store) fn insert_api_key(
        &self,
        name: &str,
        hint: &str,
        digest: &str,
        scope: Scope,
        limits: Option<&Subscription>,
    ) -> Result<ApiKey, Error> {
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
        self.block(async {
            let c = self.client().await?;
            let stmt = c
                .prepare_cached(&format!(
                    "INSERT INTO api_keys (name, hint, digest, scope, created_at, events, filters)
                     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {KEY_COLUMNS}"
                ))
                .await?;
            let row = c
                .query_one(
                    &stmt,
                    &[
                        &name,
                        &hint,
                        &digest,
                        &scope.as_str(),
                        &now_rfc3339(),
                        &events,
                        &filters,
                    ],
                )
                .await
                .map_err(|e| match Error::from(e) {
                    Error::Duplicate(_) => Error::Duplicate("API key".into()),
                    other => other,
                })?;
            rows::api_key(&row)
        })
    }

    /// All API keys, revoked ones included, by id.
    pub(in crate::store) fn api_keys(&self) -> Result<Vec<ApiKey>, Error> {
        self.block(async {
            let c = self.client().await?;
            let stmt = c
                .prepare_cached(&format!("SELECT {KEY_COLUMNS} FROM api_keys ORDER BY id"))
                .await?;
            c.query(&stmt, &[])
                .await?
                .iter()
                .map(rows::api_key)
                .collect()
        })
    }

    /// API key `id` as listed.
    pub(in crate::store) fn api_key(&self, id: i64) -> Result<ApiKey, Error> {
        self.block(async {
            let c = self.client().await?;
            let stmt = c
                .prepare_cached(&format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = $1"))
                .await?;
            match c.query_opt(&stmt, &[&id]).await? {
                Some(row) => rows::api_key(&row),
                None => Err(Error::NotFound(format!("API key {id}"))),
            }
        })
    }

    /// Every live (not revoked) key, for the listener's in-memory view of
    /// the keys. A key whose scope text is unknown (edited by hand) is left
    /// out: refused.
    pub(in crate::store) fn live_api_keys(&self) -> Result<Vec<LiveKey>, Error> {
        self.block(async {
            let c = self.client().await?;
            let stmt = c
                .prepare_cached(
                    "SELECT id, name, digest, scope, events, filters FROM api_keys
                     WHERE revoked_at IS NULL ORDER BY id",
                )
                .await?;
            let mut keys = Vec::new();
            for r in c.query(&stmt, &[]).await? {
                let scope: String = r.try_get(3)?;
                if let Ok(scope) = scope.parse() {
                    keys.push(LiveKey {
                        id: r.try_get(0)?,
                        name: r.try_get(1)?,
                        digest: r.try_get(2)?,
                        scope,
                        limits: limits_from(r.try_get(4)?, r.try_get(5)?),
                    });
                }
            }
            Ok(keys)
        })
    }

    /// Revokes key `id` (idempotent). [`Error::NotFound`] when there is none.
    pub(in crate::store) fn revoke_api_key(&self, id: i64) -> Result<ApiKey, Error> {
        self.block(async {
            let c = self.client().await?;
            let stmt = c
                .prepare_cached(&format!(
                    "UPDATE api_keys SET revoked_at = coalesce(revoked_at, $2) WHERE id = $1
                     RETURNING {KEY_COLUMNS}"
                ))
                .await?;
            match c.query_opt(&stmt, &[&id, &now_rfc3339()]).await? {
                Some(row) => rows::api_key(&row),
                None => Err(Error::NotFound(format!("API key {id}"))),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_server::TempPostgres;
    use super::*;
    use crate::base::config::DatabaseUrl;
    use crate::base::subscription::FieldMatch;

    /// A server, a new database's name on it, and a store on that database.
    fn store() -> (TempPostgres, String, Postgres) {
        let server = TempPostgres::start();
        let url = server.new_database();
        let store = Postgres::open(&DatabaseUrl::parse(&url).unwrap()).unwrap();
        let db = url.rsplit('/').next().unwrap().to_owned();
        (server, db, store)
    }

    #[test]
    fn the_first_admin_password_wins_a_race_and_a_change_replaces_it() {
        let (_server, _db, s) = store();
        assert_eq!(s.admin_password_hash().unwrap(), None);
        assert!(s.set_admin_password_hash("first", true).unwrap());
        assert!(!s.set_admin_password_hash("second", true).unwrap());
        assert_eq!(s.admin_password_hash().unwrap().as_deref(), Some("first"));
        assert!(s.set_admin_password_hash("changed", false).unwrap());
        assert_eq!(s.admin_password_hash().unwrap().as_deref(), Some("changed"));
    }

    #[test]
    fn keys_are_listed_by_id_with_their_limits_and_revoked_keys_are_not_live() {
        let (_server, _db, s) = store();
        let limits = Subscription::new(
            vec!["ticket.*".into()],
            vec![FieldMatch::parse("data.queue=support").unwrap()],
        )
        .unwrap();
        let a = s
            .insert_api_key("reader", "hk_a", "da", Scope::Read, None)
            .unwrap();
        let b = s
            .insert_api_key("feed", "hk_b", "db", Scope::Stream, Some(&limits))
            .unwrap();
        assert_eq!((a.scope, a.revoked_at.as_deref()), (Scope::Read, None));
        assert_eq!(b.limits, Some(limits.clone()));
        let listed: Vec<i64> = s.api_keys().unwrap().iter().map(|k| k.id).collect();
        assert_eq!(listed, vec![a.id, b.id]);
        assert_eq!(s.api_key(b.id).unwrap().name, "feed");
        let live = s.live_api_keys().unwrap();
        assert_eq!(live.len(), 2);
        assert_eq!(
            (live[1].digest.as_str(), live[1].scope),
            ("db", Scope::Stream)
        );
        assert_eq!(live[1].limits, Some(limits));

        let revoked = s.revoke_api_key(a.id).unwrap();
        let at = revoked.revoked_at.clone().expect("revoked");
        // Idempotent: the first revocation's time stays.
        assert_eq!(s.revoke_api_key(a.id).unwrap().revoked_at, Some(at));
        let live: Vec<i64> = s.live_api_keys().unwrap().iter().map(|k| k.id).collect();
        assert_eq!(live, vec![b.id]);
        assert_eq!(s.api_keys().unwrap().len(), 2);
    }

    #[test]
    fn unknown_keys_are_not_found_and_a_digest_is_stored_once() {
        let (_server, _db, s) = store();
        assert!(matches!(s.api_key(7), Err(Error::NotFound(m)) if m == "API key 7"));
        assert!(matches!(s.revoke_api_key(7), Err(Error::NotFound(m)) if m == "API key 7"));
        s.insert_api_key("a", "hk", "same", Scope::Admin, None)
            .unwrap();
        assert!(matches!(
            s.insert_api_key("b", "hk", "same", Scope::Ingest, None),
            Err(Error::Duplicate(_))
        ));
        assert_eq!(s.api_keys().unwrap().len(), 1);
    }

    #[test]
    fn hand_edited_keys_read_as_the_least_and_are_refused_live() {
        let (server, db, s) = store();
        let k = s
            .insert_api_key("k", "hk", "d", Scope::Admin, None)
            .unwrap();
        let l = s
            .insert_api_key("l", "hl", "e", Scope::Stream, None)
            .unwrap();
        server.psql(
            &db,
            &format!(
                "ALTER TABLE api_keys DROP CONSTRAINT api_keys_scope_check;
                 UPDATE api_keys SET scope = 'root' WHERE id = {};
                 UPDATE api_keys SET events = 'not json' WHERE id = {}",
                k.id, l.id
            ),
        );
        assert_eq!(s.api_key(k.id).unwrap().scope, Scope::Ingest);
        let live = s.live_api_keys().unwrap();
        assert_eq!(live.len(), 1);
        let limits = live[0].limits.as_ref().expect("limited to nothing");
        assert_eq!(limits.events, vec!["none.unreadable-limits".to_owned()]);
    }
}
