//! A producer's record, checked before it reaches a chain.
//!
//! The producer sends action_record members in Pipelock's names; the daemon
//! owns the members that place a receipt in a chain. Everything refused here
//! is refused before a sequence number is taken, so nothing is appended.

use serde_json::{Map, Value};
use sigil_proto::receipt::schema::{ACTION_RECORD, ACTION_TYPES};
use sigil_proto::{json, timestamp};

use crate::Error;

/// Members the daemon sets; a producer that sends one is refused.
pub const DAEMON_OWNED: [&str; 7] = [
    "version",
    "timestamp",
    "chain_prev_hash",
    "chain_seq",
    "run_nonce",
    "key_transition",
    "session_control",
];

/// The daemon's own record space: what its session, rotation, revocation
/// and ledger receipts say about themselves. A producer record that looks
/// like one (a "revocation" appended by a producer) is refused.
pub mod reserved {
    /// Target scheme of the daemon's own receipts.
    pub const TARGET_SCHEME: &str = "sigil://";
    /// Principals the daemon writes.
    pub const PRINCIPALS: [&str; 2] = ["sigil", "sigil-admin"];
    /// The daemon's actor.
    pub const ACTOR: &str = "sigild";
    /// Transports of the daemon's own receipts.
    pub const TRANSPORTS: [&str; 2] = ["receipt_session", "sigil_admin"];
}

/// Size limits on records.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest record JSON, in bytes.
    pub max_record_bytes: usize,
    /// Largest single string value, in bytes.
    pub max_field_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_record_bytes: 64 * 1024,
            max_field_bytes: 16 * 1024,
        }
    }
}

/// Parses and checks a record. Returns its members, without the daemon's.
pub fn parse(text: &str, limits: &Limits) -> Result<Map<String, Value>, Error> {
    let bad = |m: String| Err(Error::InvalidArgument(m));
    if text.len() > limits.max_record_bytes {
        return bad(format!(
            "record: {} bytes is over the limit of {} bytes",
            text.len(),
            limits.max_record_bytes
        ));
    }
    let value = json::parse(text).map_err(|e| Error::InvalidArgument(format!("record: {e}")))?;
    let Value::Object(record) = value else {
        return bad("record: must be a JSON object".into());
    };
    for key in record.keys() {
        if DAEMON_OWNED.contains(&key.as_str()) {
            return bad(format!("record.{key}: set by the daemon; leave it out"));
        }
        if ACTION_RECORD.field(key).is_none() {
            return bad(format!("record: unknown field {key:?}"));
        }
    }
    for (key, v) in &record {
        check_value(v, &format!("record.{key}"), limits)?;
    }
    for name in ["action_type", "target", "verdict", "transport"] {
        match record.get(name) {
            Some(Value::String(s)) if !s.is_empty() => {}
            Some(Value::String(_)) | None | Some(Value::Null) => {
                return bad(format!("record.{name}: required and must not be empty"))
            }
            Some(_) => return bad(format!("record.{name}: must be a string")),
        }
    }
    check_reserved(&record)?;
    let action_type = record
        .get("action_type")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !ACTION_TYPES.contains(&action_type) {
        return bad(format!(
            "record.action_type: {action_type:?} is not one of {}",
            ACTION_TYPES.join(", ")
        ));
    }
    if let Some(id) = record.get("action_id") {
        if id.as_str().is_none_or(str::is_empty) {
            return bad("record.action_id: must be a non-empty string when given".into());
        }
    }
    check_kinds(&record)?;
    if let Some(Value::Array(sources)) = record.get("recent_taint_sources") {
        for (i, src) in sources.iter().enumerate() {
            let ts = src.get("timestamp").and_then(Value::as_str).unwrap_or("");
            if !timestamp::is_canonical(ts) {
                return bad(format!(
                    "record.recent_taint_sources[{i}].timestamp: {ts:?} must be UTC RFC 3339 \
                     as Go writes it (e.g. 2026-04-15T12:00:00.5Z: Z, no trailing zeros)"
                ));
            }
        }
    }
    Ok(record)
}

/// Refuses the members that would make a record pass for one of sigild's
/// own: its target scheme, principals, actor and transports.
fn check_reserved(record: &Map<String, Value>) -> Result<(), Error> {
    let field = |k: &str| record.get(k).and_then(Value::as_str).unwrap_or("");
    if field("target")
        .to_ascii_lowercase()
        .starts_with(reserved::TARGET_SCHEME)
    {
        return Err(Error::InvalidArgument(format!(
            "record.target: {}... is reserved for sigild's own receipts",
            reserved::TARGET_SCHEME
        )));
    }
    for (member, values) in [
        ("principal", &reserved::PRINCIPALS[..]),
        ("actor", &[reserved::ACTOR][..]),
        ("transport", &reserved::TRANSPORTS[..]),
    ] {
        if values.contains(&field(member)) {
            return Err(Error::InvalidArgument(format!(
                "record.{member}: {:?} is reserved for sigild's own receipts",
                field(member)
            )));
        }
    }
    Ok(())
}

/// NUL bytes and string sizes, at any depth.
fn check_value(v: &Value, path: &str, limits: &Limits) -> Result<(), Error> {
    match v {
        Value::String(s) => {
            if s.contains('\0') {
                return Err(Error::InvalidArgument(format!(
                    "{path}: contains a NUL byte"
                )));
            }
            if s.len() > limits.max_field_bytes {
                return Err(Error::InvalidArgument(format!(
                    "{path}: {} bytes is over the limit of {} bytes",
                    s.len(),
                    limits.max_field_bytes
                )));
            }
            Ok(())
        }
        Value::Array(a) => a
            .iter()
            .enumerate()
            .try_for_each(|(i, x)| check_value(x, &format!("{path}[{i}]"), limits)),
        Value::Object(m) => m.iter().try_for_each(|(k, x)| {
            if k.contains('\0') {
                return Err(Error::InvalidArgument(format!(
                    "{path}: a key contains a NUL byte"
                )));
            }
            check_value(x, &format!("{path}.{k}"), limits)
        }),
        Value::Number(n) if n.is_f64() => Err(Error::InvalidArgument(format!(
            "{path}: receipts carry integers from -2^63 to 2^64-1 only, not {n}"
        ))),
        _ => Ok(()),
    }
}

/// Kinds of the members, checked against the format's field table.
/// Nested members are checked where the record is encoded, once, by the
/// chain's sequencer (it refuses before taking a sequence number).
fn check_kinds(record: &Map<String, Value>) -> Result<(), Error> {
    for (key, v) in record {
        let Some(field) = ACTION_RECORD.field(key) else {
            continue;
        };
        if !field.kind.accepts(v) {
            return Err(Error::InvalidArgument(format!(
                "record.{key}: must be {}",
                field.kind.describe()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse(text, &Limits::default()).unwrap_err().to_string()
    }

    const OK: &str =
        r#"{"action_type":"read","target":"https://x","verdict":"allow","transport":"https"}"#;

    #[test]
    fn accepts_a_minimal_record() {
        assert_eq!(parse(OK, &Limits::default()).unwrap().len(), 4);
    }

    #[test]
    fn each_bad_input_names_its_field() {
        const BASE: &str = r#""action_type":"read","target":"t","verdict":"v","transport":"x""#;
        let cases: &[(&str, &str)] = &[
            (
                r#"{"target":"t","verdict":"v","transport":"x"}"#,
                "record.action_type",
            ),
            (
                r#"{"action_type":"read","verdict":"v","transport":"x"}"#,
                "record.target",
            ),
            (
                r#"{"action_type":"read","target":"t","transport":"x"}"#,
                "record.verdict",
            ),
            (
                r#"{"action_type":"read","target":"t","verdict":"v"}"#,
                "record.transport",
            ),
            (
                r#"{"action_type":"fly","target":"t","verdict":"v","transport":"x"}"#,
                "\"fly\"",
            ),
        ];
        for (record, want) in cases {
            assert!(err(record).contains(want), "{record}: {}", err(record));
        }
        let extra: &[(&str, &str)] = &[
            (r#""colour":1"#, "\"colour\""),
            (r#""chain_seq":1"#, "record.chain_seq: set by the daemon"),
            (r#""shield":7"#, "record.shield: must be an object"),
            (r#""method":7"#, "record.method: must be a string"),
            (
                r#""principal":"a\u0000b""#,
                "record.principal: contains a NUL",
            ),
            (r#""a":1,"a":2"#, "duplicate"),
            (
                r#""principal":"sigil-admin""#,
                "record.principal: \"sigil-admin\" is reserved",
            ),
            (
                r#""actor":"sigild""#,
                "record.actor: \"sigild\" is reserved",
            ),
        ];
        for (member, want) in extra {
            let record = format!("{{{BASE},{member}}}");
            assert!(err(&record).contains(want), "{record}: {}", err(&record));
        }
        let big = format!(
            r#"{{"action_type":"read","target":"{}","verdict":"v","transport":"x"}}"#,
            "t".repeat(20_000)
        );
        assert!(err(&big).contains("record.target: 20000 bytes"));
        for (target, transport, want) in [
            (
                "sigil://keys/mediator.v1/revoke",
                "x",
                "record.target: sigil://",
            ),
            ("SIGIL://session/open", "x", "record.target: sigil://"),
            (
                "https://x",
                "sigil_admin",
                "record.transport: \"sigil_admin\"",
            ),
            ("https://x", "receipt_session", "record.transport"),
        ] {
            let r = format!(
                r#"{{"action_type":"read","target":"{target}","verdict":"v","transport":"{transport}"}}"#
            );
            assert!(err(&r).contains(want), "{r}: {}", err(&r));
        }
        let huge = format!(
            r#"{{"action_type":"read","target":"t","verdict":"v","transport":"x","intent":"{}"}}"#,
            "i".repeat(70_000)
        );
        assert!(err(&huge).contains("over the limit of 65536"));
    }
}
