#!/usr/bin/env bash
# Side by side with Glare 5.0.1: the reference Glare (its noauth pipeline: identity from the
# same trusted headers as ours) and our glance-all-in-one's artifact API, each fresh, on free
# loopback ports; tests/parity/glare.py replays its corpus against both and fails on any
# difference not listed in docs/glare.md.
#
#   tests/parity/glare_run.sh [glare.py options, e.g. -v, --section list, --only 'publish']
#
# GLANCE_BIN      our server (default target/debug/glance-all-in-one)
# GLARE_REFERENCE the reference Glare's scripts (default ../shared/reference-glare beside the
#                 repository); its venv is built on first use (~30 s) and reused
#                 (~/.cache/reference-glare/venv, GLARE_REF_VENV to move it)
# PARITY_KEEP=1   keep the temp dir (both servers' state and logs)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${GLANCE_BIN:-$ROOT/target/debug/glance-all-in-one}
REF=${GLARE_REFERENCE:-$ROOT/../shared/reference-glare}
[[ -x $BIN ]] || { echo "glare parity: no server binary at $BIN (cargo build --bin glance-all-in-one)" >&2; exit 1; }
[[ -x $REF/start.sh ]] || { echo "glare parity: no reference Glare at $REF (GLARE_REFERENCE)" >&2; exit 1; }

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

TMP=$(mktemp -d "${TMPDIR:-/tmp}/glance-glare-parity.XXXXXX")
REF_PORT=$(free_port) OURS_PORT=$(free_port) GLARE_PORT=$(free_port)
OURS_PID=""
# The reference keeps its state in a dir of ours, on a port of ours, with the shared venv.
export GLARE_REF_HOME=$TMP/reference GLARE_REF_PORT=$REF_PORT GLARE_REF_FLAVOR=noauth
export GLARE_REF_VENV=${GLARE_REF_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/reference-glare/venv}
cleanup() {
    local rc=$?
    set +e
    [[ -n $OURS_PID ]] && kill "$OURS_PID" 2>/dev/null && wait "$OURS_PID" 2>/dev/null
    "$REF/stop.sh" >/dev/null 2>&1
    if [[ ${PARITY_KEEP:-0} == 1 ]]; then echo "glare parity: kept $TMP" >&2; else rm -rf "$TMP"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$TMP/ours"
"$BIN" --bind "127.0.0.1:$OURS_PORT" --glare-bind "127.0.0.1:$GLARE_PORT" --data-dir "$TMP/ours" \
    --auth-strategy trusted-headers >"$TMP/ours/server.log" 2>&1 &
OURS_PID=$!

t0=$SECONDS
"$REF/start.sh" --fresh | sed 's/^/    reference: /'
echo "    reference Glare up in $((SECONDS - t0))s on 127.0.0.1:$REF_PORT"

for _ in $(seq 1 100); do
    curl -s -o /dev/null "http://127.0.0.1:$GLARE_PORT/versions" && break
    kill -0 "$OURS_PID" 2>/dev/null || { tail -n 30 "$TMP/ours/server.log" >&2; exit 1; }
    sleep 0.2
done

python3 "$ROOT/tests/parity/glare.py" --ref "http://127.0.0.1:$REF_PORT" \
    --ours "http://127.0.0.1:$GLARE_PORT" --allowed "$ROOT/docs/glare.md" "$@"
