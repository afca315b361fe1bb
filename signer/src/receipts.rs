//! The `sigil.v1.Receipts` gRPC service.

use std::pin::Pin;
use std::sync::Arc;

use sigil_proto::v1::receipts_server::Receipts;
use sigil_proto::v1::{
    append_stream_reply, AppendError, AppendRequest, AppendResponse, AppendStreamReply,
    GetDirectoryRequest, GetDirectoryResponse, SignDigestRequest, SignDigestResponse,
};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use crate::auth::Caller;
use crate::chain::{Appended, Command};
use crate::front;
use crate::keyring::Keyring;
use crate::ratelimit::RateLimit;
use crate::record::{self, Limits};
use crate::registry::{self, Chains};
use crate::Error;

/// Default daemon-wide budget of queued record bytes (256 MiB).
const DEFAULT_QUEUED_BYTES: usize = 256 << 20;

/// Replies a stream may have outstanding before it stops reading requests.
const STREAM_WINDOW: usize = 4096;

/// The producer service (cheap to clone: shared state is behind `Arc`s).
#[derive(Clone)]
pub struct ReceiptService {
    chains: Arc<Chains>,
    keyring: Arc<Keyring>,
    limits: Limits,
    rate: Arc<RateLimit>,
    /// Bytes of records and replies one AppendStream may hold.
    stream_buffer_bytes: usize,
    /// Bytes of records queued on chains and not yet answered, daemon-wide.
    queued: Arc<tokio::sync::Semaphore>,
    queued_limit: usize,
}

impl ReceiptService {
    /// A service over these chains and keys.
    pub fn new(
        chains: Arc<Chains>,
        keyring: Arc<Keyring>,
        limits: Limits,
        rate: RateLimit,
    ) -> Self {
        ReceiptService {
            chains,
            keyring,
            limits,
            rate: Arc::new(rate),
            stream_buffer_bytes: 8 << 20,
            queued: Arc::new(tokio::sync::Semaphore::new(DEFAULT_QUEUED_BYTES)),
            queued_limit: DEFAULT_QUEUED_BYTES,
        }
    }

    /// Sets the daemon-wide budget of queued record bytes: beyond it,
    /// appends get RESOURCE_EXHAUSTED instead of more memory.
    pub fn queued_record_bytes(mut self, bytes: usize) -> Self {
        let bytes = bytes.clamp(1, tokio::sync::Semaphore::MAX_PERMITS);
        self.queued = Arc::new(tokio::sync::Semaphore::new(bytes));
        self.queued_limit = bytes;
        self
    }

    /// Sets the byte budget of one AppendStream's records and unread
    /// replies.
    pub fn stream_buffer_bytes(mut self, bytes: usize) -> Self {
        self.stream_buffer_bytes = bytes;
        self
    }

    /// Checks a request and queues it on its chain; the receiver yields the
    /// durable receipt.
    async fn submit(
        &self,
        caller: &Caller,
        req: AppendRequest,
    ) -> Result<
        (
            oneshot::Receiver<Result<Appended, Error>>,
            OwnedSemaphorePermit,
        ),
        Error,
    > {
        registry::check_name(&req.chain)?;
        caller.may_append(&req.chain)?;
        self.rate.take(&caller.id)?;
        // Held until the reply is taken: records parked on slow chains (a
        // slow or hung token) cannot grow the daemon without bound.
        let cost =
            u32::try_from(req.record_json.len().clamp(1, self.queued_limit)).unwrap_or(u32::MAX);
        let permit = self
            .queued
            .clone()
            .try_acquire_many_owned(cost)
            .map_err(|_| {
                Error::ResourceExhausted(format!(
                    "sigild already holds {} bytes of queued records (limits.queued_record_bytes); \
                     retry later",
                    self.queued_limit
                ))
            })?;
        let record = record::parse(&req.record_json, &self.limits)?;
        let chain = self.chains.producer_chain(&req.chain, &caller.id).await?;
        let (tx, rx) = oneshot::channel();
        chain.send(Command::Append { record, reply: tx }).await?;
        Ok((rx, permit))
    }
}

async fn finish(
    chain: String,
    correlation_id: u64,
    rx: oneshot::Receiver<Result<Appended, Error>>,
) -> Result<AppendResponse, Error> {
    let a = rx
        .await
        .map_err(|_| Error::Unavailable("chain task stopped before replying".into()))??;
    Ok(AppendResponse {
        chain,
        chain_seq: a.seq,
        receipt_hash: a.hash,
        receipt_json: a.line,
        correlation_id,
    })
}

type ReplyStream = Pin<Box<dyn Stream<Item = Result<AppendStreamReply, Status>> + Send>>;

#[tonic::async_trait]
impl Receipts for ReceiptService {
    async fn append(
        &self,
        request: Request<AppendRequest>,
    ) -> Result<Response<AppendResponse>, Status> {
        let started = std::time::Instant::now();
        let caller = front::caller(&request)?;
        let req = request.into_inner();
        let (chain, id) = (req.chain.clone(), req.correlation_id);
        let (rx, _queued) = self.submit(&caller, req).await?;
        let r = finish(chain, id, rx).await?;
        crate::metrics::get().append_seconds.time(started.elapsed());
        tracing::debug!(chain = %r.chain, seq = r.chain_seq, "appended");
        Ok(Response::new(r))
    }

    type AppendStreamStream = ReplyStream;

    async fn append_stream(
        &self,
        request: Request<Streaming<AppendRequest>>,
    ) -> Result<Response<ReplyStream>, Status> {
        let caller = front::caller(&request)?;
        let mut inbound = request.into_inner();
        let (order_tx, mut order_rx) = mpsc::channel(STREAM_WINDOW);
        let (out_tx, out_rx) = mpsc::channel(STREAM_WINDOW);
        let svc = self.clone();
        // Bytes of records in flight and replies not yet taken by the
        // client: past the budget the stream stops reading (HTTP/2 flow
        // control then holds the client), so a client that never reads its
        // replies cannot grow the daemon's memory.
        let budget = self.stream_buffer_bytes.max(1);
        let in_flight = Arc::new(tokio::sync::Semaphore::new(budget));
        // Reader: checks and queues each request without waiting for its
        // receipt, so many are in flight; order is kept by `order_tx`.
        tokio::spawn(async move {
            while let Some(msg) = inbound.next().await {
                let req = match msg {
                    Ok(r) => r,
                    Err(status) => {
                        let _ = order_tx.send(Err((0, status, None))).await;
                        break;
                    }
                };
                // A reply is the record plus about 1 KiB of receipt.
                let cost = (req.record_json.len() + 1024).min(budget);
                let Ok(permit) = in_flight
                    .clone()
                    .acquire_many_owned(u32::try_from(cost).unwrap_or(u32::MAX))
                    .await
                else {
                    break;
                };
                let (chain, id) = (req.chain.clone(), req.correlation_id);
                let item = match svc.submit(&caller, req).await {
                    Ok((rx, queued)) => {
                        Ok((chain, id, rx, std::time::Instant::now(), (permit, queued)))
                    }
                    Err(e) => Err((id, Status::from(e), Some(permit))),
                };
                if order_tx.send(item).await.is_err() {
                    break;
                }
            }
        });
        // Writer: awaits receipts in request order.
        tokio::spawn(async move {
            while let Some(item) = order_rx.recv().await {
                let m = crate::metrics::get();
                let (reply, permit) = match item {
                    Ok((chain, id, rx, started, (permit, _queued))) => {
                        match finish(chain, id, rx).await {
                            Ok(r) => {
                                m.append_seconds.time(started.elapsed());
                                (reply_ok(id, r), Some(permit))
                            }
                            Err(e) => (reply_err(id, Status::from(e)), Some(permit)),
                        }
                    }
                    Err((id, status, permit)) => (reply_err(id, status), permit),
                };
                if out_tx.send((Ok(reply), permit)).await.is_err() {
                    break;
                }
            }
        });
        // The budget is given back as the client's side takes each reply.
        let replies = ReceiverStream::new(out_rx).map(|(reply, _permit)| reply);
        Ok(Response::new(Box::pin(replies)))
    }

    async fn sign_digest(
        &self,
        request: Request<SignDigestRequest>,
    ) -> Result<Response<SignDigestResponse>, Status> {
        let caller = front::caller(&request)?;
        let req = request.into_inner();
        caller.may_sign(&req.key)?;
        self.rate.take(&caller.id)?;
        let digest: [u8; 32] = req.digest.as_slice().try_into().map_err(|_| {
            Error::InvalidArgument(format!(
                "digest: must be exactly 32 bytes, got {}",
                req.digest.len()
            ))
        })?;
        let Some(key) = self.keyring.signing_key(&req.key) else {
            return Err(Error::NotFound(format!("key: no active key named {:?}", req.key)).into());
        };
        // Receipts, rotation endorsements and the directory are Ed25519
        // over 32-byte digests: a digest oracle on a key that signs them
        // would forge them. Refused by name and by public key, so that no
        // label or record mix-up can get around it.
        if req.key == self.chains.default_key() || self.keyring.signs_chains(&key.public_hex) {
            return Err(Error::PermissionDenied(format!(
                "key: {:?} signs chains, ledgers and the key directory; signing caller-chosen \
                 digests with it would let a caller forge receipts. Create a key for digests \
                 (sigil keys create NAME)",
                req.key
            ))
            .into());
        }
        let ledger = self.chains.ledger(&req.key).await?;
        let (tx, rx) = oneshot::channel();
        ledger
            .send(Command::SignDigest {
                key,
                digest,
                principal: caller.id.clone(),
                reply: tx,
            })
            .await?;
        let s = rx
            .await
            .map_err(|_| Error::Unavailable("ledger task stopped before replying".into()))??;
        Ok(Response::new(SignDigestResponse {
            signature: s.signature.to_vec(),
            signer_key: s.key.public_hex,
            key_version: s.key.id.to_string(),
            ledger_chain: registry::ledger_name(&req.key),
            ledger_seq: s.ledger.seq,
        }))
    }

    async fn get_directory(
        &self,
        request: Request<GetDirectoryRequest>,
    ) -> Result<Response<GetDirectoryResponse>, Status> {
        front::directory(&request, &self.keyring)
    }
}

fn reply_ok(id: u64, r: AppendResponse) -> AppendStreamReply {
    AppendStreamReply {
        correlation_id: id,
        result: Some(append_stream_reply::Result::Receipt(r)),
    }
}

fn reply_err(id: u64, s: Status) -> AppendStreamReply {
    crate::metrics::get().error(s.code());
    AppendStreamReply {
        correlation_id: id,
        result: Some(append_stream_reply::Result::Error(AppendError {
            code: s.code() as i32,
            message: s.message().to_owned(),
        })),
    }
}
