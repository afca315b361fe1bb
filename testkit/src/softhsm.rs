//! SoftHSM2 tokens in a temporary directory.
//!
//! A token directory has one `softhsm2.conf` and one PIN file; every token
//! in it has the same PINs. sigild is pointed at it through
//! `SOFTHSM2_CONF` in its environment.
//!
//! In process, SoftHSM reads `SOFTHSM2_CONF` once, at `C_Initialize`, and
//! sees only the tokens that existed then; the module is one library
//! instance per process. So tests that load the module themselves share
//! one directory per process, with every token made before the first load:
//! [`SoftHsm::in_process`].

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::write_secret;

/// Debian's SoftHSM2 module.
pub const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
/// The security officer PIN of every token.
pub const SO_PIN: &str = "so-pin-1234";
/// The user PIN of every token. Distinctive, so a leak into any message
/// is unmistakable.
pub const PIN: &str = "Pq7-user-PIN-90210";

/// One token in a SoftHSM2 token directory.
pub struct SoftHsm {
    /// `SOFTHSM2_CONF` for sigild.
    pub conf: PathBuf,
    /// File holding the user PIN (mode 0600).
    pub pin_file: PathBuf,
    /// Token label.
    pub label: String,
}

impl SoftHsm {
    /// Creates token `label` in the token directory under `dir` (made on
    /// first use; later calls on the same `dir` add tokens to it).
    pub fn new(dir: &Path, label: &str) -> SoftHsm {
        let tokens = dir.join("softhsm-tokens");
        std::fs::create_dir_all(&tokens).unwrap();
        let conf = dir.join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                tokens.display()
            ),
        )
        .unwrap();
        let out = Command::new("softhsm2-util")
            .args(["--init-token", "--free", "--label", label])
            .args(["--so-pin", SO_PIN, "--pin", PIN])
            .env("SOFTHSM2_CONF", &conf)
            .output()
            .expect("softhsm2-util (Debian package softhsm2) runs");
        assert!(out.status.success(), "softhsm2-util: {out:?}");
        let pin_file = dir.join("pkcs11.pin");
        write_secret(&pin_file, &format!("{PIN}\n"));
        SoftHsm {
            conf,
            pin_file,
            label: label.into(),
        }
    }

    /// The token directory of this process for tests that load the module
    /// themselves, with tokens `labels` in it; names the first. The first
    /// call makes it and sets `SOFTHSM2_CONF` (and `SIGIL_TEST_PKCS11_PIN`
    /// to the PIN, for configs that read it from the environment); later
    /// calls return the same directory and must ask for no token it lacks,
    /// so one test binary names all its tokens in one list.
    pub fn in_process(labels: &'static [&'static str]) -> &'static SoftHsm {
        static MADE: OnceLock<&'static [&'static str]> = OnceLock::new();
        static TOKENS: OnceLock<SoftHsm> = OnceLock::new();
        let made = MADE.get_or_init(|| labels);
        assert!(
            labels.iter().all(|l| made.contains(l)),
            "{labels:?}: the process's SoftHSM tokens are {made:?}, made before the module loaded"
        );
        TOKENS.get_or_init(|| {
            // Kept for the life of the process: the tokens live here.
            let dir = tempfile::tempdir().unwrap().keep();
            let mut tokens = made.iter().map(|label| SoftHsm::new(&dir, label));
            let first = tokens.next().expect("at least one token");
            tokens.for_each(drop);
            // Set before any test can load the module (all go through here).
            std::env::set_var("SOFTHSM2_CONF", &first.conf);
            std::env::set_var("SIGIL_TEST_PKCS11_PIN", PIN);
            first
        })
    }

    /// Token `label` of the same token directory (made before, by
    /// [`SoftHsm::new`] or [`SoftHsm::in_process`]).
    pub fn named(&self, label: &str) -> SoftHsm {
        SoftHsm {
            conf: self.conf.clone(),
            pin_file: self.pin_file.clone(),
            label: label.into(),
        }
    }

    /// The PKCS#11 URI naming this token, its PIN read from the PIN file.
    pub fn uri(&self) -> String {
        self.uri_of(&self.label)
    }

    /// The PKCS#11 URI naming token `label` in this token directory (which
    /// need not exist).
    pub fn uri_of(&self, label: &str) -> String {
        format!(
            "pkcs11:token={label}?module-path={MODULE}&pin-source=file:{}",
            self.pin_file.display()
        )
    }

    /// Writes a secret file `name` next to the PIN file (mode 0600).
    pub fn secret_file(&self, name: &str, content: &str) -> PathBuf {
        let path = self.pin_file.with_file_name(name);
        write_secret(&path, content);
        path
    }

    /// A sigild config file using this token with `sessions` sessions.
    pub fn config(&self, dir: &Path, sessions: usize) -> PathBuf {
        let path = dir.join("sigild-pkcs11.toml");
        std::fs::write(
            &path,
            format!(
                "[backend]\nkind = \"pkcs11\"\nuri = \"{}\"\nsessions = {sessions}\n",
                self.uri()
            ),
        )
        .unwrap();
        path
    }
}
