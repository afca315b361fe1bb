//! Key records: which versions of which key names exist, their lifecycle,
//! and the signed directory built from them. Public keys are never
//! forgotten.
//!
//! A rotation is recorded in two steps around the chains' boundaries:
//! [`Keyring::begin_rotation`] generates the successor in the backend and
//! records it as `pending` (it signs from then on), every chain of the key
//! name writes its boundary, and [`Keyring::finish_rotation`] retires the
//! predecessor. A start that finds a pending version completes the
//! rotation: boundaries already written may be followed by acknowledged
//! receipts, so rolling back is never an option.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use sigil_keys::{Backend, KeyError, KeyId};
use sigil_proto::directory::{endorsement_digest, Directory, KeyEntry, KeyState, Through};
use sigil_proto::timestamp;

use crate::counters::Counters;
use crate::root_role::RootRole;
use crate::store::write_atomic;
use crate::Error;

mod directory;
mod offline;
mod records;

use records::{key_of, Begin, File, Record};

/// One version of a key name, in any state: its backend id and public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyVersion {
    /// Name and version.
    pub id: KeyId,
    /// Lowercase hex public key.
    pub public_hex: String,
}

/// A revocation to record on chains.
#[derive(Clone, Debug)]
pub struct Revoked {
    /// The revoked version.
    pub key: KeyVersion,
    /// When it was revoked.
    pub revoked_at: String,
    /// From when its signatures are not trusted.
    pub compromised_since: String,
    /// Why.
    pub reason: String,
}

struct Meta {
    namespace: String,
    generating: Vec<String>,
}

/// Key records in `<data-dir>/keys.json`, over one backend.
pub struct Keyring {
    path: PathBuf,
    backend: Arc<dyn Backend>,
    /// Key name whose signing version signs the directory.
    directory_key: String,
    records: RwLock<Vec<Record>>,
    /// Held across a whole update (read, change, write keys.json, swap).
    updating: Mutex<()>,
    /// Namespace and generation intents, persisted with the records.
    meta: Mutex<Meta>,
    published: RwLock<Directory>,
    /// The offline root's documents and what they allow.
    root: RootRole,
}

impl Keyring {
    /// Loads the records (none on a first start).
    pub fn open(
        data_dir: &Path,
        backend: Arc<dyn Backend>,
        directory_key: &str,
    ) -> Result<Self, Error> {
        let path = data_dir.join("keys.json");
        let file = match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str::<File>(&text)
                .map_err(|e| Error::Corrupt(format!("{}: {e}", path.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => File::default(),
            Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
        };
        let namespace = match file.namespace {
            Some(ns) => ns,
            None => {
                let mut b = [0u8; 4];
                getrandom::getrandom(&mut b)
                    .map_err(|e| Error::Unavailable(format!("no randomness from the OS: {e}")))?;
                hex::encode(b)
            }
        };
        let records = file.keys;
        Ok(Keyring {
            path,
            backend,
            directory_key: directory_key.to_owned(),
            records: RwLock::new(records),
            updating: Mutex::new(()),
            meta: Mutex::new(Meta {
                namespace,
                generating: file.generating,
            }),
            published: RwLock::new(Directory::default()),
            root: RootRole::open(data_dir)?,
        })
    }

    /// The backend holding the keys.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// Makes sure `name` has a signing version, generating version 1 on a
    /// first start, and that the backend holds the key the records name.
    /// Blocking.
    pub fn ensure(&self, name: &str) -> Result<KeyVersion, Error> {
        if let Some(key) = self.signing_key(name) {
            self.check_in_backend(&key)?;
            return Ok(key);
        }
        self.generate_version(name, 1, None, false)
    }

    /// Creates key name `name` (version 1). Fails if it exists. Blocking.
    pub fn create(&self, name: &str) -> Result<KeyVersion, Error> {
        KeyId::new(name, 1)?;
        if self.read().iter().any(|r| r.entry.name == name) {
            return Err(Error::AlreadyExists(format!(
                "key: {name:?} already exists"
            )));
        }
        self.generate_version(name, 1, None, false)
    }

    fn check_in_backend(&self, key: &KeyVersion) -> Result<(), Error> {
        match self.backend.find(&key.id)? {
            Some(pk) if pk.to_hex() == key.public_hex => Ok(()),
            Some(pk) => Err(Error::Corrupt(format!(
                "key {} is recorded with public key {} but the backend holds {}",
                key.id,
                key.public_hex,
                pk.to_hex()
            ))),
            None => Err(Error::Key(KeyError::NotFound {
                label: key.id.label(),
                backend: "the configured backend",
            })),
        }
    }

    /// Generates `name` version `version` and records it; `endorser` signs
    /// it in the directory and marks it pending (a rotation).
    fn generate_version(
        &self,
        name: &str,
        version: u32,
        endorser: Option<&KeyVersion>,
        standby: bool,
    ) -> Result<KeyVersion, Error> {
        let namespace = self.lock_meta().namespace.clone();
        let id = KeyId::new(name, version)?.in_namespace(&namespace)?;
        let label = id.label();
        // Adopt an existing object only when this data dir recorded that it
        // began generating it (a crash before the record); any other is
        // someone else's key (another sigild on the token) and is refused.
        let resumed = self.lock_meta().generating.contains(&label);
        if !resumed {
            self.lock_meta().generating.push(label.clone());
            self.persist(|_| {})?;
        }
        let public = match self.backend.generate(&id) {
            Ok(pk) => pk,
            Err(KeyError::AlreadyExists { .. }) if resumed => self
                .backend
                .find(&id)?
                .ok_or_else(|| Error::Internal(format!("{id} exists yet cannot be found")))?,
            Err(e) => {
                self.lock_meta().generating.retain(|l| l != &label);
                self.persist(|_| {})?;
                return Err(match e {
                    KeyError::AlreadyExists { .. } => Error::AlreadyExists(format!(
                        "key: the backend already holds an object labelled {label} that this \
                         data dir did not generate; refusing to adopt it. Another sigild (or a \
                         copied data dir) owns it: use another token or seed dir, or remove \
                         that object if it is yours and unused"
                    )),
                    e => e.into(),
                });
            }
        };
        if endorser.is_some() && !standby {
            crate::failpoint::hit("rotate.generated");
        }
        let custody = self.backend.describe(&id)?;
        let now = timestamp::now();
        let mut entry = KeyEntry::new(name, version, &public.0);
        entry.backend = custody.backend.into();
        entry.non_extractable = custody.non_extractable;
        entry.custody = custody.note;
        entry.created = now.clone();
        if standby {
            entry.state = KeyState::Standby;
        } else {
            entry.activated = Some(now);
        }
        if let Some(prev) = endorser {
            let sig = self.backend.sign(
                &prev.id,
                &endorsement_digest(name, version, &public.to_hex()),
            )?;
            entry.endorsement = Some(sigil_proto::sig::encode(&sig.0));
        }
        let record = Record {
            entry,
            pending: endorser.is_some() && !standby,
            revocation_pending: false,
            namespace: Some(namespace),
        };
        self.lock_meta().generating.retain(|l| l != &label);
        self.update(|records| records.push(record))?;
        tracing::info!(key = %id, public_key = %public.to_hex(), backend = custody.backend, "generated key");
        Ok(KeyVersion {
            id,
            public_hex: public.to_hex(),
        })
    }

    /// The version of `name` that signs now: the newest active one
    /// (a pending successor signs as soon as it is recorded).
    pub fn signing_key(&self, name: &str) -> Option<KeyVersion> {
        records::signing(&self.read(), name)
    }

    /// The version of `name` with this public key, in any state.
    pub fn version_with(&self, name: &str, public_hex: &str) -> Option<KeyVersion> {
        self.read()
            .iter()
            .find(|r| r.entry.name == name && r.entry.public_key == public_hex)
            .and_then(key_of)
    }

    /// True when `public_hex` is a version of the chain key name: such a key
    /// signs chains, ledgers and the directory, and nothing else.
    pub fn signs_chains(&self, public_hex: &str) -> bool {
        self.read()
            .iter()
            .any(|r| r.entry.name == self.directory_key && r.entry.public_key == public_hex)
    }

    /// Key names with a rotation begun and not finished.
    pub fn pending_rotations(&self) -> Vec<String> {
        records::pending_rotations(&self.read())
    }

    /// Revocations not yet recorded on every chain.
    pub fn pending_revocations(&self) -> Vec<Revoked> {
        records::pending_revocations(&self.read())
    }

    /// Starts a rotation of `name`: generates the successor of its signing
    /// version and records it, pending. Resumes one already begun.
    /// Returns (predecessor, successor). Blocking.
    pub fn begin_rotation(&self, name: &str) -> Result<(KeyVersion, KeyVersion), Error> {
        let begun = records::begin(&self.read(), name)?;
        match begun {
            Begin::Resume { old, new } => Ok((old, new)),
            // Strict activation: only a version the root certified in
            // advance may take over; none is generated here.
            Begin::Next { old, .. } if name == self.directory_key && self.root.required() => {
                Ok((old, self.activate_standby(name)?))
            }
            Begin::Next { old, version } => {
                let new = self.generate_version(name, version, Some(&old), false)?;
                Ok((old, new))
            }
        }
    }

    /// Completes a rotation once every chain has its boundary: the pending
    /// version becomes plainly active, the older active ones retired.
    pub fn finish_rotation(&self, name: &str) -> Result<(), Error> {
        let now = timestamp::now();
        self.update(|records| records::finish_rotation(records, name, &now))
    }

    /// Checks a revocation request without changing anything: the version
    /// exists, `compromised_since` is canonical UTC, a reason is given.
    pub fn check_revocation(
        &self,
        name: &str,
        version: u32,
        reason: &str,
        compromised_since: &str,
    ) -> Result<(), Error> {
        records::check_revocation(&self.read(), name, version, reason, compromised_since)
    }

    /// Records the revocation of `name` version `version` (the caller has
    /// rotated away from it if it was signing). Returns what to write on
    /// the chains.
    pub fn revoke(
        &self,
        name: &str,
        version: u32,
        reason: &str,
        compromised_since: &str,
    ) -> Result<Revoked, Error> {
        self.check_revocation(name, version, reason, compromised_since)?;
        let now = timestamp::now();
        let mut found = None;
        self.update(|records| {
            found = records::revoke(records, name, version, reason, compromised_since, &now);
        })?;
        found.ok_or_else(|| Error::NotFound(format!("key: {name} has no version {version}")))
    }

    /// Marks a revocation as written on every chain, with where it took
    /// effect on each chain the version signed.
    pub fn revocation_recorded(&self, key: &KeyId, through: Vec<Through>) -> Result<(), Error> {
        self.update(|records| records::revocation_recorded(records, key, &through))
    }

    /// When `key` started signing.
    pub fn activated(&self, key: &KeyId) -> Option<String> {
        self.read()
            .iter()
            .find(|r| r.entry.name == key.name() && r.entry.version == key.version())
            .and_then(|r| r.entry.activated.clone())
    }

    /// (keyid, signatures since start, age in seconds) of each active
    /// version, for metrics.
    pub fn active_stats(&self, counters: &Counters) -> Vec<(String, u64, f64)> {
        let now = time::OffsetDateTime::now_utc();
        self.read()
            .iter()
            .filter(|r| r.entry.state == KeyState::Active)
            .filter_map(|r| {
                let key = key_of(r)?;
                let age = r
                    .entry
                    .activated
                    .as_deref()
                    .and_then(|a| timestamp::parse(a).ok())
                    .map(|a| (now - a).as_seconds_f64())
                    .unwrap_or(0.0);
                Some((key.id.to_string(), counters.get(&key.id), age))
            })
            .collect()
    }

    // Lock poisoning: the records and the directory are only ever
    // replaced whole, and the meta changed in single steps, so a panic
    // elsewhere cannot leave them half-changed; every lock of the keyring
    // reads through poison rather than failing (or silently answering
    // "no such key") differently at each call site.

    fn lock_meta(&self) -> std::sync::MutexGuard<'_, Meta> {
        self.meta.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Record>> {
        self.records.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Changes the records: writes keys.json durably, then swaps them in.
    /// Updates are serialised by `updating`; readers (every append looks up
    /// its signing key) are never blocked behind the file's fsync, only
    /// behind the swap.
    fn update(&self, f: impl FnOnce(&mut Vec<Record>)) -> Result<(), Error> {
        self.persist(f)?;
        self.publish()
    }

    /// [`Keyring::update`] without re-signing the directory: for changes
    /// the directory does not show (generation intents).
    fn persist(&self, f: impl FnOnce(&mut Vec<Record>)) -> Result<(), Error> {
        {
            let _one_writer = self.updating.lock().unwrap_or_else(PoisonError::into_inner);
            let mut next = self.read().clone();
            f(&mut next);
            let (namespace, generating) = {
                let m = self.lock_meta();
                (Some(m.namespace.clone()), m.generating.clone())
            };
            let text = serde_json::to_vec_pretty(&File {
                namespace,
                generating,
                keys: next.clone(),
            })
            .map_err(|e| Error::Internal(e.to_string()))?;
            // Readers (every batch's gate, SignDigest, the directory) do not
            // wait on this write: only the swap below takes the lock.
            crate::failpoint::stall("keyring.persist");
            write_atomic(&self.path, &text)?;
            *self.records.write().unwrap_or_else(PoisonError::into_inner) = next;
        }
        Ok(())
    }
}
