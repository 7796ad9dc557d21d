#!/usr/bin/env bash
# One sitting of the peer benchmark with Tandem beside unison, rclone bisync, rsync, cp
# and the find walk, durable timings (SYNC_TIMED=1). Needs root (loop-mounted ext4).
#   bash bench/run.sh W1 W2        -> bench/results-tandem-YYYYMMDD.csv (+ -raw.csv)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
shared=${SHARED_BENCH:-$repo/../shared/bench}
command -v unison >/dev/null && command -v rclone >/dev/null && command -v rsync >/dev/null && [ -x /usr/bin/time ] || {
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=600 unison rclone rsync time
}
(cd "$repo" && cargo build --release --quiet)
export TANDEM_BIN="$repo/target/release/tandem"
export ADAPTERS="$here/adapters-tandem.sh"
export TOOLS=${TOOLS:-"find cp rsync unison rclone tandem"}
export SYNC_TIMED=${SYNC_TIMED:-1}
d=$(date +%Y%m%d)
out="$here/results-tandem-$d.csv"
export RAW="$here/results-tandem-$d-raw.csv"
rm -f "$out" "$RAW"
first=1
for wl in "${@:-W1 W2}"; do
    if [ $first = 1 ]; then "$shared/run_peers.sh" "$wl" >>"$out"; first=0
    else NOHEADER=1 "$shared/run_peers.sh" "$wl" >>"$out"; fi
done
python3 "$shared/summarize.py" "$out" "$RAW"
