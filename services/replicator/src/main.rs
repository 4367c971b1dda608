//! `glance-replicator`: Glance's image replicator (`glance/cmd/replicator.py`), speaking the
//! Images API v2 instead of the removed v1. Copies images between two servers, or through a
//! directory, keeping their ids; `main` only wires the command line to the commands.

mod cli;
mod commands;
mod fields;
mod server;

use std::process::ExitCode;

use clap::Parser;

use cli::{Args, Job};
use commands::Run;
use fields::Policy;
use server::Glance;

/// The tokens for each side: `--sourcetoken`/`--targettoken`, then `-t`, then the
/// configuration (`[DEFAULT] sourcetoken`/`targettoken`, or their GLANCE__ variables), then
/// `OS_AUTH_TOKEN`, then one token from Keystone for the `OS_*` credentials.
async fn tokens(args: &Args) -> anyhow::Result<(Option<String>, Option<String>)> {
    let raw = glance_config::RawConfig::load(&args.config_file)?;
    let reader = raw.reader();
    let pick = |flag: &Option<String>, option: &str| {
        flag.clone()
            .or_else(|| args.token.clone())
            .or_else(|| reader.opt_string("DEFAULT", option))
            .or_else(|| args.os_auth_token.clone())
    };
    let (source, target) = (
        pick(&args.sourcetoken, "sourcetoken"),
        pick(&args.targettoken, "targettoken"),
    );
    if source.is_some() && target.is_some() {
        return Ok((source, target));
    }
    let issued = args.credentials.issue().await?.map(|(token, _)| token);
    Ok((source.or(issued.clone()), target.or(issued)))
}

async fn run(args: &Args, job: Job) -> anyhow::Result<bool> {
    let (source_token, target_token) = tokens(args).await?;
    let mut run = Run {
        policy: Policy::new(&args.dontreplicate),
        chunksize: args.chunksize as usize,
        metaonly: args.metaonly,
    };
    let ok = match job {
        Job::Help(c) => {
            println!("{}", cli::command_help(c));
            true
        }
        Job::Size(server) => {
            // Glance measures with the target token; the source one will do without it.
            commands::size(&Glance::new(&server, target_token.or(source_token))?).await?;
            true
        }
        Job::Dump(server, dir) => {
            let tally = run.dump(&Glance::new(&server, source_token)?, &dir).await?;
            println!(
                "Dumped {} images to {} ({} already there, {} failed)",
                tally.created,
                dir.display(),
                tally.skipped,
                tally.failed
            );
            tally.failed == 0
        }
        Job::Load(server, dir) => {
            let tally = run.load(&Glance::new(&server, target_token)?, &dir).await?;
            println!("Loaded into {server}: {tally}");
            tally.failed == 0
        }
        Job::Livecopy(from, to) => {
            let tally = run
                .livecopy(
                    &Glance::new(&from, source_token)?,
                    &Glance::new(&to, target_token)?,
                )
                .await?;
            println!("Copied {from} to {to}: {tally}");
            tally.failed == 0
        }
        Job::Compare(from, to) => {
            commands::compare(
                &run.policy,
                &Glance::new(&from, source_token)?,
                &Glance::new(&to, target_token)?,
            )
            .await?;
            true
        }
    };
    Ok(ok)
}

fn main() -> ExitCode {
    let args = Args::parse();
    glance_telemetry::init(match (args.debug, args.verbose) {
        (true, _) => "debug",
        (false, true) => "info",
        _ => "warn",
    });
    let job = match cli::job(args.command.as_deref(), &args.args) {
        Ok(job) => job,
        Err(usage) => {
            match usage.help {
                Some(c) => eprintln!("{}\n", cli::command_help(c)),
                None => eprintln!(
                    "Usage: glance-replicator [options] <command> [args]\n\n{}\n",
                    cli::COMMANDS
                        .iter()
                        .map(|c| format!("  {:<9} {}", c.name, c.summary))
                        .collect::<Vec<_>>()
                        .join("\n")
                ),
            }
            eprintln!("ERROR: {}", usage.message);
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ERROR: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&args, job)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("ERROR: {e:#}");
            ExitCode::FAILURE
        }
    }
}
