//! `glance-replicator` between two real `glance-all-in-one` processes (each with its own data
//! directory and port), over HTTP: size, dump/load, livecopy, compare, tokens and bad
//! arguments. Build the binaries first:
//! `cargo build --bins -p glance-replicator -p glance-all-in-one`. Over 600 lines on purpose:
//! every subcommand's tests share the two-server harness at the top.

mod common;

use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use futures::FutureExt;
use serde_json::{json, Value};

/// A `glance-all-in-one` on a free port with a data directory of its own.
struct Node {
    child: Child,
    dir: tempfile::TempDir,
    url: String,
    /// `127.0.0.1:<port>`, as the replicator takes it.
    addr: String,
    http: reqwest::Client,
    token: Option<String>,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- log of {} ---\n{}",
                self.addr,
                std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
            );
        }
    }
}

impl Node {
    /// With no auth (everyone is admin).
    async fn start() -> Node {
        Self::start_with(None).await
    }

    /// With `auth_strategy = tokens` and a token file making `token` an admin.
    async fn start_with(token: Option<&str>) -> Node {
        Self::start_env(token, &[]).await
    }

    /// With these extra `GLANCE__...` settings too.
    async fn start_env(token: Option<&str>, env: &[(&str, &str)]) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let port = common::free_port();
        let addr = format!("127.0.0.1:{port}");
        let log = std::fs::File::create(dir.path().join("log")).unwrap();
        let mut cmd = Command::new(common::bin("glance-all-in-one"));
        cmd.arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--bind")
            .arg(&addr)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        match token {
            Some(t) => {
                let file = dir.path().join("tokens");
                std::fs::write(
                    &file,
                    format!(
                        "{} root admin-project admin\n",
                        glance_api::tokens::TokenFile::digest(t)
                    ),
                )
                .unwrap();
                cmd.args(["--auth-strategy", "tokens"])
                    .env("GLANCE__GLANCE_AUTH__TOKEN_FILE", &file);
            }
            None => {
                cmd.args(["--auth-strategy", "noauth"]);
            }
        }
        let child = cmd.spawn().expect("spawn glance-all-in-one");
        let url = format!("http://{addr}");
        common::wait_until(
            &format!("glance-all-in-one on {addr}"),
            Duration::from_secs(30),
            || reqwest::get(format!("{url}/versions")).map(|r| r.is_ok()),
        )
        .await;
        Node {
            child,
            dir,
            url,
            addr,
            http: reqwest::Client::new(),
            token: token.map(str::to_owned),
        }
    }

    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let req = self.http.request(method, format!("{}{path}", self.url));
        match &self.token {
            Some(t) => req.header("x-auth-token", t),
            None => req,
        }
    }

    /// Creates an image from `body` and, with `data`, uploads it; returns the image's id.
    async fn image(&self, body: Value, data: Option<Vec<u8>>) -> String {
        let res = self
            .req(reqwest::Method::POST, "/v2/images")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
        let id = res.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        if let Some(data) = data {
            let res = self
                .req(reqwest::Method::PUT, &format!("/v2/images/{id}/file"))
                .header("content-type", "application/octet-stream")
                .body(data)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 204, "{}", res.text().await.unwrap());
        }
        id
    }

    /// The image, or None on 404.
    async fn show(&self, id: &str) -> Option<Value> {
        let res = self
            .req(reqwest::Method::GET, &format!("/v2/images/{id}"))
            .send()
            .await
            .unwrap();
        if res.status() == 404 {
            return None;
        }
        assert_eq!(res.status(), 200);
        Some(res.json().await.unwrap())
    }

    async fn data(&self, id: &str) -> Vec<u8> {
        let res = self
            .req(reqwest::Method::GET, &format!("/v2/images/{id}/file"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        res.bytes().await.unwrap().to_vec()
    }

    async fn patch(&self, id: &str, ops: Value) {
        let res = self
            .req(reqwest::Method::PATCH, &format!("/v2/images/{id}"))
            .header(
                "content-type",
                "application/openstack-images-v2.1-json-patch",
            )
            .body(ops.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    }
}

/// Runs the replicator with `args` (and no token from the environment).
async fn replicator(args: &[&str]) -> Output {
    replicator_env(args, &[]).await
}

async fn replicator_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(common::bin("glance-replicator"));
    cmd.args(args)
        .env_remove("GLANCE__DEFAULT__SOURCETOKEN")
        .env_remove("GLANCE__DEFAULT__TARGETTOKEN")
        .envs(env.iter().copied())
        .stdin(Stdio::null());
    tokio::task::spawn_blocking(move || cmd.output().expect("run glance-replicator"))
        .await
        .unwrap()
}

fn out(o: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Bytes that are not all alike, so a reordering or truncation shows.
fn bytes(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| {
            (i as u32)
                .wrapping_mul(2_654_435_761)
                .rotate_left(seed as u32) as u8
        })
        .collect()
}

fn raw(name: &str) -> Value {
    json!({"name": name, "disk_format": "raw", "container_format": "bare"})
}

/// The fields a replica must share with its original.
fn assert_replica(src: &Value, dst: &Value) {
    for key in [
        "id",
        "name",
        "status",
        "size",
        "checksum",
        "os_hash_algo",
        "os_hash_value",
        "disk_format",
        "container_format",
        "visibility",
        "min_ram",
        "min_disk",
        "protected",
        "os_hidden",
        "owner",
    ] {
        assert_eq!(src[key], dst[key], "{key} differs:\n{src}\n{dst}");
    }
    let tags = |v: &Value| {
        let mut t: Vec<String> = v["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_owned())
            .collect();
        t.sort();
        t
    };
    assert_eq!(tags(src), tags(dst));
}

#[tokio::test(flavor = "multi_thread")]
async fn size_sums_the_active_images() {
    // Pages of one image: the replicator must follow `next`.
    let src = Node::start_env(None, &[("GLANCE__DEFAULT__API_LIMIT_MAX", "1")]).await;
    src.image(raw("a"), Some(bytes(1000, 1))).await;
    src.image(raw("b"), Some(bytes(3000, 2))).await;
    src.image(raw("queued"), None).await;
    let o = replicator(&["size", &src.addr]).await;
    assert!(o.status.success(), "{}", out(&o));
    assert!(
        stdout(&o).contains("Total size is 4000 bytes (3.9 KiB) across 2 images"),
        "{}",
        out(&o)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dump_then_load_recreates_the_images_with_their_ids_and_bytes() {
    let src = Node::start().await;
    let dst = Node::start().await;
    let data_a = bytes(300_000, 3);
    let a = src
        .image(
            json!({"name": "cirros", "disk_format": "raw", "container_format": "bare",
                   "visibility": "public", "min_ram": 512, "min_disk": 2,
                   "tags": ["x", "y"], "hw_disk_bus": "scsi", "os_distro": "cirros"}),
            Some(data_a.clone()),
        )
        .await;
    let b = src
        .image(
            json!({"name": "hidden", "disk_format": "raw", "container_format": "bare",
                   "os_hidden": true, "visibility": "private"}),
            Some(bytes(5000, 4)),
        )
        .await;
    let q = src.image(raw("no-data"), None).await;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    let o = replicator(&["dump", &src.addr, path]).await;
    assert!(o.status.success(), "{}", out(&o));
    assert!(stdout(&o).contains("Dumped 3 images"), "{}", out(&o));
    for f in [&a, &b, &q] {
        assert!(dir.path().join(f).is_file(), "no metadata file for {f}");
    }
    assert_eq!(
        std::fs::read(dir.path().join(format!("{a}.img"))).unwrap(),
        data_a
    );
    assert!(dir.path().join(format!("{b}.img")).is_file());
    assert!(
        !dir.path().join(format!("{q}.img")).exists(),
        "a queued image has no data"
    );
    // An existing metadata file means skip.
    let o = replicator(&["dump", &src.addr, path]).await;
    assert!(stdout(&o).contains("Dumped 0 images"), "{}", out(&o));
    assert!(stdout(&o).contains("3 already there"), "{}", out(&o));

    let o = replicator(&["load", &dst.addr, path]).await;
    assert!(o.status.success(), "{}", out(&o));
    assert!(
        stdout(&o).contains("2 created, 0 updated, 0 unchanged, 1 skipped, 0 failed"),
        "{}",
        out(&o)
    );
    for id in [&a, &b] {
        let (s, d) = (src.show(id).await.unwrap(), dst.show(id).await.unwrap());
        assert_replica(&s, &d);
    }
    let copy = dst.show(&a).await.unwrap();
    assert_eq!(copy["hw_disk_bus"], "scsi");
    assert_eq!(copy["os_distro"], "cirros");
    assert_eq!(copy["min_ram"], 512);
    assert_eq!(copy["visibility"], "public");
    assert_eq!(dst.data(&a).await, data_a);
    assert!(dst.show(&q).await.is_none(), "absent and no data: skipped");

    // Loading again changes nothing; a changed field in the dump is patched onto the target.
    let o = replicator(&["load", &dst.addr, path]).await;
    assert!(
        stdout(&o).contains("0 created, 0 updated, 2 unchanged, 1 skipped"),
        "{}",
        out(&o)
    );
    let meta = dir.path().join(&a);
    let mut doc: Value = serde_json::from_slice(&std::fs::read(&meta).unwrap()).unwrap();
    doc["os_distro"] = json!("debian");
    doc["min_ram"] = json!(1024);
    std::fs::write(&meta, doc.to_string()).unwrap();
    let o = replicator(&["load", &dst.addr, path]).await;
    assert!(o.status.success(), "{}", out(&o));
    assert!(
        stdout(&o).contains("0 created, 1 updated, 1 unchanged"),
        "{}",
        out(&o)
    );
    let copy = dst.show(&a).await.unwrap();
    assert_eq!(copy["os_distro"], "debian");
    assert_eq!(copy["min_ram"], 1024);
}

#[tokio::test(flavor = "multi_thread")]
async fn livecopy_creates_updates_and_then_has_nothing_to_do() {
    let src = Node::start_env(None, &[("GLANCE__DEFAULT__API_LIMIT_MAX", "2")]).await;
    let dst = Node::start().await;
    let data_a = bytes(1_000_000, 5);
    let a = src
        .image(
            json!({"name": "a", "disk_format": "raw", "container_format": "bare",
                   "tags": ["t"], "hw_rng_model": "virtio", "min_ram": 64}),
            Some(data_a.clone()),
        )
        .await;
    let b = src.image(raw("b"), Some(bytes(4096, 6))).await;
    let q = src.image(raw("queued"), None).await;

    // -c: small chunks do not change the bytes.
    let o = replicator(&["-c", "4096", "livecopy", &src.addr, &dst.addr]).await;
    assert!(o.status.success(), "{}", out(&o));
    assert!(
        stdout(&o).contains("2 created, 0 updated, 0 unchanged, 1 skipped, 0 failed"),
        "{}",
        out(&o)
    );
    assert!(stdout(&o).contains(&format!("skipped {q} (queued): source image is queued")));
    assert!(dst.show(&q).await.is_none());
    for id in [&a, &b] {
        assert_replica(&src.show(id).await.unwrap(), &dst.show(id).await.unwrap());
    }
    assert_eq!(dst.data(&a).await, data_a);
    assert_eq!(dst.show(&a).await.unwrap()["hw_rng_model"], "virtio");

    // A property changed at the source, one added on the target only: both are fixed.
    src.patch(
        &a,
        json!([{"op": "replace", "path": "/hw_rng_model", "value": "none"},
               {"op": "add", "path": "/os_version", "value": "12"}]),
    )
    .await;
    dst.patch(&b, json!([{"op": "add", "path": "/stray", "value": "x"}]))
        .await;
    let o = replicator(&["livecopy", &src.addr, &dst.addr]).await;
    assert!(o.status.success(), "{}", out(&o));
    assert!(
        stdout(&o).contains("0 created, 2 updated, 0 unchanged, 1 skipped"),
        "{}",
        out(&o)
    );
    assert!(stdout(&o).contains(&format!("updated {a} (a): hw_rng_model, os_version")));
    let copy = dst.show(&a).await.unwrap();
    assert_eq!(copy["hw_rng_model"], "none");
    assert_eq!(copy["os_version"], "12");
    assert!(dst.show(&b).await.unwrap().get("stray").is_none());

    let o = replicator(&["livecopy", &src.addr, &dst.addr]).await;
    assert!(o.status.success(), "{}", out(&o));
    assert!(
        stdout(&o).contains("0 created, 0 updated, 2 unchanged, 1 skipped, 0 failed"),
        "{}",
        out(&o)
    );
    assert!(!stdout(&o).contains("updated "), "{}", out(&o));

    // A copy an earlier run created but never sent data to (queued on the target) is
    // finished, not skipped.
    let data_c = bytes(70_000, 12);
    let c = src.image(raw("c"), Some(data_c.clone())).await;
    dst.image(
        json!({"id": c, "name": "c", "disk_format": "raw", "container_format": "bare"}),
        None,
    )
    .await;
    let o = replicator(&["livecopy", &src.addr, &dst.addr]).await;
    assert!(o.status.success(), "{}", out(&o));
    assert!(
        stdout(&o).contains(&format!(
            "created {c} (c) (data sent to the queued target image)"
        )),
        "{}",
        out(&o)
    );
    assert_replica(&src.show(&c).await.unwrap(), &dst.show(&c).await.unwrap());
    assert_eq!(dst.data(&c).await, data_c);
}

#[tokio::test(flavor = "multi_thread")]
async fn metaonly_copies_metadata_and_creates_nothing() {
    let src = Node::start().await;
    let dst = Node::start().await;
    let a = src.image(raw("a"), Some(bytes(2048, 7))).await;

    let o = replicator(&["--metaonly", "livecopy", &src.addr, &dst.addr]).await;
    assert!(o.status.success(), "{}", out(&o));
    assert!(stdout(&o).contains("0 created, 0 updated, 0 unchanged, 1 skipped"));
    assert!(dst.show(&a).await.is_none(), "--metaonly creates nothing");

    let o = replicator(&["livecopy", &src.addr, &dst.addr]).await;
    assert!(stdout(&o).contains("1 created"), "{}", out(&o));
    src.patch(
        &a,
        json!([{"op": "replace", "path": "/name", "value": "renamed"}]),
    )
    .await;
    let o = replicator(&["-m", "livecopy", &src.addr, &dst.addr]).await;
    assert!(stdout(&o).contains("0 created, 1 updated"), "{}", out(&o));
    assert_eq!(dst.show(&a).await.unwrap()["name"], "renamed");

    let dir = tempfile::tempdir().unwrap();
    let o = replicator(&["-m", "dump", &src.addr, dir.path().to_str().unwrap()]).await;
    assert!(o.status.success(), "{}", out(&o));
    assert!(dir.path().join(&a).is_file());
    assert!(!dir.path().join(format!("{a}.img")).exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn compare_names_missing_and_differing_images() {
    let src = Node::start().await;
    let dst = Node::start().await;
    let a = src.image(raw("a"), Some(bytes(100, 8))).await;
    let b = src.image(raw("b"), Some(bytes(200, 9))).await;
    let o = replicator(&["livecopy", &src.addr, &dst.addr]).await;
    assert!(o.status.success(), "{}", out(&o));
    let o = replicator(&["compare", &src.addr, &dst.addr]).await;
    assert!(
        stdout(&o).contains("0 missing, 0 differ, 2 identical"),
        "{}",
        out(&o)
    );

    let c = src.image(raw("c"), Some(bytes(300, 10))).await;
    src.patch(
        &a,
        json!([{"op": "replace", "path": "/min_disk", "value": 5},
               {"op": "add", "path": "/hw_vif_model", "value": "e1000"}]),
    )
    .await;
    let o = replicator(&["compare", &src.addr, &dst.addr]).await;
    assert!(o.status.success(), "compare exits 0: {}", out(&o));
    let text = stdout(&o);
    assert!(text.contains(&format!("{c} (c): missing")), "{}", out(&o));
    assert!(
        text.contains(&format!("{a} (a): differs: hw_vif_model, min_disk")),
        "{}",
        out(&o)
    );
    assert!(!text.contains(&b), "{}", out(&o));
    assert!(
        text.contains("1 missing, 1 differ, 1 identical"),
        "{}",
        out(&o)
    );
    // compare changed nothing.
    assert!(dst.show(&c).await.is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_go_to_their_own_server() {
    let src = Node::start_with(Some("tok-src")).await;
    let dst = Node::start_with(Some("tok-dst")).await;
    let a = src.image(raw("a"), Some(bytes(777, 11))).await;
    let (s, d) = (src.addr.as_str(), dst.addr.as_str());

    let o = replicator(&["livecopy", s, d]).await;
    assert!(!o.status.success(), "{}", out(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("401"),
        "{}",
        out(&o)
    );
    // -t sets both: right for the source, wrong for the target.
    let o = replicator(&["-t", "tok-src", "livecopy", s, d]).await;
    assert!(!o.status.success(), "{}", out(&o));
    assert!(stdout(&o).contains("1 failed"), "{}", out(&o));
    assert!(dst.show(&a).await.is_none());

    let o = replicator(&[
        "--sourcetoken",
        "tok-src",
        "--targettoken",
        "tok-dst",
        "livecopy",
        s,
        d,
    ])
    .await;
    assert!(o.status.success(), "{}", out(&o));
    assert!(stdout(&o).contains("1 created"), "{}", out(&o));
    let (s_img, d_img) = (src.show(&a).await.unwrap(), dst.show(&a).await.unwrap());
    assert_replica(&s_img, &d_img);
    assert_eq!(d_img["owner"], "admin-project");

    // Glance's config-file options, and their environment variables.
    let conf = src.dir.path().join("replicator.conf");
    std::fs::write(
        &conf,
        "[DEFAULT]\nsourcetoken = tok-src\ntargettoken = tok-dst\n",
    )
    .unwrap();
    let o = replicator(&["--config-file", conf.to_str().unwrap(), "compare", s, d]).await;
    assert!(o.status.success(), "{}", out(&o));
    assert!(
        stdout(&o).contains("0 missing, 0 differ, 1 identical"),
        "{}",
        out(&o)
    );
    let o = replicator_env(&["size", d], &[("GLANCE__DEFAULT__TARGETTOKEN", "tok-dst")]).await;
    assert!(o.status.success(), "{}", out(&o));
    assert!(
        stdout(&o).contains("Total size is 777 bytes"),
        "{}",
        out(&o)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_arguments_print_the_commands_help_and_fail() {
    let stderr = |o: &Output| String::from_utf8_lossy(&o.stderr).into_owned();
    let o = replicator(&["livecopy", "127.0.0.1:9292"]).await;
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains(
            "Usage: glance-replicator [options] livecopy <fromserver:port> <toserver:port>"
        ),
        "{}",
        out(&o)
    );
    assert!(
        stderr(&o).contains("ERROR: livecopy takes 2 argument(s)"),
        "{}",
        out(&o)
    );

    let o = replicator(&["size", "no-port-here"]).await;
    assert!(!o.status.success());
    assert!(stderr(&o).contains("Usage: glance-replicator [options] size <server:port>"));
    assert!(
        stderr(&o).contains("ERROR: 'no-port-here' is not a valid host:port"),
        "{}",
        out(&o)
    );

    let o = replicator(&["dump", "localhost:99999", "/tmp"]).await;
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("ERROR: 'localhost:99999'"),
        "{}",
        out(&o)
    );

    let o = replicator(&["frobnicate"]).await;
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("ERROR: Unknown command: frobnicate"),
        "{}",
        out(&o)
    );
    assert!(stderr(&o).contains("livecopy"), "the command list is shown");

    let o = replicator(&[]).await;
    assert!(!o.status.success());

    let o = replicator(&["help", "load"]).await;
    assert!(o.status.success(), "{}", out(&o));
    assert!(stdout(&o).contains("Usage: glance-replicator [options] load <server:port> <path>"));

    // A server that is not there is an error too.
    let port = common::free_port();
    let o = replicator(&["size", &format!("127.0.0.1:{port}")]).await;
    assert!(!o.status.success(), "{}", out(&o));
    assert!(stderr(&o).contains("ERROR: cannot reach"), "{}", out(&o));

    // A dump into a directory that is not there.
    let o = replicator(&["dump", &format!("127.0.0.1:{port}"), "/nonexistent/dir"]).await;
    assert!(!o.status.success());
}
