//! Options of delayed delete, the scrubber, notifications and purge.

use super::Opt;

pub const OPTIONS: &[Opt] = &[];
