//! `glance-manage`: Glance's database commands, for the distributed mode's first start and
//! for upgrades. The embedded all-in-one migrates by itself.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use glance_db::Database;

mod metadefs;

#[derive(Parser)]
#[command(name = "glance-manage", version, about = "Glance management utility")]
struct Args {
    /// Configuration file (Glance INI format); repeatable, later files win.
    #[arg(long = "config-file", global = true)]
    config_file: Vec<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Database schema commands.
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
    /// Same as `db load_metadefs` (Glance's older spelling, which also takes
    /// `[PATH [MERGE [PREFER_NEW [OVERWRITE]]]]` as positional arguments).
    #[command(name = "db_load_metadefs")]
    DbLoadMetadefs(metadefs::LegacyLoadArgs),
    /// Same as `db unload_metadefs`.
    #[command(name = "db_unload_metadefs")]
    DbUnloadMetadefs,
    /// Same as `db export_metadefs` (also `db_export_metadefs PATH`).
    #[command(name = "db_export_metadefs")]
    DbExportMetadefs(metadefs::LegacyExportArgs),
}

#[derive(Subcommand)]
enum DbCommand {
    /// Print the current schema version.
    Version,
    /// Bring the schema up to date (Glance's `db sync`).
    Sync,
    /// Same as sync: apply every pending migration.
    Upgrade,
    /// Exit non-zero if migrations are pending (for deploy scripts).
    Check,
    /// Hard-delete soft-deleted rows older than --age-in-days from the child tables
    /// (image_properties, image_tags, image_locations, image_members) and of expired tasks
    /// (task_info, then tasks), at most --max-rows per table, oldest first. The images
    /// table is left alone: see purge_images_table.
    Purge(PurgeArgs),
    /// Hard-delete soft-deleted rows of the images table older than --age-in-days, at most
    /// --max-rows. Fails while child rows still reference them: run `purge` first.
    #[command(name = "purge_images_table", alias = "purge-images-table")]
    PurgeImagesTable(PurgeImagesArgs),
    /// Load the metadefs catalog from Glance's definition files (one namespace per JSON
    /// file), all files or none. Namespaces already there are skipped, unless --merge.
    #[command(name = "load_metadefs", alias = "load-metadefs")]
    LoadMetadefs(metadefs::LoadArgs),
    /// Remove every namespace and resource type of the metadefs catalog.
    #[command(name = "unload_metadefs", alias = "unload-metadefs")]
    UnloadMetadefs,
    /// Write the metadefs catalog as definition files, one per namespace.
    #[command(name = "export_metadefs", alias = "export-metadefs")]
    ExportMetadefs(metadefs::ExportArgs),
}

#[derive(clap::Args)]
struct PurgeArgs {
    /// Only rows deleted more than this many days ago.
    #[arg(long = "age-in-days", alias = "age_in_days", default_value_t = 30)]
    age_in_days: u32,
    /// Most rows removed per table in this run (-1: no limit).
    #[arg(
        long = "max-rows",
        alias = "max_rows",
        default_value_t = 100,
        allow_negative_numbers = true
    )]
    max_rows: i64,
}

#[derive(clap::Args)]
struct PurgeImagesArgs {
    /// Only images deleted more than this many days ago.
    #[arg(long = "age-in-days", alias = "age_in_days", default_value_t = 180)]
    age_in_days: u32,
    /// Most rows removed in this run (-1: no limit).
    #[arg(
        long = "max-rows",
        alias = "max_rows",
        default_value_t = 100,
        allow_negative_numbers = true
    )]
    max_rows: i64,
}

/// Glance's bounds: -1 (no limit) up to 2^31 - 1.
fn max_rows(n: i64) -> anyhow::Result<Option<u64>> {
    match n {
        -1 => Ok(None),
        0..=2_147_483_647 => Ok(Some(n as u64)),
        _ => anyhow::bail!(
            "Invalid value for max_rows: {n} (must be -1 or between 0 and 2147483647)"
        ),
    }
}

/// The catalog's repository, once the schema is there (the metadefs tables come with
/// `db sync`; a database that has not been synced is refused with what to run).
async fn metadefs_repo(db: Database) -> anyhow::Result<glance_db::MetadefRepo> {
    let pending = db.pending_migrations().await?;
    if !pending.is_empty() {
        anyhow::bail!(
            "the database schema is not up to date ({} pending migration(s)): run glance-manage db sync first",
            pending.len()
        );
    }
    Ok(glance_db::MetadefRepo::new(db))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    glance_telemetry::init("warn");
    let args = Args::parse();
    let raw = glance_config::RawConfig::load(&args.config_file)?;
    let settings = glance_config::Settings::from_raw(&raw)?;
    let connection = settings.database_connection.context(
        "no database configured: set [database] connection (or GLANCE__DATABASE__CONNECTION)",
    )?;
    let db = Database::connect(&connection)
        .await
        .with_context(|| format!("cannot connect to {connection}"))?;
    let command = match args.command {
        Command::Db { command } => command,
        Command::DbLoadMetadefs(a) => DbCommand::LoadMetadefs(a.into_args()?),
        Command::DbUnloadMetadefs => DbCommand::UnloadMetadefs,
        Command::DbExportMetadefs(a) => DbCommand::ExportMetadefs(a.into_args()?),
    };
    match command {
        DbCommand::Version => match db.version().await? {
            Some(v) => println!("{v}"),
            None => println!("None (database not initialised: run glance-manage db sync)"),
        },
        DbCommand::Sync | DbCommand::Upgrade => {
            let pending = db.pending_migrations().await?;
            db.migrate_up().await?;
            for m in &pending {
                println!("applied {m}");
            }
            println!(
                "Database is synced successfully at {}.",
                db.version().await?.unwrap_or_default()
            );
        }
        DbCommand::Purge(purge) => {
            let limit = max_rows(purge.max_rows)?;
            let repo = glance_db::ImageRepo::new(db);
            let progress = glance_telemetry::progress::spinner(format!(
                "purging rows deleted more than {} day(s) ago",
                purge.age_in_days
            ));
            let purged = repo.purge_deleted_rows(purge.age_in_days, limit).await;
            progress.finish_and_clear();
            let purged = purged.map_err(|e| {
                anyhow::anyhow!(
                    "Purge command failed, check glance-manage logs for more details: {e}"
                )
            })?;
            for (table, rows) in purged {
                println!("Purged {rows} row(s) from {table}");
            }
        }
        DbCommand::PurgeImagesTable(purge) => {
            let limit = max_rows(purge.max_rows)?;
            let repo = glance_db::ImageRepo::new(db);
            let progress = glance_telemetry::progress::spinner(format!(
                "purging images deleted more than {} day(s) ago",
                purge.age_in_days
            ));
            let purged = repo.purge_images_table(purge.age_in_days, limit).await;
            progress.finish_and_clear();
            let (table, rows) = purged.map_err(|e| {
                anyhow::anyhow!(
                    "Purge command failed, check glance-manage logs for more details: {e}"
                )
            })?;
            println!("Purged {rows} row(s) from {table}");
        }
        DbCommand::LoadMetadefs(load) => {
            let mode = metadefs::mode(&load)?;
            let path = load.path.unwrap_or_else(|| metadefs::default_path(&raw));
            let repo = metadefs_repo(db).await?;
            metadefs::load(&repo, &path, mode).await?;
        }
        DbCommand::UnloadMetadefs => {
            metadefs::unload(&metadefs_repo(db).await?).await?;
        }
        DbCommand::ExportMetadefs(export) => {
            let path = export.path.unwrap_or_else(|| metadefs::default_path(&raw));
            metadefs::export(&metadefs_repo(db).await?, &path).await?;
        }
        DbCommand::Check => {
            let pending = db.pending_migrations().await?;
            if pending.is_empty() {
                println!("Database is up to date. No migrations needed.");
            } else {
                println!("Pending migrations: {}", pending.join(", "));
                std::process::exit(3);
            }
        }
    }
    Ok(())
}
