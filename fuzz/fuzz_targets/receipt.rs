//! One receipt or flight-recorder entry (`sigil verify receipt`, each line
//! of a chain file). A parsed receipt re-encoded must parse back to the
//! same record and receipt hash; without `ext` (which is hashed as written,
//! and which sigild never writes), also once written as sigild writes a
//! chain line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sigil_proto::chain::split_lines;
use sigil_proto::policy::{check_policy, Policy};
use sigil_proto::gojson::escape_for_jsonl;
use sigil_proto::receipt::{self, Entry};

fuzz_target!(|data: &[u8]| {
    let Some(text) = sigil_fuzz::text(data) else {
        return;
    };
    let Ok(Entry::Receipt(r)) = receipt::parse_entry(text) else {
        return;
    };
    let _ = receipt::verify(&r, None);
    let _ = check_policy(&r, &Policy::default());
    let Ok(canonical) = r.canonical_record() else {
        return;
    };
    let hash = r.hash().expect("hash of a record that encodes");
    let bytes = receipt::receipt_bytes(
        &canonical,
        &r.signature,
        &r.signer_key,
        r.ext_raw.as_deref(),
    );
    let mut lines = vec![String::from_utf8(bytes.clone()).expect("UTF-8 receipt")];
    if r.ext_raw.is_none() {
        let line = String::from_utf8(escape_for_jsonl(&bytes)).expect("UTF-8 line");
        assert_eq!(
            split_lines(&line),
            [line.as_str()],
            "one line, as Python splits it"
        );
        lines.push(line);
    }
    for line in lines {
        let again = match receipt::parse_entry(&line) {
            Ok(Entry::Receipt(again)) => again,
            other => panic!("the re-encoded receipt does not parse back: {other:?}\n{line}"),
        };
        assert_eq!(again.canonical_record().as_ref(), Ok(&canonical));
        assert_eq!(again.hash().as_ref(), Ok(&hash), "{line}");
    }
});
