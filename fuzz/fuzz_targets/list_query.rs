//! Any query string of `GET /v2/images`: parsed into a list request within the configured
//! page limit, or refused, never a panic.
#![no_main]

use glance_api::images::query::parse;
use glance_api::ApiConfig;
use glance_domain::RequestContext;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|query: &[u8]| {
    let Ok(query) = std::str::from_utf8(query) else {
        return;
    };
    let config = ApiConfig::default();
    let member = RequestContext {
        request_id: "req-fuzz".into(),
        project_id: Some("p1".into()),
        roles: vec!["member".into(), "reader".into()],
        ..RequestContext::default()
    };
    for ctx in [RequestContext::admin("req-fuzz"), member] {
        if let Ok(list) = parse(query, &ctx, &config) {
            assert!(list.limit <= config.api_limit_max);
        }
    }
});
