//! The `sessions` table (web admin logins, kept by the digest of their
//! cookie) and the web-saved settings in the `settings` table.

use rusqlite::{OptionalExtension, params};

use super::Error;
use super::sqlite::Sqlite;
use crate::base::event::now_rfc3339;

/// Prefix of the `settings` keys saved from the web admin's General
/// settings page (`ui:router.read_interval`), apart from herald's own keys.
pub(super) const UI_PREFIX: &str = "ui:";

/// A live session as the guard sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// SHA-256 of the cookie value (the row's key).
    pub digest: String,
    /// The token forms and API writes of this session must send back.
    pub csrf: String,
}

impl Sqlite {
    /// Stores a new session that ends at `expires_at` (ms) unless used.
    pub fn insert_session(
        &self,
        digest: &str,
        csrf: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<(), Error> {
        let (digest, csrf) = (digest.to_owned(), csrf.to_owned());
        self.write(move |c| {
            // Expired rows go whenever someone logs in: no job needed.
            c.execute("DELETE FROM sessions WHERE expires_at <= ?1", [now])?;
            c.execute(
                "INSERT INTO sessions (digest, csrf, created_at, last_seen, expires_at) VALUES (?1, ?2, ?3, ?3, ?4)",
                params![digest, csrf, now, expires_at],
            )?;
            Ok(())
        })
    }

    /// The live session with this digest, its expiry pushed to
    /// `min(now + idle, created_at + max_age)`; `None` when it is unknown or
    /// over.
    pub fn touch_session(
        &self,
        digest: &str,
        now: i64,
        idle_ms: i64,
        max_age_ms: i64,
    ) -> Result<Option<Session>, Error> {
        let digest = digest.to_owned();
        self.write(move |c| {
            let csrf: Option<String> = c
                .prepare_cached(
                    "UPDATE sessions SET last_seen = ?2, expires_at = min(?2 + ?3, created_at + ?4)
                     WHERE digest = ?1 AND expires_at > ?2 RETURNING csrf",
                )?
                .query_row(params![digest, now, idle_ms, max_age_ms], |r| r.get(0))
                .optional()?;
            Ok(csrf.map(|csrf| Session { digest, csrf }))
        })
    }

    /// The live session with this digest, read without extending it: for
    /// when the database cannot be written, so the admin can still read
    /// the pages (and the banner saying why).
    pub fn live_session(&self, digest: &str, now: i64) -> Result<Option<Session>, Error> {
        self.read(|c| {
            let csrf: Option<String> = c
                .prepare_cached("SELECT csrf FROM sessions WHERE digest = ?1 AND expires_at > ?2")?
                .query_row(params![digest, now], |r| r.get(0))
                .optional()?;
            Ok(csrf.map(|csrf| Session {
                digest: digest.to_owned(),
                csrf,
            }))
        })
    }

    /// Is the session with this digest still live (without extending it)?
    pub fn session_alive(&self, digest: &str, now: i64) -> Result<bool, Error> {
        self.read(|c| {
            Ok(
                c.prepare_cached("SELECT 1 FROM sessions WHERE digest = ?1 AND expires_at > ?2")?
                    .query_row(params![digest, now], |_| Ok(()))
                    .optional()?
                    .is_some(),
            )
        })
    }

    /// Ends one session (log out).
    pub fn delete_session(&self, digest: &str) -> Result<(), Error> {
        let digest = digest.to_owned();
        self.write(move |c| {
            c.execute("DELETE FROM sessions WHERE digest = ?1", [digest])?;
            Ok(())
        })
    }

    /// Ends every session but `keep` (after a password change).
    pub fn delete_other_sessions(&self, keep: Option<&str>) -> Result<usize, Error> {
        let keep = keep.map(str::to_owned);
        self.write(move |c| {
            Ok(c.execute(
                "DELETE FROM sessions WHERE ?1 IS NULL OR digest <> ?1",
                [keep],
            )?)
        })
    }

    /// The settings saved in the web admin, `(key, value as typed)`.
    pub fn ui_settings(&self) -> Result<Vec<(String, String)>, Error> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT substr(key, length(?1) + 1), value FROM settings WHERE key LIKE ?1 || '%' ORDER BY key",
            )?;
            let rows = stmt.query_map([UI_PREFIX], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// Replaces the web-saved settings with `values` in one transaction:
    /// keys not in `values` go back to the config file's value.
    pub fn replace_ui_settings(&self, values: &[(String, String)]) -> Result<(), Error> {
        let values = values.to_owned();
        self.write(move |c| {
            let tx: &rusqlite::Connection = c;
            tx.execute("DELETE FROM settings WHERE key LIKE ?1 || '%'", [UI_PREFIX])?;
            let now = now_rfc3339();
            for (k, v) in values {
                tx.execute(
                    "INSERT INTO settings (key, value, updated_at) VALUES (?1, ?2, ?3)",
                    params![format!("{UI_PREFIX}{k}"), v, now],
                )?;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::store::sqlite::Sqlite as Store;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("h.db")).unwrap();
        (dir, s)
    }

    #[test]
    fn a_session_lives_while_used_and_not_past_its_age() {
        let (_d, s) = store();
        s.insert_session("d1", "c1", 1_000, 2_000).unwrap();
        // Used before it ends: pushed to now + idle.
        let got = s.touch_session("d1", 1_500, 1_000, 10_000).unwrap();
        assert_eq!(got.unwrap().csrf, "c1");
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
    fn password_change_ends_other_sessions() {
        let (_d, s) = store();
        s.insert_session("a", "x", 0, i64::MAX / 2).unwrap();
        s.insert_session("b", "y", 0, i64::MAX / 2).unwrap();
        assert_eq!(s.delete_other_sessions(Some("a")).unwrap(), 1);
        assert!(s.touch_session("a", 1, 10, 10).unwrap().is_some());
        assert!(s.touch_session("b", 1, 10, 10).unwrap().is_none());
        assert!(s.session_alive("a", 1).unwrap());
        s.delete_session("a").unwrap();
        assert!(s.touch_session("a", 2, 10, 10).unwrap().is_none());
        assert!(!s.session_alive("a", 2).unwrap());
    }

    #[test]
    fn ui_settings_are_replaced_whole_and_apart_from_the_password() {
        let (_d, s) = store();
        s.set_admin_password_hash("h", false).unwrap();
        s.replace_ui_settings(&[("router.read_interval".into(), "2".into())])
            .unwrap();
        s.replace_ui_settings(&[("alerts.after".into(), "60".into())])
            .unwrap();
        assert_eq!(
            s.ui_settings().unwrap(),
            vec![("alerts.after".to_owned(), "60".to_owned())]
        );
        assert_eq!(s.admin_password_hash().unwrap().as_deref(), Some("h"));
    }
}
