//! The software backend: seed files in a directory.

// Test code: an unwrap is an assertion, and nothing here is a public API.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

mod suite;

use std::os::unix::fs::PermissionsExt;

use sigil_keys::software::SoftwareBackend;
use sigil_keys::{Backend, KeyId};

/// A seed directory of its own.
struct Seeds(tempfile::TempDir);

impl suite::Store for Seeds {
    type Backend = SoftwareBackend;
    const KIND: &'static str = "software";
    fn new(_tag: &'static str) -> Self {
        Seeds(tempfile::tempdir().unwrap())
    }
    fn open(&self) -> SoftwareBackend {
        SoftwareBackend::open(self.0.path().join("seeds")).unwrap()
    }
}

suite::mount!(Seeds);

#[test]
fn seed_files_are_private_and_refused_when_not() {
    let dir = tempfile::tempdir().unwrap();
    let backend = SoftwareBackend::open(dir.path()).unwrap();
    let id = KeyId::new("mediator", 1).unwrap();
    backend.generate(&id).unwrap();
    let seed = dir.path().join(format!("{}.seed", id.label()));
    let mode = std::fs::metadata(&seed).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    std::fs::set_permissions(&seed, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = SoftwareBackend::open(dir.path())
        .unwrap()
        .find(&id)
        .unwrap_err();
    assert!(err.to_string().contains("chmod 600"), "{err}");
}
