#!/usr/bin/env bash
# Installs what is missing, builds Tandem and runs it:
# - with a display (X11 or Wayland): the tray app (tandem-desktop). On first run it
#   creates ~/.config/tandem/tandem.toml and opens its Settings page to add a folder pair.
#   Its arguments go to tandem-desktop (e.g. --config FILE, --hidden).
# - without one: the headless service with its web UI, keeping ~/Tandem/left and
#   ~/Tandem/right in sync (open the link it prints), or, with arguments, the `tandem`
#   command, e.g.
#     bash scripts/run.sh run --config ~/.config/tandem/tandem.toml
#     bash scripts/run.sh sync ~/Documents /mnt/share/Documents
# TANDEM_HEADLESS=1 picks the headless service even where there is a display.
set -euo pipefail
cd "$(dirname "$0")/.."
gui=0
if [ -z "${TANDEM_HEADLESS:-}" ] && { [ -n "${DISPLAY:-}" ] || [ -n "${WAYLAND_DISPLAY:-}" ]; }; then gui=1; fi
need_apt=()
command -v cc >/dev/null || need_apt+=(build-essential)
command -v pkg-config >/dev/null || need_apt+=(pkg-config)
command -v npm >/dev/null || need_apt+=(nodejs npm)
if [ $gui -eq 1 ]; then
    for p in libwebkit2gtk-4.1-dev libayatana-appindicator3-dev librsvg2-dev libxdo-dev libssl-dev; do
        dpkg -s "$p" >/dev/null 2>&1 || need_apt+=("$p")
    done
fi
if [ ${#need_apt[@]} -gt 0 ]; then
    sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    $sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=600 "${need_apt[@]}"
fi
[ -d node_modules ] || npm ci --no-audit --no-fund --silent
target="${CARGO_TARGET_DIR:-$PWD/target}"
if [ $gui -eq 1 ]; then
    # The release app as the .deb ships it (web UI and `tandem` built first).
    npm run --silent tauri -- build --no-bundle >/dev/null
    echo "Starting Tandem in the tray (close the window to keep it syncing; Quit is in the tray menu)"
    exec "$target/release/tandem-desktop" "$@"
fi
# The web UI (built into the binary).
npm run build --silent >/dev/null
cargo build --release --quiet
bin="$target/release/tandem"
if [ $# -eq 0 ]; then
    mkdir -p "$HOME/Tandem/left" "$HOME/Tandem/right"
    echo "Keeping $HOME/Tandem/left <-> $HOME/Tandem/right in sync (put files in either; Ctrl-C stops)"
    exec "$bin" run "$HOME/Tandem/left" "$HOME/Tandem/right"
fi
exec "$bin" "$@"
