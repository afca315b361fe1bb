//! Durability: kill -9 while producers append loses no acknowledged
//! receipt; a torn last line is cut at the next start; SIGTERM closes every
//! chain; a data dir has one daemon at a time.

use std::collections::HashSet;
use std::io::Write;
use std::time::Duration;

use serde_json::Value;
use sigil_client::Client;
use sigil_tests::{assert_chain_verifies, record, Daemon};

const CHAINS: [&str; 2] = ["crash-0", "crash-1"];

fn action_record(line: &str) -> Value {
    let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    v["action_record"].clone()
}

fn control_kind(line: &str) -> String {
    action_record(line)["session_control"]["kind"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_appending_loses_no_acknowledged_receipt() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut daemon = Daemon::start(&data, &[]);
    let key = daemon.active_key();
    let mut tasks = Vec::new();
    for p in 0..4usize {
        let endpoint = daemon.endpoint.clone();
        tasks.push(tokio::spawn(async move {
            let mut client = Client::connect(&endpoint).await.unwrap();
            let mut acked = Vec::new();
            for i in 0.. {
                let chain = CHAINS[(p + i) % CHAINS.len()];
                match client.append(chain, &record(p * 1_000_000 + i)).await {
                    Ok(r) => acked.push((chain, r.receipt_json)),
                    // The daemon is gone: what was not acknowledged may be lost.
                    Err(_) => break,
                }
            }
            acked
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    daemon.kill9();
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    assert!(
        acked.len() >= 8,
        "producers got only {} receipts",
        acked.len()
    );

    // What survived the crash, cut at the last whole line.
    let mut survived = Vec::new();
    for name in CHAINS {
        let bytes = std::fs::read(daemon.chain_path(name)).unwrap();
        let whole = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let text = String::from_utf8(bytes[..whole].to_vec()).unwrap();
        let lines: HashSet<&str> = text.lines().collect();
        for (_, r) in acked.iter().filter(|(c, _)| *c == name) {
            assert!(
                lines.contains(r.as_str()),
                "{name} lost an acknowledged receipt"
            );
        }
        survived.push(text);
    }

    let daemon = Daemon::start(&data, &[]);
    assert_eq!(daemon.active_key(), key, "the key changed across the crash");
    for (name, before) in CHAINS.iter().zip(&survived) {
        let path = daemon.chain_path(name);
        let after = std::fs::read_to_string(&path).unwrap();
        let rest = after
            .strip_prefix(before.as_str())
            .expect("pre-crash lines kept");
        // The first line after the crash point is a restart session_open
        // that names the last receipt before it.
        let open = rest.lines().next().expect("a restart open");
        assert_eq!(control_kind(open), "session_open", "{open}");
        let last = action_record(before.lines().last().unwrap());
        let o = &action_record(open)["session_control"]["open"];
        assert_eq!(o["prior_chain_seq"], last["chain_seq"], "{open}");
        assert_eq!(o["recorder_session"], *name);
        assert_ne!(action_record(open)["run_nonce"], last["run_nonce"]);
        assert_chain_verifies(&path, &key, name, &[]);
    }

    // Appends continue on both chains, and they still verify.
    let mut client = Client::connect(&daemon.endpoint).await.unwrap();
    for i in 0..20 {
        let name = CHAINS[i % 2];
        let r = client.append(name, &record(9_000_000 + i)).await.unwrap();
        let text = std::fs::read_to_string(daemon.chain_path(name)).unwrap();
        assert_eq!(text.lines().last(), Some(r.receipt_json.as_str()));
    }
    for name in CHAINS {
        assert_chain_verifies(&daemon.chain_path(name), &key, name, &[]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_last_line_is_cut_at_start_and_the_chain_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut daemon = Daemon::start(&data, &[]);
    let key = daemon.active_key();
    let mut client = Client::connect(&daemon.endpoint).await.unwrap();
    let mut last = String::new();
    for i in 0..5 {
        last = client
            .append("torn", &record(i))
            .await
            .unwrap()
            .receipt_json;
    }
    assert!(daemon.terminate());
    let path = daemon.chain_path("torn");
    let whole = std::fs::read(&path).unwrap();
    // Half of a receipt line, no newline: what a crash mid-write leaves.
    let half = &last.as_bytes()[..last.len() / 2];
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(half)
        .unwrap();

    let daemon = Daemon::start(&data, &[]);
    let after = std::fs::read(&path).unwrap();
    assert!(after.starts_with(&whole), "whole lines were changed");
    let rest = std::str::from_utf8(&after[whole.len()..]).unwrap();
    assert!(rest.ends_with('\n'));
    assert_eq!(
        rest.lines().count(),
        1,
        "only the restart open follows: {rest}"
    );
    assert_eq!(control_kind(rest.trim_end()), "session_open");
    assert_chain_verifies(&path, &key, "torn", &[]);

    let mut client = Client::connect(&daemon.endpoint).await.unwrap();
    let r = client.append("torn", &record(5)).await.unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().last(), Some(r.receipt_json.as_str()));
    // No trace of the torn bytes: every line is a whole receipt.
    for l in text.lines() {
        assert!(serde_json::from_str::<Value>(l).is_ok(), "{l}");
    }
    assert_chain_verifies(&path, &key, "torn", &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_exits_0_and_closes_every_chain_including_the_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut daemon = Daemon::start(&data, &[]);
    let key = daemon.active_key();
    let mut client = Client::connect(&daemon.endpoint).await.unwrap();
    for i in 0..10 {
        client.append(CHAINS[i % 2], &record(i)).await.unwrap();
    }
    daemon.admin().await.create_key("digests").await.unwrap();
    let signed = client.sign_digest("digests", &[0x5a; 32]).await.unwrap();
    assert_eq!(signed.ledger_chain, "sigil.ledger.digests");
    assert_ne!(signed.signer_key, key, "a digest key is not the chain key");
    drop(client);
    assert!(daemon.terminate(), "sigild did not exit 0 on SIGTERM");

    let names = [CHAINS[0], CHAINS[1], "sigil.ledger.digests"];
    let closed = |daemon: &Daemon| {
        for name in names {
            let path = daemon.chain_path(name);
            let text = std::fs::read_to_string(&path).unwrap();
            // The last receipt closes the run; the seal of the log's last
            // checkpoint follows it.
            let receipts = sigil_tests::without_seals(&text);
            let last = receipts.lines().last().unwrap();
            assert_eq!(control_kind(last), "session_close", "{name}: {last}");
            assert_ne!(text, receipts, "{name}: no seal after the close");
            // Every chain, the ledger included, is signed by the chain key.
            assert_chain_verifies(&path, &key, name, &[]);
        }
    };
    closed(&daemon);
    // A second run (restart open, appends, close) closes and verifies too:
    // the close counts the receipts of a segment that spans two runs.
    let mut daemon = Daemon::start(&data, &[]);
    let mut client = Client::connect(&daemon.endpoint).await.unwrap();
    client.append(CHAINS[0], &record(10)).await.unwrap();
    client.sign_digest("digests", &[0xa5; 32]).await.unwrap();
    drop(client);
    assert!(daemon.terminate(), "sigild did not exit 0 on SIGTERM");
    closed(&daemon);
    // Nothing else in the chains dir.
    let files: HashSet<String> = std::fs::read_dir(data.join("chains"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let want: HashSet<String> = names.iter().map(|n| format!("{n}.jsonl")).collect();
    assert_eq!(files, want);
}

#[test]
fn a_second_daemon_on_the_same_data_dir_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut first = Daemon::start(&data, &[]);
    let err = match Daemon::try_start(&data, &[]) {
        Ok(_) => panic!("a second sigild started on a data dir in use"),
        Err(e) => e,
    };
    assert!(err.contains("in use"), "{err}");
    // The first one is unharmed, and once it is gone the dir is free again.
    let key = first.active_key();
    assert!(first.terminate());
    let again = Daemon::start(&data, &[]);
    assert_eq!(again.active_key(), key);
}

/// SIGTERM as soon as sigild says it is ready must still be a clean stop:
/// a supervisor may stop a daemon it just started.
#[test]
fn sigterm_right_after_ready_is_a_clean_stop() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for _ in 0..3 {
        let mut daemon = Daemon::start(&data, &[]);
        assert!(
            daemon.terminate(),
            "sigild died of SIGTERM instead of exiting 0"
        );
    }
}
