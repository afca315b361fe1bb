//! The front stage every gRPC call passes before its handler: it resolves
//! the caller, gives the call a request id (the client's `x-request-id`, or
//! a new one) and echoes it, runs the handler inside a (debug) span carrying
//! both, and counts and logs every refusal by gRPC code with its id.
//! Handlers do only their own work: they read the caller with [`caller`].
//!
//! It is a tower layer over the whole tonic router, so Append, AppendStream,
//! SignDigest, GetDirectory, every KeyAdmin call, health and reflection go
//! through the same code on both listeners (TCP and the admin socket).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use sigil_proto::v1::GetDirectoryResponse;
use tonic::codegen::http;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo, UdsConnectInfo};
use tonic::{Request, Status};
use tower::{Layer, Service};
use tracing::Instrument;

use crate::auth::{Auth, Caller};
use crate::keyring::Keyring;
use crate::Error;

/// Metadata key carrying a request id, given by the client or made here.
pub const REQUEST_ID: &str = "x-request-id";

/// How callers on one listener are resolved.
#[derive(Clone, Debug)]
pub enum Listener {
    /// The TCP listener: client certificates under TLS, loopback without.
    Tcp(Auth),
    /// The admin Unix socket: peers whose uid is listed (the daemon's own,
    /// root and `admin_uids`) administer keys, read from the kernel's peer
    /// credentials.
    Socket(Vec<u32>),
}

impl Listener {
    fn resolve<B>(&self, req: &http::Request<B>) -> Resolved {
        let ext = req.extensions();
        match self {
            Listener::Tcp(auth) => {
                let certs = ext
                    .get::<TlsConnectInfo<TcpConnectInfo>>()
                    .and_then(TlsConnectInfo::peer_certs);
                Resolved(
                    auth.caller(certs.as_deref().map(Vec::as_slice))
                        .map_err(Status::from),
                )
            }
            Listener::Socket(allowed) => {
                let uid = ext
                    .get::<UdsConnectInfo>()
                    .and_then(|i| i.peer_cred)
                    .map(|c| c.uid());
                let ok = uid.is_some_and(|u| allowed.contains(&u));
                Resolved(Ok(Caller::socket_peer(uid, ok)))
            }
        }
    }
}

/// The caller as resolved, or why it could not be (kept as a status so
/// every handler answers a refused caller the same way).
#[derive(Clone)]
struct Resolved(Result<Caller, Status>);

/// The request id of a call, in its request's extensions.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// The caller of `request`, as the front stage resolved it.
pub fn caller<T>(request: &Request<T>) -> Result<Caller, Status> {
    match request.extensions().get::<Resolved>() {
        Some(Resolved(r)) => r.clone(),
        // Every server in sigild is built with the front layer; a call that
        // bypassed it has no identity and gets none.
        None => Err(Error::Unauthenticated("the caller was not resolved".into()).into()),
    }
}

/// The GetDirectory answer both services give: the directory is public to
/// any caller the front stage resolved.
pub fn directory<T>(
    request: &Request<T>,
    keyring: &Keyring,
) -> Result<tonic::Response<GetDirectoryResponse>, Status> {
    caller(request)?;
    Ok(tonic::Response::new(GetDirectoryResponse {
        directory_json: keyring.directory().to_json(),
    }))
}

/// The front stage as a tower layer.
#[derive(Clone, Debug)]
pub struct FrontLayer {
    listener: Arc<Listener>,
}

impl FrontLayer {
    /// The front stage of one listener.
    pub fn new(listener: Listener) -> Self {
        FrontLayer {
            listener: Arc::new(listener),
        }
    }
}

impl<S> Layer<S> for FrontLayer {
    type Service = Front<S>;

    fn layer(&self, inner: S) -> Front<S> {
        Front {
            inner,
            listener: self.listener.clone(),
        }
    }
}

/// The front stage around one service.
#[derive(Clone, Debug)]
pub struct Front<S> {
    inner: S,
    listener: Arc<Listener>,
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, B, R> Service<http::Request<B>> for Front<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let rid = request_id(req.headers());
        let method = req.uri().path().to_owned();
        let resolved = self.listener.resolve(&req);
        let caller = match &resolved.0 {
            Ok(c) => c.id.clone(),
            Err(_) => "unresolved".to_owned(),
        };
        req.extensions_mut().insert(resolved);
        req.extensions_mut().insert(RequestId(rid.clone()));
        // The service that was polled ready is the one called; a fresh
        // clone takes its place for the next call (tower's clone rule).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        // For debugging: the span's fields are formatted only when debug
        // logs are on, so the hot path pays nothing for it; the refusal line
        // below carries the id itself.
        let span =
            tracing::debug_span!("rpc", request_id = %rid, method = %method, caller = %caller);
        Box::pin(
            async move {
                let mut resp = inner.call(req).await?;
                if let Ok(v) = http::HeaderValue::from_str(&rid) {
                    resp.headers_mut().insert(REQUEST_ID, v);
                }
                // A refusal is a trailers-only response: its status is in
                // the headers. (Per-item errors of a stream are counted
                // where they are made.)
                if let Some(status) = Status::from_header_map(resp.headers()) {
                    if status.code() != tonic::Code::Ok {
                        crate::metrics::get().error(status.code());
                        tracing::info!(
                            request_id = %rid,
                            method = %method,
                            caller = %caller,
                            code = ?status.code(),
                            message = status.message(),
                            "request refused"
                        );
                    }
                }
                Ok(resp)
            }
            .instrument(span),
        )
    }
}

/// The caller's `x-request-id` (if short and printable), else a new UUIDv7:
/// it ties log lines to the request, and is echoed in the reply.
fn request_id(headers: &http::HeaderMap) -> String {
    headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string())
}
