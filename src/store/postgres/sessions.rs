//! The `sessions` table on PostgreSQL (web admin logins, kept by the digest
//! of their cookie) and the web-saved settings in the `settings` table, as
//! on SQLite.

use super::Postgres;
use crate::base::event::now_rfc3339;
use crate::store::sessions::UI_PREFIX;
use crate::store::{Error, Session};

impl Postgres {
    /// Stores a new session that ends at `expires_at` (ms) unless used.
    pub(in crate::store) fn insert_session(
        &self,
        digest: &str,
        csrf: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<(), Error> {
        self.block(async {
            let mut c = self.client().await?;
            let tx = c.transaction().await?;
            // Expired rows go whenever someone logs in: no job needed.
            let expired = tx
                .prepare_cached("DELETE FROM sessions WHERE expires_at <= $1")
                .await?;
            tx.execute(&expired, &[&now]).await?;
            let insert = tx
                .prepare_cached(
                    "INSERT INTO sessions (digest, csrf, created_at, last_seen, expires_at)
                     VALUES ($1, $2, $3, $3, $4)",
                )
                .await?;
            tx.execute(&insert, &[&digest, &csrf, &now, &expires_at])
                .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// The live session with this digest, its expiry pushed to
    /// `min(now + idle, created_at + max_age)`; `None` when it is unknown or
    /// over.
    pub(in crate::store) fn touch_session(
        &self,
        digest: &str,
        now: i64,
        idle_ms: i64,
        max_age_ms: i64,
    ) -> Result<Option<Session>, Error> {
        self.block(async {
            let c = self.client().await?;
            let stmt = c
                .prepare_cached(
                    "UPDATE sessions SET last_seen = $2, expires_at = LEAST($2 + $3, created_at + $4)
                     WHERE digest = $1 AND expires_at > $2 RETURNING csrf",
                )
                .await?;
            let row = c
                .query_opt(&stmt, &[&digest, &now, &idle_ms, &max_age_ms])
                .await?;
            Ok(row.map(|r| Session {
                digest: digest.to_owned(),
                csrf: r.get(0),
            }))
        })
    }

    /// The live session with this digest, read without extending it: for
    /// when the database cannot be written, so the admin can still read
    /// the pages (and the banner saying why).
    pub(in crate::store) fn live_session(
        &self,
        digest: &str,
        now: i64,
    ) -> Result<Option<Session>, Error> {
        self.block(async {
            let c = self.client().await?;
            let stmt = c
                .prepare_cached("SELECT csrf FROM sessions WHERE digest = $1 AND expires_at > $2")
                .await?;
            let row = c.query_opt(&stmt, &[&digest, &now]).await?;
            Ok(row.map(|r| Session {
                digest: digest.to_owned(),
                csrf: r.get(0),
            }))
        })
    }

    /// Is the session with this digest still live (without extending it)?
    pub(in crate::store) fn session_alive(&self, digest: &str, now: i64) -> Result<bool, Error> {
        self.block(async {
            let c = self.client().await?;
            let stmt = c
                .prepare_cached("SELECT 1 FROM sessions WHERE digest = $1 AND expires_at > $2")
                .await?;
            Ok(c.query_opt(&stmt, &[&digest, &now]).await?.is_some())
        })
    }

    /// Ends one session (log out).
    pub(in crate::store) fn delete_session(&self, digest: &str) -> Result<(), Error> {
        self.block(async {
            let c = self.client().await?;
            let stmt = c
                .prepare_cached("DELETE FROM sessions WHERE digest = $1")
                .await?;
            c.execute(&stmt, &[&digest]).await?;
            Ok(())
        })
    }

    /// Ends every session but `keep` (after a password change).
    pub(in crate::store) fn delete_other_sessions(
        &self,
        keep: Option<&str>,
    ) -> Result<usize, Error> {
        self.block(async {
            let c = self.client().await?;
            let stmt = c
                .prepare_cached("DELETE FROM sessions WHERE $1::text IS NULL OR digest <> $1")
                .await?;
            Ok(c.execute(&stmt, &[&keep]).await? as usize)
        })
    }

    /// The settings saved in the web admin, `(key, value as typed)`, by key
    /// in byte order (as SQLite's, whatever the database's collation).
    pub(in crate::store) fn ui_settings(&self) -> Result<Vec<(String, String)>, Error> {
        self.block(async {
            let c = self.client().await?;
            let stmt = c
                .prepare_cached(
                    "SELECT substr(key, length($1::text) + 1), value FROM settings
                     WHERE key LIKE $1::text || '%' ORDER BY key COLLATE \"C\"",
                )
                .await?;
            let rows = c.query(&stmt, &[&UI_PREFIX]).await?;
            rows.iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                .collect()
        })
    }

    /// Replaces the web-saved settings with `values` in one transaction:
    /// keys not in `values` go back to the config file's value.
    pub(in crate::store) fn replace_ui_settings(
        &self,
        values: &[(String, String)],
    ) -> Result<(), Error> {
        self.block(async {
            let mut c = self.client().await?;
            let tx = c.transaction().await?;
            let clear = tx
                .prepare_cached("DELETE FROM settings WHERE key LIKE $1::text || '%'")
                .await?;
            tx.execute(&clear, &[&UI_PREFIX]).await?;
            let insert = tx
                .prepare_cached("INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3)")
                .await?;
            let now = now_rfc3339();
            for (k, v) in values {
                tx.execute(&insert, &[&format!("{UI_PREFIX}{k}"), v, &now])
                    .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_server::TempPostgres;
    use super::*;
    use crate::base::config::DatabaseUrl;

    /// A server, and a store on a new database of it.
    fn store() -> (TempPostgres, Postgres) {
        let server = TempPostgres::start();
        let url = DatabaseUrl::parse(&server.new_database()).unwrap();
        let store = Postgres::open(&url).unwrap();
        (server, store)
    }

    #[test]
    fn a_session_lives_while_used_and_not_past_its_age() {
        let (_server, s) = store();
        s.insert_session("d1", "c1", 1_000, 2_000).unwrap();
        // Used before it ends: pushed to now + idle.
        let got = s.touch_session("d1", 1_500, 1_000, 10_000).unwrap();
        assert_eq!(
            got,
            Some(Session {
                digest: "d1".into(),
                csrf: "c1".into()
            })
        );
        assert!(
            s.touch_session("d1", 2_400, 1_000, 10_000)
                .unwrap()
                .is_some()
        );
        // Idle too long: gone.
        assert!(
            s.touch_session("d1", 3_500, 1_000, 10_000)
                .unwrap()
                .is_none()
        );
        assert!(s.live_session("d1", 3_500).unwrap().is_none());
        // Max age caps the idle push.
        s.insert_session("d2", "c2", 0, 1_000).unwrap();
        assert!(s.touch_session("d2", 900, 5_000, 1_000).unwrap().is_some());
        assert!(
            s.touch_session("d2", 1_001, 5_000, 1_000)
                .unwrap()
                .is_none()
        );
        assert!(s.touch_session("nope", 0, 1, 1).unwrap().is_none());
    }

    #[test]
    fn reading_a_session_does_not_extend_it_and_a_login_clears_expired_ones() {
        let (_server, s) = store();
        s.insert_session("d", "c", 0, 1_000).unwrap();
        assert_eq!(s.live_session("d", 999).unwrap().unwrap().csrf, "c");
        assert!(s.session_alive("d", 999).unwrap());
        assert!(s.live_session("d", 1_000).unwrap().is_none());
        assert!(!s.session_alive("d", 1_000).unwrap());
        // A login after "d" ended removes it: its digest may be used again.
        s.insert_session("e", "c", 1_000, 5_000).unwrap();
        s.insert_session("d", "c3", 1_000, 5_000).unwrap();
        assert_eq!(s.live_session("d", 1_001).unwrap().unwrap().csrf, "c3");
        // A live digest cannot be stored twice.
        assert!(matches!(
            s.insert_session("d", "c4", 1_001, 5_000),
            Err(Error::Duplicate(_))
        ));
        assert_eq!(s.live_session("d", 1_001).unwrap().unwrap().csrf, "c3");
    }

    #[test]
    fn password_change_ends_other_sessions() {
        let (_server, s) = store();
        s.insert_session("a", "x", 0, i64::MAX / 2).unwrap();
        s.insert_session("b", "y", 0, i64::MAX / 2).unwrap();
        assert_eq!(s.delete_other_sessions(Some("a")).unwrap(), 1);
        assert!(s.touch_session("a", 1, 10, 10).unwrap().is_some());
        assert!(s.touch_session("b", 1, 10, 10).unwrap().is_none());
        assert!(s.session_alive("a", 1).unwrap());
        s.delete_session("a").unwrap();
        assert!(s.touch_session("a", 2, 10, 10).unwrap().is_none());
        assert!(!s.session_alive("a", 2).unwrap());
        s.insert_session("c", "z", 3, 100).unwrap();
        assert_eq!(s.delete_other_sessions(None).unwrap(), 1);
        assert!(!s.session_alive("c", 4).unwrap());
    }

    #[test]
    fn ui_settings_are_replaced_whole_and_apart_from_the_password() {
        let (_server, s) = store();
        s.set_admin_password_hash("h", false).unwrap();
        s.replace_ui_settings(&[("router.read_interval".into(), "2".into())])
            .unwrap();
        s.replace_ui_settings(&[
            ("b.z".into(), "1".into()),
            ("B.a".into(), "2".into()),
            ("alerts.after".into(), "60".into()),
        ])
        .unwrap();
        assert_eq!(
            s.ui_settings().unwrap(),
            vec![
                ("B.a".to_owned(), "2".to_owned()),
                ("alerts.after".to_owned(), "60".to_owned()),
                ("b.z".to_owned(), "1".to_owned()),
            ]
        );
        assert_eq!(s.admin_password_hash().unwrap().as_deref(), Some("h"));
        // A key twice: refused whole, the settings before it kept.
        assert!(
            s.replace_ui_settings(&[("x".into(), "1".into()), ("x".into(), "2".into())])
                .is_err()
        );
        assert_eq!(s.ui_settings().unwrap().len(), 3);
    }
}
