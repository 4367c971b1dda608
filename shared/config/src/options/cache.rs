//! Options of the image cache (`[DEFAULT] image_cache_*` and the cache workers).

use super::Opt;

pub const OPTIONS: &[Opt] = &[];
