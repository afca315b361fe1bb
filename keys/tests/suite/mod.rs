//! The behaviour every backend must show, one test per property. Each
//! `backend_*.rs` file implements [`Store`] for its backend and mounts the
//! suite once with [`mount!`], as rustls mounts its API tests once per
//! crypto provider: a failure names the backend and the property.

use ed25519_dalek::{Signature as DalekSig, Verifier, VerifyingKey};
use sigil_keys::{Backend, KeyError, KeyId, PublicKey};

/// Where a backend keeps its keys, for one test.
pub trait Store {
    /// The backend over this store.
    type Backend: Backend;
    /// What [`Backend::describe`] names as the backend.
    const KIND: &'static str;
    /// An empty store for the test tagged `tag` (tags are distinct, short,
    /// and valid key names and token labels).
    fn new(tag: &'static str) -> Self;
    /// A backend over the store. Each call opens a fresh one over the same
    /// keys, as a daemon restart does.
    fn open(&self) -> Self::Backend;
}

/// Generates one `#[test]` per property of the suite for store `$store`,
/// in a module `behaviour`.
macro_rules! mount {
    ($store:ty) => {
        mod behaviour {
            #[allow(unused_imports)]
            use super::*;
            $crate::suite::mount!(@tests $store;
                generate_returns_a_key_and_refuses_an_existing_id,
                find_returns_the_generated_key_and_none_for_another,
                sign_is_pure_ed25519_over_exactly_the_given_bytes,
                sign_with_an_unknown_key_is_not_found,
                a_reopened_backend_finds_the_key_and_signs_with_it,
                describe_names_the_backend_and_says_where_the_key_is,
                destroy_removes_the_key_for_good_even_after_reopen,
            );
        }
    };
    (@tests $store:ty; $($property:ident),+ $(,)?) => {
        $(
            #[test]
            fn $property() {
                $crate::suite::$property::<$store>();
            }
        )+
    };
}
pub(crate) use mount;

/// The message every property signs.
const DIGEST: [u8; 32] = [7u8; 32];

/// An empty store for `tag`, a backend over it and a key id of its own.
fn setup<S: Store>(tag: &'static str) -> (S, S::Backend, KeyId) {
    let store = S::new(tag);
    let backend = store.open();
    (store, backend, KeyId::new(tag, 1).unwrap())
}

/// Asserts that `sig` over `message` verifies under `public` with
/// ed25519-dalek (PureEdDSA, RFC 8032).
fn assert_verifies(public: &PublicKey, message: &[u8], sig: &sigil_keys::Signature) {
    VerifyingKey::from_bytes(&public.0)
        .unwrap()
        .verify(message, &DalekSig::from_bytes(&sig.0))
        .expect("signature verifies with ed25519-dalek");
}

pub fn generate_returns_a_key_and_refuses_an_existing_id<S: Store>() {
    let (_store, backend, id) = setup::<S>("generate");
    let public = backend.generate(&id).expect("generate");
    assert!(matches!(
        backend.generate(&id),
        Err(KeyError::AlreadyExists { .. })
    ));
    // The refused second generate left the first key in place.
    assert_eq!(backend.find(&id).unwrap(), Some(public));
}

pub fn find_returns_the_generated_key_and_none_for_another<S: Store>() {
    let (_store, backend, id) = setup::<S>("find");
    let public = backend.generate(&id).unwrap();
    assert_eq!(backend.find(&id).unwrap(), Some(public));
    let other = KeyId::new("find", 2).unwrap();
    assert_eq!(backend.find(&other).unwrap(), None);
}

pub fn sign_is_pure_ed25519_over_exactly_the_given_bytes<S: Store>() {
    let (_store, backend, id) = setup::<S>("sign");
    let public = backend.generate(&id).unwrap();
    let sig = backend.sign(&id, &DIGEST).expect("sign");
    assert_verifies(&public, &DIGEST, &sig);
    let vk = VerifyingKey::from_bytes(&public.0).unwrap();
    assert!(vk
        .verify(&[8u8; 32], &DalekSig::from_bytes(&sig.0))
        .is_err());
}

pub fn sign_with_an_unknown_key_is_not_found<S: Store>() {
    let (_store, backend, id) = setup::<S>("unknown");
    backend.generate(&id).unwrap();
    let other = KeyId::new("unknown", 2).unwrap();
    assert!(matches!(
        backend.sign(&other, &DIGEST),
        Err(KeyError::NotFound { .. })
    ));
}

pub fn a_reopened_backend_finds_the_key_and_signs_with_it<S: Store>() {
    let (store, backend, id) = setup::<S>("reopen");
    let public = backend.generate(&id).unwrap();
    let reopened = store.open();
    assert_eq!(reopened.find(&id).unwrap(), Some(public));
    assert_verifies(&public, &DIGEST, &reopened.sign(&id, &DIGEST).unwrap());
}

pub fn describe_names_the_backend_and_says_where_the_key_is<S: Store>() {
    let (store, backend, id) = setup::<S>("describe");
    backend.generate(&id).unwrap();
    for b in [backend, store.open()] {
        let custody = b.describe(&id).unwrap();
        assert_eq!(custody.backend, S::KIND);
        assert!(!custody.note.is_empty());
    }
}

pub fn destroy_removes_the_key_for_good_even_after_reopen<S: Store>() {
    let (store, backend, id) = setup::<S>("destroy");
    backend.generate(&id).unwrap();
    let reopened = store.open();
    reopened.destroy(&id).unwrap();
    assert_eq!(reopened.find(&id).unwrap(), None);
    assert!(reopened.sign(&id, &DIGEST).is_err());
    assert_eq!(store.open().find(&id).unwrap(), None);
}
