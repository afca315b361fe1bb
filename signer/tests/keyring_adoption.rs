//! `keys create` never adopts a key it did not generate: two daemons on one
//! token (or one seed dir) get their own keys, and an object already under
//! the label is someone else's. Only a generation this data dir recorded as
//! begun (a crash before the record) is adopted.

// Test code: an unwrap is an assertion.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use serde_json::Value;
use sigil_keys::software::SoftwareBackend;
use sigil_keys::{Backend, KeyId};
use sigil_signer::keyring::Keyring;

fn namespace(data: &std::path::Path) -> String {
    let v: Value = serde_json::from_slice(&std::fs::read(data.join("keys.json")).unwrap()).unwrap();
    v["namespace"].as_str().unwrap().to_owned()
}

#[test]
fn two_data_dirs_on_one_backend_get_their_own_keys() {
    let dir = tempfile::tempdir().unwrap();
    let backend: Arc<dyn Backend> =
        Arc::new(SoftwareBackend::open(dir.path().join("seeds")).unwrap());
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    let ka = Keyring::open(&a, backend.clone(), "mediator").unwrap();
    let kb = Keyring::open(&b, backend.clone(), "mediator").unwrap();
    let (ma, mb) = (
        ka.ensure("mediator").unwrap(),
        kb.ensure("mediator").unwrap(),
    );
    assert_ne!(ma.public_hex, mb.public_hex, "B adopted A's chain key");
    assert_ne!(namespace(&a), namespace(&b));
    let (da, db) = (ka.create("digests").unwrap(), kb.create("digests").unwrap());
    assert_ne!(da.public_hex, db.public_hex, "B adopted A's digest key");
}

#[test]
fn an_existing_label_is_refused_unless_its_generation_was_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let backend: Arc<dyn Backend> =
        Arc::new(SoftwareBackend::open(dir.path().join("seeds")).unwrap());
    let ring = Keyring::open(&data, backend.clone(), "mediator").unwrap();
    ring.ensure("mediator").unwrap();
    // Someone else's object under exactly the label this data dir would use.
    let id = KeyId::new("digests", 1)
        .unwrap()
        .in_namespace(&namespace(&data))
        .unwrap();
    let theirs = backend.generate(&id).unwrap();
    let before = std::fs::read(data.join("keys.json")).unwrap();
    let err = ring.create("digests").unwrap_err().to_string();
    assert!(err.contains("did not generate"), "{err}");
    assert!(err.contains(&id.label()), "{err}");
    assert_eq!(
        std::fs::read(data.join("keys.json")).unwrap(),
        before,
        "a refused create changed keys.json"
    );
    drop(ring);

    // A crash after generating and before recording leaves the intent in
    // keys.json: the next attempt adopts the object.
    let mut v: Value = serde_json::from_slice(&before).unwrap();
    v["generating"] = serde_json::json!([id.label()]);
    std::fs::write(data.join("keys.json"), serde_json::to_vec(&v).unwrap()).unwrap();
    let ring = Keyring::open(&data, backend, "mediator").unwrap();
    let adopted = ring.create("digests").unwrap();
    assert_eq!(adopted.public_hex, theirs.to_hex());
    let after: Value =
        serde_json::from_slice(&std::fs::read(data.join("keys.json")).unwrap()).unwrap();
    assert!(after.get("generating").is_none(), "{after}");
}
