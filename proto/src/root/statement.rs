//! The directory statement's checks (step 3 of the walk): signed by an
//! unrevoked keyset version within its window, fresh, naming exactly this
//! root version, keyset (by hash) and `keys[]`; and the revocations the
//! verifier then holds, from the keyset and (only tightening) online.

use std::collections::HashMap;

use serde_json::Value;
use time::OffsetDateTime;

use super::docs::parse_time;
use super::trust::window;
use super::{bad, body_sha256, Keyset, Root, Signed, Statement};
use crate::lineage::{Freshness, Revocation};
use crate::{timestamp, Error};

pub(super) fn verify_statement(
    root: &Signed<Root>,
    keyset: &Signed<Keyset>,
    keyset_sha: &str,
    st: &Signed<Statement>,
    keys: Option<&Value>,
    at: OffsetDateTime,
) -> Result<(String, u32, OffsetDateTime), Error> {
    let s = &st.signed;
    let [sig] = st.signatures.as_slice() else {
        return Err(bad(format!(
            "the statement has {} signatures; exactly one, by the active version, is expected",
            st.signatures.len()
        )));
    };
    let Some((name, v)) = keyset.signed.find(&sig.keyid) else {
        return Err(bad(format!(
            "the statement is signed by {}, which keyset v{} does not certify",
            sig.keyid, keyset.signed.version
        )));
    };
    if st.valid_signers([&sig.keyid])?.is_empty() {
        return Err(bad(format!(
            "the statement's signature by {name}.v{} does not verify",
            v.version
        )));
    }
    if v.revoked.is_some() {
        return Err(bad(format!(
            "the statement is signed by {name}.v{}, revoked by the root",
            v.version
        )));
    }
    if s.deployment != root.signed.deployment {
        return Err(bad(format!(
            "the statement is for deployment {:?}, not {:?}",
            s.deployment, root.signed.deployment
        )));
    }
    let signed_at = parse_time(&s.signed_at, "statement signed_at")?;
    let (nb, na) = window(v)?;
    if signed_at < nb || signed_at > na {
        return Err(bad(format!(
            "the statement of {} is outside {name}.v{}'s window ({} to {})",
            s.signed_at, v.version, v.not_before, v.not_after
        )));
    }
    if signed_at > at + Freshness::SKEW {
        return Err(bad(format!(
            "the statement is dated {}, in the future (verifying at {})",
            s.signed_at,
            timestamp::format(at)
        )));
    }
    let max = root.signed.policy.directory_max_age_seconds;
    if at - signed_at > time::Duration::seconds(i64::try_from(max).unwrap_or(i64::MAX)) {
        return Err(bad(format!(
            "the statement of {} is older than the root's directory_max_age_seconds ({max}) \
             at {}: fetch a fresh directory (a stale one may predate a revocation)",
            s.signed_at,
            timestamp::format(at)
        )));
    }
    if s.root_version != root.signed.version {
        return Err(bad(format!(
            "the statement names root v{}, but the newest root is v{}",
            s.root_version, root.signed.version
        )));
    }
    if s.keyset_version != keyset.signed.version || s.keyset_sha256 != keyset_sha {
        return Err(bad(format!(
            "the statement names keyset v{} ({}), not the keyset v{} given ({keyset_sha}): \
             documents of different publications",
            s.keyset_version, s.keyset_sha256, keyset.signed.version
        )));
    }
    let Some(keys) = keys else {
        return Err(bad(
            "the statement comes without the directory keys[] it hashes",
        ));
    };
    if hex::encode(body_sha256(keys)?) != s.keys_sha256 {
        return Err(bad(
            "the directory's keys[] is not the one the statement hashes (keys_sha256)",
        ));
    }
    for (n, ver) in &s.active {
        if !keyset
            .signed
            .keys
            .get(n)
            .is_some_and(|vs| vs.iter().any(|x| x.version == *ver))
        {
            return Err(bad(format!(
                "the statement names {n}.v{ver} active, which keyset v{} does not certify",
                keyset.signed.version
            )));
        }
    }
    Ok((sig.keyid.clone(), v.version, signed_at))
}

pub(super) fn revocation(
    keyid: String,
    since: &str,
    reason: &str,
    through: &[crate::directory::Through],
) -> Result<Revocation, Error> {
    Ok(Revocation {
        keyid,
        compromised_since: parse_time(since, "compromised_since")?,
        reason: reason.to_owned(),
        through: Some(
            through
                .iter()
                .map(|t| (t.chain.clone(), (t.seq, t.receipt_hash.clone())))
                .collect(),
        ),
    })
}

pub(super) fn root_revocations(k: &Keyset) -> Result<HashMap<String, Revocation>, Error> {
    let mut out = HashMap::new();
    for (name, v) in k.versions() {
        if let Some(r) = &v.revoked {
            out.insert(
                v.public_key.clone(),
                revocation(
                    format!("{name}.v{}", v.version),
                    &r.compromised_since,
                    &r.reason,
                    &r.through,
                )?,
            );
        }
    }
    Ok(out)
}

/// Online revocations only tighten: the earlier compromise time wins, and a
/// root revocation's pins stand.
pub(super) fn merge_online(
    k: &Keyset,
    st: &Statement,
    revoked: &mut HashMap<String, Revocation>,
) -> Result<(), Error> {
    for o in &st.revoked {
        let Some(v) = k
            .keys
            .get(&o.name)
            .and_then(|vs| vs.iter().find(|v| v.version == o.version))
        else {
            return Err(bad(format!(
                "the statement revokes {}.v{}, which keyset v{} does not certify",
                o.name, o.version, k.version
            )));
        };
        let online = revocation(
            format!("{}.v{}", o.name, o.version),
            &o.compromised_since,
            &o.reason,
            &o.through,
        )?;
        match revoked.get_mut(&v.public_key) {
            Some(r) => {
                r.compromised_since = r.compromised_since.min(online.compromised_since);
                if r.through.is_none() {
                    r.through = online.through;
                }
            }
            None => {
                revoked.insert(v.public_key.clone(), online);
            }
        }
    }
    Ok(())
}
