//! Strict JSON input: the parse every document from outside goes through.
//!
//! Rejects duplicate object keys at any depth (a parser-differential
//! smuggling vector: last-wins in one parser, first-wins in another), more
//! than [`MAX_DEPTH`] levels of nesting, trailing data, and a byte-order mark.

use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Deepest nesting of objects and arrays accepted, as pipelock-verify.
pub const MAX_DEPTH: usize = 128;

/// Parses one JSON value strictly; the error message says what was wrong.
pub fn parse(text: &str) -> Result<Value, String> {
    if text.starts_with('\u{feff}') {
        return Err("byte-order mark before JSON".into());
    }
    let mut de = serde_json::Deserializer::from_str(text);
    // Our own depth limit below is the one that counts; serde_json's fixed
    // limit (127) would refuse documents of exactly 128 levels.
    de.disable_recursion_limit();
    let value = Seed { depth: 0 }
        .deserialize(&mut de)
        .map_err(|e| e.to_string())?;
    de.end().map_err(|e| e.to_string())?;
    Ok(value)
}

struct Seed {
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for Seed {
    type Value = Value;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("number out of range"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let depth = self.depth + 1;
        if depth > MAX_DEPTH {
            return Err(de::Error::custom(format!(
                "nesting deeper than {MAX_DEPTH} levels"
            )));
        }
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(Seed { depth })? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let depth = self.depth + 1;
        if depth > MAX_DEPTH {
            return Err(de::Error::custom(format!(
                "nesting deeper than {MAX_DEPTH} levels"
            )));
        }
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let v = map.next_value_seed(Seed { depth })?;
            if out.contains_key(&key) {
                return Err(de::Error::custom(format!("duplicate object key: {key:?}")));
            }
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_duplicates_at_any_depth_even_when_escaped() {
        assert!(parse(r#"{"a":1,"a":2}"#).unwrap_err().contains("duplicate"));
        let e = parse(r#"{"x":[{"k\u00e9":1,"ké":2}]}"#).unwrap_err();
        assert!(e.contains("duplicate"), "{e}");
    }

    #[test]
    fn depth_limit_is_exactly_128() {
        let ok = format!("{}{}", "[".repeat(128), "]".repeat(128));
        assert!(parse(&ok).is_ok());
        let bad = format!("{}{}", "[".repeat(129), "]".repeat(129));
        assert!(parse(&bad).unwrap_err().contains("nesting"));
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(parse(&deep).is_err());
    }

    #[test]
    fn rejects_trailing_data_and_bom() {
        assert!(parse("{} x").is_err());
        assert!(parse("\u{feff}{}").is_err());
        assert!(parse("{}\n").is_ok());
    }
}
