//! The bodies of the root role's documents, with the checks each one
//! carries on its own (types, times, ranges); the checks between documents
//! are in [`super::trust`].

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use super::{bad, check_hex_key, Domain};
use crate::directory::Through;
use crate::{timestamp, Error};

/// The one `spec_version` this code reads.
pub const SPEC_VERSION: u32 = 1;

/// What every document body says of itself.
pub trait Document: DeserializeOwned + Serialize {
    /// Its `_type`.
    const TYPE: &'static str;
    /// The domain its signatures are made in.
    const DOMAIN: Domain;
    /// Largest envelope accepted, bytes.
    const MAX_BYTES: usize;
    /// Checks what the body holds on its own.
    fn check(&self) -> Result<(), Error>;
    /// e.g. `v3`, for messages.
    fn label(&self) -> String;
}

/// Parses and checks a body: `_type`, `spec_version`, no unknown member.
pub(super) fn parse_body<T: Document>(body: &Value) -> Result<T, Error> {
    let what = T::TYPE;
    match body.get("_type").and_then(Value::as_str) {
        Some(t) if t == what => {}
        Some(t) => return Err(bad(format!("_type is {t:?}, expected {what:?}"))),
        None => return Err(bad(format!("{what}: no _type"))),
    }
    match body.get("spec_version").and_then(Value::as_u64) {
        Some(v) if v == u64::from(SPEC_VERSION) => {}
        _ => return Err(bad(format!("{what}: spec_version must be {SPEC_VERSION}"))),
    }
    let doc: T = serde_json::from_value(body.clone()).map_err(|e| bad(format!("{what}: {e}")))?;
    doc.check()?;
    Ok(doc)
}

/// Parses a document time: exactly `YYYY-MM-DDTHH:MM:SSZ`.
pub fn parse_time(s: &str, path: &str) -> Result<OffsetDateTime, Error> {
    let t = timestamp::parse(s).map_err(|e| bad(format!("{path}: {e}")))?;
    if s.len() != 20 || !s.ends_with('Z') {
        return Err(bad(format!(
            "{path}: {s:?} must be a UTC time in whole seconds, YYYY-MM-DDTHH:MM:SSZ"
        )));
    }
    Ok(t)
}

/// A document time for `t`, in whole seconds.
pub fn format_time(t: OffsetDateTime) -> String {
    timestamp::format(t.replace_nanosecond(0).unwrap_or(t))
}

/// Where a key lives, as the ceremony saw it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Custody {
    /// `pkcs11`, `yubihsm`, `tpm` or `software`.
    pub backend: String,
    /// Token label or device serial.
    pub token: String,
    /// The token says the key can never leave it in clear.
    pub non_extractable: bool,
    /// Device attestation (hex), checked at the ceremony; kept as evidence.
    pub attestation: Option<String>,
}

/// A root key holder.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RootKey {
    /// Who holds it.
    pub owner: String,
    /// Where it lives.
    pub custody: Custody,
}

/// What a root allows below it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RootPolicy {
    /// Key names whose certified versions sign chains.
    pub key_names: Vec<String>,
    /// Longest validity window of one certified version.
    pub max_validity_days: u32,
    /// Longest life of a keyset.
    pub keyset_max_days: u32,
    /// Oldest directory statement a verifier accepts.
    pub directory_max_age_seconds: u64,
}

impl Default for RootPolicy {
    fn default() -> Self {
        RootPolicy {
            key_names: vec!["mediator".into()],
            max_validity_days: 400,
            keyset_max_days: 180,
            directory_max_age_seconds: 86_400,
        }
    }
}

/// `sigil.root`: the root keys and threshold (TUF's root.json).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Root {
    /// `sigil.root`.
    #[serde(rename = "_type")]
    pub type_: String,
    /// 1.
    pub spec_version: u32,
    /// The deployment this root speaks for, e.g. `payments-prod`.
    pub deployment: String,
    /// From 1, each exactly one more than the last.
    pub version: u64,
    /// When signed.
    pub issued: String,
    /// After this nothing trusts it.
    pub expires: String,
    /// Signatures needed.
    pub threshold: u32,
    /// Root keys by hex public key.
    pub keys: BTreeMap<String, RootKey>,
    /// Limits for what it certifies.
    pub policy: RootPolicy,
}

impl Document for Root {
    const TYPE: &'static str = "sigil.root";
    const DOMAIN: Domain = Domain::Root;
    const MAX_BYTES: usize = super::MAX_ROOT_BYTES;

    fn check(&self) -> Result<(), Error> {
        let l = self.label();
        if self.version == 0 {
            return Err(bad("root: version must be 1 or more, got 0"));
        }
        check_deployment(&self.deployment)?;
        let issued = parse_time(&self.issued, &format!("root {l} issued"))?;
        let expires = parse_time(&self.expires, &format!("root {l} expires"))?;
        if expires <= issued {
            return Err(bad(format!("root {l}: expires before it was issued")));
        }
        for k in self.keys.keys() {
            check_hex_key(k, &format!("root {l} keys"))?;
        }
        if self.threshold == 0 || self.threshold as usize > self.keys.len() {
            return Err(bad(format!(
                "root {l}: threshold {} must be from 1 to the number of keys ({})",
                self.threshold,
                self.keys.len()
            )));
        }
        if self.policy.key_names.is_empty() {
            return Err(bad(format!("root {l}: policy.key_names is empty")));
        }
        if self.policy.max_validity_days == 0 || self.policy.keyset_max_days == 0 {
            return Err(bad(format!("root {l}: policy limits must be above 0")));
        }
        Ok(())
    }

    fn label(&self) -> String {
        format!("v{}", self.version)
    }
}

/// A root revocation of a certified version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RootRevocation {
    /// Why.
    pub reason: String,
    /// When the officers revoked it.
    pub revoked_at: String,
    /// From when its signatures are not trusted.
    pub compromised_since: String,
    /// Per chain, the version's last receipt still trusted.
    pub through: Vec<Through>,
    /// Reserved for the receipt log: `{origin, size, root_hash}`.
    pub through_log: Option<Value>,
}

/// One certified online version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyVersion {
    /// Version number of its key name.
    pub version: u32,
    /// Hex public key.
    pub public_key: String,
    /// It signs nothing dated before this.
    pub not_before: String,
    /// It signs nothing dated after this.
    pub not_after: String,
    /// Where it lives.
    pub custody: Custody,
    /// Set once the root revokes it; never removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<RootRevocation>,
}

/// `sigil.keyset`: the online versions the root certifies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Keyset {
    /// `sigil.keyset`.
    #[serde(rename = "_type")]
    pub type_: String,
    /// 1.
    pub spec_version: u32,
    /// As the root's.
    pub deployment: String,
    /// From 1, increasing.
    pub version: u64,
    /// The root version whose keys signed it.
    pub root_version: u64,
    /// SHA-256 (hex) of JCS of the previous keyset's body; `None` for 1.
    pub prev: Option<String>,
    /// When signed.
    pub issued: String,
    /// After this nothing trusts it.
    pub expires: String,
    /// Certified versions by key name.
    pub keys: BTreeMap<String, Vec<KeyVersion>>,
}

impl Document for Keyset {
    const TYPE: &'static str = "sigil.keyset";
    const DOMAIN: Domain = Domain::Root;
    const MAX_BYTES: usize = super::MAX_KEYSET_BYTES;

    fn check(&self) -> Result<(), Error> {
        let l = self.label();
        if self.version == 0 || self.root_version == 0 {
            return Err(bad("keyset: version and root_version must be 1 or more"));
        }
        check_deployment(&self.deployment)?;
        match (&self.prev, self.version) {
            (None, 1) => {}
            (Some(p), v) if v > 1 => check_hex_key(p, &format!("keyset {l} prev"))?,
            _ => {
                return Err(bad(format!(
                    "keyset {l}: prev is required from version 2 on, and only then"
                )))
            }
        }
        let issued = parse_time(&self.issued, &format!("keyset {l} issued"))?;
        let expires = parse_time(&self.expires, &format!("keyset {l} expires"))?;
        if expires <= issued {
            return Err(bad(format!("keyset {l}: expires before it was issued")));
        }
        for (name, versions) in &self.keys {
            let mut last = 0;
            for v in versions {
                let p = format!("keyset {l} {name}.v{}", v.version);
                if v.version == 0 {
                    return Err(bad(format!("{p}: versions start at 1")));
                }
                if last != 0 && v.version >= last {
                    return Err(bad(format!(
                        "keyset {l} {name}: versions must be listed newest first, each once"
                    )));
                }
                last = v.version;
                check_hex_key(&v.public_key, &format!("{p} public_key"))?;
                let nb = parse_time(&v.not_before, &format!("{p} not_before"))?;
                let na = parse_time(&v.not_after, &format!("{p} not_after"))?;
                if na <= nb {
                    return Err(bad(format!("{p}: not_after is not after not_before")));
                }
                if let Some(r) = &v.revoked {
                    parse_time(&r.revoked_at, &format!("{p} revoked_at"))?;
                    parse_time(&r.compromised_since, &format!("{p} compromised_since"))?;
                    for t in &r.through {
                        check_hex_key(&t.receipt_hash, &format!("{p} through receipt_hash"))?;
                    }
                }
            }
        }
        Ok(())
    }

    fn label(&self) -> String {
        format!("v{}", self.version)
    }
}

impl Keyset {
    /// Every certified version: (name, version).
    pub fn versions(&self) -> impl Iterator<Item = (&String, &KeyVersion)> {
        self.keys
            .iter()
            .flat_map(|(n, vs)| vs.iter().map(move |v| (n, v)))
    }

    /// The certified version with this public key.
    pub fn find(&self, public_key: &str) -> Option<(&String, &KeyVersion)> {
        self.versions().find(|(_, v)| v.public_key == public_key)
    }
}

/// An online revocation in a statement: only ever tightens the keyset.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnlineRevocation {
    /// Key name.
    pub name: String,
    /// Version.
    pub version: u32,
    /// From when its signatures are not trusted.
    pub compromised_since: String,
    /// Why.
    pub reason: String,
    /// Per chain, the version's last receipt still trusted.
    pub through: Vec<Through>,
}

/// `sigil.directory`: what the active version says each hour, binding the
/// root, the keyset and the published `keys[]` (TUF's timestamp and
/// snapshot in one).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Statement {
    /// `sigil.directory`.
    #[serde(rename = "_type")]
    pub type_: String,
    /// 1.
    pub spec_version: u32,
    /// As the root's.
    pub deployment: String,
    /// When signed.
    pub signed_at: String,
    /// The newest root version.
    pub root_version: u64,
    /// The keyset version.
    pub keyset_version: u64,
    /// SHA-256 (hex) of JCS of the keyset's body.
    pub keyset_sha256: String,
    /// SHA-256 (hex) of JCS of the directory's `keys[]`.
    pub keys_sha256: String,
    /// The signing version of each key name.
    pub active: BTreeMap<String, u32>,
    /// Revocations made online since the keyset.
    pub revoked: Vec<OnlineRevocation>,
}

impl Document for Statement {
    const TYPE: &'static str = "sigil.directory";
    const DOMAIN: Domain = Domain::Directory;
    const MAX_BYTES: usize = super::MAX_DIRECTORY_BYTES;

    fn check(&self) -> Result<(), Error> {
        check_deployment(&self.deployment)?;
        parse_time(&self.signed_at, "statement signed_at")?;
        check_hex_key(&self.keyset_sha256, "statement keyset_sha256")?;
        check_hex_key(&self.keys_sha256, "statement keys_sha256")?;
        for r in &self.revoked {
            parse_time(&r.compromised_since, "statement revoked compromised_since")?;
            for t in &r.through {
                check_hex_key(&t.receipt_hash, "statement revoked through receipt_hash")?;
            }
        }
        Ok(())
    }

    fn label(&self) -> String {
        format!("of {}", self.signed_at)
    }
}

fn check_deployment(d: &str) -> Result<(), Error> {
    let ok = (1..=64).contains(&d.len())
        && d.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(bad(format!(
            "deployment {d:?} must be 1 to 64 characters of A-Z a-z 0-9 . _ -"
        )))
    }
}

/// A version in a certification request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestedVersion {
    /// Version number.
    pub version: u32,
    /// Hex public key.
    pub public_key: String,
    /// Where it lives.
    pub custody: Custody,
    /// When it was generated.
    pub created: String,
    /// When it started signing, if it did.
    pub activated: Option<String>,
    /// When it was rotated out, if it was.
    pub retired: Option<String>,
    /// When it was revoked online, if it was.
    pub revoked: Option<String>,
    /// From when, for a revoked version.
    pub compromised_since: Option<String>,
}

/// `sigil.request`: a daemon asks the officers to certify new versions.
/// Evidence for the ceremony, never a trust input: each new key signs it
/// (proof of possession), and so does the signing version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// `sigil.request`.
    #[serde(rename = "_type")]
    pub type_: String,
    /// 1.
    pub spec_version: u32,
    /// The deployment of the imported root (empty before one).
    pub deployment: String,
    /// Key name.
    pub name: String,
    /// When made.
    pub requested_at: String,
    /// The daemon's keyset version (0: none yet).
    pub keyset_version: u64,
    /// Its body hash (empty: none yet).
    pub keyset_sha256: String,
    /// Standby versions to certify.
    pub new: Vec<RequestedVersion>,
    /// Every earlier version of the name, for adoption and for the
    /// officers' check of the lineage.
    pub history: Vec<RequestedVersion>,
}

impl Document for Request {
    const TYPE: &'static str = "sigil.request";
    const DOMAIN: Domain = Domain::Request;
    const MAX_BYTES: usize = super::MAX_KEYSET_BYTES;

    fn check(&self) -> Result<(), Error> {
        parse_time(&self.requested_at, "request requested_at")?;
        for v in self.new.iter().chain(&self.history) {
            check_hex_key(
                &v.public_key,
                &format!("request {}.v{}", self.name, v.version),
            )?;
        }
        Ok(())
    }

    fn label(&self) -> String {
        format!("for {}", self.name)
    }
}
