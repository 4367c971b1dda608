//! Any bytes, declared as any disk format, fed in pieces of any size: the inspector must
//! answer (accept or refuse) without panicking, and the same bytes fed whole or in pieces
//! must get the same verdict.
#![no_main]

use glance_domain::DiskFormat;
use glance_format::Inspector;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Some((&selector, data)) = input.split_first() else {
        return;
    };
    let format = DiskFormat::ALL[usize::from(selector) % DiskFormat::ALL.len()];
    let step = usize::from(selector / 16).max(1) * 7;

    let mut whole = Inspector::new(format);
    let whole_fed = whole.feed(data).map_err(|e| e.to_string());
    let whole = whole_fed.and_then(|()| {
        whole
            .finish()
            .map(|i| i.virtual_size)
            .map_err(|e| e.to_string())
    });

    let mut pieces = Inspector::new(format);
    let mut fed = Ok(());
    for chunk in data.chunks(step) {
        fed = pieces.feed(chunk).map_err(|e| e.to_string());
        if fed.is_err() {
            break;
        }
    }
    let pieces = fed.and_then(|()| {
        pieces
            .finish()
            .map(|i| i.virtual_size)
            .map_err(|e| e.to_string())
    });
    assert_eq!(
        whole.is_ok(),
        pieces.is_ok(),
        "{format:?}: {whole:?} vs {pieces:?}"
    );
    if let (Ok(a), Ok(b)) = (&whole, &pieces) {
        assert_eq!(a, b, "{format:?}: virtual sizes differ");
    }
});
