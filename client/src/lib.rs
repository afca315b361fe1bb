//! sigil client library: typed calls for producers and admins, and the
//! offline verifier behind `sigil verify`.

pub mod bench;
pub mod fetch;
pub mod verify;

use sigil_proto::v1::key_admin_client::KeyAdminClient;
use sigil_proto::v1::receipts_client::ReceiptsClient;
use sigil_proto::v1::{
    AppendRequest, AppendResponse, AppendStreamReply, CreateKeyRequest, CreateKeyResponse,
    GetDirectoryRequest, ListKeysRequest, RevokeKeyRequest, RevokeKeyResponse, RotateKeyRequest,
    RotateKeyResponse, SignDigestRequest, SignDigestResponse,
};
use thiserror::Error;
use tokio_stream::Stream;
use tonic::transport::{Channel, Endpoint};

/// Default daemon endpoint.
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:7700";

/// Errors of the client.
#[derive(Debug, Error)]
pub enum ClientError {
    /// The endpoint is not a valid URL.
    #[error("endpoint {0:?} is not a valid URL")]
    Endpoint(String),
    /// Could not connect.
    #[error("cannot connect to {endpoint}: {source}")]
    Connect {
        /// Where.
        endpoint: String,
        /// Why.
        #[source]
        source: tonic::transport::Error,
    },
    /// The daemon refused or failed the call.
    #[error("{}: {}", .0.code(), .0.message())]
    Status(#[from] tonic::Status),
    /// A local input is wrong (file, hex).
    #[error("{0}")]
    Input(String),
    /// A local file could not be read or written.
    #[error("{what}: {source}")]
    Io {
        /// Which file.
        what: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// An HTTP fetch failed.
    #[error("fetching {url}: {reason}")]
    Fetch {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
}

/// A connection to sigild.
#[derive(Clone)]
pub struct Client {
    receipts: ReceiptsClient<Channel>,
    admin: KeyAdminClient<Channel>,
}

/// TLS for the connection: the CA that issued the daemon's certificate,
/// and this client's certificate and key (PEM files).
#[derive(Clone, Debug, Default)]
pub struct ClientTls {
    /// CA of the server certificate.
    pub ca: Option<std::path::PathBuf>,
    /// Client certificate.
    pub cert: Option<std::path::PathBuf>,
    /// Client private key.
    pub key: Option<std::path::PathBuf>,
}

impl ClientTls {
    fn config(&self) -> Result<tonic::transport::ClientTlsConfig, ClientError> {
        let read = |p: &std::path::Path| {
            std::fs::read(p).map_err(|source| ClientError::Io {
                what: format!("reading {}", p.display()),
                source,
            })
        };
        let mut c = tonic::transport::ClientTlsConfig::new();
        if let Some(ca) = &self.ca {
            c = c.ca_certificate(tonic::transport::Certificate::from_pem(read(ca)?));
        }
        match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => {
                c = c.identity(tonic::transport::Identity::from_pem(
                    read(cert)?,
                    read(key)?,
                ));
            }
            (None, None) => {}
            _ => return Err(ClientError::Input("--cert and --key go together".into())),
        }
        Ok(c)
    }
}

impl Client {
    /// Connects to `endpoint`, e.g. `http://127.0.0.1:7700`.
    pub async fn connect(endpoint: &str) -> Result<Self, ClientError> {
        Self::connect_with(endpoint, None).await
    }

    /// Connects to `endpoint` (`https://...` with `tls`).
    pub async fn connect_with(
        endpoint: &str,
        tls: Option<&ClientTls>,
    ) -> Result<Self, ClientError> {
        let mut ep = Endpoint::from_shared(endpoint.to_owned())
            .map_err(|_| ClientError::Endpoint(endpoint.to_owned()))?;
        if let Some(t) = tls {
            ep = ep
                .tls_config(t.config()?)
                .map_err(|source| ClientError::Connect {
                    endpoint: endpoint.to_owned(),
                    source,
                })?;
        }
        let channel = ep.connect().await.map_err(|source| ClientError::Connect {
            endpoint: endpoint.to_owned(),
            source,
        })?;
        Ok(Client {
            receipts: ReceiptsClient::new(channel.clone()),
            admin: KeyAdminClient::new(channel),
        })
    }

    /// Appends one record (JSON object text) to `chain`; returns the durable
    /// receipt.
    pub async fn append(
        &mut self,
        chain: &str,
        record_json: &str,
    ) -> Result<AppendResponse, ClientError> {
        let req = AppendRequest {
            chain: chain.to_owned(),
            record_json: record_json.to_owned(),
            correlation_id: 0,
        };
        Ok(self.receipts.append(req).await?.into_inner())
    }

    /// Opens an append stream: replies come in request order.
    pub async fn append_stream(
        &mut self,
        requests: impl Stream<Item = AppendRequest> + Send + 'static,
    ) -> Result<tonic::Streaming<AppendStreamReply>, ClientError> {
        Ok(self.receipts.append_stream(requests).await?.into_inner())
    }

    /// Signs a 32-byte digest with the active version of `key`.
    pub async fn sign_digest(
        &mut self,
        key: &str,
        digest: &[u8],
    ) -> Result<SignDigestResponse, ClientError> {
        let req = SignDigestRequest {
            key: key.to_owned(),
            digest: digest.to_vec(),
        };
        Ok(self.receipts.sign_digest(req).await?.into_inner())
    }

    /// Creates key name `name`.
    pub async fn create_key(&mut self, name: &str) -> Result<CreateKeyResponse, ClientError> {
        let req = CreateKeyRequest {
            name: name.to_owned(),
        };
        Ok(self.admin.create_key(req).await?.into_inner())
    }

    /// Every key version (the directory JSON).
    pub async fn list_keys(&mut self) -> Result<String, ClientError> {
        Ok(self
            .admin
            .list_keys(ListKeysRequest {})
            .await?
            .into_inner()
            .directory_json)
    }

    /// Rotates key name `name` (empty: the chain key) on every chain.
    pub async fn rotate_key(&mut self, name: &str) -> Result<RotateKeyResponse, ClientError> {
        let req = RotateKeyRequest {
            name: name.to_owned(),
        };
        Ok(self.admin.rotate_key(req).await?.into_inner())
    }

    /// Revokes `name` version `version`.
    pub async fn revoke_key(
        &mut self,
        name: &str,
        version: u32,
        reason: &str,
        compromised_since: &str,
    ) -> Result<RevokeKeyResponse, ClientError> {
        let req = RevokeKeyRequest {
            name: name.to_owned(),
            version,
            reason: reason.to_owned(),
            compromised_since: compromised_since.to_owned(),
        };
        Ok(self.admin.revoke_key(req).await?.into_inner())
    }

    /// The key directory JSON.
    pub async fn directory(&mut self) -> Result<String, ClientError> {
        Ok(self
            .receipts
            .get_directory(GetDirectoryRequest {})
            .await?
            .into_inner()
            .directory_json)
    }
}
