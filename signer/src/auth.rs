//! Who is calling, and what they may do.
//!
//! With TLS configured, callers present a client certificate issued by the
//! configured client CA; its identity (a SAN URI, else a SAN DNS name) maps
//! to roles in the configuration. Without TLS the daemon listens on
//! loopback only and every local caller has every role.

use serde::Deserialize;
use std::path::PathBuf;

use tonic::transport::CertificateDer;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::Error;

/// A role of an identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Appends to its chains and signs digests with its keys.
    Producer,
    /// Manages keys (KeyAdmin).
    Admin,
    /// Reads the directory and health.
    Reader,
}

/// An identity and its grants, from the configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    /// A SAN URI (e.g. `spiffe://corp/proxy`) or DNS name of the client
    /// certificate.
    pub id: String,
    /// Its roles.
    pub roles: Vec<Role>,
    /// Chains a producer may append to: names, or prefixes ending in `*`.
    #[serde(default)]
    pub chains: Vec<String>,
    /// Key names a producer may sign digests with.
    #[serde(default)]
    pub keys: Vec<String>,
}

/// The caller of one request, as the front stage resolved it.
#[derive(Clone, Debug)]
pub struct Caller {
    /// Identity: `local` without TLS, the certificate's identity with it,
    /// `uid:N` on the admin socket.
    pub id: String,
    grants: Grants,
}

/// What a caller may do, by how it reached the daemon.
#[derive(Clone, Debug)]
enum Grants {
    /// A loopback caller without TLS: every role but key administration,
    /// which is on the admin socket at this path (every local process can
    /// reach loopback).
    Loopback(PathBuf),
    /// A client certificate's identity and its grants.
    Identity(Identity),
    /// A peer of the admin socket: an administrator when its uid is listed
    /// (`None`: the kernel gave no credentials).
    SocketPeer { uid: Option<u32>, allowed: bool },
}

impl Caller {
    /// A local caller without TLS: every role, keys administered on the
    /// admin socket at `admin_socket`.
    pub fn local(admin_socket: PathBuf) -> Caller {
        Caller {
            id: "local".into(),
            grants: Grants::Loopback(admin_socket),
        }
    }

    /// A peer of the admin socket with uid `uid`; `allowed`: listed among
    /// the daemon's uid, root and `admin_uids`.
    pub fn socket_peer(uid: Option<u32>, allowed: bool) -> Caller {
        Caller {
            id: uid.map_or_else(|| "uid:unknown".into(), |u| format!("uid:{u}")),
            grants: Grants::SocketPeer { uid, allowed },
        }
    }

    /// Requires `role`.
    pub fn require(&self, role: Role, what: &str) -> Result<(), Error> {
        match &self.grants {
            Grants::Identity(g) if g.roles.contains(&role) => Ok(()),
            Grants::Identity(_) => Err(Error::PermissionDenied(format!(
                "{} may not {what} (needs role {role:?})",
                self.id
            ))),
            Grants::Loopback(_) if role != Role::Admin => Ok(()),
            Grants::Loopback(path) => Err(Error::PermissionDenied(format!(
                "without TLS, keys are administered on the admin socket only: sigil keys \
                 --admin-socket {}",
                path.display()
            ))),
            Grants::SocketPeer { uid: None, .. } => Err(Error::Unauthenticated(
                "the peer's credentials are unknown: connect through the admin Unix socket \
                 (sigil keys --admin-socket PATH)"
                    .into(),
            )),
            Grants::SocketPeer { allowed: true, .. } if role == Role::Admin => Ok(()),
            Grants::SocketPeer { uid: Some(uid), .. } => Err(Error::PermissionDenied(format!(
                "uid {uid} may not {what} (allowed: the daemon's uid, root and admin_uids)"
            ))),
        }
    }

    /// May this caller append to `chain`?
    pub fn may_append(&self, chain: &str) -> Result<(), Error> {
        self.require(Role::Producer, "append")?;
        let Grants::Identity(g) = &self.grants else {
            return Ok(());
        };
        let granted = g.chains.iter().any(|c| match c.strip_suffix('*') {
            Some(prefix) => chain.starts_with(prefix),
            None => c == chain,
        });
        if granted {
            Ok(())
        } else {
            Err(Error::PermissionDenied(format!(
                "{} may not append to chain {chain:?}",
                self.id
            )))
        }
    }

    /// May this caller sign digests with key `key`?
    pub fn may_sign(&self, key: &str) -> Result<(), Error> {
        self.require(Role::Producer, "sign digests")?;
        match &self.grants {
            Grants::Identity(g) if !g.keys.iter().any(|k| k == key) => Err(
                Error::PermissionDenied(format!("{} may not sign with key {key:?}", self.id)),
            ),
            _ => Ok(()),
        }
    }
}

/// Maps a TCP listener's callers to identities.
#[derive(Clone, Debug)]
pub struct Auth {
    tls: bool,
    identities: Vec<Identity>,
    admin_socket: PathBuf,
}

impl Auth {
    /// `tls`: whether client certificates are in use; `admin_socket`: where
    /// keys are administered without TLS.
    pub fn new(tls: bool, identities: Vec<Identity>, admin_socket: PathBuf) -> Self {
        Auth {
            tls,
            identities,
            admin_socket,
        }
    }

    /// The caller presenting `certs` (the peer's chain, leaf first):
    /// UNAUTHENTICATED without a certificate, PERMISSION_DENIED for a
    /// certificate whose identity has no grants.
    pub fn caller(&self, certs: Option<&[CertificateDer<'_>]>) -> Result<Caller, Error> {
        if !self.tls {
            return Ok(Caller::local(self.admin_socket.clone()));
        }
        let leaf = certs
            .and_then(<[_]>::first)
            .ok_or_else(|| Error::Unauthenticated("a client certificate is required".into()))?;
        let (_, cert) = X509Certificate::from_der(leaf.as_ref())
            .map_err(|_| Error::Unauthenticated("the client certificate does not parse".into()))?;
        let mut names = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for n in &san.value.general_names {
                match n {
                    GeneralName::URI(u) => names.insert(0, (*u).to_owned()),
                    GeneralName::DNSName(d) => names.push((*d).to_owned()),
                    _ => {}
                }
            }
        }
        for name in &names {
            if let Some(g) = self.identities.iter().find(|i| &i.id == name) {
                return Ok(Caller {
                    id: name.clone(),
                    grants: Grants::Identity(g.clone()),
                });
            }
        }
        Err(Error::PermissionDenied(format!(
            "certificate identity {} has no grants in the configuration",
            names
                .first()
                .map(String::as_str)
                .unwrap_or("(no SAN URI or DNS name)")
        )))
    }
}
