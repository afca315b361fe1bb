//! The PKCS#11 backend against SoftHSM2, one token per test in this
//! process's token directory (recovery from closed sessions is tested in
//! `backend_pkcs11_faults.rs`, a binary of its own).

// Test code: an unwrap is an assertion, and nothing here is a public API.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]
#![cfg(feature = "pkcs11")]

mod suite;

use std::path::PathBuf;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::object::{Attribute, AttributeType, ObjectClass};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;
use sigil_keys::pkcs11::{Pkcs11Backend, Pkcs11Config};
use sigil_keys::{Backend, KeyError, KeyId, SecretSource};
use sigil_testkit::softhsm::{SoftHsm, MODULE, PIN};

/// Every token of this binary: the suite's (one per property, by tag) and
/// this file's own.
const TOKENS: &[&str] = &[
    "generate", "find", "sign", "unknown", "reopen", "describe", "destroy", "attrs", "badpin",
    "leak",
];

/// The configuration of token `label` of this process.
fn config(label: &str) -> Pkcs11Config {
    Pkcs11Config::from_uri(&SoftHsm::in_process(TOKENS).uri_of(label)).unwrap()
}

/// A token of its own for one test of the suite.
struct Token(Pkcs11Config);

impl suite::Store for Token {
    type Backend = Pkcs11Backend;
    const KIND: &'static str = "pkcs11";
    fn new(tag: &'static str) -> Self {
        Token(config(tag))
    }
    fn open(&self) -> Pkcs11Backend {
        Pkcs11Backend::open(&self.0).unwrap()
    }
}

suite::mount!(Token);

#[test]
fn private_key_is_sensitive_and_never_extractable() {
    let cfg = config("attrs");
    let backend = Pkcs11Backend::open(&cfg).unwrap();
    let id = KeyId::new("attrs", 1).unwrap();
    backend.generate(&id).unwrap();
    let custody = backend.describe(&id).unwrap();
    assert!(custody.non_extractable);
    assert_eq!(custody.token, "attrs");

    // Look at the object through a separate session of our own.
    let ctx = Pkcs11::new(MODULE).unwrap();
    let _ = ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK));
    let slot = ctx
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| ctx.get_token_info(*s).unwrap().label() == "attrs")
        .unwrap();
    let session = ctx.open_ro_session(slot).unwrap();
    let _ = session.login(UserType::User, Some(&AuthPin::from(PIN)));
    let found = session
        .find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Label(id.label().into_bytes()),
        ])
        .unwrap();
    assert_eq!(found.len(), 1);
    // cryptoki drops attributes the token refuses to reveal instead of
    // failing, so "cannot be read" shows as "absent from the answer".
    let attrs = session
        .get_attributes(
            found[0],
            &[
                AttributeType::Value,
                AttributeType::NeverExtractable,
                AttributeType::Extractable,
                AttributeType::Sensitive,
                AttributeType::AlwaysSensitive,
            ],
        )
        .unwrap();
    assert!(
        !attrs.iter().any(|a| matches!(a, Attribute::Value(_))),
        "CKA_VALUE must not be readable"
    );
    assert!(attrs.contains(&Attribute::NeverExtractable(true)));
    assert!(attrs.contains(&Attribute::Extractable(false)));
    assert!(attrs.contains(&Attribute::Sensitive(true)));
    assert!(attrs.contains(&Attribute::AlwaysSensitive(true)));
}

#[test]
fn wrong_pin_is_a_clear_config_error_without_the_pin() {
    let wrong = "Wx3-wrong-PIN-55555";
    let mut cfg = config("badpin");
    cfg.pin = SecretSource::File(SoftHsm::in_process(TOKENS).secret_file("wrong-pin", wrong));
    let err = Pkcs11Backend::open(&cfg).unwrap_err();
    assert!(matches!(err, KeyError::Config { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("PIN") && text.contains("CKR_PIN_INCORRECT"),
        "{text}"
    );
    assert!(!text.contains(wrong) && !format!("{err:?}").contains(wrong));

    // The right PIN still works on the same token afterwards.
    Pkcs11Backend::open(&config("badpin")).unwrap();
}

#[test]
fn unknown_token_error_lists_the_labels_seen() {
    let err = Pkcs11Backend::open(&config("no-such-token")).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, KeyError::Config { .. }), "{err:?}");
    assert!(text.contains("no-such-token"), "{text}");
    assert!(
        text.contains("\"generate\"") && text.contains("\"attrs\""),
        "{text}"
    );
}

#[test]
fn missing_module_error_names_the_path() {
    let mut cfg = config("generate");
    cfg.module_path = PathBuf::from("/nonexistent/libnothing.so");
    let text = Pkcs11Backend::open(&cfg).unwrap_err().to_string();
    assert!(
        text.contains("/nonexistent/libnothing.so") && text.contains("not found"),
        "{text}"
    );
}

#[test]
fn pin_never_appears_in_errors_or_debug_output() {
    let cfg = config("leak");
    let backend = Pkcs11Backend::open(&cfg).unwrap();
    let mut texts = vec![format!("{backend:?}"), format!("{cfg:?}")];
    let missing = KeyId::new("missing", 1).unwrap();
    for err in [
        backend.sign(&missing, b"x").unwrap_err(),
        backend.describe(&missing).unwrap_err(),
        backend.destroy(&missing).unwrap_err(),
        Pkcs11Backend::open(&config("no-such-token")).unwrap_err(),
    ] {
        texts.push(err.to_string());
        texts.push(format!("{err:?}"));
    }
    let env_cfg = Pkcs11Config::from_uri(&format!(
        "pkcs11:token=no-such-token?module-path={MODULE}&pin-source=env:SIGIL_TEST_PKCS11_PIN"
    ))
    .unwrap();
    let err = Pkcs11Backend::open(&env_cfg).unwrap_err();
    texts.push(format!("{err} {err:?} {env_cfg:?}"));
    for t in texts {
        assert!(!t.contains(PIN), "PIN leaked into: {t}");
    }
}
