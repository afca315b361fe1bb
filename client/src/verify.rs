//! Offline verification for `sigil verify`: a receipt, or a chain with its
//! rotations, against a trust anchor.
//!
//! Trust model: a verifier accepts exactly what the chain key vouched for,
//! walked from a pinned root. The anchor is a pinned root key (`--key`), a
//! directory whose lineage is walked from that root (`--key` with
//! `--directory`), or a directory alone (its own first chain version is the
//! root: trust on fetch). Digest keys, versions outside the lineage, and a
//! revoked version past where its revocation took effect are refused.

use sigil_proto::chain::{self, Options, Summary};
use sigil_proto::lineage::Lineage;
use sigil_proto::policy::{check_policy, Policy};
use sigil_proto::receipt::{self, Receipt};
use sigil_proto::{timestamp, Error};

/// What a verification is anchored to.
pub enum Anchor<'a> {
    /// A pinned key: the receipt's signer, or the chain's first signer.
    Key(&'a str),
    /// A verified directory lineage.
    Lineage(&'a Lineage),
    /// Nothing: internal consistency only, the file's own key trusted.
    Unpinned,
}

/// Verifies one receipt document; returns it when valid.
pub fn receipt(text: &str, anchor: &Anchor, policy: &Policy) -> Result<Receipt, Error> {
    let r = receipt::parse_receipt(text)?;
    match anchor {
        Anchor::Key(k) => {
            receipt::verify(&r, Some(k))?;
        }
        Anchor::Unpinned => {
            receipt::verify(&r, None)?;
        }
        Anchor::Lineage(l) => {
            let signer = r.signer_key.to_lowercase();
            let Some(version) = l.version_of(&signer) else {
                return Err(untrusted(l, &signer));
            };
            receipt::verify(&r, Some(&signer))?;
            if let Some((keyid, at)) = l.retired.get(&signer) {
                chain::check_not_after_retirement(&r, keyid, *at)?;
            }
            if let Some(w) = l.windows.get(&signer) {
                chain::check_window(&r, w)?;
            }
            if let Some(rev) = l.revoked.get(&signer) {
                // Alone, a receipt cannot show where it stands relative to
                // the revocation, and its timestamp is the signer's word.
                return Err(Error::Policy(format!(
                    "signed by {}, revoked (compromised since {}; {}): a receipt of a revoked \
                     version is only trusted within its chain (sigil verify chain)",
                    version.keyid,
                    timestamp::format(rev.compromised_since),
                    rev.reason
                )));
            }
        }
    }
    check_policy(&r, policy)?;
    Ok(r)
}

/// Verifies a chain file against `anchor`, reporting `progress(done,
/// total)` as it goes. With a lineage, the chain may start at any of its
/// versions; every segment's key must be a version of the lineage,
/// versions only go up, and revocations and retirements apply.
pub fn chain_with_progress(
    text: &str,
    mut opts: Options,
    anchor: &Anchor,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Summary, Error> {
    match anchor {
        Anchor::Key(k) => opts.pinned = Some(k.to_lowercase()),
        Anchor::Unpinned => opts.pinned = None,
        Anchor::Lineage(l) => {
            match first_signer(text) {
                Some(k) if l.version_of(&k).is_some() => opts.pinned = Some(k),
                Some(k) => return Err(untrusted(l, &k)),
                None => return Err(Error::Chain("no receipts found".into())),
            }
            opts.revoked = l.revoked.clone();
            opts.retired = l.retired.clone();
            opts.windows = l.windows.clone();
        }
    }
    let summary = chain::verify_with_progress(text, &opts, progress)?;
    if let Anchor::Lineage(l) = anchor {
        let mut last = 0;
        for k in &summary.segment_keys {
            let Some(v) = l.version_of(k) else {
                return Err(untrusted(l, k));
            };
            if v.version <= last {
                return Err(Error::Policy(format!(
                    "a segment signed by {} follows a newer version: versions only go up",
                    v.keyid
                )));
            }
            last = v.version;
        }
        if let Some(speaker) = l.speaker_version {
            if last > speaker {
                return Err(Error::Root(format!(
                    "the chain holds version {last}, newer than version {speaker} that signed \
                     the directory statement: the statement is stale or from an older key"
                )));
            }
        }
    }
    Ok(summary)
}

/// The signer key (lowercase hex) of a chain file's first receipt.
pub fn first_signer(text: &str) -> Option<String> {
    chain::entries(text).find_map(|l| match receipt::parse_entry(l.text) {
        Ok(receipt::Entry::Receipt(r)) => Some(r.signer_key.to_lowercase()),
        _ => None,
    })
}

fn untrusted(l: &Lineage, key: &str) -> Error {
    if let Some(by) = &l.certified_by {
        return Error::UntrustedKey {
            expected: format!("a version of {:?} certified in {by}", l.root().name),
            found: format!("{key}, which is not in {by}"),
        };
    }
    Error::UntrustedKey {
        expected: format!(
            "a version of chain key {:?} endorsed from its root {}",
            l.root().name,
            l.root().public_key
        ),
        found: key.to_owned(),
    }
}
