//! Any request body as a JSON-patch document in both media types: parsed into changes or
//! refused with a 400, never a panic.
#![no_main]

use glance_request::patch::{parse, Dialect, Op};
use glance_request::ParseError;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    for dialect in [Dialect::V20, Dialect::V21] {
        match parse(body, dialect) {
            Ok(changes) => {
                for change in changes {
                    // A path names one member: never empty, and only `remove` has no value.
                    assert!(!change.key.is_empty());
                    assert_eq!(change.value.is_none(), change.op == Op::Remove);
                }
            }
            Err(ParseError::BadRequest(_)) => {}
            Err(e) => panic!("a patch body refused with {e:?}"),
        }
    }
});
