#!/usr/bin/env bash
# Builds the Debian package: target/debian/herald_<version>_amd64.deb.
#   packaging/build-deb.sh                  # version from Cargo.toml, revision 1
#   packaging/build-deb.sh --deb-version 0.1.0-2
# Needs cargo-deb (cargo install cargo-deb --locked) and, for the package's
# library dependencies, dpkg-dev (dpkg-shlibdeps).
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo-deb >/dev/null 2>&1 || {
  echo "cargo-deb is missing: cargo install cargo-deb --locked" >&2
  exit 1
}
# The man page, compressed as Debian expects (-n: no timestamp, reproducible).
mkdir -p target/deb-assets
gzip -9 -n -c packaging/herald.1 > target/deb-assets/herald.1.gz
# cargo deb builds the release binary first (profile.release: stripped).
cargo deb --locked "$@"
ls -1 target/debian/*.deb
