"""Load and checks for the compose stack tests (scripts/compose-test.sh).

    load.py load    --urls U1,U2 --token T --seconds S --out DIR [--writers N] [--prefetch]
                    [--retry-refused]
    load.py verify  --urls U1,U2 --token T --acked DIR [--prefetch-wait S]
    load.py snapshot --url U --token T --out FILE
    load.py compare --url U --token T --snapshot FILE

`load` runs writers for S seconds (bounded: also at most --max-requests requests), each a
loop of create, upload (random bytes), show and, with --prefetch, queue the image in the
node's cache. Every acknowledged upload and prefetch is appended to DIR/acked.jsonl; counts go
to DIR/stats.json. Each request opens its own connection. With --retry-refused a refused
connection is retried (a client's reaction to a restarting server) and only that; any other
error counts as a failed request.

`verify` checks that every acknowledged image is active with its bytes (downloaded and
compared), that no unacknowledged one says active without its bytes, and that every
acknowledged prefetch is in the cache, and prints one JSON object.
`snapshot`/`compare` record and check every image, its bytes and its members.

Targets are the stack's published loopback ports only.
"""

import argparse
import errno
import hashlib
import json
import os
import random
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests

TIMEOUT = 20


def refused(exc):
    """Whether a requests error is a refused TCP connection, and nothing else."""
    seen = set()
    e = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, ConnectionRefusedError) or getattr(e, "errno", None) == errno.ECONNREFUSED:
            return True
        e = e.__cause__ or e.__context__ or (e.args[0] if e.args and isinstance(e.args[0], BaseException) else None)
    return False


class Client:
    def __init__(self, token, retry_refused, stats, lock):
        self.headers = {"X-Auth-Token": token, "Connection": "close"}
        self.retry_refused = retry_refused
        self.stats = stats
        self.lock = lock

    def count(self, key, n=1):
        with self.lock:
            self.stats[key] = self.stats.get(key, 0) + n

    def request(self, method, url, expect, **kw):
        headers = dict(self.headers, **kw.pop("headers", {}))
        deadline = time.monotonic() + 60
        while True:
            self.count("requests")
            try:
                r = requests.request(method, url, headers=headers, timeout=TIMEOUT, **kw)
            except requests.RequestException as e:
                if self.retry_refused and refused(e) and time.monotonic() < deadline:
                    self.count("refused_retried")
                    time.sleep(0.05)
                    continue
                self.count("failed")
                self.count("failed_" + type(e).__name__)
                return None
            if r.status_code not in expect:
                self.count("failed")
                self.count("failed_http_%d" % r.status_code)
                return None
            return r


def writer(base_urls, client, stop_at, max_requests, prefetch, out, out_lock, n):
    i = 0
    while time.monotonic() < stop_at and client.stats.get("requests", 0) < max_requests:
        url = base_urls[(n + i) % len(base_urls)]
        i += 1
        data = random.randbytes(random.randint(1, 64) * 1024)
        r = client.request(
            "POST", url + "/v2/images", (201,),
            json={"name": "load-%d-%d" % (n, i), "disk_format": "raw", "container_format": "bare"},
        )
        if r is None:
            time.sleep(0.2)
            continue
        image_id = r.json()["id"]
        md5 = hashlib.md5(data).hexdigest()
        # Every image, acknowledged or not: one that ends up active must have these bytes.
        with out_lock:
            out.write(json.dumps({"kind": "created", "id": image_id, "md5": md5}) + "\n")
            out.flush()
        r = client.request(
            "PUT", "%s/v2/images/%s/file" % (url, image_id), (204,),
            data=data, headers={"Content-Type": "application/octet-stream"},
        )
        if r is None:
            time.sleep(0.2)
            continue
        record = {"kind": "image", "id": image_id, "md5": md5, "size": len(data)}
        with out_lock:
            out.write(json.dumps(record) + "\n")
            out.flush()
        client.count("acked_writes")
        client.request("GET", "%s/v2/images/%s" % (url, image_id), (200,))
        if prefetch:
            r = client.request("PUT", "%s/v2/cache/%s" % (url, image_id), (200, 202, 204))
            if r is not None:
                with out_lock:
                    out.write(json.dumps({"kind": "prefetch", "id": image_id}) + "\n")
                    out.flush()
                client.count("acked_prefetches")


def cmd_load(args):
    urls = args.urls.split(",")
    os.makedirs(args.out, exist_ok=True)
    stats, lock, out_lock = {}, threading.Lock(), threading.Lock()
    client = Client(args.token, args.retry_refused, stats, lock)
    stop_at = time.monotonic() + args.seconds
    with open(os.path.join(args.out, "acked.jsonl"), "a") as out:
        threads = [
            threading.Thread(target=writer, args=(urls, client, stop_at, args.max_requests, args.prefetch, out, out_lock, n))
            for n in range(args.writers)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    with open(os.path.join(args.out, "stats.json"), "w") as f:
        json.dump(stats, f)
    print(json.dumps(stats))


def read_acked(path):
    images, prefetches, created = {}, set(), {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                rec = json.loads(line)
                if rec["kind"] == "image":
                    images[rec["id"]] = rec
                elif rec["kind"] == "created":
                    created[rec["id"]] = rec
                else:
                    prefetches.add(rec["id"])
    return images, prefetches, created


def get(url, token, **kw):
    return requests.get(url, headers={"X-Auth-Token": token}, timeout=TIMEOUT, **kw)


def image_intact(url, token, image_id, md5):
    """None when the image is there, active, with these bytes; else what is wrong."""
    try:
        r = get("%s/v2/images/%s" % (url, image_id), token)
        if r.status_code != 200:
            return "show: HTTP %d" % r.status_code
        if r.json().get("status") != "active" or r.json().get("checksum") != md5:
            return "show: %s %s" % (r.json().get("status"), r.json().get("checksum"))
        r = get("%s/v2/images/%s/file" % (url, image_id), token)
        if r.status_code != 200 or hashlib.md5(r.content).hexdigest() != md5:
            return "download: HTTP %d, md5 %s" % (r.status_code, hashlib.md5(r.content).hexdigest())
    except requests.RequestException as e:
        return "error: %s" % e
    return None


def active_intact(url, token, image_id, md5):
    """None unless the image says active without these bytes behind it (what a failed
    upload must never leave); else what is wrong."""
    try:
        r = get("%s/v2/images/%s" % (url, image_id), token)
        if r.status_code != 200 or r.json().get("status") != "active":
            return None
    except requests.RequestException as e:
        return "error: %s" % e
    return image_intact(url, token, image_id, md5)


def cmd_verify(args):
    urls = args.urls.split(",")
    images, prefetches, created = read_acked(os.path.join(args.acked, "acked.jsonl"))
    items = sorted(images.items())
    with ThreadPoolExecutor(8) as pool:
        problems = pool.map(
            lambda n: image_intact(urls[n % len(urls)], args.token, items[n][0], items[n][1]["md5"]),
            range(len(items)),
        )
    lost = [{"id": items[n][0], "problem": p} for n, p in enumerate(problems) if p]
    # Writes that were not acknowledged (the client saw an error) may have landed or not,
    # but an image that says active must have its bytes.
    unacked = sorted((i, r) for i, r in created.items() if i not in images)
    with ThreadPoolExecutor(8) as pool:
        problems = pool.map(
            lambda n: active_intact(urls[n % len(urls)], args.token, unacked[n][0], unacked[n][1]["md5"]),
            range(len(unacked)),
        )
    broken = [{"id": unacked[n][0], "problem": p} for n, p in enumerate(problems) if p]
    # A queued prefetch is work in a durable queue: it must end up cached.
    missing = set(prefetches)
    deadline = time.monotonic() + args.prefetch_wait
    while missing:
        try:
            r = get(urls[0] + "/v2/cache", args.token)
            if r.status_code == 200:
                cached = {c["image_id"] for c in r.json().get("cached_images", [])}
                missing -= cached
        except requests.RequestException:
            pass
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(1)
    result = {
        "acked_writes": len(images),
        "lost_writes": len(lost),
        "unacked_writes": len(unacked),
        "active_without_data": len(broken),
        "acked_prefetches": len(prefetches),
        "prefetches_not_cached": len(missing),
        "lost": lost[:10],
        "broken": broken[:10],
        "missing_prefetches": sorted(missing)[:10],
    }
    print(json.dumps(result))
    return 0 if not lost and not missing and not broken else 1


def listing(url, token):
    """Every image the token's caller sees, following the pages."""
    images, next_url = [], url + "/v2/images?limit=100"
    while next_url:
        r = get(next_url, token)
        r.raise_for_status()
        body = r.json()
        images.extend(body["images"])
        nxt = body.get("next")
        next_url = url + nxt if nxt else None
    return images


def cmd_snapshot(args):
    def members(img):
        r = get("%s/v2/images/%s/members" % (args.url, img["id"]), args.token)
        return sorted((m["member_id"], m["status"]) for m in r.json().get("members", []))

    images = listing(args.url, args.token)
    with ThreadPoolExecutor(8) as pool:
        snap = {
            img["id"]: {"status": img["status"], "checksum": img.get("checksum"), "members": m}
            for img, m in zip(images, pool.map(members, images))
        }
    with open(args.out, "w") as f:
        json.dump(snap, f)
    print(json.dumps({"images": len(snap), "members": sum(len(v["members"]) for v in snap.values())}))


def cmd_compare(args):
    with open(args.snapshot) as f:
        before = json.load(f)
    now = {img["id"]: img for img in listing(args.url, args.token)}

    def check(item):
        # The listing gives status and checksum; the bytes are downloaded; members are asked
        # for where there were some (one request per image, not three, for thousands).
        image_id, was = item
        img = now.get(image_id)
        if img is None:
            return ["%s: gone" % image_id]
        found = []
        if img["status"] != was["status"] or img.get("checksum") != was["checksum"]:
            found.append("%s: %s %s, was %s %s" % (image_id, img["status"], img.get("checksum"), was["status"], was["checksum"]))
        if was["status"] == "active":
            try:
                r = get("%s/v2/images/%s/file" % (args.url, image_id), args.token)
                if r.status_code != 200 or hashlib.md5(r.content).hexdigest() != was["checksum"]:
                    found.append("%s: download: HTTP %d, md5 %s" % (image_id, r.status_code, hashlib.md5(r.content).hexdigest()))
            except requests.RequestException as e:
                found.append("%s: download: %s" % (image_id, e))
        if was["members"]:
            members = get("%s/v2/images/%s/members" % (args.url, image_id), args.token).json().get("members", [])
            if sorted([m["member_id"], m["status"]] for m in members) != [list(m) for m in was["members"]]:
                found.append("%s: members %s, were %s" % (image_id, members, was["members"]))
        return found

    with ThreadPoolExecutor(8) as pool:
        problems = [p for found in pool.map(check, sorted(before.items())) for p in found]
    print(json.dumps({"images": len(before), "problems": len(problems), "first": problems[:10]}))
    return 0 if not problems else 1


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("load")
    a.add_argument("--urls", required=True)
    a.add_argument("--token", required=True)
    a.add_argument("--seconds", type=float, required=True)
    a.add_argument("--writers", type=int, default=4)
    a.add_argument("--max-requests", type=int, default=20000)
    a.add_argument("--prefetch", action="store_true")
    a.add_argument("--retry-refused", action="store_true")
    a.add_argument("--out", required=True)
    v = sub.add_parser("verify")
    v.add_argument("--urls", required=True)
    v.add_argument("--token", required=True)
    v.add_argument("--acked", required=True)
    v.add_argument("--prefetch-wait", type=float, default=60)
    s = sub.add_parser("snapshot")
    s.add_argument("--url", required=True)
    s.add_argument("--token", required=True)
    s.add_argument("--out", required=True)
    c = sub.add_parser("compare")
    c.add_argument("--url", required=True)
    c.add_argument("--token", required=True)
    c.add_argument("--snapshot", required=True)
    args = p.parse_args()
    return {"load": cmd_load, "verify": cmd_verify, "snapshot": cmd_snapshot, "compare": cmd_compare}[args.cmd](args) or 0


if __name__ == "__main__":
    sys.exit(main())
