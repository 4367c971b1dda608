//! `glance-cache-cleaner`: removes invalid cache files and incomplete ones older than
//! `[DEFAULT] image_cache_stall_time`, once.

use std::path::PathBuf;

use clap::Parser;
use glance_cache_worker::Setup;

#[derive(Parser)]
#[command(
    name = "glance-cache-cleaner",
    version,
    about = "Remove invalid and stalled image cache files"
)]
struct Args {
    /// Configuration file (Glance INI format); repeatable, later files win.
    #[arg(long = "config-file")]
    config_file: Vec<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    glance_telemetry::init("warn");
    let args = Args::parse();
    let setup = Setup::load(&args.config_file)?;
    let report = setup.cache.clean(setup.cache_settings.stall_time)?;
    println!(
        "Removed {} invalid and {} stalled incomplete files.",
        report.invalid_removed, report.incomplete_removed
    );
    Ok(())
}
