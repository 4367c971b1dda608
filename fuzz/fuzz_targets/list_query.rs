//! Any query string of `GET /v2/images`: parsed into a list request within the configured
//! page limit, or refused, never a panic.
#![no_main]

use glance_domain::RequestContext;
use glance_request::list_query::{parse, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|query: &[u8]| {
    let Ok(query) = std::str::from_utf8(query) else {
        return;
    };
    let limits = Limits::default();
    let member = RequestContext {
        request_id: "req-fuzz".into(),
        project_id: Some("p1".into()),
        roles: vec!["member".into(), "reader".into()],
        ..RequestContext::default()
    };
    for ctx in [RequestContext::admin("req-fuzz"), member] {
        if let Ok(list) = parse(query, &ctx, limits) {
            assert!(list.limit <= limits.max);
        }
    }
});
