//! A SoftHSM2 token directory for one test binary.
//!
//! SoftHSM reads `SOFTHSM2_CONF` once, at `C_Initialize`, and the module is
//! one library instance per process. So a test binary makes one token
//! directory, points `SOFTHSM2_CONF` at it and creates every token its tests
//! need before any test loads the module. Each test uses its own token: a
//! login on one token does not disturb another.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use ed25519_dalek::{Signature as DalekSig, Verifier, VerifyingKey};
use sigil_keys::pkcs11::Pkcs11Config;

pub const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
pub const SO_PIN: &str = "so-pin-1234";
/// Distinctive, so a leak into any message is unmistakable.
pub const PIN: &str = "Pq7-user-PIN-90210";

pub struct Fixture {
    dir: PathBuf,
}

/// Creates the token directory and `tokens` in it, once per process.
pub fn fixture(tokens: &'static [&'static str]) -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        // Kept for the life of the process: the tokens live here.
        let dir = tempfile::tempdir().unwrap().keep();
        let token_dir = dir.join("tokens");
        std::fs::create_dir(&token_dir).unwrap();
        let conf = dir.join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                token_dir.display()
            ),
        )
        .unwrap();
        // Set before any test can load the module (all go through here).
        std::env::set_var("SOFTHSM2_CONF", &conf);
        std::env::set_var("SIGIL_TEST_PKCS11_PIN", PIN);
        for label in tokens {
            let out = Command::new("softhsm2-util")
                .args(["--init-token", "--free", "--label", label])
                .args(["--so-pin", SO_PIN, "--pin", PIN])
                .env("SOFTHSM2_CONF", &conf)
                .output()
                .expect("softhsm2-util runs");
            assert!(out.status.success(), "{out:?}");
        }
        let pin_file = dir.join("pin");
        std::fs::write(&pin_file, format!("{PIN}\n")).unwrap();
        std::fs::set_permissions(&pin_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        Fixture { dir }
    })
}

impl Fixture {
    pub fn config(&self, token: &str) -> Pkcs11Config {
        Pkcs11Config::from_uri(&format!(
            "pkcs11:token={token}?module-path={MODULE}&pin-source=file:{}",
            self.dir.join("pin").display()
        ))
        .unwrap()
    }

    pub fn secret_file(&self, name: &str, content: &str) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, content).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        path
    }
}

pub fn verify(public: &sigil_keys::PublicKey, msg: &[u8], sig: &sigil_keys::Signature) {
    VerifyingKey::from_bytes(&public.0)
        .unwrap()
        .verify(msg, &DalekSig::from_bytes(&sig.0))
        .expect("signature verifies");
}
