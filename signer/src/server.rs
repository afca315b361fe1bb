//! Start-up, serving and shutdown.

use std::fs::{self, File};
use std::future::Future;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::io::AsRawFd;
use std::sync::Arc;

use sigil_keys::Backend;
use sigil_proto::v1::key_admin_server::KeyAdminServer;
use sigil_proto::v1::receipts_server::ReceiptsServer;
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;

use crate::admin::AdminService;
use crate::auth::Auth;
pub use crate::backends::open_backend;
use crate::config::Config;
use crate::counters::Counters;
use crate::front::{FrontLayer, Listener};
use crate::keyring::Keyring;
use crate::lifecycle::Lifecycle;
use crate::ratelimit::RateLimit;
use crate::registry::Chains;
use crate::service::ReceiptService;
use crate::Error;

/// Takes an exclusive lock on the data dir, so two daemons never append to
/// the same chain files. Held until the returned file is dropped.
pub fn lock_data_dir(config: &Config) -> Result<File, Error> {
    let path = config.data_dir.join("LOCK");
    let f =
        File::create(&path).map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
    // SAFETY: flock on a file descriptor we own; no memory is touched.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        return Err(Error::Config(format!(
            "data dir {} is in use by another sigild",
            config.data_dir.display()
        )));
    }
    Ok(f)
}

/// Runs the daemon with the configured backend until `shutdown`
/// completes. Prints one `sigild ready grpc=ADDR http=ADDR` line on stdout
/// once both listeners accept.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    config.check()?;
    let backend = open_backend(&config)?;
    // The backend holds what it read: the environment need not.
    crate::secrets::scrub_env(&crate::secrets::env_sources(&config));
    run_with_backend(config, backend, shutdown, |grpc, http| {
        println!("sigild ready grpc={grpc} http={http}");
    })
    .await
}

/// Runs the daemon over `backend` until `shutdown` completes, then drains:
/// no new requests, in-flight appends finish, every chain's run ends with a
/// session_close. `ready` gets the bound addresses once both listen.
pub async fn run_with_backend(
    config: Config,
    backend: Arc<dyn Backend>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    ready: impl FnOnce(SocketAddr, SocketAddr),
) -> Result<(), Error> {
    config.check()?;
    let backend: Arc<dyn Backend> = Arc::new(crate::metered::Metered::new(backend));
    let chains_dir = config.data_dir.join("chains");
    fs::create_dir_all(&chains_dir)
        .map_err(|e| Error::io(format!("creating {}", chains_dir.display()), e))?;
    fs::set_permissions(&config.data_dir, fs::Permissions::from_mode(0o700))
        .map_err(|e| Error::io("restricting the data dir", e))?;
    let _lock = lock_data_dir(&config)?;

    if config.downgrade_root {
        crate::root_role::downgrade(&config.data_dir)?;
    }
    let keyring = Arc::new(Keyring::open(&config.data_dir, backend, &config.key_name)?);
    let k = keyring.clone();
    let name = config.key_name.clone();
    let active =
        tokio::task::spawn_blocking(move || k.ensure(&name).and_then(|a| k.publish().map(|_| a)))
            .await
            .map_err(|e| Error::Internal(e.to_string()))??;
    tracing::info!(key = %active.id, public_key = %active.public_hex, "signing key ready");
    if let Ok(c) = keyring.backend().describe(&active.id) {
        let _ = crate::metrics::get().backend.set(c.backend);
    }

    let (counters, rotations_due) = Counters::new(config.rotation.max_signatures);
    let settings = config.settings();
    let chains = Arc::new(
        Chains::new(
            chains_dir,
            keyring.clone(),
            counters.clone(),
            Arc::new(settings),
            config.key_name.clone(),
            config.chains.max_chains,
        )
        .with_quotas(crate::registry::Quotas {
            ledger_reserve: config
                .chains
                .ledger_reserve
                .min(config.chains.max_chains / 2),
            per_identity: config.chains.max_per_identity,
        }),
    );
    let resumed = chains.resume_all().await?;
    tracing::info!(chains = resumed, "chains resumed");
    let lifecycle = Arc::new(
        Lifecycle::new(keyring.clone(), chains.clone(), counters.clone())
            .keep_revoked(config.keep_revoked)
            .min_standby(config.rotation.min_standby),
    );
    spawn_directory_resign(
        keyring.clone(),
        std::time::Duration::from_secs(config.directory_resign_seconds),
    );
    lifecycle.resume().await?;
    let r = &config.rotation;
    lifecycle.clone().spawn_schedule(
        rotations_due,
        (r.max_age_seconds > 0).then(|| std::time::Duration::from_secs(r.max_age_seconds)),
        std::time::Duration::from_secs(r.check_seconds.max(1)),
        std::time::Duration::from_secs(r.min_interval_seconds),
        std::time::Duration::from_secs(r.rotate_lead_seconds),
    );

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
    let auth = Auth::new(
        config.tls.is_some(),
        config.identities.clone(),
        socket_path.clone(),
    );
    let rate = RateLimit::new(config.limits.rate_per_second, config.limits.burst);
    let service = ReceiptService::new(
        chains.clone(),
        keyring.clone(),
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
        keyring.backend().clone(),
        health_reporter,
        std::time::Duration::from_secs(config.token_check_seconds.max(1)),
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
    let admin_service = || {
        KeyAdminServer::new(AdminService::new(
            keyring.clone(),
            lifecycle.clone(),
            config.key_name.clone(),
        ))
    };
    let admin = admin_service();
    let socket_admin = admin_service();
    let mut uids = vec![current_uid(), 0];
    uids.extend(&config.admin_uids);
    let admin_listener = bind_admin_socket(&socket_path)?;
    let receipts = ReceiptsServer::new(service)
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut grpc_stop = stop_rx.clone();
    let grpc_task = tokio::spawn(
        grpc_builder(&config)?
            .layer(FrontLayer::new(Listener::Tcp(auth)))
            .add_service(health)
            .add_service(reflection)
            .add_service(reflection_alpha)
            .add_service(receipts)
            .add_service(admin)
            .serve_with_incoming_shutdown(
                TcpIncoming::from(grpc).with_nodelay(Some(true)),
                async move {
                    let _ = grpc_stop.wait_for(|s| *s).await;
                },
            ),
    );
    let mut socket_stop = stop_rx.clone();
    let socket_task = tokio::spawn(
        tonic::transport::Server::builder()
            .layer(FrontLayer::new(Listener::Socket(uids)))
            .add_service(socket_admin)
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::UnixListenerStream::new(admin_listener),
                async move {
                    let _ = socket_stop.wait_for(|s| *s).await;
                },
            ),
    );
    let http_task = tokio::spawn(crate::http::serve(
        http,
        crate::http::router(keyring, counters),
        config.http_limits(),
        stop_rx.clone(),
    ));
    ready(grpc_addr, http_addr);

    let grace = std::time::Duration::from_secs(config.shutdown_grace_seconds);
    shutdown.await;
    tracing::info!("shutting down: draining in-flight requests");
    let _ = stop_tx.send(true);
    // Drain within a bound: a stream that sends nothing (or a request
    // whose body never comes) must not hold the shutdown past what the
    // service manager allows, or no session_close gets written.
    let mut grpc_task = grpc_task;
    match tokio::time::timeout(grace, &mut grpc_task).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => tracing::error!(error = %e, "gRPC server"),
        Ok(Err(e)) => tracing::error!(error = %e, "gRPC task"),
        Err(_) => {
            tracing::warn!(
                seconds = grace.as_secs(),
                "drain bound reached: cancelling the requests still open"
            );
            grpc_task.abort();
        }
    }
    // No chain opens after this, so nothing can follow a session_close.
    chains.close_all("shutdown").await;
    let _ = tokio::time::timeout(grace, http_task).await;
    socket_task.abort();
    let _ = fs::remove_file(&socket_path);
    tracing::info!("stopped");
    Ok(())
}

/// Probes the token every `every` (which also keeps device sessions alive)
/// and sets the gRPC health of the service (and the server, "") to
/// NOT_SERVING while it fails.
fn spawn_token_watch(
    backend: Arc<dyn Backend>,
    health: tonic_health::server::HealthReporter,
    every: std::time::Duration,
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
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(std::time::Duration::from_secs(10)))
        .max_concurrent_streams(Some(config.limits.max_streams_per_connection.max(1)));
    let Some(tls) = &config.tls else {
        return Ok(builder);
    };
    let read = |p: &std::path::Path| {
        std::fs::read(p).map_err(|e| Error::io(format!("reading TLS file {}", p.display()), e))
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

/// Re-signs the directory every `every`, so that a fresh `signed_at` is
/// always available and verifiers can refuse a stale copy (one that may
/// predate a revocation).
fn spawn_directory_resign(keyring: Arc<Keyring>, every: std::time::Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let k = keyring.clone();
            match tokio::task::spawn_blocking(move || k.publish()).await {
                Ok(Ok(())) => tracing::debug!("directory re-signed"),
                Ok(Err(e)) => tracing::warn!(error = %e, "directory not re-signed; will retry"),
                Err(e) => tracing::warn!(error = %e, "directory re-sign task failed"),
            }
        }
    });
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
