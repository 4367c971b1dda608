//! Any request body as a JSON-patch document in both media types: parsed into changes or
//! refused with a 4xx, never a panic.
#![no_main]

use glance_api::images::patch::{parse, Dialect};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    for dialect in [Dialect::V20, Dialect::V21] {
        if let Err(e) = parse(body, dialect) {
            use actix_web::ResponseError;
            let status = e.status_code();
            assert!(status.is_client_error(), "{status} for a patch body: {e}");
        }
    }
});
