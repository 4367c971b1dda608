#!/usr/bin/env bash
# Smoke test of the metadefs catalog with the real clients: `glance-manage db load_metadefs`
# loads Glance 33's shipped definition files into a fresh database, then the all-in-one
# (noauth) serves them to python-glanceclient's `glance md-*` commands, openstacksdk's
# `image.metadef_namespaces()` and, when it is installed, the `openstack` CLI.
#
#   tests/smoke/metadefs_smoke.sh      (scripts/test.sh runs it)
#
# GLANCE_BIN           the all-in-one binary; glance-manage is taken from the same directory
#                      (default target/debug/glance-all-in-one)
# GLANCE_VENV          venv with python-glanceclient and openstacksdk (default target/venv)
# GLANCE_METADEFS_DIR  Glance's definition files (default: GLANCE_TEST_METADEFS_DIR, which
#                      scripts/test.sh sets, else the reference Glance's venv,
#                      ~/.cache/reference-glance/venv/etc/glance/metadefs)
# OPENSTACK_CLI        an `openstack` executable (default: $GLANCE_VENV/bin/openstack, then
#                      the reference Keystone's venv under target/keystone-venv)
#
# Prints `ok - <what>` / `not ok - <what>` per check and ends with `smoke: N passed, M failed`.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${GLANCE_BIN:-$ROOT/target/debug/glance-all-in-one}
MANAGE=$(dirname "$BIN")/glance-manage
VENV=${GLANCE_VENV:-$ROOT/target/venv}
METADEFS=${GLANCE_METADEFS_DIR:-${GLANCE_TEST_METADEFS_DIR:-${GLANCE_REF_HOME:-$HOME/.cache/reference-glance}/venv/etc/glance/metadefs}}

# shellcheck source=tests/smoke/lib.sh
source "$ROOT/tests/smoke/lib.sh"

glance() {
    HOME="$TMP/home" "$VENV/bin/glance" --os-image-url "$URL" --os-auth-token dummy "$@"
}

for need in "$BIN" "$MANAGE" "$VENV/bin/glance" "$VENV/bin/python"; do
    if [[ ! -x $need ]]; then
        not_ok "$need exists" "build the binaries (cargo build --bins); scripts/test.sh makes the venv"
        finish
    fi
done
if [[ ! -f $METADEFS/compute-cpu-pinning.json ]]; then
    not_ok "Glance's definition files at $METADEFS" \
        "run ../shared/reference-glance/start.sh once, or set GLANCE_METADEFS_DIR"
    finish
fi

while read -r var; do unset "$var"; done < <(compgen -e | grep '^OS_' || true)
export OS_IMAGE_API_VERSION=2

TMP=$(mktemp -d "${TMPDIR:-/tmp}/glance-metadefs-smoke.XXXXXX")
mkdir -p "$TMP/home" "$TMP/data"
export GLANCE__DATABASE__CONNECTION="sqlite://$TMP/data/glance.sqlite?mode=rwc"
files=$(find "$METADEFS" -maxdepth 1 -name '*.json' | wc -l)

out=$("$MANAGE" db sync 2>&1) || not_ok "glance-manage db sync" "$out"
out=$("$MANAGE" db load_metadefs --path "$METADEFS" 2>&1)
expect "glance-manage db load_metadefs loads Glance's $files files" "$files" \
    "$(grep -c '^Loaded namespace' <<<"$out")" "$out"
out=$("$MANAGE" db load_metadefs --path "$TMP/nowhere" 2>&1)
expect "load_metadefs of a missing path exits non-zero" 1 $? "$out"

if ! start_server --auth-strategy noauth; then
    not_ok "server starts" "$(tail -n 40 "$TMP/server.log")"
    finish
fi
unset GLANCE__DATABASE__CONNECTION

out=$(glance md-namespace-list 2>&1)
expect "glance md-namespace-list lists OS::Compute::CPUPinning" 1 \
    "$(grep -c '| OS::Compute::CPUPinning ' <<<"$out")" "$out"
out=$(glance md-namespace-show OS::Compute::CPUPinning 2>&1)
expect "glance md-namespace-show shows its properties" 1 \
    "$(grep -c 'cpu_thread_policy' <<<"$out")" "$out"
out=$(glance md-object-list OS::Software::DBMS 2>&1)
expect "glance md-object-list lists a loaded namespace's objects" 1 "$(grep -c '| MySQL ' <<<"$out")" "$out"
out=$(glance md-object-show OS::Software::DBMS MySQL 2>&1)
expect "glance md-object-show shows the object" 0 "$(grep -q 'MySQL' <<<"$out"; echo $?)" "$out"
out=$(glance md-property-list OS::Compute::CPUPinning 2>&1)
expect "glance md-property-list lists cpu_policy" 1 "$(grep -c '| cpu_policy ' <<<"$out")" "$out"
out=$(glance md-resource-type-list 2>&1)
expect "glance md-resource-type-list lists OS::Glance::Image" 1 \
    "$(grep -c '| OS::Glance::Image ' <<<"$out")" "$out"

# Writing through the CLI: a namespace with a property, an object, tags and an association.
out=$(glance md-namespace-create Smoke::NS --visibility public --display-name Smoke 2>&1)
expect "glance md-namespace-create" 0 $? "$out"
out=$(glance md-property-create Smoke::NS --name p1 --title P1 --type string --schema '{"enum": ["a", "b"]}' 2>&1)
expect "glance md-property-create" 0 $? "$out"
out=$(glance md-object-create Smoke::NS --name O1 --schema '{"description": "d", "properties": {"x": {"type": "integer", "title": "X"}}}' 2>&1)
expect "glance md-object-create" 0 $? "$out"
out=$(glance md-object-list Smoke::NS 2>&1)
expect "glance md-object-list lists the object" 1 "$(grep -c '| O1 ' <<<"$out")" "$out"
out=$(glance md-property-list Smoke::NS 2>&1)
expect "glance md-property-list lists the property" 1 "$(grep -c '| p1 ' <<<"$out")" "$out"
out=$(glance md-tag-create-multiple Smoke::NS --names t1,t2 2>&1)
expect "glance md-tag-create-multiple" 0 $? "$out"
out=$(glance md-tag-list Smoke::NS 2>&1)
expect "glance md-tag-list lists both tags" 2 "$(grep -cE '\| t[12] ' <<<"$out")" "$out"
out=$(glance md-resource-type-associate Smoke::NS --name OS::Glance::Image --prefix smoke_ 2>&1)
expect "glance md-resource-type-associate" 0 $? "$out"
out=$(glance md-namespace-resource-type-list Smoke::NS 2>&1)
expect "glance md-namespace-resource-type-list" 1 "$(grep -c 'OS::Glance::Image' <<<"$out")" "$out"
out=$(glance md-property-create Smoke::NS --name bad --title B --type float --schema '{}' 2>&1)
rc=$?
expect "glance md-property-create refuses an unknown type" 1 "$((rc != 0))" "$out"
out=$(glance md-namespace-delete Smoke::NS 2>&1)
expect "glance md-namespace-delete" 0 $? "$out"

# openstacksdk, as Horizon-like tools call it.
out=$(HOME="$TMP/home" "$VENV/bin/python" - "$URL" 2>&1 <<'EOF'
import sys
from openstack import connection
# keystoneauth's `none` plugin, the image endpoint overridden: version discovery on GET /.
conn = connection.Connection(auth_type="none", auth={"endpoint": sys.argv[1]},
                             image_endpoint_override=sys.argv[1], image_api_version="2")
names = [ns.namespace for ns in conn.image.metadef_namespaces()]
assert "OS::Compute::CPUPinning" in names, names
ns = conn.image.get_metadef_namespace("OS::Compute::CPUPinning")
assert ns.display_name == "CPU Pinning", ns
props = [p.name for p in conn.image.metadef_properties("OS::Compute::CPUPinning")]
assert "cpu_policy" in props, props
types = [rt.name for rt in conn.image.metadef_resource_types()]
assert "OS::Glance::Image" in types, types
print(len(names))
EOF
)
expect "openstacksdk image.metadef_namespaces() lists all $files" "$files" "$(tail -n 1 <<<"$out")" "$out"

OPENSTACK=${OPENSTACK_CLI:-}
for candidate in "$VENV/bin/openstack" "$ROOT/target/keystone-venv/bin/openstack"; do
    [[ -z $OPENSTACK && -x $candidate ]] && OPENSTACK=$candidate
done
if [[ -n $OPENSTACK ]]; then
    out=$(HOME="$TMP/home" "$OPENSTACK" --os-auth-type none --os-endpoint "$URL" \
        --os-image-api-version 2 image metadef namespace list -f value 2>&1)
    expect "openstack image metadef namespace list" 1 \
        "$(grep -cx 'OS::Compute::CPUPinning' <<<"$out")" "$out"
else
    not_ok "openstack image metadef namespace list" \
        "no openstack CLI (python-openstackclient) in $VENV or target/keystone-venv; set OPENSTACK_CLI"
fi

finish
