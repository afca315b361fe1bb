use std::fmt;

use crate::KeyError;

/// One version of a named key: `mediator` version 3 is `mediator.v3`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId {
    name: String,
    version: u32,
    /// Distinguishes the keys of one data dir from another's on a shared
    /// token; `None` for keys generated before namespaces existed.
    namespace: Option<String>,
}

impl KeyId {
    /// Longest accepted key name, so labels fit every token's label field.
    pub const MAX_NAME_LEN: usize = 48;

    /// Makes a key id; `name` must be 1 to 48 characters of `[A-Za-z0-9_-]`
    /// and `version` at least 1.
    pub fn new(name: &str, version: u32) -> Result<Self, KeyError> {
        let ok = !name.is_empty()
            && name.len() <= Self::MAX_NAME_LEN
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !ok {
            return Err(KeyError::Config {
                backend: "keys",
                reason: format!(
                    "key name {name:?} must be 1 to {} characters of A-Z a-z 0-9 _ -",
                    Self::MAX_NAME_LEN
                ),
            });
        }
        if version == 0 {
            return Err(KeyError::Config {
                backend: "keys",
                reason: "key versions start at 1".into(),
            });
        }
        Ok(KeyId {
            name: name.to_owned(),
            version,
            namespace: None,
        })
    }

    /// The same key in namespace `ns` (1 to 16 characters of `[a-z0-9]`):
    /// its label becomes `sigil.<ns>.<name>.v<version>`, so two daemons on
    /// one token never name the same object.
    pub fn in_namespace(mut self, ns: &str) -> Result<Self, KeyError> {
        let ok = !ns.is_empty()
            && ns.len() <= 16
            && ns
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if !ok {
            return Err(KeyError::Config {
                backend: "keys",
                reason: format!("key namespace {ns:?} must be 1 to 16 characters of a-z 0-9"),
            });
        }
        self.namespace = Some(ns.to_owned());
        Ok(self)
    }

    /// The key name shared by all versions.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The version number, from 1.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The label a backend stores the key under: `sigil.<name>.v<version>`,
    /// or `sigil.<namespace>.<name>.v<version>`.
    pub fn label(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("sigil.{ns}.{}.v{}", self.name, self.version),
            None => format!("sigil.{}.v{}", self.name, self.version),
        }
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.v{}", self.name, self.version)
    }
}

/// An Ed25519 public key (32 bytes).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey(pub [u8; 32]);

impl PublicKey {
    /// Lowercase hex, as Pipelock receipts carry it.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_hex())
    }
}

/// An Ed25519 signature (64 bytes).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature(pub [u8; 64]);

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({})", hex::encode(self.0))
    }
}
