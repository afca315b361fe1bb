//! What a verified key directory proves: the chain key's lineage from a
//! pinned root, its revocations, and the high-water mark a verifier keeps
//! so that a directory cannot be rolled back.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::directory::KeyEntry;
use crate::{timestamp, Error};

/// How fresh a directory must be, judged at one instant.
#[derive(Clone, Debug)]
pub struct Freshness {
    /// The instant (now, or the verifier's `--at`).
    pub at: OffsetDateTime,
    /// Refuse a directory signed longer ago than this (`None`: any age).
    pub max_age: Option<time::Duration>,
}

impl Freshness {
    /// Clock skew allowed for a directory signed "in the future".
    pub const SKEW: time::Duration = time::Duration::minutes(5);

    /// No age limit and no future check: for callers that judge age
    /// themselves.
    pub fn any() -> Self {
        Freshness {
            at: OffsetDateTime::now_utc(),
            max_age: None,
        }
    }

    pub(crate) fn check(&self, signed: OffsetDateTime) -> Result<(), Error> {
        let Some(max) = self.max_age else {
            return Ok(());
        };
        if signed > self.at + Self::SKEW {
            return Err(Error::Directory(format!(
                "signed_at {} is in the future (verifying at {})",
                timestamp::format(signed),
                timestamp::format(self.at)
            )));
        }
        if self.at - signed > max {
            return Err(Error::Directory(format!(
                "signed at {}, older than the maximum age of {} s at {}: fetch a fresh one \
                 (a stale directory may predate a revocation)",
                timestamp::format(signed),
                max.whole_seconds(),
                timestamp::format(self.at)
            )));
        }
        Ok(())
    }
}

/// A revoked version, as a verified directory states it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revocation {
    /// e.g. `mediator.v2`.
    pub keyid: String,
    /// Its receipts timestamped at or after this are refused.
    pub compromised_since: OffsetDateTime,
    /// Why it was revoked.
    pub reason: String,
    /// Per chain, the last receipt of the version still trusted: (seq,
    /// receipt hash). `None` for a directory of an older sigild.
    pub through: Option<HashMap<String, (u64, String)>>,
}

/// The chain key's versions a directory proves, root first.
#[derive(Clone, Debug)]
pub struct Lineage {
    /// Root to newest, each endorsed by the one before.
    pub versions: Vec<KeyEntry>,
    /// When the directory was signed.
    pub signed_at: OffsetDateTime,
    /// Revoked versions by public key.
    pub revoked: HashMap<String, Revocation>,
    /// Retired versions by public key: (keyid, when). A retired version
    /// signs nothing new, so its receipts dated later are forgeries.
    pub retired: HashMap<String, (String, OffsetDateTime)>,
    /// Certified windows by public key (root role): a version's receipts
    /// dated outside its window are forgeries.
    pub windows: HashMap<String, Window>,
    /// Version of the key that signed the directory statement (root role):
    /// a chain holding a newer version shows the statement is stale.
    pub speaker_version: Option<u32>,
    /// What certified the versions (root role), e.g. `keyset v7 of root v2`;
    /// `None`: endorsements walked from a pinned key.
    pub certified_by: Option<String>,
}

/// When a certified version may sign.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    /// e.g. `mediator.v2`.
    pub keyid: String,
    /// Nothing it signs is dated before this.
    pub not_before: OffsetDateTime,
    /// Nothing it signs is dated after this.
    pub not_after: OffsetDateTime,
}

impl Lineage {
    /// The newest version, which signed the directory.
    pub fn newest(&self) -> &KeyEntry {
        // A lineage always holds its root: `lineage` pushes it first.
        &self.versions[self.versions.len() - 1]
    }

    /// The root version.
    pub fn root(&self) -> &KeyEntry {
        &self.versions[0]
    }

    /// The version with this public key, if it is in the lineage.
    pub fn version_of(&self, public_key: &str) -> Option<&KeyEntry> {
        let pk = public_key.to_lowercase();
        self.versions.iter().find(|k| k.public_key == pk)
    }
}

/// What a verifier remembers of the directories it accepted, per pinned
/// root, so that an older one cannot be shown to it again: a directory
/// fetched before a revocation, or one whose newest versions were dropped by
/// someone holding an older key. Kept by `sigil verify --state FILE`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HighWater {
    /// By root public key (lowercase hex).
    pub roots: BTreeMap<String, Seen>,
    /// Under an offline root: by SHA-256 (hex) of root 1's body.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub offline_roots: BTreeMap<String, crate::root::trust::Seen>,
}

/// The newest directory accepted for one root.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seen {
    /// Its `signed_at`.
    pub signed_at: String,
    /// Every version seen: keyid to public key.
    pub versions: BTreeMap<String, String>,
    /// Every revocation seen: keyid to `compromised_since`.
    pub revoked: BTreeMap<String, String>,
}

impl HighWater {
    /// Parses a state file's text.
    pub fn parse(text: &str) -> Result<Self, Error> {
        serde_json::from_str(text).map_err(|e| Error::Directory(format!("state: {e}")))
    }

    /// JSON text to store.
    pub fn to_json(&self) -> String {
        // Plain strings in maps: serializing cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Refuses `lineage` if it is older than what was seen for its root:
    /// signed earlier, a known version missing or with another key, a
    /// revocation dropped or loosened. Otherwise remembers it.
    pub fn advance(&mut self, lineage: &Lineage) -> Result<(), Error> {
        let bad = |m: String| {
            Err(Error::Directory(format!(
                "rolled back: {m}. If the change is genuine (checked out of band), remove this \
                 root from the --state file"
            )))
        };
        let root = lineage.root().public_key.clone();
        let new = Seen {
            signed_at: timestamp::format(lineage.signed_at),
            versions: lineage
                .versions
                .iter()
                .map(|k| (k.keyid.clone(), k.public_key.clone()))
                .collect(),
            revoked: lineage
                .revoked
                .values()
                .map(|r| (r.keyid.clone(), timestamp::format(r.compromised_since)))
                .collect(),
        };
        if let Some(old) = self.roots.get(&root) {
            let old_signed = timestamp::parse(&old.signed_at).map_err(Error::Directory)?;
            if lineage.signed_at < old_signed {
                return bad(format!(
                    "signed at {}, before the directory already seen ({})",
                    new.signed_at, old.signed_at
                ));
            }
            for (keyid, pk) in &old.versions {
                match new.versions.get(keyid) {
                    None => return bad(format!("{keyid}, seen before, is missing")),
                    Some(p) if p != pk => {
                        return bad(format!("{keyid} now has another public key"))
                    }
                    Some(_) => {}
                }
            }
            for (keyid, since) in &old.revoked {
                let Some(now) = new.revoked.get(keyid) else {
                    return bad(format!("{keyid} was revoked and is not any more"));
                };
                let (was, is) = (
                    timestamp::parse(since).map_err(Error::Directory)?,
                    timestamp::parse(now).map_err(Error::Directory)?,
                );
                if is > was {
                    return bad(format!(
                        "{keyid}'s compromise time moved later, from {since} to {now}"
                    ));
                }
            }
        }
        self.roots.insert(root, new);
        Ok(())
    }
}
