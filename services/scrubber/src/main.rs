//! `glance-scrubber`: removes the data of `pending_delete` images (Glance's
//! `glance/cmd/scrubber.py`).
//!
//! * `glance-scrubber` scrubs every due image once and exits;
//! * `glance-scrubber --daemon` wakes every `wakeup_time`, schedules due images as durable
//!   scrub jobs and consumes them with the other scrubbers; `glance-control scrubber ...`
//!   reaches it;
//! * `glance-scrubber --restore IMAGE_ID` brings a `pending_delete` image back to `active`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::Parser;
use glance_bus::Bus;
use glance_domain::ImageId;
use glance_registry_client::RegistryClient;
use glance_scrubber::{Scrubber, ScrubberConfig};
use glance_service::{Lifecycle, Workers};
use glance_store::StoresConfig;

#[derive(Parser)]
#[command(name = "glance-scrubber", version, about = "Glance scrub service")]
struct Args {
    /// Configuration file (Glance INI format); repeatable, later files win.
    #[arg(long = "config-file")]
    config_file: Vec<PathBuf>,
    /// Run as a daemon ([DEFAULT] daemon).
    #[arg(short = 'D', long)]
    daemon: bool,
    /// Restore a pending_delete image to active.
    #[arg(long, value_name = "IMAGE_ID")]
    restore: Option<String>,
}

struct ScrubberLifecycle {
    scrubber: Scrubber,
    workers: Workers,
    config_files: Vec<PathBuf>,
}

impl Lifecycle for ScrubberLifecycle {
    fn detail(&self) -> std::collections::BTreeMap<String, String> {
        self.scrubber.detail()
    }

    fn reload(&self) -> Result<String, String> {
        let raw = glance_config::RawConfig::load(&self.config_files).map_err(|e| e.to_string())?;
        ScrubberConfig::from_raw(&raw).map_err(|e| e.to_string())?;
        StoresConfig::from_raw(&raw)?;
        Ok("configuration is valid; scrubber changes take effect on restart".into())
    }

    fn shutdown(&self, graceful: bool) {
        self.workers.stop();
        if !graceful {
            std::process::exit(0);
        }
    }
}

fn main() -> anyhow::Result<()> {
    glance_telemetry::init("info");
    let args = Args::parse();
    let raw = glance_config::RawConfig::load(&args.config_file)?;
    let settings = glance_config::Settings::from_raw(&raw)?;
    let mut config = ScrubberConfig::from_raw(&raw)?;
    // Every store the API writes to (enabled_backends), so data in any of them is scrubbed.
    let stores = StoresConfig::from_raw(&raw).map_err(anyhow::Error::msg)?;
    config.daemon |= args.daemon;
    if args.restore.is_some() && config.daemon {
        bail!("--restore and --daemon should not be set together");
    }
    let url = settings.transport_url.context(
        "glance-scrubber needs [DEFAULT] transport_url (GLANCE__DEFAULT__TRANSPORT_URL=rabbit://...) \
         to reach the registry; glance-all-in-one runs a scrubber in-process",
    )?;
    glance_service::run(None, || run(args, url, config, stores))
}

async fn run(
    args: Args,
    url: String,
    config: ScrubberConfig,
    stores: StoresConfig,
) -> anyhow::Result<()> {
    let prefetch = u16::try_from(config.pool_size).unwrap_or(u16::MAX);
    let transport = glance_service::connect(&url, prefetch).await?;
    let bus = Bus::new(transport.clone());
    if let Some(id) = &args.restore {
        let id: ImageId = id
            .parse()
            .map_err(|_| anyhow::anyhow!("No image found with ID {id}"))?;
        let image = glance_scrubber::restore(&RegistryClient::new(bus.clone()), id)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        println!("Image {} restored to {}", image.id, image.status);
        return Ok(());
    }
    let store = Arc::new(
        stores
            .open_shared()
            .context("glance-scrubber cannot open the API's image stores")?,
    );
    let scrubber = Scrubber::new(bus, store, config.clone());
    if !config.daemon {
        let report = scrubber.run_once().await?;
        println!(
            "scrubbed {} of {} due image(s); {} failed and stay pending_delete",
            report.scrubbed, report.due, report.failed
        );
        return Ok(());
    }
    let workers = Workers::new();
    glance_scrubber::daemon::start(scrubber.clone(), true, &workers).await?;
    let lifecycle = ScrubberLifecycle {
        scrubber,
        workers: workers.clone(),
        config_files: args.config_file.clone(),
    };
    glance_service::serve(transport, "scrubber", workers, Arc::new(lifecycle)).await
}
