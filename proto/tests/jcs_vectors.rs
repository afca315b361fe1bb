//! RFC 8785 vectors: every input file canonicalizes to its output byte for
//! byte, and every number line of the ECMAScript test file formats exactly.

// Test code: an unwrap is an assertion.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

fn vectors() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors/jcs")
}

#[test]
fn every_input_canonicalizes_to_its_output() {
    let mut n = 0;
    for entry in std::fs::read_dir(vectors().join("input")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_owned();
        let input = std::fs::read_to_string(&path).unwrap();
        let expected = std::fs::read(vectors().join("output").join(&name)).unwrap();
        let got = sigil_proto::jcs::canonicalize_str(&input).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&expected),
            "{name:?}"
        );
        let hex_name = PathBuf::from(&name).with_extension("txt");
        let hex_text = std::fs::read_to_string(vectors().join("outhex").join(hex_name)).unwrap();
        let hex_bytes: Vec<u8> = hex_text
            .split_whitespace()
            .map(|h| u8::from_str_radix(h, 16).unwrap())
            .collect();
        assert_eq!(got, hex_bytes, "{name:?} (outhex)");
        n += 1;
    }
    assert_eq!(n, 6);
}

#[test]
fn ten_thousand_es6_numbers_format_exactly() {
    let text = std::fs::read_to_string(vectors().join("es6numbers-10k.txt")).unwrap();
    let mut n = 0;
    for line in text.lines() {
        let (bits, expected) = line.split_once(',').unwrap();
        let f = f64::from_bits(u64::from_str_radix(bits, 16).unwrap());
        assert!(f.is_finite(), "line {line}");
        let got = sigil_proto::jcs::canonicalize(&serde_json::json!(f)).unwrap();
        assert_eq!(std::str::from_utf8(&got).unwrap(), expected, "line {line}");
        n += 1;
    }
    assert_eq!(n, 10_000);
}

#[test]
fn duplicate_keys_are_refused_not_collapsed() {
    assert!(sigil_proto::jcs::canonicalize_str(r#"{"a":1,"a":2}"#).is_err());
}
