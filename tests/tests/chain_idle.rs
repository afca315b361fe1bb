//! Idle chains cost nothing: a heartbeat follows a chain's writes, and a
//! chain nobody writes to signs no heartbeat at all.

use std::time::Duration;

use sigil_client::Client;
use sigil_tests::{chain_receipts, record, Daemon};

fn heartbeats(daemon: &Daemon, chain: &str) -> usize {
    chain_receipts(&daemon.chain_path(chain))
        .iter()
        .filter(|(_, r)| r["action_record"]["session_control"]["kind"] == "heartbeat")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_chains_written_since_the_last_heartbeat_get_one() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let daemon = Daemon::start(&data, &["--heartbeat-seconds", "1"]);
    let mut c = Client::connect(&daemon.endpoint).await.unwrap();
    c.append("idle", &record(0)).await.unwrap();
    for i in 0..8 {
        c.append("busy", &record(i)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Four seconds in which "idle" was never written: one heartbeat at most
    // (the one after its single append); "busy" got them as it went.
    assert!(
        heartbeats(&daemon, "idle") <= 1,
        "an idle chain kept signing heartbeats"
    );
    assert!(
        heartbeats(&daemon, "busy") >= 2,
        "a written chain got no heartbeats"
    );
}
