//! The documents a verifier is given: from a key directory's `trust`
//! member, or from files passed out of band.

use serde_json::Value;

use super::{bad, Keyset, Root, Signed, Statement};
use crate::Error;

/// The documents to check, as fetched.
#[derive(Clone, Debug, Default)]
pub struct Material {
    /// Roots 1..N, in order.
    pub roots: Vec<Signed<Root>>,
    /// Candidate keysets; the highest valid one wins.
    pub keysets: Vec<Signed<Keyset>>,
    /// The online statement (absent with `--trust` files: then online
    /// revocations are not checked).
    pub statement: Option<Signed<Statement>>,
    /// The directory's `keys[]`, which the statement hashes.
    pub keys: Option<Value>,
}

impl Material {
    /// The documents a key directory carries in its `trust` member, with
    /// its raw `keys[]` (hashed as served, unknown members included).
    pub fn from_directory(doc: &Value) -> Result<Material, Error> {
        let Some(trust) = doc.get("trust") else {
            return Err(bad(
                "the directory carries no root documents (its daemon is not under an offline \
                 root): verify with --key, or import a root first",
            ));
        };
        let Some(t) = trust.as_object() else {
            return Err(bad("directory trust: not an object"));
        };
        if let Some(k) = t
            .keys()
            .find(|k| !matches!(k.as_str(), "roots" | "keyset" | "statement"))
        {
            return Err(bad(format!("directory trust: unknown member {k:?}")));
        }
        let roots = match t.get("roots") {
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| Signed::<Root>::from_value(v.clone()))
                .collect::<Result<Vec<_>, _>>()?,
            _ => return Err(bad("directory trust: roots must be an array")),
        };
        let keysets = match t.get("keyset") {
            Some(v) => vec![Signed::<Keyset>::from_value(v.clone())?],
            None => Vec::new(),
        };
        let statement = match t.get("statement") {
            Some(v) => Some(Signed::<Statement>::from_value(v.clone())?),
            None => return Err(bad("directory trust: no statement")),
        };
        Ok(Material {
            roots,
            keysets,
            statement,
            keys: doc.get("keys").cloned(),
        })
    }
}
