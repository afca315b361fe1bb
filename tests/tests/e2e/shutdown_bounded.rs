//! SIGTERM drains within a bound: a client whose stream sends nothing more
//! (and never leaves) cannot hold the shutdown, and every chain still ends
//! with its session_close, which both verifiers accept.

use std::time::Duration;

use sigil_client::Client;
use sigil_proto::v1::AppendRequest;
use sigil_tests::{chain_receipts, pipelock_verify, record, Daemon};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_stream_cannot_hold_the_drain() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sigild.toml");
    std::fs::write(&config, "shutdown_grace_seconds = 2\n").unwrap();
    let mut daemon = Daemon::start(
        &dir.path().join("data"),
        &["--config", config.to_str().unwrap()],
    );
    let root = daemon.active_key();
    let mut unary = Client::connect(&daemon.endpoint).await.unwrap();
    unary.append("quiet-b", &record(0)).await.unwrap();

    // A stream that sends one record and then nothing, and is never closed.
    let (tx, rx) = tokio::sync::mpsc::channel::<AppendRequest>(4);
    tx.send(AppendRequest {
        chain: "quiet-a".into(),
        record_json: record(1),
        correlation_id: 1,
    })
    .await
    .unwrap();
    let mut client = Client::connect(&daemon.endpoint).await.unwrap();
    let mut replies = client
        .append_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap();
    assert!(replies.message().await.unwrap().is_some(), "first reply");

    // SIGTERM: the daemon exits on its own although the stream stays open
    // (`tx` is alive until the end of the test).
    let stopped = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::task::spawn_blocking(move || {
            let ok = daemon.terminate();
            (ok, daemon)
        }),
    )
    .await
    .expect("the drain was not bounded: sigild still runs with a silent stream open")
    .unwrap();
    assert!(stopped.0, "sigild did not exit 0");
    let daemon = stopped.1;
    for chain in ["quiet-a", "quiet-b"] {
        let path = daemon.chain_path(chain);
        let last = chain_receipts(&path).pop().unwrap().1;
        assert_eq!(
            last["action_record"]["session_control"]["kind"], "session_close",
            "{chain}: {last}"
        );
        let (ok, out) = pipelock_verify(&path, &root, chain, &[]);
        assert!(ok, "{chain}: {out}");
    }
    drop(tx);
}
