//! Options of `glance-replicator` (Glance registers these two as config-file options only;
//! `-t/--token` on the command line sets both).

use super::{opt, Opt};

pub const OPTIONS: &[Opt] = &[
    opt(
        "DEFAULT",
        "sourcetoken",
        None,
        "glance-replicator: token sent as X-Auth-Token to the source server",
    ),
    opt(
        "DEFAULT",
        "targettoken",
        None,
        "glance-replicator: token sent as X-Auth-Token to the target server",
    ),
];
