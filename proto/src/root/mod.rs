//! The offline root role: the documents an M-of-N set of cold root keys
//! signs (`root`, `keyset`), the online `directory` statement that binds
//! them to a published key directory, and the checks a verifier runs on
//! them, in TUF's order ([`trust`]).
//!
//! Every document travels in one envelope, `{"signed": BODY, "signatures":
//! [{"keyid": HEX64, "sig": "ed25519:" HEX128}]}`, where the keyid is the
//! signer's lowercase hex public key (so two ids never name one key) and a
//! signature is PureEdDSA over `DOMAIN || 0x00 || SHA-256(JCS(BODY))`. None
//! of these messages is 32 bytes long, so none can be mistaken for a
//! receipt, an endorsement, a legacy directory digest or a SignDigest
//! request; each holds a NUL byte, so none is a C2SP note either.

pub mod docs;
mod material;
mod state;
mod statement;
pub mod trust;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::{jcs, json, Error};

pub use docs::{
    Custody, KeyVersion, Keyset, Request, RequestedVersion, Root, RootKey, RootPolicy,
    RootRevocation, Statement,
};

/// Which role a signature speaks for: the domain string of its message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Domain {
    /// `root` and `keyset` documents, signed by root keys.
    Root,
    /// The online directory statement, signed by the active version.
    Directory,
    /// A daemon's request for certification (evidence, never trusted).
    Request,
}

impl Domain {
    /// The domain string.
    pub fn as_bytes(self) -> &'static [u8] {
        match self {
            Domain::Root => b"sigil-root-v1",
            Domain::Directory => b"sigil-directory-v1",
            Domain::Request => b"sigil-request-v1",
        }
    }
}

/// The bytes a signature of `domain` over `body` covers:
/// `DOMAIN || 0x00 || SHA-256(JCS(body))`.
pub fn signing_input(domain: Domain, body: &Value) -> Result<Vec<u8>, Error> {
    let mut m = domain.as_bytes().to_vec();
    m.push(0);
    m.extend_from_slice(&body_sha256(body)?);
    Ok(m)
}

/// SHA-256 of the JCS form of a document body: what `prev` and the
/// statement's hashes name.
pub fn body_sha256(body: &Value) -> Result<[u8; 32], Error> {
    Ok(Sha256::digest(jcs::canonicalize(body)?).into())
}

/// One signature in an envelope.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sig {
    /// The signer's public key, 64 lowercase hex characters.
    pub keyid: String,
    /// `ed25519:` + 128 lowercase hex characters.
    pub sig: String,
}

/// A document and its signatures. `body` is the `signed` member exactly
/// as it was read, so that signatures are checked over what was sent.
#[derive(Clone, Debug)]
pub struct Signed<T> {
    /// The parsed body.
    pub signed: T,
    /// The body as JSON.
    pub body: Value,
    /// Its signatures.
    pub signatures: Vec<Sig>,
}

/// Largest `root` document, bytes.
pub const MAX_ROOT_BYTES: usize = 64 * 1024;
/// Largest `keyset` document, bytes.
pub const MAX_KEYSET_BYTES: usize = 1024 * 1024;
/// Largest statement or directory, bytes.
pub const MAX_DIRECTORY_BYTES: usize = 4 * 1024 * 1024;
/// Most root versions a verifier walks.
pub const MAX_ROOT_VERSIONS: usize = 1024;

fn bad(m: impl Into<String>) -> Error {
    Error::Root(m.into())
}

impl<T: docs::Document> Signed<T> {
    /// Parses an envelope: strict JSON (no duplicate members), exactly the
    /// members `signed` and `signatures`, a body of the right `_type` and
    /// `spec_version` with no unknown member, at most `T::MAX_BYTES`.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let what = T::TYPE;
        if text.len() > T::MAX_BYTES {
            return Err(bad(format!(
                "{what}: {} bytes, more than the {} allowed",
                text.len(),
                T::MAX_BYTES
            )));
        }
        let v = json::parse(text).map_err(|e| bad(format!("{what}: {e}")))?;
        Self::from_value(v)
    }

    /// [`Signed::parse`] of an already parsed value.
    pub fn from_value(v: Value) -> Result<Self, Error> {
        let what = T::TYPE;
        let Value::Object(mut env) = v else {
            return Err(bad(format!("{what}: not a JSON object")));
        };
        if let Some(k) = env
            .keys()
            .find(|k| !matches!(k.as_str(), "signed" | "signatures"))
        {
            return Err(bad(format!("{what}: unknown member {k:?}")));
        }
        let body = env
            .remove("signed")
            .ok_or_else(|| bad(format!("{what}: no \"signed\" member")))?;
        let sigs = env
            .remove("signatures")
            .ok_or_else(|| bad(format!("{what}: no \"signatures\" member")))?;
        check_numbers(&body, what)?;
        let signed = docs::parse_body::<T>(&body)?;
        let signatures: Vec<Sig> =
            serde_json::from_value(sigs).map_err(|e| bad(format!("{what}.signatures: {e}")))?;
        for s in &signatures {
            check_hex_key(&s.keyid, &format!("{what}.signatures keyid"))?;
        }
        Ok(Signed {
            signed,
            body,
            signatures,
        })
    }

    /// A document to be signed.
    pub fn new(signed: T) -> Result<Self, Error> {
        let body = serde_json::to_value(&signed).map_err(|e| bad(e.to_string()))?;
        Ok(Signed {
            signed,
            body,
            signatures: Vec::new(),
        })
    }

    /// The bytes a signature covers.
    pub fn signing_input(&self) -> Result<Vec<u8>, Error> {
        signing_input(T::DOMAIN, &self.body)
    }

    /// SHA-256 of JCS(body), lowercase hex.
    pub fn sha256_hex(&self) -> Result<String, Error> {
        Ok(hex::encode(body_sha256(&self.body)?))
    }

    /// Adds a signature by `public_key` (replacing an earlier one by the
    /// same key).
    pub fn add_signature(&mut self, public_key: &[u8; 32], sig: &[u8; 64]) {
        let keyid = hex::encode(public_key);
        self.signatures.retain(|s| s.keyid != keyid);
        self.signatures.push(Sig {
            keyid,
            sig: crate::sig::encode(sig),
        });
        self.signatures.sort_by(|a, b| a.keyid.cmp(&b.keyid));
    }

    /// The envelope as JSON.
    pub fn to_value(&self) -> Value {
        let mut m = Map::new();
        m.insert("signed".into(), self.body.clone());
        m.insert(
            "signatures".into(),
            // Plain strings: serializing cannot fail.
            serde_json::to_value(&self.signatures).unwrap_or(Value::Null),
        );
        Value::Object(m)
    }

    /// The envelope as pretty JSON text, with a final newline.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(&self.to_value()).unwrap_or_default();
        s.push('\n');
        s
    }

    /// The public keys among `keys` whose signatures verify, one per key.
    /// Two signatures by one key are refused (TUF §5.3.4: each signature
    /// counted towards a threshold has a unique key), whether or not they
    /// verify; a signature by a key outside `keys` is ignored.
    pub fn valid_signers<'a>(
        &self,
        keys: impl IntoIterator<Item = &'a String>,
    ) -> Result<Vec<String>, Error> {
        let keys: std::collections::BTreeSet<&String> = keys.into_iter().collect();
        let mut seen = std::collections::BTreeSet::new();
        for s in &self.signatures {
            if !seen.insert(s.keyid.as_str()) {
                return Err(bad(format!(
                    "{} {}: two signatures by key {}: each key counts once",
                    T::TYPE,
                    self.signed.label(),
                    s.keyid
                )));
            }
        }
        let msg = self.signing_input()?;
        Ok(self
            .signatures
            .iter()
            .filter(|s| keys.contains(&s.keyid))
            .filter(|s| verify_strict(&s.keyid, &msg, &s.sig).is_ok())
            .map(|s| s.keyid.clone())
            .collect())
    }
}

/// Verifies `sig` (`ed25519:` + hex) by `public_key_hex` over `msg` with
/// `verify_strict` (no small-order keys, canonical `s`).
pub fn verify_strict(public_key_hex: &str, msg: &[u8], sig: &str) -> Result<(), Error> {
    crate::sig::verify(public_key_hex, msg, sig, true).map_err(bad)
}

/// Refuses anything but 64 lowercase hex characters.
pub fn check_hex_key(s: &str, path: &str) -> Result<(), Error> {
    if s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        Ok(())
    } else {
        Err(bad(format!(
            "{path}: {s:?} is not 64 lowercase hex characters"
        )))
    }
}

/// Integers only: a float (even `1.0`) or a negative number is refused,
/// since JCS would write it differently from how it was read.
fn check_numbers(v: &Value, what: &str) -> Result<(), Error> {
    match v {
        Value::Number(n) if n.as_u64().is_none() => Err(bad(format!(
            "{what}: the number {n} is not a non-negative integer"
        ))),
        Value::Array(a) => a.iter().try_for_each(|x| check_numbers(x, what)),
        Value::Object(o) => o.values().try_for_each(|x| check_numbers(x, what)),
        _ => Ok(()),
    }
}
