# Shared by the smoke scripts (sourced, not run): TAP-style checks, a final tally, and the
# all-in-one server started on a free loopback port and stopped on exit.
#
# The sourcing script sets ROOT, BIN and VENV first; `start_server` sets TMP's server.log,
# URL and SERVER_PID.
# shellcheck shell=bash

PASSED=0
FAILED=0
TMP=""
SERVER_PID=""
URL=""

ok() {
    PASSED=$((PASSED + 1))
    printf 'ok - %s\n' "$1"
}

# not_ok WHAT [DETAIL...]: the details go out as `#` lines under the failed check.
not_ok() {
    FAILED=$((FAILED + 1))
    printf 'not ok - %s\n' "$1"
    shift
    if [[ $# -gt 0 ]]; then
        printf '%s\n' "$@" | sed 's/^/#   /'
    fi
}

# expect WHAT EXPECTED ACTUAL [OUTPUT]
expect() {
    if [[ $3 == "$2" ]]; then
        ok "$1"
    else
        not_ok "$1" "expected: $2" "actual:   $3" ${4:+"output:" "$4"}
    fi
}

finish() {
    printf 'smoke: %d passed, %d failed\n' "$PASSED" "$FAILED"
    [[ $FAILED -eq 0 ]]
    exit
}

# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
    local rc=$?
    if [[ -n $SERVER_PID ]]; then
        kill -TERM "$SERVER_PID" 2>/dev/null
        for _ in $(seq 1 50); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.2
        done
        kill -KILL "$SERVER_PID" 2>/dev/null
        wait "$SERVER_PID" 2>/dev/null
    fi
    [[ -n $TMP ]] && rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# start_server ARGS...: runs $BIN on a free loopback port with --data-dir "$TMP/data" and
# ARGS, logging to "$TMP/server.log", until it answers GET /versions (30 s per attempt).
# Sets URL and SERVER_PID; fails (with SERVER_PID empty) if it never answered.
# With GLANCE_URL set, the server is the one there (a compose stack's API) and none starts.
start_server() {
    local attempt deadline PORT
    if [[ -n ${GLANCE_URL:-} ]]; then
        URL=$GLANCE_URL
        curl -sf -o /dev/null "$URL/versions"
        return
    fi
    for attempt in 1 2 3; do
        PORT=$(free_port)
        URL="http://127.0.0.1:$PORT"
        "$BIN" --bind "127.0.0.1:$PORT" --data-dir "$TMP/data" "$@" \
            >"$TMP/server.log" 2>&1 </dev/null &
        SERVER_PID=$!
        deadline=$((SECONDS + 30))
        while ((SECONDS < deadline)); do
            if curl -sf -o /dev/null "$URL/versions"; then
                return 0
            fi
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.2
        done
        kill -KILL "$SERVER_PID" 2>/dev/null
        wait "$SERVER_PID" 2>/dev/null
        SERVER_PID=""
        # A port taken between free_port and bind is worth another try; anything else is not.
        grep -qi 'address already in use\|cannot listen' "$TMP/server.log" || break
        echo "# port $PORT was taken, retrying (attempt $attempt)"
    done
    return 1
}
