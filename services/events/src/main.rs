//! `glance-events`: prints Glance's notifications as they are published on the bus, for an
//! operator watching what happens to images.
//!
//! ```sh
//! glance-events --transport-url rabbit://guest:guest@127.0.0.1:5672/ --filter 'image.*'
//! glance-events --json --filter image.delete --filter 'image.member.#'
//! ```
//!
//! Each instance binds a private queue: it sees every event from the moment it starts and
//! takes nothing away from other consumers.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use glance_bus::{Amqp, Transport};
use glance_proto::events::Notification;
use serde_json::Value;

#[derive(Parser)]
#[command(
    name = "glance-events",
    version,
    about = "Tail Glance notifications on the bus"
)]
struct Args {
    /// Configuration file (Glance INI format); repeatable, later files win.
    #[arg(long = "config-file")]
    config_file: Vec<PathBuf>,
    /// Broker URL; default [DEFAULT] transport_url.
    #[arg(long)]
    transport_url: Option<String>,
    /// Event types to show, as topic patterns (`image.*`: one word, `image.#`: any);
    /// repeatable. Default: everything.
    #[arg(long = "filter", value_name = "PATTERN")]
    filters: Vec<String>,
    /// One JSON object per line (the notification and its request id) instead of text.
    #[arg(long)]
    json: bool,
    /// Exit after this many events.
    #[arg(long)]
    count: Option<u64>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    glance_telemetry::init("warn");
    let args = Args::parse();
    let raw = glance_config::RawConfig::load(&args.config_file)?;
    let settings = glance_config::Settings::from_raw(&raw)?;
    let url = args
        .transport_url
        .or(settings.transport_url)
        .context("glance-events needs a broker: --transport-url or [DEFAULT] transport_url")?;
    let transport: Arc<dyn Transport> = Arc::new(
        Amqp::connect(&url, 64)
            .await
            .with_context(|| format!("cannot reach the broker at {url}"))?,
    );
    let patterns = if args.filters.is_empty() {
        vec!["#".to_owned()]
    } else {
        args.filters.clone()
    };
    let mut sub = transport.subscribe_events(&patterns, None).await?;
    eprintln!("listening for {} (Ctrl-C to stop)", patterns.join(", "));
    let mut seen = 0u64;
    let stdout = std::io::stdout();
    while let Some(delivery) = sub.next().await {
        let request_id = delivery.envelope.headers.request_id.clone();
        let line = match serde_json::from_value::<Notification>(delivery.envelope.payload) {
            Ok(n) if args.json => json_line(&n, request_id.as_deref()),
            Ok(n) => text_line(&n, request_id.as_deref()),
            Err(e) => format!("(unreadable event: {e})"),
        };
        let _ = delivery.responder.ack().await;
        let mut out = stdout.lock();
        if writeln!(out, "{line}").and_then(|_| out.flush()).is_err() {
            break; // the reader went away (a closed pipe)
        }
        seen += 1;
        if args.count.is_some_and(|n| seen >= n) {
            break;
        }
    }
    Ok(())
}

fn json_line(n: &Notification, request_id: Option<&str>) -> String {
    let mut value = serde_json::to_value(n).unwrap_or(Value::Null);
    value["request_id"] = request_id.map_or(Value::Null, |r| Value::String(r.to_owned()));
    value.to_string()
}

/// `timestamp priority event_type key=value ...`: the fields an operator looks for first.
fn text_line(n: &Notification, request_id: Option<&str>) -> String {
    let p = &n.payload;
    let mut line = format!("{} {:<5} {:<20}", n.timestamp, n.priority, n.event_type);
    for key in [
        "id",
        "image_id",
        "member_id",
        "name",
        "status",
        "size",
        "bytes_sent",
        "owner",
        "deleted_at",
    ] {
        match p.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) => line.push_str(&format!(" {key}={s}")),
            Some(v) => line.push_str(&format!(" {key}={v}")),
        }
    }
    if let Some(r) = request_id {
        line.push_str(&format!(" request_id={r}"));
    }
    line
}
