//! The key directory document served at
//! `/.well-known/http-message-signatures-directory`.
//!
//! `keys[]` carries what pipelock-verify reads (`keyid`, `alg`,
//! `public_key`, `use`), the RFC 7517 OKP members for generic RFC 9421
//! consumers, and sigil's lifecycle members. The current signing key comes
//! first (pipelock-verify's default lookup takes the first); every public
//! key sigil ever used stays listed.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::lineage::{Freshness, Lineage, Revocation};
use crate::{jcs, json, timestamp, Error};

/// Well-known HTTP path of the directory.
pub const WELL_KNOWN_PATH: &str = "/.well-known/http-message-signatures-directory";
/// `use` value Pipelock emits for mediation keys.
pub const USE_MEDIATION: &str = "pipelock-mediation";
/// `use` value of keys that sign caller-chosen digests: never a receipt key.
pub const USE_DIGEST: &str = "sigil-digest";

/// What a key name signs. Only [`Purpose::Chain`] keys vouch for receipts:
/// a digest key signs any 32 bytes a caller brings, and a receipt's
/// signature is Ed25519 over a 32-byte digest, so a digest key could sign
/// any receipt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Purpose {
    /// Signs chains (producer chains and the daemon's ledgers), rotation
    /// endorsements and the directory. Never exposed to SignDigest.
    Chain,
    /// Signs caller-chosen digests through SignDigest, nothing else.
    Digest,
}

/// The position where a revocation took effect on one chain: the revoked
/// version's last receipt there, which verifiers still trust. A receipt of
/// the revoked version after it, or a segment of it that does not reach it,
/// is a forgery.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Through {
    /// Chain name (its recorder session).
    pub chain: String,
    /// `chain_seq` of that receipt within its key segment.
    pub seq: u64,
    /// Its receipt hash (lowercase hex).
    pub receipt_hash: String,
}

/// The directory document.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Directory {
    /// Every key version, current first.
    pub keys: Vec<KeyEntry>,
    /// When the document was signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_at: Option<String>,
    /// Signature by the active key over the JCS form of the document
    /// without this member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<DirectorySignature>,
    /// The root role's documents (`roots`, `keyset`, `statement`), when the
    /// daemon is under an offline root. Outside the legacy signature, which
    /// keeps covering exactly `{keys, signed_at}` for older verifiers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust: Option<serde_json::Value>,
}

/// Who signed the directory, and the signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectorySignature {
    /// Key version that signed, e.g. `mediator.v3`.
    pub keyid: String,
    /// `ed25519:` + 128 hex over SHA-256 of the JCS bytes.
    pub value: String,
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
    /// Generated in advance for an offline root to certify; signs nothing
    /// until a rotation activates it. Kept in the daemon's own records and
    /// never published in a directory.
    Standby,
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
    /// For a revoked version: where the revocation took effect on each chain
    /// the version signed. Absent in directories of older sigild (then
    /// only `compromised_since` applies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub through: Option<Vec<Through>>,
    /// What the key name signs; absent in directories of older sigild.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<Purpose>,
    /// For version N > 1: version N-1's signature over this version
    /// ([`endorsement_digest`]), so trust walks from a pinned root to the
    /// key that signs now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endorsement: Option<String>,
}

/// The 32-byte message version N-1 signs to vouch for version N.
pub fn endorsement_digest(name: &str, version: u32, public_key_hex: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"sigil-key-endorsement-v1\0");
    h.update(name.as_bytes());
    h.update(b"\0");
    h.update(version.to_string().as_bytes());
    h.update(b"\0");
    h.update(public_key_hex.as_bytes());
    h.finalize().into()
}

/// Verifies `sig` (`ed25519:` + hex) by `public_key_hex` over `msg`.
pub fn verify_sig(public_key_hex: &str, msg: &[u8], sig: &str) -> Result<(), Error> {
    crate::sig::verify(public_key_hex, msg, sig, false).map_err(|m| Error::Directory(m.into()))
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
            through: None,
            purpose: None,
            endorsement: None,
        }
    }
}

impl Directory {
    /// Parses a directory document (strict JSON).
    pub fn parse(text: &str) -> Result<Self, Error> {
        let v = json::parse(text).map_err(Error::Directory)?;
        serde_json::from_value(v).map_err(|e| Error::Directory(e.to_string()))
    }

    /// JSON text of the document.
    pub fn to_json(&self) -> String {
        // Serializing plain strings, integers and enums cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// The 32-byte message the directory signature covers: SHA-256 of the
    /// JCS form of the document without `signature`.
    pub fn signing_digest(&self) -> Result<[u8; 32], Error> {
        let mut unsigned = self.clone();
        unsigned.signature = None;
        unsigned.trust = None;
        let value = serde_json::to_value(&unsigned).map_err(|e| Error::Directory(e.to_string()))?;
        Ok(Sha256::digest(jcs::canonicalize(&value)?).into())
    }

    /// The chain key's lineage this document proves, walked from `root`
    /// (lowercase hex; `None`: the directory's own first chain version,
    /// which is trust on fetch):
    /// - the root is a chain key, and each later version of its name is
    ///   endorsed by the one before; no version of the name is listed
    ///   outside that walk;
    /// - the directory is signed by the newest version of the walk, and
    ///   that version is not revoked (an older or revoked version may not
    ///   speak for the lineage);
    /// - `signed_at` is within `fresh` (neither stale nor from the future).
    pub fn lineage(&self, root: Option<&str>, fresh: &Freshness) -> Result<Lineage, Error> {
        let bad = |m: String| Err(Error::Directory(m));
        let root_entry = match root {
            Some(r) => {
                let r = r.to_lowercase();
                let Some(e) = self.keys.iter().find(|k| k.public_key == r) else {
                    return bad(format!("the pinned key {r} is not in the directory"));
                };
                e
            }
            None => {
                let Some(e) = self
                    .keys
                    .iter()
                    .filter(|k| k.purpose == Some(Purpose::Chain))
                    .min_by_key(|k| k.version)
                else {
                    return bad(
                        "the directory names no chain key (written by an older sigild?): \
                         pin the root with --key"
                            .into(),
                    );
                };
                e
            }
        };
        if root_entry.purpose == Some(Purpose::Digest) {
            return bad(format!(
                "{} is a digest key: it signs caller-chosen bytes and vouches for no receipt",
                root_entry.keyid
            ));
        }
        let mut walk = vec![root_entry.clone()];
        let mut current = root_entry;
        while let Some(next) = self
            .keys
            .iter()
            .find(|k| k.name == current.name && Some(k.version) == current.version.checked_add(1))
        {
            let Some(e) = &next.endorsement else {
                return bad(format!(
                    "{} has no endorsement by {}",
                    next.keyid, current.keyid
                ));
            };
            verify_sig(
                &current.public_key,
                &endorsement_digest(&next.name, next.version, &next.public_key),
                e,
            )
            .map_err(|_| {
                Error::Directory(format!(
                    "{} is not endorsed by {}",
                    next.keyid, current.keyid
                ))
            })?;
            if next.purpose == Some(Purpose::Digest) {
                return bad(format!("{} is a digest key", next.keyid));
            }
            walk.push(next.clone());
            current = next;
        }
        if let Some(stray) = self
            .keys
            .iter()
            .find(|k| k.name == root_entry.name && k.version > current.version)
        {
            return bad(format!(
                "{} is listed but not endorsed along the lineage from {}",
                stray.keyid, root_entry.keyid
            ));
        }
        let Some(sig) = &self.signature else {
            return bad("the directory is not signed".into());
        };
        if sig.keyid != current.keyid {
            return bad(format!(
                "signed by {}, but only the newest version of the lineage, {}, may sign it",
                sig.keyid, current.keyid
            ));
        }
        if current.state == KeyState::Revoked {
            return bad(format!(
                "the newest version {} is revoked: nothing it signs is trusted",
                current.keyid
            ));
        }
        verify_sig(&current.public_key, &self.signing_digest()?, &sig.value)
            .map_err(|_| Error::Directory(format!("signature by {} does not verify", sig.keyid)))?;
        let Some(signed_at) = &self.signed_at else {
            return bad("the directory has no signed_at".into());
        };
        let signed =
            timestamp::parse(signed_at).map_err(|e| Error::Directory(format!("signed_at: {e}")))?;
        fresh.check(signed)?;
        let mut revoked = HashMap::new();
        for k in walk.iter().filter(|k| k.state == KeyState::Revoked) {
            let since = k
                .compromised_since
                .as_deref()
                .or(k.revoked.as_deref())
                .ok_or_else(|| {
                    Error::Directory(format!("{} is revoked without a time", k.keyid))
                })?;
            let compromised_since = timestamp::parse(since)
                .map_err(|e| Error::Directory(format!("{}: {e}", k.keyid)))?;
            revoked.insert(
                k.public_key.clone(),
                Revocation {
                    keyid: k.keyid.clone(),
                    compromised_since,
                    reason: k.reason.clone().unwrap_or_default(),
                    through: k.through.as_ref().map(|t| {
                        t.iter()
                            .map(|p| (p.chain.clone(), (p.seq, p.receipt_hash.clone())))
                            .collect()
                    }),
                },
            );
        }
        let mut retired = HashMap::new();
        for k in walk.iter() {
            if let Some(at) = &k.retired {
                let at = timestamp::parse(at)
                    .map_err(|e| Error::Directory(format!("{} retired: {e}", k.keyid)))?;
                retired.insert(k.public_key.clone(), (k.keyid.clone(), at));
            }
        }
        Ok(Lineage {
            versions: walk,
            signed_at: signed,
            revoked,
            retired,
            windows: HashMap::new(),
            speaker_version: None,
            certified_by: None,
        })
    }
}

fn base64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
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
