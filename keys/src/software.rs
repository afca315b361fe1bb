//! The software backend: Ed25519 seeds in files of mode 0600.
//!
//! This is the embedded default for a first run and for development. The
//! seed is a file on disk and lives in process memory while the daemon runs,
//! so it protects nothing against whoever can read the data dir or the
//! process; the directory labels such keys `software` so verifiers know.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use ed25519_dalek::{Signer, SigningKey};
use zeroize::Zeroizing;

use crate::{Backend, Custody, KeyError, KeyId, PublicKey, Signature};

const BACKEND: &str = "software";

/// Seeds in a directory, one file per key version.
pub struct SoftwareBackend {
    dir: PathBuf,
    // SigningKey zeroizes its secret on drop (ed25519-dalek "zeroize").
    cache: RwLock<HashMap<KeyId, Arc<SigningKey>>>,
}

impl SoftwareBackend {
    /// Opens (and creates, mode 0700) the seed directory.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, KeyError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(|e| io_err(&dir, "creating seed directory", e))?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| io_err(&dir, "restricting seed directory", e))?;
        Ok(SoftwareBackend {
            dir,
            cache: RwLock::new(HashMap::new()),
        })
    }

    fn path(&self, id: &KeyId) -> PathBuf {
        self.dir.join(format!("{}.seed", id.label()))
    }

    fn load(&self, id: &KeyId) -> Result<Option<Arc<SigningKey>>, KeyError> {
        if let Some(k) = self.cache.read().map_err(poisoned)?.get(id) {
            return Ok(Some(k.clone()));
        }
        let path = self.path(id);
        let mut file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&path, "opening seed", e)),
        };
        let mode = file
            .metadata()
            .map_err(|e| io_err(&path, "reading seed metadata", e))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(KeyError::Config {
                backend: BACKEND,
                reason: format!(
                    "{} is readable by group or others (mode {:o}); chmod 600 it",
                    path.display(),
                    mode & 0o777
                ),
            });
        }
        let mut seed = Zeroizing::new([0u8; 32]);
        let mut extra = [0u8; 1];
        file.read_exact(&mut seed[..])
            .map_err(|e| io_err(&path, "reading seed", e))?;
        if file
            .read(&mut extra)
            .map_err(|e| io_err(&path, "reading seed", e))?
            != 0
        {
            return Err(KeyError::Malformed {
                backend: BACKEND,
                reason: format!("{} is not a 32-byte seed", path.display()),
            });
        }
        let key = Arc::new(SigningKey::from_bytes(&seed));
        self.cache
            .write()
            .map_err(poisoned)?
            .insert(id.clone(), key.clone());
        Ok(Some(key))
    }
}

impl Backend for SoftwareBackend {
    fn generate(&self, id: &KeyId) -> Result<PublicKey, KeyError> {
        let path = self.path(id);
        let mut seed = Zeroizing::new([0u8; 32]);
        getrandom::getrandom(&mut seed[..]).map_err(|e| KeyError::Unavailable {
            backend: BACKEND,
            reason: format!("no randomness from the OS: {e}"),
        })?;
        // create_new: never overwrite a seed, even if two processes race.
        let mut file = match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(KeyError::AlreadyExists {
                    label: id.label(),
                    backend: BACKEND,
                })
            }
            Err(e) => return Err(io_err(&path, "creating seed", e)),
        };
        file.write_all(&seed[..])
            .and_then(|_| file.sync_all())
            .map_err(|e| io_err(&path, "writing seed", e))?;
        sync_dir(&self.dir)?;
        let key = SigningKey::from_bytes(&seed);
        let public = PublicKey(key.verifying_key().to_bytes());
        self.cache
            .write()
            .map_err(poisoned)?
            .insert(id.clone(), Arc::new(key));
        Ok(public)
    }

    fn find(&self, id: &KeyId) -> Result<Option<PublicKey>, KeyError> {
        Ok(self
            .load(id)?
            .map(|k| PublicKey(k.verifying_key().to_bytes())))
    }

    fn sign(&self, id: &KeyId, message: &[u8]) -> Result<Signature, KeyError> {
        let key = self.load(id)?.ok_or_else(|| KeyError::NotFound {
            label: id.label(),
            backend: BACKEND,
        })?;
        Ok(Signature(key.sign(message).to_bytes()))
    }

    fn destroy(&self, id: &KeyId) -> Result<(), KeyError> {
        self.cache.write().map_err(poisoned)?.remove(id);
        let path = self.path(id);
        match fs::remove_file(&path) {
            Ok(()) => sync_dir(&self.dir),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(KeyError::NotFound {
                label: id.label(),
                backend: BACKEND,
            }),
            Err(e) => Err(io_err(&path, "removing seed", e)),
        }
    }

    fn describe(&self, id: &KeyId) -> Result<Custody, KeyError> {
        if self.load(id)?.is_none() {
            return Err(KeyError::NotFound {
                label: id.label(),
                backend: BACKEND,
            });
        }
        Ok(Custody {
            backend: BACKEND,
            token: self.dir.display().to_string(),
            non_extractable: false,
            note: "software seed in a 0600 file and in process memory: for development \
                   and first runs, not hardware custody"
                .into(),
        })
    }
}

fn sync_dir(dir: &Path) -> Result<(), KeyError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err(dir, "syncing seed directory", e))
}

fn io_err(path: &Path, what: &str, source: std::io::Error) -> KeyError {
    KeyError::Io {
        what: format!("{what} {}", path.display()),
        source,
    }
}

fn poisoned<T>(_: T) -> KeyError {
    KeyError::Unavailable {
        backend: BACKEND,
        reason: "key cache lock poisoned by a panic".into(),
    }
}
