#!/usr/bin/env bash
# Sharing smoke test with the real `glance` CLI (python-glanceclient): project A shares an
# image with project B, B accepts it, lists it and downloads it, A removes B again. Identity is
# `auth_strategy = tokens`, so each project is just the CLI's `--os-auth-token`.
#
#   tests/smoke/sharing_smoke.sh
#
# GLANCE_BIN   the server binary (default target/release/glance-all-in-one, else target/debug)
# GLANCE_VENV  venv with python-glanceclient (default target/venv; scripts/test.sh creates it)
# GLANCE_URL   an API already serving with tokens token-a (alice, project-a) and token-b
#              (bob, project-b), instead of starting GLANCE_BIN (scripts/compose-test.sh)
#
# Prints `ok - <what>` / `not ok - <what>` per check and ends with `smoke: N passed, M failed`.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${GLANCE_BIN:-$ROOT/target/release/glance-all-in-one}
[[ -x $BIN ]] || BIN=$ROOT/target/debug/glance-all-in-one
VENV=${GLANCE_VENV:-$ROOT/target/venv}

# shellcheck source=tests/smoke/lib.sh
source "$ROOT/tests/smoke/lib.sh"

sha256() {
    printf '%s' "$1" | sha256sum | cut -d' ' -f1
}

# The value of one row of glanceclient's `| Property | Value |` table on stdin.
field() {
    awk -F'|' -v key="$1" '
        /^\|/ && NF >= 4 {
            k = $2; v = $3
            gsub(/^ +| +$/, "", k); gsub(/^ +| +$/, "", v)
            if (k != "") { vals[k] = v }
        }
        END { print vals[key] }'
}

# glance_as TOKEN ARGS...: the real CLI as the caller the token names.
glance_as() {
    local token=$1
    shift
    HOME="$TMP/home" "$VENV/bin/glance" --os-image-url "$URL" --os-auth-token "$token" "$@"
}

if [[ -z ${GLANCE_URL:-} && ! -x $BIN ]]; then
    not_ok "server binary exists" "no executable at $BIN (cargo build --bin glance-all-in-one)"
    finish
fi
if [[ ! -x $VENV/bin/glance ]]; then
    not_ok "python-glanceclient venv exists" "no $VENV/bin/glance (scripts/test.sh creates the venv)"
    finish
fi

while read -r var; do unset "$var"; done < <(compgen -e | grep '^OS_' || true)
export OS_IMAGE_API_VERSION=2

TMP=$(mktemp -d "${TMPDIR:-/tmp}/glance-sharing-smoke.XXXXXX")
mkdir -p "$TMP/home" "$TMP/data"
cat >"$TMP/tokens" <<EOF
# sha256(token) user project roles
$(sha256 token-a) alice project-a member,reader
$(sha256 token-b) bob project-b member,reader
EOF
cat >"$TMP/glance-api.conf" <<EOF
[DEFAULT]
auth_strategy = tokens

[glance_auth]
token_file = $TMP/tokens
EOF

if ! start_server --config-file "$TMP/glance-api.conf"; then
    mapfile -t log < <(tail -n 40 "$TMP/server.log")
    not_ok "glance-all-in-one answers GET /versions within 30s" "server log:" "${log[@]}"
    finish
fi
ok "glance-all-in-one started with auth_strategy = tokens"

expect "an unknown token is refused (401)" 401 \
    "$(curl -s -o /dev/null -w '%{http_code}' -H 'X-Auth-Token: nope' "$URL/v2/images")"

head -c 65536 /dev/urandom >"$TMP/disk.img"
out=$(glance_as token-a image-create --name shared-smoke --disk-format raw --container-format bare \
    --visibility shared --file "$TMP/disk.img" 2>&1)
ID=$(field id <<<"$out")
expect "project A creates and uploads an image" active "$(field status <<<"$out")" "$out"
expect "the image is owned by project A" project-a "$(field owner <<<"$out")" "$out"

out=$(glance_as token-b image-show "$ID" 2>&1)
if [[ $out == *"404"* || $out == *"No image"* ]]; then ok "project B cannot see it yet"; else not_ok "project B cannot see it yet" "$out"; fi

out=$(glance_as token-a member-create "$ID" project-b 2>&1)
if [[ $out == *project-b*pending* ]]; then ok "member-create: project B is pending"; else not_ok "member-create: project B is pending" "$out"; fi

out=$(glance_as token-b image-list 2>&1)
if [[ $out != *"$ID"* ]]; then ok "a pending image is not in B's image-list"; else not_ok "a pending image is not in B's image-list" "$out"; fi
out=$(glance_as token-b image-list --member-status pending 2>&1)
if [[ $out == *"$ID"* ]]; then ok "image-list --member-status pending shows it"; else not_ok "image-list --member-status pending shows it" "$out"; fi

out=$(glance_as token-a member-update "$ID" project-b accepted 2>&1)
if [[ $out == *403* || $out == *orbidden* ]]; then ok "the owner cannot accept for B"; else not_ok "the owner cannot accept for B" "$out"; fi

out=$(glance_as token-b member-update "$ID" project-b accepted 2>&1)
if [[ $out == *accepted* ]]; then ok "member-update: B accepts"; else not_ok "member-update: B accepts" "$out"; fi

out=$(glance_as token-b image-list 2>&1)
if [[ $out == *"$ID"* ]]; then ok "the accepted image is in B's image-list"; else not_ok "the accepted image is in B's image-list" "$out"; fi

glance_as token-b image-download --file "$TMP/copy.img" "$ID" >"$TMP/download.out" 2>&1
if cmp -s "$TMP/disk.img" "$TMP/copy.img"; then ok "B downloads the same bytes"; else not_ok "B downloads the same bytes" "$(cat "$TMP/download.out")"; fi

out=$(glance_as token-a member-list --image-id "$ID" 2>&1)
if [[ $out == *project-b*accepted* ]]; then ok "member-list shows B accepted"; else not_ok "member-list shows B accepted" "$out"; fi

out=$(glance_as token-a member-delete "$ID" project-b 2>&1)
expect "member-delete succeeds" 0 "$?" "$out"

out=$(glance_as token-b image-show "$ID" 2>&1)
if [[ $out == *"404"* || $out == *"No image"* ]]; then ok "after removal B cannot see it"; else not_ok "after removal B cannot see it" "$out"; fi

finish
