//! `glance-all-in-one`: the whole image service in one process, no broker needed.

use std::net::TcpListener;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use glance_config::{RawConfig, Settings};

/// Request handling allocates many small, short-lived objects (JSON trees, rows);
/// mimalloc serves them faster than glibc malloc under concurrency.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "glance-all-in-one",
    version,
    about = "Glance image service in one process (in-process bus, SQLite, filesystem store)"
)]
struct Args {
    /// Address to serve the Images API on ([DEFAULT] bind_host / bind_port).
    #[arg(long)]
    bind: Option<String>,
    /// Directory for the database and image data.
    #[arg(long, default_value = "./data")]
    data_dir: PathBuf,
    /// keystone, tokens, trusted-headers or noauth ([DEFAULT] auth_strategy).
    #[arg(long)]
    auth_strategy: Option<String>,
    /// Configuration file in Glance's INI format; repeatable, later files win.
    #[arg(long = "config-file")]
    config_file: Vec<PathBuf>,
    /// Print the effective configuration and exit.
    #[arg(long)]
    print_config: bool,
}

fn main() -> anyhow::Result<()> {
    glance_telemetry::init("info");
    let args = Args::parse();
    let mut raw = RawConfig::load(&args.config_file)?;
    if let Some(bind) = &args.bind {
        let (host, port) = bind
            .rsplit_once(':')
            .with_context(|| format!("--bind {bind}: expected HOST:PORT"))?;
        raw.set("DEFAULT", "bind_host", host.trim_matches(['[', ']']));
        raw.set("DEFAULT", "bind_port", port);
    }
    if let Some(strategy) = &args.auth_strategy {
        raw.set("DEFAULT", "auth_strategy", strategy);
    }
    let settings = Settings::from_raw(&raw)?;
    if args.print_config {
        print!("{}", raw.render());
        return Ok(());
    }

    let listener = TcpListener::bind((settings.bind_host.as_str(), settings.bind_port))
        .with_context(|| {
            format!(
                "cannot listen on {}:{}",
                settings.bind_host, settings.bind_port
            )
        })?;
    let addr = listener.local_addr()?;

    // The main arbiter gets a multi-threaded runtime so the registry's work spreads over
    // the cores; actix-web's HTTP workers run on their own threads.
    actix_web::rt::System::with_tokio_rt(|| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("tokio runtime")
    })
    .block_on(async move {
        let app = glance_all_in_one::build_from_raw(&raw, &args.data_dir, listener).await?;
        tracing::info!(%addr, data_dir = %args.data_dir.display(), "glance-all-in-one serving");
        app.run_until_stopped().await?;
        Ok(())
    })
}
