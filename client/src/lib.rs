//! sigil client library: typed calls for producers and admins, and the
//! offline verifier behind `sigil verify`.

pub mod bench;
pub mod fetch;
pub mod receipt_log;
pub mod seals;
pub mod verify;

use sigil_proto::v1::key_admin_client::KeyAdminClient;
use sigil_proto::v1::receipts_client::ReceiptsClient;
use sigil_proto::v1::{
    AppendRequest, AppendResponse, AppendStreamReply, CreateKeyRequest, CreateKeyResponse,
    GetDirectoryRequest, ImportStatementRequest, ImportStatementResponse, ListKeysRequest,
    PrepareKeysRequest, RevokeKeyRequest, RevokeKeyResponse, RotateKeyRequest, RotateKeyResponse,
    SignDigestRequest, SignDigestResponse,
};
use thiserror::Error;
use tokio_stream::Stream;
use tonic::transport::{Channel, Endpoint};

/// Default daemon endpoint.
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:7700";

/// Errors of the client.
#[derive(Debug, Error)]
pub enum ClientError {
    /// The endpoint is not an `http://` or `https://` URL.
    #[error("endpoint {0:?} is not http://HOST:PORT or https://HOST:PORT")]
    Endpoint(String),
    /// Nothing answers at the endpoint (refused, unreachable, timed out).
    #[error("cannot reach sigild at {endpoint}: {reason}")]
    Unreachable {
        /// Where.
        endpoint: String,
        /// Why, e.g. `connection refused`.
        reason: String,
    },
    /// Could not connect for another reason (TLS handshake, name lookup).
    #[error("cannot connect to {endpoint}: {}", error_chain(.source))]
    Connect {
        /// Where.
        endpoint: String,
        /// Why.
        #[source]
        source: tonic::transport::Error,
    },
    /// TLS material is missing, unreadable or not PEM.
    #[error("{0}")]
    Tls(String),
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
/// and this client's certificate and key (PEM files); `sigil`'s `--ca`,
/// `--cert` and `--key-file`, which its error messages name.
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
    /// Checks the files before tonic sees them: it takes any bytes as PEM
    /// and fails only in the handshake, with an error naming no file.
    /// Messages name the `sigil` flags these fields come from.
    fn config(&self) -> Result<tonic::transport::ClientTlsConfig, ClientError> {
        let mut c = tonic::transport::ClientTlsConfig::new();
        if let Some(ca) = &self.ca {
            let pem = read_pem("--ca", ca, "CERTIFICATE")?;
            c = c.ca_certificate(tonic::transport::Certificate::from_pem(pem));
        }
        match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => {
                c = c.identity(tonic::transport::Identity::from_pem(
                    read_pem("--cert", cert, "CERTIFICATE")?,
                    read_pem("--key-file", key, "PRIVATE KEY")?,
                ));
            }
            (None, None) => {}
            (Some(cert), None) => {
                return Err(ClientError::Input(format!(
                    "--cert {} needs --key-file, the client certificate's private key (PEM)",
                    cert.display()
                )))
            }
            (None, Some(key)) => {
                return Err(ClientError::Input(format!(
                    "--key-file {} needs --cert, the client certificate (PEM)",
                    key.display()
                )))
            }
        }
        Ok(c)
    }
}

/// Reads a PEM file given as `flag`; `label` ends its `-----BEGIN` line
/// (`PRIVATE KEY` matches the PKCS#8, RSA and EC forms).
fn read_pem(flag: &str, path: &std::path::Path, label: &str) -> Result<Vec<u8>, ClientError> {
    let bytes = std::fs::read(path)
        .map_err(|e| ClientError::Tls(format!("cannot read {flag} {}: {e}", path.display())))?;
    let is_pem = String::from_utf8_lossy(&bytes)
        .lines()
        .any(|l| l.starts_with("-----BEGIN ") && l.trim_end().ends_with(&format!("{label}-----")));
    if !is_pem {
        return Err(ClientError::Tls(format!(
            "{flag} {} is not PEM: it has no \"-----BEGIN ...{label}-----\" line",
            path.display()
        )));
    }
    Ok(bytes)
}

/// An error and its sources, `a: b: c`; tonic's own message is only
/// "transport error".
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(s) = next {
        let text = s.to_string();
        if !out.ends_with(&text) {
            out = format!("{out}: {text}");
        }
        next = s.source();
    }
    out
}

/// Why nothing answers at the endpoint, when the connect error comes from
/// the socket rather than from TLS or name lookup.
fn unreachable_reason(e: &tonic::transport::Error) -> Option<String> {
    use std::io::ErrorKind;
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = next {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return match io.kind() {
                ErrorKind::ConnectionRefused => Some("connection refused".into()),
                // An admin socket that is not there, or not ours to use.
                ErrorKind::NotFound => Some("no such socket".into()),
                ErrorKind::PermissionDenied => Some("permission denied".into()),
                ErrorKind::TimedOut
                | ErrorKind::HostUnreachable
                | ErrorKind::NetworkUnreachable
                | ErrorKind::AddrNotAvailable => Some(io.to_string()),
                _ => None,
            };
        }
        next = err.source();
    }
    None
}

/// Why a connection failed: nothing there (`Unreachable`, with a hint to
/// start sigild), or something else (`Connect`, with the cause chain).
fn connect_error(endpoint: &str, source: tonic::transport::Error) -> ClientError {
    match unreachable_reason(&source) {
        Some(reason) => ClientError::Unreachable {
            endpoint: endpoint.to_owned(),
            reason,
        },
        None => ClientError::Connect {
            endpoint: endpoint.to_owned(),
            source,
        },
    }
}

/// Whether `endpoint` is https; refuses what is neither `http://HOST[:PORT]`
/// nor `https://HOST[:PORT]`, which tonic would accept and then fail on.
pub fn endpoint_is_https(endpoint: &str) -> Result<bool, ClientError> {
    let bad = || ClientError::Endpoint(endpoint.to_owned());
    let uri: tonic::transport::Uri = endpoint.parse().map_err(|_| bad())?;
    let https = match uri.scheme_str() {
        Some(s) if s.eq_ignore_ascii_case("http") => false,
        Some(s) if s.eq_ignore_ascii_case("https") => true,
        _ => return Err(bad()),
    };
    match uri.host() {
        Some(h) if !h.is_empty() => Ok(https),
        _ => Err(bad()),
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
        let https = endpoint_is_https(endpoint)?;
        if https && tls.is_none_or(|t| t.ca.is_none()) {
            // No built-in roots (tonic is built without them): only a given CA works.
            return Err(ClientError::Tls(format!(
                "the https endpoint {endpoint} needs --ca, the CA certificate (PEM) that issued sigild's certificate"
            )));
        }
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
        let channel = ep.connect().await.map_err(|e| connect_error(endpoint, e))?;
        Ok(Client {
            receipts: ReceiptsClient::new(channel.clone()),
            admin: KeyAdminClient::new(channel),
        })
    }

    /// Connects to sigild's admin socket (`<data-dir>/admin.sock`), where
    /// KeyAdmin answers without TLS; the daemon checks the caller's uid.
    pub async fn connect_admin_socket(path: &std::path::Path) -> Result<Self, ClientError> {
        let shown = format!("unix:{}", path.display());
        let socket = path.to_owned();
        // The URI is not used: every connection goes to the socket.
        let channel = Endpoint::from_static("http://admin.sock")
            .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
                let socket = socket.clone();
                async move {
                    tokio::net::UnixStream::connect(socket)
                        .await
                        .map(hyper_util::rt::TokioIo::new)
                }
            }))
            .await
            .map_err(|e| connect_error(&shown, e))?;
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

    /// Generates `count` standby versions of `name` (empty: the chain key)
    /// and returns the certification request JSON.
    pub async fn prepare_keys(&mut self, name: &str, count: u32) -> Result<String, ClientError> {
        let req = PrepareKeysRequest {
            name: name.to_owned(),
            count,
        };
        Ok(self
            .admin
            .prepare_keys(req)
            .await?
            .into_inner()
            .request_json)
    }

    /// Imports a root or keyset document.
    pub async fn import_statement(
        &mut self,
        document: Vec<u8>,
    ) -> Result<ImportStatementResponse, ClientError> {
        let req = ImportStatementRequest { document };
        Ok(self.admin.import_statement(req).await?.into_inner())
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
