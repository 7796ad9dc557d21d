# Tandem as one more column of ../shared/bench/run_peers.sh (sourced via ADAPTERS=).
# STATEDIR ($3) holds the state file. Tandem keeps every overwritten or deleted version in
# <root>/.sync_trash; the harness compares and mutates every file in the trees, so after
# each sync the trash folder is moved (one rename per item, inside the timing) into
# STATEDIR. The root marker `.sync_trash/.tandem-root` (how Tandem knows the folder is
# still the one it synced) is parked in STATEDIR too and put back before the next sync,
# so the harness never sees or mutates it.
# (named sync_* so that the harness exports it to the timed shell with the tools)
sync__tandem_with() {
    local bin=$1
    shift
    local side item tag
    for side in "$1" "$2"; do
        tag=$(basename "$side")
        if [ -f "$3/root-marker-$tag" ]; then
            mkdir -p "$side/.sync_trash" && mv "$3/root-marker-$tag" "$side/.sync_trash/.tandem-root"
        fi
    done
    "$bin" sync --state "$3/tandem.db" "$1" "$2" >/dev/null || return $?
    for side in "$1" "$2"; do
        [ -d "$side/.sync_trash" ] || continue
        tag=$(basename "$side")
        [ -f "$side/.sync_trash/.tandem-root" ] && mv "$side/.sync_trash/.tandem-root" "$3/root-marker-$tag"
        for item in "$side/.sync_trash"/*; do
            [ -e "$item" ] && mv "$item" "$3/trash-$(date +%s%N)-$tag-$(basename "$item")"
        done
        rmdir "$side/.sync_trash" 2>/dev/null || true
    done
    return 0
}
sync_tandem() {
    sync__tandem_with "${TANDEM_BIN:?set TANDEM_BIN to target/release/tandem}" "$@"
}
# An earlier build beside the current one in the same sitting (before/after a change):
#   TANDEM0_BIN=/path/to/old/tandem TOOLS="find unison tandem0 tandem" bash bench/run.sh W2
sync_tandem0() {
    sync__tandem_with "${TANDEM0_BIN:?set TANDEM0_BIN to an earlier tandem binary}" "$@"
}
