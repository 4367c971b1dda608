//! Options of the image cache (`[DEFAULT] image_cache_*` and the cache workers).

use super::{opt, Opt};

pub const OPTIONS: &[Opt] = &[
    opt(
        "DEFAULT",
        "image_cache_max_size",
        Some("10737418240"),
        "Bytes the image cache may hold before the pruner evicts least recently accessed images",
    ),
    opt(
        "DEFAULT",
        "image_cache_stall_time",
        Some("86400"),
        "Seconds after which the cleaner removes an incomplete cache file",
    ),
    opt(
        "glance_cache",
        "node_id",
        None,
        "This API node's name in prefetch routing keys (default: <hostname>-<bind_port>)",
    ),
    opt(
        "glance_cache",
        "worker_concurrency",
        Some("2"),
        "Images one cache worker fetches at a time",
    ),
    opt(
        "glance_cache",
        "prune_interval",
        Some("600"),
        "Seconds between the cache worker's prune runs (0 = never)",
    ),
    opt(
        "glance_cache",
        "clean_interval",
        Some("3600"),
        "Seconds between the cache worker's clean runs (0 = never)",
    ),
    opt(
        "glance_cache",
        "fetch_rate_limit",
        Some("0"),
        "Bytes per second a cache worker reads the store at (0 = unlimited; for tests)",
    ),
];
