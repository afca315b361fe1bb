//! Root keys in YubiHSM 2 devices (the yubihsm crate's MockHsm, one per
//! officer): generated in the device, reported non-extractable, and root 1
//! signed by both meets its threshold under the verifier's walk.

use std::sync::Arc;

use sigil_keys::yubihsm::YubiHsmBackend;
use sigil_proto::root::trust::{verify_roots, Pin};
use sigil_proto::root::{Root, Signed};
use sigil_root::{RootDir, RootToken};

fn officer(name: &str) -> RootToken {
    let device = yubihsm::Connector::mockhsm();
    let b = YubiHsmBackend::with_credentials(device, yubihsm::Credentials::default(), 1).unwrap();
    RootToken::with_backend(Arc::new(b), name).unwrap()
}

#[test]
fn root_keys_live_in_yubihsms_and_root_one_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = RootDir::new(tmp.path().join("ceremony"));
    let tokens = [officer("officer-y1"), officer("officer-y2")];
    let init =
        sigil_root::init(&dir, "payments-prod", 2, &tokens, Vec::new(), false, false).unwrap();
    let text = std::fs::read_to_string(&init.path).unwrap();
    let root = Signed::<Root>::parse(&text).unwrap();
    for (k, v) in &root.signed.keys {
        assert_eq!(v.custody.backend, "yubihsm", "{k}");
        assert!(v.custody.non_extractable, "{k}");
        assert!(v.custody.token.contains("YubiHSM 2 serial"), "{k}");
    }
    let pin = Pin::Keys {
        keys: init.keys.iter().cloned().collect(),
        threshold: 2,
    };
    let now = time::OffsetDateTime::now_utc();
    assert_eq!(
        verify_roots(&pin, std::slice::from_ref(&root), now, None)
            .unwrap()
            .signed
            .version,
        1
    );
    // A second init on the same devices refuses to adopt their keys
    // silently.
    let again = RootDir::new(tmp.path().join("again"));
    let e = sigil_root::init(&again, "x", 2, &tokens, Vec::new(), false, false)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("--existing"), "{e}");
}
