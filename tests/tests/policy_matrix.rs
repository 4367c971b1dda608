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
