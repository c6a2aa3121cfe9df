//! The web admin walked through in real headless Chromium: runs
//! tests/browser/admin.test.mjs (playwright-core driving Debian's chromium)
//! against the real binary. `.ci/run` installs chromium and playwright-core;
//! elsewhere, without them, the test says so and is skipped, except in CI
//! (CI=true), where their absence fails it. Screenshots of each tab go to
//! target/screenshots/.

use std::process::Command;

use crate::utils::repo_file;

#[test]
fn the_web_admin_works_in_a_real_browser() {
    let dir = repo_file("tests/browser");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let ready = dir.join("node_modules/playwright-core").is_dir()
        && std::path::Path::new(&chromium).exists()
        && Command::new("node").arg("--version").output().is_ok();
    if !ready {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "the browser test needs node, {chromium} and tests/browser/node_modules (bash .ci/run installs them)"
        );
        eprintln!(
            "skipped: install chromium and run `npm ci` in tests/browser (bash .ci/run does)"
        );
        return;
    }
    // Screenshots of this run only.
    let shots = repo_file("target/screenshots");
    let _ = std::fs::remove_dir_all(&shots);
    let out = Command::new("node")
        .arg("admin.test.mjs")
        .current_dir(&dir)
        .env("TEST_HERALD_BIN", env!("CARGO_BIN_EXE_herald"))
        .env("SCREENSHOTS", &shots)
        .env("CHROMIUM", &chromium)
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "browser test failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("browser test passed"), "{stdout}");
    for tab in [
        "webhooks",
        "webhook-form",
        "event-log",
        "event-detail",
        "settings",
    ] {
        assert!(
            repo_file(&format!("target/screenshots/{tab}.png")).exists(),
            "screenshot of {tab}"
        );
    }
}
