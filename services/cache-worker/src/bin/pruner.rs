//! `glance-cache-pruner`: evicts least recently accessed images until the cache holds at
//! most `[DEFAULT] image_cache_max_size` bytes, once.

use std::path::PathBuf;

use clap::Parser;
use glance_cache_worker::Setup;

#[derive(Parser)]
#[command(
    name = "glance-cache-pruner",
    version,
    about = "Prune the image cache to its maximum size"
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
    let report = setup.cache.prune(setup.cache_settings.max_size)?;
    println!(
        "Pruned {} files ({} bytes).",
        report.total_files_pruned, report.total_bytes_pruned
    );
    Ok(())
}
