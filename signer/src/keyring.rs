//! Key records: which versions of which key names exist, their state, and
//! the directory built from them. Public keys are never forgotten.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use sigil_keys::{Backend, KeyError, KeyId};
use sigil_proto::directory::{Directory, KeyEntry, KeyState};

use crate::store::write_atomic;
use crate::Error;

#[derive(Default, Serialize, Deserialize)]
struct File {
    keys: Vec<KeyEntry>,
}

/// The version of a key name that signs now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActiveKey {
    /// Name and version.
    pub id: KeyId,
    /// Lowercase hex public key.
    pub public_hex: String,
}

/// Key records in `<data-dir>/keys.json`, over one backend.
pub struct Keyring {
    path: PathBuf,
    backend: Arc<dyn Backend>,
    records: RwLock<Vec<KeyEntry>>,
}

impl Keyring {
    /// Loads the records (none on a first start).
    pub fn open(data_dir: &Path, backend: Arc<dyn Backend>) -> Result<Self, Error> {
        let path = data_dir.join("keys.json");
        let records = match std::fs::read_to_string(&path) {
            Ok(text) => {
                serde_json::from_str::<File>(&text)
                    .map_err(|e| Error::Corrupt(format!("{}: {e}", path.display())))?
                    .keys
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
        };
        Ok(Keyring {
            path,
            backend,
            records: RwLock::new(records),
        })
    }

    /// The backend holding the keys.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// Makes sure `name` has an active version, generating version 1 in the
    /// backend on a first start, and that the backend still holds the key
    /// the records name. Blocking.
    pub fn ensure(&self, name: &str) -> Result<ActiveKey, Error> {
        if let Some(active) = self.active(name) {
            match self.backend.find(&active.id)? {
                Some(pk) if pk.to_hex() == active.public_hex => return Ok(active),
                Some(pk) => {
                    return Err(Error::Corrupt(format!(
                        "key {} is recorded with public key {} but the backend holds {}",
                        active.id,
                        active.public_hex,
                        pk.to_hex()
                    )))
                }
                None => {
                    return Err(Error::Key(KeyError::NotFound {
                        label: active.id.label(),
                        backend: "configured backend",
                    }))
                }
            }
        }
        let id = KeyId::new(name, 1)?;
        // A crash between generating and recording leaves the key in the
        // backend with no record: adopt it rather than fail.
        let public = match self.backend.generate(&id) {
            Ok(pk) => pk,
            Err(KeyError::AlreadyExists { .. }) => self
                .backend
                .find(&id)?
                .ok_or_else(|| Error::Internal(format!("{id} exists yet cannot be found")))?,
            Err(e) => return Err(e.into()),
        };
        let custody = self.backend.describe(&id)?;
        let now = sigil_proto::timestamp::now();
        let mut entry = KeyEntry::new(name, 1, &public.0);
        entry.backend = custody.backend.into();
        entry.non_extractable = custody.non_extractable;
        entry.custody = custody.note;
        entry.created = now.clone();
        entry.activated = Some(now);
        self.update(|records| records.push(entry))?;
        tracing::info!(key = %id, public_key = %public.to_hex(), backend = custody.backend, "generated key");
        Ok(ActiveKey {
            id,
            public_hex: public.to_hex(),
        })
    }

    /// The active version of `name`.
    pub fn active(&self, name: &str) -> Option<ActiveKey> {
        let records = self.records.read().ok()?;
        records
            .iter()
            .filter(|r| r.name == name && r.state == KeyState::Active)
            .max_by_key(|r| r.version)
            .and_then(|r| {
                Some(ActiveKey {
                    id: KeyId::new(&r.name, r.version).ok()?,
                    public_hex: r.public_key.clone(),
                })
            })
    }

    /// The directory: active versions first, then the rest, newest first.
    pub fn directory(&self) -> Directory {
        let mut keys = self.records.read().map(|r| r.clone()).unwrap_or_default();
        keys.sort_by(|a, b| {
            (
                a.state != KeyState::Active,
                &a.name,
                std::cmp::Reverse(a.version),
            )
                .cmp(&(
                    b.state != KeyState::Active,
                    &b.name,
                    std::cmp::Reverse(b.version),
                ))
        });
        Directory { keys }
    }

    fn update(&self, f: impl FnOnce(&mut Vec<KeyEntry>)) -> Result<(), Error> {
        let mut records = self
            .records
            .write()
            .map_err(|_| Error::Internal("key records lock poisoned".into()))?;
        let mut next = records.clone();
        f(&mut next);
        let text = serde_json::to_vec_pretty(&File { keys: next.clone() })
            .map_err(|e| Error::Internal(e.to_string()))?;
        write_atomic(&self.path, &text)?;
        *records = next;
        Ok(())
    }
}
