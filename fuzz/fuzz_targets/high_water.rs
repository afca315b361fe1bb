//! A verifier's state file (`sigil verify --state`). A state must accept
//! the very directory it records again, and read back as it is written.
#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use sigil_proto::directory::{KeyEntry, KeyState};
use sigil_proto::lineage::{HighWater, Lineage, Revocation};
use sigil_proto::timestamp;

fn entry(keyid: &str, public_key: &str) -> KeyEntry {
    let mut e = KeyEntry::new("fuzz", 1, &[0; 32]);
    e.keyid = keyid.to_owned();
    e.public_key = public_key.to_owned();
    e
}

fuzz_target!(|data: &[u8]| {
    let Some(text) = sigil_fuzz::text(data) else {
        return;
    };
    let Ok(hw) = HighWater::parse(text) else {
        return;
    };
    assert_eq!(HighWater::parse(&hw.to_json()).as_ref(), Ok(&hw));
    for (root, seen) in &hw.roots {
        let Ok(signed_at) = timestamp::parse(&seen.signed_at) else {
            continue;
        };
        let mut versions = vec![entry("fuzz-root", root)];
        versions.extend(seen.versions.iter().map(|(id, pk)| entry(id, pk)));
        let mut revoked = HashMap::new();
        let mut all_parse = true;
        for (id, since) in &seen.revoked {
            match timestamp::parse(since) {
                Ok(t) => {
                    revoked.insert(
                        id.clone(),
                        Revocation {
                            keyid: id.clone(),
                            compromised_since: t,
                            reason: String::new(),
                            through: None,
                        },
                    );
                }
                Err(_) => all_parse = false,
            }
        }
        for v in &mut versions {
            if revoked.contains_key(&v.keyid) {
                v.state = KeyState::Revoked;
            }
        }
        let lineage = Lineage {
            versions,
            signed_at,
            revoked,
            retired: Default::default(),
            windows: Default::default(),
            speaker_version: None,
            certified_by: None,
        };
        let result = hw.clone().advance(&lineage);
        if all_parse {
            if let Err(e) = result {
                panic!("a state refuses the directory it records: {e}");
            }
        }
    }
});
