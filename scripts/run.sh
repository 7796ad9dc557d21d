#!/usr/bin/env bash
# Builds Tandem if needed and runs it. With no arguments: the continuous service keeping two
# folders under ~/Tandem (created on first use) in sync until Ctrl-C, with its local API.
# Otherwise the arguments go to the `tandem` command, e.g.
#   bash scripts/run.sh run --config ~/.config/tandem/tandem.toml
#   bash scripts/run.sh sync ~/Documents /mnt/share/Documents
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v cc >/dev/null || ! command -v pkg-config >/dev/null; then
    sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    $sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq build-essential pkg-config
fi
cargo build --release --quiet
bin="${CARGO_TARGET_DIR:-$PWD/target}/release/tandem"
if [ $# -eq 0 ]; then
    mkdir -p "$HOME/Tandem/left" "$HOME/Tandem/right"
    echo "Keeping $HOME/Tandem/left <-> $HOME/Tandem/right in sync (put files in either; Ctrl-C stops)"
    exec "$bin" run "$HOME/Tandem/left" "$HOME/Tandem/right"
fi
exec "$bin" "$@"
