//! `glance-manage db load_metadefs|export_metadefs|unload_metadefs` against the database
//! the metadefs API serves, with Glance 33's own definition files. On PostgreSQL with
//! `GLANCE_TEST_DATABASE=postgres`.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::metadefs::*;
use glance_tests::TestApp;
use reqwest::Method;
use serde_json::{json, Value};

// ---- glance-manage: load, export, unload ------------------------------------------------

/// Glance 33's shipped definition files: `GLANCE_TEST_METADEFS_DIR`, or the reference
/// Glance's venv (`../shared/reference-glance/start.sh` installs it).
fn glance_metadefs() -> PathBuf {
    if let Ok(dir) = std::env::var("GLANCE_TEST_METADEFS_DIR") {
        return PathBuf::from(dir);
    }
    let home = std::env::var("GLANCE_REF_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/reference-glance")
        });
    let dir = home.join("venv/etc/glance/metadefs");
    assert!(
        dir.join("compute-cpu-pinning.json").exists(),
        "Glance's metadef files are not at {}: run ../shared/reference-glance/start.sh once, \
         or set GLANCE_TEST_METADEFS_DIR",
        dir.display()
    );
    dir
}

/// A database (SQLite in `dir`, or a fresh PostgreSQL one), synced, with an all-in-one on
/// it and `glance-manage` pointed at it.
struct Catalog {
    app: TestApp,
    db: String,
    dir: tempfile::TempDir,
}

impl Catalog {
    async fn new() -> Catalog {
        let dir = tempfile::tempdir().unwrap();
        let db = match glance_tests::fresh_database_url().await {
            Some(url) => url,
            None => format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("md.sqlite").display()
            ),
        };
        let mut raw = glance_config::RawConfig::defaults();
        raw.set("DEFAULT", "workers", "2");
        raw.set("DEFAULT", "auth_strategy", "trusted-headers");
        raw.set("database", "connection", &db);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let data = dir.path().join("data");
        let server = glance_all_in_one::build_from_raw(&raw, &data, listener)
            .await
            .unwrap();
        let join = tokio::spawn(async move {
            let _ = server.run_until_stopped().await;
        });
        let app = TestApp::attach(format!("http://127.0.0.1:{port}"), join);
        Catalog { app, db, dir }
    }

    /// Runs `glance-manage ARGS` on this database: (success, stdout + stderr).
    fn manage(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new(common::bin("glance-manage"))
            .args(args)
            .env("GLANCE__DATABASE__CONNECTION", &self.db)
            .output()
            .unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    fn manage_ok(&self, args: &[&str]) -> String {
        let (ok, out) = self.manage(args);
        assert!(ok, "glance-manage {args:?} failed:\n{out}");
        out
    }

    /// The whole catalog as an admin reads it through the API: every namespace's show, its
    /// objects, properties and tags lists, by name, without timestamps (which say when it
    /// was loaded, not what it is).
    async fn read(&self) -> Value {
        let list = expect(
            &self.app,
            Method::GET,
            &format!("{NS}?limit=1000"),
            None,
            200,
        )
        .await;
        let mut all = serde_json::Map::new();
        for n in list["namespaces"].as_array().unwrap() {
            let name = n["namespace"].as_str().unwrap();
            let mut doc = json!({});
            doc["show"] = expect(&self.app, Method::GET, &format!("{NS}/{name}"), None, 200).await;
            for part in ["objects", "properties", "tags", "resource_types"] {
                doc[part] = expect(
                    &self.app,
                    Method::GET,
                    &format!("{NS}/{name}/{part}"),
                    None,
                    200,
                )
                .await;
            }
            strip_times(&mut doc);
            all.insert(name.to_owned(), doc);
        }
        let mut types = expect(
            &self.app,
            Method::GET,
            "/v2/metadefs/resource_types",
            None,
            200,
        )
        .await;
        strip_times(&mut types);
        json!({"namespaces": all, "resource_types": types})
    }

    fn write(&self, dir: &str, file: &str, doc: &Value) -> PathBuf {
        let dir = self.dir.path().join(dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(file);
        std::fs::write(&path, serde_json::to_string_pretty(doc).unwrap()).unwrap();
        dir
    }
}

fn strip_times(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.remove("created_at");
            m.remove("updated_at");
            m.values_mut().for_each(strip_times);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_times),
        _ => {}
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[tokio::test]
async fn glances_catalog_loads_exports_unloads_and_loads_back_identical() {
    let c = Catalog::new().await;
    let glance = glance_metadefs();
    let files = std::fs::read_dir(&glance)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "json")
        })
        .count();
    assert!(
        files >= 30,
        "only {files} definition files in {}",
        glance.display()
    );

    let out = c.manage_ok(&["db", "load_metadefs", "--path", path_str(&glance)]);
    assert_eq!(out.matches("Loaded namespace").count(), files, "{out}");
    let loaded = c.read().await;
    assert_eq!(loaded["namespaces"].as_object().unwrap().len(), files);
    // Spot checks against the files.
    let pinning = &loaded["namespaces"]["OS::Compute::CPUPinning"]["show"];
    assert_eq!(pinning["owner"], "admin");
    assert_eq!(pinning["protected"], true);
    assert_eq!(
        pinning["properties"]["cpu_policy"]["enum"],
        json!(["shared", "dedicated"])
    );
    assert_eq!(
        loaded["namespaces"]["OS::OperatingSystem"]["show"]["visibility"],
        "private"
    );

    // Loading again without flags skips every namespace.
    let out = c.manage_ok(&["db_load_metadefs", "--path", path_str(&glance)]);
    assert_eq!(out.matches("Skipping namespace").count(), files, "{out}");
    assert_eq!(c.read().await, loaded);

    let export = c.dir.path().join("export");
    let out = c.manage_ok(&["db", "export_metadefs", "--path", path_str(&export)]);
    assert_eq!(std::fs::read_dir(&export).unwrap().count(), files, "{out}");
    assert!(export.join("OSComputeCPUPinning.json").exists());

    c.manage_ok(&["db", "unload_metadefs"]);
    let empty = expect(&c.app, Method::GET, NS, None, 200).await;
    assert_eq!(empty["namespaces"], json!([]));
    let types = expect(
        &c.app,
        Method::GET,
        "/v2/metadefs/resource_types",
        None,
        200,
    )
    .await;
    assert_eq!(types["resource_types"], json!([]));

    c.manage_ok(&["db", "load_metadefs", "--path", path_str(&export)]);
    assert_eq!(
        c.read().await,
        loaded,
        "the export loaded back differs from Glance's files"
    );

    // And once more through the older spellings, export of the export.
    let again = c.dir.path().join("again");
    c.manage_ok(&["db_export_metadefs", "--path", path_str(&again)]);
    for entry in std::fs::read_dir(&export).unwrap() {
        let entry = entry.unwrap();
        let a = std::fs::read_to_string(entry.path()).unwrap();
        let b = std::fs::read_to_string(again.join(entry.file_name())).unwrap();
        assert_eq!(a, b, "{:?} changed between exports", entry.file_name());
    }
    c.manage_ok(&["db_unload_metadefs"]);
    assert_eq!(
        expect(&c.app, Method::GET, NS, None, 200).await["namespaces"],
        json!([])
    );
}

/// The namespace as first loaded, and as changed in a later file: `d` changed in both, `old`
/// only in the first, `new` only in the second.
fn versions() -> (Value, Value) {
    let v1 = json!({
        "namespace": "Test::Merge", "display_name": "One", "description": "first",
        "visibility": "public", "protected": false,
        "resource_type_associations": [{"name": "OS::Glance::Image", "prefix": "a_"}],
        "properties": {
            "d": {"title": "D1", "type": "string"},
            "old": {"title": "Old", "type": "string"}
        },
        "objects": [{"name": "O", "description": "o1", "properties": {"x": {"title": "X1", "type": "integer"}}}],
        "tags": [{"name": "t-old"}]
    });
    let v2 = json!({
        "namespace": "Test::Merge", "display_name": "Two", "description": "second",
        "visibility": "public", "protected": true,
        "resource_type_associations": [
            {"name": "OS::Glance::Image", "prefix": "b_"},
            {"name": "OS::Nova::Flavor", "prefix": "b:"}
        ],
        "properties": {
            "d": {"title": "D2", "type": "integer"},
            "new": {"title": "New", "type": "boolean"}
        },
        "objects": [
            {"name": "O", "description": "o2", "properties": {"x": {"title": "X2", "type": "integer"}}},
            {"name": "P", "description": "p2", "properties": {}}
        ],
        "tags": [{"name": "t-new"}]
    });
    (v1, v2)
}

#[tokio::test]
async fn merge_prefer_new_and_overwrite_treat_a_changed_namespace_as_glance_does() {
    let (v1, v2) = versions();
    let tags = |doc: &Value| -> Vec<String> {
        let mut t: Vec<String> = doc["tags"].as_array().map_or(vec![], |a| {
            a.iter()
                .map(|t| t["name"].as_str().unwrap().to_owned())
                .collect()
        });
        t.sort();
        t
    };
    let props = |doc: &Value| -> Vec<String> {
        let mut p: Vec<String> = doc["properties"]
            .as_object()
            .map_or(vec![], |m| m.keys().cloned().collect());
        p.sort();
        p
    };
    let cases: [&[&str]; 4] = [
        &[],
        &["--merge"],
        &["--merge", "--prefer_new"],
        &["--merge", "--overwrite"],
    ];
    for flags in cases {
        let c = Catalog::new().await;
        c.manage_ok(&["db", "sync"]);
        let first = c.write("v1", "merge.json", &v1);
        let second = c.write("v2", "merge.json", &v2);
        c.manage_ok(&["db", "load_metadefs", "--path", path_str(&first)]);
        let mut args = vec!["db", "load_metadefs", "--path", path_str(&second)];
        args.extend_from_slice(flags);
        c.manage_ok(&args);
        let doc = expect(&c.app, Method::GET, &format!("{NS}/Test::Merge"), None, 200).await;
        let object = |name: &str| {
            doc["objects"]
                .as_array()
                .unwrap()
                .iter()
                .find(|o| o["name"] == name)
                .cloned()
        };
        let assoc = |name: &str| {
            doc["resource_type_associations"]
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["name"] == name)
                .cloned()
        };
        match flags {
            [] => {
                // Skipped: the first version stands.
                assert_eq!(doc["display_name"], "One", "{flags:?}");
                assert_eq!(props(&doc), ["d", "old"]);
                assert_eq!(tags(&doc), ["t-old"]);
                assert!(object("P").is_none());
            }
            ["--merge"] => {
                // What the file adds is added; what both have keeps the stored version.
                assert_eq!(doc["display_name"], "One");
                assert_eq!(doc["protected"], false);
                assert_eq!(props(&doc), ["d", "new", "old"]);
                assert_eq!(doc["properties"]["d"]["title"], "D1");
                assert_eq!(tags(&doc), ["t-new", "t-old"]);
                assert_eq!(object("O").unwrap()["description"], "o1");
                assert!(object("P").is_some());
                assert_eq!(assoc("OS::Glance::Image").unwrap()["prefix"], "a_");
                assert!(assoc("OS::Nova::Flavor").is_some());
            }
            ["--merge", "--prefer_new"] => {
                // As --merge, but the file wins where both have an item.
                assert_eq!(doc["display_name"], "Two");
                assert_eq!(doc["protected"], true);
                assert_eq!(props(&doc), ["d", "new", "old"]);
                assert_eq!(
                    doc["properties"]["d"],
                    json!({"title": "D2", "type": "integer"})
                );
                assert_eq!(tags(&doc), ["t-new", "t-old"]);
                assert_eq!(object("O").unwrap()["description"], "o2");
                assert_eq!(assoc("OS::Glance::Image").unwrap()["prefix"], "b_");
            }
            ["--merge", "--overwrite"] => {
                // The file's version, exactly.
                assert_eq!(doc["display_name"], "Two");
                assert_eq!(props(&doc), ["d", "new"]);
                assert_eq!(tags(&doc), ["t-new"]);
                assert_eq!(object("O").unwrap()["description"], "o2");
                assert_eq!(assoc("OS::Glance::Image").unwrap()["prefix"], "b_");
            }
            other => unreachable!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn a_bad_path_file_or_flag_set_loads_nothing_and_says_why() {
    let c = Catalog::new().await;
    c.manage_ok(&["db", "sync"]);
    let (v1, _) = versions();
    let good = c.write("bad", "a-good.json", &v1);

    let missing = c.dir.path().join("nowhere");
    let (ok, out) = c.manage(&["db", "load_metadefs", "--path", path_str(&missing)]);
    assert!(!ok && out.contains("nowhere"), "{out}");

    let (ok, out) = c.manage(&[
        "db",
        "load_metadefs",
        "--path",
        path_str(&good),
        "--prefer_new",
    ]);
    assert!(!ok && out.contains("--merge"), "{out}");
    let (ok, out) = c.manage(&[
        "db",
        "load_metadefs",
        "--path",
        path_str(&good),
        "--merge",
        "--prefer_new",
        "--overwrite",
    ]);
    assert!(!ok && out.contains("--overwrite"), "{out}");

    // A file with a bad field, beside a good one: the message names both, nothing loads.
    let mut bad = v1.clone();
    bad["namespace"] = json!("Test::Bad");
    bad["properties"]["d"]["type"] = json!("float");
    c.write("bad", "b-bad.json", &bad);
    let (ok, out) = c.manage(&["db", "load_metadefs", "--path", path_str(&good)]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("b-bad.json") && out.contains("properties.d.type"),
        "{out}"
    );
    assert_eq!(
        expect(&c.app, Method::GET, NS, None, 200).await["namespaces"],
        json!([])
    );

    // Not JSON at all.
    std::fs::write(good.join("b-bad.json"), "{ not json").unwrap();
    let (ok, out) = c.manage(&["db", "load_metadefs", "--path", path_str(&good)]);
    assert!(
        !ok && out.contains("b-bad.json") && out.contains("JSON"),
        "{out}"
    );

    // Two files for one namespace.
    c.write("bad", "b-bad.json", &v1);
    let (ok, out) = c.manage(&["db", "load_metadefs", "--path", path_str(&good)]);
    assert!(!ok && out.contains("also defined"), "{out}");
    assert_eq!(
        expect(&c.app, Method::GET, NS, None, 200).await["namespaces"],
        json!([])
    );

    // An empty directory.
    let empty = c.dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let (ok, out) = c.manage(&["db", "load_metadefs", "--path", path_str(&empty)]);
    assert!(!ok && out.contains("no definition files"), "{out}");
}
