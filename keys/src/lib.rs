//! Key custody for sigil.
//!
//! One trait, [`Backend`], is the seam between the daemon and wherever a
//! mediator key lives: a software seed file, a PKCS#11 token, a YubiHSM 2 or
//! a TPM. This crate knows nothing of receipts or chains: it generates keys,
//! finds them again, signs the bytes it is handed and says how it holds them.

#![forbid(unsafe_op_in_unsafe_fn)]

mod error;
mod id;
#[cfg(feature = "pkcs11")]
pub mod pkcs11;
mod secret;
mod seeds;
pub mod software;
#[cfg(feature = "tpm")]
pub mod tpm;
#[cfg(feature = "yubihsm")]
pub mod yubihsm;

pub use error::KeyError;
pub use id::{KeyId, PublicKey, Signature};
pub use secret::SecretSource;

/// How a backend holds a key, for the key directory and for auditors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Custody {
    /// Backend kind: `software`, `pkcs11`, `yubihsm` or `tpm`.
    pub backend: &'static str,
    /// Which token or store holds the key (token label, device serial,
    /// TPM, or the seed directory), never a secret.
    pub token: String,
    /// True when the private key can never leave the device in clear.
    pub non_extractable: bool,
    /// One sentence on what this custody does and does not protect.
    pub note: String,
}

/// A store of Ed25519 signing keys.
///
/// Contract:
/// - [`Backend::sign`] computes PureEdDSA (RFC 8032 Ed25519: no pre-hash, no
///   context string) over exactly `message`. The backend never hashes. The
///   caller decides what the message is: for a Pipelock receipt it is the
///   32-byte SHA-256 digest of the canonical action record, for a rotation
///   endorsement the 32-byte digest of its domain-separated body.
/// - Keys are generated inside the backend. Only public keys ever leave it;
///   no method returns or logs private material, PINs or passwords.
/// - A key is addressed by [`KeyId`] (name and version); the backend maps it
///   to its own object names (labels, object ids, files) and finds it again
///   after a restart.
/// - Methods may block on device round trips: call them from a thread that
///   may block (`spawn_blocking`), never from an async executor thread.
/// - Transient device failures (lost session, removed token) surface as
///   [`KeyError::Unavailable`] after the backend has tried once to recover;
///   the caller must then write nothing that depends on the signature.
pub trait Backend: Send + Sync {
    /// Creates a new key pair for `id` inside the backend and returns its
    /// public key. Fails with [`KeyError::AlreadyExists`] if `id` is taken.
    fn generate(&self, id: &KeyId) -> Result<PublicKey, KeyError>;

    /// Finds the key for `id`, returning its public key, or `None`.
    fn find(&self, id: &KeyId) -> Result<Option<PublicKey>, KeyError>;

    /// Signs `message` with the private key of `id` (see the trait contract).
    fn sign(&self, id: &KeyId, message: &[u8]) -> Result<Signature, KeyError>;

    /// Destroys the private key of `id`. Its public key stays wherever the
    /// caller recorded it; only the ability to sign is gone.
    fn destroy(&self, id: &KeyId) -> Result<(), KeyError>;

    /// Describes how `id` is held.
    fn describe(&self, id: &KeyId) -> Result<Custody, KeyError>;

    /// Keeps device sessions from idling out (a YubiHSM 2 drops a session
    /// after 30 s); the daemon calls it every few seconds when idle. Also a
    /// cheap liveness probe. The default does nothing. A decorator (a
    /// deadline, metrics) must forward this and [`Backend::signs_in_process`]
    /// to what it wraps, or it hides the token's health and the
    /// sign-then-verify rule.
    fn keepalive(&self) -> Result<(), KeyError> {
        Ok(())
    }

    /// True when signatures are computed in this process with
    /// ed25519-dalek (software, TPM-sealed seeds). The daemon checks every
    /// other backend's signature before anything that depends on it becomes
    /// durable: a device that returns a wrong signature must fail the
    /// append, not the verifier later. The default is false.
    fn signs_in_process(&self) -> bool {
        false
    }
}
