#!/usr/bin/env bash
# The compose stack, tested across containers: docker-compose.yml as users run it, on images
# made here (scripts/compose-images.sh: Debian stand-ins for the base images, ours from the
# host's binaries). scripts/test.sh runs it last; alone:
#
#   cargo build --workspace --bins && scripts/compose-test.sh
#
#  1. up from nothing (fresh volumes), every service healthy, `glance-control all status`
#     lists every replica;
#  2. the acceptance flows through each published API port, with tokens: curl
#     (create/upload/show/download/delete, members) and tests/smoke/sharing_smoke.sh
#     (the real glance CLI); the artifact API (glare) on its port: an artifact and its blob;
#  3. registries, cache workers and scrubbers scaled 2 -> 3 -> 1 under a write + prefetch
#     load: nothing acknowledged lost, work spread over every replica;
#  4. docker kill of a registry, a cache worker, a scrubber, one API container, RabbitMQ, and a
#     registry cut off the network for 20 s, one at a time under that load: a table of
#     acknowledged writes lost (must be 0), failed requests, seconds until all answer again;
#  5. `glance-control api restart` rolls the API containers with no failed request from a
#     client that retries refused connections only;
#  6. down, then up: every image, byte and member still there.
#
# Ends with `compose: N passed, M failed`; removes its containers, volumes and network however
# it exits. Only the stack's loopback ports and its own network are ever addressed.
#
# GLANCE_BIN_DIR  the binaries to put in the image (default target/debug)
# GLANCE_VENV     venv with requests and python-glanceclient (default target/venv)
# GLANCE_COMPOSE_PROJECT  the compose project name (default glancetest<random>); its containers,
#                 network and volumes carry it, and so does the image made for the run
#                 (glance-rs:<project>), so runs sharing a Docker engine stay apart
# GLANCE_COMPOSE_KEEP=1  leave the stack up at the end (for a look; remove it yourself)
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN_DIR=${GLANCE_BIN_DIR:-$ROOT/target/debug}
VENV=${GLANCE_VENV:-$ROOT/target/venv}
PY=$VENV/bin/python
LOAD=$ROOT/tests/compose/load.py
PROJECT=${GLANCE_COMPOSE_PROJECT:-glancetest$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')}
NETWORK=${PROJECT}_default
export GLANCE_IMAGE=glance-rs:$PROJECT
PASSED=0
FAILED=0
ROWS=()
TMP=""
START=$SECONDS

ok() {
    PASSED=$((PASSED + 1))
    printf 'ok - %s\n' "$1"
}
not_ok() {
    FAILED=$((FAILED + 1))
    printf 'not ok - %s\n' "$1"
    shift
    if [[ $# -gt 0 ]]; then printf '%s\n' "$@" | sed 's/^/#   /'; fi
}
check() { # check WHAT COMMAND...: ok when the command succeeds
    local what=$1 out
    shift
    if out=$("$@" 2>&1); then ok "$what"; else not_ok "$what" "$out"; fi
}
phase() { printf '\n# --- %s (%ds)\n' "$*" $((SECONDS - START)); }

compose() { docker-compose -p "$PROJECT" -f "$ROOT/docker-compose.yml" "$@"; }

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

cleanup() {
    local rc=$?
    set +e
    if [[ ${GLANCE_COMPOSE_KEEP:-0} == 1 ]]; then
        echo "# kept: GLANCE_IMAGE=$GLANCE_IMAGE docker-compose -p $PROJECT -f docker-compose.yml down -v"
    elif [[ -n $TMP ]]; then
        compose down -v --remove-orphans -t 5 >/dev/null 2>&1
        docker rmi "$GLANCE_IMAGE" >/dev/null 2>&1
    fi
    [[ -n $TMP ]] && rm -rf "$TMP"
    exit "$rc"
}

finish() {
    printf '\n# compose stack tests took %ds\n' $((SECONDS - START))
    printf 'compose: %d passed, %d failed\n' "$PASSED" "$FAILED"
    [[ $FAILED -eq 0 ]]
    exit
}

sha256() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }

# Runs glance-control inside a running API container: it is on the stack's network with the
# stack's broker settings (docker-compose run --rm control ... does the same, slower).
control() { docker exec "$(compose ps -q api-1)" glance-control "$@"; }

# The number of instances of each service that answer `status`, as "api=2 registry=2 ...".
answering() {
    control all status --timeout "${1:-2}" 2>/dev/null | count_services
}

# `glance-control status` rows counted per service, as "api=2 registry=2 ...".
count_services() {
    awk '$1 ~ /^(api|registry|cache-worker|scrubber)$/ { n[$1]++ } END { for (s in n) printf "%s=%d\n", s, n[s] }' \
        | sort | tr '\n' ' '
}

# What should answer: the running containers of each glance service.
expected() {
    local api=0 s n out=""
    api=$(($(compose ps -q api-1 | wc -l) + $(compose ps -q api-2 | wc -l)))
    out="api=$api "
    for s in cache-worker registry scrubber; do
        n=$(compose ps -q "$s" | wc -l)
        [[ $n -gt 0 ]] && out+="$s=$n "
    done
    echo "$out"
}

api_ok() { # every published API answers a real call (through the broker and the registry)
    local url
    for url in "$URL1" "$URL2"; do
        [[ $(curl -s -o /dev/null -m 5 -w '%{http_code}' -H "X-Auth-Token: $ADMIN" "$url/v2/images?limit=1") == 200 ]] || return 1
    done
}

# Every service answers again: both APIs serve a registry call, and every container of every
# glance service answers status. Waits up to $1 seconds; prints how long it took.
wait_answering() {
    local limit=$1 t0=$SECONDS want have
    want=$(expected)
    while ((SECONDS - t0 < limit)); do
        if api_ok && have=$(answering 2) && [[ $have == "$want" ]]; then
            echo $((SECONDS - t0))
            return 0
        fi
        sleep 0.5
    done
    echo "never (want: $(expected); have: $(answering 2))"
    return 1
}

# Docker's view: at least $2 containers, every one running and healthy (db-sync: done).
wait_healthy() {
    local limit=$1 want=$2 t0=$SECONDS all bad
    while ((SECONDS - t0 < limit)); do
        all=$(docker ps -a --filter "label=com.docker.compose.project=$PROJECT" --format '{{.Names}} {{.Status}}')
        bad=$(grep -v 'db-sync.*Exited (0)' <<<"$all" | grep -v '(healthy)' || true)
        [[ -z $bad && $(grep -c '(healthy)' <<<"$all") -ge $want ]] && return 0
        sleep 2
    done
    echo "$all"
    return 1
}

start_load() { # start_load DIR SECONDS [load.py options]: in the background; sets LOAD_PID
    local dir=$1 seconds=$2
    shift 2
    mkdir -p "$dir"
    "$PY" "$LOAD" load --urls "$URL1,$URL2" --token "$ADMIN" --seconds "$seconds" --out "$dir" "$@" \
        >"$dir/load.out" 2>&1 &
    LOAD_PID=$!
}

stat_of() { "$PY" -c 'import json,sys; print(json.load(open(sys.argv[1])).get(sys.argv[2], 0))' "$1" "$2"; }

# What the failed requests of a load run met, as "http_503:2 ReadTimeout:1".
failures_of() {
    "$PY" -c 'import json,sys; s=json.load(open(sys.argv[1])); print(" ".join("%s:%d" % (k[7:], v) for k, v in sorted(s.items()) if k.startswith("failed_")))' "$1"
}

verify_load() { # verify_load DIR: prints the verdict JSON; fails on anything lost
    "$PY" "$LOAD" verify --urls "$URL1,$URL2" --token "$ADMIN" --acked "$1" --prefetch-wait 90
}

# ---------------------------------------------------------------------------------------------
# One compound command: bash reads it whole before running it, so editing this file during a
# run does not change the run.
{
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for tool in docker docker-compose curl; do
    command -v "$tool" >/dev/null || { not_ok "$tool is installed"; finish; }
done
[[ -x $PY ]] && "$PY" -c 'import requests' 2>/dev/null || { not_ok "venv with requests at $VENV"; finish; }
[[ -x $BIN_DIR/glance-api ]] || { not_ok "glance binaries in $BIN_DIR" "cargo build --workspace --bins first"; finish; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/glance-compose.XXXXXX")
chmod 755 "$TMP"
ADMIN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
cat >"$TMP/tokens" <<EOF
# sha256(token) user project roles
$(sha256 "$ADMIN") operator admin admin,member,reader
$(sha256 token-a) alice project-a member,reader
$(sha256 token-b) bob project-b member,reader
EOF
chmod 644 "$TMP/tokens"
export GLANCE_TOKEN_FILE=$TMP/tokens
GLANCE_API_1_PORT=$(free_port)
GLANCE_API_2_PORT=$(free_port)
GLANCE_GLARE_PORT=$(free_port)
export GLANCE_API_1_PORT GLANCE_API_2_PORT GLANCE_GLARE_PORT
URL1=http://127.0.0.1:$GLANCE_API_1_PORT
URL2=http://127.0.0.1:$GLANCE_API_2_PORT

phase "images"
t0=$SECONDS
if "$ROOT/scripts/compose-images.sh" --bin-dir "$BIN_DIR" --tag "$GLANCE_IMAGE"; then
    ok "the images docker-compose.yml names exist ($((SECONDS - t0))s)"
else
    not_ok "the images docker-compose.yml names exist"
    finish
fi

# ---------------------------------------------------------------------------------------------
phase "1. up from nothing (project $PROJECT, APIs on $URL1 and $URL2)"
t0=$SECONDS
if ! compose up -d >"$TMP/up.log" 2>&1; then
    not_ok "docker-compose up -d" "$(tail -n 30 "$TMP/up.log")"
    finish
fi
if out=$(wait_healthy 240 10); then
    ok "docker-compose up -d: every container healthy ($((SECONDS - t0))s)"
else
    not_ok "docker-compose up -d: every container healthy" "$out" "$(compose logs --tail 20 2>&1 | tail -n 60)"
    finish
fi
check "one image for every glance service" \
    test "$(docker ps --filter "label=com.docker.compose.project=$PROJECT" --format '{{.Image}}' | grep -cx "$GLANCE_IMAGE")" -eq 9
check "the glance services run as a non-root user" \
    test "$(docker exec "$(compose ps -q api-1)" id -u)" != 0
out=$(compose run --rm -T control all status 2>&1)
have=$(count_services <<<"$out")
expect_have="api=2 cache-worker=2 registry=2 scrubber=2 "
if [[ $have == "$expect_have" ]]; then ok "docker-compose run --rm control all status lists every replica ($have)"; else not_ok "docker-compose run --rm control all status lists every replica" "want: $expect_have" "have: $have" "$out"; fi

# ---------------------------------------------------------------------------------------------
phase "2. acceptance through each published port"
head -c 300000 /dev/urandom >"$TMP/disk.img"
MD5=$(md5sum "$TMP/disk.img" | cut -d' ' -f1)
for url in "$URL1" "$URL2"; do
    code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
    check "$url: GET /healthcheck answers 200 OK with no identity" \
        test "$(curl -s "$url/healthcheck")" = OK
    check "$url: no token, 401" test "$(code "$url/v2/images")" = 401
    check "$url: identity headers are not trusted (401)" test "$(code -H 'X-Identity-Status: Confirmed' \
        -H 'X-Roles: admin' -H 'X-Project-Id: admin' -H 'X-User-Id: x' "$url/v2/images")" = 401
    A=(-H "X-Auth-Token: token-a")
    id=$(curl -s "${A[@]}" -X POST "$url/v2/images" -H 'Content-Type: application/json' \
        -d '{"name": "acceptance", "disk_format": "raw", "container_format": "bare", "visibility": "shared"}' \
        | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["id"])')
    check "$url: create" test -n "$id"
    check "$url: upload" test "$(code "${A[@]}" -X PUT "$url/v2/images/$id/file" \
        -H 'Content-Type: application/octet-stream' --data-binary @"$TMP/disk.img")" = 204
    check "$url: show: active with the checksum" test "$(curl -s "${A[@]}" "$url/v2/images/$id" \
        | "$PY" -c 'import json,sys; d=json.load(sys.stdin); print(d["status"], d["checksum"])')" = "active $MD5"
    check "$url: download: the same bytes" test "$(curl -s "${A[@]}" "$url/v2/images/$id/file" | md5sum | cut -d' ' -f1)" = "$MD5"
    check "$url: add project-b as a member" test "$(code "${A[@]}" -X POST "$url/v2/images/$id/members" \
        -H 'Content-Type: application/json' -d '{"member": "project-b"}')" = 200
    check "$url: project-b accepts" test "$(code -H 'X-Auth-Token: token-b' -X PUT "$url/v2/images/$id/members/project-b" \
        -H 'Content-Type: application/json' -d '{"status": "accepted"}')" = 200
    check "$url: project-b downloads the same bytes" \
        test "$(curl -s -H 'X-Auth-Token: token-b' "$url/v2/images/$id/file" | md5sum | cut -d' ' -f1)" = "$MD5"
    # Kept: the down/up check below looks for it and its member.
    doomed=$(curl -s "${A[@]}" -X POST "$url/v2/images" -H 'Content-Type: application/json' \
        -d '{"name": "doomed", "disk_format": "raw", "container_format": "bare"}' \
        | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["id"])')
    check "$url: delete" test "$(code "${A[@]}" -X DELETE "$url/v2/images/$doomed")" = 204
    check "$url: deleted is gone (404)" test "$(code "${A[@]}" "$url/v2/images/$doomed")" = 404
    if out=$(GLANCE_URL=$url GLANCE_VENV=$VENV bash "$ROOT/tests/smoke/sharing_smoke.sh" 2>&1); then
        ok "$url: tests/smoke/sharing_smoke.sh with the glance CLI ($(tail -n 1 <<<"$out"))"
    else
        not_ok "$url: tests/smoke/sharing_smoke.sh with the glance CLI" "$out"
    fi
done

# The artifact repository on its published port: the same tokens, its records through the
# registries over the bus, its blob on the shared image volume.
GLARE=http://127.0.0.1:$GLANCE_GLARE_PORT
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
check "glare: GET /versions is 300 with no identity" test "$(code "$GLARE/versions")" = 300
check "glare: no token, 401" test "$(code "$GLARE/artifacts/images")" = 401
art=$(curl -s -H "X-Auth-Token: token-a" -H 'Content-Type: application/json' -X POST \
    -d '{"name": "compose-artifact", "version": "1.0"}' "$GLARE/artifacts/images" \
    | "$PY" -c 'import json, sys; print(json.load(sys.stdin)["id"])' 2>/dev/null || true)
check "glare: create an images artifact" test -n "$art"
check "glare: upload its blob" test "$(code -H "X-Auth-Token: token-a" -X PUT \
    -H 'Content-Type: application/octet-stream' --data-binary @"$TMP/disk.img" \
    "$GLARE/artifacts/images/$art/image")" = 200
check "glare: download the same bytes" test "$(curl -s -H "X-Auth-Token: token-a" \
    "$GLARE/artifacts/images/$art/image" | md5sum | cut -d' ' -f1)" = "$MD5"
check "glare: another project cannot see it (404)" \
    test "$(code -H "X-Auth-Token: token-b" "$GLARE/artifacts/images/$art")" = 404

# ---------------------------------------------------------------------------------------------
phase "3. scale 2 -> 3 -> 1 under load"
D=$TMP/scale
start_load "$D" 40 --writers 3 --prefetch
sleep 3
check "docker-compose up -d --scale registry=3 --scale scrubber=3 --scale cache-worker=3" \
    compose up -d --no-recreate --scale registry=3 --scale scrubber=3 --scale cache-worker=3
if out=$(wait_answering 90); then ok "three of each answer status (${out}s)"; else not_ok "three of each answer status" "$out"; fi
sleep 12
status=$(control registry status 2>/dev/null)
served=$(awk '$1 == "registry" { for (i = 1; i <= NF; i++) if ($i ~ /^requests_served=/) { split($i, kv, "="); print kv[2] } }' <<<"$status")
if [[ $(wc -l <<<"$served") -eq 3 ]] && ! grep -qx 0 <<<"$served"; then
    ok "every registry served requests: $(echo $served)"
else
    not_ok "every registry served requests" "$status"
fi
fetched=()
for c in $(compose ps -q cache-worker); do
    fetched+=("$(docker logs "$c" 2>&1 | grep -c 'prefetched into the image cache')")
done
if [[ ${#fetched[@]} -eq 3 ]] && [[ ! " ${fetched[*]} " =~ " 0 " ]]; then
    ok "every cache worker prefetched images: ${fetched[*]}"
else
    not_ok "every cache worker prefetched images" "per worker: ${fetched[*]}"
fi
check "scale down to one of each under load" \
    compose up -d --no-recreate --scale registry=1 --scale scrubber=1 --scale cache-worker=1
wait "$LOAD_PID"
if out=$(verify_load "$D"); then ok "scaling: nothing acknowledged lost: $out"; else not_ok "scaling: nothing acknowledged lost" "$out"; fi
check "the load wrote (acknowledged writes > 50)" test "$(stat_of "$D/stats.json" acked_writes)" -gt 50
compose up -d --no-recreate >/dev/null 2>&1
if out=$(wait_answering 90); then ok "back to the file's replicas (${out}s)"; else not_ok "back to the file's replicas" "$out"; fi

# ---------------------------------------------------------------------------------------------
phase "4. losing a node under load"
# chaos NAME SERVICE kill|disconnect
chaos() {
    local name=$1 service=$2 how=$3 d=$TMP/chaos-$1 cid t0 recovered verdict lost failed acked
    cid=$(compose ps -q "$service" | head -n 1)
    # The load outlasts the fault (4 s in; a kill is over 2 s later, a disconnect 20 s later)
    # by a dozen seconds: the recovery happens under load too.
    start_load "$d" "$([[ $how == kill ]] && echo 18 || echo 36)" --writers 3 --prefetch
    sleep 4
    t0=$SECONDS
    if [[ $how == kill ]]; then
        docker kill "$cid" >/dev/null
        sleep 2
        # Docker does not restart a container killed by hand; the operator (here) does.
        [[ $(docker inspect -f '{{.State.Running}}' "$cid") == true ]] || docker start "$cid" >/dev/null
    else
        docker network disconnect "$NETWORK" "$cid"
        sleep 20
        docker network connect "$NETWORK" "$cid"
    fi
    if recovered=$(wait_answering 120); then recovered=$((SECONDS - t0)); else recovered="never: $recovered"; fi
    wait "$LOAD_PID"
    verdict=$(verify_load "$d")
    acked=$("$PY" -c 'import json,sys; print(json.loads(sys.argv[1])["acked_writes"])' "$verdict")
    lost=$("$PY" -c 'import json,sys; v=json.loads(sys.argv[1]); print(v["lost_writes"] + v["prefetches_not_cached"] + v["active_without_data"])' "$verdict")
    failed=$(stat_of "$d/stats.json" failed)
    ROWS+=("$(printf '%-26s %8s %6s %8s %10s  %s' "$name" "$acked" "$lost" "$failed" "$recovered" "$(failures_of "$d/stats.json")")")
    if [[ $lost == 0 && $recovered =~ ^[0-9]+$ && $acked -gt 0 ]]; then
        ok "$name: nothing acknowledged lost, every service answers again after ${recovered}s"
    else
        not_ok "$name: nothing acknowledged lost, every service answers again" "$verdict" "recovered: $recovered"
    fi
}
chaos "kill registry" registry kill
chaos "kill cache-worker" cache-worker kill
chaos "kill scrubber" scrubber kill
chaos "kill api-2" api-2 kill
chaos "kill rabbitmq" rabbitmq kill
chaos "disconnect registry 20s" registry disconnect
printf '\n# %-26s %8s %6s %8s %10s  %s\n' "what" "acked" "lost" "failed" "recover(s)" "failures"
printf '# %s\n' "${ROWS[@]}"
echo "# (acked: writes acknowledged under load; lost: acknowledged writes or prefetches missing,"
echo "#  or images active without their data;"
echo "#  failed: requests that got an error; recover: from the fault until every service answers)"

# ---------------------------------------------------------------------------------------------
phase "5. rolling restart of the API containers"
D=$TMP/restart
before=$(control api status 2>/dev/null | awk '$1 == "api" { print $2 }' | sort)
start_load "$D" 45 --writers 3 --retry-refused
sleep 3
t0=$SECONDS
if out=$(compose run --rm -T control api restart 2>&1); then
    ok "glance-control api restart ($((SECONDS - t0))s)"
else
    not_ok "glance-control api restart" "$out"
fi
echo "$out" | sed 's/^/#   /'
check "it restarted one API at a time, each back before the next" \
    test "$(grep -c 'back as' <<<"$out")" -eq 2
after=$(control api status 2>/dev/null | awk '$1 == "api" { print $2 }' | sort)
check "two API instances answer, both new" \
    test "$(comm -12 <(echo "$before") <(echo "$after") | wc -l)" -eq 0 -a "$(wc -l <<<"$after")" -eq 2
wait "$LOAD_PID"
check "the retrying client's requests all succeeded: $(cat "$D/stats.json")" \
    test "$(stat_of "$D/stats.json" failed)" -eq 0 -a "$(stat_of "$D/stats.json" requests)" -gt 50
if out=$(verify_load "$D"); then ok "restart: nothing acknowledged lost: $out"; else not_ok "restart: nothing acknowledged lost" "$out"; fi

# ---------------------------------------------------------------------------------------------
phase "6. down, then up: everything still there"
if out=$("$PY" "$LOAD" snapshot --url "$URL1" --token "$ADMIN" --out "$TMP/snapshot.json" 2>&1); then
    ok "snapshot before down: $out"
else
    not_ok "snapshot before down" "$out"
fi
check "docker-compose down" compose down -t 20
check "docker-compose up -d" compose up -d
if out=$(wait_answering 180); then ok "every service answers after up (${out}s)"; else not_ok "every service answers after up" "$out"; fi
if out=$("$PY" "$LOAD" compare --url "$URL1" --token "$ADMIN" --snapshot "$TMP/snapshot.json" 2>&1); then
    ok "every image, byte and member is still there: $out"
else
    not_ok "every image, byte and member is still there" "$out"
fi
check "the shared acceptance image still has project-b as an accepted member" \
    grep -q '"project-b", "accepted"' "$TMP/snapshot.json"

finish
}
