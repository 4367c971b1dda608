//! Who may do what to an image owned by project A, for every visibility: the status codes
//! of Glance's default (secure RBAC) policy, asserted cell by cell over HTTP against the
//! all-in-one with trusted headers.
//!
//! 404 rather than 403 where the caller may not see the image at all (Glance hides the
//! existence of images the caller cannot `get_image`). `list` is 200 when the image is in
//! the caller's default list and 0 when it is not (the list itself succeeds).
//!
//! Every cell was compared with the reference Glance 33 (`/work/shared/reference-glance`)
//! running the same sequence; they agree.

use glance_tests::{spawn_app_with, TestApp};
use reqwest::header::HeaderMap;
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy)]
enum Persona {
    Admin,
    MemberA,
    ReaderA,
    MemberB,
    Anonymous,
}

const PERSONAS: [Persona; 5] = [
    Persona::Admin,
    Persona::MemberA,
    Persona::ReaderA,
    Persona::MemberB,
    Persona::Anonymous,
];

const VISIBILITIES: [&str; 4] = ["private", "shared", "community", "public"];

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Show,
    ListContains,
    Update,
    Delete,
    Upload,
    Download,
    AddTag,
    Deactivate,
    Reactivate,
    AddMember,
    SetPublic,
    SetCommunity,
}

/// One row per operation; per persona (admin, member of A, reader of A, member of B, no
/// identity) the expected status for an image of A that is private, shared, community,
/// public.
#[rustfmt::skip]
const MATRIX: &[(Op, [[u16; 4]; 5])] = &[
    //                  admin                 member A              reader A              member B              anonymous
    (Op::Show,         [[200, 200, 200, 200], [200, 200, 200, 200], [200, 200, 200, 200], [404, 404, 200, 200], [401, 401, 401, 401]]),
    // Community images are listed only for their owner (or when asked for), admins included.
    (Op::ListContains, [[200, 200,   0, 200], [200, 200, 200, 200], [200, 200, 200, 200], [  0,   0,   0, 200], [401, 401, 401, 401]]),
    (Op::Update,       [[200, 200, 200, 200], [200, 200, 200, 200], [403, 403, 403, 403], [404, 404, 403, 403], [401, 401, 401, 401]]),
    (Op::Delete,       [[204, 204, 204, 204], [204, 204, 204, 204], [403, 403, 403, 403], [404, 404, 403, 403], [401, 401, 401, 401]]),
    (Op::Upload,       [[204, 204, 204, 204], [204, 204, 204, 204], [403, 403, 403, 403], [404, 404, 403, 403], [401, 401, 401, 401]]),
    // Downloading needs the member role; any project's member may fetch public and
    // community images.
    (Op::Download,     [[200, 200, 200, 200], [200, 200, 200, 200], [403, 403, 403, 403], [404, 404, 200, 200], [401, 401, 401, 401]]),
    (Op::AddTag,       [[204, 204, 204, 204], [204, 204, 204, 204], [403, 403, 403, 403], [404, 404, 403, 403], [401, 401, 401, 401]]),
    // Glance 33 lets the owning project's members (de)activate, not only admins.
    (Op::Deactivate,   [[204, 204, 204, 204], [204, 204, 204, 204], [403, 403, 403, 403], [404, 404, 403, 403], [401, 401, 401, 401]]),
    (Op::Reactivate,   [[204, 204, 204, 204], [204, 204, 204, 204], [403, 403, 403, 403], [404, 404, 403, 403], [401, 401, 401, 401]]),
    // Only shared images have members (403 otherwise, after the policy check).
    (Op::AddMember,    [[403, 200, 403, 403], [403, 200, 403, 403], [403, 403, 403, 403], [404, 404, 403, 403], [401, 401, 401, 401]]),
    // publicize_image is admin only, even when the image is already public.
    (Op::SetPublic,    [[200, 200, 200, 200], [403, 403, 403, 403], [403, 403, 403, 403], [404, 404, 403, 403], [401, 401, 401, 401]]),
    (Op::SetCommunity, [[200, 200, 200, 200], [200, 200, 200, 200], [403, 403, 403, 403], [404, 404, 403, 403], [401, 401, 401, 401]]),
];

fn headers(persona: Persona) -> HeaderMap {
    let mut h = HeaderMap::new();
    let (project, roles) = match persona {
        Persona::Admin => ("admin-project", "admin,member,reader"),
        Persona::MemberA => ("project-a", "member,reader"),
        Persona::ReaderA => ("project-a", "reader"),
        Persona::MemberB => ("project-b", "member,reader"),
        Persona::Anonymous => return h,
    };
    h.insert("x-identity-status", "Confirmed".parse().unwrap());
    h.insert("x-project-id", project.parse().unwrap());
    h.insert("x-user-id", format!("{persona:?}").parse().unwrap());
    h.insert("x-roles", roles.parse().unwrap());
    h
}

/// An image of project A with `visibility`, in the state `op` needs: queued for an
/// upload, deactivated for a reactivation, active with data otherwise.
async fn image_for(app: &TestApp, op: Op, visibility: &str) -> String {
    let admin = headers(Persona::Admin);
    let res = app
        .client
        .post(app.url("/v2/images"))
        .headers(admin.clone())
        .json(
            &json!({"name": "m", "owner": "project-a", "visibility": visibility,
                       "disk_format": "raw", "container_format": "bare"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    let id = res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    if op == Op::Upload {
        return id;
    }
    let res = app
        .client
        .put(app.url(&format!("/v2/images/{id}/file")))
        .headers(admin.clone())
        .header("content-type", "application/octet-stream")
        .body(vec![7u8; 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    if op == Op::Reactivate {
        let res = app
            .client
            .post(app.url(&format!("/v2/images/{id}/actions/deactivate")))
            .headers(admin)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 204);
    }
    id
}

async fn attempt(app: &TestApp, op: Op, persona: Persona, id: &str) -> u16 {
    let c = &app.client;
    let h = headers(persona);
    let image = app.url(&format!("/v2/images/{id}"));
    let patch = |ops: Value| {
        c.patch(&image)
            .headers(h.clone())
            .header(
                "content-type",
                "application/openstack-images-v2.1-json-patch",
            )
            .json(&ops)
    };
    let req = match op {
        Op::Show => c.get(&image).headers(h.clone()),
        Op::ListContains => {
            let res = c
                .get(app.url("/v2/images"))
                .headers(h.clone())
                .send()
                .await
                .unwrap();
            if res.status() != 200 {
                return res.status().as_u16();
            }
            let body: Value = res.json().await.unwrap();
            let listed = body["images"]
                .as_array()
                .unwrap()
                .iter()
                .any(|i| i["id"] == id);
            return if listed { 200 } else { 0 };
        }
        Op::Update => patch(json!([{"op": "add", "path": "/x_note", "value": "v"}])),
        Op::Delete => c.delete(&image).headers(h.clone()),
        Op::Upload => c
            .put(format!("{image}/file"))
            .headers(h.clone())
            .header("content-type", "application/octet-stream")
            .body(vec![1u8; 512]),
        Op::Download => c.get(format!("{image}/file")).headers(h.clone()),
        Op::AddTag => c.put(format!("{image}/tags/t1")).headers(h.clone()),
        Op::Deactivate => c
            .post(format!("{image}/actions/deactivate"))
            .headers(h.clone()),
        Op::Reactivate => c
            .post(format!("{image}/actions/reactivate"))
            .headers(h.clone()),
        Op::AddMember => c
            .post(format!("{image}/members"))
            .headers(h.clone())
            .json(&json!({"member": "project-c"})),
        Op::SetPublic => {
            patch(json!([{"op": "replace", "path": "/visibility", "value": "public"}]))
        }
        Op::SetCommunity => {
            patch(json!([{"op": "replace", "path": "/visibility", "value": "community"}]))
        }
    };
    req.send().await.unwrap().status().as_u16()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_persona_gets_glances_default_policy_on_every_visibility() {
    let app = spawn_app_with(&[("DEFAULT", "auth_strategy", "trusted-headers")]).await;
    let mut failures = Vec::new();
    let mut cells = 0;
    for (op, rows) in MATRIX {
        for (persona, row) in PERSONAS.iter().zip(rows) {
            for (visibility, expected) in VISIBILITIES.iter().zip(row) {
                let id = image_for(&app, *op, visibility).await;
                let got = attempt(&app, *op, *persona, &id).await;
                cells += 1;
                if got != *expected {
                    failures.push(format!(
                        "{op:?} by {persona:?} on a {visibility} image: expected {expected}, got {got}"
                    ));
                }
            }
        }
    }
    assert_eq!(cells, 12 * 5 * 4);
    assert!(
        failures.is_empty(),
        "{} of {cells} cells differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_policy_file_overrides_single_rules() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.yaml");
    // Only admins deactivate; nothing else changes.
    std::fs::write(
        &path,
        "# local overrides\n\"deactivate\": \"rule:context_is_admin\"\n",
    )
    .unwrap();
    let app = spawn_app_with(&[
        ("DEFAULT", "auth_strategy", "trusted-headers"),
        ("oslo_policy", "policy_file", path.to_str().unwrap()),
    ])
    .await;
    let id = image_for(&app, Op::Deactivate, "private").await;
    assert_eq!(
        attempt(&app, Op::Deactivate, Persona::MemberA, &id).await,
        403
    );
    assert_eq!(
        attempt(&app, Op::Deactivate, Persona::Admin, &id).await,
        204
    );
    assert_eq!(
        attempt(&app, Op::Reactivate, Persona::MemberA, &id).await,
        204
    );
}

/// Every image attribute (and an existing and a new extra property) × add/replace/remove ×
/// persona, on a fresh private queued image of project A that has `x_custom = v0`: the
/// status Glance 33 answers (asked of the reference, cell by cell), given as the statuses for
/// admin, member of A, reader of A, member of B, no identity.
/// Statuses for admin, member of A, reader of A, member of B, no identity.
type Row = [u16; 5];

#[rustfmt::skip]
const ATTRIBUTE_MATRIX: &[(&str, &str, Row, Row, Row)] = &[
    //  attribute                value                                    add                         replace                     remove
    // Only an admin may change the owner; a member's `add` of another project is 403 too.
    ("owner",                   r#""project-b""#,                        [200, 403, 403, 404, 401], [200, 403, 403, 404, 401], [403, 403, 403, 404, 401]),
    // Read-only and reserved names are refused before the image is looked up: 403 even
    // for a caller who cannot see it.
    ("id",                      r#""2a6f4c9e-1b7d-4e0a-9c3f-5d8e7a6b4c21""#, [403, 403, 403, 403, 401], [403, 403, 403, 403, 401], [403, 403, 403, 403, 401]),
    ("name",                    r#""renamed""#,                          [200, 200, 403, 404, 401], [200, 200, 403, 404, 401], [403, 403, 403, 404, 401]),
    ("status",                  r#""active""#,                           [403, 403, 403, 403, 401], [403, 403, 403, 403, 401], [403, 403, 403, 403, 401]),
    ("checksum",                r#""0123456789abcdef0123456789abcdef""#, [403, 403, 403, 403, 401], [403, 403, 403, 403, 401], [403, 403, 403, 403, 401]),
    ("size",                    r#"5"#,                                  [403, 403, 403, 403, 401], [403, 403, 403, 403, 401], [403, 403, 403, 403, 401]),
    ("virtual_size",            r#"5"#,                                  [403, 403, 403, 403, 401], [403, 403, 403, 403, 401], [403, 403, 403, 403, 401]),
    ("os_hash_algo",            r#""sha256""#,                           [403, 403, 403, 403, 401], [403, 403, 403, 403, 401], [403, 403, 403, 403, 401]),
    ("os_hash_value",           r#""00""#,                               [403, 403, 403, 403, 401], [403, 403, 403, 403, 401], [403, 403, 403, 403, 401]),
    ("created_at",              r#""2020-01-01T00:00:00Z""#,             [403, 403, 403, 403, 401], [403, 403, 403, 403, 401], [403, 403, 403, 403, 401]),
    ("updated_at",              r#""2020-01-01T00:00:00Z""#,             [403, 403, 403, 403, 401], [403, 403, 403, 403, 401], [403, 403, 403, 403, 401]),
    ("direct_url",              r#""file:///tmp/x""#,                    [403, 403, 403, 403, 401], [403, 403, 403, 403, 401], [403, 403, 403, 403, 401]),
    // `/locations` needs an index to add or remove (400, before the lookup); replacing
    // them with nothing is 403.
    ("locations",               r#"[]"#,                                 [400, 400, 400, 400, 401], [403, 403, 403, 404, 401], [400, 400, 400, 400, 401]),
    ("file",                    r#""/v2/images/x/file""#,                [403, 403, 403, 403, 401], [403, 403, 403, 403, 401], [403, 403, 403, 403, 401]),
    ("schema",                  r#""/v2/schemas/image""#,                [403, 403, 403, 403, 401], [403, 403, 403, 403, 401], [403, 403, 403, 403, 401]),
    ("self",                    r#""/v2/images/x""#,                     [403, 403, 403, 403, 401], [403, 403, 403, 403, 401], [403, 403, 403, 403, 401]),
    // Glance 33 takes `stores` as an extra property (docs/parity.md); ours is read-only.
    ("stores",                  r#""fs""#,                               [403, 403, 403, 403, 401], [403, 403, 403, 403, 401], [403, 403, 403, 403, 401]),
    ("protected",               r#"true"#,                               [200, 200, 403, 404, 401], [200, 200, 403, 404, 401], [403, 403, 403, 404, 401]),
    ("os_hidden",               r#"true"#,                               [200, 200, 403, 404, 401], [200, 200, 403, 404, 401], [403, 403, 403, 404, 401]),
    ("min_disk",                r#"1"#,                                  [200, 200, 403, 404, 401], [200, 200, 403, 404, 401], [403, 403, 403, 404, 401]),
    ("min_ram",                 r#"1"#,                                  [200, 200, 403, 404, 401], [200, 200, 403, 404, 401], [403, 403, 403, 404, 401]),
    ("disk_format",             r#""qcow2""#,                            [200, 200, 403, 404, 401], [200, 200, 403, 404, 401], [403, 403, 403, 404, 401]),
    ("container_format",        r#""ovf""#,                              [200, 200, 403, 404, 401], [200, 200, 403, 404, 401], [403, 403, 403, 404, 401]),
    ("tags",                    r#"["a", "b"]"#,                         [200, 200, 403, 404, 401], [200, 200, 403, 404, 401], [403, 403, 403, 404, 401]),
    ("visibility=public",       r#""public""#,                           [200, 403, 403, 404, 401], [200, 403, 403, 404, 401], [403, 403, 403, 404, 401]),
    ("visibility=community",    r#""community""#,                        [200, 200, 403, 404, 401], [200, 200, 403, 404, 401], [403, 403, 403, 404, 401]),
    ("visibility=shared",       r#""shared""#,                           [200, 200, 403, 404, 401], [200, 200, 403, 404, 401], [403, 403, 403, 404, 401]),
    ("visibility=private",      r#""private""#,                          [200, 200, 403, 404, 401], [200, 200, 403, 404, 401], [403, 403, 403, 404, 401]),
    ("deleted",                 r#"true"#,                               [403, 403, 403, 403, 401], [403, 403, 403, 403, 401], [403, 403, 403, 403, 401]),
    ("deleted_at",              r#""2020-01-01T00:00:00Z""#,             [403, 403, 403, 403, 401], [403, 403, 403, 403, 401], [403, 403, 403, 403, 401]),
    ("location",                r#""file:///tmp/x""#,                    [403, 403, 403, 403, 401], [403, 403, 403, 403, 401], [403, 403, 403, 403, 401]),
    ("os_glance_import_task",   r#""x""#,                                [403, 403, 403, 403, 401], [403, 403, 403, 403, 401], [403, 403, 403, 403, 401]),
    ("os_glance_failed_import", r#""""#,                                 [403, 403, 403, 403, 401], [403, 403, 403, 403, 401], [403, 403, 403, 403, 401]),
    ("os_glance_stage_host",    r#""x""#,                                [403, 403, 403, 403, 401], [403, 403, 403, 403, 401], [403, 403, 403, 403, 401]),
    ("x_custom",                r#""v""#,                                [200, 200, 403, 404, 401], [200, 200, 403, 404, 401], [200, 200, 403, 404, 401]),
    ("x_new",                   r#""v""#,                                [200, 200, 403, 404, 401], [409, 409, 403, 404, 401], [409, 409, 403, 404, 401]),
];

async fn admin_view(app: &TestApp, id: &str) -> Value {
    let res = app
        .client
        .get(app.url(&format!("/v2/images/{id}")))
        .headers(headers(Persona::Admin))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_attribute_and_op_gets_glances_answer_for_every_persona() {
    let app = spawn_app_with(&[("DEFAULT", "auth_strategy", "trusted-headers")]).await;
    let mut failures = Vec::new();
    let mut cells = 0;
    for (attr, value, add, replace, remove) in ATTRIBUTE_MATRIX {
        // `visibility=public` names the value tried; the path is the attribute.
        let key = attr.split('=').next().unwrap();
        let value: Value = serde_json::from_str(value).unwrap();
        for (op, row) in [("add", add), ("replace", replace), ("remove", remove)] {
            for (persona, expected) in PERSONAS.iter().zip(row) {
                let res = app
                    .client
                    .post(app.url("/v2/images"))
                    .headers(headers(Persona::Admin))
                    .json(&json!({"name": "m", "owner": "project-a", "x_custom": "v0",
                                  "disk_format": "raw", "container_format": "bare"}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), 201);
                let id = res.json::<Value>().await.unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_owned();
                let before = admin_view(&app, &id).await;
                let mut change = json!({"op": op, "path": format!("/{key}")});
                if op != "remove" {
                    change["value"] = value.clone();
                }
                let got = app
                    .client
                    .patch(app.url(&format!("/v2/images/{id}")))
                    .headers(headers(*persona))
                    .header(
                        "content-type",
                        "application/openstack-images-v2.1-json-patch",
                    )
                    .json(&json!([change]))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16();
                cells += 1;
                if got != *expected {
                    failures.push(format!(
                        "{op} {attr} by {persona:?}: expected {expected}, got {got}"
                    ));
                }
                // A refused change leaves the image exactly as it was.
                if got >= 400 {
                    let after = admin_view(&app, &id).await;
                    if after != before {
                        failures.push(format!(
                            "{op} {attr} by {persona:?} was refused ({got}) but changed the image: {before} -> {after}"
                        ));
                    }
                }
            }
        }
    }
    assert_eq!(cells, ATTRIBUTE_MATRIX.len() * 3 * 5);
    assert!(
        failures.is_empty(),
        "{} of {cells} cells differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn only_an_admin_may_give_an_image_to_another_project() {
    let app = spawn_app_with(&[("DEFAULT", "auth_strategy", "trusted-headers")]).await;
    let id = image_for(&app, Op::Update, "private").await;
    let patch = |persona: Persona, ops: Value| {
        app.client
            .patch(app.url(&format!("/v2/images/{id}")))
            .headers(headers(persona))
            .header(
                "content-type",
                "application/openstack-images-v2.1-json-patch",
            )
            .json(&ops)
            .send()
    };
    for ops in [
        json!([{"op": "replace", "path": "/owner", "value": "project-b"}]),
        json!([{"op": "replace", "path": "/owner", "value": "project-a"}]),
        // Glance 33 answers 403 to these two only after saving the new owner (or none).
        json!([{"op": "add", "path": "/owner", "value": "project-b"}]),
        json!([{"op": "add", "path": "/owner", "value": null}]),
        json!([{"op": "add", "path": "/name", "value": "n"},
               {"op": "replace", "path": "/owner", "value": "project-b"}]),
    ] {
        let res = patch(Persona::MemberA, ops.clone()).await.unwrap();
        assert_eq!(res.status(), 403, "{ops}");
        let body = res.text().await.unwrap();
        assert!(body.contains("Owner can"), "{body}");
        let image = admin_view(&app, &id).await;
        assert_eq!(image["owner"], "project-a", "{ops}");
        assert_eq!(image["name"], "m", "{ops}");
    }
    // Naming the current owner changes nothing and is allowed, as in Glance.
    let res = patch(
        Persona::MemberA,
        json!([{"op": "add", "path": "/owner", "value": "project-a"}]),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 200);
    let res = patch(
        Persona::Admin,
        json!([{"op": "replace", "path": "/owner", "value": "project-b"}]),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(admin_view(&app, &id).await["owner"], "project-b");
}
