//! What a verifier remembers between runs (`--state`), and the checks
//! that refuse anything older than that (TUF §5.3.5, §5.3.11, §5.4).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::bad;
use super::docs::parse_time;
use super::Keyset;
use crate::lineage::Revocation;
use crate::{timestamp, Error};

/// What a verifier remembers per deployment (`--state`), so nothing older
/// can be shown to it again.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seen {
    /// Newest root version.
    pub root_version: u64,
    /// Newest keyset version.
    pub keyset_version: u64,
    /// Its body hash.
    pub keyset_sha256: String,
    /// The newest statement's `signed_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statement_signed_at: Option<String>,
    /// Its signer's public key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statement_signer: Option<String>,
    /// Online revocations seen (public key to `compromised_since`): a later
    /// statement must keep them.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub online_revoked: std::collections::BTreeMap<String, String>,
}

pub(super) fn check_keyset_not_older(s: &Seen, k: &Keyset, sha: &str) -> Result<(), Error> {
    let v = k.version;
    if v < s.keyset_version {
        return Err(bad(format!(
            "rolled back: keyset v{v} is older than v{} already seen",
            s.keyset_version
        )));
    }
    if v == s.keyset_version && sha != s.keyset_sha256 {
        return Err(bad(format!(
            "keyset v{v} differs from the keyset v{v} already seen: two keysets of one version"
        )));
    }
    if v == s.keyset_version + 1 && k.prev.as_deref() != Some(s.keyset_sha256.as_str()) {
        return Err(bad(format!(
            "keyset v{v} does not follow the keyset v{} already seen (prev differs)",
            s.keyset_version
        )));
    }
    Ok(())
}

pub(super) fn root_lists_revoked(k: &Keyset, pk: &str) -> bool {
    k.find(pk).is_some_and(|(_, v)| v.revoked.is_some())
}

/// The online revocations a verifier saw before, as revocations (by time;
/// the statement that repeats them brings their pins back).
pub(super) fn apply_seen_online(
    s: &Seen,
    k: &Keyset,
    revoked: &mut HashMap<String, Revocation>,
) -> Result<(), Error> {
    for (pk, since) in &s.online_revoked {
        let Some((name, v)) = k.find(pk) else {
            continue;
        };
        let since = parse_time(since, "state online_revoked")?;
        match revoked.get_mut(pk) {
            Some(r) => r.compromised_since = r.compromised_since.min(since),
            None => {
                revoked.insert(
                    pk.clone(),
                    Revocation {
                        keyid: format!("{name}.v{}", v.version),
                        compromised_since: since,
                        reason: "revoked online (seen before)".into(),
                        through: None,
                    },
                );
            }
        }
    }
    Ok(())
}

pub(super) fn check_statement_not_older(
    s: &Seen,
    signer: &str,
    signed_at: OffsetDateTime,
    k: &Keyset,
    revoked: &HashMap<String, Revocation>,
) -> Result<(), Error> {
    let (Some(old_at), Some(old_signer)) = (&s.statement_signed_at, &s.statement_signer) else {
        return Ok(());
    };
    // TUF §5.3.11: once the signer of the statement seen is revoked, its
    // high-water is dropped; otherwise a thief's future-dated statement
    // would lock verifiers out.
    if revoked.contains_key(old_signer) {
        return Ok(());
    }
    let old_at = parse_time(old_at, "state statement_signed_at")?;
    if signed_at < old_at {
        return Err(bad(format!(
            "rolled back: the statement of {} is older than the one of {} already seen",
            timestamp::format(signed_at),
            timestamp::format(old_at)
        )));
    }
    let version_of = |pk: &str| k.find(pk).map(|(_, v)| v.version);
    if let (Some(new), Some(old)) = (version_of(signer), version_of(old_signer)) {
        if new < old {
            return Err(bad(format!(
                "rolled back: the statement is signed by version {new}, older than version \
                 {old} already seen"
            )));
        }
    }
    Ok(())
}
