//! The HTTP side: the key directory at its well-known path, Prometheus
//! metrics at `/metrics`, and `/healthz`.

use std::sync::Arc;

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use sigil_proto::directory::WELL_KNOWN_PATH;

use crate::keyring::Keyring;

/// Routes of the HTTP listener.
pub fn router(keyring: Arc<Keyring>) -> Router {
    let metrics_keys = keyring.clone();
    Router::new()
        .route(
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
            get(move || {
                let k = metrics_keys.clone();
                async move {
                    (
                        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                        crate::metrics::get().render(&k.active_stats()),
                    )
                        .into_response()
                }
            }),
        )
        .route("/healthz", get(|| async { "ok\n" }))
}
