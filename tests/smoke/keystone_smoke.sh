#!/usr/bin/env bash
# Keystone smoke test: glance-all-in-one with `auth_strategy = keystone` behind a real
# Keystone, driven by the real `openstack` CLI, `glance` CLI and openstacksdk with password
# credentials through the catalog, as `demo` and `alt`; then the failures a cloud sees:
# garbage, revoked and expired tokens, a reader writing, and Keystone going away and back.
#
#   tests/smoke/keystone_smoke.sh
#
# GLANCE_BIN       the server binary (default target/debug/glance-all-in-one)
# GLANCE_VENV      venv with python-glanceclient and openstacksdk (default target/venv)
# KEYSTONE_SCRIPTS the reference Keystone's start.sh/stop.sh (default ../shared/reference-keystone)
# KEYSTONE_HOME    its state dir (KEYSTONE_REF_HOME: openrc-* files), KEYSTONE_VENV its venv
#                  (with the openstack CLI), KEYSTONE_PORT its port; scripts/test.sh sets them.
#
# This script restarts Keystone (to stop it mid-run and to get short-lived tokens), so run
# it alone. Prints `ok - <what>` / `not ok - <what>` and ends with `smoke: N passed, M failed`.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${GLANCE_BIN:-$ROOT/target/debug/glance-all-in-one}
VENV=${GLANCE_VENV:-$ROOT/target/venv}
KS_SCRIPTS=${KEYSTONE_SCRIPTS:-$ROOT/../shared/reference-keystone}
KS_HOME=${KEYSTONE_HOME:?KEYSTONE_HOME (the reference Keystone state dir) is required}
KS_VENV=${KEYSTONE_VENV:?KEYSTONE_VENV (the reference Keystone venv) is required}
KS_PORT=${KEYSTONE_PORT:?KEYSTONE_PORT is required}
KS_URL=http://127.0.0.1:$KS_PORT
OPENSTACK=$KS_VENV/bin/openstack

# shellcheck source=tests/smoke/lib.sh
source "$ROOT/tests/smoke/lib.sh"

while read -r var; do unset "$var"; done < <(compgen -e | grep '^OS_' || true)

keystone() {  # keystone start|stop [ENV=VALUE...]
    local action=$1
    shift
    env KEYSTONE_REF_HOME="$KS_HOME" VENV="$KS_VENV" KEYSTONE_REF_PORT="$KS_PORT" \
        IMAGE_URL="${URL:-http://127.0.0.1:9292}" "$@" "$KS_SCRIPTS/$action.sh"
}

# as USER CMD...: CMD with USER's openrc in its environment (and nothing else of OS_*).
as() {
    local user=$1
    shift
    (
        # shellcheck disable=SC1090
        source "$KS_HOME/openrc-$user"
        HOME="$TMP/home" "$@"
    )
}

token_of() {
    as "$1" "$OPENSTACK" token issue -f value -c id 2>"$TMP/token.err"
}

status_with() {  # status_with TOKEN [curl args...] -> HTTP status of GET /v2/images
    local token=$1
    shift
    curl -s -o /dev/null -w '%{http_code}' -H "X-Auth-Token: $token" "$@" "$URL/v2/images"
}

for need in "$BIN" "$OPENSTACK" "$VENV/bin/glance" "$KS_SCRIPTS/start.sh"; do
    if [[ ! -x $need ]]; then
        not_ok "$need exists" "scripts/test.sh builds the binary and the venvs and starts Keystone"
        finish
    fi
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/glance-keystone-smoke.XXXXXX")
mkdir -p "$TMP/home" "$TMP/data"
cat >"$TMP/glance-api.conf" <<CONF
[DEFAULT]
auth_strategy = keystone
enabled_backends = fast:file, cheap:file

[glance_store]
default_backend = fast

[fast]
filesystem_store_datadir = $TMP/data/fast

[cheap]
filesystem_store_datadir = $TMP/data/cheap

[keystone_authtoken]
www_authenticate_uri = $KS_URL
auth_url = $KS_URL
auth_type = password
username = glance
password = ${GLANCE_SERVICE_PASSWORD:-glance}
project_name = service
user_domain_name = Default
project_domain_name = Default
service_token_roles = service
service_token_roles_required = true
CONF

if ! start_server --config-file "$TMP/glance-api.conf"; then
    mapfile -t log < <(tail -n 40 "$TMP/server.log")
    not_ok "glance-all-in-one starts with auth_strategy = keystone" "server log:" "${log[@]}"
    finish
fi
ok "glance-all-in-one started with auth_strategy = keystone"

# The catalog's image endpoint is this server (start.sh re-applies its seed while running).
if keystone start >"$TMP/reseed.log" 2>&1; then
    ok "Keystone's catalog points the image service at $URL"
else
    not_ok "re-seed Keystone's catalog" "$(cat "$TMP/reseed.log")"
    finish
fi

DEMO_PROJECT=$(as demo "$OPENSTACK" token issue -f value -c project_id 2>/dev/null)
ALT_PROJECT=$(as alt "$OPENSTACK" token issue -f value -c project_id 2>/dev/null)

# --- the openstack CLI, as demo and alt ---------------------------------------------------
head -c 1500000 /dev/urandom >"$TMP/disk.img"
ID=$(as demo "$OPENSTACK" image create --file "$TMP/disk.img" --disk-format raw \
    --container-format bare --private ks-smoke -f value -c id 2>"$TMP/create.err")
if [[ $ID =~ ^[0-9a-f-]{36}$ ]]; then
    ok "openstack image create --file (demo)"
else
    not_ok "openstack image create --file (demo)" "$(cat "$TMP/create.err")"
    finish
fi
expect "openstack image show: active" active \
    "$(as demo "$OPENSTACK" image show "$ID" -f value -c status 2>&1)"
expect "the image belongs to demo's project" "$DEMO_PROJECT" \
    "$(as demo "$OPENSTACK" image show "$ID" -f value -c owner 2>&1)"
if as demo "$OPENSTACK" image list -f value -c ID 2>&1 | grep -qx "$ID"; then
    ok "openstack image list shows it (demo)"
else
    not_ok "openstack image list shows it (demo)"
fi
if ! as alt "$OPENSTACK" image list -f value -c ID 2>&1 | grep -qx "$ID"; then
    ok "alt does not see demo's private image"
else
    not_ok "alt does not see demo's private image"
fi
as demo "$OPENSTACK" image set --property ks_smoke=yes "$ID" >"$TMP/set.out" 2>&1
expect "openstack image set --property" yes \
    "$(as demo "$OPENSTACK" image show "$ID" -f json -c properties 2>&1 |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["properties"].get("ks_smoke"))' 2>&1)"
as demo "$OPENSTACK" image save --file "$TMP/out.img" "$ID" >"$TMP/save.out" 2>&1
if cmp -s "$TMP/disk.img" "$TMP/out.img"; then
    ok "openstack image save returns the bytes uploaded"
else
    not_ok "openstack image save returns the bytes uploaded" "$(cat "$TMP/save.out")"
fi

as demo "$OPENSTACK" image set --shared "$ID" >"$TMP/shared.out" 2>&1
# By name: the CLI resolves "alt" through Keystone, which only lets an admin look projects
# up (demo would send the name itself as the member id, with Glance as with us).
as admin "$OPENSTACK" image add project "$ID" alt >"$TMP/add.out" 2>&1
expect "openstack image add project (by name) makes alt's project a member" "$ALT_PROJECT" \
    "$(as demo "$OPENSTACK" image member list "$ID" -f value -c 'Member ID' 2>&1)" "$(cat "$TMP/add.out")"
as alt "$OPENSTACK" image set --accept "$ID" >"$TMP/accept.out" 2>&1
expect "openstack image set --accept (alt)" accepted \
    "$(as demo "$OPENSTACK" image member list "$ID" -f value -c Status 2>&1)" "$(cat "$TMP/accept.out")"
if as alt "$OPENSTACK" image list -f value -c ID 2>&1 | grep -qx "$ID"; then
    ok "alt lists the image it accepted"
else
    not_ok "alt lists the image it accepted"
fi

if as demo "$OPENSTACK" image import info -f json >"$TMP/import.json" 2>&1 &&
    grep -q glance-direct "$TMP/import.json"; then
    ok "openstack image import info"
else
    not_ok "openstack image import info" "$(cat "$TMP/import.json")"
fi
# Tasks are admin-only under Glance's default policy (tasks_api_access).
if as admin "$OPENSTACK" image task list -f value >"$TMP/tasks.out" 2>&1; then
    ok "openstack image task list (admin)"
else
    not_ok "openstack image task list (admin)" "$(cat "$TMP/tasks.out")"
fi
if ! as demo "$OPENSTACK" image task list -f value >"$TMP/tasks-demo.out" 2>&1 &&
    grep -q 403 "$TMP/tasks-demo.out"; then
    ok "openstack image task list as a member is 403, as Glance's policy says"
else
    not_ok "openstack image task list as a member is 403" "$(cat "$TMP/tasks-demo.out")"
fi
if as demo "$OPENSTACK" image stores list -f value -c ID >"$TMP/stores.out" 2>&1 &&
    [[ $(sort "$TMP/stores.out" | tr '\n' ' ') == "cheap fast " ]]; then
    ok "openstack image stores list"
else
    not_ok "openstack image stores list" "$(cat "$TMP/stores.out")"
fi
as demo "$OPENSTACK" image delete "$ID" >"$TMP/delete.out" 2>&1
expect "openstack image delete" 404 \
    "$(curl -s -o /dev/null -w '%{http_code}' -H "X-Auth-Token: $(token_of demo)" "$URL/v2/images/$ID")"

# --- the glance CLI and openstacksdk with OS_* credentials ---------------------------------
GID=$(as demo "$VENV/bin/glance" image-create --name ks-glance --disk-format raw \
    --container-format bare --file "$TMP/disk.img" 2>"$TMP/gcreate.err" |
    awk -F'|' '$2 ~ /^ *id *$/ { gsub(/ /, "", $3); print $3 }')
if [[ $GID =~ ^[0-9a-f-]{36}$ ]]; then
    ok "glance image-create --file with OS_* credentials through the catalog"
else
    not_ok "glance image-create with OS_* credentials" "$(cat "$TMP/gcreate.err")"
fi
if as demo "$VENV/bin/glance" image-list >"$TMP/glist.out" 2>&1 && grep -q "$GID" "$TMP/glist.out"; then
    ok "glance image-list"
else
    not_ok "glance image-list" "$(cat "$TMP/glist.out")"
fi
as demo "$VENV/bin/glance" image-delete "$GID" >/dev/null 2>&1

cat >"$TMP/sdk.py" <<'PY'
import hashlib, sys
import openstack
conn = openstack.connect()  # OS_* from the environment
data = open(sys.argv[1], "rb").read()
image = conn.image.create_image(name="ks-sdk", data=data, disk_format="raw",
                                container_format="bare", wait=True)
got = conn.image.download_image(image)
body = got.content if hasattr(got, "content") else got
assert hashlib.md5(body).hexdigest() == hashlib.md5(data).hexdigest(), "bytes differ"
assert any(i.id == image.id for i in conn.image.images()), "not listed"
conn.image.delete_image(image)
print("sdk ok", image.id)
PY
if as demo "$VENV/bin/python" "$TMP/sdk.py" "$TMP/disk.img" >"$TMP/sdk.out" 2>&1 &&
    grep -q "sdk ok" "$TMP/sdk.out"; then
    ok "openstacksdk with OS_* credentials: create, upload, download, list, delete"
else
    not_ok "openstacksdk with OS_* credentials" "$(tail -n 15 "$TMP/sdk.out")"
fi

# Our own CLIs read the same credentials.
if as admin "$(dirname "$BIN")/glance-cache-manage" list-cached >"$TMP/gcm.out" 2>&1 &&
    grep -q "cached images" "$TMP/gcm.out"; then
    ok "glance-cache-manage with OS_* credentials finds the API in the catalog"
else
    not_ok "glance-cache-manage with OS_* credentials" "$(cat "$TMP/gcm.out")"
fi
if as demo "$(dirname "$BIN")/glance-replicator" size "${URL#http://}" >"$TMP/rep.out" 2>&1 &&
    grep -qi "total size" "$TMP/rep.out"; then
    ok "glance-replicator size with OS_* credentials"
else
    not_ok "glance-replicator size with OS_* credentials" "$(cat "$TMP/rep.out")"
fi

# --- refusals -------------------------------------------------------------------------------
expect "a garbage token is 401" 401 "$(status_with garbage)"
expect "401 names Keystone in WWW-Authenticate" "Keystone uri=\"$KS_URL\"" \
    "$(curl -s -D - -o /dev/null -H 'X-Auth-Token: garbage' "$URL/v2/images" |
        tr -d '\r' | awk -F': ' 'tolower($1) == "www-authenticate" { print $2 }')"
if ! as reader "$OPENSTACK" image create --disk-format raw --container-format bare ro \
    >"$TMP/reader.out" 2>&1 && grep -q "403" "$TMP/reader.out"; then
    ok "a reader may not create an image (403)"
else
    not_ok "a reader may not create an image (403)" "$(cat "$TMP/reader.out")"
fi
REVOKED=$(token_of demo)
as demo "$OPENSTACK" token revoke "$REVOKED" >/dev/null 2>&1
expect "a token revoked with openstack token revoke is 401" 401 "$(status_with "$REVOKED")"

# --- Keystone away and back -----------------------------------------------------------------
FRESH=$(token_of alt)
keystone stop >/dev/null 2>&1
expect "Keystone stopped: a token it cannot check is 503, not 401" 503 "$(status_with "$FRESH")"
if keystone start >"$TMP/restart.log" 2>&1; then
    # A token issued now: the reference Keystone's start re-applies its seed (role grants),
    # after which it has been seen to refuse tokens issued before the restart.
    expect "Keystone back: tokens are checked again, glance not restarted" 200 \
        "$(status_with "$(token_of alt)")"
else
    not_ok "restart Keystone" "$(cat "$TMP/restart.log")"
fi

# --- expiry: Keystone restarted with 8-second tokens -----------------------------------------
keystone stop >/dev/null 2>&1
if keystone start KEYSTONE_TOKEN_EXPIRATION=8 >"$TMP/short.log" 2>&1; then
    SHORT=$(token_of demo)
    expect "a short-lived token works while valid" 200 "$(status_with "$SHORT")"
    sleep 10
    expect "the same token after its expiry is 401 (the cache never outlives a token)" 401 \
        "$(status_with "$SHORT")"
else
    not_ok "restart Keystone with short tokens" "$(cat "$TMP/short.log")"
fi
# Leave Keystone as scripts/test.sh started it.
keystone stop >/dev/null 2>&1
keystone start >/dev/null 2>&1 || echo "# could not restart Keystone with default tokens"

finish
