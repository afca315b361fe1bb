//! A chain file (`sigil verify chain`), as it comes: unpinned, then pinned
//! to its first receipt's key with the file's rotation endorsements.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sigil_proto::chain::{self, split_lines, Options};
use sigil_proto::receipt::{self, Entry};

fuzz_target!(|data: &[u8]| {
    let Some(text) = sigil_fuzz::text(data) else {
        return;
    };
    let _ = chain::verify(text, &Options::default());
    let first_key = split_lines(text)
        .into_iter()
        .find_map(|l| match receipt::parse_entry(l) {
            Ok(Entry::Receipt(r)) => Some(r.signer_key),
            _ => None,
        });
    if let Some(key) = first_key {
        let opts = Options {
            pinned: Some(key.to_lowercase()),
            endorsements_from_file: true,
            ..Options::default()
        };
        let _ = chain::verify(text, &opts);
    }
});
