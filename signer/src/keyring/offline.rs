//! The key records' side of the offline root: standby versions generated
//! in advance, the certification request, imports, strict activation, and
//! the directory statement.

use serde_json::Value;
use sigil_proto::directory::{Directory, KeyState};
use sigil_proto::root::docs::{format_time, OnlineRevocation, Request, RequestedVersion};
use sigil_proto::root::{Custody, Signed};
use sigil_proto::timestamp;
use time::OffsetDateTime;

use super::{key_of, KeyVersion, Keyring, Record};
use crate::root_role::Imported;
use crate::store::write_atomic;
use crate::Error;

impl Keyring {
    /// Whether `key` may sign now. Under a required offline root only a
    /// version of the chain key that the keyset certifies, unrevoked and
    /// inside its window, signs (chains, ledgers, the directory); without
    /// one, every version the records hold as signing does.
    pub fn may_sign(&self, key: &KeyVersion) -> Result<(), Error> {
        if key.id.name() != self.directory_key {
            return Ok(());
        }
        self.root
            .allows(
                &key.id.to_string(),
                &key.public_hex,
                OffsetDateTime::now_utc(),
            )
            .map_err(|why| Error::Unavailable(format!("{why}; nothing was signed")))
    }

    /// When `key`'s certified window closes (`None`: no root, or not
    /// certified).
    pub fn window_end(&self, key: &KeyVersion) -> Option<OffsetDateTime> {
        self.root.not_after(&key.public_hex)
    }

    /// True once a keyset is imported.
    pub fn root_required(&self) -> bool {
        self.root.required()
    }

    /// Certified standby versions of `name` ready to take over.
    pub fn standby_versions(&self, name: &str) -> usize {
        self.read()
            .iter()
            .filter(|r| r.entry.state == KeyState::Standby && r.entry.name == name)
            .filter(|r| self.root.certified(&r.entry.public_key))
            .count()
    }

    /// Every standby version of `name`, certified or not.
    pub fn standby_total(&self, name: &str) -> u32 {
        self.read()
            .iter()
            .filter(|r| r.entry.state == KeyState::Standby && r.entry.name == name)
            .count()
            .try_into()
            .unwrap_or(u32::MAX)
    }

    /// For metrics under a required root: certified standbys of the chain
    /// key, and seconds until the keyset expires.
    pub fn root_stats(&self) -> Option<(usize, f64)> {
        if !self.root.required() {
            return None;
        }
        let left = self
            .root
            .keyset_expires()
            .map(|t| (t - OffsetDateTime::now_utc()).as_seconds_f64())
            .unwrap_or(0.0);
        Some((self.standby_versions(&self.directory_key), left))
    }

    /// Makes the lowest certified standby of `name` the pending successor.
    pub(super) fn activate_standby(&self, name: &str) -> Result<KeyVersion, Error> {
        let records = self.read();
        let now = OffsetDateTime::now_utc();
        let Some(next) = records
            .iter()
            .filter(|r| r.entry.state == KeyState::Standby && r.entry.name == name)
            .filter(|r| {
                self.root
                    .allows(&r.entry.keyid, &r.entry.public_key, now)
                    .is_ok()
            })
            .min_by_key(|r| r.entry.version)
        else {
            return Err(Error::FailedPrecondition(format!(
                "no certified standby version of {name:?} to rotate to: run `sigil keys \
                 prepare`, have the officers certify the request, and import the keyset"
            )));
        };
        let key = key_of(next)
            .ok_or_else(|| Error::Corrupt(format!("key record of {name} is malformed")))?;
        let version = next.entry.version;
        drop(records);
        let now = timestamp::now();
        self.update(|records| super::records::activate(records, name, version, &now))?;
        tracing::info!(key = %key.id, "standby version activated");
        Ok(key)
    }

    /// Generates `count` standby versions of `name` (each endorsed, for
    /// older verifiers, by the version before it) and returns the request
    /// for the officers: the standbys not yet certified, the name's
    /// history, signed by each new key (proof of possession) and by the
    /// signing version. Also written to `<data-dir>/root/requests/`.
    /// Blocking.
    pub fn prepare(&self, name: &str, count: u32) -> Result<String, Error> {
        if !(1..=16).contains(&count) {
            return Err(Error::InvalidArgument(
                "count: from 1 to 16 standby versions at a time".into(),
            ));
        }
        let Some(signing) = self.signing_key(name) else {
            return Err(Error::NotFound(format!(
                "key: no active key named {name:?}"
            )));
        };
        for _ in 0..count {
            self.generate_standby(name)?;
        }
        let doc = self.request(name, signing)?;
        let text = doc.to_json();
        let dir = self.path.with_file_name("root").join("requests");
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        write_atomic(&dir.join(request_file_name(&doc.signed)), text.as_bytes())?;
        Ok(text)
    }

    /// Generates the next version of `name` as a standby, endorsed (for
    /// older verifiers) by the version before it; a revoked one may be gone
    /// from the token and vouches for nothing, so the standby then goes
    /// without.
    fn generate_standby(&self, name: &str) -> Result<KeyVersion, Error> {
        let (prev, next) = {
            let records = self.read();
            let newest = records
                .iter()
                .filter(|r| r.entry.name == name)
                .max_by_key(|r| r.entry.version)
                .ok_or_else(|| Error::NotFound(format!("key: no key named {name:?}")))?;
            let prev = (newest.entry.state != KeyState::Revoked)
                .then(|| key_of(newest))
                .flatten();
            (prev, newest.entry.version + 1)
        };
        self.generate_version(name, next, prev.as_ref(), true)
    }

    /// The request for the officers: the standbys of `name` not yet
    /// certified and its history, signed by each new key (proof of
    /// possession) and by `signing`.
    fn request(&self, name: &str, signing: KeyVersion) -> Result<Signed<Request>, Error> {
        let records = self.read().clone();
        let mut mine: Vec<&Record> = records.iter().filter(|r| r.entry.name == name).collect();
        mine.sort_by_key(|r| r.entry.version);
        let (new, history): (Vec<&Record>, Vec<&Record>) = mine
            .iter()
            .filter(|r| {
                r.entry.state != KeyState::Standby || !self.root.certified(&r.entry.public_key)
            })
            .partition(|r| r.entry.state == KeyState::Standby);
        let (deployment, keyset_version, keyset_sha256) = self.root.current();
        let body = Request {
            type_: "sigil.request".into(),
            spec_version: 1,
            deployment,
            name: name.to_owned(),
            requested_at: format_time(OffsetDateTime::now_utc()),
            keyset_version,
            keyset_sha256,
            new: new.iter().map(|r| requested(r)).collect(),
            history: history.iter().map(|r| requested(r)).collect(),
        };
        let internal = |e: sigil_proto::Error| Error::Internal(format!("request: {e}"));
        let mut doc = Signed::new(body).map_err(internal)?;
        let input = doc.signing_input().map_err(internal)?;
        let signers = new.iter().filter_map(|r| key_of(r)).chain([signing]);
        for k in signers {
            let sig = self.backend.sign(&k.id, &input)?;
            let pk = public_bytes(&k.public_hex)?;
            doc.add_signature(&pk, &sig.0);
        }
        Ok(doc)
    }

    /// Imports a root or keyset document (checked as a verifier would, plus
    /// the daemon's guards) and re-publishes the directory. Blocking.
    pub fn import(&self, text: &str) -> Result<Imported, Error> {
        let records = self.read().clone();
        let generated = |name: &str, pk: &str| {
            records
                .iter()
                .any(|r| r.entry.name == name && r.entry.public_key == pk)
        };
        let signing = self.signing_key(&self.directory_key).map(|k| k.public_hex);
        let imported = self.root.import(text, generated, signing.as_deref())?;
        self.publish()?;
        Ok(imported)
    }

    /// Versions of `name` that the imported keyset revokes and the records
    /// do not yet: (version, reason, compromised_since).
    pub fn root_revocations(&self, name: &str) -> Vec<(u32, String, String)> {
        self.read()
            .iter()
            .filter(|r| r.entry.name == name && r.entry.state != KeyState::Revoked)
            .filter_map(|r| {
                self.root
                    .revocation_of(&r.entry.public_key)
                    .map(|(reason, since)| (r.entry.version, reason, since))
            })
            .collect()
    }

    /// The directory's `trust` member under a required root; `None` when
    /// the signing version may not sign (then verifiers pinned to the root
    /// refuse the directory: fail closed).
    pub(super) fn statement(
        &self,
        dir: &Directory,
        signer: &KeyVersion,
    ) -> Result<Option<Value>, Error> {
        // `publish` only calls this for a signer `may_sign` allowed.
        if !self.root.required() {
            return Ok(None);
        }
        let keys = serde_json::to_value(&dir.keys).map_err(|e| Error::Internal(e.to_string()))?;
        let revoked = dir
            .keys
            .iter()
            .filter(|k| k.name == self.directory_key && k.state == KeyState::Revoked)
            .filter(|k| self.root.lists(&k.public_key))
            .map(|k| OnlineRevocation {
                name: k.name.clone(),
                version: k.version,
                // Whole seconds, rounded up: rounding down would refuse
                // genuine receipts signed in the second before it.
                compromised_since: k
                    .compromised_since
                    .as_deref()
                    .or(k.revoked.as_deref())
                    .and_then(|s| timestamp::parse(s).ok())
                    .map(|t| {
                        let up = if t.nanosecond() > 0 {
                            t + time::Duration::seconds(1)
                        } else {
                            t
                        };
                        format_time(up)
                    })
                    .unwrap_or_default(),
                reason: k.reason.clone().unwrap_or_default(),
                through: k.through.clone().unwrap_or_default(),
            })
            .collect();
        let pk = public_bytes(&signer.public_hex)?;
        self.root.trust_member(
            &keys,
            (signer.id.name(), signer.id.version()),
            revoked,
            &pk,
            |msg| {
                let sig = self.backend.sign(&signer.id, msg)?;
                let shown = sigil_proto::sig::encode(&sig.0);
                crate::chain::check_signature(self.backend.as_ref(), signer, msg, &shown)?;
                Ok(sig.0)
            },
        )
    }
}

fn public_bytes(hex_key: &str) -> Result<[u8; 32], Error> {
    hex::decode(hex_key)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| Error::Corrupt(format!("public key {hex_key} is not 32 bytes of hex")))
}

/// A version as a request shows it.
fn requested(r: &Record) -> RequestedVersion {
    RequestedVersion {
        version: r.entry.version,
        public_key: r.entry.public_key.clone(),
        custody: Custody {
            backend: r.entry.backend.clone(),
            token: String::new(),
            non_extractable: r.entry.non_extractable,
            attestation: None,
        },
        created: r.entry.created.clone(),
        activated: r.entry.activated.clone(),
        retired: r.entry.retired.clone(),
        revoked: r.entry.revoked.clone(),
        compromised_since: r.entry.compromised_since.clone(),
    }
}

/// A request's file name, by its time and the newest version it asks for:
/// two requests in one second do not overwrite each other.
fn request_file_name(r: &Request) -> String {
    let newest = r.new.last().map_or(0, |v| v.version);
    format!(
        "{}-{}.v{newest}.request.json",
        r.requested_at.replace(':', ""),
        r.name
    )
}
