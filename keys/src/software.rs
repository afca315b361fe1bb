//! The software backend: Ed25519 seeds in files of mode 0600.
//!
//! This is the embedded default for a first run and for development. The
//! seed is a file on disk and lives in process memory while the daemon runs,
//! so it protects nothing against whoever can read the data dir or the
//! process; the directory labels such keys `software` so verifiers know.

use std::path::PathBuf;

use ed25519_dalek::SigningKey;
use zeroize::Zeroizing;

use crate::seeds::{Seed, SeedFiles};
use crate::{Backend, Custody, KeyError, KeyId, PublicKey, Signature};

const BACKEND: &str = "software";

/// Seeds in a directory, one file per key version.
pub struct SoftwareBackend {
    seeds: SeedFiles,
}

/// Refuses a seed file others can read, or one that is not 32 bytes.
fn open_seed(path: &std::path::Path, bytes: Vec<u8>, mode: u32) -> Result<Seed, KeyError> {
    let bytes = Zeroizing::new(bytes);
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
    let seed: [u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| KeyError::Malformed {
            backend: BACKEND,
            reason: format!("{} is not a 32-byte seed", path.display()),
        })?;
    Ok(Zeroizing::new(seed))
}

impl SoftwareBackend {
    /// Opens (and creates, mode 0700) the seed directory.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, KeyError> {
        Ok(SoftwareBackend {
            seeds: SeedFiles::open(BACKEND, &dir.into(), "seed")?,
        })
    }

    fn load(&self, id: &KeyId) -> Result<Option<std::sync::Arc<SigningKey>>, KeyError> {
        self.seeds.load(id, open_seed)
    }
}

impl Backend for SoftwareBackend {
    fn signs_in_process(&self) -> bool {
        true
    }

    fn generate(&self, id: &KeyId) -> Result<PublicKey, KeyError> {
        self.seeds.generate(id, || {
            let mut seed = Zeroizing::new([0u8; 32]);
            getrandom::getrandom(&mut seed[..]).map_err(|e| KeyError::Unavailable {
                backend: BACKEND,
                reason: format!("no randomness from the OS: {e}"),
            })?;
            Ok((Zeroizing::new(seed.to_vec()), SigningKey::from_bytes(&seed)))
        })
    }

    fn find(&self, id: &KeyId) -> Result<Option<PublicKey>, KeyError> {
        Ok(self.load(id)?.map(|k| SeedFiles::public(&k)))
    }

    fn sign(&self, id: &KeyId, message: &[u8]) -> Result<Signature, KeyError> {
        let key = self.seeds.require(self.load(id)?, id)?;
        Ok(SeedFiles::sign(&key, message))
    }

    fn destroy(&self, id: &KeyId) -> Result<(), KeyError> {
        self.seeds.destroy(id)
    }

    fn describe(&self, id: &KeyId) -> Result<Custody, KeyError> {
        self.seeds.require(self.load(id)?, id)?;
        Ok(Custody {
            backend: BACKEND,
            token: self.seeds.dir().display().to_string(),
            non_extractable: false,
            note: "software seed in a 0600 file and in process memory: for development \
                   and first runs, not hardware custody"
                .into(),
        })
    }
}
