//! The verifier's walk from pinned root keys to the versions that may sign
//! chains, in TUF's order (specification 1.0.34, §5.3-§5.6), at one
//! instant fixed at the start (§5.1).
//!
//! 1. Roots: root 1 lists exactly the pinned keys and threshold and meets
//!    it; each later root meets the old and the new threshold, one count
//!    per public key, with its version exactly one more (§5.3.4-§5.3.5).
//!    The newest is unexpired and not below what the verifier saw before.
//! 2. Keyset: meets the newest root's threshold, same deployment, only the
//!    root's key names, unexpired, not below what was seen, windows and life
//!    within the root's policy. The highest valid keyset wins.
//! 3. Statement: signed by an unrevoked keyset version within its window,
//!    fresh, naming exactly this root version, keyset (by hash) and
//!    `keys[]`; its online revocations only tighten.
//!
//! The result is a [`Lineage`] the chain verifier uses unchanged: only
//! keyset versions count, windows bound their receipts, and revocations
//! pin each chain's last trusted receipt.

use std::collections::{BTreeSet, HashMap};

use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;

use super::docs::{parse_time, KeyVersion};
pub use super::material::Material;
pub use super::state::Seen;
use super::state::{
    apply_seen_online, check_keyset_not_older, check_statement_not_older, root_lists_revoked,
};
use super::statement::{merge_online, root_revocations, verify_statement};
use super::{bad, body_sha256, Keyset, Root, Signed};
use crate::directory::{KeyEntry, KeyState};
use crate::lineage::{Lineage, Revocation, Window};
use crate::{timestamp, Error};

/// What the verifier pins.
#[derive(Clone, Debug)]
pub enum Pin {
    /// Root public keys (lowercase hex) and the threshold root 1 must name.
    Keys {
        /// The keys.
        keys: BTreeSet<String>,
        /// Signatures needed.
        threshold: u32,
    },
    /// Root 1 itself, as the officers handed it out.
    Root(Box<Signed<Root>>),
}

/// What the walk proved.
#[derive(Clone, Debug)]
pub struct Verified {
    /// The deployment.
    pub deployment: String,
    /// Newest root version, its threshold and number of keys.
    pub root: (u64, u32, usize),
    /// The keyset's version.
    pub keyset_version: u64,
    /// The statement's `signed_at`, when there was one.
    pub statement_signed_at: Option<String>,
    /// The versions that may sign, for the chain verifier.
    pub lineage: Lineage,
    /// What to remember.
    pub seen: Seen,
}

/// Walks `material` from `pin` at instant `at`, refusing anything older
/// than `seen`.
pub fn verify(
    pin: &Pin,
    material: &Material,
    at: OffsetDateTime,
    seen: Option<&Seen>,
) -> Result<Verified, Error> {
    let root = verify_roots(pin, &material.roots, at, seen)?;
    let (keyset, keyset_sha) = choose_keyset(root, &material.keysets, at, seen)?;
    let mut revoked = root_revocations(&keyset.signed)?;
    // Online revocations seen before stay, whatever a later statement says.
    if let Some(s) = seen {
        apply_seen_online(s, &keyset.signed, &mut revoked)?;
    }
    let mut signer_version = None;
    let mut statement_signed_at = None;
    let mut statement_signer = None;
    let mut online_revoked = seen.map(|s| s.online_revoked.clone()).unwrap_or_default();
    if let Some(st) = &material.statement {
        let (signer, version, signed_at) =
            verify_statement(root, keyset, &keyset_sha, st, material.keys.as_ref(), at)?;
        if let Some(r) = revoked.get(&signer) {
            return Err(bad(format!(
                "the statement is signed by revoked {}: it speaks for nothing",
                r.keyid
            )));
        }
        // Judged before the statement's own revocations count: a thief of
        // an older version must not revoke the newer signer seen before
        // and so lift its high-water (TUF §5.3.11 drops it only for a
        // revocation the verifier already trusts).
        if let Some(s) = seen {
            check_statement_not_older(s, &signer, signed_at, &keyset.signed, &revoked)?;
            for pk in s.online_revoked.keys() {
                let listed = st.signed.revoked.iter().any(|o| {
                    keyset.signed.keys.get(&o.name).is_some_and(|vs| {
                        vs.iter()
                            .any(|v| v.version == o.version && &v.public_key == pk)
                    })
                });
                if !listed && !root_lists_revoked(&keyset.signed, pk) {
                    return Err(bad(format!(
                        "rolled back: the statement drops the online revocation of {pk} seen \
                         before"
                    )));
                }
            }
        }
        merge_online(&keyset.signed, &st.signed, &mut revoked)?;
        if let Some(r) = revoked.get(&signer) {
            return Err(bad(format!(
                "the statement revokes its own signer {}: it speaks for nothing",
                r.keyid
            )));
        }
        for o in &st.signed.revoked {
            if let Some(v) = keyset
                .signed
                .keys
                .get(&o.name)
                .and_then(|vs| vs.iter().find(|v| v.version == o.version))
            {
                online_revoked.insert(v.public_key.clone(), o.compromised_since.clone());
            }
        }
        signer_version = Some(version);
        statement_signed_at = Some(st.signed.signed_at.clone());
        statement_signer = Some(signer);
    }
    let keys = material.statement.as_ref().and(material.keys.as_ref());
    let lineage = lineage(
        &root.signed,
        &keyset.signed,
        revoked,
        signer_version,
        statement_signed_at.as_deref(),
        keys,
    )?;
    // Without a statement (--trust files) the statement high-water seen
    // before is kept, not erased.
    if statement_signed_at.is_none() {
        if let Some(s) = seen {
            statement_signed_at = s.statement_signed_at.clone();
            statement_signer = s.statement_signer.clone();
        }
    }
    let r = &root.signed;
    Ok(Verified {
        deployment: r.deployment.clone(),
        root: (r.version, r.threshold, r.keys.len()),
        keyset_version: keyset.signed.version,
        statement_signed_at: material
            .statement
            .as_ref()
            .map(|s| s.signed.signed_at.clone()),
        lineage,
        seen: Seen {
            root_version: r.version,
            keyset_version: keyset.signed.version,
            keyset_sha256: keyset_sha,
            statement_signed_at,
            statement_signer,
            online_revoked,
        },
    })
}

/// Counts `doc`'s valid signatures by `keys`; refuses fewer than
/// `threshold`.
fn meets<T>(doc: &Signed<T>, keys: &Root, what: &str) -> Result<(), Error>
where
    T: serde::de::DeserializeOwned + Serialize + super::docs::Document,
{
    let n = doc.valid_signers(keys.keys.keys())?.len();
    if n < keys.threshold as usize {
        return Err(bad(format!(
            "{what} has {n} valid signature(s) by the keys of root v{}, which needs {}",
            keys.version, keys.threshold
        )));
    }
    Ok(())
}

/// Step 1: walks `roots` from the pin; returns the newest.
pub fn verify_roots<'a>(
    pin: &Pin,
    roots: &'a [Signed<Root>],
    at: OffsetDateTime,
    seen: Option<&Seen>,
) -> Result<&'a Signed<Root>, Error> {
    let Some(first) = roots.first() else {
        return Err(bad("no root document"));
    };
    if roots.len() > super::MAX_ROOT_VERSIONS {
        return Err(bad(format!(
            "{} root versions, more than the {} a verifier walks",
            roots.len(),
            super::MAX_ROOT_VERSIONS
        )));
    }
    if first.signed.version != 1 {
        return Err(bad(format!(
            "the first root is v{}, not v1: every root version must be given",
            first.signed.version
        )));
    }
    match pin {
        Pin::Keys { keys, threshold } => {
            let listed: BTreeSet<String> = first.signed.keys.keys().cloned().collect();
            if &listed != keys || first.signed.threshold != *threshold {
                return Err(bad(format!(
                    "root v1 lists {} key(s) with threshold {}, not the {} pinned key(s) with \
                     threshold {}: this is another root",
                    listed.len(),
                    first.signed.threshold,
                    keys.len(),
                    threshold
                )));
            }
        }
        Pin::Root(r) => {
            if body_sha256(&r.body)? != body_sha256(&first.body)? {
                return Err(bad("root v1 is not the pinned root file"));
            }
        }
    }
    meets(first, &first.signed, "root v1")?;
    let mut trusted = first;
    for next in &roots[1..] {
        let (old, new) = (&trusted.signed, &next.signed);
        if new.version != old.version + 1 {
            return Err(bad(format!(
                "root v{} follows root v{}: root versions go up by exactly one",
                new.version, old.version
            )));
        }
        if new.deployment != old.deployment {
            return Err(bad(format!(
                "root v{} is for deployment {:?}, not {:?}",
                new.version, new.deployment, old.deployment
            )));
        }
        let what = format!("root v{}", new.version);
        // §5.3.4: a threshold of the old keys and of the new keys.
        meets(next, old, &what)?;
        meets(next, new, &what)?;
        trusted = next;
    }
    let newest = &trusted.signed;
    let expires = parse_time(&newest.expires, "root expires")?;
    if at >= expires {
        return Err(bad(format!(
            "root v{} expired at {} (verifying at {}): freeze or stale root",
            newest.version,
            newest.expires,
            timestamp::format(at)
        )));
    }
    if let Some(s) = seen {
        if newest.version < s.root_version {
            return Err(bad(format!(
                "rolled back: root v{} is older than v{} already seen",
                newest.version, s.root_version
            )));
        }
    }
    Ok(trusted)
}

/// Step 2 for one keyset: threshold of the newest root, deployment, key
/// names, expiry at `at`, and the root's limits.
pub fn check_keyset(
    root: &Signed<Root>,
    ks: &Signed<Keyset>,
    at: OffsetDateTime,
) -> Result<(), Error> {
    let (r, k) = (&root.signed, &ks.signed);
    let what = format!("keyset v{}", k.version);
    meets(ks, r, &what)?;
    if k.deployment != r.deployment {
        return Err(bad(format!(
            "{what} is for deployment {:?}, not {:?}",
            k.deployment, r.deployment
        )));
    }
    if k.root_version > r.version {
        return Err(bad(format!(
            "{what} names root v{}, newer than the newest root v{}",
            k.root_version, r.version
        )));
    }
    if let Some(n) = k.keys.keys().find(|n| !r.policy.key_names.contains(n)) {
        return Err(bad(format!(
            "{what} certifies key name {n:?}, which root v{} does not list in key_names",
            r.version
        )));
    }
    let issued = parse_time(&k.issued, "keyset issued")?;
    let expires = parse_time(&k.expires, "keyset expires")?;
    if at >= expires {
        return Err(bad(format!(
            "{what} expired at {} (verifying at {}): freeze or stale keyset",
            k.expires,
            timestamp::format(at)
        )));
    }
    if expires - issued > time::Duration::days(r.policy.keyset_max_days.into()) {
        return Err(bad(format!(
            "{what} lives longer than the root's keyset_max_days ({})",
            r.policy.keyset_max_days
        )));
    }
    let mut keys = BTreeSet::new();
    for (name, v) in k.versions() {
        if !keys.insert(&v.public_key) {
            return Err(bad(format!(
                "{what}: public key {} is certified twice",
                v.public_key
            )));
        }
        let (nb, na) = window(v)?;
        if na - nb > time::Duration::days(r.policy.max_validity_days.into()) {
            return Err(bad(format!(
                "{what}: {name}.v{} is valid longer than the root's max_validity_days ({})",
                v.version, r.policy.max_validity_days
            )));
        }
    }
    Ok(())
}

pub(super) fn window(v: &KeyVersion) -> Result<(OffsetDateTime, OffsetDateTime), Error> {
    Ok((
        parse_time(&v.not_before, "not_before")?,
        parse_time(&v.not_after, "not_after")?,
    ))
}

fn choose_keyset<'a>(
    root: &Signed<Root>,
    keysets: &'a [Signed<Keyset>],
    at: OffsetDateTime,
    seen: Option<&Seen>,
) -> Result<(&'a Signed<Keyset>, String), Error> {
    let mut sorted: Vec<&Signed<Keyset>> = keysets.iter().collect();
    sorted.sort_by_key(|k| std::cmp::Reverse(k.signed.version));
    let mut first_error = None;
    for ks in sorted {
        match check_keyset(root, ks, at) {
            Ok(()) => {
                let sha = ks.sha256_hex()?;
                if let Some(s) = seen {
                    check_keyset_not_older(s, &ks.signed, &sha)?;
                }
                return Ok((ks, sha));
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(first_error.unwrap_or_else(|| bad("no keyset document")))
}

fn lineage(
    root: &Root,
    k: &Keyset,
    revoked: HashMap<String, Revocation>,
    signer_version: Option<u32>,
    statement_at: Option<&str>,
    keys: Option<&Value>,
) -> Result<Lineage, Error> {
    let mut versions = Vec::new();
    let mut windows = HashMap::new();
    for name in &root.policy.key_names {
        let mut vs: Vec<&KeyVersion> = k
            .keys
            .get(name)
            .map(|v| v.iter().collect())
            .unwrap_or_default();
        vs.sort_by_key(|v| v.version);
        for v in vs {
            let pk: [u8; 32] = hex::decode(&v.public_key)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| bad("public key is not 32 bytes of hex"))?;
            let mut e = KeyEntry::new(name, v.version, &pk);
            e.state = if revoked.contains_key(&v.public_key) {
                KeyState::Revoked
            } else {
                KeyState::Retired
            };
            let (nb, na) = window(v)?;
            windows.insert(
                v.public_key.clone(),
                Window {
                    keyid: e.keyid.clone(),
                    not_before: nb,
                    not_after: na,
                },
            );
            versions.push(e);
        }
    }
    if versions.is_empty() {
        return Err(bad(format!(
            "keyset v{} certifies no version of {:?}",
            k.version, root.policy.key_names
        )));
    }
    let signed_at = match statement_at {
        Some(s) => parse_time(s, "statement signed_at")?,
        None => parse_time(&k.issued, "keyset issued")?,
    };
    // Retirement times from the keys[] the statement hashed: a retired
    // version signs nothing new even while its window is open (only ever
    // tightens what the keyset allows).
    let mut retired = HashMap::new();
    for e in keys.and_then(Value::as_array).into_iter().flatten() {
        let (Some(pk), Some(at)) = (
            e.get("public_key").and_then(Value::as_str),
            e.get("retired").and_then(Value::as_str),
        ) else {
            continue;
        };
        if let (Some(w), Ok(at)) = (windows.get(pk), timestamp::parse(at)) {
            retired.insert(pk.to_owned(), (w.keyid.clone(), at));
        }
    }
    Ok(Lineage {
        versions,
        signed_at,
        revoked,
        retired,
        windows,
        speaker_version: signer_version,
        certified_by: Some(format!("keyset v{} of root v{}", k.version, root.version)),
    })
}
