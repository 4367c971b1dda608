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
    /// Address to serve the artifact API on ([glare] bind_host / bind_port, default
    /// 127.0.0.1:9494; [glare] enabled = false serves none).
    #[arg(long)]
    glare_bind: Option<String>,
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
    // Whether the artifact API's port was chosen (not Glare's default): then failing to
    // bind it is an error, not a warning.
    let glare_port_chosen = args.glare_bind.is_some()
        || raw.get("glare", "bind_port") != RawConfig::defaults().get("glare", "bind_port");
    if let Some(bind) = &args.bind {
        let (host, port) = bind
            .rsplit_once(':')
            .with_context(|| format!("--bind {bind}: expected HOST:PORT"))?;
        raw.set("DEFAULT", "bind_host", host.trim_matches(['[', ']']));
        raw.set("DEFAULT", "bind_port", port);
    }
    if let Some(bind) = &args.glare_bind {
        let (host, port) = bind
            .rsplit_once(':')
            .with_context(|| format!("--glare-bind {bind}: expected HOST:PORT"))?;
        raw.set("glare", "bind_host", host.trim_matches(['[', ']']));
        raw.set("glare", "bind_port", port);
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
    let glare = glance_config::GlareSettings::from_raw(&raw)?;
    let glare_listener = if glare.enabled {
        match TcpListener::bind((glare.bind_host.as_str(), glare.bind_port)) {
            Ok(listener) => Some(listener),
            // Glare's own port may be taken (by a Glare, or another all-in-one): without a
            // port of its own choosing the image service still starts, and says why the
            // artifact API does not.
            Err(e) if !glare_port_chosen && e.kind() == std::io::ErrorKind::AddrInUse => {
                tracing::warn!(host = %glare.bind_host, port = glare.bind_port,
                    "artifact API not served: its default port is in use; set [glare] \
                     bind_port (GLANCE__GLARE__BIND_PORT, --glare-bind) to serve it");
                None
            }
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "cannot listen on {}:{} for the artifact API ([glare] bind_host and \
                         bind_port, or [glare] enabled = false)",
                        glare.bind_host, glare.bind_port
                    )
                })
            }
        }
    } else {
        None
    };

    // The main arbiter gets a multi-threaded runtime so the registry's work spreads over
    // the cores; actix-web's HTTP workers run on their own threads.
    actix_web::rt::System::with_tokio_rt(|| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("tokio runtime")
    })
    .block_on(async move {
        let all =
            glance_all_in_one::build_all(&raw, &args.data_dir, listener, glare_listener).await?;
        tracing::info!(%addr, data_dir = %args.data_dir.display(), "glance-all-in-one serving");
        match all.glare {
            Some(glare) => {
                tracing::info!(port = glare.port(), "artifact API (Glare v1) serving");
                tokio::try_join!(all.api.run_until_stopped(), glare.run_until_stopped())?;
            }
            None => all.api.run_until_stopped().await?,
        }
        Ok(())
    })
}
