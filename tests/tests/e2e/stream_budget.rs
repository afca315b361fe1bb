//! A client that streams records and never reads its replies cannot grow
//! the daemon's memory: past the stream's byte budget the daemon stops
//! reading, and everything goes through once the client reads again.

use std::time::Duration;

use sigil_client::Client;
use sigil_proto::v1::AppendRequest;
use sigil_tests::{chain_receipts, Daemon};

fn big_record(i: usize) -> String {
    serde_json::json!({
        "action_type": "write",
        "target": format!("https://api.example.com/v1/items/{i}"),
        "verdict": "allow",
        "transport": "https",
        "intent": "x".repeat(15_000),
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unread_stream_stops_being_read_at_its_budget() {
    const TOTAL: usize = 300;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sigild.toml");
    std::fs::write(&config, "[limits]\nstream_buffer_bytes = 200000\n").unwrap();
    let daemon = Daemon::start(
        &dir.path().join("data"),
        &["--config", config.to_str().unwrap()],
    );

    let (tx, rx) = tokio::sync::mpsc::channel::<AppendRequest>(1);
    let mut client = Client::connect(&daemon.endpoint).await.unwrap();
    let mut replies = client
        .append_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap();
    let sender = tokio::spawn(async move {
        let mut sent = 0;
        for i in 0..TOTAL {
            if tx
                .send(AppendRequest {
                    chain: "budget".into(),
                    record_json: big_record(i),
                    correlation_id: i as u64,
                })
                .await
                .is_err()
            {
                break;
            }
            sent += 1;
        }
        sent
    });
    // The client reads nothing for a while: the daemon takes the budget's
    // worth (200 kB, ~12 records) beyond what the transport buffers hold on
    // either side (HTTP/2 send buffer, the client's receive window), then
    // stops reading, so the sender blocks before 300 (4.5 MB).
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !sender.is_finished(),
        "the daemon read all 300 records with no reply read"
    );
    let durable = chain_receipts(&daemon.chain_path("budget")).len();
    assert!(
        durable < TOTAL,
        "{durable} receipts made while no reply was read"
    );

    // Reading again lets everything through, in order.
    let mut next = 0;
    while next < TOTAL {
        let r = replies.message().await.unwrap().expect("a reply");
        assert_eq!(r.correlation_id, next as u64);
        next += 1;
    }
    assert_eq!(sender.await.unwrap(), TOTAL);
}
