#!/usr/bin/env bash
# The Windows job (scripts/test.sh runs it): Tandem built for Windows (x86_64-pc-windows-gnu
# with mingw-w64) and run under wine:
# - clippy for the Windows target (library, binary, tests);
# - the library's unit tests and the integration tests (the property test at 150 cases; the
#   crash and chaos tests run on Linux only; what wine cannot do is skipped in the test
#   files, each skip with its reason);
# - a one-shot sync; `tandem run` with its watcher, then `tandem stop`;
# - the Windows service through wine's service manager: installed, started, syncing an
#   edit, stopped, removed;
# - the NSIS installer (wix/tandem.nsi) built, installed silently with the service, the
#   service syncing, then uninstalled. The installer lands in artifacts/windows/.
# Every wine call runs under a timeout. Needs mingw-w64, wine and nsis (install-deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
target=x86_64-pc-windows-gnu
rustup target list --installed | grep -qx "$target" || rustup target add "$target"
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER="$PWD/scripts/wine/run.sh"
export WINEPREFIX="$PWD/target/wine-prefix" WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
# wine warns on stderr that the Z: drive (the Linux root) has no volume serial: noise.
w() { timeout --kill-after=10 "${WINE_TIMEOUT:-120}" wine "$@" 2> >(grep -v "FS volume label and serial" >&2); }
win() { winepath -w "$1" 2>/dev/null; }
step() { echo "== windows: $*"; }
# Wait up to $2 seconds for file $1.
arrives() {
    for _ in $(seq $((${2:-30} * 5))); do [ -e "$1" ] && return 0; sleep 0.2; done
    echo "windows: $1 did not arrive" >&2
    return 1
}

step "wine prefix"
[ -f "$WINEPREFIX/system.reg" ] || timeout 300 wineboot -i
# Wait until wineboot's wine server has gone: a program started while it shuts down gets a
# second server, and services registered with one are unknown to the other.
timeout 120 wineserver -w
# Debian's wine 8 lacks bcryptprimitives.dll, which Rust programs import (without it every
# program exits 53 silently): a stand-in built with mingw (scripts/wine/bcryptprimitives.c).
x86_64-w64-mingw32-gcc -shared -O2 -o "$WINEPREFIX/drive_c/windows/system32/bcryptprimitives.dll" \
    scripts/wine/bcryptprimitives.c scripts/wine/bcryptprimitives.def -lbcrypt
# wine ends its services once no program of the user runs: this one keeps the session.
timeout 3600 wine ping -n 3600 127.0.0.1 >/dev/null 2>&1 &
keep=$!
work=$(mktemp -d)
trap 'kill $keep 2>/dev/null || true; timeout 30 wineserver -k 2>/dev/null || true; rm -rf "$work"' EXIT

step "clippy"
cargo clippy --target "$target" -p tandem --all-targets -- -D warnings
step "unit and integration tests under wine"
# The test binary runs as one wine process: its timeout covers all of its tests. Wine's file
# calls are slow, and the Windows job has 20 minutes: the property test runs 150 cases here
# (1,000 took 13 minutes on a 2-core machine; Linux runs 10,000). Left out here, and run on
# Linux: the crash tests (kill -9 of a 3,000-file sync, 20 times: over 10 minutes under wine)
# and the chaos test (under wine one of its seeds once hung the whole binary; an open
# question, see the issue's note).
WINE_TIMEOUT=1500 TANDEM_PROPTEST_CASES=150 \
    cargo test --target "$target" -p tandem --lib --test tests -- --skip chaos:: --skip crash::
cargo build --target "$target" -p tandem --bin tandem
exe=${CARGO_TARGET_DIR:-target}/$target/debug/tandem.exe

step "one-shot sync"
mkdir -p "$work/l/sub" "$work/r" "$work/svc"
echo one >"$work/l/sub/a.txt"
w "$exe" --state "$(win "$work/st.db")" sync "$(win "$work/l")" "$(win "$work/r")"
cmp "$work/l/sub/a.txt" "$work/r/sub/a.txt"

step "tandem run, an edit, tandem stop"
WINE_TIMEOUT=300 w "$exe" --state "$(win "$work/st.db")" run "$(win "$work/l")" "$(win "$work/r")" --listen 127.0.0.1:0 >"$work/run.log" &
run=$!
arrives "$work/st.db.service.json" 60
echo two >"$work/l/sub/b.txt"
arrives "$work/r/sub/b.txt" 30
w "$exe" --state "$(win "$work/st.db")" stop
wait $run
[ ! -e "$work/st.db.service.json" ]

cat >"$work/cfg.toml" <<EOF
[[pair]]
name = "share"
left = '$(win "$work/l")'
right = '$(win "$work/r")'
EOF

step "the Windows service"
w "$exe" --state "$(win "$work/svc")" service install --config "$(win "$work/cfg.toml")" --listen 127.0.0.1:7790
w "$exe" service start
w "$exe" service status
echo three >"$work/l/svc.txt"
arrives "$work/r/svc.txt" 30
w "$exe" service stop
rc=0
w "$exe" service status || rc=$?
[ "$rc" = 3 ] # stopped
w "$exe" service uninstall
[ -f "$work/svc/tandem.db" ]
grep -q "stop requested by the service control manager" "$work"/svc/logs/*.log

step "the installer"
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
mkdir -p artifacts/windows "$work/bin"
x86_64-w64-mingw32-strip -o "$work/bin/tandem.exe" "$exe"
setup=artifacts/windows/Tandem-$version-setup.exe
makensis -V2 -DVERSION="$version" -DBIN="$work/bin" -DOUT="$PWD/$setup" wix/tandem.nsi
w "$setup" /S /SERVICE "/CONFIG=$(win "$work/cfg.toml")"
installed="$WINEPREFIX/drive_c/Program Files/Tandem"
[ -f "$installed/tandem.exe" ] && [ -f "$installed/uninstall.exe" ]
w 'C:\Program Files\Tandem\tandem.exe' --version
w 'C:\Program Files\Tandem\tandem.exe' service status
echo four >"$work/l/installed.txt"
arrives "$work/r/installed.txt" 30
w 'C:\Program Files\Tandem\uninstall.exe' /S
# The uninstaller runs from a copy of itself: wait for it to finish.
for _ in $(seq 60); do [ -e "$installed/tandem.exe" ] || break; sleep 0.5; done
[ ! -e "$installed/tandem.exe" ]
rc=0
w "$exe" service status || rc=$?
[ "$rc" = 3 ] # not installed any more
echo "windows: every step passed ($setup, $(du -h "$setup" | cut -f1))"
