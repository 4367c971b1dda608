//! `glance-bench --keystone-url URL`: what validating Keystone tokens in-process costs.
//! The same all-in-one build serves image-show at the same concurrency twice in one run:
//! first with trusted headers (identity for free: the ceiling), then with
//! `auth_strategy = keystone` and one demo token whose validation is cached after its first
//! use. Prints both rates, their ratio (target at least 0.8) and p99 latencies.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use glance_keystone::{Identity, PasswordAuth};

use crate::cli::{self, Args, Plan};
use crate::http::Conn;
use crate::load::{Load, LoadResult};
use crate::phases::{self, Journal};
use crate::report::{self, Row, Target};
use crate::server::{self, Process, Server};

pub fn run(args: &Args) -> anyhow::Result<Journal> {
    let plan = args.plan();
    let url = args.keystone_url.clone().context("--keystone-url")?;
    if !args.no_build {
        server::build(&["glance-all-in-one"])?;
    }
    let bin = args.server_bin();
    anyhow::ensure!(bin.is_file(), "no server binary at {}", bin.display());
    let tmp = cli::temp_dir()?;
    crate::print_machine();
    println!(
        "plan: image-show, {} keep-alive clients, {:.1} s per phase, Keystone at {url}",
        plan.concurrency,
        plan.duration.as_secs_f64()
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(plan.client_threads)
        .enable_all()
        .build()?;
    let mut journal = Journal::default();
    let (token, project) = rt.block_on(demo_token(&url))?;

    let trusted_conf = "[DEFAULT]\nauth_strategy = trusted-headers\n".to_owned();
    let trusted_headers = vec![
        ("x-identity-status".into(), "Confirmed".into()),
        ("x-auth-token".into(), "unused".into()),
        ("x-user-id".into(), "bench-user".into()),
        ("x-project-id".into(), project.clone()),
        ("x-roles".into(), "member,reader".into()),
    ];
    let keystone_conf = format!(
        "[DEFAULT]\nauth_strategy = keystone\n\n[keystone_authtoken]\n\
         www_authenticate_uri = {url}\nauth_url = {url}\nauth_type = password\n\
         username = glance\npassword = {}\nproject_name = service\n\
         user_domain_name = Default\nproject_domain_name = Default\n",
        args.glance_password
    );
    let keystone_headers = vec![("x-auth-token".into(), token)];

    let trusted = rt.block_on(phase(
        &bin,
        &tmp.path().join("trusted"),
        &trusted_conf,
        trusted_headers,
        &plan,
        "image-show, trusted headers",
        &mut journal,
    ))?;
    let keystone = rt.block_on(phase(
        &bin,
        &tmp.path().join("keystone"),
        &keystone_conf,
        keystone_headers,
        &plan,
        "image-show, Keystone token (cached)",
        &mut journal,
    ))?;

    let c = plan.concurrency;
    let rows = vec![
        Row::new(
            format!("image-show c={c}, trusted headers"),
            trusted.rate(),
            "req/s",
        ),
        Row::new(
            format!("image-show c={c}, Keystone token"),
            keystone.rate(),
            "req/s",
        )
        .ceiling(trusted.rate())
        .target(Target::RatioAtLeast(0.8)),
        Row::new("p99, trusted headers", trusted.percentile_ms(99), "ms"),
        Row::new("p99, Keystone token", keystone.percentile_ms(99), "ms"),
    ];
    println!("\n{}", report::table(&rows));
    report::print_cpu(&journal.cpu);
    println!(
        "ratio keystone / trusted headers: {:.3}",
        keystone.rate() / trusted.rate()
    );
    Ok(journal)
}

/// The reference Keystone's demo user's token and project id.
async fn demo_token(url: &str) -> anyhow::Result<(String, String)> {
    let issued = Identity::new(url, Duration::from_secs(30))?
        .issue(&PasswordAuth {
            username: "demo".into(),
            password: "demo".into(),
            user_domain_name: Some("Default".into()),
            project_name: Some("demo".into()),
            project_domain_name: Some("Default".into()),
            ..Default::default()
        })
        .await
        .context("cannot get demo's token from Keystone")?;
    let project = issued
        .info
        .project_id
        .context("demo's token has no project")?;
    Ok((issued.token, project))
}

/// A fresh all-in-one with `conf`, one image created with `headers`, then image-show load.
async fn phase(
    bin: &Path,
    dir: &Path,
    conf: &str,
    headers: Vec<(String, String)>,
    plan: &Plan,
    what: &str,
    journal: &mut Journal,
) -> anyhow::Result<LoadResult> {
    std::fs::create_dir_all(dir)?;
    let conf_path = dir.join("glance-api.conf");
    std::fs::write(&conf_path, conf)?;
    let addr = server::free_addr()?;
    let mut cmd = Command::new(bin);
    cmd.arg("--bind")
        .arg(addr.to_string())
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--config-file")
        .arg(&conf_path);
    let process = Process::spawn("server", cmd, dir.join("server.log"))?;
    let watched = crate::cpu::Watched::single("server", process.pid);
    let mut srv = Server::from_process(process, addr, dir.join("data"), watched.clone());
    srv.wait_ready().await?;
    let mut conn = Conn::open_with(addr, headers.clone()).await?;
    let (status, body) = conn
        .post_json(
            "/v2/images",
            &serde_json::json!({"name": "bench", "disk_format": "raw", "container_format": "bare"}),
        )
        .await?;
    anyhow::ensure!(
        status == 201,
        "create as the bench user: {status} {}",
        String::from_utf8_lossy(&body)
    );
    let id = serde_json::from_slice::<serde_json::Value>(&body)?["id"]
        .as_str()
        .context("no id")?
        .to_owned();
    let load = Load {
        addr,
        watched,
        concurrency: plan.concurrency,
        duration: plan.duration,
        max_requests: plan.max_requests,
        headers,
    };
    let result = load
        .get(&format!("/v2/images/{id}"), 200)
        .await
        .with_context(|| format!("server log tail:\n{}", srv.log_tail()))?;
    phases::report_load(journal, &load, what, &result);
    Ok(result)
}
