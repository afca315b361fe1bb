//! The TPM 2.0 backend (feature `tpm`, on by default; it links the system
//! tpm2-tss libraries, so building needs `libtss2-dev` and `pkg-config`, and
//! running needs the `libtss2-esys` and TCTI libraries).
//!
//! TPMs do not implement Ed25519. So this backend is not hardware signing:
//! the 32-byte Ed25519 seed is made from TPM2_GetRandom XOR the OS random
//! generator, and sealed by the TPM as a KeyedHash data object (fixedTPM,
//! fixedParent, userWithAuth, noDA) under a P-256 storage primary key of the
//! owner hierarchy. The primary is recreated from a fixed template for every
//! use, so it needs no persistent handle and comes back after a restart; it
//! depends on the TPM's owner seed, so a blob only ever opens on the TPM
//! (and owner) that sealed it. Only the sealed blob (the object's public and
//! TPM-encrypted private parts) is written to disk, one file of mode 0600 per
//! key. The seed is unsealed once per key load into zeroizing memory and the
//! signing key is kept there while the daemon runs: at rest it is bound to
//! the TPM, in use it is as exposed as any process memory.
//!
//! TPM2_Create and TPM2_Unseal run in an HMAC session salted with the
//! primary key and with parameter encryption both ways (AES-128-CFB), so the
//! seed never crosses the TPM interface in clear. An optional auth value
//! (SHA-256 of a configured secret) protects the sealed objects.
//!
//! A TPM connection is opened for each generate or key load and closed
//! after: swtpm's socket serves one client at a time, a TPM without a
//! resource manager has only a few transient object slots, and keys are
//! loaded once anyway. Every object and session is flushed before closing.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use ed25519_dalek::SigningKey;
use sha2::{Digest as _, Sha256};
use tss_esapi::attributes::{ObjectAttributesBuilder, SessionAttributesBuilder};
use tss_esapi::constants::response_code::Tss2ResponseCodeKind as Rc;
use tss_esapi::constants::SessionType;
use tss_esapi::handles::{KeyHandle, ObjectHandle, SessionHandle};
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, PublicAlgorithm};
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::interface_types::resource_handles::Hierarchy;
use tss_esapi::structures::{
    Auth, EccPoint, KeyedHashScheme, Private, Public, PublicBuilder, PublicEccParametersBuilder,
    PublicKeyedHashParameters, SensitiveData, SymmetricDefinition, SymmetricDefinitionObject,
};
use tss_esapi::tcti_ldr::TctiNameConf;
use tss_esapi::traits::{Marshall, UnMarshall};
use tss_esapi::Context;
use zeroize::Zeroizing;

use crate::seeds::{Seed, SeedFiles};
use crate::{Backend, Custody, KeyError, KeyId, PublicKey, SecretSource, Signature};

const BACKEND: &str = "tpm";
const MAGIC: &[u8; 8] = b"SIGILTP1";

/// Which TPM, where the sealed blobs live, and the optional auth value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TpmConfig {
    /// TCTI: `device:/dev/tpmrm0` for a real TPM through the kernel's
    /// resource manager, `swtpm:host=127.0.0.1,port=2321` for swtpm (the
    /// `mssim:` form does not work against swtpm).
    pub tcti: String,
    /// Directory of sealed blobs (created mode 0700).
    pub dir: PathBuf,
    /// Secret whose SHA-256 is the sealed objects' auth value; `None` for
    /// an empty auth value (the blob then opens on its TPM for anyone who
    /// can reach the TPM and read the file).
    pub auth: Option<SecretSource>,
}

/// Ed25519 seeds sealed by a TPM 2.0.
pub struct TpmBackend {
    tcti: TctiNameConf,
    tcti_text: String,
    auth: Option<Zeroizing<Vec<u8>>>,
    // Serialises TPM connections of this backend (a `Context` is `&mut`).
    tpm: Mutex<()>,
    blobs: SeedFiles,
}

impl std::fmt::Debug for TpmBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TpmBackend")
            .field("tcti", &self.tcti_text)
            .field("dir", &self.blobs.dir())
            .finish_non_exhaustive()
    }
}

impl TpmBackend {
    /// Checks that the TPM answers (by creating the storage primary once)
    /// and opens (creating, mode 0700) the blob directory.
    pub fn open(cfg: &TpmConfig) -> Result<Self, KeyError> {
        let tcti = TctiNameConf::from_str(&cfg.tcti)
            .map_err(|e| config(format!("bad TCTI {:?}: {e}", cfg.tcti)))?;
        let blobs = SeedFiles::open(BACKEND, &cfg.dir, "tpm")?;
        let auth = match &cfg.auth {
            None => None,
            Some(src) => {
                let secret = src.read(BACKEND)?;
                Some(Zeroizing::new(Sha256::digest(secret.as_bytes()).to_vec()))
            }
        };
        let backend = TpmBackend {
            tcti,
            tcti_text: cfg.tcti.clone(),
            auth,
            tpm: Mutex::new(()),
            blobs,
        };
        backend.with_tpm("creating the storage primary key", |_, _| Ok(()))?;
        Ok(backend)
    }

    fn auth_value(&self) -> Result<Option<Auth>, KeyError> {
        self.auth
            .as_ref()
            .map(|a| Auth::try_from(a.to_vec()))
            .transpose()
            .map_err(|e| config(format!("auth value: {e}")))
    }

    /// Connects, creates the primary and a salted, encrypting session, runs
    /// `op`, then flushes both and disconnects.
    fn with_tpm<T>(
        &self,
        what: &str,
        op: impl FnOnce(&mut Context, KeyHandle) -> Result<T, KeyError>,
    ) -> Result<T, KeyError> {
        let _one_at_a_time = self
            .tpm
            .lock()
            .map_err(|_| unavailable("TPM lock poisoned".into()))?;
        let mut ctx = Context::new(self.tcti.clone()).map_err(|e| {
            unavailable(format!(
                "cannot connect to the TPM at {}: {e}",
                self.tcti_text
            ))
        })?;
        let primary = ctx
            .execute_with_nullauth_session(|c| {
                c.create_primary(Hierarchy::Owner, storage_primary()?, None, None, None, None)
            })
            .map_err(|e| tss_err(what, e))?
            .key_handle;
        let result = (|| {
            let session = ctx
                .start_auth_session(
                    Some(primary),
                    None,
                    None,
                    SessionType::Hmac,
                    SymmetricDefinition::AES_128_CFB,
                    HashingAlgorithm::Sha256,
                )
                .map_err(|e| tss_err("starting a salted session", e))?
                .ok_or_else(|| unavailable("the TPM returned no session".into()))?;
            let (attrs, mask) = SessionAttributesBuilder::new()
                .with_decrypt(true)
                .with_encrypt(true)
                .with_continue_session(true)
                .build();
            let r = ctx
                .tr_sess_set_attributes(session, attrs, mask)
                .map_err(|e| tss_err("setting session attributes", e))
                .and_then(|()| ctx.execute_with_session(Some(session), |c| op(c, primary)));
            let _ = ctx.flush_context(SessionHandle::from(session).into());
            r
        })();
        let _ = ctx.flush_context(primary.into());
        result
    }

    fn load(&self, id: &KeyId) -> Result<Option<Arc<SigningKey>>, KeyError> {
        self.blobs
            .load(id, |path, blob, _mode| self.unseal(path, &blob))
    }

    /// Unseals a blob in the TPM that sealed it.
    fn unseal(&self, path: &Path, blob: &[u8]) -> Result<Seed, KeyError> {
        let (public, private) = parse_blob(blob).map_err(|reason| KeyError::Malformed {
            backend: BACKEND,
            reason: format!("{}: {reason}", path.display()),
        })?;
        let auth = self.auth_value()?;
        let seed = self.with_tpm("unsealing", |ctx, primary| {
            let handle = ctx
                .load(primary, private, public)
                .map_err(|e| match kind(&e) {
                    Some(Rc::Integrity | Rc::Value | Rc::Size | Rc::Key | Rc::Handle) => {
                        config(format!(
                            "{} was sealed by another TPM, or this TPM's owner seed changed \
                     (TPM2_Load: {e}); the key cannot be recovered here",
                            path.display()
                        ))
                    }
                    _ => tss_err("loading the sealed blob", e),
                })?;
            let unsealed = (|| {
                if let Some(a) = auth {
                    ctx.tr_set_auth(handle.into(), a)
                        .map_err(|e| tss_err("setting the auth value", e))?;
                }
                ctx.unseal(handle.into()).map_err(|e| match kind(&e) {
                    Some(Rc::AuthFail | Rc::BadAuth) => config(format!(
                        "wrong auth value for {} (TPM2_Unseal: {e})",
                        path.display()
                    )),
                    _ => tss_err("unsealing", e),
                })
            })();
            let _ = ctx.flush_context(ObjectHandle::from(handle));
            unsealed
        })?;
        let seed: Zeroizing<[u8; 32]> =
            Zeroizing::new(seed.value().try_into().map_err(|_| KeyError::Malformed {
                backend: BACKEND,
                reason: format!("{} does not seal a 32-byte seed", path.display()),
            })?);
        Ok(seed)
    }
}

impl Backend for TpmBackend {
    fn signs_in_process(&self) -> bool {
        true
    }

    fn generate(&self, id: &KeyId) -> Result<PublicKey, KeyError> {
        self.blobs.generate(id, || {
            let auth = self.auth_value()?;
            let sealed = self.with_tpm("sealing a new seed", |ctx, primary| {
                let mut seed = Zeroizing::new([0u8; 32]);
                getrandom::getrandom(&mut seed[..])
                    .map_err(|e| unavailable(format!("no randomness from the OS: {e}")))?;
                let tpm_random = ctx
                    .get_random(32)
                    .map_err(|e| tss_err("TPM2_GetRandom", e))?;
                if tpm_random.value().len() != 32 {
                    return Err(unavailable("TPM2_GetRandom returned too few bytes".into()));
                }
                for (s, t) in seed.iter_mut().zip(tpm_random.value()) {
                    *s ^= t;
                }
                let data = SensitiveData::try_from(seed.to_vec())
                    .map_err(|e| tss_err("wrapping the seed", e))?;
                let created = ctx
                    .create(primary, sealed_object()?, auth, Some(data), None, None)
                    .map_err(|e| tss_err("TPM2_Create", e))?;
                let key = SigningKey::from_bytes(&seed);
                Ok((created.out_public, created.out_private, key))
            });
            let (public, private, key) = sealed?;
            Ok((Zeroizing::new(encode_blob(&public, &private)?), key))
        })
    }

    fn find(&self, id: &KeyId) -> Result<Option<PublicKey>, KeyError> {
        Ok(self.load(id)?.map(|k| SeedFiles::public(&k)))
    }

    fn sign(&self, id: &KeyId, message: &[u8]) -> Result<Signature, KeyError> {
        let key = self.blobs.require(self.load(id)?, id)?;
        Ok(SeedFiles::sign(&key, message))
    }

    fn destroy(&self, id: &KeyId) -> Result<(), KeyError> {
        self.blobs.destroy(id)
    }

    fn keepalive(&self) -> Result<(), KeyError> {
        // Signing needs no TPM once a seed is unsealed; this reports whether
        // the TPM could unseal or seal now.
        self.with_tpm("checking the TPM", |_, _| Ok(()))
    }

    fn describe(&self, id: &KeyId) -> Result<Custody, KeyError> {
        self.blobs.require(self.load(id)?, id)?;
        Ok(Custody {
            backend: BACKEND,
            token: format!(
                "TPM at {}, blobs in {}",
                self.tcti_text,
                self.blobs.dir().display()
            ),
            non_extractable: false,
            note: "TPMs cannot sign Ed25519: the seed is sealed to this TPM at rest; \
                   it is in process memory while the daemon runs"
                .into(),
        })
    }
}

/// The owner-hierarchy storage primary: P-256, restricted decryption,
/// AES-128-CFB for its children. Same template, same key, on the same TPM.
fn storage_primary() -> tss_esapi::Result<Public> {
    let attrs = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_no_da(true)
        .with_restricted(true)
        .with_decrypt(true)
        .build()?;
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::Ecc)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attrs)
        .with_ecc_parameters(
            PublicEccParametersBuilder::new_restricted_decryption_key(
                SymmetricDefinitionObject::AES_128_CFB,
                EccCurve::NistP256,
            )
            .build()?,
        )
        .with_ecc_unique_identifier(EccPoint::default())
        .build()
}

/// A sealed data object: no sign or decrypt use, only TPM2_Unseal.
fn sealed_object() -> Result<Public, KeyError> {
    let attrs = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_user_with_auth(true)
        .with_no_da(true)
        .build()
        .map_err(|e| tss_err("sealed object attributes", e))?;
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::KeyedHash)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attrs)
        .with_keyed_hash_parameters(PublicKeyedHashParameters::new(KeyedHashScheme::Null))
        .with_keyed_hash_unique_identifier(Default::default())
        .build()
        .map_err(|e| tss_err("sealed object template", e))
}

/// `SIGILTP1`, then the marshalled TPMT_PUBLIC and the TPM2B_PRIVATE
/// contents, each behind a big-endian u16 length.
fn encode_blob(public: &Public, private: &Private) -> Result<Vec<u8>, KeyError> {
    let public = public
        .marshall()
        .map_err(|e| tss_err("marshalling the public part", e))?;
    let mut out = MAGIC.to_vec();
    for part in [public.as_slice(), private.value()] {
        let len = u16::try_from(part.len()).map_err(|_| KeyError::Malformed {
            backend: BACKEND,
            reason: "sealed object part longer than 64 KiB".into(),
        })?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(part);
    }
    Ok(out)
}

fn parse_blob(blob: &[u8]) -> Result<(Public, Private), String> {
    let rest = blob
        .strip_prefix(MAGIC.as_slice())
        .ok_or("not a sigil TPM blob")?;
    let mut parts = Vec::new();
    let mut rest = rest;
    for _ in 0..2 {
        let (len, tail) = rest.split_first_chunk::<2>().ok_or("truncated")?;
        let len = usize::from(u16::from_be_bytes(*len));
        if tail.len() < len {
            return Err("truncated".into());
        }
        parts.push(&tail[..len]);
        rest = &tail[len..];
    }
    if !rest.is_empty() {
        return Err("trailing bytes".into());
    }
    let public = Public::unmarshall(parts[0]).map_err(|e| format!("public part: {e}"))?;
    let private = Private::try_from(parts[1].to_vec()).map_err(|e| format!("private part: {e}"))?;
    Ok((public, private))
}

fn kind(e: &tss_esapi::Error) -> Option<Rc> {
    match e {
        tss_esapi::Error::Tss2Error(rc) => rc.kind(),
        _ => None,
    }
}

fn tss_err(what: &str, e: tss_esapi::Error) -> KeyError {
    unavailable(format!("{what}: {e}"))
}

fn config(reason: String) -> KeyError {
    KeyError::Config {
        backend: BACKEND,
        reason,
    }
}

fn unavailable(reason: String) -> KeyError {
    KeyError::Unavailable {
        backend: BACKEND,
        reason,
    }
}
