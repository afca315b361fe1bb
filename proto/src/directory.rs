//! The key directory document served at
//! `/.well-known/http-message-signatures-directory`.
//!
//! `keys[]` carries what pipelock-verify reads (`keyid`, `alg`,
//! `public_key`, `use`), the RFC 7517 OKP members for generic RFC 9421
//! consumers, and sigil's lifecycle members. The current signing key comes
//! first (pipelock-verify's default lookup takes the first); every public
//! key sigil ever used stays listed.

use serde::{Deserialize, Serialize};

use crate::{json, Error};

/// Well-known HTTP path of the directory.
pub const WELL_KNOWN_PATH: &str = "/.well-known/http-message-signatures-directory";
/// `use` value Pipelock emits for mediation keys.
pub const USE_MEDIATION: &str = "pipelock-mediation";

/// The directory document.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Directory {
    /// Every key version, current first.
    pub keys: Vec<KeyEntry>,
}

/// Lifecycle state of a key version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    /// Signs new receipts.
    Active,
    /// Rotated out; still verifies what it signed.
    Retired,
    /// Must not be trusted for receipts at or after `compromised_since`.
    Revoked,
}

/// One key version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyEntry {
    /// Key version id, e.g. `mediator.v2`.
    pub keyid: String,
    /// Always `ed25519`.
    pub alg: String,
    /// 64 lowercase hex characters.
    pub public_key: String,
    /// `pipelock-mediation`.
    #[serde(rename = "use")]
    pub use_: String,
    /// RFC 7517: `OKP`.
    pub kty: String,
    /// RFC 7517: `Ed25519`.
    pub crv: String,
    /// RFC 7517: base64url public key.
    pub x: String,
    /// Key name shared by all versions.
    pub name: String,
    /// Version number, from 1.
    pub version: u32,
    /// Lifecycle state.
    pub state: KeyState,
    /// Where the private key lives: `software`, `pkcs11`, `yubihsm`, `tpm`.
    pub backend: String,
    /// True when the private key can never leave its device in clear.
    pub non_extractable: bool,
    /// What the custody protects and what it does not.
    pub custody: String,
    /// When the key was generated.
    pub created: String,
    /// When it started signing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activated: Option<String>,
    /// When it was rotated out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired: Option<String>,
    /// When it was revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<String>,
    /// From when its signatures are not to be trusted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compromised_since: Option<String>,
    /// Why it was revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl KeyEntry {
    /// A new entry with the fixed members filled in.
    pub fn new(name: &str, version: u32, public_key: &[u8; 32]) -> Self {
        KeyEntry {
            keyid: format!("{name}.v{version}"),
            alg: "ed25519".into(),
            public_key: hex::encode(public_key),
            use_: USE_MEDIATION.into(),
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            x: base64url(public_key),
            name: name.into(),
            version,
            state: KeyState::Active,
            backend: String::new(),
            non_extractable: false,
            custody: String::new(),
            created: String::new(),
            activated: None,
            retired: None,
            revoked: None,
            compromised_since: None,
            reason: None,
        }
    }
}

impl Directory {
    /// Parses a directory document (strict JSON).
    pub fn parse(text: &str) -> Result<Self, Error> {
        let v = json::parse(text).map_err(|e| Error::Directory(e.to_string()))?;
        serde_json::from_value(v).map_err(|e| Error::Directory(e.to_string()))
    }

    /// JSON text of the document.
    pub fn to_json(&self) -> String {
        // Serializing plain strings, integers and enums cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_without_padding() {
        assert_eq!(base64url(b""), "");
        assert_eq!(base64url(b"f"), "Zg");
        assert_eq!(base64url(b"fo"), "Zm8");
        assert_eq!(base64url(b"foo"), "Zm9v");
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
    }
}
