//! Offline verification for `sigil verify`: a receipt, or a chain with its
//! rotations, against a pinned key or a key directory.

use std::collections::{HashMap, HashSet};

use sigil_proto::chain::{self, Options, Policy, Revocation, Summary};
use sigil_proto::directory::{Directory, KeyState};
use sigil_proto::receipt::{self, Receipt};
use sigil_proto::{timestamp, Error};

/// Keys a directory vouches for, and the revoked ones.
pub struct Trust {
    /// Every listed public key (lowercase hex).
    pub keys: HashSet<String>,
    /// Revoked keys with their compromise time.
    pub revoked: HashMap<String, Revocation>,
}

impl Trust {
    /// Reads the trust a directory document gives.
    pub fn from_directory(dir: &Directory) -> Result<Self, Error> {
        let mut keys = HashSet::new();
        let mut revoked = HashMap::new();
        for k in &dir.keys {
            let pk = k.public_key.to_lowercase();
            keys.insert(pk.clone());
            if k.state == KeyState::Revoked {
                let since = k
                    .compromised_since
                    .as_deref()
                    .or(k.revoked.as_deref())
                    .ok_or_else(|| {
                        Error::Directory(format!("{} is revoked without a time", k.keyid))
                    })?;
                let compromised_since = timestamp::parse(since).map_err(Error::Directory)?;
                revoked.insert(
                    pk,
                    Revocation {
                        compromised_since,
                        reason: k.reason.clone().unwrap_or_default(),
                    },
                );
            }
        }
        Ok(Trust { keys, revoked })
    }
}

/// Verifies one receipt document; returns it when valid.
pub fn receipt(
    text: &str,
    key: Option<&str>,
    trust: Option<&Trust>,
    policy: &Policy,
) -> Result<Receipt, Error> {
    let r = receipt::parse_receipt(text)?;
    if let Some(t) = trust {
        if !t.keys.contains(&r.signer_key.to_lowercase()) {
            return Err(Error::UntrustedKey {
                expected: "a key of the directory".into(),
                found: r.signer_key.clone(),
            });
        }
    }
    receipt::verify(&r, key)?;
    chain::check_policy(&r, policy)?;
    if let Some(rev) = trust.and_then(|t| t.revoked.get(&r.signer_key.to_lowercase())) {
        let ts = timestamp::parse(r.str_field("timestamp")).map_err(Error::Chain)?;
        if ts >= rev.compromised_since {
            return Err(Error::Policy(format!(
                "signed by a revoked key at or after its compromise ({}): {}",
                timestamp::format(rev.compromised_since),
                rev.reason
            )));
        }
    }
    Ok(r)
}

/// Verifies a chain file. With a directory, the root key is the first
/// receipt's key if the directory lists it, every segment's key must be
/// listed, and revocations apply.
pub fn chain(text: &str, mut opts: Options, trust: Option<&Trust>) -> Result<Summary, Error> {
    if let Some(t) = trust {
        if opts.pinned.is_none() {
            let first = text.lines().filter(|l| !l.trim().is_empty()).find_map(|l| {
                match receipt::parse_entry(l) {
                    Ok(receipt::Entry::Receipt(r)) => Some(r.signer_key.to_lowercase()),
                    _ => None,
                }
            });
            match first {
                Some(k) if t.keys.contains(&k) => opts.pinned = Some(k),
                Some(k) => {
                    return Err(Error::UntrustedKey {
                        expected: "a key of the directory".into(),
                        found: k,
                    })
                }
                None => return Err(Error::Chain("no receipts found".into())),
            }
        }
        opts.revoked = t.revoked.clone();
    }
    let summary = chain::verify(text, &opts)?;
    if let Some(t) = trust {
        if let Some(k) = summary.segment_keys.iter().find(|k| !t.keys.contains(*k)) {
            return Err(Error::UntrustedKey {
                expected: "a key of the directory".into(),
                found: k.clone(),
            });
        }
    }
    Ok(summary)
}

/// Default policy for `sigil verify`.
pub fn default_policy() -> Policy {
    Policy::default()
}
