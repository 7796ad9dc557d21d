#!/usr/bin/env bash
# Every test: formatting, lints, unit tests, the planner table, the 10,000-case property
# test, integration tests on real folders, the kill -9 crash test, the continuous service
# (`tandem run`), mail through a real SMTP server on loopback (Python's aiosmtpd), the web
# UI's type check and build, and the browser tests: the real UI in Debian's Chromium
# driven by playwright-core against a real `tandem run` (screenshots in artifacts/e2e/); then the desktop app: its .deb is built
# (`npm run tauri -- build --bundles deb`) and the app is tested on Xvfb with a tray, a
# notification daemon and WebDriver, and without either (scripts/app-test.sh; screenshots
# in artifacts/app/). The Windows job runs under wine (scripts/windows-test.sh: clippy, the
# unit and integration tests, `tandem run` and `tandem stop`, the Windows service, the NSIS
# installer).
set -euo pipefail
cd "$(dirname "$0")/.."
# Whatever a fresh Debian machine lacks (packages, Chromium, aiosmtpd, npm modules,
# tauri-driver): installed here, so this script alone runs every test.
bash scripts/install-deps.sh
# The UI first: the tandem binary embeds ui/dist.
npm run build
cargo fmt --all --check
# The architecture's rules first (tests/tidy.rs: layers import downward only, the planner
# is pure, the engine reaches files only through sides, the local side only in the
# composition roots, a `//!` summary on every file): a layering mistake fails fast.
cargo test --quiet --test tests tidy
cargo clippy --all-targets -- -D warnings
cargo clippy -p tandem-desktop -- -D warnings
if command -v cargo-nextest >/dev/null; then
    cargo nextest run --no-fail-fast
else
    cargo test --no-fail-fast
fi
# Windows: built for the target, its tests, the service and the installer under wine.
bash scripts/windows-test.sh
# The browser tests drive the debug binary the Rust tests built.
cargo build --quiet
npm run e2e
# The desktop app, as users get it: the .deb (release build of the app and of `tandem`).
npm run tauri -- build --bundles deb
bash scripts/app-test.sh
