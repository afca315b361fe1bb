//! RFC 8785 JSON Canonicalization Scheme, for generic JSON documents (the
//! key directory, other receipt formats).
//!
//! serde_json_canonicalizer does the work (ECMAScript number formatting,
//! UTF-16 key order); the vectors under `tests/vectors/jcs` check it byte for
//! byte. Input goes through the strict parser first, so duplicate keys are
//! refused rather than silently collapsed.

use crate::{json, Error};

/// Canonical bytes of a JSON text.
pub fn canonicalize_str(text: &str) -> Result<Vec<u8>, Error> {
    let value = json::parse(text).map_err(Error::Json)?;
    canonicalize(&value)
}

/// Canonical bytes of a parsed value.
pub fn canonicalize(value: &serde_json::Value) -> Result<Vec<u8>, Error> {
    serde_json_canonicalizer::to_vec(value).map_err(|e| Error::Json(e.to_string()))
}
