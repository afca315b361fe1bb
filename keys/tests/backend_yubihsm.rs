//! The YubiHSM 2 backend against the yubihsm crate's MockHsm. The mock's
//! state lives in its connector: a "restart" is a new client on a clone of
//! the same connector.

// Test code: an unwrap is an assertion, and nothing here is a public API.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]
#![cfg(feature = "yubihsm")]

mod suite;

use sigil_keys::yubihsm::{YubiHsmBackend, YubiHsmConfig, YubiHsmConnection};
use sigil_keys::{Backend, KeyError, KeyId, SecretSource};
use yubihsm::{Connector, Credentials};

fn open(connector: &Connector) -> YubiHsmBackend {
    YubiHsmBackend::with_credentials(connector.clone(), Credentials::default(), 1).unwrap()
}

/// A MockHsm of its own; its connector holds the device state.
struct Mock(Connector);

impl suite::Store for Mock {
    type Backend = YubiHsmBackend;
    const KIND: &'static str = "yubihsm";
    fn new(_tag: &'static str) -> Self {
        Mock(Connector::mockhsm())
    }
    fn open(&self) -> YubiHsmBackend {
        open(&self.0)
    }
}

suite::mount!(Mock);

#[test]
fn keys_can_sign_only_and_are_not_exportable() {
    let connector = Connector::mockhsm();
    let backend = open(&connector);
    let id = KeyId::new("mediator", 1).unwrap();
    backend.generate(&id).unwrap();
    let custody = backend.describe(&id).unwrap();
    assert!(custody.non_extractable);
    assert!(custody.token.contains("serial"), "{}", custody.token);

    let client = yubihsm::Client::open(connector, Credentials::default(), true).unwrap();
    let objects = client
        .list_objects(&[yubihsm::object::Filter::Type(
            yubihsm::object::Type::AsymmetricKey,
        )])
        .unwrap();
    assert_eq!(objects.len(), 1);
    let info = client
        .get_object_info(objects[0].object_id, yubihsm::object::Type::AsymmetricKey)
        .unwrap();
    assert_eq!(info.capabilities, yubihsm::Capability::SIGN_EDDSA);
    assert_eq!(info.label.to_string(), id.label());
    assert_eq!(info.domains, yubihsm::Domain::DOM1);
}

#[test]
fn several_keys_get_distinct_objects_and_long_names_fit() {
    let connector = Connector::mockhsm();
    let backend = open(&connector);
    let long = "k".repeat(KeyId::MAX_NAME_LEN);
    let ids: Vec<KeyId> = (1..=3)
        .map(|v| KeyId::new(&long, v).unwrap())
        .chain([KeyId::new("short", 1).unwrap()])
        .collect();
    let publics: Vec<_> = ids.iter().map(|id| backend.generate(id).unwrap()).collect();
    for (id, public) in ids.iter().zip(&publics) {
        assert_eq!(open(&connector).find(id).unwrap(), Some(*public));
    }
    backend.destroy(&ids[1]).unwrap();
    assert_eq!(backend.find(&ids[1]).unwrap(), None);
    assert_eq!(backend.find(&ids[2]).unwrap(), Some(publics[2]));
    // The freed object id is reused without disturbing the others.
    let again = backend.generate(&ids[1]).unwrap();
    assert_ne!(again, publics[1]);
    assert_eq!(backend.find(&ids[0]).unwrap(), Some(publics[0]));
}

#[test]
fn wrong_password_is_a_config_error_without_the_password() {
    let connector = Connector::mockhsm();
    let err = YubiHsmBackend::with_credentials(
        connector,
        Credentials::from_password(1, b"Yh5-wrong-password-777"),
        1,
    )
    .unwrap_err();
    assert!(matches!(err, KeyError::Config { .. }), "{err:?}");
    let text = format!("{err} {err:?}");
    assert!(text.contains("auth key 1"), "{text}");
    assert!(!text.contains("Yh5-wrong-password-777"), "{text}");
}

#[test]
fn unreachable_connector_is_unavailable_and_missing_password_is_config() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = YubiHsmConfig {
        connection: YubiHsmConnection::Http {
            addr: "127.0.0.1".into(),
            // Port 9 (discard) on loopback: nothing listens there.
            port: 9,
            timeout_ms: 500,
        },
        auth_key_id: 1,
        password: SecretSource::File(dir.path().join("missing")),
        domain: 1,
    };
    let err = YubiHsmBackend::open(&cfg).unwrap_err();
    assert!(matches!(err, KeyError::Config { .. }), "{err:?}");
    assert!(err.to_string().contains("missing"), "{err}");

    let pw = dir.path().join("pw");
    std::fs::write(&pw, "password\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    cfg.password = SecretSource::File(pw);
    let err = YubiHsmBackend::open(&cfg).unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
}

#[test]
fn bad_domain_is_refused() {
    let err = YubiHsmBackend::with_credentials(Connector::mockhsm(), Credentials::default(), 17)
        .unwrap_err();
    assert!(err.to_string().contains("domain"), "{err}");
}

#[test]
fn keepalive_talks_to_the_device() {
    let backend =
        YubiHsmBackend::with_credentials(Connector::mockhsm(), Credentials::default(), 1).unwrap();
    backend.keepalive().unwrap();
}
