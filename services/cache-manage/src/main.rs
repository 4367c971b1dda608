//! `glance-cache-manage`: Glance's cache management client, with Glance's verbs, speaking the
//! older `/v2/cached_images` and `/v2/queued_images` routes of one API node (each node has
//! its own cache). Destructive verbs ask first unless `-f`.

use std::io::{BufRead, Write};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use reqwest::{Method, StatusCode};
use serde::Deserialize;

#[derive(Parser)]
#[command(
    name = "glance-cache-manage",
    version,
    about = "Manage the image cache of one Glance API node",
    after_help = "Environment: GLANCE_CACHE_URL, GLANCE_CACHE_HOST, GLANCE_CACHE_PORT, \
                  OS_AUTH_TOKEN (or OS_TOKEN), or Keystone credentials as the openstack \
                  client reads them (OS_AUTH_URL, OS_USERNAME, OS_PASSWORD, OS_PROJECT_NAME, \
                  OS_USER_DOMAIN_NAME, OS_PROJECT_DOMAIN_NAME, OS_REGION_NAME). With \
                  credentials and no host or URL, the image endpoint comes from the catalog."
)]
struct Args {
    /// Address of the API node [default: 0.0.0.0].
    #[arg(short = 'H', long, env = "GLANCE_CACHE_HOST", global = true)]
    host: Option<String>,
    /// Port of the API node [default: 9292].
    #[arg(short = 'p', long, env = "GLANCE_CACHE_PORT", global = true)]
    port: Option<u16>,
    /// Base URL of the API node (instead of --host and --port), e.g. http://10.0.0.5:9292.
    #[arg(long, env = "GLANCE_CACHE_URL", global = true)]
    url: Option<String>,
    /// Token sent as X-Auth-Token.
    #[arg(
        short = 'A',
        long = "os-auth-token",
        env = "OS_AUTH_TOKEN",
        global = true
    )]
    os_auth_token: Option<String>,
    #[command(flatten)]
    credentials: glance_keystone::Credentials,
    /// Do not ask before destructive or queueing verbs.
    #[arg(short = 'f', long, global = true)]
    force: bool,
    /// Say how long the call took and how many entries were removed.
    #[arg(short = 'v', long, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Verb,
}

#[derive(Subcommand)]
enum Verb {
    /// List the images in the node's cache.
    ListCached,
    /// List the images queued for caching on the node.
    ListQueued,
    /// Queue an image for caching.
    QueueImage {
        id: uuid::Uuid,
        /// Ask every API node to cache it, not only this one.
        #[arg(long)]
        all_nodes: bool,
    },
    /// Remove one image from the cache.
    DeleteCachedImage { id: uuid::Uuid },
    /// Remove every image from the cache.
    DeleteAllCachedImages,
    /// Remove one image from the queue.
    DeleteQueuedImage { id: uuid::Uuid },
    /// Remove every image from the queue.
    DeleteAllQueuedImages,
}

#[derive(Deserialize)]
struct Cached {
    image_id: String,
    hits: u64,
    last_accessed: f64,
    last_modified: f64,
    size: u64,
}

struct Client {
    base: String,
    http: reqwest::Client,
    token: Option<String>,
    host: String,
}

enum Failure {
    NotEnabled(String),
    Forbidden,
    Other(String),
}

impl Client {
    async fn call(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<serde_json::Value, Failure> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            req = req.header("X-Auth-Token", token);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = req
            .header("Accept", "application/json")
            .send()
            .await
            .map_err(|e| Failure::Other(format!("cannot reach {}: {e}", self.base)))?;
        let status = res.status();
        let body = res.text().await.unwrap_or_default();
        match status {
            s if s.is_success() => {
                Ok(serde_json::from_str(&body).unwrap_or(serde_json::Value::Null))
            }
            StatusCode::NOT_FOUND => Err(Failure::NotEnabled(message(&body))),
            StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED => Err(Failure::Forbidden),
            s => Err(Failure::Other(format!("{s}: {}", message(&body)))),
        }
    }
}

fn message(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| body.trim().to_owned())
}

fn when(epoch: f64) -> String {
    if epoch <= 0.0 {
        return "N/A".into();
    }
    chrono::DateTime::from_timestamp(epoch as i64, 0)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S").to_string())
        .unwrap_or_else(|| "N/A".into())
}

fn confirm(question: &str) -> bool {
    print!("{question} [y/N] ");
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    if std::io::stdin().lock().read_line(&mut answer).is_err() {
        return false;
    }
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

fn print_cached(images: &[Cached]) {
    if images.is_empty() {
        println!("No cached images.");
        return;
    }
    println!("Found {} cached images...", images.len());
    let header = format!(
        "{:<36}  {:<19}  {:<19}  {:>14}  {:>6}",
        "ID", "Last Accessed (UTC)", "Last Modified (UTC)", "Size", "Hits"
    );
    println!("{header}");
    println!("{}", "-".repeat(header.len()));
    for i in images {
        println!(
            "{:<36}  {:<19}  {:<19}  {:>14}  {:>6}",
            i.image_id,
            when(i.last_accessed),
            when(i.last_modified),
            i.size,
            i.hits
        );
    }
}

fn print_queued(ids: &[String]) {
    if ids.is_empty() {
        println!("No queued images.");
        return;
    }
    println!("Found {} queued images...", ids.len());
    println!("{:<36}", "ID");
    println!("{}", "-".repeat(36));
    for id in ids {
        println!("{id}");
    }
}

/// What each verb asks, sends and calls itself in errors.
fn plan(verb: &Verb) -> (Option<String>, Method, String, &'static str) {
    match verb {
        Verb::ListCached => (
            None,
            Method::GET,
            "/v2/cached_images".into(),
            "list cached images",
        ),
        Verb::ListQueued => (
            None,
            Method::GET,
            "/v2/queued_images".into(),
            "list queued images",
        ),
        Verb::QueueImage { id, .. } => (
            Some(format!("Queue image {id} for caching?")),
            Method::PUT,
            format!("/v2/queued_images/{id}"),
            "queue image",
        ),
        Verb::DeleteCachedImage { id } => (
            Some(format!("Delete cached image {id}?")),
            Method::DELETE,
            format!("/v2/cached_images/{id}"),
            "delete cached image",
        ),
        Verb::DeleteAllCachedImages => (
            Some("Delete all cached images?".into()),
            Method::DELETE,
            "/v2/cached_images".into(),
            "delete cached images",
        ),
        Verb::DeleteQueuedImage { id } => (
            Some(format!("Delete queued image {id}?")),
            Method::DELETE,
            format!("/v2/queued_images/{id}"),
            "delete queued image",
        ),
        Verb::DeleteAllQueuedImages => (
            Some("Delete all queued images?".into()),
            Method::DELETE,
            "/v2/queued_images".into(),
            "delete queued images",
        ),
    }
}

/// The token to send and, when Keystone issued it, the image endpoint of its catalog.
async fn authenticate(args: &Args) -> anyhow::Result<(Option<String>, Option<String>)> {
    if let Some(token) = args
        .os_auth_token
        .clone()
        .or_else(|| std::env::var("OS_TOKEN").ok())
    {
        return Ok((Some(token), None));
    }
    match args.credentials.issue().await? {
        Some((token, info)) => Ok((Some(token), args.credentials.image_endpoint(&info))),
        None => Ok((None, None)),
    }
}

async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (token, catalog_url) = authenticate(&args).await?;
    let explicit = args.url.clone().or_else(|| {
        (args.host.is_some() || args.port.is_some()).then(|| {
            format!(
                "http://{}:{}",
                args.host.as_deref().unwrap_or("0.0.0.0"),
                args.port.unwrap_or(9292)
            )
        })
    });
    let base = explicit
        .or(catalog_url)
        .unwrap_or_else(|| "http://0.0.0.0:9292".into())
        .trim_end_matches('/')
        .to_owned();
    let client = Client {
        host: args
            .url
            .clone()
            .or_else(|| args.host.clone())
            .unwrap_or_else(|| base.clone()),
        base,
        http: reqwest::Client::builder()
            .build()
            .context("cannot build an HTTP client")?,
        token,
    };
    let (question, method, path, action) = plan(&args.command);
    if let Some(q) = question {
        if !args.force && !confirm(&q) {
            return Ok(ExitCode::SUCCESS);
        }
    }
    let all_nodes = matches!(
        args.command,
        Verb::QueueImage {
            all_nodes: true,
            ..
        }
    );
    let headers: &[(&str, &str)] = if all_nodes {
        &[("x-image-cache-all-nodes", "true")]
    } else {
        &[]
    };
    let started = std::time::Instant::now();
    let body = match client.call(method, &path, headers).await {
        Ok(body) => body,
        Err(Failure::NotEnabled(msg)) => {
            eprintln!(
                "Cache management is not enabled on host {} ({msg}).",
                client.host
            );
            return Ok(ExitCode::FAILURE);
        }
        Err(Failure::Forbidden) => {
            eprintln!("Not authorized to make this request.");
            return Ok(ExitCode::FAILURE);
        }
        Err(Failure::Other(e)) => {
            eprintln!("Failed to {action}. Got error:\n{e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    match args.command {
        Verb::ListCached => {
            let images: Vec<Cached> =
                serde_json::from_value(body["cached_images"].clone()).context("bad reply")?;
            print_cached(&images);
        }
        Verb::ListQueued => {
            let ids: Vec<String> =
                serde_json::from_value(body["queued_images"].clone()).context("bad reply")?;
            print_queued(&ids);
        }
        Verb::DeleteAllCachedImages | Verb::DeleteAllQueuedImages => {
            let n = body["num_deleted"].as_u64().unwrap_or(0);
            println!("Deleted {n} images.");
        }
        _ => {}
    }
    if args.verbose {
        println!("Completed in {:.4} sec.", started.elapsed().as_secs_f64());
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ERROR: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ERROR: {e:#}");
            ExitCode::FAILURE
        }
    }
}
