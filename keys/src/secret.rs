//! Where PINs and passwords come from. Only the source (a path or a variable
//! name) is configuration; the secret itself is read when a backend opens,
//! held in zeroizing memory and never formatted.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use zeroize::Zeroizing;

use crate::KeyError;

/// A PIN or password source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretSource {
    /// A file holding the secret; one trailing newline is ignored. The file
    /// must not be accessible to others (mode `o-rwx`).
    File(PathBuf),
    /// An environment variable holding the secret.
    Env(String),
}

impl SecretSource {
    /// Parses `file:PATH`, `file:///PATH` or `env:VAR`.
    pub fn parse(s: &str, backend: &'static str) -> Result<Self, KeyError> {
        if let Some(path) = s.strip_prefix("file://") {
            Ok(SecretSource::File(PathBuf::from(path)))
        } else if let Some(path) = s.strip_prefix("file:") {
            Ok(SecretSource::File(PathBuf::from(path)))
        } else if let Some(var) = s.strip_prefix("env:") {
            Ok(SecretSource::Env(var.to_owned()))
        } else {
            Err(KeyError::Config {
                backend,
                reason: "a secret source is file:PATH or env:VAR".into(),
            })
        }
    }

    /// Reads the secret. Errors name the source, never the secret.
    pub(crate) fn read(&self, backend: &'static str) -> Result<Zeroizing<String>, KeyError> {
        let bad = |reason: String| KeyError::Config { backend, reason };
        let mut secret = Zeroizing::new(String::new());
        match self {
            SecretSource::File(path) => {
                let f = File::open(path)
                    .map_err(|e| bad(format!("cannot open secret file {}: {e}", path.display())))?;
                let mode = f
                    .metadata()
                    .map_err(|e| bad(format!("cannot stat {}: {e}", path.display())))?
                    .permissions()
                    .mode();
                if mode & 0o007 != 0 {
                    return Err(bad(format!(
                        "secret file {} is accessible to others (mode {:o}); chmod o-rwx it",
                        path.display(),
                        mode & 0o777
                    )));
                }
                // Read into zeroizing memory sized up front, so the string
                // never reallocates and leaves copies behind.
                secret.reserve(256);
                f.take(255)
                    .read_to_string(&mut secret)
                    .map_err(|e| bad(format!("cannot read secret file {}: {e}", path.display())))?;
            }
            SecretSource::Env(var) => {
                let value = Zeroizing::new(std::env::var(var).map_err(|_| {
                    bad(format!(
                        "environment variable {var} is not set or not UTF-8"
                    ))
                })?);
                secret.push_str(&value);
            }
        }
        let trimmed = secret.trim_end_matches(['\n', '\r']).len();
        secret.truncate(trimmed);
        if secret.is_empty() {
            return Err(bad(format!("the secret from {} is empty", self.name())));
        }
        Ok(secret)
    }

    #[cfg(feature = "pkcs11")]
    /// Reads the secret as a PKCS#11 PIN (a zeroizing `SecretString`).
    pub(crate) fn read_auth_pin(
        &self,
        backend: &'static str,
    ) -> Result<cryptoki::types::AuthPin, KeyError> {
        let secret = self.read(backend)?;
        Ok(cryptoki::types::AuthPin::from(secret.as_str()))
    }

    fn name(&self) -> String {
        match self {
            SecretSource::File(p) => format!("file {}", p.display()),
            SecretSource::Env(v) => format!("environment variable {v}"),
        }
    }
}
