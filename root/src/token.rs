//! An officer's token holding one root key, `sigil.root.v1`.

use std::sync::Arc;

use sigil_keys::pkcs11::{Pkcs11Backend, Pkcs11Config};
use sigil_keys::yubihsm::{YubiHsmBackend, YubiHsmConfig};
use sigil_keys::{Backend, KeyError, KeyId};
use sigil_proto::root::docs::Document;
use sigil_proto::root::{Custody, Signed};

use crate::{custody_of, Error};

/// A root key in an officer's token, opened from its URI: a PKCS#11 token
/// (`pkcs11:token=officer-a?module-path=...&pin-source=prompt`) or a
/// YubiHSM 2 (`yubihsm:?connector=http://127.0.0.1:12345&auth-key=1&password-source=prompt`).
pub struct RootToken {
    backend: Arc<dyn Backend>,
    id: KeyId,
    owner: String,
}

impl RootToken {
    /// Opens the token named by `uri`; `owner` defaults to its label
    /// (`yubihsm` for a YubiHSM 2, whose custody names its serial).
    pub fn open(uri: &str, owner: Option<&str>) -> Result<Self, Error> {
        let (backend, label): (Arc<dyn Backend>, String) = if uri.starts_with("yubihsm:") {
            let b = YubiHsmBackend::open(&YubiHsmConfig::from_uri(uri)?)?;
            (Arc::new(b), "yubihsm".to_owned())
        } else {
            let cfg = Pkcs11Config::from_uri(uri)?;
            (
                Arc::new(Pkcs11Backend::open(&cfg)?),
                cfg.token_label.clone(),
            )
        };
        Ok(RootToken {
            backend,
            id: KeyId::new("root", 1)?,
            owner: owner.map(str::to_owned).unwrap_or(label),
        })
    }

    /// Over any backend (tests, other token kinds).
    pub fn with_backend(backend: Arc<dyn Backend>, owner: &str) -> Result<Self, Error> {
        Ok(RootToken {
            backend,
            id: KeyId::new("root", 1)?,
            owner: owner.to_owned(),
        })
    }

    /// Who holds it.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The root key's public key (hex); it must exist.
    pub fn public_key(&self) -> Result<String, Error> {
        match self.backend.find(&self.id)? {
            Some(pk) => Ok(pk.to_hex()),
            None => Err(Error::Refused(format!(
                "token of {} holds no {}: sigil root init generates it",
                self.owner,
                self.id.label()
            ))),
        }
    }

    /// Generates the root key in the token (or, with `existing`, adopts
    /// the one there); returns its public key and custody. A key that the
    /// token says could ever leave it in clear is refused.
    pub(crate) fn root_key(&self, existing: bool) -> Result<(String, Custody), Error> {
        let pk = match (self.backend.find(&self.id)?, existing) {
            (Some(pk), true) => pk,
            (Some(_), false) => {
                return Err(Error::Refused(format!(
                    "the token of {} already holds {}: pass --existing to adopt it",
                    self.owner,
                    self.id.label()
                )))
            }
            (None, _) => match self.backend.generate(&self.id) {
                Ok(pk) => pk,
                Err(KeyError::AlreadyExists { .. }) => {
                    return Err(Error::Refused(format!(
                        "the token of {} already holds {}",
                        self.owner,
                        self.id.label()
                    )))
                }
                Err(e) => return Err(e.into()),
            },
        };
        let custody = custody_of(self.backend.describe(&self.id)?);
        if !custody.non_extractable {
            return Err(Error::Refused(format!(
                "the root key in the token of {} is extractable: root keys must never leave \
                 their token",
                self.owner
            )));
        }
        Ok((pk.to_hex(), custody))
    }

    /// Signs `doc` in the token, checking the signature before adding it.
    pub fn sign<T>(&self, doc: &mut Signed<T>) -> Result<(), Error>
    where
        T: Document,
    {
        let pk = self.public_key()?;
        let msg = doc.signing_input()?;
        let sig = self.backend.sign(&self.id, &msg)?;
        sigil_proto::root::verify_strict(&pk, &msg, &sigil_proto::sig::encode(&sig.0))?;
        let pk: [u8; 32] = hex::decode(&pk)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| Error::Refused("the token returned a malformed public key".into()))?;
        doc.add_signature(&pk, &sig.0);
        Ok(())
    }
}
