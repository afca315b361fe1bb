//! The `sigil.v1.KeyAdmin` gRPC service: key names, rotation, revocation.

use std::sync::Arc;

use sigil_proto::v1::key_admin_server::KeyAdmin;
use sigil_proto::v1::{
    CreateKeyRequest, CreateKeyResponse, GetDirectoryRequest, GetDirectoryResponse,
    ImportStatementRequest, ImportStatementResponse, ListKeysRequest, ListKeysResponse,
    PrepareKeysRequest, PrepareKeysResponse, RevokeKeyRequest, RevokeKeyResponse, RotateKeyRequest,
    RotateKeyResponse,
};
use tonic::{Request, Response, Status};

use crate::auth::Role;
use crate::front;
use crate::keyring::Keyring;
use crate::lifecycle::Lifecycle;
use crate::Error;

/// The admin service.
#[derive(Clone)]
pub struct AdminService {
    keyring: Arc<Keyring>,
    lifecycle: Arc<Lifecycle>,
    default_key: String,
}

impl AdminService {
    /// A service over these keys; `default_key` signs producer chains.
    pub fn new(keyring: Arc<Keyring>, lifecycle: Arc<Lifecycle>, default_key: String) -> Self {
        AdminService {
            keyring,
            lifecycle,
            default_key,
        }
    }

    /// Requires the admin role of the caller the front stage resolved.
    fn admin<T>(&self, request: &Request<T>, what: &str) -> Result<(), Status> {
        Ok(front::caller(request)?.require(Role::Admin, what)?)
    }
}

fn key_name(name: &str) -> Result<(), Error> {
    sigil_keys::KeyId::new(name, 1)
        .map(|_| ())
        .map_err(|e| Error::InvalidArgument(format!("name: {e}")))
}

#[tonic::async_trait]
impl KeyAdmin for AdminService {
    async fn create_key(
        &self,
        request: Request<CreateKeyRequest>,
    ) -> Result<Response<CreateKeyResponse>, Status> {
        self.admin(&request, "create keys")?;
        let name = request.into_inner().name;
        key_name(&name)?;
        let k = self.keyring.clone();
        let key = tokio::task::spawn_blocking(move || k.create(&name))
            .await
            .map_err(|e| Error::Internal(e.to_string()))??;
        Ok(Response::new(CreateKeyResponse {
            keyid: key.id.to_string(),
            public_key: key.public_hex,
        }))
    }

    async fn list_keys(
        &self,
        request: Request<ListKeysRequest>,
    ) -> Result<Response<ListKeysResponse>, Status> {
        self.admin(&request, "list keys")?;
        Ok(Response::new(ListKeysResponse {
            directory_json: self.keyring.directory().to_json(),
        }))
    }

    async fn rotate_key(
        &self,
        request: Request<RotateKeyRequest>,
    ) -> Result<Response<RotateKeyResponse>, Status> {
        self.admin(&request, "rotate keys")?;
        let mut name = request.into_inner().name;
        if name.is_empty() {
            name = self.default_key.clone();
        }
        key_name(&name)?;
        let r = self.lifecycle.rotate(&name).await?;
        Ok(Response::new(RotateKeyResponse {
            previous_keyid: r.old.id.to_string(),
            keyid: r.new.id.to_string(),
            public_key: r.new.public_hex,
            chains: r.chains,
        }))
    }

    async fn revoke_key(
        &self,
        request: Request<RevokeKeyRequest>,
    ) -> Result<Response<RevokeKeyResponse>, Status> {
        self.admin(&request, "revoke keys")?;
        let req = request.into_inner();
        key_name(&req.name)?;
        if req.version == 0 {
            return Err(Error::InvalidArgument("version: key versions start at 1".into()).into());
        }
        let r = self
            .lifecycle
            .revoke(&req.name, req.version, &req.reason, &req.compromised_since)
            .await?;
        Ok(Response::new(RevokeKeyResponse {
            keyid: r.revoked.key.id.to_string(),
            chains: r.chains,
            rotated_to: r.rotated_to.map(|k| k.id.to_string()).unwrap_or_default(),
        }))
    }

    async fn prepare_keys(
        &self,
        request: Request<PrepareKeysRequest>,
    ) -> Result<Response<PrepareKeysResponse>, Status> {
        self.admin(&request, "prepare keys")?;
        let req = request.into_inner();
        let name = if req.name.is_empty() {
            self.default_key.clone()
        } else {
            req.name
        };
        key_name(&name)?;
        let request_json = self.lifecycle.prepare(&name, req.count).await?;
        Ok(Response::new(PrepareKeysResponse { request_json }))
    }

    async fn import_statement(
        &self,
        request: Request<ImportStatementRequest>,
    ) -> Result<Response<ImportStatementResponse>, Status> {
        self.admin(&request, "import root documents")?;
        let text = String::from_utf8(request.into_inner().document)
            .map_err(|_| Error::InvalidArgument("document: not UTF-8".into()))?;
        let (imported, revoked) = self.lifecycle.import(text).await?;
        Ok(Response::new(ImportStatementResponse { imported, revoked }))
    }

    async fn get_directory(
        &self,
        request: Request<GetDirectoryRequest>,
    ) -> Result<Response<GetDirectoryResponse>, Status> {
        front::directory(&request, &self.keyring)
    }
}
