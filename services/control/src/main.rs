//! `glance-control SERVICE COMMAND`: Glance's control verbs, sent as bus messages to every
//! live instance of a service instead of signals to PID files. `start` is the exception: a
//! process that is not running cannot receive a message, so it is launched locally.

use std::path::PathBuf;
use std::process::{Command as Process, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, ValueEnum};
use glance_bus::{Amqp, Transport};
use glance_proto::control::{topic, ControlCommand, ControlReply, ControlRequest, CONTROL_KIND};
use glance_proto::Envelope;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Verb {
    Start,
    Status,
    Reload,
    Shutdown,
    Stop,
    Restart,
}

/// Services glance-control knows; `all` addresses every one.
const SERVICES: &[&str] = &[
    "api",
    "registry",
    "scrubber",
    "cache-worker",
    "replicator",
    "glare",
    "all",
];

#[derive(Parser)]
#[command(
    name = "glance-control",
    version,
    about = "Control Glance services through the message bus"
)]
struct Args {
    /// api, registry, scrubber, cache-worker, replicator, glare or all.
    service: String,
    /// What to do.
    #[arg(value_enum)]
    command: Verb,
    /// Only this instance (an id from `status`).
    #[arg(long)]
    instance: Option<String>,
    /// How long to wait for answers, in seconds.
    #[arg(long, default_value_t = 2.0)]
    timeout: f64,
    /// Only instances on this host (its hostname): with `status`, a health check for a
    /// container or a machine, failing when none of the service's instances here answers.
    #[arg(long)]
    local: bool,
    /// How long a rolling restart waits for each instance to come back, in seconds.
    #[arg(long, default_value_t = 120.0)]
    restart_timeout: f64,
    /// Configuration file (Glance INI format) naming the broker; repeatable. Also passed to
    /// services launched by `start`.
    #[arg(long = "config-file")]
    config_file: Vec<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    glance_telemetry::init("warn");
    let args = Args::parse();
    if !SERVICES.contains(&args.service.as_str()) {
        bail!(
            "unknown service '{}': expected one of {}",
            args.service,
            SERVICES.join(", ")
        );
    }
    if args.command == Verb::Start {
        return start(&args);
    }
    let raw = glance_config::RawConfig::load(&args.config_file)?;
    let settings = glance_config::Settings::from_raw(&raw)?;
    let url = settings.transport_url.context(
        "glance-control talks to services over the broker: set [DEFAULT] transport_url \
         (GLANCE__DEFAULT__TRANSPORT_URL) or pass --config-file",
    )?;
    let command = match args.command {
        Verb::Status => ControlCommand::Status,
        Verb::Reload => ControlCommand::Reload,
        Verb::Shutdown => ControlCommand::Shutdown,
        Verb::Stop => ControlCommand::Stop,
        Verb::Restart => ControlCommand::Restart,
        Verb::Start => unreachable!("handled above"),
    };
    let runtime = tokio::runtime::Runtime::new()?;
    let window = Duration::from_secs_f64(args.timeout.max(0.1));
    let mut replies = runtime.block_on(async {
        let amqp = Amqp::connect(&url, 1)
            .await
            .with_context(|| format!("cannot reach the broker at {url}"))?;
        if command == ControlCommand::Restart && args.instance.is_none() {
            let deadline = Duration::from_secs_f64(args.restart_timeout.max(1.0));
            return rolling_restart(&amqp, &args.service, window, deadline).await;
        }
        ask(
            &amqp,
            &args.service,
            args.instance.as_deref(),
            command,
            window,
        )
        .await
    })?;
    if args.local {
        // The host as every instance reports it (its hostname: a container's is its own).
        let here = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_default();
        replies.retain(|r| r.status.host == here);
    }
    if replies.is_empty() {
        bail!(
            "no instance of '{}'{} answered within {}s: is it running and connected to {url}?",
            args.service,
            if args.local { " on this host" } else { "" },
            args.timeout
        );
    }
    print_table(&replies);
    if replies.iter().any(|r| !r.ok) {
        std::process::exit(1);
    }
    Ok(())
}

/// Sends `command` to the instances `topic(service, instance)` names and gathers their
/// replies for `window`, sorted by service and instance.
async fn ask(
    amqp: &Amqp,
    service: &str,
    instance: Option<&str>,
    command: ControlCommand,
    window: Duration,
) -> anyhow::Result<Vec<ControlReply>> {
    let env = Envelope::new(CONTROL_KIND, None, &ControlRequest { command })?;
    let replies = amqp.scatter(&topic(service, instance), env, window).await?;
    let mut replies: Vec<ControlReply> = replies
        .into_iter()
        .filter_map(|e| serde_json::from_value(e.payload).ok())
        .collect();
    replies.sort_by(|a, b| {
        (&a.status.service, &a.status.instance).cmp(&(&b.status.service, &b.status.instance))
    });
    Ok(replies)
}

/// Restarts every instance of `service`, one at a time: the next only once the previous one
/// answers again, so the service never has more than one instance down. A restart re-executes
/// the binary in the same process, so the new instance is the one with the old host and pid
/// and a new instance id. Returns the new instances' status.
async fn rolling_restart(
    amqp: &Amqp,
    service: &str,
    window: Duration,
    deadline: Duration,
) -> anyhow::Result<Vec<ControlReply>> {
    let before = ask(amqp, service, None, ControlCommand::Status, window).await?;
    let mut after = Vec::new();
    for old in before {
        let s = &old.status;
        eprintln!("restarting {} on {} (pid {})", s.instance, s.host, s.pid);
        let replies = ask(
            amqp,
            service,
            Some(&s.instance),
            ControlCommand::Restart,
            window,
        )
        .await?;
        match replies.first() {
            Some(r) if r.ok => {}
            Some(r) => bail!("{} refused to restart: {}", s.instance, r.message),
            None => bail!("{} did not answer the restart", s.instance),
        }
        let started = std::time::Instant::now();
        let new = loop {
            let now = ask(amqp, &s.service, None, ControlCommand::Status, window).await?;
            let back = now.into_iter().find(|r| {
                r.status.host == s.host && r.status.pid == s.pid && r.status.instance != s.instance
            });
            if let Some(back) = back {
                break back;
            }
            if started.elapsed() > deadline {
                bail!(
                    "{} on {} did not come back within {}s; the instances after it were not restarted",
                    s.instance,
                    s.host,
                    deadline.as_secs()
                );
            }
        };
        eprintln!(
            "  back as {} after {:.1}s",
            new.status.instance,
            started.elapsed().as_secs_f64()
        );
        after.push(new);
    }
    Ok(after)
}

fn print_table(replies: &[ControlReply]) {
    let rows: Vec<[String; 9]> = replies
        .iter()
        .map(|r| {
            let s = &r.status;
            let detail: Vec<String> = s.detail.iter().map(|(k, v)| format!("{k}={v}")).collect();
            [
                s.service.clone(),
                s.instance.clone(),
                s.host.clone(),
                s.pid.to_string(),
                format!("{}s", s.uptime_secs),
                s.version.clone(),
                s.in_flight.to_string(),
                format!("{}{}", if r.ok { "" } else { "FAILED: " }, r.message),
                detail.join(" "),
            ]
        })
        .collect();
    let header = [
        "SERVICE",
        "INSTANCE",
        "HOST",
        "PID",
        "UPTIME",
        "VERSION",
        "IN-FLIGHT",
        "RESULT",
        "DETAIL",
    ];
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let parts: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", parts.join("  ").trim_end());
    };
    line(header.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// Launches `glance-SERVICE` detached, as Glance's control did, with the same config files.
fn start(args: &Args) -> anyhow::Result<()> {
    let services: Vec<&str> = match args.service.as_str() {
        "all" => vec!["registry", "api"],
        one => vec![one],
    };
    let dir = std::env::current_exe()?
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default();
    for service in services {
        let exe = dir.join(format!("glance-{service}"));
        let exe = if exe.exists() {
            exe
        } else {
            PathBuf::from(format!("glance-{service}"))
        };
        let mut cmd = Process::new(&exe);
        // Its own process group, so it outlives this command and the terminal's signals.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        for file in &args.config_file {
            cmd.arg("--config-file").arg(file);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {}", exe.display()))?;
        println!("Starting glance-{service} with pid {}", child.id());
    }
    Ok(())
}
