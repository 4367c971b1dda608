//! Options of interoperable import, tasks and multiple stores.
//!
//! Each store named in `enabled_backends` also reads its own section, which is not in this
//! table because its name is the operator's: `[fast] filesystem_store_datadir = ...` and
//! `store_description = ...` (or `GLANCE__FAST__FILESYSTEM_STORE_DATADIR`).

use super::{opt, Opt};

pub const OPTIONS: &[Opt] = &[
    opt(
        "DEFAULT",
        "enabled_import_methods",
        Some("glance-direct,web-download,copy-image"),
        "Import methods offered by POST /v2/images/{id}/import: glance-direct, web-download, copy-image, glance-download (list; Glance's ['a', 'b'] form works too)",
    ),
    opt(
        "DEFAULT",
        "enabled_backends",
        None,
        "Stores as id:driver pairs (fast:file, cheap:file); each reads [id] filesystem_store_datadir. Unset: one store, 'file'",
    ),
    opt(
        "glance_store",
        "default_backend",
        None,
        "Store id new data goes to when enabled_backends is set (default: the first)",
    ),
    opt(
        "os_glance_staging_store",
        "filesystem_store_datadir",
        None,
        "Where staged and downloaded data waits for import; shared storage when several API nodes run (default: <data-dir>/staging, or <filesystem_store_datadir>/.staging)",
    ),
    opt(
        "import_filtering_opts",
        "allowed_schemes",
        Some("http,https"),
        "URI schemes web-download may fetch (if set, disallowed_schemes is ignored)",
    ),
    opt(
        "import_filtering_opts",
        "disallowed_schemes",
        None,
        "URI schemes web-download refuses",
    ),
    opt(
        "import_filtering_opts",
        "allowed_hosts",
        None,
        "Hosts web-download may fetch from (if set, disallowed_hosts is ignored)",
    ),
    opt(
        "import_filtering_opts",
        "disallowed_hosts",
        None,
        "Hosts web-download refuses",
    ),
    opt(
        "import_filtering_opts",
        "allowed_ports",
        Some("80,443"),
        "Ports web-download may connect to (if set, disallowed_ports is ignored)",
    ),
    opt(
        "import_filtering_opts",
        "disallowed_ports",
        None,
        "Ports web-download refuses",
    ),
    opt(
        "task",
        "task_time_to_live",
        Some("48"),
        "Hours a finished task is kept before it expires",
    ),
    opt(
        "import_worker",
        "enabled",
        Some("true"),
        "Run an import worker in this API process (consumes glance.v1.import)",
    ),
    opt(
        "import_worker",
        "concurrency",
        Some("2"),
        "Imports one worker runs at a time",
    ),
    opt(
        "import_worker",
        "connect_timeout",
        Some("30"),
        "Seconds web-download waits to connect",
    ),
    opt(
        "import_worker",
        "read_timeout",
        Some("60"),
        "Seconds web-download waits for the next bytes before giving up",
    ),
    opt(
        "import_worker",
        "max_redirects",
        Some("5"),
        "Redirects web-download follows (each hop is checked against import_filtering_opts)",
    ),
    opt(
        "import_worker",
        "stale_after",
        Some("600"),
        "Seconds without progress after which a processing import is failed and its image recovered",
    ),
];
