# Tandem as one more column of ../shared/bench/run_peers.sh (sourced via ADAPTERS=).
# STATEDIR ($3) holds the state file. Tandem keeps every overwritten or deleted version in
# <root>/.sync_trash; the harness compares and mutates every file in the trees, so after
# each sync the trash folders are moved (one rename each, inside the timing) into STATEDIR.
sync_tandem() {
    "${TANDEM_BIN:?set TANDEM_BIN to target/release/tandem}" sync --state "$3/tandem.db" "$1" "$2" >/dev/null || return $?
    local side
    for side in "$1" "$2"; do
        [ -d "$side/.sync_trash" ] && mv "$side/.sync_trash" "$3/trash-$(date +%s%N)-$(basename "$side")"
    done
    return 0
}
