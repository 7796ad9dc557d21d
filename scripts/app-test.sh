#!/usr/bin/env bash
# The desktop app's end-to-end tests (src-tauri/e2e/): the app built by
# `npm run tauri -- build --bundles deb` on a private Xvfb display inside its own D-Bus session
# (dbus-run-session); the tests start trayer, dunst and tauri-driver themselves.
# Screenshots and logs: artifacts/app/.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-$PWD/target}"
export TANDEM_APP="${TANDEM_APP:-$target/release/tandem-desktop}"
export TAURI_DRIVER="${TAURI_DRIVER:-$(command -v tauri-driver || echo "$HOME/.cargo/bin/tauri-driver")}"
export TANDEM_DEB="${TANDEM_DEB:-$(ls -t "$target"/release/bundle/deb/*.deb 2>/dev/null | head -1)}"
n=90
while [ -e "/tmp/.X11-unix/X$n" ] || [ -e "/tmp/.X$n-lock" ]; do n=$((n + 1)); done
Xvfb ":$n" -screen 0 1280x800x24 -nolisten tcp >/dev/null 2>&1 &
xvfb=$!
trap 'kill $xvfb 2>/dev/null || true' EXIT
for _ in $(seq 50); do [ -e "/tmp/.X11-unix/X$n" ] && break; sleep 0.1; done
export DISPLAY=":$n"
rm -rf artifacts/app
dbus-run-session -- node --test --test-concurrency=1 "$@" src-tauri/e2e/
