//! The behaviour every backend must show. Each `backend_*.rs` file runs
//! [`run_all`] against its backend, as rustls runs its tests against every
//! crypto provider.

use ed25519_dalek::{Signature as DalekSig, Verifier, VerifyingKey};
use sigil_keys::{Backend, KeyError, KeyId};

/// Runs every behaviour check. `reopen` must return a fresh backend over the
/// same store (a daemon restart).
pub fn run_all<B: Backend>(backend: &B, reopen: &dyn Fn() -> B, expect_backend: &str) {
    let id = KeyId::new("suite", 1).unwrap();

    // generate
    let public = backend.generate(&id).expect("generate");
    assert!(matches!(
        backend.generate(&id),
        Err(KeyError::AlreadyExists { .. })
    ));

    // public key, find
    assert_eq!(backend.find(&id).unwrap(), Some(public));
    let other = KeyId::new("suite", 2).unwrap();
    assert_eq!(backend.find(&other).unwrap(), None);

    // sign: PureEdDSA over the given bytes, verifiable with ed25519-dalek
    let digest = [7u8; 32];
    let sig = backend.sign(&id, &digest).expect("sign");
    let vk = VerifyingKey::from_bytes(&public.0).unwrap();
    vk.verify(&digest, &DalekSig::from_bytes(&sig.0))
        .expect("signature verifies with ed25519-dalek");
    assert!(vk
        .verify(&[8u8; 32], &DalekSig::from_bytes(&sig.0))
        .is_err());
    assert!(matches!(
        backend.sign(&other, &digest),
        Err(KeyError::NotFound { .. })
    ));

    // find after restart
    let reopened = reopen();
    assert_eq!(reopened.find(&id).unwrap(), Some(public));
    let sig2 = reopened.sign(&id, &digest).unwrap();
    vk.verify(&digest, &DalekSig::from_bytes(&sig2.0)).unwrap();

    // describe
    let custody = reopened.describe(&id).unwrap();
    assert_eq!(custody.backend, expect_backend);
    assert!(!custody.note.is_empty());

    // destroy
    reopened.destroy(&id).unwrap();
    assert_eq!(reopened.find(&id).unwrap(), None);
    assert!(reopened.sign(&id, &digest).is_err());
    let again = reopen();
    assert_eq!(again.find(&id).unwrap(), None);
}
