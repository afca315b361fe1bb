//! The HTTP side: the key directory at its well-known path, Prometheus
//! metrics at `/metrics` (loopback peers only: it names every chain), and
//! `/healthz`. Served with a connection cap and header and connection
//! timeouts, so slow or idle clients cannot hold the port or the process's
//! file descriptors (and so the gRPC listener) hostage.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use sigil_proto::directory::WELL_KNOWN_PATH;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tower::ServiceExt;

use crate::counters::Counters;
use crate::keyring::Keyring;
use crate::log::ReceiptLog;

/// Limits of the HTTP listener.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Connections served at once; more are closed at accept.
    pub max_connections: usize,
    /// Time for a client to send a request's headers.
    pub header_timeout: Duration,
    /// Longest a connection stays open, busy or idle.
    pub connection_timeout: Duration,
}

/// Serves `router` on `listener` until `stop` turns true; connections
/// still open then are dropped.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut conns = tokio::task::JoinSet::new();
    // The guard `wait_for` returns is not Send: drop it inside the future.
    let mut stopped = Box::pin(async move {
        let _ = stop.wait_for(|s| *s).await;
    });
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors, most likely: back off instead
                    // of spinning, and leave the descriptors to gRPC.
                    tracing::warn!(error = %e, "HTTP accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut stopped => break,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "HTTP connection cap reached; connection closed");
            continue;
        };
        let router = router.clone();
        conns.spawn(async move {
            let _permit = permit;
            let service = hyper::service::service_fn(move |mut req: hyper::Request<_>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                router.clone().oneshot(req.map(axum::body::Body::new))
            });
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout);
            let conn = http.serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(limits.connection_timeout, conn).await;
        });
        // Reap finished connections so the set does not grow.
        while conns.try_join_next().is_some() {}
    }
    conns.shutdown().await;
}

/// The receipt log, read-only, as C2SP tlog-tiles serves it: the latest
/// checkpoint (which changes, so never cached long) and the tiles a
/// checkpoint covers (which never change).
fn log_routes(log: Arc<ReceiptLog>) -> Router {
    let tiles = log.clone();
    Router::new()
        .route(
            "/log/checkpoint",
            get(move || {
                let log = log.clone();
                async move {
                    match log.published() {
                        Some(p) => (
                            [
                                (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                                (header::CACHE_CONTROL, "no-cache"),
                            ],
                            p.note.clone(),
                        )
                            .into_response(),
                        None => {
                            (StatusCode::NOT_FOUND, "no checkpoint signed yet\n").into_response()
                        }
                    }
                }
            }),
        )
        .route(
            "/log/{*path}",
            get(
                move |axum::extract::Path(path): axum::extract::Path<String>| {
                    let log = tiles.clone();
                    async move {
                        let read = tokio::task::spawn_blocking(move || log.read_tile(&path)).await;
                        match read {
                            Ok(Some(bytes)) => (
                                [
                                    (header::CONTENT_TYPE, "application/octet-stream"),
                                    (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
                                ],
                                bytes,
                            )
                                .into_response(),
                            _ => (
                                StatusCode::NOT_FOUND,
                                "no such tile under the latest checkpoint\n",
                            )
                                .into_response(),
                        }
                    }
                },
            ),
        )
}

/// Routes of the HTTP listener.
pub fn router(
    keyring: Arc<Keyring>,
    counters: Arc<Counters>,
    log: Option<Arc<ReceiptLog>>,
) -> Router {
    let metrics_keys = keyring.clone();
    let base = match log {
        Some(log) => log_routes(log),
        None => Router::new(),
    };
    base.route(
        WELL_KNOWN_PATH,
        get(move || {
            let k = keyring.clone();
            async move {
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    k.directory().to_json(),
                )
                    .into_response()
            }
        }),
    )
    .route(
        "/metrics",
        get(move |ConnectInfo(peer): ConnectInfo<SocketAddr>| {
            let (k, counters) = (metrics_keys.clone(), counters.clone());
            async move {
                if !peer.ip().is_loopback() {
                    return (
                        StatusCode::FORBIDDEN,
                        "/metrics is served to loopback clients only: it names every chain\n",
                    )
                        .into_response();
                }
                (
                    [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                    crate::metrics::get().render(&k.active_stats(&counters), k.root_stats()),
                )
                    .into_response()
            }
        }),
    )
    .route("/healthz", get(|| async { "ok\n" }))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get(router: Router, path: &str, peer: &str) -> StatusCode {
        let mut req = axum::http::Request::get(path)
            .body(axum::body::Body::empty())
            .expect("request");
        let peer: SocketAddr = peer.parse().expect("address");
        req.extensions_mut().insert(ConnectInfo(peer));
        router.oneshot(req).await.expect("infallible").status()
    }

    #[tokio::test]
    async fn metrics_are_for_loopback_peers_only_the_directory_for_all() {
        let dir = tempfile::tempdir().expect("tempdir");
        let backend = Arc::new(
            sigil_keys::software::SoftwareBackend::open(dir.path().join("seeds")).expect("seeds"),
        );
        let keyring = Arc::new(Keyring::open(dir.path(), backend, "mediator").expect("keyring"));
        let r = router(keyring, Counters::new(0).0, None);
        assert_eq!(
            get(r.clone(), "/metrics", "127.0.0.1:9").await,
            StatusCode::OK
        );
        assert_eq!(get(r.clone(), "/metrics", "[::1]:9").await, StatusCode::OK);
        assert_eq!(
            get(r.clone(), "/metrics", "192.0.2.7:9").await,
            StatusCode::FORBIDDEN
        );
        assert_eq!(get(r, WELL_KNOWN_PATH, "192.0.2.7:9").await, StatusCode::OK);
    }
}
