#!/usr/bin/env bash
# Smoke test with the real clients, as an operator would use them: python-glanceclient's
# `glance` CLI, openstacksdk and curl against the release glance-all-in-one, started here on a
# free loopback port with a temp data dir and noauth.
#
#   tests/smoke/glanceclient_smoke.sh     (scripts/test.sh runs it after the release build)
#
# GLANCE_BIN   the server binary   (default target/release/glance-all-in-one)
# GLANCE_VENV  venv with python-glanceclient and openstacksdk (default target/venv;
#              scripts/test.sh creates it)
#
# Prints `ok - <what>` / `not ok - <what>` per check and ends with `smoke: N passed, M failed`.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${GLANCE_BIN:-$ROOT/target/release/glance-all-in-one}
VENV=${GLANCE_VENV:-$ROOT/target/venv}
SIZE=$((2 * 1024 * 1024))

# shellcheck source=tests/smoke/lib.sh
source "$ROOT/tests/smoke/lib.sh"

# The value of one row of glanceclient's `| Property | Value |` table on stdin. Long values
# wrap onto rows whose first cell is empty; those are joined back on.
field() {
    awk -F'|' -v key="$1" '
        /^\|/ && NF >= 4 {
            k = $2; v = $3
            gsub(/^ +| +$/, "", k); gsub(/^ +| +$/, "", v)
            if (k != "") { cur = k; vals[k] = v } else if (cur != "") { vals[cur] = vals[cur] v }
        }
        END { print vals[key] }'
}

# The real CLI, told to skip keystone: an explicit endpoint and a token that noauth ignores.
# Its schema cache goes to a throwaway HOME.
glance() {
    HOME="$TMP/home" "$VENV/bin/glance" --os-image-url "$URL" --os-auth-token dummy "$@"
}

# ---------------------------------------------------------------------------------------------

if [[ ! -x $BIN ]]; then
    not_ok "server binary exists" "no executable at $BIN (cargo build --release --bin glance-all-in-one)"
    finish
fi
if [[ ! -x $VENV/bin/glance || ! -x $VENV/bin/python ]]; then
    not_ok "python-glanceclient venv exists" "no $VENV/bin/glance (scripts/test.sh creates the venv)"
    finish
fi

# Nothing from the caller's OpenStack environment (OS_CLOUD, OS_AUTH_URL, ...) may leak in.
while read -r var; do unset "$var"; done < <(compgen -e | grep '^OS_' || true)
export OS_IMAGE_API_VERSION=2

TMP=$(mktemp -d "${TMPDIR:-/tmp}/glance-smoke.XXXXXX")
mkdir -p "$TMP/home" "$TMP/data"

if ! start_server --auth-strategy noauth; then
    mapfile -t log < <(tail -n 60 "$TMP/server.log")
    not_ok "glance-all-in-one answers GET /versions within 30s" "server log (last 60 lines):" "${log[@]}"
    finish
fi
ok "glance-all-in-one answers GET /versions on $URL"

head -c "$SIZE" /dev/urandom >"$TMP/image.bin"
MD5=$(md5sum "$TMP/image.bin" | awk '{print $1}')
SHA512=$(sha512sum "$TMP/image.bin" | awk '{print $1}')

# --- curl -----------------------------------------------------------------------------------

code=$(curl -s -o "$TMP/root.json" -w '%{http_code}' "$URL/")
if [[ $code == 300 ]] && python3 - "$TMP/root.json" <<'EOF'; then
import json, sys
versions = json.load(open(sys.argv[1]))["versions"]
assert any(v["status"] == "CURRENT" and v["id"].startswith("v2") for v in versions), versions
EOF
    ok "curl GET / answers 300 with a CURRENT v2 in the version list"
else
    not_ok "curl GET / answers 300 with a CURRENT v2 in the version list" "status $code" "$(head -c 500 "$TMP/root.json")"
fi

curl -s -D "$TMP/headers" -o /dev/null "$URL/v2/images"
request_id=$(tr -d '\r' <"$TMP/headers" | awk -F': *' 'tolower($1) == "x-openstack-request-id" {print $2}')
if [[ $request_id == req-* ]]; then
    ok "responses carry x-openstack-request-id ($request_id)"
else
    not_ok "responses carry x-openstack-request-id (req-...)" "$(cat "$TMP/headers")"
fi

# --- glance CLI -----------------------------------------------------------------------------

glance_checks() {
    local out rc id value

    out=$(glance image-create --name smoke --disk-format raw --container-format bare \
        --file "$TMP/image.bin" 2>&1)
    rc=$?
    id=$(field id <<<"$out")
    if [[ $rc -eq 0 && $id =~ ^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$ ]]; then
        ok "glance image-create --file (2 MiB) -> $id"
    else
        not_ok "glance image-create --file (2 MiB)" "exit $rc" "$out"
        return
    fi

    out=$(glance image-list 2>&1)
    if [[ $out == *"$id"* ]]; then ok "glance image-list shows the image"; else not_ok "glance image-list shows the image" "$out"; fi

    out=$(glance image-show "$id" 2>&1)
    expect "glance image-show: status active" active "$(field status <<<"$out")" "$out"
    expect "glance image-show: size $SIZE" "$SIZE" "$(field size <<<"$out")"
    expect "glance image-show: checksum is the file's md5" "$MD5" "$(field checksum <<<"$out")"
    expect "glance image-show: os_hash_algo sha512" sha512 "$(field os_hash_algo <<<"$out")"
    expect "glance image-show: os_hash_value is the file's sha512" "$SHA512" "$(field os_hash_value <<<"$out")"

    out=$(glance image-download --file "$TMP/download.bin" "$id" 2>&1)
    rc=$?
    if [[ $rc -eq 0 ]] && cmp -s "$TMP/image.bin" "$TMP/download.bin"; then
        ok "glance image-download returns the same bytes"
    else
        not_ok "glance image-download returns the same bytes" "exit $rc" "$out" \
            "downloaded $(stat -c %s "$TMP/download.bin" 2>/dev/null || echo no) bytes"
    fi

    out=$(glance image-update --name smoke2 --property foo=bar "$id" 2>&1)
    rc=$?
    expect "glance image-update --name smoke2 --property foo=bar exits 0" 0 "$rc" "$out"
    out=$(glance image-show "$id" 2>&1)
    expect "glance image-show after update: name smoke2" smoke2 "$(field name <<<"$out")" "$out"
    expect "glance image-show after update: foo=bar" bar "$(field foo <<<"$out")"

    out=$(glance image-tag-update "$id" t1 2>&1)
    rc=$?
    expect "glance image-tag-update $id t1 exits 0" 0 "$rc" "$out"
    out=$(glance image-show "$id" 2>&1)
    value=$(field tags <<<"$out")
    if [[ $value =~ (^|[^[:alnum:]])t1([^[:alnum:]]|$) ]]; then
        ok "glance image-show lists tag t1 ($value)"
    else
        not_ok "glance image-show lists tag t1" "tags: $value" "$out"
    fi

    out=$(glance image-tag-delete "$id" t1 2>&1)
    rc=$?
    expect "glance image-tag-delete $id t1 exits 0" 0 "$rc" "$out"
    value=$(glance image-show "$id" 2>&1 | field tags)
    if [[ $value =~ (^|[^[:alnum:]])t1([^[:alnum:]]|$) ]]; then
        not_ok "glance image-show no longer lists tag t1" "tags: $value"
    else
        ok "glance image-show no longer lists tag t1 ($value)"
    fi

    out=$(glance image-delete "$id" 2>&1)
    rc=$?
    expect "glance image-delete exits 0" 0 "$rc" "$out"
    out=$(glance image-show "$id" 2>&1)
    rc=$?
    if [[ $rc -ne 0 && ($out == *404* || $out == *"No image"*) ]]; then
        ok "glance image-show of the deleted image fails with not found"
    else
        not_ok "glance image-show of the deleted image fails with not found" "exit $rc" "$out"
    fi
    code=$(curl -s -o /dev/null -w '%{http_code}' "$URL/v2/images/$id")
    expect "curl GET /v2/images/<deleted id> answers 404" 404 "$code"
}
glance_checks

# --- openstacksdk ---------------------------------------------------------------------------
# keystoneauth's `none` plugin with the endpoint given, the image endpoint overridden to the
# same URL: openstacksdk then does version discovery on GET / and talks /v2 with no keystone.

sdk_out=$(HOME="$TMP/home" "$VENV/bin/python" - "$URL" "$TMP/image.bin" 2>&1 <<'EOF'
import hashlib
import sys
import traceback

from openstack import connection

url, path = sys.argv[1], sys.argv[2]
data = open(path, "rb").read()


def check(what, cond, detail=""):
    print(("ok - " if cond else "not ok - ") + what)
    if not cond and detail:
        for line in str(detail).splitlines():
            print("#   " + line)
    return cond


try:
    conn = connection.Connection(
        auth_type="none",
        auth={"endpoint": url},
        image_endpoint_override=url,
        image_api_version="2",
    )
    image = conn.image.create_image(
        name="sdk-smoke",
        data=data,
        disk_format="raw",
        container_format="bare",
        allow_duplicates=True,
    )
    check("openstacksdk create_image with data", bool(image.id), image)
    got = conn.image.get_image(image.id)
    check(
        "openstacksdk get_image: active, size and md5 match",
        got.status == "active"
        and got.size == len(data)
        and got.checksum == hashlib.md5(data).hexdigest(),
        f"status={got.status} size={got.size} checksum={got.checksum}",
    )
    ids = [i.id for i in conn.image.images()]
    check("openstacksdk images() lists it", image.id in ids, ids)
    body = conn.image.download_image(got).content
    check("openstacksdk download_image returns the same bytes", body == data, f"{len(body)} bytes")
    conn.image.delete_image(image.id, ignore_missing=False)
    check("openstacksdk delete_image, then find_image is None", conn.image.find_image(image.id) is None)
except Exception:
    check("openstacksdk session", False, traceback.format_exc())
EOF
)
sdk_rc=$?
printf '%s\n' "$sdk_out"
PASSED=$((PASSED + $(grep -c '^ok - ' <<<"$sdk_out")))
FAILED=$((FAILED + $(grep -c '^not ok - ' <<<"$sdk_out")))
if [[ $sdk_rc -ne 0 ]] && ! grep -q '^not ok - ' <<<"$sdk_out"; then
    not_ok "openstacksdk script ran (exit $sdk_rc)"
fi

if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    mapfile -t log < <(tail -n 60 "$TMP/server.log")
    not_ok "glance-all-in-one still running at the end" "${log[@]}"
fi
if [[ $FAILED -gt 0 ]]; then
    echo "# server log (last 40 lines):"
    tail -n 40 "$TMP/server.log" | sed 's/^/#   /'
fi
finish
