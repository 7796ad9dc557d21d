#!/usr/bin/env bash
# Builds Tandem if needed and runs it. With no arguments: the continuous service keeping two
# folders under ~/Tandem (created on first use) in sync until Ctrl-C, with its web UI (it
# prints a one-time link to open in a browser).
# Otherwise the arguments go to the `tandem` command, e.g.
#   bash scripts/run.sh run --config ~/.config/tandem/tandem.toml
#   bash scripts/run.sh sync ~/Documents /mnt/share/Documents
set -euo pipefail
cd "$(dirname "$0")/.."
need_apt=()
command -v cc >/dev/null || need_apt+=(build-essential)
command -v pkg-config >/dev/null || need_apt+=(pkg-config)
command -v npm >/dev/null || need_apt+=(nodejs npm)
if [ ${#need_apt[@]} -gt 0 ]; then
    sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    $sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi
# The web UI (built into the binary).
[ -d node_modules ] || npm ci --no-audit --no-fund --silent
npm run build --silent >/dev/null
cargo build --release --quiet
bin="${CARGO_TARGET_DIR:-$PWD/target}/release/tandem"
if [ $# -eq 0 ]; then
    mkdir -p "$HOME/Tandem/left" "$HOME/Tandem/right"
    echo "Keeping $HOME/Tandem/left <-> $HOME/Tandem/right in sync (put files in either; Ctrl-C stops)"
    exec "$bin" run "$HOME/Tandem/left" "$HOME/Tandem/right"
fi
exec "$bin" "$@"
