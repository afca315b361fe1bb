//! RFC 8785 canonical JSON of a strictly parsed document (the directory's
//! signing input). Canonicalization is idempotent: the canonical bytes
//! parse, and canonicalize to themselves.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sigil_proto::{jcs, json};

fuzz_target!(|data: &[u8]| {
    let Some(text) = sigil_fuzz::text(data) else {
        return;
    };
    let Ok(value) = json::parse(text) else {
        return;
    };
    let Ok(canonical) = jcs::canonicalize(&value) else {
        return;
    };
    assert_eq!(jcs::canonicalize_str(text).as_ref(), Ok(&canonical));
    let canonical_text = std::str::from_utf8(&canonical).expect("UTF-8");
    match jcs::canonicalize_str(canonical_text) {
        Ok(again) => assert_eq!(
            again,
            canonical,
            "not idempotent: {canonical_text} -> {}",
            String::from_utf8_lossy(&again)
        ),
        Err(e) => panic!("canonical form does not parse: {e}: {canonical_text}"),
    }
});
