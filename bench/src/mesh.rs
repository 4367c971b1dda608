//! `--mesh`: the distributed topology. A fresh PostgreSQL database (`psql`), `glance-manage db
//! sync`, one glance-registry and one glance-api as separate processes over the broker; creates,
//! then image-show and the name+tag list under the keep-alive load client; then a second
//! registry on the same queue and both loads again. CPU is charged to the API, each registry,
//! the broker and the database server, found through /proc.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context};

use crate::cli::{self, Args, Plan};
use crate::cpu::{Group, Watched};
use crate::http::{self, Conn};
use crate::load::{self, Load, LoadResult};
use crate::phases::{self, Journal};
use crate::procs;
use crate::report::{self, Row, Target};
use crate::server::{self, Process, Server};

const BINS: [&str; 3] = ["glance-api", "glance-registry", "glance-manage"];
/// What the registry logs once it consumes its queue.
const REGISTRY_READY: &str = "registry serving";
/// A registry that joins a running queue gets its first deliveries within a prefetch or two;
/// the pause lets the broker spread the consumers before the clock starts.
const SETTLE: Duration = Duration::from_secs(2);

pub fn run(args: &Args) -> anyhow::Result<Journal> {
    let amqp_url = args
        .amqp_url
        .as_deref()
        .context("--mesh needs --amqp-url amqp://user:pass@host:port/vhost")?;
    let postgres_url = args
        .postgres_url
        .as_deref()
        .context("--mesh needs --postgres-url postgresql://superuser@host:port/postgres")?;
    if !args.no_build {
        server::build(&BINS)?;
    }
    let [api_bin, registry_bin, manage_bin] = BINS.map(cli::release_bin);
    for bin in [&api_bin, &registry_bin, &manage_bin] {
        anyhow::ensure!(bin.is_file(), "no binary at {}", bin.display());
    }
    let plan = args.plan();
    let tmp = cli::temp_dir()?;
    println!(
        "glance-bench --mesh: {} and {} over {amqp_url}, database server {postgres_url}",
        api_bin.display(),
        registry_bin.display()
    );
    let cores = crate::print_machine();
    println!(
        "plan: {} creates x{} clients, {:.1} s load phases x{} clients, client runtime {} threads, temp dir {}",
        plan.creates,
        plan.create_concurrency,
        plan.duration.as_secs_f64(),
        plan.concurrency,
        plan.client_threads,
        tmp.path().display()
    );

    let broker_port = url_port(amqp_url).unwrap_or(5672);
    let others = procs::connections_to(broker_port);
    if others > 0 {
        println!(
            "broker: {others} client connection(s) to port {broker_port} already open; if one of them is a glance-registry on the same vhost, it takes requests from this run"
        );
    }
    let watched = Watched::new(vec![
        Group::pids("api", Vec::new()),
        Group::pids("registry-1", Vec::new()),
        Group::pids("registry-2", Vec::new()),
        locate("rabbitmq", broker_port, "beam.smp"),
        locate(
            "postgres",
            url_port(postgres_url).unwrap_or(5432),
            "postgres",
        ),
    ]);

    let db = Database::create(postgres_url)?;
    println!("database: created {}", db.url);
    let env = vec![
        ("GLANCE__DEFAULT__TRANSPORT_URL", amqp_url.to_owned()),
        ("GLANCE__DATABASE__CONNECTION", db.url.clone()),
        (
            "GLANCE__GLANCE_STORE__FILESYSTEM_STORE_DATADIR",
            tmp.path().join("images").display().to_string(),
        ),
        ("GLANCE__DEFAULT__AUTH_STRATEGY", "noauth".to_owned()),
        ("GLANCE__DEFAULT__BIND_HOST", "127.0.0.1".to_owned()),
        (
            "GLANCE__DEFAULT__WORKERS",
            args.workers.unwrap_or(2).to_string(),
        ),
    ];
    let mut journal = Journal::default();
    let launcher = Launcher {
        env: &env,
        config_file: args.config_file.as_deref(),
        dir: tmp.path(),
    };
    db_sync(&launcher, &manage_bin)?;
    let rows = measure(
        &plan,
        &launcher,
        [&api_bin, &registry_bin],
        &watched,
        &mut journal,
    )?;

    println!("\n{}", report::table(&rows));
    report::print_cpu(&journal.cpu);
    println!(
        "note: {cores} cores shared by the bench client, the API, the registries, the broker and the database server \
         (the rabbitmq and postgres columns are the whole servers, including other users of them)."
    );
    if args.keep {
        println!("kept {} and database {}", tmp.keep().display(), db.url);
        std::mem::forget(db);
    }
    Ok(journal)
}

/// Environment and arguments shared by every process of the run.
struct Launcher<'a> {
    env: &'a [(&'static str, String)],
    config_file: Option<&'a Path>,
    dir: &'a Path,
}

impl Launcher<'_> {
    fn command(&self, bin: &Path) -> Command {
        let mut cmd = Command::new(bin);
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        if let Some(cfg) = self.config_file {
            cmd.arg("--config-file").arg(cfg);
        }
        cmd
    }

    fn spawn(&self, name: &str, cmd: Command) -> anyhow::Result<Process> {
        let p = Process::spawn(name, cmd, self.dir.join(format!("{name}.log")))?;
        println!("{name}: pid {}, log {}", p.pid, p.log.display());
        Ok(p)
    }
}

fn db_sync(launcher: &Launcher<'_>, manage_bin: &Path) -> anyhow::Result<()> {
    let out = launcher
        .command(manage_bin)
        .args(["db", "sync"])
        .output()
        .context("cannot run glance-manage")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        bail!("glance-manage db sync failed ({}):\n{text}", out.status);
    }
    println!(
        "glance-manage db sync: {}",
        text.lines().last().unwrap_or_default()
    );
    Ok(())
}

struct Round {
    show: LoadResult,
    filtered: LoadResult,
}

fn measure(
    plan: &Plan,
    launcher: &Launcher<'_>,
    [api_bin, registry_bin]: [&PathBuf; 2],
    watched: &Watched,
    journal: &mut Journal,
) -> anyhow::Result<Vec<Row>> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(plan.client_threads)
        .enable_all()
        .build()?;
    let mut registries = vec![launcher.spawn("registry-1", launcher.command(registry_bin))?];
    add(watched, "registry-1", registries[0].pid);
    let addr = server::free_addr()?;
    let mut cmd = launcher.command(api_bin);
    cmd.env("GLANCE__DEFAULT__BIND_PORT", addr.port().to_string());
    let api = launcher.spawn("api", cmd)?;
    add(watched, "api", api.pid);
    let mut api = Server::from_process(api, addr, launcher.dir.join("images"), watched.clone());
    println!("api: listening on {addr}");

    let result = rt.block_on(async {
        registries[0]
            .wait_for_log(REGISTRY_READY, Duration::from_secs(60))
            .await?;
        api.wait_ready().await?;
        wait_for_registry(addr).await?;

        let c = load::create_images(addr, watched, plan.creates, plan.create_concurrency).await?;
        let ok = c.ids.iter().flatten().count();
        journal.cpu("creates (1 registry)", c.cpu.clone());
        println!(
            "creates: {} creates from {} clients in {:.3} s = {:.0}/s, {} errors; {}",
            plan.creates,
            plan.create_concurrency,
            c.elapsed.as_secs_f64(),
            ok as f64 / c.elapsed.as_secs_f64(),
            c.errors.len(),
            c.cpu,
        );
        for e in c.errors.iter().take(20) {
            println!("  create error: {e}");
        }
        if !c.errors.is_empty() {
            journal.fail(format!(
                "{} of {} creates failed",
                c.errors.len(),
                plan.creates
            ));
        }
        let show_id = c
            .ids
            .iter()
            .flatten()
            .next()
            .context("no image was created")?
            .clone();
        let create_rate = ok as f64 / c.elapsed.as_secs_f64();

        let load = Load {
            addr,
            watched: watched.clone(),
            concurrency: plan.concurrency,
            duration: plan.duration,
            max_requests: plan.max_requests,
            headers: Vec::new(),
        };
        let versions = load.get("/versions", 200).await?;
        phases::report_load(
            journal,
            &load,
            "load GET /versions (API alone, client ceiling)",
            &versions,
        );
        let one = round(&load, &show_id, plan.creates, "1 registry", journal).await?;

        registries.push(launcher.spawn("registry-2", launcher.command(registry_bin))?);
        registries[1]
            .wait_for_log(REGISTRY_READY, Duration::from_secs(60))
            .await?;
        add(watched, "registry-2", registries[1].pid);
        tokio::time::sleep(SETTLE).await;
        let two = round(&load, &show_id, plan.creates, "2 registries", journal).await?;
        let second = two.show.cpu.part("registry-2");
        if second < 0.05 {
            println!(
                "note: registry-2 used {second:.2} cores during image-show: it took almost none of the work"
            );
        }
        for p in registries.iter_mut().chain([api.process_mut()]) {
            p.ensure_running()
                .with_context(|| format!("{} died during the run", p.name))?;
        }
        anyhow::Ok((create_rate, versions, one, two))
    });

    // Stop everything at once, then let each drop wait for its process.
    api.process().terminate();
    for r in &registries {
        r.terminate();
    }
    let (create_rate, versions, one, two) = result.with_context(|| {
        let mut logs = format!("api log tail:\n{}", api.log_tail());
        for r in &registries {
            logs += &format!("\n{} log tail:\n{}", r.name, r.log_tail());
        }
        logs
    })?;
    drop(api);
    drop(registries);

    let c = plan.concurrency;
    let mut rows = vec![
        Row::new(
            format!("creates x{}, 1 registry", plan.create_concurrency),
            create_rate,
            "/s",
        ),
        Row::new(
            format!("GET /versions c={c} (API alone)"),
            versions.rate(),
            "req/s",
        ),
    ];
    for (label, r) in [("1 registry", &one), ("2 registries", &two)] {
        rows.extend([
            Row::new(format!("image-show c={c}, {label}"), r.show.rate(), "req/s")
                .ceiling(versions.rate())
                .target(Target::AtLeast(5_000.0)),
            Row::new("  image-show p50", r.show.percentile_ms(50), "ms"),
            Row::new("  image-show p99", r.show.percentile_ms(99), "ms")
                .target(Target::Below(20.0)),
            Row::new(
                "  load client CPU per image-show",
                r.show.client_us_per_request(),
                "us",
            ),
            Row::new(
                format!("name+tag list c={c}, {label}"),
                r.filtered.rate(),
                "req/s",
            )
            .ceiling(versions.rate()),
            Row::new("  name+tag list p50", r.filtered.percentile_ms(50), "ms"),
            Row::new("  name+tag list p99", r.filtered.percentile_ms(99), "ms"),
        ]);
    }
    Ok(rows)
}

fn add(watched: &Watched, group: &str, pid: u32) {
    if let Some(g) = watched.group(group) {
        g.add(pid);
    }
}

/// image-show and the name+tag list with the registries running now.
async fn round(
    load: &Load,
    show_id: &str,
    creates: usize,
    label: &str,
    journal: &mut Journal,
) -> anyhow::Result<Round> {
    let show = load.get(&format!("/v2/images/{show_id}"), 200).await?;
    phases::report_load(
        journal,
        load,
        &format!("load GET /v2/images/{{id}}, {label}"),
        &show,
    );
    phases::check_filter(load.addr, creates, journal).await?;
    let filtered = load.get(phases::FILTER, 200).await?;
    phases::report_load(
        journal,
        load,
        &format!("load GET {}, {label}", phases::FILTER),
        &filtered,
    );
    Ok(Round { show, filtered })
}

/// The API answers /versions by itself; a list needs a registry behind the bus.
async fn wait_for_registry(addr: std::net::SocketAddr) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut last = String::new();
    while started.elapsed() < Duration::from_secs(60) {
        match Conn::open(addr).await {
            Ok(mut conn) => match conn.get_bytes("/v2/images?limit=1").await {
                Ok((200, _)) => return Ok(()),
                Ok((status, body)) => last = format!("{status}: {}", http::snippet(&body)),
                Err(e) => last = format!("{e:#}"),
            },
            Err(e) => last = format!("{e:#}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("GET /v2/images?limit=1 did not succeed within 60 s; last answer {last}")
}

/// The process group charged for a server we did not start: whoever listens on `port` and
/// its children, or, when no local process listens there, every process called `name`.
fn locate(group: &str, port: u16, name: &str) -> Group {
    match procs::listener(port) {
        Some(pid) => {
            println!("cpu: {group} = pid {pid} (listening on port {port}) and its children");
            Group::tree(group, vec![pid])
        }
        None => {
            let pids = procs::by_name(name);
            println!(
                "cpu: {group} = every process named {name} ({} found; no local listener on port {port} visible)",
                pids.len()
            );
            Group::tree(group, pids)
        }
    }
}

/// The port of `scheme://user:pass@host:port/path`, if it names one.
fn url_port(url: &str) -> Option<u16> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (_, port) = host_port.rsplit_once(':')?;
    port.parse().ok()
}

/// `url` with its database (path) replaced by `name`, keeping any query.
fn with_database(url: &str, name: &str) -> anyhow::Result<String> {
    let (scheme, rest) = url
        .split_once("://")
        .with_context(|| format!("{url} is not a URL"))?;
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, format!("?{q}")),
        None => (rest, String::new()),
    };
    let authority = rest.split('/').next().unwrap_or(rest);
    Ok(format!("{scheme}://{authority}/{name}{query}"))
}

/// A database of this run's own on the given server, dropped when the run ends.
struct Database {
    server_url: String,
    name: String,
    url: String,
}

impl Database {
    fn create(server_url: &str) -> anyhow::Result<Self> {
        let secs = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let name = format!("glance_bench_{}_{secs}", std::process::id());
        psql(server_url, &format!("create database {name}"))?;
        Ok(Self {
            url: with_database(server_url, &name)?,
            server_url: server_url.to_owned(),
            name,
        })
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        // `with (force)` closes connections a killed registry may have left behind.
        match psql(
            &self.server_url,
            &format!("drop database if exists {} with (force)", self.name),
        ) {
            Ok(()) => println!("database: dropped {}", self.name),
            Err(e) => eprintln!("database: could not drop {}: {e:#}", self.name),
        }
    }
}

fn psql(url: &str, sql: &str) -> anyhow::Result<()> {
    let out = Command::new("psql")
        .arg(url)
        .args(["-v", "ON_ERROR_STOP=1", "-qAtc", sql])
        .stdin(std::process::Stdio::null())
        .output()
        .context("cannot run psql (the PostgreSQL client is needed for --mesh)")?;
    if !out.status.success() {
        bail!(
            "psql {url} -c '{sql}' failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_port_is_read_after_the_credentials() {
        assert_eq!(
            url_port("amqp://guest:guest@127.0.0.1:56721/%2f"),
            Some(56721)
        );
        assert_eq!(
            url_port("postgresql://postgres@127.0.0.1:55433/postgres"),
            Some(55433)
        );
        assert_eq!(url_port("postgresql://postgres@localhost/postgres"), None);
    }

    #[test]
    fn the_database_is_swapped_and_the_query_kept() {
        assert_eq!(
            with_database(
                "postgresql://postgres@127.0.0.1:55433/postgres?sslmode=disable",
                "x"
            )
            .unwrap(),
            "postgresql://postgres@127.0.0.1:55433/x?sslmode=disable"
        );
        assert_eq!(
            with_database("postgresql://postgres@h:1", "x").unwrap(),
            "postgresql://postgres@h:1/x"
        );
    }
}
