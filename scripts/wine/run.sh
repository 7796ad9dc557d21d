#!/usr/bin/env bash
# Cargo's runner for the Windows target: the program under wine, under a timeout (a hung
# wine call must not hang CI). Set up by scripts/windows-test.sh.
exec timeout --kill-after=10 "${WINE_TIMEOUT:-900}" wine "$@"
