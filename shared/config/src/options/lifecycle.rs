//! Options of delayed delete, the scrubber, notifications and purge.
//!
//! `[DEFAULT] delayed_delete` itself is a core option (the API reads it).

use super::{opt, Opt};

pub const OPTIONS: &[Opt] = &[
    opt(
        "DEFAULT",
        "scrub_time",
        Some("0"),
        "Seconds a pending_delete image waits before the scrubber removes its data",
    ),
    opt(
        "DEFAULT",
        "scrub_pool_size",
        Some("1"),
        "Images one scrubber process deletes in parallel",
    ),
    opt(
        "DEFAULT",
        "wakeup_time",
        Some("300"),
        "Seconds between two scrub runs of glance-scrubber --daemon",
    ),
    opt(
        "DEFAULT",
        "daemon",
        Some("false"),
        "glance-scrubber runs as a daemon (same as --daemon)",
    ),
    opt(
        "DEFAULT",
        "disabled_notifications",
        Some(""),
        "Notifications not to send: event types (image.create) or groups (image, image.member)",
    ),
    opt(
        "oslo_messaging_notifications",
        "driver",
        Some("messagingv2"),
        "Notification driver: noop sends none; anything else publishes on the bus's event exchange",
    ),
    opt(
        "scrubber",
        "test_delete_delay_ms",
        Some("0"),
        "Test only: pause before each store delete, to observe a scrubber mid-job",
    ),
];
