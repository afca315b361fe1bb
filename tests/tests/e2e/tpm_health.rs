//! gRPC health follows the token: NOT_SERVING while the TPM is gone,
//! SERVING again when it is back, without a restart.
#![cfg(feature = "tpm")]

use std::time::Duration;

use sigil_testkit::Swtpm;
use sigil_tests::Daemon;
use tonic_health::pb::health_check_response::ServingStatus;

async fn status(endpoint: &str) -> ServingStatus {
    let channel = tonic::transport::Endpoint::from_shared(endpoint.to_owned())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "sigil.v1.Receipts".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_not_serving_while_the_tpm_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("tpm-state");
    let tpm = Swtpm::start(&state);
    let config = dir.path().join("sigild.toml");
    std::fs::write(
        &config,
        format!(
            "token_check_seconds = 1\n[backend]\nkind = \"tpm\"\ntcti = \"{}\"\n",
            tpm.tcti()
        ),
    )
    .unwrap();
    let daemon = Daemon::start(
        &dir.path().join("data"),
        &["--config", config.to_str().unwrap()],
    );
    assert_eq!(status(&daemon.endpoint).await, ServingStatus::Serving);

    let port = tpm.port;
    drop(tpm);
    let mut down = false;
    for _ in 0..100 {
        if status(&daemon.endpoint).await == ServingStatus::NotServing {
            down = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(down, "health stayed SERVING with the TPM gone");

    // The same TPM comes back on the same port: health recovers by itself.
    let _tpm = Swtpm::start_on(&state, port);
    let mut up = false;
    for _ in 0..100 {
        if status(&daemon.endpoint).await == ServingStatus::Serving {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "health did not recover when the TPM came back");
}
