//! Ed25519 keys whose seeds are kept in files of one directory and, once
//! loaded, in process memory: what the software and TPM backends share.
//! They differ only in what a file holds: the seed itself, or a blob that
//! only its TPM can unseal.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use ed25519_dalek::{Signer, SigningKey};
use zeroize::Zeroizing;

use crate::{KeyError, KeyId, PublicKey, Signature};

/// A seed recovered from its file.
pub(crate) type Seed = Zeroizing<[u8; 32]>;

/// Seed files in a directory (mode 0700), one per key version, and the
/// keys loaded from them.
pub(crate) struct SeedFiles {
    backend: &'static str,
    dir: PathBuf,
    ext: &'static str,
    // SigningKey zeroizes its secret on drop (ed25519-dalek "zeroize").
    cache: RwLock<HashMap<KeyId, Arc<SigningKey>>>,
}

impl SeedFiles {
    /// Opens (creating, mode 0700) the directory; files end in `.ext`.
    pub(crate) fn open(
        backend: &'static str,
        dir: &Path,
        ext: &'static str,
    ) -> Result<Self, KeyError> {
        fs::create_dir_all(dir).map_err(|e| io_err(dir, "creating key directory", e))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| io_err(dir, "restricting key directory", e))?;
        Ok(SeedFiles {
            backend,
            dir: dir.to_owned(),
            ext,
            cache: RwLock::new(HashMap::new()),
        })
    }

    /// The directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, id: &KeyId) -> PathBuf {
        self.dir.join(format!("{}.{}", id.label(), self.ext))
    }

    fn not_found(&self, id: &KeyId) -> KeyError {
        KeyError::NotFound {
            label: id.label(),
            backend: self.backend,
        }
    }

    /// Stores a new key: `seal` turns the fresh seed into the file's bytes.
    /// The file is created first (mode 0600, never over an existing one) and
    /// removed again if sealing or writing fails.
    pub(crate) fn generate(
        &self,
        id: &KeyId,
        seal: impl FnOnce() -> Result<(Zeroizing<Vec<u8>>, SigningKey), KeyError>,
    ) -> Result<PublicKey, KeyError> {
        let path = self.path(id);
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
                    backend: self.backend,
                })
            }
            Err(e) => return Err(io_err(&path, "creating key file", e)),
        };
        let stored = seal().and_then(|(bytes, key)| {
            file.write_all(&bytes)
                .and_then(|_| file.sync_all())
                .map_err(|e| io_err(&path, "writing key file", e))?;
            sync_dir(&self.dir)?;
            Ok(key)
        });
        let key = match stored {
            Ok(k) => k,
            Err(e) => {
                let _ = fs::remove_file(&path);
                return Err(e);
            }
        };
        let public = PublicKey(key.verifying_key().to_bytes());
        self.cache
            .write()
            .map_err(|_| self.poisoned())?
            .insert(id.clone(), Arc::new(key));
        Ok(public)
    }

    /// The key of `id`: from memory, or read from its file and opened by
    /// `open(path, bytes, mode)`. `None` when there is no file.
    pub(crate) fn load(
        &self,
        id: &KeyId,
        open: impl FnOnce(&Path, Vec<u8>, u32) -> Result<Seed, KeyError>,
    ) -> Result<Option<Arc<SigningKey>>, KeyError> {
        if let Some(k) = self.cache.read().map_err(|_| self.poisoned())?.get(id) {
            return Ok(Some(k.clone()));
        }
        let path = self.path(id);
        let mut file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&path, "opening key file", e)),
        };
        let mode = file
            .metadata()
            .map_err(|e| io_err(&path, "reading key file metadata", e))?
            .permissions()
            .mode();
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(|e| io_err(&path, "reading key file", e))?;
        let seed = open(&path, bytes, mode)?;
        let key = Arc::new(SigningKey::from_bytes(&seed));
        self.cache
            .write()
            .map_err(|_| self.poisoned())?
            .insert(id.clone(), key.clone());
        Ok(Some(key))
    }

    /// The loaded key of `id`, or NotFound.
    pub(crate) fn require(
        &self,
        key: Option<Arc<SigningKey>>,
        id: &KeyId,
    ) -> Result<Arc<SigningKey>, KeyError> {
        key.ok_or_else(|| self.not_found(id))
    }

    /// PureEdDSA over `message` with a loaded key.
    pub(crate) fn sign(key: &SigningKey, message: &[u8]) -> Signature {
        Signature(key.sign(message).to_bytes())
    }

    /// The public key of a loaded key.
    pub(crate) fn public(key: &SigningKey) -> PublicKey {
        PublicKey(key.verifying_key().to_bytes())
    }

    /// Forgets the key and removes its file.
    pub(crate) fn destroy(&self, id: &KeyId) -> Result<(), KeyError> {
        self.cache.write().map_err(|_| self.poisoned())?.remove(id);
        let path = self.path(id);
        match fs::remove_file(&path) {
            Ok(()) => sync_dir(&self.dir),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(self.not_found(id)),
            Err(e) => Err(io_err(&path, "removing key file", e)),
        }
    }

    fn poisoned(&self) -> KeyError {
        KeyError::Unavailable {
            backend: self.backend,
            reason: "key cache lock poisoned by a panic".into(),
        }
    }
}

fn sync_dir(dir: &Path) -> Result<(), KeyError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err(dir, "syncing key directory", e))
}

/// An I/O error on `path`.
pub(crate) fn io_err(path: &Path, what: &str, source: std::io::Error) -> KeyError {
    KeyError::Io {
        what: format!("{what} {}", path.display()),
        source,
    }
}
