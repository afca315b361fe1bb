//! SIGTERM under load: in-flight appends drain, no acknowledged receipt is
//! lost, and every chain ends with a session_close pipelock-verify accepts.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sigil_client::Client;
use sigil_tests::{pipelock_verify, record, sigil, Daemon};

const CHAINS: [&str; 3] = ["t-a", "t-b", "t-c"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_drains_and_closes_every_chain() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(&dir.path().join("data"), &[]);
    let key = daemon.active_key();
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for p in 0..6 {
        let (endpoint, stop) = (daemon.endpoint.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut client = Client::connect(&endpoint).await.unwrap();
            let mut acked = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let chain = CHAINS[(p + i) % CHAINS.len()];
                // After SIGTERM calls fail (the listener closes): stop then.
                match client.append(chain, &record(p * 100_000 + i)).await {
                    Ok(r) => acked.push((chain, r.receipt_json)),
                    Err(_) => break,
                }
                i += 1;
            }
            acked
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let exited_cleanly = tokio::task::spawn_blocking(move || daemon_terminate(daemon))
        .await
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    assert!(exited_cleanly.0, "sigild did not exit 0 on SIGTERM");
    assert!(
        acked.len() > 50,
        "only {} appends before SIGTERM",
        acked.len()
    );
    let data = exited_cleanly.1;
    for chain in CHAINS {
        let path = data.join("chains").join(format!("{chain}.jsonl"));
        let text = std::fs::read_to_string(&path).unwrap();
        for (c, line) in &acked {
            if *c == chain {
                assert!(
                    text.lines().any(|l| l == line),
                    "{chain}: acknowledged receipt lost"
                );
            }
        }
        let receipts = sigil_tests::without_seals(&text);
        let last: serde_json::Value =
            serde_json::from_str(receipts.lines().last().unwrap()).unwrap();
        assert_eq!(
            last["action_record"]["session_control"]["kind"], "session_close",
            "{chain} does not end with a session_close"
        );
        let (ok, out) = pipelock_verify(&path, &key, chain, &[]);
        assert!(ok, "{chain}: {out}");
        let out = sigil(&["verify", "chain", path.to_str().unwrap(), "--key", &key]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

fn daemon_terminate(mut daemon: Daemon) -> (bool, std::path::PathBuf) {
    let ok = daemon.terminate();
    (ok, daemon.data_dir.clone())
}
