//! Options of interoperable import, tasks and multiple stores.

use super::Opt;

pub const OPTIONS: &[Opt] = &[];
