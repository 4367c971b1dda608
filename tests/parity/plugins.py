#!/usr/bin/env python3
"""Side by side: the import plugins of the reference Glance 33 and of ours.

    plugins.py --ref http://127.0.0.1:PORT --ours http://127.0.0.1:PORT

Both servers run with trusted headers, glance-direct, `image_size_cap` 4 MiB and

    [image_import_opts] image_import_plugins = [image_decompression, image_conversion,
                                                inject_image_metadata]
    [image_conversion] output_format = raw
    [inject_metadata_properties] inject = hw_rng_model:virtio   (ignore_user_roles = admin)

(the reference reads them from `glance-image-import.conf` beside its `glance-api.conf`; see
docs/parity.md). Each case stages the same bytes on both, imports them with glance-direct
and compares the fields that describe the result. Needs `qemu-img` and `requests` (the
reference's venv has it). Exits 1 on a difference docs/parity.md does not explain.
"""

import argparse
import gzip
import json
import subprocess
import sys
import tempfile
import time
import zipfile

import requests

FIELDS = ["status", "disk_format", "container_format", "size", "virtual_size", "checksum",
          "os_hash_value", "hw_rng_model"]
# Glance's task message for any plugin failure is "Task failed due to Internal Error" and ours
# names the reason; its running message is "Copied N MiB" where ours is empty when done.
KEPT = {"message"}


def headers(role):
    roles = "admin,member,reader" if role == "admin" else "member,reader"
    return {"X-Identity-Status": "Confirmed", "X-Auth-Token": "x", "X-Roles": roles,
            "X-Project-Id": "p1", "X-User-Id": "u1"}


def import_direct(base, disk_format, container_format, data, role):
    s = requests.Session()
    s.headers.update(headers(role))
    image = s.post(f"{base}/v2/images", json={
        "name": "plugins", "disk_format": disk_format, "container_format": container_format})
    image_id = image.json()["id"]
    r = s.put(f"{base}/v2/images/{image_id}/stage", data=data,
              headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 204, r.text
    r = s.post(f"{base}/v2/images/{image_id}/import", json={"method": {"name": "glance-direct"}})
    assert r.status_code == 202, r.text
    deadline = time.time() + 60
    while time.time() < deadline:
        tasks = s.get(f"{base}/v2/images/{image_id}/tasks").json()["tasks"]
        if tasks and tasks[0]["status"] in ("success", "failure"):
            break
        time.sleep(0.2)
    image = s.get(f"{base}/v2/images/{image_id}").json()
    return {k: image.get(k) for k in FIELDS} | {"task": tasks[0]["status"],
                                                "message": tasks[0]["message"]}


def cases(d):
    def qemu(*args):
        subprocess.run(["qemu-img", *args], check=True, capture_output=True)

    raw = bytearray((i * 31 % 251) for i in range(2 << 20))
    raw[1 << 19:1 << 20] = bytes(1 << 19)
    with open(f"{d}/disk.raw", "wb") as f:
        f.write(raw)
    for fmt in ("qcow2", "vmdk"):
        qemu("convert", "-f", "raw", "-O", fmt, f"{d}/disk.raw", f"{d}/disk.{fmt}")
    qemu("create", "-f", "qcow2", "-F", "raw", "-b", f"{d}/disk.raw", f"{d}/top.qcow2")
    read = lambda name: open(f"{d}/{name}", "rb").read()  # noqa: E731
    with zipfile.ZipFile(f"{d}/one.zip", "w", zipfile.ZIP_DEFLATED) as z:
        z.write(f"{d}/disk.qcow2", "disk.qcow2")
    with zipfile.ZipFile(f"{d}/two.zip", "w", zipfile.ZIP_DEFLATED) as z:
        z.write(f"{d}/disk.qcow2", "a")
        z.write(f"{d}/disk.raw", "b")
    gz_raw = gzip.compress(bytes(raw))
    return [
        ("qcow2 to raw", "qcow2", "bare", read("disk.qcow2"), "member"),
        ("vmdk to raw", "vmdk", "bare", read("disk.vmdk"), "member"),
        ("gzip of raw", "raw", "bare", gz_raw, "member"),
        ("gzip of qcow2", "qcow2", "bare", gzip.compress(read("disk.qcow2")), "member"),
        ("zip of qcow2", "qcow2", "bare", read("one.zip"), "member"),
        # Glance leaves the image `importing` (its decompression has no revert); ours is
        # `queued` again, as after any failed import.
        ("zip of two files", "qcow2", "bare", read("two.zip"), "member"),
        ("backing file", "qcow2", "bare", read("top.qcow2"), "member"),
        ("qcow2 claimed raw", "raw", "bare", read("disk.qcow2"), "member"),
        ("raw claimed qcow2", "qcow2", "bare", read("disk.raw"), "member"),
        ("admin: no injection", "qcow2", "bare", read("disk.qcow2"), "admin"),
    ]


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ref", required=True)
    ap.add_argument("--ours", required=True)
    args = ap.parse_args()
    unexpected = 0
    with tempfile.TemporaryDirectory() as d:
        for name, disk_format, container_format, data, role in cases(d):
            ref = import_direct(args.ref, disk_format, container_format, data, role)
            ours = import_direct(args.ours, disk_format, container_format, data, role)
            if ref["task"] not in ("success", "failure"):
                # The reference's task pool sometimes leaves a task pending after failures.
                print(f"skip  {name}: the reference's task is still {ref['task']} ({ref})")
                continue
            diff = {k: (ref[k], ours[k]) for k in ref if ref[k] != ours[k]}
            kept = name == "zip of two files" and set(diff) <= KEPT | {"status", "size"}
            bad = {k: v for k, v in diff.items() if k not in KEPT and not kept}
            unexpected += bool(bad)
            print(f"{'DIFF' if bad else 'same'}  {name}: {json.dumps(diff) if diff else ''}")
    print(f"plugins: {unexpected} unexpected differences")
    return 1 if unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
