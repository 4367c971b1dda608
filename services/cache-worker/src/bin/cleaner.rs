//! `glance-cache-cleaner`: removes invalid cache files and incomplete ones older than
//! `[DEFAULT] image_cache_stall_time`, once.

use glance_cache_worker::Setup;

fn main() -> anyhow::Result<()> {
    let setup = Setup::from_command_line(
        "glance-cache-cleaner",
        "Remove invalid and stalled image cache files",
        "warn",
    )?;
    let report = setup.cache.clean(setup.cache_settings.stall_time)?;
    println!(
        "Removed {} invalid and {} stalled incomplete files.",
        report.invalid_removed, report.incomplete_removed
    );
    Ok(())
}
