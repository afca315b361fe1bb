//! Idle chains cost nothing: a heartbeat follows a chain's writes, a chain
//! nobody writes to signs no heartbeat at all, and after
//! `idle_close_seconds` it is closed (session_close, reason `idle`), its
//! file and memory released, and reopened by the next append.

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

fn last_close_reason(path: &std::path::Path) -> Option<String> {
    chain_receipts(path).last().and_then(|(_, r)| {
        r["action_record"]["session_control"]["close"]["close_reason"]
            .as_str()
            .map(str::to_owned)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_chain_is_closed_released_and_reopened_on_demand() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("sigild.toml");
    std::fs::write(
        &config,
        "[chains]\nidle_close_seconds = 1\nheartbeat_seconds = 0\n",
    )
    .unwrap();
    let mut daemon = Daemon::start(&data, &["--config", config.to_str().unwrap()]);
    let mut c = Client::connect(&daemon.endpoint).await.unwrap();
    c.append("idle", &record(0)).await.unwrap();
    let path = daemon.chain_path("idle");
    assert!(
        sigil_tests::wait_until(Duration::from_secs(5), || last_close_reason(&path)
            .as_deref()
            == Some("idle")),
        "no idle session_close"
    );
    // Its file is closed: the daemon holds no descriptor for it (released
    // just after the close is durable, so looked for until it is gone).
    let fds = || -> Vec<String> {
        std::fs::read_dir(format!("/proc/{}/fd", daemon.pid()))
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .map(|p| p.display().to_string())
            .collect()
    };
    assert!(
        sigil_tests::wait_until(Duration::from_secs(5), || !fds()
            .iter()
            .any(|f| f.ends_with("idle.jsonl"))),
        "{:?}",
        fds()
    );
    // Reopened on demand.
    let a = c.append("idle", &record(1)).await.unwrap();
    assert!(a.chain_seq > 0);
    assert!(
        sigil_tests::wait_until(Duration::from_secs(5), || last_close_reason(&path)
            .as_deref()
            == Some("idle")),
        "not closed again"
    );
    // A shutdown adds no receipt to a chain already closed (at most the
    // seal of the log's checkpoint that covers the close).
    let before = std::fs::read_to_string(&path).unwrap();
    assert!(daemon.terminate());
    let after = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        sigil_tests::without_seals(&before),
        sigil_tests::without_seals(&after)
    );
    let root = chain_receipts(&path)[0].1["signer_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = sigil_tests::sigil(&["verify", "chain", path.to_str().unwrap(), "--key", &root]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let (ok, msg) = sigil_tests::pipelock_verify(&path, &root, "idle", &[]);
    assert!(ok, "{msg}");
}
