//! The YubiHSM 2 backend: Ed25519 keys generated in the device, used through
//! its native protocol (Yubico's PKCS#11 module lacks EdDSA).
//!
//! Real devices are reached through `yubihsm-connector` over HTTP, or over
//! USB directly when sigil-keys is built with the `usb` feature. Tests use
//! the `yubihsm` crate's MockHsm (feature `mockhsm`; it refuses release
//! builds) through [`YubiHsmBackend::with_credentials`].
//!
//! Rate: a YubiHSM 2 signs Ed25519 in about 105 ms, so one device gives
//! about 10 signatures per second, whatever the host does. Spread chains
//! over several devices, or keep it for low-rate keys (roots, rotation
//! endorsements).
//!
//! Sessions: the device closes a session after 30 s idle and holds at most
//! 16. The `yubihsm::Client` keeps one encrypted session and, with reconnect
//! enabled, opens a new one on the next command when its own idle clock says
//! the old one expired or after a connector or crypto error aborted it. It
//! does not retry the failing command, and a session the device dropped
//! early (an `InvalidSession` answer) is not aborted by the client; so this
//! backend replaces the client with a fresh one on such errors and retries
//! once, then reports [`KeyError::Unavailable`].
//!
//! Keys: one asymmetric object per [`KeyId`], labelled with
//! [`KeyId::label`] (labels longer than the device's 40 bytes keep their
//! first 27 bytes and a hash of the whole), capability `sign-eddsa` only
//! (never `exportable-under-wrap`), in the configured domain. Object ids are
//! the lowest free ones; two processes generating on one device at the same
//! moment could pick the same id, within a process generation is serialised.

mod config;

use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Mutex, RwLock};

use sha2::{Digest, Sha256};
use yubihsm::asymmetric::Algorithm as AsymAlg;
use yubihsm::object::{Filter, Label, Type};
use yubihsm::{Capability, Client, Connector, Credentials, Domain};

use crate::{Backend, Custody, KeyError, KeyId, PublicKey, SecretSource, Signature};

const BACKEND: &str = "yubihsm";
/// Longest object label on a YubiHSM 2.
const LABEL_SIZE: usize = 40;

/// How to reach the device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum YubiHsmConnection {
    /// `yubihsm-connector` over HTTP.
    Http {
        /// Connector host (default `127.0.0.1`).
        addr: String,
        /// Connector port (default 12345).
        port: u16,
        /// Connect, read and write timeout in milliseconds.
        timeout_ms: u64,
    },
    /// Direct USB (feature `yubihsm-usb`); `serial` picks one of several devices.
    #[cfg(feature = "yubihsm-usb")]
    Usb {
        /// Device serial number, if more than one is attached.
        serial: Option<String>,
    },
}

/// Device, credentials and domain. Holds no secret: the password is read
/// from its source when the backend opens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct YubiHsmConfig {
    /// How to reach the device.
    pub connection: YubiHsmConnection,
    /// Object id of the authentication key to open sessions with.
    pub auth_key_id: u16,
    /// Where that authentication key's password comes from.
    pub password: SecretSource,
    /// Domain (1 to 16) new keys are created in.
    pub domain: u8,
}

/// Ed25519 keys in a YubiHSM 2.
pub struct YubiHsmBackend {
    client: RwLock<Client>,
    connector: Connector,
    // Derived from the password; its key bytes zeroize on drop.
    credentials: Credentials,
    domain: Domain,
    token: String,
    generating: Mutex<()>,
}

impl fmt::Debug for YubiHsmBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("YubiHsmBackend")
            .field("token", &self.token)
            .field("domain", &self.domain)
            .finish_non_exhaustive()
    }
}

impl YubiHsmBackend {
    /// Connects to the configured device, reading the password from its
    /// source.
    pub fn open(cfg: &YubiHsmConfig) -> Result<Self, KeyError> {
        let connector = match &cfg.connection {
            YubiHsmConnection::Http {
                addr,
                port,
                timeout_ms,
            } => Connector::http(&yubihsm::HttpConfig {
                addr: addr.clone(),
                port: *port,
                timeout_ms: *timeout_ms,
            }),
            #[cfg(feature = "yubihsm-usb")]
            YubiHsmConnection::Usb { serial } => {
                let serial = serial
                    .as_deref()
                    .map(|s| {
                        s.parse()
                            .map_err(|_| config(format!("{s:?} is not a YubiHSM serial number")))
                    })
                    .transpose()?;
                Connector::usb(&yubihsm::UsbConfig {
                    serial,
                    timeout_ms: yubihsm::UsbConfig::DEFAULT_TIMEOUT_MILLIS,
                })
            }
        };
        let password = cfg.password.read(BACKEND)?;
        let credentials = Credentials::from_password(cfg.auth_key_id, password.as_bytes());
        Self::with_credentials(connector, credentials, cfg.domain)
    }

    /// Uses an existing connector (for example `Connector::mockhsm()` in
    /// tests; clones of one connector share the device) with the given
    /// credentials. `domain` is 1 to 16.
    pub fn with_credentials(
        connector: Connector,
        credentials: Credentials,
        domain: u8,
    ) -> Result<Self, KeyError> {
        let domain = Domain::at(usize::from(domain))
            .ok()
            .ok_or_else(|| config(format!("domain must be 1 to 16, not {domain}")))?;
        let auth_key_id = credentials.authentication_key_id;
        let client = Client::open(connector.clone(), credentials.clone(), true)
            .map_err(|e| open_error(auth_key_id, &e))?;
        let info = client
            .device_info()
            .map_err(|e| hsm_err("reading device info", &e))?;
        Ok(YubiHsmBackend {
            client: RwLock::new(client),
            connector,
            credentials,
            domain,
            token: format!("YubiHSM 2 serial {}", info.serial_number),
            generating: Mutex::new(()),
        })
    }

    /// Runs `op` with the client; on a lost session replaces the client
    /// with a fresh one and retries once.
    fn run<T>(&self, what: &str, op: impl Fn(&Client) -> Result<T, Fail>) -> Result<T, KeyError> {
        let client = self.client.read().map_err(poisoned)?.clone();
        let err = match op(&client) {
            Ok(v) => return Ok(v),
            Err(Fail::Key(e)) => return Err(e),
            Err(Fail::Hsm(e)) if !recoverable(&e) => return Err(hsm_err(what, &e)),
            Err(Fail::Hsm(e)) => e,
        };
        let fresh =
            Client::open(self.connector.clone(), self.credentials.clone(), true).map_err(|e| {
                unavailable(format!(
                    "{what}: {} and reconnecting failed: {}",
                    short(&err),
                    short(&e)
                ))
            })?;
        *self.client.write().map_err(poisoned)? = fresh.clone();
        match op(&fresh) {
            Ok(v) => Ok(v),
            Err(Fail::Key(e)) => Err(e),
            Err(Fail::Hsm(e)) => Err(unavailable(format!(
                "{what} failed again after reconnecting: {}",
                short(&e)
            ))),
        }
    }

    /// Finds the object id of `id`'s key.
    fn find_object(client: &Client, id: &KeyId) -> Result<Option<u16>, Fail> {
        let label = hsm_label(id);
        let wanted = Label::from(label.as_str());
        let entries =
            client.list_objects(&[Filter::Type(Type::AsymmetricKey), Filter::Label(wanted)])?;
        let mut found = Vec::new();
        for entry in entries {
            let info = client.get_object_info(entry.object_id, Type::AsymmetricKey)?;
            if info.label.to_string() == label && info.algorithm == AsymAlg::Ed25519.into() {
                found.push(info.object_id);
            }
        }
        match found.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(*one)),
            more => Err(Fail::Key(config(format!(
                "{} Ed25519 keys are labelled {label} (ids {more:?}); remove the duplicates",
                more.len()
            )))),
        }
    }

    fn public_key(client: &Client, object_id: u16) -> Result<PublicKey, Fail> {
        let pk = client.get_public_key(object_id)?;
        let bytes: [u8; 32] = pk.bytes.as_slice().try_into().map_err(|_| {
            Fail::Key(KeyError::Malformed {
                backend: BACKEND,
                reason: format!("public key of {} bytes", pk.bytes.len()),
            })
        })?;
        Ok(PublicKey(bytes))
    }

    fn must_find(client: &Client, id: &KeyId) -> Result<u16, Fail> {
        Self::find_object(client, id)?.ok_or_else(|| {
            Fail::Key(KeyError::NotFound {
                label: hsm_label(id),
                backend: BACKEND,
            })
        })
    }
}

impl Backend for YubiHsmBackend {
    fn generate(&self, id: &KeyId) -> Result<PublicKey, KeyError> {
        let _one_at_a_time = self.generating.lock().map_err(poisoned)?;
        let label = hsm_label(id);
        self.run("generating a key", |client| {
            if Self::find_object(client, id)?.is_some() {
                return Err(Fail::Key(KeyError::AlreadyExists {
                    label: label.clone(),
                    backend: BACKEND,
                }));
            }
            let used: BTreeSet<u16> = client
                .list_objects(&[Filter::Type(Type::AsymmetricKey)])?
                .into_iter()
                .map(|e| e.object_id)
                .collect();
            let object_id = (1..=0xfffe)
                .find(|i| !used.contains(i))
                .ok_or_else(|| Fail::Key(config("no free object id left".into())))?;
            let object_id = client.generate_asymmetric_key(
                object_id,
                Label::from(label.as_str()),
                self.domain,
                Capability::SIGN_EDDSA,
                AsymAlg::Ed25519,
            )?;
            Self::public_key(client, object_id)
        })
    }

    fn find(&self, id: &KeyId) -> Result<Option<PublicKey>, KeyError> {
        self.run("finding a key", |client| {
            match Self::find_object(client, id)? {
                None => Ok(None),
                Some(object_id) => Self::public_key(client, object_id).map(Some),
            }
        })
    }

    fn sign(&self, id: &KeyId, message: &[u8]) -> Result<Signature, KeyError> {
        self.run("signing", |client| {
            let object_id = Self::must_find(client, id)?;
            let sig = client.sign_ed25519(object_id, message)?;
            Ok(Signature(sig.to_bytes()))
        })
    }

    fn destroy(&self, id: &KeyId) -> Result<(), KeyError> {
        self.run("destroying a key", |client| {
            let object_id = Self::must_find(client, id)?;
            client.delete_object(object_id, Type::AsymmetricKey)?;
            Ok(())
        })
    }

    fn keepalive(&self) -> Result<(), KeyError> {
        self.run("keepalive", |c| {
            c.echo(b"sigil".to_vec()).map(|_| ()).map_err(Fail::from)
        })
    }

    fn describe(&self, id: &KeyId) -> Result<Custody, KeyError> {
        let capabilities = self.run("describing a key", |client| {
            let object_id = Self::must_find(client, id)?;
            Ok(client
                .get_object_info(object_id, Type::AsymmetricKey)?
                .capabilities)
        })?;
        let non_extractable = !capabilities.contains(Capability::EXPORTABLE_UNDER_WRAP);
        let note = if non_extractable {
            "generated in the YubiHSM 2 without the exportable-under-wrap \
             capability: the private key cannot leave the device"
        } else {
            "held in the YubiHSM 2, but exportable under wrap: whoever holds a \
             wrap key can export it"
        };
        Ok(Custody {
            backend: BACKEND,
            token: self.token.clone(),
            non_extractable,
            note: note.into(),
        })
    }
}

/// The device label for `id`: its [`KeyId::label`] if it fits in 40 bytes,
/// otherwise its first 27 bytes, `~`, and 12 hex digits of its SHA-256.
fn hsm_label(id: &KeyId) -> String {
    let full = id.label();
    if full.len() <= LABEL_SIZE {
        return full;
    }
    let digest = Sha256::digest(full.as_bytes());
    // KeyId labels are ASCII, so any byte index is a char boundary.
    format!("{}~{}", &full[..27], hex::encode(&digest[..6]))
}

enum Fail {
    Hsm(yubihsm::client::Error),
    Key(KeyError),
}

impl From<yubihsm::client::Error> for Fail {
    fn from(e: yubihsm::client::Error) -> Self {
        Fail::Hsm(e)
    }
}

fn recoverable(e: &yubihsm::client::Error) -> bool {
    use yubihsm::client::ErrorKind as K;
    use yubihsm::device::ErrorKind as D;
    match e.kind() {
        K::ClosedSessionError | K::ConnectorError | K::CreateFailed | K::ResponseError => true,
        K::ProtocolError => true,
        K::DeviceError => matches!(
            e.device_error(),
            Some(D::InvalidSession | D::SessionFailed | D::SessionsFull)
        ),
        _ => false,
    }
}

/// The error kind and its cause, without the crate's debug details.
fn short(e: &yubihsm::client::Error) -> String {
    match e.device_error() {
        Some(d) => format!("{} ({d:?})", e.kind()),
        None => {
            let cause = std::error::Error::source(e)
                .map(|s| format!(": {s}"))
                .unwrap_or_default();
            format!("{}{cause}", e.kind())
        }
    }
}

fn open_error(auth_key_id: u16, e: &yubihsm::client::Error) -> KeyError {
    use yubihsm::client::ErrorKind as K;
    match e.kind() {
        K::AuthenticationError => config(format!(
            "authentication with auth key {auth_key_id} failed: wrong password or key id"
        )),
        _ => unavailable(format!("cannot open a session: {}", short(e))),
    }
}

fn hsm_err(what: &str, e: &yubihsm::client::Error) -> KeyError {
    use yubihsm::client::ErrorKind as K;
    use yubihsm::device::ErrorKind as D;
    let reason = format!("{what}: {}", short(e));
    match (e.kind(), e.device_error()) {
        (K::AuthenticationError, _) => config(reason),
        (_, Some(D::InsufficientPermissions | D::InvalidData | D::WrongLength)) => config(reason),
        _ => unavailable(reason),
    }
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

fn poisoned<T>(_: T) -> KeyError {
    unavailable("client lock poisoned by a panic".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_labels_fit_the_device_and_stay_distinct() {
        let short = KeyId::new("mediator", 3).unwrap();
        assert_eq!(hsm_label(&short), "sigil.mediator.v3");
        let a = KeyId::new(&"a".repeat(48), 1).unwrap();
        let b = KeyId::new(&"a".repeat(48), 2).unwrap();
        assert_eq!(hsm_label(&a).len(), LABEL_SIZE);
        assert_ne!(hsm_label(&a), hsm_label(&b));
    }
}
