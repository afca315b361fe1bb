//! Recovery of the PKCS#11 backend after its sessions are closed from
//! outside (`C_CloseAllSessions`), against SoftHSM2.
//!
//! These tests live in their own binary and run one after the other inside
//! a single test: closing sessions from outside is a process-wide event.
//! SoftHSM hands out session handle numbers from one process-wide table and
//! reuses them, so a session closed behind a backend's back may come back
//! under the same number for somebody else; another test running in the
//! same process would be disturbed.

// Test code: an unwrap is an assertion, and nothing here is a public API.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]
#![cfg(feature = "pkcs11")]

use std::path::Path;

use ed25519_dalek::{Signature as DalekSig, Verifier, VerifyingKey};
use sigil_keys::pkcs11::{close_all_sessions, Pkcs11Backend, Pkcs11Config};
use sigil_keys::{Backend, KeyId, PublicKey, Signature};
use sigil_testkit::softhsm::{SoftHsm, MODULE, PIN};

const TOKENS: &[&str] = &["fault", "load", "pinchange"];

/// The configuration of token `label` of this process.
fn config(label: &str) -> Pkcs11Config {
    Pkcs11Config::from_uri(&SoftHsm::in_process(TOKENS).uri_of(label)).unwrap()
}

fn verify(public: &PublicKey, msg: &[u8], sig: &Signature) {
    VerifyingKey::from_bytes(&public.0)
        .unwrap()
        .verify(msg, &DalekSig::from_bytes(&sig.0))
        .expect("signature verifies");
}

#[test]
fn signing_recovers_after_sessions_are_closed_from_outside() {
    recovers_after_all_sessions_are_closed();
    recovers_under_load();
    a_pin_that_stopped_working_is_not_tried_again();
}

/// The token's PIN is changed while the backend runs; its next login fails
/// once, and from then on it does not try again (each failed login counts
/// towards locking the token).
fn a_pin_that_stopped_working_is_not_tried_again() {
    use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
    use cryptoki::session::UserType;
    use cryptoki::types::AuthPin;

    let cfg = config("pinchange");
    let backend = Pkcs11Backend::open(&cfg).unwrap();
    let id = KeyId::new("pinchange", 1).unwrap();
    backend.generate(&id).unwrap();
    backend.sign(&id, b"before").unwrap();

    // Change the user PIN behind the backend's back, then drop every
    // session so that it has to log in again.
    let ctx = Pkcs11::new(MODULE).unwrap();
    let _ = ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK));
    let slot = ctx
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| ctx.get_token_info(*s).unwrap().label().trim_end() == "pinchange")
        .unwrap();
    let new_pin = AuthPin::from("a-new-PIN-31337");
    {
        let session = ctx.open_rw_session(slot).unwrap();
        let old = AuthPin::from(PIN);
        let _ = session.login(UserType::User, Some(&old));
        session.set_pin(&old, &new_pin).unwrap();
    }
    close_all_sessions(Path::new(MODULE), "pinchange").unwrap();

    let first = backend.sign(&id, b"after").unwrap_err().to_string();
    assert!(first.contains("wrong PIN"), "{first}");
    let again = backend.sign(&id, b"again").unwrap_err().to_string();
    assert!(again.contains("refused earlier"), "{again}");
    assert!(!again.contains(PIN), "{again}");
    // The token is not locked: the new PIN logs in.
    let session = ctx.open_rw_session(slot).unwrap();
    session.login(UserType::User, Some(&new_pin)).unwrap();
}

fn recovers_after_all_sessions_are_closed() {
    let cfg = config("fault");
    let backend = Pkcs11Backend::open(&cfg).unwrap();
    let id = KeyId::new("fault", 1).unwrap();
    let public = backend.generate(&id).unwrap();
    verify(&public, b"before", &backend.sign(&id, b"before").unwrap());

    // The keepalive probe also finds its session gone and re-opens it.
    backend.keepalive().unwrap();
    close_all_sessions(Path::new(MODULE), "fault").unwrap();
    backend
        .keepalive()
        .expect("keepalive recovers a dropped session");

    for round in 0..3 {
        close_all_sessions(Path::new(MODULE), "fault").unwrap();
        let msg = format!("after close {round}");
        let sig = backend.sign(&id, msg.as_bytes()).expect("sign recovers");
        verify(&public, msg.as_bytes(), &sig);
        assert_eq!(backend.find(&id).unwrap(), Some(public));
    }
}

/// Several threads sign while all sessions are closed from outside, again
/// and again: every pooled session dies at once and the workers recover
/// concurrently (handle numbers are reused by SoftHSM, so stale sessions
/// must be abandoned, never closed or used).
///
/// SoftHSM 2.6 frees a session's memory in `C_CloseAllSessions` even while
/// another thread is inside `C_Sign` on it (a use-after-free in the module:
/// it segfaults within a few hundred closes). So the closes here happen
/// between calls, never during one: each sign holds a read lock, each close
/// the write lock. Real tokens are behind a driver or a network and do not
/// share memory with us; this is the part of the fault we can reproduce.
fn recovers_under_load() {
    let mut cfg = config("load");
    cfg.sessions = 3;
    let backend = Pkcs11Backend::open(&cfg).unwrap();
    let id = KeyId::new("load", 1).unwrap();
    let public = backend.generate(&id).unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let between_calls = std::sync::RwLock::new(());
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..4)
            .map(|t| {
                let (backend, id, stop, gate) = (&backend, &id, &stop, &between_calls);
                s.spawn(move || {
                    let mut ok = 0u32;
                    let mut i = 0u32;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let msg = format!("{t}:{i}");
                        let result = {
                            let _in_call = gate.read().unwrap();
                            backend.sign(id, msg.as_bytes())
                        };
                        let sig = result.expect("one close per call is always recovered");
                        verify(&public, msg.as_bytes(), &sig);
                        ok += 1;
                        i += 1;
                    }
                    ok
                })
            })
            .collect();
        for _ in 0..20 {
            std::thread::sleep(std::time::Duration::from_millis(15));
            let _no_call_in_flight = between_calls.write().unwrap();
            close_all_sessions(Path::new(MODULE), "load").unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(15));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let ok: u32 = workers.into_iter().map(|w| w.join().unwrap()).sum();
        assert!(ok > 20, "{ok} signatures");
    });
    verify(&public, b"after", &backend.sign(&id, b"after").unwrap());
}
