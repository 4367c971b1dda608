#!/usr/bin/env bash
# Side by side, the import plugins: the reference Glance 33 and our glance-all-in-one, each
# fresh on a free loopback port, both with image_decompression, image_conversion (to raw)
# and inject_image_metadata; tests/parity/plugins.py imports the same qcow2, vmdk, gzip and
# zip images (made with qemu-img) on both and compares the resulting images.
#
#   tests/parity/plugins_run.sh
#
# GLANCE_BIN     our server (default target/debug/glance-all-in-one)
# REFERENCE_DIR  the reference Glance's scripts (default ../shared/reference-glance); its
#                venv (~/.cache/reference-glance/venv, GLANCE_REF_HOME) is built on first use
# PARITY_KEEP=1  keep the temp dir (both servers' state and logs)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${GLANCE_BIN:-$ROOT/target/debug/glance-all-in-one}
REF=${REFERENCE_DIR:-$ROOT/../shared/reference-glance}
VENV=${GLANCE_REF_HOME:-$HOME/.cache/reference-glance}/venv
[[ -x $BIN ]] || { echo "plugins parity: no server binary at $BIN" >&2; exit 1; }
[[ -x $REF/start.sh ]] || { echo "plugins parity: no reference Glance at $REF (REFERENCE_DIR)" >&2; exit 1; }
command -v qemu-img >/dev/null || { echo "plugins parity: qemu-img is needed (qemu-utils)" >&2; exit 1; }

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

TMP=$(mktemp -d "${TMPDIR:-/tmp}/glance-plugins-parity.XXXXXX")
REF_PORT=$(free_port)
OURS_PORT=$(free_port)
OURS_PID=""
export ANCHOR_RUN=$TMP/reference GLANCE_REF_PORT=$REF_PORT
cleanup() {
    local rc=$?
    set +e
    [[ -n $OURS_PID ]] && kill "$OURS_PID" 2>/dev/null && wait "$OURS_PID" 2>/dev/null
    "$REF/stop.sh" >/dev/null 2>&1
    if [[ ${PARITY_KEEP:-0} == 1 ]]; then echo "plugins parity: kept $TMP" >&2; else rm -rf "$TMP"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$TMP/ours"
sed -e "s|@RUN@|$TMP/ours|g" "$ROOT/tests/parity/glance-rs.conf" >"$TMP/ours/glance-api.conf"
cat >>"$TMP/ours/glance-api.conf" <<'CONF'

[image_import_opts]
image_import_plugins = [image_decompression, image_conversion, inject_image_metadata]

[image_conversion]
output_format = raw

[inject_metadata_properties]
inject = hw_rng_model:virtio
ignore_user_roles = admin
CONF
"$BIN" --bind "127.0.0.1:$OURS_PORT" --data-dir "$TMP/ours" --auth-strategy trusted-headers \
    --config-file "$TMP/ours/glance-api.conf" >"$TMP/ours/server.log" 2>&1 &
OURS_PID=$!

# The reference reads its plugins from glance-image-import.conf beside glance-api.conf; a
# fresh start wipes etc/, so it is written after one and read by a second.
"$REF/start.sh" --fresh | sed 's/^/    reference: /'
"$REF/stop.sh" >/dev/null 2>&1
cat >"$ANCHOR_RUN/etc/glance-image-import.conf" <<'CONF'
[image_import_opts]
image_import_plugins = ['image_decompression', 'image_conversion', 'inject_image_metadata']

[image_conversion]
output_format = raw

[inject_metadata_properties]
inject = hw_rng_model:virtio
ignore_user_roles = admin
CONF
"$REF/start.sh" | sed 's/^/    reference: /'

for _ in $(seq 1 100); do
    curl -s -o /dev/null "http://127.0.0.1:$OURS_PORT/versions" && break
    kill -0 "$OURS_PID" 2>/dev/null || { tail -n 30 "$TMP/ours/server.log" >&2; exit 1; }
    sleep 0.2
done

"$VENV/bin/python" "$ROOT/tests/parity/plugins.py" --ref "http://127.0.0.1:$REF_PORT" \
    --ours "http://127.0.0.1:$OURS_PORT"
