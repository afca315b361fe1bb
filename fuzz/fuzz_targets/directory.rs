//! A key directory document (`sigil verify --directory`), as fetched and
//! re-signed by fuzz keys (see `sigil_fuzz::resign_directory`) so that the
//! lineage walk, revocations and the high-water mark are reached.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sigil_proto::directory::Directory;
use sigil_proto::lineage::{Freshness, HighWater};

fuzz_target!(|data: &[u8]| {
    let Some(text) = sigil_fuzz::text(data) else {
        return;
    };
    let Ok(d) = Directory::parse(text) else {
        return;
    };
    assert_eq!(
        Directory::parse(&d.to_json()).as_ref(),
        Ok(&d),
        "to_json round trip"
    );
    let _ = d.lineage(None, &Freshness::any());

    let (signed, root) = sigil_fuzz::resign_directory(&d);
    let _ = signed.lineage(None, &Freshness::any());
    let fresh = Freshness {
        at: time::macros::datetime!(2026-06-01 00:00 UTC),
        max_age: Some(time::Duration::days(1)),
    };
    let _ = signed.lineage(root.as_deref(), &fresh);
    let Ok(lineage) = signed.lineage(root.as_deref(), &Freshness::any()) else {
        return;
    };
    // A verifier's state: the first directory is accepted, the same one is
    // accepted again, and the state file reads back as written.
    let mut hw = HighWater::default();
    hw.advance(&lineage).expect("a first directory");
    let saved = hw.to_json();
    assert_eq!(HighWater::parse(&saved).as_ref(), Ok(&hw), "{saved}");
    if let Err(e) = hw.advance(&lineage) {
        panic!("the same directory again: {e}\n{saved}");
    }
});
