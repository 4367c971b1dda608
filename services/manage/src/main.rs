//! `glance-manage`: Glance's database commands, for the distributed mode's first start and
//! for upgrades. The embedded all-in-one migrates by itself.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use glance_db::Database;

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
    let Command::Db { command } = args.command;
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
