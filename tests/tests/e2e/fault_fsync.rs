//! A failed fsync is fail-stop for the chain: the reply says honestly what
//! may be on disk, and the chain is read again from disk before it takes
//! another append. Faults are injected with the daemon's fault points
//! (`SIGIL_FAIL_AT`), armed while a file exists (`SIGIL_FAIL_WHILE`).

use std::path::Path;

use serde_json::Value;
use sigil_client::{Client, ClientError};
use sigil_tests::forge::hash_of;
use sigil_tests::{assert_chain_verifies, record, Daemon};

fn parse(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"))
}

/// Starts sigild with I/O failing at `points` while `armed` exists.
fn start(data: &Path, armed: &Path, points: &str) -> Daemon {
    Daemon::try_start_env(
        data,
        &[],
        &[
            ("SIGIL_FAIL_AT", points),
            ("SIGIL_FAIL_WHILE", armed.to_str().unwrap()),
        ],
    )
    .unwrap_or_else(|e| panic!("sigild did not start: {e}"))
}

async fn failed_append(c: &mut Client, chain: &str, i: usize) -> tonic::Status {
    match c.append(chain, &record(i)).await {
        Ok(r) => panic!("appended despite the fault: {}", r.receipt_json),
        Err(ClientError::Status(s)) => s,
        Err(e) => panic!("{e}"),
    }
}

/// The fsync fails and so does cutting the batch back: its line is in the
/// file, so the reply must not say that nothing was written. The chain
/// then goes on from what the disk holds, that line included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_fsync_not_cut_back_is_outcome_unknown_and_the_chain_is_read_again() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let armed = dir.path().join("armed");
    let daemon = start(&data, &armed, "store.sync,store.cut_back");
    let root = daemon.active_key();
    let mut c = Client::connect(&daemon.endpoint).await.unwrap();
    for i in 0..3 {
        c.append("fs", &record(i)).await.unwrap();
    }
    let path = daemon.chain_path("fs");

    std::fs::write(&armed, b"").unwrap();
    let s = failed_append(&mut c, "fs", 3).await;
    assert_eq!(s.code(), tonic::Code::Unavailable, "{s:?}");
    let msg = s.message();
    assert!(
        msg.contains(
            "outcome unknown: the receipt may be durable; check the chain before retrying"
        ),
        "{msg}"
    );
    assert!(
        !msg.contains("nothing of this request was written"),
        "{msg}"
    );
    // It may indeed persist: the line is in the file.
    let text = std::fs::read_to_string(&path).unwrap();
    let unknown = parse(text.lines().last().unwrap());
    assert_eq!(
        unknown["action_record"]["target"],
        "https://api.example.com/v1/items/3"
    );

    std::fs::remove_file(&armed).unwrap();
    let r = c.append("fs", &record(4)).await.unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.last(), Some(&r.receipt_json.as_str()));
    // Read again from disk: a restart open after the line of unknown
    // outcome, then the new receipt.
    let open = parse(lines[lines.len() - 2]);
    let o = &open["action_record"]["session_control"]["open"];
    assert_eq!(
        open["action_record"]["session_control"]["kind"],
        "session_open"
    );
    assert_eq!(o["prior_chain_head"], hash_of(&unknown));
    assert_eq!(parse(lines[lines.len() - 3]), unknown);
    assert_chain_verifies(&path, &root, "fs", &[]);
}

/// The fsync fails and the cut back is durable: then, and only then,
/// nothing was written. The in-memory tail (which had moved on to the
/// failed receipt) is dropped: the chain goes on from the disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_fsync_cut_back_says_nothing_written_and_the_chain_is_read_again() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let armed = dir.path().join("armed");
    let mut daemon = start(&data, &armed, "store.sync");
    let root = daemon.active_key();
    let mut c = Client::connect(&daemon.endpoint).await.unwrap();
    let mut last = String::new();
    for i in 0..3 {
        last = c.append("fs", &record(i)).await.unwrap().receipt_json;
    }
    let path = daemon.chain_path("fs");
    let before = std::fs::read(&path).unwrap();

    std::fs::write(&armed, b"").unwrap();
    for i in 3..5 {
        // The second one finds the chain still failing when it re-reads it.
        let s = failed_append(&mut c, "fs", i).await;
        assert_eq!(s.code(), tonic::Code::Unavailable, "{s:?}");
        assert!(
            s.message().contains("nothing of this request was written")
                || s.message().contains("cannot be opened"),
            "{}",
            s.message()
        );
        assert!(!s.message().contains("outcome unknown"), "{}", s.message());
        assert_eq!(std::fs::read(&path).unwrap(), before, "the file changed");
    }

    std::fs::remove_file(&armed).unwrap();
    let r = c.append("fs", &record(5)).await.unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let rest = text
        .strip_prefix(std::str::from_utf8(&before).unwrap())
        .expect("acknowledged lines kept");
    let rest: Vec<&str> = rest.lines().collect();
    assert_eq!(rest.len(), 2, "{rest:?}");
    let open = parse(rest[0]);
    assert_eq!(
        open["action_record"]["session_control"]["open"]["prior_chain_head"],
        hash_of(&parse(&last))
    );
    assert_eq!(rest[1], r.receipt_json);
    assert_chain_verifies(&path, &root, "fs", &[]);
    assert!(daemon.terminate());
    assert_chain_verifies(&path, &root, "fs", &[]);
}

/// `sigil_key_signatures` for `keyid`, from /metrics.
async fn signatures(daemon: &Daemon, keyid: &str) -> u64 {
    let text = sigil_client::fetch::get(&format!("http://{}/metrics", daemon.http))
        .await
        .unwrap();
    let prefix = format!("sigil_key_signatures{{keyid=\"{keyid}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {prefix} in /metrics"))
        .trim()
        .parse()
        .unwrap()
}

/// A chain read again after a failed write does not count the signatures
/// in its file twice (which would bring the next scheduled rotation early).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reopened_chain_does_not_count_its_signatures_twice() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let armed = dir.path().join("armed");
    let daemon = start(&data, &armed, "store.sync");
    let mut c = Client::connect(&daemon.endpoint).await.unwrap();
    for i in 0..30 {
        c.append("count", &record(i)).await.unwrap();
    }
    let before = signatures(&daemon, "mediator.v1").await;
    std::fs::write(&armed, b"").unwrap();
    failed_append(&mut c, "count", 100).await;
    std::fs::remove_file(&armed).unwrap();
    c.append("count", &record(101)).await.unwrap();
    let after = signatures(&daemon, "mediator.v1").await;
    assert!(
        after - before < 5,
        "the reopen counted the chain's signatures again: {before} -> {after}"
    );
}
