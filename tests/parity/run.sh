#!/usr/bin/env bash
# Differential parity run: the reference Glance 33 and our glance-all-in-one, configured
# alike, each fresh, on free loopback ports; tests/parity/parity.py replays the corpus
# against both and fails on any difference not listed in docs/parity.md.
#
#   tests/parity/run.sh [parity.py options, e.g. -v, --section patch, --only 'owner']
#
# GLANCE_BIN     our server (default target/debug/glance-all-in-one)
# REFERENCE_DIR  the reference Glance's scripts (default ../shared/reference-glance beside
#                the repository); its venv is built on first use and reused
#                (~/.cache/reference-glance/venv, GLANCE_REF_HOME to move it)
# PARITY_KEEP=1  keep the temp dir (both servers' state and logs)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${GLANCE_BIN:-$ROOT/target/debug/glance-all-in-one}
REF=${REFERENCE_DIR:-$ROOT/../shared/reference-glance}
[[ -x $BIN ]] || { echo "parity: no server binary at $BIN (cargo build --bin glance-all-in-one)" >&2; exit 1; }
[[ -x $REF/start.sh ]] || { echo "parity: no reference Glance at $REF (REFERENCE_DIR)" >&2; exit 1; }

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

TMP=$(mktemp -d "${TMPDIR:-/tmp}/glance-parity.XXXXXX")
REF_PORT=$(free_port)
OURS_PORT=$(free_port)
OURS_PID=""
# The reference keeps its state in a run dir of ours, on a port of ours, so a reference
# someone else runs on the default port is left alone.
export ANCHOR_RUN=$TMP/reference GLANCE_REF_PORT=$REF_PORT
cleanup() {
    local rc=$?
    set +e
    [[ -n $OURS_PID ]] && kill "$OURS_PID" 2>/dev/null && wait "$OURS_PID" 2>/dev/null
    # A failed run says what either server logged as an error, since the temp dir goes: a
    # 5xx from the reference is its own fault, not a difference of ours.
    if [[ $rc != 0 ]]; then
        local log
        for log in "$TMP/reference/logs/glance-api.log" "$TMP/ours/server.log"; do
            [[ -f $log ]] || continue
            echo "parity: errors in $log:" >&2
            grep -E -A12 'ERROR|Traceback' "$log" | tail -n 40 | sed 's/^/    /' >&2
        done
    fi
    "$REF/stop.sh" >/dev/null 2>&1
    if [[ ${PARITY_KEEP:-0} == 1 ]]; then echo "parity: kept $TMP" >&2; else rm -rf "$TMP"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$TMP/ours"
sed -e "s|@RUN@|$TMP/ours|g" "$ROOT/tests/parity/glance-rs.conf" >"$TMP/ours/glance-api.conf"
"$BIN" --bind "127.0.0.1:$OURS_PORT" --data-dir "$TMP/ours" --auth-strategy trusted-headers \
    --config-file "$TMP/ours/glance-api.conf" >"$TMP/ours/server.log" 2>&1 &
OURS_PID=$!

t0=$SECONDS
"$REF/start.sh" --fresh | sed 's/^/    reference: /'
echo "    reference Glance up in $((SECONDS - t0))s on 127.0.0.1:$REF_PORT"

# The reference starts with Glance's shipped metadefs catalog loaded; ours gets the same
# files with glance-manage (beside $BIN), from the reference's venv.
METADEFS=${GLANCE_REF_HOME:-$HOME/.cache/reference-glance}/venv/etc/glance/metadefs
GLANCE__DATABASE__CONNECTION="sqlite://$TMP/ours/glance.sqlite?mode=rwc" \
    "$(dirname "$BIN")/glance-manage" db load_metadefs --path "$METADEFS" >"$TMP/ours/load_metadefs.log" 2>&1 \
    || { cat "$TMP/ours/load_metadefs.log" >&2; exit 1; }

for _ in $(seq 1 100); do
    curl -s -o /dev/null "http://127.0.0.1:$OURS_PORT/versions" && break
    kill -0 "$OURS_PID" 2>/dev/null || { tail -n 30 "$TMP/ours/server.log" >&2; exit 1; }
    sleep 0.2
done

python3 "$ROOT/tests/parity/parity.py" --ref "http://127.0.0.1:$REF_PORT" \
    --ours "http://127.0.0.1:$OURS_PORT" --allowed "$ROOT/docs/parity.md" "$@"
