//! Go-JSON canonical bytes of an action record (spec §2.4), the digest that
//! is signed (§2.5) and the receipt hash that links a chain (§2.6).

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::schema::{Emit, Field, Kind, Schema, ACTION_RECORD};
use crate::gojson::{compact_raw, write_str};
use crate::FormatError;

/// Go-JSON of an `action_record`, in the field order of the schema.
///
/// Top-level members follow pipelock-verify: a member absent from `record`
/// is left out, so a producer must set every non-omitempty member (the
/// daemon does). Inside a present nested struct, absent non-omitempty
/// members are written as their zero value, as Go does. Unknown members and
/// wrong JSON kinds are errors naming the member.
pub fn action_record_bytes(record: &Map<String, Value>) -> Result<Vec<u8>, FormatError> {
    let mut out = Vec::with_capacity(1024);
    write_struct(&mut out, &ACTION_RECORD, record, true, "action_record")?;
    Ok(out)
}

/// The 32-byte message an ActionReceipt v1 signature covers.
pub fn digest(action_record_bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(action_record_bytes).into()
}

/// Go-JSON of a whole receipt envelope, built around already-canonical
/// action-record bytes (so the record is encoded once per receipt).
/// `ext_raw` is the raw JSON source of an `ext` member, if present.
pub fn receipt_bytes(
    action_record_bytes: &[u8],
    signature: &str,
    signer_key: &str,
    ext_raw: Option<&str>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(action_record_bytes.len() + 260);
    out.extend_from_slice(b"{\"version\":1,\"action_record\":");
    out.extend_from_slice(action_record_bytes);
    out.extend_from_slice(b",\"signature\":");
    write_str(&mut out, signature);
    out.extend_from_slice(b",\"signer_key\":");
    write_str(&mut out, signer_key);
    if let Some(raw) = ext_raw {
        out.extend_from_slice(b",\"ext\":");
        compact_raw(raw, &mut out);
    }
    out.push(b'}');
    out
}

/// Lowercase hex SHA-256 of receipt bytes: the next `chain_prev_hash`.
pub fn receipt_hash(receipt_bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(receipt_bytes))
}

fn write_struct(
    out: &mut Vec<u8>,
    schema: &Schema,
    obj: &Map<String, Value>,
    top_level: bool,
    path: &str,
) -> Result<(), FormatError> {
    if let Some(unknown) = obj.keys().find(|k| schema.field(k).is_none()) {
        return Err(FormatError::new(path, format!("unknown field {unknown:?}")));
    }
    out.push(b'{');
    let mut first = true;
    for field in schema.fields {
        let value = match obj.get(field.name) {
            Some(v) => {
                if field.emit == Emit::Omit && is_empty(field.kind, v) {
                    continue;
                }
                Some(v)
            }
            None if top_level || field.emit == Emit::Omit => continue,
            None => None,
        };
        if !first {
            out.push(b',');
        }
        first = false;
        write_str(out, field.name);
        out.push(b':');
        write_value(out, field, value, path)?;
    }
    out.push(b'}');
    Ok(())
}

/// Go's omitempty test; structs (pointers) are empty only when null.
fn is_empty(kind: Kind, v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_u64() == Some(0) || n.as_i64() == Some(0),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => !matches!(kind, Kind::Struct(_)) && o.is_empty(),
    }
}

fn write_value(
    out: &mut Vec<u8>,
    field: &Field,
    value: Option<&Value>,
    path: &str,
) -> Result<(), FormatError> {
    let here = || format!("{path}.{}", field.name);
    let wrong = |what: &str| FormatError::new(&here(), format!("expected {what}"));
    // Go decodes a JSON null into a non-pointer member as its zero value.
    let value = match value {
        None | Some(Value::Null) => {
            match field.kind {
                Kind::Str => out.extend_from_slice(b"\"\""),
                Kind::Int | Kind::Uint | Kind::Uint8 => out.push(b'0'),
                Kind::Bool => out.extend_from_slice(b"false"),
                Kind::Strings | Kind::NullableStrings | Kind::Counts | Kind::List(_) => {
                    out.extend_from_slice(b"null")
                }
                Kind::Struct(s) => write_struct(out, s, &Map::new(), false, &here())?,
            }
            return Ok(());
        }
        Some(v) => v,
    };
    match field.kind {
        Kind::Str => write_str(out, value.as_str().ok_or_else(|| wrong("a string"))?),
        Kind::Int => {
            let n = integer(value).ok_or_else(|| wrong("an integer"))?;
            let n = n.as_i64().ok_or_else(|| wrong("an int64"))?;
            out.extend_from_slice(n.to_string().as_bytes());
        }
        Kind::Uint => {
            let n = integer(value).ok_or_else(|| wrong("an unsigned integer"))?;
            let n = n.as_u64().ok_or_else(|| wrong("a uint64"))?;
            out.extend_from_slice(n.to_string().as_bytes());
        }
        Kind::Uint8 => {
            let n = integer(value)
                .and_then(|n| n.as_u64())
                .filter(|n| *n <= 255)
                .ok_or_else(|| wrong("an integer from 0 to 255"))?;
            out.extend_from_slice(n.to_string().as_bytes());
        }
        Kind::Bool => {
            let b = value.as_bool().ok_or_else(|| wrong("true or false"))?;
            out.extend_from_slice(if b { b"true" } else { b"false" });
        }
        Kind::Strings | Kind::NullableStrings => {
            let items = value
                .as_array()
                .ok_or_else(|| wrong("an array of strings"))?;
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(
                    out,
                    item.as_str().ok_or_else(|| wrong("an array of strings"))?,
                );
            }
            out.push(b']');
        }
        Kind::Counts => {
            let map = value
                .as_object()
                .ok_or_else(|| wrong("an object of integer counts"))?;
            let mut keys: Vec<&String> = map.keys().collect();
            // Go sorts map keys by bytes; UTF-8 byte order is code point order.
            keys.sort();
            out.push(b'{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(out, k);
                out.push(b':');
                let n = integer(&map[k])
                    .and_then(|n| n.as_i64())
                    .ok_or_else(|| wrong("an object of integer counts"))?;
                out.extend_from_slice(n.to_string().as_bytes());
            }
            out.push(b'}');
        }
        Kind::Struct(s) => {
            let obj = value.as_object().ok_or_else(|| wrong("an object"))?;
            write_struct(out, s, obj, false, &here())?;
        }
        Kind::List(s) => {
            let items = value
                .as_array()
                .ok_or_else(|| wrong("an array of objects"))?;
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                let obj = item
                    .as_object()
                    .ok_or_else(|| wrong("an array of objects"))?;
                write_struct(out, s, obj, false, &format!("{}[{i}]", here()))?;
            }
            out.push(b']');
        }
    }
    Ok(())
}

/// An integer JSON number (v1 has no floats anywhere).
fn integer(v: &Value) -> Option<&serde_json::Number> {
    match v {
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(n),
        _ => None,
    }
}
