//! "Go-JSON": the bytes Go's `encoding/json` writes, which ActionReceipt v1
//! hashes and signs (spec §1.4).

/// Appends `s` as a quoted JSON string with Go's escapes: `\"`, `\\`, `\b`,
/// `\f`, `\n`, `\r`, `\t`, other C0 as `\u00xx`, and the HTML-safe escapes
/// of `<`, `>`, `&`, U+2028 and U+2029. Everything else is raw UTF-8.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let esc: Option<&[u8]> = match b {
            b'"' => Some(b"\\\""),
            b'\\' => Some(b"\\\\"),
            0x08 => Some(b"\\b"),
            0x0c => Some(b"\\f"),
            b'\n' => Some(b"\\n"),
            b'\r' => Some(b"\\r"),
            b'\t' => Some(b"\\t"),
            b'<' => Some(b"\\u003c"),
            b'>' => Some(b"\\u003e"),
            b'&' => Some(b"\\u0026"),
            _ => None,
        };
        if let Some(esc) = esc {
            out.extend_from_slice(&bytes[start..i]);
            out.extend_from_slice(esc);
            i += 1;
            start = i;
        } else if b < 0x20 {
            out.extend_from_slice(&bytes[start..i]);
            out.extend_from_slice(format!("\\u{b:04x}").as_bytes());
            i += 1;
            start = i;
        } else if b == 0xe2 && i + 2 < bytes.len() && bytes[i + 1] == 0x80 {
            // U+2028 / U+2029 are E2 80 A8 / E2 80 A9.
            match bytes[i + 2] {
                0xa8 | 0xa9 => {
                    out.extend_from_slice(&bytes[start..i]);
                    out.extend_from_slice(if bytes[i + 2] == 0xa8 {
                        b"\\u2028"
                    } else {
                        b"\\u2029"
                    });
                    i += 3;
                    start = i;
                }
                _ => i += 1,
            }
        } else {
            i += 1;
        }
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Rewrites Go-JSON bytes for a JSONL file: U+0085 (NEL), which Go leaves
/// raw, becomes `\u0085` because Python's `str.splitlines()` (used by
/// pipelock-verify) breaks lines on it. In valid UTF-8 the bytes C2 85 only
/// ever encode NEL, and in Go-JSON NEL only occurs inside strings, so a byte
/// replacement is exact and the line still decodes to the same value.
pub fn escape_for_jsonl(canonical: &[u8]) -> Vec<u8> {
    if !canonical.windows(2).any(|w| w == [0xc2, 0x85]) {
        return canonical.to_vec();
    }
    let mut out = Vec::with_capacity(canonical.len() + 8);
    let mut i = 0;
    while i < canonical.len() {
        if canonical[i] == 0xc2 && canonical.get(i + 1) == Some(&0x85) {
            out.extend_from_slice(b"\\u0085");
            i += 2;
        } else {
            out.push(canonical[i]);
            i += 1;
        }
    }
    out
}

/// Compacts raw JSON source (already known to be valid) the way
/// pipelock-verify re-emits the unsigned `ext` member: whitespace outside
/// strings removed, `< > &` U+2028 U+2029 inside strings escaped, everything
/// else (key order, number spelling, other escapes) kept as written.
pub fn compact_raw(raw: &str, out: &mut Vec<u8>) {
    let bytes = raw.as_bytes();
    let mut in_str = false;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if in_str {
            match b {
                b'\\' => {
                    out.push(b);
                    if let Some(&n) = bytes.get(i + 1) {
                        out.push(n);
                    }
                    i += 2;
                    continue;
                }
                b'"' => in_str = false,
                b'<' => {
                    out.extend_from_slice(b"\\u003c");
                    i += 1;
                    continue;
                }
                b'>' => {
                    out.extend_from_slice(b"\\u003e");
                    i += 1;
                    continue;
                }
                b'&' => {
                    out.extend_from_slice(b"\\u0026");
                    i += 1;
                    continue;
                }
                0xe2 if bytes.get(i + 1) == Some(&0x80)
                    && matches!(bytes.get(i + 2), Some(0xa8) | Some(0xa9)) =>
                {
                    out.extend_from_slice(if bytes[i + 2] == 0xa8 {
                        b"\\u2028"
                    } else {
                        b"\\u2029"
                    });
                    i += 3;
                    continue;
                }
                _ => {}
            }
            out.push(b);
        } else {
            match b {
                b' ' | b'\t' | b'\n' | b'\r' => {}
                b'"' => {
                    in_str = true;
                    out.push(b);
                }
                _ => out.push(b),
            }
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(s: &str) -> String {
        let mut v = Vec::new();
        write_str(&mut v, s);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn escapes_match_go() {
        assert_eq!(enc("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(enc("\u{8}\u{c}\n\r\t"), r#""\b\f\n\r\t""#);
        assert_eq!(enc("\u{0}\u{1f}"), r#""\u0000\u001f""#);
        assert_eq!(enc("<a>&"), r#""\u003ca\u003e\u0026""#);
        assert_eq!(enc("\u{2028}\u{2029}"), r#""\u2028\u2029""#);
        assert_eq!(enc("/\u{7f}é\u{85}"), "\"/\u{7f}é\u{85}\"");
        assert_eq!(enc("\u{2027}€"), "\"\u{2027}€\"");
    }

    #[test]
    fn every_ascii_code_point_matches_the_go_table() {
        for c in 0u8..128 {
            let s = enc(&(c as char).to_string());
            let expect = match c {
                b'"' => "\"\\\"\"".to_string(),
                b'\\' => "\"\\\\\"".to_string(),
                8 => "\"\\b\"".into(),
                12 => "\"\\f\"".into(),
                10 => "\"\\n\"".into(),
                13 => "\"\\r\"".into(),
                9 => "\"\\t\"".into(),
                b'<' | b'>' | b'&' => format!("\"\\u{c:04x}\""),
                0..=0x1f => format!("\"\\u{c:04x}\""),
                _ => format!("\"{}\"", c as char),
            };
            assert_eq!(s, expect, "code point {c}");
        }
    }

    #[test]
    fn nel_is_escaped_for_jsonl_only() {
        let mut v = Vec::new();
        write_str(&mut v, "a\u{85}b");
        let line = escape_for_jsonl(&v);
        assert_eq!(line, br#""a\u0085b""#);
        let back: String = serde_json::from_slice(&line).unwrap();
        assert_eq!(back, "a\u{85}b");
    }

    #[test]
    fn compact_keeps_spelling_and_escapes_html() {
        let mut out = Vec::new();
        compact_raw("{ \"b\" : [1.50, 2e3],\n \"a\":\"x <y> \\\" &\"}", &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"b":[1.50,2e3],"a":"x \u003cy\u003e \" \u0026"}"#
        );
    }
}
