//! Key records and their state machine, apart from the backend and the
//! file: a version is generated active (or standby, under an offline root),
//! a rotation's successor is active and `pending` until every chain has its
//! boundary, the predecessor is then retired; any version may be revoked,
//! its revocation `pending` until every chain records it. These functions
//! decide; the keyring persists what they decide.

use serde::{Deserialize, Serialize};
use sigil_keys::KeyId;
use sigil_proto::directory::{KeyEntry, KeyState, Through};
use sigil_proto::timestamp;

use super::{KeyVersion, Revoked};
use crate::Error;

/// One key version, as keys.json records it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct Record {
    #[serde(flatten)]
    pub(super) entry: KeyEntry,
    /// Generated for a rotation whose boundaries are not all written yet.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(super) pending: bool,
    /// Revoked, and the revocation receipts are not on every chain yet.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(super) revocation_pending: bool,
    /// The label namespace the key was generated in (`None`: before
    /// namespaces, label `sigil.<name>.v<N>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) namespace: Option<String>,
}

impl Record {
    fn is(&self, name: &str, version: u32) -> bool {
        self.entry.name == name && self.entry.version == version
    }

    fn active_of(&self, name: &str) -> bool {
        self.entry.name == name && self.entry.state == KeyState::Active
    }
}

/// keys.json.
#[derive(Default, Serialize, Deserialize)]
pub(super) struct File {
    /// This data dir's label namespace, chosen at random on first use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) namespace: Option<String>,
    /// Labels whose generation began and was not recorded: only these may
    /// be adopted from the backend (a crash between generating and
    /// recording); any other existing label belongs to someone else.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) generating: Vec<String>,
    pub(super) keys: Vec<Record>,
}

/// The key a record names, in the backend's namespace.
pub(super) fn key_of(r: &Record) -> Option<KeyVersion> {
    let id = KeyId::new(&r.entry.name, r.entry.version).ok()?;
    let id = match &r.namespace {
        Some(ns) => id.in_namespace(ns).ok()?,
        None => id,
    };
    Some(KeyVersion {
        id,
        public_hex: r.entry.public_key.clone(),
    })
}

/// The revocation a revoked record carries.
pub(super) fn revoked_of(r: &Record) -> Option<Revoked> {
    Some(Revoked {
        key: key_of(r)?,
        revoked_at: r.entry.revoked.clone()?,
        compromised_since: r.entry.compromised_since.clone()?,
        reason: r.entry.reason.clone().unwrap_or_default(),
    })
}

/// The version of `name` that signs now: the newest active one (a pending
/// successor signs as soon as it is recorded).
pub(super) fn signing(records: &[Record], name: &str) -> Option<KeyVersion> {
    records
        .iter()
        .filter(|r| r.active_of(name))
        .max_by_key(|r| r.entry.version)
        .and_then(key_of)
}

/// Key names with a rotation begun and not finished.
pub(super) fn pending_rotations(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .filter(|r| r.pending)
        .map(|r| r.entry.name.clone())
        .collect()
}

/// Revocations not yet recorded on every chain.
pub(super) fn pending_revocations(records: &[Record]) -> Vec<Revoked> {
    records
        .iter()
        .filter(|r| r.revocation_pending)
        .filter_map(revoked_of)
        .collect()
}

/// What beginning a rotation of a key name means now.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Begin {
    /// A rotation is already under way (a crash, a chain that did not
    /// cross): finish it to this successor.
    Resume {
        /// The signing version before the rotation.
        old: KeyVersion,
        /// Its pending successor.
        new: KeyVersion,
    },
    /// Make a successor of `old` as version `version`.
    Next {
        /// The signing version.
        old: KeyVersion,
        /// The version number the successor takes.
        version: u32,
    },
}

/// Decides how a rotation of `name` begins.
pub(super) fn begin(records: &[Record], name: &str) -> Result<Begin, Error> {
    let mut active: Vec<&Record> = records.iter().filter(|r| r.active_of(name)).collect();
    active.sort_by_key(|r| r.entry.version);
    let malformed = || Error::Corrupt(format!("key record of {name} is malformed"));
    match active.as_slice() {
        [] => Err(Error::NotFound(format!(
            "key: no active key named {name:?}"
        ))),
        [.., prev, last] if last.pending => Ok(Begin::Resume {
            old: key_of(prev).ok_or_else(malformed)?,
            new: key_of(last).ok_or_else(malformed)?,
        }),
        [.., last] => {
            let newest = records
                .iter()
                .filter(|r| r.entry.name == name)
                .map(|r| r.entry.version)
                .max()
                .unwrap_or(0);
            Ok(Begin::Next {
                old: key_of(last).ok_or_else(malformed)?,
                version: newest + 1,
            })
        }
    }
}

/// Makes standby `version` of `name` the pending successor.
pub(super) fn activate(records: &mut [Record], name: &str, version: u32, now: &str) {
    for r in records.iter_mut().filter(|r| r.is(name, version)) {
        r.entry.state = KeyState::Active;
        r.pending = true;
        r.entry.activated = Some(now.to_owned());
    }
}

/// Completes a rotation of `name`: its newest active version is plainly
/// active, the older active ones retired at `now`.
pub(super) fn finish_rotation(records: &mut [Record], name: &str, now: &str) {
    let Some(newest) = records
        .iter()
        .filter(|r| r.active_of(name))
        .map(|r| r.entry.version)
        .max()
    else {
        return;
    };
    for r in records.iter_mut().filter(|r| r.entry.name == name) {
        if r.entry.version == newest {
            r.pending = false;
        } else if r.entry.state == KeyState::Active {
            r.entry.state = KeyState::Retired;
            r.entry.retired = Some(now.to_owned());
        }
    }
}

/// Checks a revocation request: the version exists, `compromised_since`
/// is canonical UTC, a reason is given.
pub(super) fn check_revocation(
    records: &[Record],
    name: &str,
    version: u32,
    reason: &str,
    compromised_since: &str,
) -> Result<(), Error> {
    if !records.iter().any(|r| r.is(name, version)) {
        return Err(Error::NotFound(format!(
            "key: {name} has no version {version}"
        )));
    }
    if !timestamp::is_canonical(compromised_since) {
        return Err(Error::InvalidArgument(format!(
            "compromised_since: {compromised_since:?} must be UTC RFC 3339 (e.g. 2026-11-22T10:00:00Z)"
        )));
    }
    if reason.trim().is_empty() || reason.len() > 1024 {
        return Err(Error::InvalidArgument(
            "reason: required, at most 1024 bytes".into(),
        ));
    }
    Ok(())
}

/// Revokes `name` version `version` at `now`; its revocation is pending
/// until every chain records it. `None` when there is no such version.
pub(super) fn revoke(
    records: &mut [Record],
    name: &str,
    version: u32,
    reason: &str,
    compromised_since: &str,
    now: &str,
) -> Option<Revoked> {
    let r = records.iter_mut().find(|r| r.is(name, version))?;
    r.entry.state = KeyState::Revoked;
    r.entry.revoked = Some(now.to_owned());
    r.entry.compromised_since = Some(compromised_since.to_owned());
    r.entry.reason = Some(reason.to_owned());
    r.pending = false;
    r.revocation_pending = true;
    revoked_of(r)
}

/// Marks `key`'s revocation as written on every chain, with where it took
/// effect on each chain the version signed.
pub(super) fn revocation_recorded(records: &mut [Record], key: &KeyId, through: &[Through]) {
    for r in records
        .iter_mut()
        .filter(|r| r.is(key.name(), key.version()))
    {
        r.revocation_pending = false;
        r.entry.through = Some(through.to_vec());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: &str = "2026-12-01T00:00:00Z";
    const T1: &str = "2026-12-02T00:00:00Z";

    fn record(name: &str, version: u32, state: KeyState, pending: bool) -> Record {
        let mut entry = KeyEntry::new(name, version, &[version as u8; 32]);
        entry.state = state;
        Record {
            entry,
            pending,
            revocation_pending: false,
            namespace: Some("ns".into()),
        }
    }

    fn version(k: &KeyVersion) -> u32 {
        k.id.version()
    }

    #[test]
    fn a_rotation_goes_from_next_to_pending_to_finished() {
        let mut rs = vec![record("m", 1, KeyState::Active, false)];
        let Begin::Next { old, version: v } = begin(&rs, "m").unwrap() else {
            panic!("a first rotation makes a successor")
        };
        assert_eq!((version(&old), v), (1, 2));
        rs.push(record("m", 2, KeyState::Active, true));
        // The pending successor signs, and a second begin resumes it.
        assert_eq!(version(&signing(&rs, "m").unwrap()), 2);
        assert_eq!(pending_rotations(&rs), ["m"]);
        let Begin::Resume { old, new } = begin(&rs, "m").unwrap() else {
            panic!("a rotation under way is resumed")
        };
        assert_eq!((version(&old), version(&new)), (1, 2));

        finish_rotation(&mut rs, "m", T0);
        assert!(pending_rotations(&rs).is_empty());
        assert_eq!(rs[0].entry.state, KeyState::Retired);
        assert_eq!(rs[0].entry.retired.as_deref(), Some(T0));
        assert_eq!(rs[1].entry.state, KeyState::Active);
        assert_eq!(version(&signing(&rs, "m").unwrap()), 2);
    }

    #[test]
    fn a_successor_takes_the_next_version_after_every_one_ever_made() {
        let rs = vec![
            record("m", 1, KeyState::Retired, false),
            record("m", 2, KeyState::Active, false),
            record("m", 3, KeyState::Revoked, false),
            record("m", 4, KeyState::Standby, false),
            record("other", 9, KeyState::Active, false),
        ];
        assert_eq!(
            begin(&rs, "m").unwrap(),
            Begin::Next {
                old: key_of(&rs[1]).unwrap(),
                version: 5
            }
        );
        assert!(matches!(begin(&rs, "none"), Err(Error::NotFound(_))));
    }

    #[test]
    fn a_standby_activated_is_the_pending_successor() {
        let mut rs = vec![
            record("m", 1, KeyState::Active, false),
            record("m", 2, KeyState::Standby, false),
        ];
        assert_eq!(version(&signing(&rs, "m").unwrap()), 1);
        activate(&mut rs, "m", 2, T0);
        assert_eq!(version(&signing(&rs, "m").unwrap()), 2);
        assert!(rs[1].pending);
        assert_eq!(rs[1].entry.activated.as_deref(), Some(T0));
    }

    #[test]
    fn a_revocation_is_pending_until_recorded_and_checked_before() {
        let mut rs = vec![
            record("m", 1, KeyState::Retired, false),
            record("m", 2, KeyState::Active, false),
        ];
        assert!(matches!(
            check_revocation(&rs, "m", 3, "lost", T0),
            Err(Error::NotFound(_))
        ));
        assert!(matches!(
            check_revocation(&rs, "m", 1, "lost", "yesterday"),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            check_revocation(&rs, "m", 1, " ", T0),
            Err(Error::InvalidArgument(_))
        ));
        check_revocation(&rs, "m", 1, "lost", T0).unwrap();
        assert!(revoke(&mut rs, "m", 3, "lost", T0, T1).is_none());

        let r = revoke(&mut rs, "m", 1, "lost", T0, T1).unwrap();
        assert_eq!(
            (r.revoked_at.as_str(), r.compromised_since.as_str()),
            (T1, T0)
        );
        assert_eq!(rs[0].entry.state, KeyState::Revoked);
        assert_eq!(pending_revocations(&rs).len(), 1);

        let through = [Through {
            chain: "c".into(),
            seq: 4,
            receipt_hash: "h".into(),
        }];
        revocation_recorded(&mut rs, &r.key.id, &through);
        assert!(pending_revocations(&rs).is_empty());
        assert_eq!(rs[0].entry.through.as_deref(), Some(&through[..]));
        // The other version is untouched.
        assert_eq!(rs[1].entry.state, KeyState::Active);
        assert!(rs[1].entry.through.is_none());
    }

    #[test]
    fn keys_are_addressed_in_their_namespace() {
        let mut r = record("m", 3, KeyState::Active, false);
        assert_eq!(key_of(&r).unwrap().id.label(), "sigil.ns.m.v3");
        r.namespace = None;
        assert_eq!(key_of(&r).unwrap().id.label(), "sigil.m.v3");
    }
}
