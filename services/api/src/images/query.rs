//! `GET /v2/images` query parameters into a registry [`ListImages`]: the parser is
//! `glance_request::list_query` (fuzzed apart from the server); this is its configuration.

use glance_domain::RequestContext;
use glance_proto::registry::ListImages;
use glance_request::list_query::{self, Limits};

use crate::error::ApiResult;
use crate::ApiConfig;

/// Parses the query string of an image list within the configured page sizes.
pub fn parse(query: &str, ctx: &RequestContext, cfg: &ApiConfig) -> ApiResult<ListImages> {
    Ok(list_query::parse(query, ctx, limits(cfg))?)
}

pub(crate) fn limits(cfg: &ApiConfig) -> Limits {
    Limits {
        default: cfg.limit_param_default,
        max: cfg.api_limit_max,
    }
}

/// A `limit` query parameter of any listing (see [`list_query::limit_param`]).
pub(crate) fn limit_param(value: &str, max: u32) -> ApiResult<u32> {
    Ok(list_query::limit_param(value, max)?)
}

/// A `sort_dir` query parameter of the tasks and metadefs lists: `true` for `asc`.
pub(crate) fn ascending_param(value: &str) -> ApiResult<bool> {
    Ok(list_query::ascending_param(value)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configured_page_sizes_bound_the_list() {
        let cfg = ApiConfig {
            limit_param_default: 7,
            api_limit_max: 9,
            ..ApiConfig::default()
        };
        let ctx = RequestContext::default();
        assert_eq!(parse("", &ctx, &cfg).unwrap().limit, 7);
        assert_eq!(parse("limit=50", &ctx, &cfg).unwrap().limit, 9);
    }
}
