//! Where PINs and passwords come from. Only the source (a path or a variable
//! name) is configuration; the secret itself is read when a backend opens,
//! held in zeroizing memory and never formatted.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use zeroize::Zeroizing;

use crate::KeyError;

/// Longest secret accepted, in bytes.
pub(crate) const MAX_SECRET: usize = 255;

/// A PIN or password source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretSource {
    /// A file holding the secret; one trailing newline is ignored. The file
    /// must not be accessible to group or others (mode `go-rwx`).
    File(PathBuf),
    /// An environment variable holding the secret.
    Env(String),
    /// Typed at the terminal (`/dev/tty`, echo off) when the backend opens:
    /// for the offline root ceremony, where a PIN is never stored.
    Prompt,
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
        } else if s == "prompt" {
            Ok(SecretSource::Prompt)
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
                if mode & 0o077 != 0 {
                    return Err(bad(format!(
                        "secret file {} is accessible to group or others (mode {:o}); chmod 600 it",
                        path.display(),
                        mode & 0o777
                    )));
                }
                // Read into zeroizing memory sized up front, so the string
                // never reallocates and leaves copies behind.
                secret.reserve(MAX_SECRET + 2);
                f.take(MAX_SECRET as u64 + 2)
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
            SecretSource::Prompt => {
                secret.reserve(MAX_SECRET + 2);
                prompt(backend, &mut secret)?;
            }
        }
        let trimmed = secret.trim_end_matches(['\n', '\r']).len();
        secret.truncate(trimmed);
        // Refused, not cut: a silently shortened PIN fails login after login
        // until the token locks.
        if secret.len() > MAX_SECRET {
            return Err(bad(format!(
                "the secret from {} is longer than {MAX_SECRET} bytes",
                self.name()
            )));
        }
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
            SecretSource::Prompt => "the terminal prompt".into(),
        }
    }
}

/// Reads one line from the controlling terminal with echo off, restoring
/// the terminal's settings afterwards (also when reading fails).
fn prompt(backend: &'static str, into: &mut Zeroizing<String>) -> Result<(), KeyError> {
    use std::io::{BufRead, Write};
    use std::os::fd::AsRawFd;
    let bad = |reason: String| KeyError::Config { backend, reason };
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .map_err(|e| bad(format!("pin-source=prompt needs a terminal: /dev/tty: {e}")))?;
    let fd = tty.as_raw_fd();
    // SAFETY: termios is plain data; tcgetattr fills it for an open fd.
    let mut saved: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: fd is open for the lifetime of `tty`; `saved` is valid.
    if unsafe { libc::tcgetattr(fd, &mut saved) } != 0 {
        return Err(bad("pin-source=prompt: /dev/tty is not a terminal".into()));
    }
    let mut quiet = saved;
    quiet.c_lflag &= !libc::ECHO;
    quiet.c_lflag |= libc::ECHONL;
    // SAFETY: as above; `quiet` is a copy of valid settings.
    unsafe { libc::tcsetattr(fd, libc::TCSANOW, &quiet) };
    let mut out = &tty;
    let _ = write!(out, "PIN for the {backend} token: ");
    let _ = out.flush();
    let read = std::io::BufReader::new(&tty)
        .take(MAX_SECRET as u64 + 2)
        .read_line(into);
    // SAFETY: restores the settings read above on the same open fd.
    unsafe { libc::tcsetattr(fd, libc::TCSANOW, &saved) };
    read.map(|_| ())
        .map_err(|e| bad(format!("pin-source=prompt: reading the terminal: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &std::path::Path, name: &str, content: &str, mode: u32) -> SecretSource {
        let p = dir.join(name);
        std::fs::write(&p, content).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        SecretSource::File(p)
    }

    #[test]
    fn secret_files_readable_by_group_or_others_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            file(dir.path(), "ok", "1234\n", 0o600)
                .read("t")
                .unwrap()
                .as_str(),
            "1234"
        );
        for mode in [0o640, 0o604, 0o660] {
            let err = file(dir.path(), "open", "1234", mode)
                .read("t")
                .unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains("group or others"), "{mode:o}: {msg}");
            assert!(!msg.contains("1234"), "{msg}");
        }
    }

    #[test]
    fn over_long_secrets_are_refused_not_cut() {
        let dir = tempfile::tempdir().unwrap();
        let longest = "p".repeat(MAX_SECRET);
        let src = file(dir.path(), "longest", &format!("{longest}\n"), 0o600);
        assert_eq!(src.read("t").unwrap().len(), MAX_SECRET);
        let src = file(dir.path(), "long", &"p".repeat(MAX_SECRET + 1), 0o600);
        let msg = src.read("t").unwrap_err().to_string();
        assert!(msg.contains("longer than 255 bytes"), "{msg}");
        std::env::set_var("SIGIL_TEST_LONG_SECRET", "q".repeat(MAX_SECRET + 40));
        let msg = SecretSource::Env("SIGIL_TEST_LONG_SECRET".into())
            .read("t")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("longer than 255 bytes"), "{msg}");
    }
}
