/// One option we understand: where it lives, its default and what it does.
#[derive(Debug, Clone, Copy)]
pub struct Opt {
    pub section: &'static str,
    pub name: &'static str,
    pub default: Option<&'static str>,
    pub help: &'static str,
}

impl Opt {
    /// The environment variable that sets this option.
    pub fn env_name(&self) -> String {
        format!(
            "GLANCE__{}__{}",
            self.section.to_ascii_uppercase(),
            self.name.to_ascii_uppercase()
        )
    }
}

pub(crate) const fn opt(
    section: &'static str,
    name: &'static str,
    default: Option<&'static str>,
    help: &'static str,
) -> Opt {
    Opt {
        section,
        name,
        default,
        help,
    }
}

mod cache;
mod glare;
mod import;
mod import_plugins;
mod keystone;
mod lifecycle;
mod mesh;
mod policy;
mod replicator;
mod upload;

pub use glare::GlareSettings;
pub use mesh::MeshSettings;
pub use upload::UploadSettings;

/// Every option we understand: the core table, then one table per feature, each feature
/// keeping its options in a file of its own.
pub fn all() -> impl Iterator<Item = &'static Opt> {
    [
        CORE,
        cache::OPTIONS,
        lifecycle::OPTIONS,
        policy::OPTIONS,
        keystone::OPTIONS,
        import::OPTIONS,
        import_plugins::OPTIONS,
        mesh::OPTIONS,
        replicator::OPTIONS,
        upload::OPTIONS,
        glare::OPTIONS,
    ]
    .into_iter()
    .flatten()
}

/// The options of the core service, grouped by section.
const CORE: &[Opt] = &[
    opt(
        "DEFAULT",
        "bind_host",
        Some("127.0.0.1"),
        "Address the API listens on",
    ),
    opt(
        "DEFAULT",
        "bind_port",
        Some("9292"),
        "Port the API listens on",
    ),
    opt(
        "DEFAULT",
        "auth_strategy",
        None,
        "keystone | trusted-headers | tokens | noauth (default: keystone on a non-loopback bind; on loopback noauth for glance-all-in-one, trusted-headers for glance-api)",
    ),
    opt(
        "DEFAULT",
        "image_size_cap",
        Some("1099511627776"),
        "Largest image a user may upload, in bytes",
    ),
    opt(
        "DEFAULT",
        "api_limit_max",
        Some("1000"),
        "Largest page size a list may ask for",
    ),
    opt(
        "DEFAULT",
        "limit_param_default",
        Some("25"),
        "Page size when a list names none",
    ),
    opt(
        "DEFAULT",
        "hashing_algorithm",
        Some("sha512"),
        "Multihash algorithm for os_hash_value (sha512, sha384, sha256, sha1, md5)",
    ),
    opt(
        "DEFAULT",
        "delayed_delete",
        Some("false"),
        "Keep deleted images' data for the scrubber instead of removing it at once",
    ),
    opt(
        "DEFAULT",
        "image_cache_dir",
        None,
        "Directory of the node-local image cache",
    ),
    opt(
        "DEFAULT",
        "transport_url",
        None,
        "AMQP broker (rabbit://user:pass@host:5672/); absent = in-process bus",
    ),
    opt(
        "DEFAULT",
        "workers",
        None,
        "HTTP worker threads (default: number of cores)",
    ),
    opt(
        "database",
        "connection",
        None,
        "Database URL (sqlite://... or postgresql://...)",
    ),
    opt(
        "glance_store",
        "default_store",
        Some("file"),
        "Store new image data goes to",
    ),
    opt(
        "glance_store",
        "filesystem_store_datadir",
        None,
        "Directory of the filesystem store (default: <data-dir>/images)",
    ),
    opt(
        "image_format",
        "disk_formats",
        Some("ami,ari,aki,vhd,vhdx,vmdk,raw,qcow2,vdi,iso,ploop"),
        "disk_format values users may set",
    ),
    opt(
        "image_format",
        "container_formats",
        Some("ami,ari,aki,bare,ovf,ova,docker,compressed"),
        "container_format values users may set",
    ),
    opt(
        "image_format",
        "require_image_format_match",
        Some("true"),
        "Refuse uploads whose bytes do not match disk_format (415)",
    ),
    opt(
        "paste_deploy",
        "flavor",
        None,
        "Accepted for compatibility with Glance's paste pipelines; not used",
    ),
];
