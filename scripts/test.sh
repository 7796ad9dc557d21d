#!/usr/bin/env bash
# Every test: formatting, lints, unit tests, the planner table, the 10,000-case property
# test, integration tests on real folders, the kill -9 crash test, the continuous service
# (`tandem run`) and mail through a real SMTP server on loopback (Python's aiosmtpd,
# installed here when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -c "import aiosmtpd" 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check aiosmtpd
cargo fmt --check
cargo clippy --all-targets -- -D warnings
if command -v cargo-nextest >/dev/null; then
    cargo nextest run --no-fail-fast
else
    cargo test --no-fail-fast
fi
