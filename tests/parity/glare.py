#!/usr/bin/env python3
"""Side by side with Glare 5.0.1: replays one corpus of artifact API requests against the
reference Glare (../shared/reference-glare, its noauth pipeline, so identity comes from the
same trusted headers as ours) and our artifact API, as the five personas of parity.py, and
compares what clients read, normalized the same way (parity.py's Server, Harness and views).

A difference whose case id and field match a row of the tables in docs/glare.md (`| `case
glob` | `field glob` | reason |`) is kept on purpose; any other fails the run (exit 1).
Run by tests/parity/glare_run.sh. Standard library only.
"""

import json
import sys
import time

import parity
from parity import ALL, Harness

# What a Glare client reads besides parity.py's headers: the blob checksums of a download.
parity.COMPARED_HEADERS.extend(["x-openstack-glare-content-sha1", "x-openstack-glare-content-sha256"])

TYPES = ["images", "heat_templates", "heat_environments", "murano_packages", "tosca_templates", "all"]
PATCH_CT = {"Content-Type": "application/json-patch+json"}
DATA = b"glare blob bytes " * 64
OTHER_UUID = "d4a6c1f0-7a35-4f7e-9a55-6b1a8f1d2c3e"


def view(server, resp, ordered, count=False, shape_only=False):
    """parity.py's view, but an error is compared by its status and headers only: Glare
    answers some errors with its JSON error document and others (malformed JSON, an unknown
    path or method, its own 500s) in webob's plain text, where it fails decides which; ours
    are all Glare's JSON document (tests/tests/glare.rs checks their shape)."""
    out = parity_view(server, resp, ordered, count, shape_only)
    if resp.status >= 400:
        for k in ("body-shape", "content-type", "content-length"):
            out.pop(k, None)
    return out


parity_view = parity.view
parity.view = view


class Glare(Harness):
    def artifact(self, sym, type_name="images", persona="member_a", **fields):
        """Creates artifact `sym` on both (as `persona`, project A by default)."""
        body = {"name": sym}
        body.update(fields)
        ref, ours = self.send("POST", "/artifacts/" + type_name, persona, body=body)
        for server, r in zip(self.servers, (ref, ours)):
            if r.status != 201:
                raise SystemExit("fixture %s on %s: %d %s" % (sym, server.name, r.status, r.body[:300]))
            server.bind(sym, r.json()["id"])
        return sym

    def blob(self, sym, path, data=DATA, type_name="images", persona="member_a"):
        """Uploads `data` to blob `path` of `sym` on both; each must answer 200."""
        answers = self.send("PUT", "/artifacts/%s/{id:%s}/%s" % (type_name, sym, path), persona,
                            headers={"Content-Type": "application/octet-stream"}, raw=data)
        for server, r in zip(self.servers, answers):
            if r.status != 200:
                raise SystemExit("fixture blob %s/%s on %s: %d %s"
                                 % (sym, path, server.name, r.status, r.body[:300]))

    def patch(self, case, sym, ops, persona="member_a", type_name="images", **kw):
        return self.check(case, "PATCH", "/artifacts/%s/{id:%s}" % (type_name, sym), persona,
                          headers=PATCH_CT, raw=json.dumps(ops).encode(), **kw)


def corpus_versions(h):
    for persona in ALL:
        for p in ("/", "/versions"):
            h.check("versions: GET %s [%s]" % (p, persona), "GET", p, persona)
    for value in ("artifact 1.0", "artifact 1.1", "artifact 1.9", "artifact 2.0", "artifact bogus",
                  "image 1.0", "artifact latest"):
        h.check("versions: header %s" % value, "GET", "/artifacts/images", "member_a",
                headers={"OpenStack-API-Version": value})


def corpus_schemas(h):
    for persona in ALL:
        h.check("schemas: every type [%s]" % persona, "GET", "/schemas", persona)
        for t in TYPES + ["bogus"]:
            h.check("schemas: %s [%s]" % (t, persona), "GET", "/schemas/" + t, persona)


def corpus_create(h):
    for t in TYPES + ["bogus"]:
        for persona in ALL:
            h.check("create: %s [%s]" % (t, persona), "POST", "/artifacts/" + t, persona,
                    body={"name": "c-%s-%s" % (t, persona)}, bind="c-%s-%s" % (t, persona))
    bodies = {
        "no name": {},
        "empty name": {"name": ""},
        "long name": {"name": "n" * 256},
        "name not string": {"name": 5},
        "semver": {"name": "v1", "version": "1.2.3-beta.1+build"},
        "short version": {"name": "v2", "version": "1"},
        "bad version": {"name": "v3", "version": "bogus"},
        "unknown field": {"name": "u", "bogus": 1},
        "wrong type": {"name": "w", "min_ram": "x"},
        "negative": {"name": "w2", "min_ram": -1},
        "bad enum": {"name": "w3", "disk_format": "floppy"},
        "tags": {"name": "t", "tags": ["a", "b"]},
        "tags not list": {"name": "t2", "tags": "a"},
        "metadata": {"name": "m", "metadata": {"k": "v"}},
        "metadata not strings": {"name": "m2", "metadata": {"k": 1}},
        "public": {"name": "p", "visibility": "public"},
        "status": {"name": "s", "status": "active"},
        "id": {"name": "i", "id": OTHER_UUID},
        "owner": {"name": "o", "owner": "project-b"},
        "blob": {"name": "b", "image": {"url": "http://x"}},
        "description": {"name": "d", "description": "x" * 5000},
    }
    for what, body in bodies.items():
        h.check("create: %s [member_a]" % what, "POST", "/artifacts/images", "member_a", body=body)
    h.check("create: duplicate [member_a]", "POST", "/artifacts/images", "member_a", body={"name": "t"})
    h.check("create: duplicate other version [member_a]", "POST", "/artifacts/images", "member_a",
            body={"name": "t", "version": "1.0.0"})
    h.check("create: duplicate in project b [member_b]", "POST", "/artifacts/images", "member_b",
            body={"name": "t"})
    for what, raw, ct in (("array", b"[]", "application/json"), ("bad json", b"{", "application/json"),
                          ("text/plain", b'{"name": "x"}', "text/plain"), ("no type", b'{"name": "y"}', None)):
        headers = {"Content-Type": ct} if ct else {}
        h.check("create: %s [member_a]" % what, "POST", "/artifacts/images", "member_a", headers=headers,
                raw=raw)


def corpus_show_delete(h):
    h.artifact("s-private")
    for persona in ALL:
        h.check("show: private [%s]" % persona, "GET", "/artifacts/images/{id:s-private}", persona)
        h.check("show: through all [%s]" % persona, "GET", "/artifacts/all/{id:s-private}", persona)
        h.check("show: wrong type [%s]" % persona, "GET", "/artifacts/heat_templates/{id:s-private}", persona)
    for what, p in (("unknown", "/artifacts/images/" + OTHER_UUID), ("non-uuid", "/artifacts/images/abc"),
                    ("unknown type", "/artifacts/bogus/{id:s-private}")):
        h.check("show: %s [member_a]" % what, "GET", p, "member_a")
    for persona in ALL:
        sym = h.artifact("d-%s" % persona)
        h.check("delete: [%s]" % persona, "DELETE", "/artifacts/images/{id:%s}" % sym, persona)
        h.check("delete: after [%s]" % persona, "GET", "/artifacts/images/{id:%s}" % sym, "admin")
    h.check("delete: unknown [admin]", "DELETE", "/artifacts/images/" + OTHER_UUID, "admin")


PATCH_FIELDS = {
    "name": "renamed", "version": "2.0.0", "description": "d", "tags": ["x"], "metadata": {"k": "v"},
    "visibility": "public", "status": "active", "container_format": "bare", "min_ram": 5,
    "id": OTHER_UUID, "owner": "project-b", "created_at": "2020-01-01T00:00:00Z", "image": None,
    "metadata/k": "v", "tags/-": "y", "bogus": 1,
}


def corpus_patch(h):
    for field, value in PATCH_FIELDS.items():
        for op in ("add", "replace", "remove"):
            for persona in ("member_a", "reader_a", "member_b", "admin"):
                sym = h.artifact("p-%s-%s-%s" % (field, op, persona), description="x", tags=["t"],
                                 metadata={"k": "w"})
                change = {"op": op, "path": "/" + field}
                if op != "remove":
                    change["value"] = value
                h.patch("patch: %s %s [%s]" % (op, field, persona), sym, [change], persona)
    sym = h.artifact("p-malformed")
    malformed = {"bad json": b"[{", "object": b'{"op":"add","path":"/name","value":"x"}', "empty": b"[]",
                 "op move": b'[{"op":"move","from":"/name","path":"/description"}]',
                 "op test": b'[{"op":"test","path":"/name","value":"p-malformed"}]',
                 "no value": b'[{"op":"replace","path":"/name"}]', "nested": b'[{"op":"add","path":"/a/b/c","value":1}]'}
    for what, raw in malformed.items():
        h.check("patch: malformed %s [member_a]" % what, "PATCH", "/artifacts/images/{id:%s}" % sym,
                "member_a", headers=PATCH_CT, raw=raw)
    for what, ct in (("json", "application/json"), ("merge", "application/merge-patch+json"), ("none", None)):
        headers = {"Content-Type": ct} if ct else {}
        h.check("patch: media type %s [member_a]" % what, "PATCH", "/artifacts/images/{id:%s}" % sym,
                "member_a", headers=headers, raw=b'[{"op":"replace","path":"/name","value":"z"}]')
    h.check("patch: unknown [member_a]", "PATCH", "/artifacts/images/" + OTHER_UUID, "member_a",
            headers=PATCH_CT, raw=b'[{"op":"replace","path":"/name","value":"z"}]')


def corpus_lifecycle(h):
    """Activation needs the type's required fields; deactivation, reactivation and publishing
    are for admins; what stays mutable once active."""
    sym = h.artifact("l-img")
    h.patch("lifecycle: activate without blob [member_a]", sym, [{"op": "replace", "path": "/status",
                                                                  "value": "active"}])
    h.blob(sym, "image")
    h.patch("lifecycle: activate without formats [member_a]", sym,
            [{"op": "replace", "path": "/status", "value": "active"}])
    h.patch("lifecycle: formats [member_a]", sym, [{"op": "replace", "path": "/container_format", "value": "bare"},
                                                   {"op": "replace", "path": "/disk_format", "value": "raw"}])
    h.patch("lifecycle: activate [member_a]", sym, [{"op": "replace", "path": "/status", "value": "active"}])
    for field, value in (("name", "n2"), ("description", "d2"), ("tags", ["t2"]), ("min_ram", 7),
                         ("metadata", {"a": "b"}), ("version", "3.0.0")):
        h.patch("lifecycle: active %s [member_a]" % field, sym, [{"op": "replace", "path": "/" + field,
                                                                   "value": value}])
    h.check("lifecycle: blob on active [member_a]", "PUT", "/artifacts/images/{id:%s}/image" % sym, "member_a",
            headers={"Content-Type": "application/octet-stream"}, raw=DATA)
    for persona in ("member_a", "admin"):
        h.patch("lifecycle: publish [%s]" % persona, sym, [{"op": "replace", "path": "/visibility",
                                                            "value": "public"}], persona)
    for persona in ALL:
        h.check("lifecycle: public show [%s]" % persona, "GET", "/artifacts/images/{id:%s}" % sym, persona)
        h.check("lifecycle: public download [%s]" % persona, "GET", "/artifacts/images/{id:%s}/image" % sym,
                persona)
    for persona in ("member_a", "admin"):
        h.patch("lifecycle: deactivate [%s]" % persona, sym, [{"op": "replace", "path": "/status",
                                                               "value": "deactivated"}], persona)
    h.check("lifecycle: deactivated download [member_a]", "GET", "/artifacts/images/{id:%s}/image" % sym,
            "member_a")
    h.check("lifecycle: deactivated download [admin]", "GET", "/artifacts/images/{id:%s}/image" % sym, "admin")
    for persona in ("member_a", "admin"):
        h.patch("lifecycle: reactivate [%s]" % persona, sym, [{"op": "replace", "path": "/status",
                                                               "value": "active"}], persona)
    h.patch("lifecycle: back to drafted [admin]", sym, [{"op": "replace", "path": "/status", "value": "drafted"}],
            "admin")
    h.check("lifecycle: delete public [member_a]", "DELETE", "/artifacts/images/{id:%s}" % sym, "member_a")
    env = h.artifact("l-env", type_name="heat_environments")
    h.patch("lifecycle: activate env without blob [member_a]", env,
            [{"op": "replace", "path": "/status", "value": "active"}], type_name="heat_environments")


def corpus_blobs(h):
    sym = h.artifact("b-1")
    url = "/artifacts/images/{id:%s}/image" % sym
    octet = {"Content-Type": "application/octet-stream"}
    for persona in ("member_b", "reader_a", "anon"):
        h.check("blobs: upload [%s]" % persona, "PUT", url, persona, headers=octet, raw=DATA)
    h.check("blobs: upload [member_a]", "PUT", url, "member_a", headers=octet, raw=DATA)
    for persona in ALL:
        h.check("blobs: download [%s]" % persona, "GET", url, persona)
    h.check("blobs: replace [member_a]", "PUT", url, "member_a", headers=octet, raw=DATA + b"more")
    h.check("blobs: download replaced [member_a]", "GET", url, "member_a")
    h.check("blobs: upload to a field [member_a]", "PUT", "/artifacts/images/{id:%s}/name" % sym, "member_a",
            headers=octet, raw=DATA)
    h.check("blobs: upload to nothing [member_a]", "PUT", "/artifacts/images/{id:%s}/bogus" % sym, "member_a",
            headers=octet, raw=DATA)
    h.check("blobs: upload to unknown [member_a]", "PUT", "/artifacts/images/%s/image" % OTHER_UUID,
            "member_a", headers=octet, raw=DATA)
    h.check("blobs: empty [member_a]", "PUT", url, "member_a", headers=octet, raw=b"")
    h.check("blobs: text/plain [member_a]", "PUT", url, "member_a", headers={"Content-Type": "text/plain"},
            raw=DATA)
    h.check("blobs: delete internal [member_a]", "DELETE", url, "member_a")
    ext = h.artifact("b-ext")
    eurl = "/artifacts/images/{id:%s}/image" % ext
    location = {"Content-Type": "application/vnd+openstack.glare-custom-location+json"}
    h.check("blobs: external [member_a]", "PUT", eurl, "member_a", headers=location,
            body={"url": "http://127.0.0.1:1/disk", "md5": "0" * 32, "sha1": "0" * 40, "sha256": "0" * 64})
    h.check("blobs: external no url [member_a]", "PUT", eurl, "member_a", headers=location, body={"md5": "x"})
    h.check("blobs: external download [member_a]", "GET", eurl, "member_a")
    h.check("blobs: external delete [member_b]", "DELETE", eurl, "member_b")
    h.check("blobs: external delete [member_a]", "DELETE", eurl, "member_a")
    h.check("blobs: after external delete [member_a]", "GET", eurl, "member_a")
    tpl = h.artifact("b-tpl", type_name="heat_templates")
    turl = "/artifacts/heat_templates/{id:%s}" % tpl
    h.check("blobs: dict key [member_a]", "PUT", turl + "/nested_templates/a.yaml", "member_a", headers=octet,
            raw=DATA)
    h.check("blobs: dict key again [member_a]", "PUT", turl + "/nested_templates/a.yaml", "member_a",
            headers=octet, raw=DATA)
    h.check("blobs: dict second key [member_a]", "PUT", turl + "/nested_templates/b.yaml", "member_a",
            headers=octet, raw=DATA)
    h.check("blobs: dict key download [member_a]", "GET", turl + "/nested_templates/a.yaml", "member_a")
    h.check("blobs: dict missing key [member_a]", "GET", turl + "/nested_templates/zz", "member_a")
    h.check("blobs: dict without key [member_a]", "PUT", turl + "/nested_templates", "member_a",
            headers=octet, raw=DATA)
    h.check("blobs: show with blobs [member_a]", "GET", turl, "member_a")


def corpus_list(h):
    t = "tosca_templates"
    for name, version, tags, meta in (("la", "1.0.0", ["a"], {"k": "1"}), ("la", "2.0.0", ["a", "b"], {"k": "2"}),
                                      ("la", "1.10.0", ["b"], {}), ("lb", "0.1.0", [], {"k": "1"}),
                                      ("lc", "3.0.0-rc.1", ["c"], {})):
        h.artifact("%s-%s" % (name, version), type_name=t, name=name, version=version, tags=tags, metadata=meta)
        time.sleep(1.05)   # distinct created_at (second precision) for the default order
    queries = ["", "?name=la", "?name=eq:la", "?name=in:la,lb", "?name=neq:la", "?name=like:l%25",
               "?version=latest", "?name=la&version=latest", "?version=gt:1.0.0", "?version=gte:1.10.0",
               "?version=lt:2.0.0", "?version=1.10", "?version=bogus", "?tags=a", "?tags=a,b", "?tags-any=a,c",
               "?metadata.k=1", "?metadata.k=eq:2", "?sort=name:asc,version:desc", "?sort=version",
               "?sort=version:desc", "?sort=bogus", "?sort=name:up", "?limit=2", "?limit=0", "?limit=-1",
               "?limit=abc", "?limit=1001", "?marker=" + OTHER_UUID, "?marker=abc", "?status=drafted",
               "?status=active", "?visibility=private", "?owner=project-a", "?bogus=1", "?name=or:la&name=or:lb",
               "?name=and:la", "?id=in:{id:lb-0.1.0}", "?created_at=gt:2000-01-01T00:00:00Z",
               "?sort=name:asc&limit=2"]
    for persona in ALL:
        for q in queries:
            ordered = "sort=" in q
            h.check("list: %s [%s]" % (q or "(none)", persona), "GET", "/artifacts/%s%s" % (t, q), persona,
                    ordered=ordered)
    r, o = h.check("list: page 1 [member_a]", "GET", "/artifacts/%s?sort=name:asc,version:asc&limit=2" % t,
                   "member_a", ordered=True)
    for server, resp in zip(h.servers, (r, o)):
        j = resp.json() or {}
        if "next" in j:
            server.bind("next-page", j["next"])
    h.check("list: all type [member_a]", "GET", "/artifacts/all?name=la&sort=version:asc", "member_a", ordered=True)


def corpus_quotas(h):
    for persona in ALL:
        for p in ("/quotas", "/project-quotas", "/project-quotas?project_id=project-a"):
            h.check("quotas: GET %s [%s]" % (p, persona), "GET", p, persona)
    body = [{"project_id": "project-q", "project_quotas": [{"quota_name": "max_artifacts", "quota_value": 5}]}]
    for persona in ("member_a", "admin"):
        h.check("quotas: PUT [%s]" % persona, "PUT", "/quotas", persona, body=body)
    h.check("quotas: after PUT [admin]", "GET", "/quotas", "admin")
    h.check("quotas: PUT bad [admin]", "PUT", "/quotas", "admin", body={"x": 1})
    h.check("quotas: PUT unknown quota [admin]", "PUT", "/quotas", "admin",
            body=[{"project_id": "project-q", "project_quotas": [{"quota_name": "bogus", "quota_value": 5}]}])


def corpus_methods(h):
    h.artifact("m-1")
    for p in ("/", "/versions", "/schemas", "/schemas/images", "/artifacts/images", "/artifacts/images/{id:m-1}",
              "/artifacts/images/{id:m-1}/image", "/quotas", "/nope"):
        for m in ("OPTIONS", "POST", "PUT", "PATCH", "DELETE", "FOO"):
            h.check("methods: %s %s [member_a]" % (m, p), m, p, "member_a",
                    headers={"Content-Type": "application/json"}, raw=b"")


CORPUS = [corpus_versions, corpus_schemas, corpus_create, corpus_show_delete, corpus_patch, corpus_lifecycle,
          corpus_blobs, corpus_list, corpus_quotas, corpus_methods]


if __name__ == "__main__":
    sys.exit(parity.main(__doc__, CORPUS, Glare, "glare parity", "docs/glare.md"))
