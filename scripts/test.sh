#!/usr/bin/env bash
# Every test: formatting, lints, unit tests, the planner table, the 10,000-case property
# test, integration tests on real folders and the kill -9 crash test.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --check
cargo clippy --all-targets -- -D warnings
if command -v cargo-nextest >/dev/null; then
    cargo nextest run --no-fail-fast
else
    cargo test --no-fail-fast
fi
