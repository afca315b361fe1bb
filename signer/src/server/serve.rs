//! The listeners: gRPC on TCP (Receipts, KeyAdmin under TLS, health,
//! reflection), KeyAdmin on the admin socket, the HTTP port; each gRPC
//! server behind the front stage. Started together, drained together.

use std::fs;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sigil_keys::Backend;
use sigil_proto::v1::key_admin_server::KeyAdminServer;
use sigil_proto::v1::receipts_server::ReceiptsServer;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;
use tower::layer::util::{Identity, Stack};

use super::parts::{LogWork, Parts};
use crate::admin::AdminService;
use crate::auth::Auth;
use crate::chain::Command;
use crate::config::Config;
use crate::front::{FrontLayer, Listener};
use crate::ratelimit::RateLimit;
use crate::receipts::ReceiptService;
use crate::Error;

type TcpRouter = tonic::transport::server::Router<Stack<FrontLayer, Identity>>;
type Served = JoinHandle<Result<(), tonic::transport::Error>>;

/// The running listeners.
pub(super) struct Serving {
    pub(super) grpc_addr: SocketAddr,
    pub(super) http_addr: SocketAddr,
    stop: watch::Sender<bool>,
    grpc: Served,
    socket: Served,
    http: JoinHandle<()>,
    socket_path: PathBuf,
}

/// Binds every listener and starts serving.
pub(super) async fn start(config: &Config, parts: &Parts) -> Result<Serving, Error> {
    let grpc = TcpListener::bind(config.grpc_listen)
        .await
        .map_err(|e| Error::io(format!("binding gRPC {}", config.grpc_listen), e))?;
    let http = TcpListener::bind(config.http_listen)
        .await
        .map_err(|e| Error::io(format!("binding HTTP {}", config.http_listen), e))?;
    let grpc_addr = grpc
        .local_addr()
        .map_err(|e| Error::io("gRPC address", e))?;
    let http_addr = http
        .local_addr()
        .map_err(|e| Error::io("HTTP address", e))?;
    let socket_path = config.admin_socket_path();
    let admin_listener = bind_admin_socket(&socket_path)?;
    let (stop, stop_rx) = watch::channel(false);
    let tcp = tcp_server(config, parts, &socket_path).await?;
    let grpc = tokio::spawn(tcp.serve_with_incoming_shutdown(
        TcpIncoming::from(grpc).with_nodelay(Some(true)),
        stopped(stop_rx.clone()),
    ));
    let mut uids = vec![current_uid(), 0];
    uids.extend(&config.admin_uids);
    let socket = tokio::spawn(
        tonic::transport::Server::builder()
            .layer(FrontLayer::new(Listener::Socket(uids)))
            .add_service(admin_service(config, parts))
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::UnixListenerStream::new(admin_listener),
                stopped(stop_rx.clone()),
            ),
    );
    let http = tokio::spawn(crate::http::serve(
        http,
        crate::http::router(
            parts.keyring.clone(),
            parts.counters.clone(),
            parts.log.clone(),
        ),
        config.http_limits(),
        stop_rx,
    ));
    Ok(Serving {
        grpc_addr,
        http_addr,
        stop,
        grpc,
        socket,
        http,
        socket_path,
    })
}

async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

fn admin_service(config: &Config, parts: &Parts) -> KeyAdminServer<AdminService> {
    KeyAdminServer::new(AdminService::new(
        parts.keyring.clone(),
        parts.lifecycle.clone(),
        config.key_name.clone(),
    ))
}

/// The TCP listener's router: health, reflection, Receipts and KeyAdmin,
/// behind the front stage.
async fn tcp_server(
    config: &Config,
    parts: &Parts,
    socket_path: &std::path::Path,
) -> Result<TcpRouter, Error> {
    let auth = Auth::new(
        config.tls.is_some(),
        config.identities.clone(),
        socket_path.to_path_buf(),
    );
    let rate = RateLimit::new(config.limits.rate_per_second, config.limits.burst);
    let service = ReceiptService::new(
        parts.chains.clone(),
        parts.keyring.clone(),
        config.record_limits(),
        rate,
    )
    .stream_buffer_bytes(config.limits.stream_buffer_bytes)
    .queued_record_bytes(config.limits.queued_record_bytes);
    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<ReceiptsServer<ReceiptService>>()
        .await;
    spawn_token_watch(
        parts.keyring.backend().clone(),
        health_reporter,
        Duration::from_secs(config.token_check_seconds.max(1)),
    );
    // Both reflection versions: grpcurl before 1.9 speaks only v1alpha.
    let reflection_builder = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(sigil_proto::v1::FILE_DESCRIPTOR_SET)
    };
    let reflection = reflection_builder()
        .build_v1()
        .map_err(|e| Error::Internal(format!("reflection: {e}")))?;
    let reflection_alpha = reflection_builder()
        .build_v1alpha()
        .map_err(|e| Error::Internal(format!("reflection: {e}")))?;
    let max = config.limits.max_message_bytes;
    let receipts = ReceiptsServer::new(service)
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);
    Ok(grpc_builder(config)?
        .layer(FrontLayer::new(Listener::Tcp(auth)))
        .add_service(health)
        .add_service(reflection)
        .add_service(reflection_alpha)
        .add_service(receipts)
        .add_service(admin_service(config, parts)))
}

impl Serving {
    /// Stops taking requests and drains within `grace`: a stream that sends
    /// nothing (or a request whose body never comes) must not hold the
    /// shutdown past what the service manager allows, or no session_close
    /// gets written. Then every chain's run is closed.
    pub(super) async fn drain(self, grace: Duration, parts: &Parts, key_name: &str) {
        tracing::info!("shutting down: draining in-flight requests");
        let _ = self.stop.send(true);
        let mut grpc = self.grpc;
        match tokio::time::timeout(grace, &mut grpc).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::error!(error = %e, "gRPC server"),
            Ok(Err(e)) => tracing::error!(error = %e, "gRPC task"),
            Err(_) => {
                tracing::warn!(
                    seconds = grace.as_secs(),
                    "drain bound reached: cancelling the requests still open"
                );
                grpc.abort();
            }
        }
        // No chain opens after this, so nothing can follow a session_close.
        let closed = parts.chains.close_all("shutdown").await;
        if let Some(log) = parts.log.clone() {
            // The last checkpoint covers every session_close, and every
            // chain ends with the seal of its close.
            let work = LogWork {
                log,
                keyring: parts.keyring.clone(),
                counters: parts.counters.clone(),
                key_name: key_name.to_owned(),
            };
            let mut sealed = 0;
            for (chain, seal) in work.checkpoint(None).await {
                let Some((_, h)) = closed.iter().find(|(n, _)| *n == chain) else {
                    continue;
                };
                let (done, written) = tokio::sync::oneshot::channel();
                let seal = Command::Seal {
                    seal,
                    done: Some(done),
                };
                if h.send(seal).await.is_ok()
                    && matches!(tokio::time::timeout(grace, written).await, Ok(Ok(true)))
                {
                    sealed += 1;
                }
            }
            tracing::info!(chains = sealed, "final seals written");
        }
        drop(closed);
        let _ = tokio::time::timeout(grace, self.http).await;
        self.socket.abort();
        let _ = fs::remove_file(&self.socket_path);
    }
}

/// Probes the token every `every` (which also keeps device sessions alive)
/// and sets the gRPC health of the service (and the server, "") to
/// NOT_SERVING while it fails.
fn spawn_token_watch(
    backend: Arc<dyn Backend>,
    health: tonic_health::server::HealthReporter,
    every: Duration,
) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut serving = true;
        loop {
            tick.tick().await;
            let b = backend.clone();
            let ok = match tokio::task::spawn_blocking(move || b.keepalive()).await {
                Ok(Ok(())) => true,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "token check failed");
                    false
                }
                Err(_) => false,
            };
            crate::metrics::get()
                .token_up
                .store(u64::from(ok), std::sync::atomic::Ordering::Relaxed);
            if ok != serving {
                serving = ok;
                let status = if ok {
                    tonic_health::ServingStatus::Serving
                } else {
                    tonic_health::ServingStatus::NotServing
                };
                health.set_service_status("", status).await;
                health.set_service_status("sigil.v1.Receipts", status).await;
                tracing::info!(serving = ok, "token health changed");
            }
        }
    });
}

/// The gRPC server builder, with TLS and client certificates when
/// configured. Client certificates are requested, not required, at the
/// handshake, so a call without one gets a clear UNAUTHENTICATED; one from
/// another CA fails the handshake.
fn grpc_builder(config: &Config) -> Result<tonic::transport::Server, Error> {
    // Keepalive pings find dead peers, so their streams do not stay open.
    let builder = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .max_concurrent_streams(Some(config.limits.max_streams_per_connection.max(1)));
    let Some(tls) = &config.tls else {
        return Ok(builder);
    };
    let read = |p: &std::path::Path| {
        fs::read(p).map_err(|e| Error::io(format!("reading TLS file {}", p.display()), e))
    };
    let identity = tonic::transport::Identity::from_pem(read(&tls.cert)?, read(&tls.key)?);
    let tls_config = tonic::transport::ServerTlsConfig::new()
        .identity(identity)
        .client_ca_root(tonic::transport::Certificate::from_pem(read(
            &tls.client_ca,
        )?))
        .client_auth_optional(true);
    builder
        .tls_config(tls_config)
        .map_err(|e| Error::Config(format!("TLS: {e}")))
}

fn current_uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

/// Binds the admin socket, mode 0600. A socket left by a previous run is
/// replaced (the data-dir lock says no other sigild owns it); anything else
/// at that path (a file, a symlink) is refused.
fn bind_admin_socket(path: &std::path::Path) -> Result<tokio::net::UnixListener, Error> {
    use std::os::unix::fs::FileTypeExt;
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => fs::remove_file(path)
            .map_err(|e| Error::io(format!("removing the old {}", path.display()), e))?,
        Ok(_) => {
            return Err(Error::Config(format!(
                "{} exists and is not a socket; remove it or set admin_socket",
                path.display()
            )))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(format!("checking {}", path.display()), e)),
    }
    let listener = tokio::net::UnixListener::bind(path)
        .map_err(|e| Error::io(format!("binding the admin socket {}", path.display()), e))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))
        .map_err(|e| Error::io(format!("restricting {}", path.display()), e))?;
    Ok(listener)
}
