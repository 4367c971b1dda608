#!/usr/bin/env bash
# Smoke test of the artifact API (glance-glare, Glare v1): the reference Glare's own
# smoke.sh (../shared/reference-glare/smoke.sh: an `images` artifact through create, patch,
# blob upload/download, activate, publish, deactivate, delete, with curl and the glare CLI,
# each step stating Glare 5.0.1's answer) run against our all-in-one.
#
#   tests/smoke/glare_smoke.sh      (scripts/test.sh runs it)
#
# Identity is real: with KEYSTONE_HOME (the reference Keystone's state dir, with its
# openrc-* files), KEYSTONE_VENV and KEYSTONE_PORT set, the server validates Keystone
# tokens of demo (owner), alt (another project) and admin; otherwise it runs with
# `auth_strategy = tokens` and a token file of three fresh tokens.
#
# GLANCE_BIN       the all-in-one binary (default target/debug/glance-all-in-one)
# GLANCE_VENV      venv with python-glareclient's `glare` CLI (default target/venv; else the
#                  reference Glare's venv, ~/.cache/reference-glare/venv)
# GLARE_REFERENCE  the reference Glare's directory (default ../shared/reference-glare)
#
# Prints `ok - <what>` / `not ok - <what>` and ends with `smoke: N passed, M failed`.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${GLANCE_BIN:-$ROOT/target/debug/glance-all-in-one}
VENV=${GLANCE_VENV:-$ROOT/target/venv}
REFERENCE=${GLARE_REFERENCE:-$ROOT/../shared/reference-glare}

# shellcheck source=tests/smoke/lib.sh
source "$ROOT/tests/smoke/lib.sh"

GLARE=$VENV/bin/glare
[[ -x $GLARE ]] || GLARE=${GLARE_REF_VENV:-${GLARE_REF_HOME:-$HOME/.cache/reference-glare}/venv}/bin/glare
for need in "$BIN" "$REFERENCE/smoke.sh" "$GLARE"; do
    if [[ ! -x $need ]]; then
        not_ok "$need exists" "build the binaries (cargo build --bins); scripts/test.sh makes the venv"
        finish
    fi
done
while read -r var; do unset "$var"; done < <(compgen -e | grep '^OS_' || true)

TMP=$(mktemp -d "${TMPDIR:-/tmp}/glance-glare-smoke.XXXXXX")
mkdir -p "$TMP/data" "$TMP/home"
GLARE_PORT=$(free_port)
GLARE_URL="http://127.0.0.1:$GLARE_PORT"

if [[ -n ${KEYSTONE_HOME:-} && -n ${KEYSTONE_VENV:-} && -n ${KEYSTONE_PORT:-} ]]; then
    MODE=keystone
    token_of() {  # token_of USER -> a Keystone token (and its project id as PROJECT_ID)
        (
            # shellcheck disable=SC1090
            source "$KEYSTONE_HOME/openrc-$1"
            HOME="$TMP/home" "$KEYSTONE_VENV/bin/openstack" token issue -f value -c "$2"
        )
    }
    OWNER_TOKEN=$(token_of demo id) OTHER_TOKEN=$(token_of alt id) ADMIN_TOKEN=$(token_of admin id)
    OWNER_PROJECT=$(token_of demo project_id)
    cat >"$TMP/glance.conf" <<CONF
[DEFAULT]
auth_strategy = keystone

[keystone_authtoken]
www_authenticate_uri = http://127.0.0.1:$KEYSTONE_PORT
auth_url = http://127.0.0.1:$KEYSTONE_PORT
auth_type = password
username = glance
password = ${GLANCE_SERVICE_PASSWORD:-glance}
project_name = service
user_domain_name = Default
project_domain_name = Default
CONF
else
    MODE=tokens
    new_token() { od -An -N16 -tx1 /dev/urandom | tr -d ' \n'; }
    OWNER_TOKEN=$(new_token) OTHER_TOKEN=$(new_token) ADMIN_TOKEN=$(new_token)
    OWNER_PROJECT=smoke-owner
    sha() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }
    {
        echo "$(sha "$OWNER_TOKEN") owner smoke-owner member,reader"
        echo "$(sha "$OTHER_TOKEN") other smoke-other member,reader"
        echo "$(sha "$ADMIN_TOKEN") admin smoke-admin admin,member,reader"
    } >"$TMP/tokens"
    cat >"$TMP/glance.conf" <<CONF
[DEFAULT]
auth_strategy = tokens

[glance_auth]
token_file = $TMP/tokens
CONF
fi

if ! start_server --config-file "$TMP/glance.conf" --glare-bind "127.0.0.1:$GLARE_PORT"; then
    not_ok "glance-all-in-one starts ($MODE)" "$(tail -n 40 "$TMP/server.log")"
    finish
fi
status=$(curl -s -o /dev/null -w '%{http_code}' "$GLARE_URL/versions")
expect "the artifact API answers on $GLARE_URL ($MODE identity)" 300 "$status"

# The reference's checks, each a line `ok   ...` or `FAIL ...`; every one counts here.
HOME="$TMP/home" SMOKE_OWNER_TOKEN=$OWNER_TOKEN SMOKE_OTHER_TOKEN=$OTHER_TOKEN \
    SMOKE_ADMIN_TOKEN=$ADMIN_TOKEN SMOKE_OWNER_PROJECT=$OWNER_PROJECT GLARE_CLI=$GLARE \
    bash "$REFERENCE/smoke.sh" "$GLARE_URL" >"$TMP/reference-smoke.log" 2>&1
while IFS= read -r line; do
    case $line in
        "ok   "*) ok "glare: ${line#ok   }" ;;
        "FAIL "*) not_ok "glare: ${line#FAIL }" ;;
    esac
done <"$TMP/reference-smoke.log"
grep -q '^all checks passed' "$TMP/reference-smoke.log" ||
    not_ok "the reference smoke.sh passes" "$(tail -n 5 "$TMP/reference-smoke.log")"
finish
