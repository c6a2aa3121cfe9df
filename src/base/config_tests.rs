//! Tests of [`super`]: defaults, files, environment, live settings.
use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn defaults_are_valid_and_documented_values() {
    let c = Config::defaults();
    assert_eq!(c.listen, "127.0.0.1:8470".parse().unwrap());
    assert_eq!(c.read_interval, Duration::from_secs(10));
    assert_eq!(c.retention, Duration::from_secs(7 * 86_400));
    assert_eq!(c.database_path, PathBuf::from("data/herald.db"));
    assert_eq!(c.durability, Durability::Full);
    assert_eq!(c.busy_timeout, Duration::from_secs(10));
    assert_eq!(c.min_free_bytes, 50_000_000);
}

#[test]
fn database_settings_are_checked() {
    let c = Config::load(
        None,
        env(&[
            ("HERALD_DATABASE_DURABILITY", "normal"),
            ("HERALD_DATABASE_BUSY_TIMEOUT", "0.25"),
            ("HERALD_DATABASE_MIN_FREE_MB", "0"),
        ]),
    )
    .unwrap();
    assert_eq!(c.durability, Durability::Normal);
    assert_eq!(c.busy_timeout, Duration::from_millis(250));
    assert_eq!(c.min_free_bytes, 0);
    let e = Config::load(None, env(&[("HERALD_DATABASE_DURABILITY", "fast")])).unwrap_err();
    assert!(e.to_string().contains("database.durability"), "{e}");
    assert!(e.to_string().contains("\"full\" or \"normal\""), "{e}");
    let e = Config::load(None, env(&[("HERALD_DATABASE_BUSY_TIMEOUT", "0")])).unwrap_err();
    assert!(e.to_string().contains("database.busy_timeout"), "{e}");
}

#[test]
fn env_overrides_are_typed_by_the_default() {
    let c = Config::load(
        None,
        env(&[
            ("HERALD_ROUTER_READ_INTERVAL", "0.5"),
            ("HERALD_SERVER_LISTEN", "127.0.0.1:9"),
            ("HERALD_DELIVERY_CONCURRENCY", "4"),
            ("HERALD_DELIVERY_SHUTDOWN_GRACE", "0.5"),
            ("HERALD_LOG", "debug"),
            ("PATH", "/bin"),
        ]),
    )
    .unwrap();
    assert_eq!(c.read_interval, Duration::from_millis(500));
    assert_eq!(c.listen.port(), 9);
    assert_eq!(c.delivery_concurrency, 4);
    assert_eq!(c.shutdown_grace, Duration::from_millis(500));
}

#[test]
fn unknown_variable_is_named() {
    let err = Config::load(None, env(&[("HERALD_ROUTER_READ_INTERVALL", "1")])).unwrap_err();
    assert!(
        err.to_string().contains("HERALD_ROUTER_READ_INTERVALL"),
        "{err}"
    );
}

#[test]
fn bad_env_value_is_named() {
    let err = Config::load(None, env(&[("HERALD_ROUTER_BATCH_SIZE", "many")])).unwrap_err();
    assert!(
        err.to_string().contains("HERALD_ROUTER_BATCH_SIZE"),
        "{err}"
    );
}

#[test]
fn out_of_range_value_names_key() {
    let err = Config::load(None, env(&[("HERALD_ROUTER_READ_INTERVAL", "0.01")])).unwrap_err();
    assert!(
        err.to_string().starts_with("router.read_interval = 0.01"),
        "{err}"
    );
}

#[test]
fn file_with_unknown_key_is_refused_with_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.toml");
    std::fs::write(&path, "[router]\nread_intervall = 1.0\n").unwrap();
    let err = Config::load(Some(&path), env(&[])).unwrap_err();
    assert!(
        err.to_string()
            .contains("unknown key `read_intervall` in [router]"),
        "{err}"
    );
}

#[test]
fn file_overlays_defaults_and_wrong_type_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.toml");
    std::fs::write(&path, "[database]\npath = \"/tmp/x.db\"\n").unwrap();
    let c = Config::load(Some(&path), env(&[])).unwrap();
    assert_eq!(c.database_path, PathBuf::from("/tmp/x.db"));
    assert_eq!(c.read_interval, Duration::from_secs(10));

    std::fs::write(&path, "[router]\nbatch_size = \"ten\"\n").unwrap();
    let err = Config::load(Some(&path), env(&[])).unwrap_err();
    assert!(err.to_string().contains("batch_size"), "{err}");
}

#[test]
fn nan_is_refused() {
    let err = Config::load(None, env(&[("HERALD_ROUTER_READ_INTERVAL", "nan")])).unwrap_err();
    assert!(
        err.to_string().starts_with("router.read_interval = NaN"),
        "{err}"
    );
    let err = Config::load(None, env(&[("HERALD_DELIVERY_SHUTDOWN_GRACE", "inf")])).unwrap_err();
    assert!(
        err.to_string().starts_with("delivery.shutdown_grace"),
        "{err}"
    );
}

#[test]
fn origins_name_file_and_environment_and_ui_values_are_checked_like_them() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("h.toml");
    std::fs::write(&file, "[router]\nread_interval = 5\n").unwrap();
    let c = Config::load(Some(&file), env(&[("HERALD_ALERTS_AFTER", "60")])).unwrap();
    assert!(c.origins["router.read_interval"].starts_with("config file "));
    assert_eq!(c.origins["alerts.after"], "environment HERALD_ALERTS_AFTER");
    assert!(!c.origins.contains_key("cleanup.schedule"));
    let ui = c
        .with_ui(&[("router.read_interval".into(), "0.5".into())])
        .unwrap();
    assert_eq!(ui.read_interval, Duration::from_millis(500));
    assert_eq!(ui.alert_after, Duration::from_secs(60));
    assert_eq!(
        ui.value_text("router.read_interval").as_deref(),
        Some("0.5")
    );
    for (key, value) in [
        ("router.read_interval", "0"),
        ("router.read_interval", "soon"),
        ("cleanup.schedule", "hourly"),
        ("server.listen", "0.0.0.0:1"),
        ("nope.key", "1"),
    ] {
        let e = c.with_ui(&[(key.into(), value.into())]).unwrap_err();
        assert!(e.to_string().contains(key), "{e}");
    }
}

#[test]
fn networks_come_from_lists_or_comma_separated_variables() {
    let c = Config::defaults();
    for denied in ["127.0.0.0/8", "::1/128", "169.254.0.0/16", "fe80::/10"] {
        assert!(
            c.deny_networks.contains(&denied.parse().unwrap()),
            "{denied} not denied by default"
        );
    }
    assert!(c.allow_networks.is_empty());
    assert!(!c.deny_private);
    let c = Config::load(
        None,
        env(&[
            (
                "HERALD_DELIVERY_ALLOW_NETWORKS",
                "127.0.0.0/8, ::1/128,192.0.2.7,",
            ),
            ("HERALD_DELIVERY_DENY_PRIVATE", "true"),
        ]),
    )
    .unwrap();
    let allowed: Vec<String> = c.allow_networks.iter().map(|n| n.to_string()).collect();
    assert_eq!(allowed, ["127.0.0.0/8", "::1/128", "192.0.2.7/32"]);
    assert!(c.deny_private);
    let c = Config::load(None, env(&[("HERALD_DELIVERY_DENY_NETWORKS", "")])).unwrap();
    assert!(c.deny_networks.is_empty());
    let err = Config::load(
        None,
        env(&[("HERALD_DELIVERY_ALLOW_NETWORKS", "127.0.0.0/8,localhost")]),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("delivery.allow_networks = localhost: not a network"),
        "{err}"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.toml");
    std::fs::write(&path, "[delivery]\ndeny_networks = [\"10.0.0.0/33\"]\n").unwrap();
    let err = Config::load(Some(&path), env(&[])).unwrap_err();
    assert!(err.to_string().contains("10.0.0.0/33"), "{err}");
}

#[test]
fn bad_cron_is_refused() {
    let err = Config::load(None, env(&[("HERALD_CLEANUP_SCHEDULE", "every hour")])).unwrap_err();
    assert!(err.to_string().starts_with("cleanup.schedule"), "{err}");
}

#[test]
fn a_database_url_is_shown_only_with_its_password_masked() {
    for (url, shown) in [
        (
            "postgres://herald:s3cret@db.example:5432/herald",
            "postgres://herald:****@db.example:5432/herald",
        ),
        (
            "postgresql://u:pa/ss?x@h/db?sslmode=disable",
            "postgresql://u:****@h/db?sslmode=disable",
        ),
        (
            "postgres://u@h/db?password=s3cret&application_name=x",
            "postgres://u@h/db?password=****&application_name=x",
        ),
        ("postgres://h/db", "postgres://h/db"),
    ] {
        let u = DatabaseUrl::parse(url).unwrap();
        assert_eq!(u.masked(), shown);
        assert_eq!(format!("{u}"), shown);
        assert_eq!(format!("{u:?}"), shown);
        assert_eq!(u.expose(), url);
    }
    for bad in ["mysql://h/db", "postgres:///db", "h:5432"] {
        assert!(DatabaseUrl::parse(bad).is_err(), "{bad}");
    }
}
