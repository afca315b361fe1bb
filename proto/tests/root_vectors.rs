//! Malformed root-role documents in `tests/vectors/root/`: each is refused
//! with its own error, named in `cases.json`.

// Test code: an unwrap is an assertion.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use serde_json::Value;
use sigil_proto::root::{Keyset, Root, Signed, Statement};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors/root")
}

#[test]
fn every_malformed_document_gets_its_own_error() {
    let cases: Value =
        serde_json::from_str(&std::fs::read_to_string(dir().join("cases.json")).unwrap()).unwrap();
    let cases = cases.as_array().unwrap();
    assert!(cases.len() >= 12);
    let mut messages = std::collections::BTreeSet::new();
    for c in cases {
        let file = c["file"].as_str().unwrap();
        let text = std::fs::read_to_string(dir().join(file)).unwrap();
        let err = match c["type"].as_str().unwrap() {
            "root" => Signed::<Root>::parse(&text).map(|_| ()),
            "keyset" => Signed::<Keyset>::parse(&text).map(|_| ()),
            "statement" => Signed::<Statement>::parse(&text).map(|_| ()),
            t => panic!("type {t}"),
        }
        .expect_err(file)
        .to_string();
        let want = c["error"].as_str().unwrap();
        assert!(err.contains(want), "{file}: expected {want:?}, got {err}");
        messages.insert(err);
    }
    assert_eq!(messages.len(), cases.len(), "two vectors share one error");
}

#[test]
fn the_valid_vector_parses() {
    let text = std::fs::read_to_string(dir().join("valid.root.json")).unwrap();
    let r = Signed::<Root>::parse(&text).unwrap();
    assert_eq!(r.signed.version, 1);
    let oversize = format!("{}{}", " ".repeat(64 * 1024), text);
    assert!(Signed::<Root>::parse(&oversize)
        .unwrap_err()
        .to_string()
        .contains("more than the 65536 allowed"));
}
