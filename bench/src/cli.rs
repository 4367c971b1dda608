//! Command line: sizes default to the full run, `--quick` shrinks them for a smoke run, and an
//! explicit flag always wins over both.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// Workspace root, so the bench finds (and builds) the server wherever it is run from.
const WORKSPACE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

pub fn workspace() -> PathBuf {
    std::fs::canonicalize(WORKSPACE).unwrap_or_else(|_| WORKSPACE.into())
}

#[derive(Parser, Debug)]
#[command(
    name = "glance-bench",
    about = "Benchmark glance-all-in-one; every figure is printed next to a ceiling measured in the same run"
)]
pub struct Args {
    /// Smoke run: 64 MiB upload, 200 creates, 1 s load phases.
    #[arg(long)]
    pub quick: bool,
    /// Size of the uploaded image in MiB [default: 1024, quick: 64].
    #[arg(long)]
    pub size_mib: Option<u64>,
    /// Number of images created in the create phase [default: 2000, quick: 200].
    #[arg(long)]
    pub creates: Option<usize>,
    /// Concurrent clients for the create phase.
    #[arg(long, default_value_t = 8)]
    pub create_concurrency: usize,
    /// Concurrent keep-alive clients for the request-rate phases.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Seconds per request-rate phase [default: 5, quick: 1].
    #[arg(long)]
    pub duration_secs: Option<f64>,
    /// Upper bound on requests per request-rate phase, whatever the duration.
    #[arg(long, default_value_t = 2_000_000)]
    pub max_requests: u64,
    /// Worker threads of the bench's own client runtime [default: number of cores].
    #[arg(long)]
    pub client_threads: Option<usize>,
    /// HTTP workers of the server (sets GLANCE__DEFAULT__WORKERS); server default if unset.
    #[arg(long)]
    pub workers: Option<usize>,
    /// Extra `--config-file` for the server.
    #[arg(long)]
    pub config_file: Option<PathBuf>,
    /// Server binary [default: <workspace>/target/release/glance-all-in-one]; --mesh uses
    /// glance-api, glance-registry and glance-manage from the same target dir instead.
    #[arg(long)]
    pub server_bin: Option<PathBuf>,
    /// Do not run `cargo build --release --bin glance-all-in-one` first.
    #[arg(long)]
    pub no_build: bool,
    /// Keep the temp directory (data dir, server log) instead of deleting it; with --mesh also
    /// the database.
    #[arg(long)]
    pub keep: bool,
    /// Benchmark the distributed topology instead: glance-api and glance-registry as separate
    /// processes over RabbitMQ, the registry on a fresh PostgreSQL database; image-show and the
    /// name+tag list with one registry, then with two. Needs --amqp-url and --postgres-url.
    #[arg(long, requires_all = ["amqp_url", "postgres_url"])]
    pub mesh: bool,
    /// Broker for --mesh, e.g. amqp://guest:guest@127.0.0.1:5672/%2f. Its `glance.v1.registry`
    /// queue must have no other consumers (use a vhost of your own on a shared broker).
    #[arg(long, requires = "mesh")]
    pub amqp_url: Option<String>,
    /// PostgreSQL server for --mesh, as a URL a superuser can log in with, e.g.
    /// postgresql://postgres@127.0.0.1:5432/postgres; the bench creates a fresh database there
    /// (with `psql`) and drops it at the end.
    #[arg(long, requires = "mesh")]
    pub postgres_url: Option<String>,
    /// Benchmark identity instead: image-show through the all-in-one with Keystone tokens
    /// validated against this Keystone (cache warm), then with trusted headers, in the same
    /// run, and print the ratio. The Keystone must have the reference users (glance, demo).
    #[arg(long, conflicts_with = "mesh")]
    pub keystone_url: Option<String>,
    /// The glance service user's password for --keystone-url.
    #[arg(long, default_value = "glance", requires = "keystone_url")]
    pub glance_password: String,
}

/// The run's resolved knobs.
#[derive(Debug, Clone)]
pub struct Plan {
    pub size: usize,
    pub creates: usize,
    pub create_concurrency: usize,
    pub concurrency: usize,
    pub duration: Duration,
    pub max_requests: u64,
    pub client_threads: usize,
}

impl Args {
    pub fn plan(&self) -> Plan {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let size_mib = self.size_mib.unwrap_or(if self.quick { 64 } else { 1024 });
        Plan {
            size: (size_mib as usize) << 20,
            creates: self
                .creates
                .unwrap_or(if self.quick || self.mesh { 200 } else { 2000 }),
            create_concurrency: self.create_concurrency.max(1),
            concurrency: self.concurrency.max(1),
            duration: Duration::from_secs_f64(self.duration_secs.unwrap_or(if self.quick {
                1.0
            } else {
                5.0
            })),
            max_requests: self.max_requests.max(1),
            client_threads: self.client_threads.unwrap_or(cores).max(1),
        }
    }

    pub fn server_bin(&self) -> PathBuf {
        self.server_bin
            .clone()
            .unwrap_or_else(|| release_bin("glance-all-in-one"))
    }
}

/// `<target dir>/release/<name>`.
pub fn release_bin(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"));
    target.join("release").join(name)
}

/// A fresh temp dir under target/, not /tmp: /tmp may be tmpfs, and the disk ceiling must be
/// the disk the server writes to.
pub fn temp_dir() -> anyhow::Result<tempfile::TempDir> {
    let root = workspace().join("target").join("bench-tmp");
    std::fs::create_dir_all(&root)?;
    Ok(tempfile::Builder::new().prefix("run-").tempdir_in(&root)?)
}
