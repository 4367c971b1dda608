//! `glance-cache-pruner`: evicts least recently accessed images until the cache holds at
//! most `[DEFAULT] image_cache_max_size` bytes, once.

use glance_cache_worker::Setup;

fn main() -> anyhow::Result<()> {
    let setup = Setup::from_command_line(
        "glance-cache-pruner",
        "Prune the image cache to its maximum size",
        "warn",
    )?;
    let report = setup.cache.prune(setup.cache_settings.max_size)?;
    println!(
        "Pruned {} files ({} bytes).",
        report.total_files_pruned, report.total_bytes_pruned
    );
    Ok(())
}
