//! Who is calling, and what they may do.
//!
//! With TLS configured, callers present a client certificate issued by the
//! configured client CA; its identity (a SAN URI, else a SAN DNS name) maps
//! to roles in the configuration. Without TLS the daemon listens on
//! loopback only and every local caller has every role.

use serde::Deserialize;
use tonic::Request;
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

/// The caller of one request.
#[derive(Clone, Debug)]
pub struct Caller {
    /// Identity, or `local` without TLS.
    pub id: String,
    grants: Option<Identity>,
}

impl Caller {
    /// A local caller without TLS: every role.
    pub fn local() -> Caller {
        Caller {
            id: "local".into(),
            grants: None,
        }
    }

    fn has(&self, role: Role) -> bool {
        self.grants.as_ref().is_none_or(|g| g.roles.contains(&role))
    }

    /// Requires `role`.
    pub fn require(&self, role: Role, what: &str) -> Result<(), Error> {
        if self.has(role) {
            return Ok(());
        }
        Err(Error::PermissionDenied(format!(
            "{} may not {what} (needs role {role:?})",
            self.id
        )))
    }

    /// May this caller append to `chain`?
    pub fn may_append(&self, chain: &str) -> Result<(), Error> {
        self.require(Role::Producer, "append")?;
        let Some(g) = &self.grants else {
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
            Some(g) if !g.keys.iter().any(|k| k == key) => Err(Error::PermissionDenied(format!(
                "{} may not sign with key {key:?}",
                self.id
            ))),
            _ => Ok(()),
        }
    }
}

/// Maps requests to callers.
#[derive(Clone, Debug, Default)]
pub struct Auth {
    tls: bool,
    identities: Vec<Identity>,
}

impl Auth {
    /// `tls`: whether client certificates are in use.
    pub fn new(tls: bool, identities: Vec<Identity>) -> Self {
        Auth { tls, identities }
    }

    /// The caller of `req`: UNAUTHENTICATED without a certificate,
    /// PERMISSION_DENIED for a certificate whose identity has no grants.
    pub fn caller<T>(&self, req: &Request<T>) -> Result<Caller, Error> {
        if !self.tls {
            return Ok(Caller::local());
        }
        let certs = req
            .peer_certs()
            .filter(|c| !c.is_empty())
            .ok_or_else(|| Error::Unauthenticated("a client certificate is required".into()))?;
        let (_, cert) = X509Certificate::from_der(certs[0].as_ref())
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
                    grants: Some(g.clone()),
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
