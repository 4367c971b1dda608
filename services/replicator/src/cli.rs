//! Glance's command line: `glance-replicator [options] <command> [args]`, the commands' own
//! help texts, and the parse from loose positional words into a typed [`Job`].

use std::path::PathBuf;

use clap::Parser;

/// What Glance leaves out of replication by default (v1 names; see [`crate::fields`]).
pub const DEFAULT_DONTREPLICATE: &str = "created_at date deleted_at location updated_at";

#[derive(Parser, Debug)]
#[command(
    name = "glance-replicator",
    version,
    about = "Copy images between Glance servers over the Images API v2, keeping their ids",
    override_usage = "glance-replicator [options] <command> [args]",
    after_help = commands_help()
)]
pub struct Args {
    /// Bytes read or written at a time when moving image data.
    #[arg(short = 'c', long, default_value_t = 65536, value_parser = clap::value_parser!(u32).range(1..))]
    pub chunksize: u32,
    /// Space-separated fields not to replicate (v1 names such as is_public and location are
    /// understood; server-computed fields are never copied).
    #[arg(short = 'D', long, default_value = DEFAULT_DONTREPLICATE)]
    pub dontreplicate: String,
    /// Only replicate metadata, not image data.
    #[arg(short = 'm', long)]
    pub metaonly: bool,
    /// Token for both servers (sets sourcetoken and targettoken).
    #[arg(short = 't', long)]
    pub token: Option<String>,
    /// Token for the source server ([DEFAULT] sourcetoken).
    #[arg(long)]
    pub sourcetoken: Option<String>,
    /// Token for the target server ([DEFAULT] targettoken).
    #[arg(long)]
    pub targettoken: Option<String>,
    /// Token for both servers when no other is given.
    #[arg(long = "os-auth-token", env = "OS_AUTH_TOKEN")]
    pub os_auth_token: Option<String>,
    /// Keystone credentials (OS_AUTH_URL, OS_USERNAME, ...): a token is issued for them when
    /// no token is given.
    #[command(flatten)]
    pub credentials: glance_keystone::Credentials,
    /// Configuration file in Glance's INI format; repeatable, later files win.
    #[arg(long = "config-file")]
    pub config_file: Vec<PathBuf>,
    /// Log what is done (info level).
    #[arg(short = 'v', long)]
    pub verbose: bool,
    /// Log the HTTP conversation too (debug level).
    #[arg(short = 'd', long)]
    pub debug: bool,
    /// size, dump, load, livecopy, compare or help.
    pub command: Option<String>,
    /// The command's arguments.
    pub args: Vec<String>,
}

/// One command of the tool: its name, usage line and what it does.
#[derive(Debug, PartialEq, Eq)]
pub struct Command {
    pub name: &'static str,
    pub args: &'static [&'static str],
    pub summary: &'static str,
    pub detail: &'static str,
}

pub const COMMANDS: &[Command] = &[
    Command {
        name: "size",
        args: &["<server:port>"],
        summary: "Total bytes a dump of the server's active images would take.",
        detail: "server:port: the Glance API to measure (uses the target token, as Glance does, \
                 or the source token when no target token is set).",
    },
    Command {
        name: "dump",
        args: &["<server:port>", "<path>"],
        summary: "Write every image of a server to a local directory.",
        detail: "Writes <path>/<id> (the image's JSON) and, for active images unless \
                 --metaonly, <path>/<id>.img (its data). An image whose metadata file \
                 exists is skipped.\nserver:port: the source Glance API. path: an existing \
                 directory.",
    },
    Command {
        name: "load",
        args: &["<server:port>", "<path>"],
        summary: "Load a directory written by dump into a server.",
        detail: "An image present on the server gets the differing fields updated; an absent \
                 one is created with the same id and its data uploaded from <id>.img (absent \
                 images without data are skipped).\nserver:port: the target Glance API. \
                 path: a directory written by dump.",
    },
    Command {
        name: "livecopy",
        args: &["<fromserver:port>", "<toserver:port>"],
        summary: "Copy the images of one server into another.",
        detail: "Active target images get the differing fields updated; active source images \
                 absent from the target are created with the same id and their data streamed \
                 from the source (with --metaonly nothing is created).\nfromserver:port: the \
                 source Glance API. toserver:port: the target Glance API.",
    },
    Command {
        name: "compare",
        args: &["<fromserver:port>", "<toserver:port>"],
        summary: "List the images that differ between two servers.",
        detail: "Prints each source image missing from the target and each image whose \
                 replicated fields differ.\nfromserver:port: the source Glance API. \
                 toserver:port: the target Glance API.",
    },
    Command {
        name: "help",
        args: &["<command>"],
        summary: "Show the help of one command.",
        detail: "command: one of size, dump, load, livecopy, compare.",
    },
];

fn commands_help() -> String {
    let mut s = String::from("Commands:\n");
    for c in COMMANDS {
        s.push_str(&format!("  {:<9} {}\n", c.name, c.summary));
    }
    s.push_str("\nRun `glance-replicator help <command>` for a command's arguments.");
    s
}

pub fn command(name: &str) -> Option<&'static Command> {
    COMMANDS.iter().find(|c| c.name == name)
}

/// The help text of one command, as `help <command>` prints it.
pub fn command_help(c: &Command) -> String {
    format!(
        "Usage: glance-replicator [options] {} {}\n\n{}\n\n{}",
        c.name,
        c.args.join(" "),
        c.summary,
        c.detail
    )
}

/// A Glance API named on the command line as `host:port` (`http://` or `https://` may be
/// put in front; IPv6 hosts go in brackets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    pub scheme: &'static str,
    pub host: String,
    pub port: u16,
}

impl Server {
    pub fn base_url(&self) -> String {
        format!("{}://{}:{}", self.scheme, self.host, self.port)
    }
}

impl std::fmt::Display for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

impl std::str::FromStr for Server {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("'{s}' is not a valid host:port");
        let (scheme, rest) = if let Some(r) = s.strip_prefix("https://") {
            ("https", r)
        } else if let Some(r) = s.strip_prefix("http://") {
            ("http", r)
        } else {
            ("http", s)
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = rest.rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port.parse().ok().filter(|p| *p > 0).ok_or_else(bad)?;
        let valid_host = if let Some(inner) = host.strip_prefix('[') {
            inner
                .strip_suffix(']')
                .is_some_and(|h| h.parse::<std::net::Ipv6Addr>().is_ok())
        } else {
            !host.is_empty()
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_')
        };
        if !valid_host {
            return Err(bad());
        }
        Ok(Server {
            scheme,
            host: host.to_owned(),
            port,
        })
    }
}

/// A command with its arguments checked.
#[derive(Debug, PartialEq, Eq)]
pub enum Job {
    Size(Server),
    Dump(Server, PathBuf),
    Load(Server, PathBuf),
    Livecopy(Server, Server),
    Compare(Server, Server),
    Help(&'static Command),
}

/// Why the words on the command line make no job: print `help` (if any), then `ERROR: message`.
#[derive(Debug)]
pub struct Usage {
    pub help: Option<&'static Command>,
    pub message: String,
}

pub fn job(name: Option<&str>, args: &[String]) -> Result<Job, Usage> {
    let Some(name) = name else {
        return Err(Usage {
            help: None,
            message: "Please specify a command".into(),
        });
    };
    let Some(c) = command(name) else {
        return Err(Usage {
            help: None,
            message: format!("Unknown command: {name}"),
        });
    };
    let usage = |message: String| Usage {
        help: Some(c),
        message,
    };
    if args.len() != c.args.len() {
        return Err(usage(format!(
            "{name} takes {} argument(s) ({}), {} given",
            c.args.len(),
            c.args.join(" "),
            args.len()
        )));
    }
    let server = |i: usize| args[i].parse::<Server>().map_err(usage);
    Ok(match name {
        "size" => Job::Size(server(0)?),
        "dump" => Job::Dump(server(0)?, PathBuf::from(&args[1])),
        "load" => Job::Load(server(0)?, PathBuf::from(&args[1])),
        "livecopy" => Job::Livecopy(server(0)?, server(1)?),
        "compare" => Job::Compare(server(0)?, server(1)?),
        _ => Job::Help(command(&args[0]).ok_or_else(|| Usage {
            help: Some(c),
            message: format!("Unknown command: {}", args[0]),
        })?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn host_port_pairs_parse_as_glance_takes_them() {
        let s: Server = "glance.example.org:9292".parse().unwrap();
        assert_eq!(s.base_url(), "http://glance.example.org:9292");
        let s: Server = "[::1]:9292".parse().unwrap();
        assert_eq!(s.base_url(), "http://[::1]:9292");
        let s: Server = "https://10.0.0.1:443".parse().unwrap();
        assert_eq!(s.base_url(), "https://10.0.0.1:443");
        for bad in [
            "nohost",
            ":9292",
            "host:",
            "host:0",
            "host:70000",
            "ho st:1",
            "[zz]:1",
        ] {
            assert!(bad.parse::<Server>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_command_with_the_wrong_arguments_names_its_help() {
        let err = job(Some("livecopy"), &words("a:1")).unwrap_err();
        assert_eq!(err.help.unwrap().name, "livecopy");
        let err = job(Some("dump"), &words("nohost /tmp")).unwrap_err();
        assert!(err.message.contains("nohost"), "{}", err.message);
        assert!(job(Some("frobnicate"), &[]).unwrap_err().help.is_none());
        assert!(job(None, &[]).is_err());
    }

    #[test]
    fn commands_parse_into_jobs() {
        assert_eq!(
            job(Some("compare"), &words("a:1 b:2")).unwrap(),
            Job::Compare("a:1".parse().unwrap(), "b:2".parse().unwrap())
        );
        assert!(matches!(
            job(Some("help"), &words("load")).unwrap(),
            Job::Help(c) if c.name == "load"
        ));
    }
}
