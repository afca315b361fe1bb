//! A rotation endorsement file (`--rotation-endorsement`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sigil_proto::endorsement::Endorsement;

fuzz_target!(|data: &[u8]| {
    let Some(text) = sigil_fuzz::text(data) else {
        return;
    };
    let Ok(e) = Endorsement::parse(text) else {
        return;
    };
    let _ = e.verify_signature();
    let back = e.to_json();
    let map = back.as_object().expect("an object");
    assert_eq!(Endorsement::from_map(map).as_ref(), Ok(&e));
    assert_eq!(Endorsement::parse(&back.to_string()).as_ref(), Ok(&e));
});
