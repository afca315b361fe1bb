//! Timestamps as receipts, endorsements and directories carry them. What
//! parses formats in the canonical form, which parses to the same instant.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sigil_proto::timestamp;

fuzz_target!(|data: &[u8]| {
    let Some(text) = sigil_fuzz::text(data) else {
        return;
    };
    let canonical = timestamp::is_canonical(text);
    let Ok(t) = timestamp::parse(text) else {
        assert!(!canonical);
        return;
    };
    let s = timestamp::format(t);
    assert_eq!(canonical, s == text);
    assert_eq!(timestamp::parse(&s), Ok(t), "{text} -> {s}");
    assert!(timestamp::is_canonical(&s), "{text} -> {s}");
});
