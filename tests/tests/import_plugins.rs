//! Glance's import plugins (`[image_import_opts] image_import_plugins`) over real HTTP, with
//! real tools: qcow2, vmdk and vhdx images made by `qemu-img` converted on glance-direct and
//! web-download imports and checked with `qemu-img info` in the store; a qcow2 with a
//! backing file refused; gzip, zip and LHA archives (made by `gzip`, Python's `zipfile` and
//! by hand) and a decompression bomb; injected properties for members and not for ignored roles.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use glance_tests::{digests, spawn_app_with, TestApp};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CONVERT: (&str, &str, &str) = (
    "image_import_opts",
    "image_import_plugins",
    "['image_conversion']",
);

/// 4 MiB of disk: data, a hole of zeros, more data.
fn disk() -> Vec<u8> {
    let mut data: Vec<u8> = (0..4usize << 20).map(|i| (i * 31 % 251) as u8).collect();
    data[1 << 20..2 << 20].fill(0);
    data
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("tool runs");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `raw` written to `dir` and converted to `format` by qemu-img; the converted bytes.
fn made_with_qemu(dir: &Path, raw: &[u8], format: &str) -> Vec<u8> {
    let src = dir.join("disk.raw");
    std::fs::write(&src, raw).unwrap();
    let out = dir.join(format!("disk.{format}"));
    run(Command::new("qemu-img")
        .args(["convert", "-f", "raw", "-O", format])
        .arg(&src)
        .arg(&out));
    std::fs::read(out).unwrap()
}

fn qemu_info(path: &Path) -> Value {
    let out = Command::new("qemu-img")
        .args(["info", "--output=json"])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).unwrap()
}

async fn new_image(app: &TestApp, disk_format: &str, container_format: &str) -> String {
    let img = app
        .create_image(json!({"name": "plug", "disk_format": disk_format,
            "container_format": container_format}))
        .await;
    img["id"].as_str().unwrap().to_owned()
}

/// Stages `data` and imports it with glance-direct; the finished task and the image.
async fn direct(app: &TestApp, id: &str, data: Vec<u8>) -> (Value, Value) {
    let res = app
        .client
        .put(app.url(&format!("/v2/images/{id}/stage")))
        .header("content-type", "application/octet-stream")
        .body(data)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204, "{}", res.text().await.unwrap());
    import(app, id, json!({"method": {"name": "glance-direct"}})).await
}

async fn import(app: &TestApp, id: &str, body: Value) -> (Value, Value) {
    let res = app
        .client
        .post(app.url(&format!("/v2/images/{id}/import")))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202, "{}", res.text().await.unwrap());
    finished(app, id).await
}

/// Polls until the image's latest import task has finished.
async fn finished(app: &TestApp, id: &str) -> (Value, Value) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let doc: Value = app
            .client
            .get(app.url(&format!("/v2/images/{id}/tasks")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if let Some(task) = doc["tasks"].as_array().and_then(|t| t.first()) {
            if matches!(task["status"].as_str(), Some("success" | "failure")) {
                return (task.clone(), app.image(id).await);
            }
        }
        assert!(Instant::now() < deadline, "import of {id} did not finish");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn download(app: &TestApp, id: &str) -> Vec<u8> {
    let res = app
        .client
        .get(app.url(&format!("/v2/images/{id}/file")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.bytes().await.unwrap().to_vec()
}

fn stored_file(app: &TestApp, id: &str) -> PathBuf {
    app.data_dir.path().join("images").join(id)
}

/// The import left nothing in the staging area: neither the staged data nor work files.
fn staging_is_clean(app: &TestApp, id: &str) {
    let staging = app.data_dir.path().join("staging");
    assert!(!staging.join(id).exists(), "staged data left behind");
    let left: Vec<_> = std::fs::read_dir(staging.join(".incoming"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(id))
        .collect();
    assert!(left.is_empty(), "work files left behind: {left:?}");
}

fn assert_stored_as(image: &Value, data: &[u8]) {
    let (md5, sha512) = digests(data);
    assert_eq!(image["status"], "active", "{image}");
    assert_eq!(image["checksum"], md5.as_str(), "{image}");
    assert_eq!(image["os_hash_value"], sha512.as_str());
    assert_eq!(image["size"], data.len());
    assert!(image.get("os_glance_import_task").is_none(), "{image}");
}

#[tokio::test(flavor = "multi_thread")]
async fn qcow2_vmdk_and_vhdx_imports_are_converted_to_raw() {
    let app = spawn_app_with(&[CONVERT]).await;
    let tools = tempfile::tempdir().unwrap();
    let raw = disk();
    for format in ["qcow2", "vmdk", "vhdx"] {
        let data = made_with_qemu(tools.path(), &raw, format);
        assert_ne!(data, raw);
        let id = new_image(&app, format, "ovf").await;
        let (task, image) = direct(&app, &id, data).await;
        assert_eq!(task["status"], "success", "{format}: {task}");
        // The record describes the converted bytes, which are the disk itself.
        assert_eq!(image["disk_format"], "raw", "{format}: {image}");
        assert_eq!(image["container_format"], "bare");
        assert_eq!(image["virtual_size"], raw.len());
        assert_stored_as(&image, &raw);
        assert_eq!(download(&app, &id).await, raw, "{format}");
        let info = qemu_info(&stored_file(&app, &id));
        assert_eq!(info["format"], "raw", "{format}: {info}");
        assert_eq!(info["virtual-size"], image["virtual_size"]);
        staging_is_clean(&app, &id);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn raw_is_converted_to_the_configured_qcow2() {
    let app = spawn_app_with(&[CONVERT, ("image_conversion", "output_format", "qcow2")]).await;
    let raw = disk();
    let id = new_image(&app, "raw", "bare").await;
    let (task, image) = direct(&app, &id, raw.clone()).await;
    assert_eq!(task["status"], "success", "{task}");
    assert_eq!(image["disk_format"], "qcow2", "{image}");
    let stored = std::fs::read(stored_file(&app, &id)).unwrap();
    assert_stored_as(&image, &stored);
    let info = qemu_info(&stored_file(&app, &id));
    assert_eq!(info["format"], "qcow2", "{info}");
    assert_eq!(info["virtual-size"], raw.len());
    assert_eq!(image["virtual_size"], raw.len());
    assert!(stored.len() < raw.len(), "the hole is not stored");

    // Already qcow2: stored as it came.
    let tools = tempfile::tempdir().unwrap();
    let qcow2 = made_with_qemu(tools.path(), &raw, "qcow2");
    let id = new_image(&app, "qcow2", "bare").await;
    let (task, image) = direct(&app, &id, qcow2.clone()).await;
    assert_eq!(task["status"], "success", "{task}");
    assert_stored_as(&image, &qcow2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_qcow2_with_a_backing_file_or_a_false_format_is_not_converted() {
    let app = spawn_app_with(&[CONVERT]).await;
    let tools = tempfile::tempdir().unwrap();
    let base = tools.path().join("base.raw");
    std::fs::write(&base, disk()).unwrap();
    let top = tools.path().join("top.qcow2");
    run(Command::new("qemu-img")
        .args(["create", "-f", "qcow2", "-F", "raw", "-b"])
        .arg(&base)
        .arg(&top));
    let id = new_image(&app, "qcow2", "bare").await;
    let (task, image) = direct(&app, &id, std::fs::read(&top).unwrap()).await;
    assert_eq!(task["status"], "failure", "{task}");
    let message = task["message"].as_str().unwrap();
    assert!(
        message.contains("Image has disallowed configuration") && message.contains("backing"),
        "{message}"
    );
    assert_eq!(image["status"], "queued", "{image}");
    assert_eq!(image["disk_format"], "qcow2");
    assert!(image["checksum"].is_null(), "{image}");
    assert!(!stored_file(&app, &id).exists());
    staging_is_clean(&app, &id);

    // A "qcow2" that is raw bytes.
    let id = new_image(&app, "qcow2", "bare").await;
    let (task, image) = direct(&app, &id, disk()).await;
    assert_eq!(task["status"], "failure", "{task}");
    assert!(
        task["message"]
            .as_str()
            .unwrap()
            .contains("Image format mismatch"),
        "{task}"
    );
    assert_eq!(image["status"], "queued");
    staging_is_clean(&app, &id);
}

/// Serves `data` once per request on a local port, for web-download.
async fn serve(data: Vec<u8>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let data = data.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    data.len()
                );
                let _ = socket.write_all(reply.as_bytes()).await;
                let _ = socket.write_all(&data).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    format!("http://127.0.0.1:{port}/disk")
}

#[tokio::test(flavor = "multi_thread")]
async fn web_download_is_decompressed_and_converted() {
    let app = spawn_app_with(&[
        (
            "image_import_opts",
            "image_import_plugins",
            "image_decompression,image_conversion,no_op",
        ),
        ("import_filtering_opts", "allowed_ports", ""),
    ])
    .await;
    let tools = tempfile::tempdir().unwrap();
    let raw = disk();
    made_with_qemu(tools.path(), &raw, "qcow2");
    run(Command::new("gzip")
        .arg("-k")
        .arg(tools.path().join("disk.qcow2")));
    let gz = std::fs::read(tools.path().join("disk.qcow2.gz")).unwrap();
    let uri = serve(gz).await;
    let id = new_image(&app, "qcow2", "bare").await;
    let (task, image) = import(
        &app,
        &id,
        json!({"method": {"name": "web-download", "uri": uri}}),
    )
    .await;
    assert_eq!(task["status"], "success", "{task}");
    assert_eq!(image["disk_format"], "raw", "{image}");
    assert_stored_as(&image, &raw);
    assert_eq!(qemu_info(&stored_file(&app, &id))["format"], "raw");
    staging_is_clean(&app, &id);
}

fn zip_of(dir: &Path, files: &[&str]) -> Vec<u8> {
    let archive = dir.join("a.zip");
    let _ = std::fs::remove_file(&archive);
    run(Command::new("python3")
        .args(["-m", "zipfile", "-c"])
        .arg(&archive)
        .args(files.iter().map(|f| dir.join(f))));
    std::fs::read(archive).unwrap()
}

/// An LHA archive of one stored (`-lh0-`) file with a level-0 header, as LHarc writes it
/// (no LHA archiver is packaged for Debian without Java; `lha l` of lhasa reads this).
fn lha_of(name: &str, data: &[u8]) -> Vec<u8> {
    let mut crc = 0u16;
    for &b in data {
        crc ^= b as u16;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xa001
            } else {
                crc >> 1
            };
        }
    }
    let mut h = b"-lh0-".to_vec();
    h.extend_from_slice(&(data.len() as u32).to_le_bytes());
    h.extend_from_slice(&(data.len() as u32).to_le_bytes());
    h.extend_from_slice(&[0, 0, 0x21, 0x5a, 0x20, 0, name.len() as u8]);
    h.extend_from_slice(name.as_bytes());
    h.extend_from_slice(&crc.to_le_bytes());
    let mut out = vec![h.len() as u8, h.iter().fold(0u8, |s, b| s.wrapping_add(*b))];
    out.extend_from_slice(&h);
    out.extend_from_slice(data);
    out.push(0);
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn gzip_and_zip_archives_are_decompressed_and_a_bomb_is_refused() {
    let cap = 8u64 << 20;
    let app = spawn_app_with(&[
        (
            "image_import_opts",
            "image_import_plugins",
            "['image_decompression']",
        ),
        ("DEFAULT", "image_size_cap", &cap.to_string()),
    ])
    .await;
    let tools = tempfile::tempdir().unwrap();
    let raw = disk();
    let qcow2 = made_with_qemu(tools.path(), &raw, "qcow2");

    // gzip: the image is what the archive holds, its disk_format unchanged.
    run(Command::new("gzip")
        .arg("-k")
        .arg(tools.path().join("disk.raw")));
    let gz = std::fs::read(tools.path().join("disk.raw.gz")).unwrap();
    let id = new_image(&app, "raw", "bare").await;
    let (task, image) = direct(&app, &id, gz.clone()).await;
    assert_eq!(task["status"], "success", "{task}");
    assert_eq!(image["disk_format"], "raw");
    assert_stored_as(&image, &raw);
    staging_is_clean(&app, &id);

    // zip of one qcow2 (deflated by Python's zipfile): the qcow2, inspected as such.
    let zip = zip_of(tools.path(), &["disk.qcow2"]);
    let id = new_image(&app, "qcow2", "bare").await;
    let (task, image) = direct(&app, &id, zip).await;
    assert_eq!(task["status"], "success", "{task}");
    assert_stored_as(&image, &qcow2);
    assert_eq!(image["virtual_size"], raw.len());

    // LHA, which Glance reads with its optional lhafile module.
    let id = new_image(&app, "qcow2", "bare").await;
    let (task, image) = direct(&app, &id, lha_of("disk.qcow2", &qcow2)).await;
    assert_eq!(task["status"], "success", "{task}");
    assert_stored_as(&image, &qcow2);

    // Two files: refused with Glance's message.
    let zip = zip_of(tools.path(), &["disk.qcow2", "disk.raw"]);
    let id = new_image(&app, "qcow2", "bare").await;
    let (task, image) = direct(&app, &id, zip).await;
    assert_eq!(task["status"], "failure", "{task}");
    assert!(
        task["message"]
            .as_str()
            .unwrap()
            .contains("Archive contains more than one file."),
        "{task}"
    );
    assert_eq!(image["status"], "queued");
    staging_is_clean(&app, &id);

    // A container_format of compressed keeps the archive as the image.
    let id = new_image(&app, "raw", "compressed").await;
    let (task, image) = direct(&app, &id, gz.clone()).await;
    assert_eq!(task["status"], "success", "{task}");
    assert_stored_as(&image, &gz);

    // A bomb: 64 KiB that inflates to 64 MiB, eight times the cap. The task fails, the
    // image is queued again, nothing over the cap was written.
    let zeros = tools.path().join("zeros");
    std::fs::write(&zeros, vec![0u8; 64 << 20]).unwrap();
    run(Command::new("gzip").arg("-9").arg(&zeros));
    let bomb = std::fs::read(tools.path().join("zeros.gz")).unwrap();
    assert!(bomb.len() < 128 << 10, "{}", bomb.len());
    let id = new_image(&app, "raw", "bare").await;
    let (task, image) = direct(&app, &id, bomb).await;
    assert_eq!(task["status"], "failure", "{task}");
    assert!(
        task["message"].as_str().unwrap().contains("size cap"),
        "{task}"
    );
    assert_eq!(image["status"], "queued", "{image}");
    assert!(!stored_file(&app, &id).exists());
    staging_is_clean(&app, &id);
}

#[tokio::test(flavor = "multi_thread")]
async fn properties_are_injected_for_members_and_not_for_ignored_roles() {
    let app = spawn_app_with(&[
        ("DEFAULT", "auth_strategy", "trusted-headers"),
        (
            "image_import_opts",
            "image_import_plugins",
            "['inject_image_metadata']",
        ),
        (
            "inject_metadata_properties",
            "inject",
            "hw_rng_model:virtio,os_glance_forged:yes",
        ),
        ("inject_metadata_properties", "ignore_user_roles", "admin"),
    ])
    .await;
    let as_role = |req: reqwest::RequestBuilder, role: &str| {
        req.header("x-identity-status", "Confirmed")
            .header("x-roles", role)
            .header("x-project-id", "p1")
            .header("x-user-id", "u1")
    };
    for (role, injected) in [("member", true), ("admin", false)] {
        let res = as_role(app.client.post(app.url("/v2/images")), role)
            .json(&json!({"name": "inj", "disk_format": "raw", "container_format": "bare"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
        let id = res.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let res = as_role(
            app.client.put(app.url(&format!("/v2/images/{id}/stage"))),
            role,
        )
        .header("content-type", "application/octet-stream")
        .body(disk())
        .send()
        .await
        .unwrap();
        assert_eq!(res.status(), 204);
        let res = as_role(
            app.client.post(app.url(&format!("/v2/images/{id}/import"))),
            role,
        )
        .json(&json!({"method": {"name": "glance-direct"}}))
        .send()
        .await
        .unwrap();
        assert_eq!(res.status(), 202);
        let deadline = Instant::now() + Duration::from_secs(60);
        let image = loop {
            let image: Value = as_role(app.client.get(app.url(&format!("/v2/images/{id}"))), role)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if image["status"] == "active" {
                break image;
            }
            assert!(Instant::now() < deadline, "{role}: {image}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        if injected {
            assert_eq!(image["hw_rng_model"], "virtio", "{role}: {image}");
        } else {
            assert!(image.get("hw_rng_model").is_none(), "{role}: {image}");
        }
        assert!(image.get("os_glance_forged").is_none(), "{role}: {image}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_plugin_refuses_to_start_naming_the_option() {
    let data_dir = tempfile::tempdir().unwrap();
    let mut raw = glance_config::RawConfig::defaults();
    raw.set("image_import_opts", "image_import_plugins", "no_op,resize");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let err = match glance_all_in_one::build_from_raw(&raw, data_dir.path(), listener).await {
        Ok(_) => panic!("an unknown plugin was accepted"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        err.contains("image_import_plugins") && err.contains("resize"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_store_gets_the_converted_data_and_copy_image_is_left_alone() {
    let stores = tempfile::tempdir().unwrap();
    let fast = stores.path().join("fast");
    let cheap = stores.path().join("cheap");
    let app = spawn_app_with(&[
        CONVERT,
        ("image_conversion", "output_format", "qcow2"),
        ("DEFAULT", "enabled_backends", "fast:file, cheap:file"),
        ("glance_store", "default_backend", "fast"),
        ("fast", "filesystem_store_datadir", fast.to_str().unwrap()),
        ("cheap", "filesystem_store_datadir", cheap.to_str().unwrap()),
    ])
    .await;
    let raw = disk();

    // Converted once, stored in both.
    let id = new_image(&app, "raw", "bare").await;
    let res = app
        .client
        .put(app.url(&format!("/v2/images/{id}/stage")))
        .header("content-type", "application/octet-stream")
        .body(raw.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let (task, image) = import(
        &app,
        &id,
        json!({"method": {"name": "glance-direct"}, "all_stores": true}),
    )
    .await;
    assert_eq!(task["status"], "success", "{task}");
    assert_eq!(image["disk_format"], "qcow2", "{image}");
    let in_fast = std::fs::read(fast.join(&id)).unwrap();
    assert_eq!(std::fs::read(cheap.join(&id)).unwrap(), in_fast);
    assert_stored_as(&image, &in_fast);
    assert_eq!(qemu_info(&cheap.join(&id))["format"], "qcow2");
    let mut in_stores: Vec<&str> = image["stores"].as_str().unwrap().split(',').collect();
    in_stores.sort();
    assert_eq!(in_stores, ["cheap", "fast"]);
    staging_is_clean(&app, &id);

    // copy-image copies what the image is: no plugin runs, the raw data stays raw.
    let id = new_image(&app, "raw", "bare").await;
    let res = app
        .client
        .put(app.url(&format!("/v2/images/{id}/file")))
        .header("content-type", "application/octet-stream")
        .header("x-image-meta-store", "fast")
        .body(raw.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let (task, image) = import(
        &app,
        &id,
        json!({"method": {"name": "copy-image"}, "stores": ["cheap"]}),
    )
    .await;
    assert_eq!(task["status"], "success", "{task}");
    assert_eq!(image["disk_format"], "raw");
    assert_eq!(std::fs::read(cheap.join(&id)).unwrap(), raw);
    assert_stored_as(&image, &raw);
}

#[tokio::test(flavor = "multi_thread")]
async fn qcow2_is_converted_to_the_configured_vmdk() {
    let app = spawn_app_with(&[CONVERT, ("image_conversion", "output_format", "vmdk")]).await;
    let tools = tempfile::tempdir().unwrap();
    let raw = disk();
    let qcow2 = made_with_qemu(tools.path(), &raw, "qcow2");
    let id = new_image(&app, "qcow2", "bare").await;
    let (task, image) = direct(&app, &id, qcow2).await;
    assert_eq!(task["status"], "success", "{task}");
    assert_eq!(image["disk_format"], "vmdk", "{image}");
    let stored = std::fs::read(stored_file(&app, &id)).unwrap();
    assert_stored_as(&image, &stored);
    let info = qemu_info(&stored_file(&app, &id));
    assert_eq!(info["format"], "vmdk", "{info}");
    assert_eq!(
        info["format-specific"]["data"]["create-type"],
        "monolithicSparse"
    );
    assert_eq!(info["virtual-size"], raw.len());
    assert_eq!(image["virtual_size"], raw.len());
    // qemu-img reads back the same disk.
    let back = tools.path().join("back.raw");
    run(Command::new("qemu-img")
        .args(["convert", "-O", "raw"])
        .arg(stored_file(&app, &id))
        .arg(&back));
    assert_eq!(std::fs::read(back).unwrap(), raw);
}
