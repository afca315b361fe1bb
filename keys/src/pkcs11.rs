//! The PKCS#11 backend: Ed25519 keys generated inside a token and never
//! extractable (tested against SoftHSM2; any token with `CKM_EDDSA` and
//! `CKM_EC_EDWARDS_KEY_PAIR_GEN` should do).
//!
//! A token is named by a PKCS#11 URI (RFC 7512), see [`Pkcs11Config::from_uri`].
//! Key objects are named by [`KeyId::label`] (`CKA_LABEL`, and the same
//! bytes as `CKA_ID`).
//!
//! Sessions: a fixed pool of read-write sessions, each logged in, each used
//! by one thread at a time (a `Session` is `Send` but not `Sync`). Object
//! handles are cached per session only. When the token reports a lost
//! session, a lost login, a removed token, an invalid handle or an
//! uninitialised library, the backend re-initialises the module if needed,
//! opens a fresh session, logs in, finds the key again and retries once;
//! if that fails too the caller gets [`KeyError::Unavailable`].
//!
//! Two processes generating the same label at the same moment can both
//! succeed on some tokens; within one process generation is serialised.

use std::collections::HashMap;
use std::fmt;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};

use cryptoki::context::Pkcs11;
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;

use crate::{Backend, Custody, KeyError, KeyId, PublicKey, Signature};

mod config;
mod module;

pub use config::Pkcs11Config;
pub use module::close_all_sessions;
use module::{
    ck_err, config, describe_ck, find_slot, initialize, load_module, malformed, poisoned,
    unavailable,
};

const BACKEND: &str = "pkcs11";

/// DER encoding of the OID 1.3.101.112 (id-Ed25519), for `CKA_EC_PARAMS`.
const ED25519_OID_DER: [u8; 5] = [0x06, 0x03, 0x2b, 0x65, 0x70];

/// One pooled session and the key handles found through it.
struct Worker {
    session: Option<Session>,
    /// Value of `Pkcs11Backend::session_epoch` when `session` was opened.
    opened_in: u64,
    /// Value of `Pkcs11Backend::object_epoch` when `handles` was filled.
    handles_of: u64,
    handles: HashMap<String, ObjectHandle>,
}

/// Ed25519 keys in a PKCS#11 token.
pub struct Pkcs11Backend {
    ctx: Pkcs11,
    slot: Slot,
    token_label: String,
    pin: AuthPin,
    /// The token said the PIN is wrong: never try it again (each try counts
    /// towards locking the token), until the daemon is restarted with
    /// another one.
    pin_refused: AtomicBool,
    idle: Mutex<Vec<Worker>>,
    returned: Condvar,
    /// Bumped when any worker learns that sessions died (closed, module
    /// re-initialised): every session opened before is then abandoned. A
    /// dead handle is never closed, since the token may have handed the
    /// same number to a new session.
    session_epoch: AtomicU64,
    /// Bumped on destroy, so cached object handles of other sessions go.
    object_epoch: AtomicU64,
    generating: Mutex<()>,
}

impl fmt::Debug for Pkcs11Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Backend")
            .field("slot", &self.slot.id())
            .field("token_label", &self.token_label)
            .finish_non_exhaustive()
    }
}

impl Pkcs11Backend {
    /// Loads the module, finds the token, checks that it has the Ed25519
    /// mechanisms, reads the PIN and logs in every session of the pool.
    ///
    /// Errors say which of these failed: module not found or not loadable,
    /// no token with that label (listing the labels seen), mechanism
    /// missing, wrong or locked PIN.
    pub fn open(cfg: &Pkcs11Config) -> Result<Self, KeyError> {
        let pin = cfg.pin.read_auth_pin(BACKEND)?;
        let ctx = load_module(&cfg.module_path)?;
        let slot = find_slot(&ctx, &cfg.token_label, cfg.token_serial.as_deref())?;
        let mechs = ctx
            .get_mechanism_list(slot)
            .map_err(|e| ck_err("listing mechanisms", e))?;
        for (m, name) in [
            (MechanismType::EDDSA, "CKM_EDDSA"),
            (
                MechanismType::ECC_EDWARDS_KEY_PAIR_GEN,
                "CKM_EC_EDWARDS_KEY_PAIR_GEN",
            ),
        ] {
            if !mechs.contains(&m) {
                return Err(config(format!(
                    "token {:?} does not support {name}; it cannot hold Ed25519 keys",
                    cfg.token_label
                )));
            }
        }
        let backend = Pkcs11Backend {
            ctx,
            slot,
            token_label: cfg.token_label.clone(),
            pin,
            pin_refused: AtomicBool::new(false),
            idle: Mutex::new(Vec::new()),
            returned: Condvar::new(),
            session_epoch: AtomicU64::new(0),
            object_epoch: AtomicU64::new(0),
            generating: Mutex::new(()),
        };
        let mut workers = Vec::with_capacity(cfg.sessions.max(1));
        for _ in 0..cfg.sessions.max(1) {
            let session = backend.open_session()?;
            workers.push(Worker {
                session: Some(session),
                opened_in: 0,
                handles_of: 0,
                handles: HashMap::new(),
            });
        }
        *backend.idle.lock().map_err(poisoned)? = workers;
        Ok(backend)
    }

    /// The token label this backend uses.
    pub fn token_label(&self) -> &str {
        &self.token_label
    }

    fn open_session(&self) -> Result<Session, KeyError> {
        if self.pin_refused.load(Ordering::SeqCst) {
            return Err(config(format!(
                "the PIN of token {:?} was refused earlier (CKR_PIN_INCORRECT); not trying it \
                 again, so the token does not lock: fix the PIN and restart sigild",
                self.token_label
            )));
        }
        let session = self
            .ctx
            .open_rw_session(self.slot)
            .map_err(|e| ck_err("opening a session", e))?;
        match session.login(UserType::User, Some(&self.pin)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(session),
            Err(CkError::Pkcs11(RvError::PinIncorrect, _)) => {
                self.pin_refused.store(true, Ordering::SeqCst);
                Err(config(format!(
                    "wrong PIN for token {:?} (CKR_PIN_INCORRECT)",
                    self.token_label
                )))
            }
            Err(CkError::Pkcs11(RvError::PinLocked, _)) => Err(config(format!(
                "the user PIN of token {:?} is locked (CKR_PIN_LOCKED)",
                self.token_label
            ))),
            Err(e) => Err(ck_err("logging in", e)),
        }
    }

    /// Runs `op` on a pooled session, recovering once from lost sessions.
    fn run<T>(
        &self,
        what: &str,
        op: impl Fn(&Session, &mut HashMap<String, ObjectHandle>) -> Result<T, Fail>,
    ) -> Result<T, KeyError> {
        let mut lease = self.checkout()?;
        let w = lease
            .worker
            .as_mut()
            .ok_or_else(|| unavailable("no session"))?;
        let mut last = None;
        for _attempt in 0..2 {
            let epoch = self.session_epoch.load(Ordering::SeqCst);
            if w.opened_in != epoch {
                // Opened before sessions were declared dead: its handle may
                // now name another session, so never close it.
                if let Some(dead) = w.session.take() {
                    std::mem::forget(dead);
                }
                w.handles.clear();
            }
            let objects = self.object_epoch.load(Ordering::SeqCst);
            if w.handles_of != objects {
                w.handles.clear();
                w.handles_of = objects;
            }
            if w.session.is_none() {
                match self.open_session() {
                    Ok(s) => {
                        w.session = Some(s);
                        w.opened_in = epoch;
                    }
                    Err(e) => return Err(e),
                }
            }
            let Some(session) = w.session.as_ref() else {
                return Err(unavailable("no session"));
            };
            match op(session, &mut w.handles) {
                Ok(v) => return Ok(v),
                Err(Fail::Key(e)) => return Err(e),
                Err(Fail::Token(e)) => {
                    let Some(rv) = recoverable(&e) else {
                        return Err(ck_err(what, e));
                    };
                    w.handles.clear();
                    match rv {
                        RvError::ObjectHandleInvalid | RvError::UserNotLoggedIn => {
                            // The session itself is alive: close it cleanly.
                            w.session = None;
                        }
                        _ => {
                            if rv == RvError::CryptokiNotInitialized {
                                self.reinitialize()?;
                            }
                            self.session_epoch.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    last = Some(e);
                }
            }
        }
        Err(unavailable(&format!(
            "{what} failed again after re-opening the session: {}",
            last.map(|e| describe_ck(&e)).unwrap_or_default()
        )))
    }

    fn reinitialize(&self) -> Result<(), KeyError> {
        initialize(&self.ctx).map_err(|e| ck_err("re-initialising the module", e))
    }

    fn checkout(&self) -> Result<Lease<'_>, KeyError> {
        let mut idle = self.idle.lock().map_err(poisoned)?;
        loop {
            if let Some(worker) = idle.pop() {
                return Ok(Lease {
                    backend: self,
                    worker: Some(worker),
                });
            }
            idle = self.returned.wait(idle).map_err(poisoned)?;
        }
    }

    fn find_private(
        session: &Session,
        cache: &mut HashMap<String, ObjectHandle>,
        label: &str,
    ) -> Result<Option<ObjectHandle>, Fail> {
        if let Some(h) = cache.get(label) {
            return Ok(Some(*h));
        }
        let found = find_one(session, ObjectClass::PRIVATE_KEY, label)?;
        if let Some(h) = found {
            cache.insert(label.to_owned(), h);
        }
        Ok(found)
    }

    fn public_key(session: &Session, label: &str) -> Result<PublicKey, Fail> {
        let h = find_one(session, ObjectClass::PUBLIC_KEY, label)?.ok_or_else(|| {
            Fail::Key(KeyError::Malformed {
                backend: BACKEND,
                reason: format!("private key {label} has no public key object"),
            })
        })?;
        read_public(session, h)
    }
}

impl Drop for Pkcs11Backend {
    fn drop(&mut self) {
        // Sessions known dead may carry numbers the token has since given
        // to other sessions of this process: abandon them, close the rest.
        let epoch = self.session_epoch.load(Ordering::SeqCst);
        if let Ok(idle) = self.idle.get_mut() {
            for w in idle.drain(..) {
                if w.opened_in != epoch {
                    if let Some(dead) = w.session {
                        std::mem::forget(dead);
                    }
                }
            }
        }
    }
}

struct Lease<'a> {
    backend: &'a Pkcs11Backend,
    worker: Option<Worker>,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(w) = self.worker.take() {
            // A poisoned pool lock means a panic elsewhere; the worker is
            // then dropped with it and the pool shrinks.
            if let Ok(mut idle) = self.backend.idle.lock() {
                idle.push(w);
                self.backend.returned.notify_one();
            }
        }
    }
}

/// An operation's failure: from the token (maybe recoverable) or final.
enum Fail {
    Token(CkError),
    Key(KeyError),
}

impl From<CkError> for Fail {
    fn from(e: CkError) -> Self {
        Fail::Token(e)
    }
}

fn recoverable(e: &CkError) -> Option<RvError> {
    match e {
        CkError::Pkcs11(
            rv @ (RvError::SessionHandleInvalid
            | RvError::SessionClosed
            | RvError::DeviceRemoved
            | RvError::TokenNotPresent
            | RvError::ObjectHandleInvalid
            | RvError::UserNotLoggedIn
            | RvError::CryptokiNotInitialized),
            _,
        ) => Some(*rv),
        _ => None,
    }
}

fn find_one(
    session: &Session,
    class: ObjectClass,
    label: &str,
) -> Result<Option<ObjectHandle>, Fail> {
    let found = session.find_objects(&[
        Attribute::Class(class),
        Attribute::Label(label.as_bytes().to_vec()),
    ])?;
    match found.as_slice() {
        [] => Ok(None),
        [h] => Ok(Some(*h)),
        more => Err(Fail::Key(config(format!(
            "{} {class} objects are labelled {label}; remove the duplicates",
            more.len()
        )))),
    }
}

fn read_public(session: &Session, h: ObjectHandle) -> Result<PublicKey, Fail> {
    let attrs = session.get_attributes(h, &[AttributeType::EcPoint])?;
    let point = attrs
        .into_iter()
        .find_map(|a| match a {
            Attribute::EcPoint(p) => Some(p),
            _ => None,
        })
        .ok_or_else(|| Fail::Key(malformed("public key has no CKA_EC_POINT".into())))?;
    decode_ec_point(&point).map_err(Fail::Key)
}

/// `CKA_EC_POINT` is a DER OCTET STRING (`04 20` || key) on SoftHSM and
/// most tokens; some return the raw 32 bytes.
fn decode_ec_point(point: &[u8]) -> Result<PublicKey, KeyError> {
    let raw = match point {
        [0x04, 0x20, rest @ ..] if rest.len() == 32 => rest,
        raw if raw.len() == 32 => raw,
        _ => {
            return Err(malformed(format!(
                "CKA_EC_POINT of {} bytes is not an Ed25519 point",
                point.len()
            )))
        }
    };
    let mut out = [0u8; 32];
    out.copy_from_slice(raw);
    Ok(PublicKey(out))
}

fn bool_attr(attrs: &[Attribute], want: AttributeType) -> Option<bool> {
    attrs.iter().find_map(|a| match (a, want) {
        (Attribute::NeverExtractable(b), AttributeType::NeverExtractable)
        | (Attribute::Extractable(b), AttributeType::Extractable)
        | (Attribute::Sensitive(b), AttributeType::Sensitive) => Some(*b),
        _ => None,
    })
}

impl Backend for Pkcs11Backend {
    fn generate(&self, id: &KeyId) -> Result<PublicKey, KeyError> {
        let _one_at_a_time = self.generating.lock().map_err(poisoned)?;
        let label = id.label();
        self.run("generating a key", |s, _| {
            if find_one(s, ObjectClass::PRIVATE_KEY, &label)?.is_some()
                || find_one(s, ObjectClass::PUBLIC_KEY, &label)?.is_some()
            {
                return Err(Fail::Key(KeyError::AlreadyExists {
                    label: label.clone(),
                    backend: BACKEND,
                }));
            }
            let name = label.as_bytes().to_vec();
            let public = [
                Attribute::Token(true),
                Attribute::Private(false),
                Attribute::Verify(true),
                Attribute::EcParams(ED25519_OID_DER.to_vec()),
                Attribute::Label(name.clone()),
                Attribute::Id(name.clone()),
            ];
            let private = [
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
                Attribute::Sign(true),
                Attribute::Label(name.clone()),
                Attribute::Id(name),
            ];
            let (pub_h, _) =
                s.generate_key_pair(&Mechanism::EccEdwardsKeyPairGen, &public, &private)?;
            read_public(s, pub_h)
        })
    }

    fn find(&self, id: &KeyId) -> Result<Option<PublicKey>, KeyError> {
        let label = id.label();
        self.run("finding a key", |s, cache| {
            match Self::find_private(s, cache, &label)? {
                None => Ok(None),
                Some(_) => Self::public_key(s, &label).map(Some),
            }
        })
    }

    fn sign(&self, id: &KeyId, message: &[u8]) -> Result<Signature, KeyError> {
        let label = id.label();
        let mechanism = Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure));
        self.run("signing", |s, cache| {
            let h = Self::find_private(s, cache, &label)?.ok_or_else(|| {
                Fail::Key(KeyError::NotFound {
                    label: label.clone(),
                    backend: BACKEND,
                })
            })?;
            let sig = s.sign(&mechanism, h, message)?;
            let sig: [u8; 64] = sig
                .as_slice()
                .try_into()
                .map_err(|_| Fail::Key(malformed(format!("signature of {} bytes", sig.len()))))?;
            Ok(Signature(sig))
        })
    }

    fn destroy(&self, id: &KeyId) -> Result<(), KeyError> {
        let label = id.label();
        let result = self.run("destroying a key", |s, cache| {
            cache.remove(&label);
            let private = find_one(s, ObjectClass::PRIVATE_KEY, &label)?;
            let public = find_one(s, ObjectClass::PUBLIC_KEY, &label)?;
            let Some(private) = private else {
                return Err(Fail::Key(KeyError::NotFound {
                    label: label.clone(),
                    backend: BACKEND,
                }));
            };
            s.destroy_object(private)?;
            if let Some(public) = public {
                s.destroy_object(public)?;
            }
            Ok(())
        });
        self.object_epoch.fetch_add(1, Ordering::SeqCst);
        result
    }

    fn keepalive(&self) -> Result<(), KeyError> {
        // Exercises a pooled session, re-opening it if the token dropped it.
        self.run("checking the token", |s, _| {
            s.get_session_info().map(|_| ()).map_err(Fail::from)
        })
    }

    fn describe(&self, id: &KeyId) -> Result<Custody, KeyError> {
        let label = id.label();
        let non_extractable = self.run("describing a key", |s, cache| {
            let h = Self::find_private(s, cache, &label)?.ok_or_else(|| {
                Fail::Key(KeyError::NotFound {
                    label: label.clone(),
                    backend: BACKEND,
                })
            })?;
            let attrs = s.get_attributes(
                h,
                &[
                    AttributeType::NeverExtractable,
                    AttributeType::Extractable,
                    AttributeType::Sensitive,
                ],
            )?;
            Ok(
                bool_attr(&attrs, AttributeType::NeverExtractable) == Some(true)
                    && bool_attr(&attrs, AttributeType::Extractable) == Some(false)
                    && bool_attr(&attrs, AttributeType::Sensitive) == Some(true),
            )
        })?;
        let note = if non_extractable {
            "generated in the PKCS#11 token; sensitive and never extractable: \
             the private key cannot leave the token"
        } else {
            "held in the PKCS#11 token, but the token does not report it as \
             sensitive and never extractable"
        };
        Ok(Custody {
            backend: BACKEND,
            token: self.token_label.clone(),
            non_extractable,
            note: note.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ec_point_forms() {
        let mut der = vec![0x04, 0x20];
        der.extend([9u8; 32]);
        assert_eq!(decode_ec_point(&der).unwrap().0, [9u8; 32]);
        assert_eq!(decode_ec_point(&[9u8; 32]).unwrap().0, [9u8; 32]);
        assert!(decode_ec_point(&[1, 2, 3]).is_err());
    }
}
