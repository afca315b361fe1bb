//! Revocation: recorded as a receipt on every chain and in the directory;
//! `sigil verify --directory` then refuses exactly the receipts the revoked
//! version signed at or after compromised_since; pipelock-verify, which has
//! no notion of revocation, still accepts the chain. Bad requests change
//! nothing.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;
use sigil_client::Client;
use sigil_proto::timestamp;
use sigil_tests::{
    boundaries, chain_receipts, directory_keys, export_endorsements, pipelock_verify, record,
    sigil_verify_chain, Daemon,
};

const CHAINS: [&str; 2] = ["rev-0", "rev-1"];

async fn append(endpoint: &str, n: usize, base: usize) {
    let mut client = Client::connect(endpoint).await.unwrap();
    for i in 0..n {
        client
            .append(CHAINS[i % 2], &record(base + i))
            .await
            .unwrap();
    }
}

/// `sigil keys ARGS...` off the runtime: (success, stdout, stderr).
async fn keys(daemon: &Daemon, args: &[&str]) -> (bool, String, String) {
    daemon.keys_cli(args).await
}

/// pipelock-verify accepts the chain from `root` with its endorsements.
fn assert_pipelock_accepts(path: &Path, root: &str, name: &str, tmp: &Path) {
    let ends = export_endorsements(path, &tmp.join(format!("ends-{name}")));
    let (ok, msg) = pipelock_verify(path, root, name, &ends);
    assert!(ok, "pipelock-verify rejected {name}: {msg}");
}

/// (line, chain_seq) of every receipt named in sigil's revocation error.
fn flagged(out: &str) -> BTreeSet<(usize, u64)> {
    out.split("line ")
        .skip(1)
        .filter_map(|s| {
            let (line, rest) = s.split_once(" (chain_seq ")?;
            let (seq, _) = rest.split_once(',')?;
            Some((line.parse().ok()?, seq.parse().ok()?))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_the_active_key_refuses_its_receipts_from_compromised_since() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(&dir.path().join("data"), &[]);
    let root = daemon.active_key();
    append(&daemon.endpoint, 12, 0).await;
    // T: the timestamp of the 4th producer receipt of rev-0.
    let producer = |r: &Value| r["action_record"]["actor"] == "agent:tests";
    let first = chain_receipts(&daemon.chain_path(CHAINS[0]));
    let t = first.iter().filter(|(_, r)| producer(r)).nth(3).unwrap().1["action_record"]
        ["timestamp"]
        .as_str()
        .unwrap()
        .to_owned();
    append(&daemon.endpoint, 8, 100).await;

    let (ok, out, err) = keys(
        &daemon,
        &[
            "revoke",
            "--key",
            "mediator",
            "--version",
            "1",
            "--reason",
            "seed copied off the host",
            "--compromised-since",
            &t,
        ],
    )
    .await;
    assert!(ok, "revoke: {err}");
    let resp: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(resp["keyid"], "mediator.v1", "{resp}");
    assert_eq!(resp["rotated_to"], "mediator.v2", "{resp}");

    let dir_keys = directory_keys(&daemon.endpoint);
    let v1 = dir_keys.iter().find(|k| k["version"] == 1).unwrap();
    assert_eq!(v1["state"], "revoked", "{v1}");
    assert_eq!(v1["compromised_since"], t.as_str(), "{v1}");
    assert_eq!(v1["reason"], "seed copied off the host", "{v1}");
    assert!(v1["revoked"].is_string(), "{v1}");
    let v2 = dir_keys.iter().find(|k| k["version"] == 2).unwrap();
    assert_eq!(v2["state"], "active", "{v2}");
    assert_eq!(dir_keys[0]["keyid"], "mediator.v2");

    let since = timestamp::parse(&t).unwrap();
    let url = daemon.directory_url();
    for name in CHAINS {
        let path = daemon.chain_path(name);
        let receipts = chain_receipts(&path);
        let boundary = receipts
            .iter()
            .position(|(_, r)| !r["action_record"]["key_transition"].is_null())
            .expect("a rotation boundary");
        let revocation = receipts
            .iter()
            .position(|(_, r)| r["action_record"]["verdict"] == "revoked")
            .unwrap_or_else(|| panic!("{name}: no revocation receipt"));
        assert!(
            revocation > boundary,
            "{name}: revocation before the boundary"
        );
        let ar = &receipts[revocation].1["action_record"];
        assert!(ar["target"].as_str().unwrap().contains("revoke"), "{ar}");
        assert_eq!(receipts[revocation].1["signer_key"], v2["public_key"]);
        assert_eq!(boundaries(&path).len(), 1, "{name}");

        // Exactly v1's receipts at or after T.
        let want: BTreeSet<(usize, u64)> = receipts
            .iter()
            .filter(|(_, r)| r["signer_key"] == root.as_str())
            .filter(|(_, r)| {
                timestamp::parse(r["action_record"]["timestamp"].as_str().unwrap()).unwrap()
                    >= since
            })
            .map(|(line, r)| (*line, r["action_record"]["chain_seq"].as_u64().unwrap()))
            .collect();
        assert!(!want.is_empty(), "{name}: no receipt after T");
        assert!(
            want.len() < receipts.len() - 2,
            "{name}: T is not inside the chain"
        );
        let (code, msg) = sigil_verify_chain(&path, &["--key", &root, "--directory", &url]);
        assert_eq!(code, 1, "{name}: {msg}");
        assert_eq!(flagged(&msg), want, "{name}: {msg}");
        assert!(msg.contains("revoked key"), "{msg}");
        assert_pipelock_accepts(&path, &root, name, dir.path());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_retired_key_after_its_last_receipt_does_not_rotate_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(&dir.path().join("data"), &[]);
    let root = daemon.active_key();
    append(&daemon.endpoint, 10, 0).await;
    let (ok, _, err) = keys(&daemon, &["rotate"]).await;
    assert!(ok, "{err}");
    append(&daemon.endpoint, 4, 100).await;
    // The boundary is v2's first receipt: every v1 receipt is older.
    let (b, _) = boundaries(&daemon.chain_path(CHAINS[0])).remove(0);
    let after_last_v1 = b["timestamp"].as_str().unwrap().to_owned();
    let active = daemon.active_key();
    let before: Vec<usize> = CHAINS
        .iter()
        .map(|c| boundaries(&daemon.chain_path(c)).len())
        .collect();

    let (ok, out, err) = keys(
        &daemon,
        &[
            "revoke",
            "--key",
            "mediator",
            "--version",
            "1",
            "--reason",
            "decommissioned token",
            "--compromised-since",
            &after_last_v1,
        ],
    )
    .await;
    assert!(ok, "revoke: {err}");
    let resp: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        resp["rotated_to"], "",
        "a retired version was rotated: {resp}"
    );
    assert_eq!(daemon.active_key(), active, "the signing key changed");
    assert_eq!(directory_keys(&daemon.endpoint).len(), 2);
    let url = daemon.directory_url();
    for (name, n) in CHAINS.iter().zip(before) {
        let path = daemon.chain_path(name);
        assert_eq!(boundaries(&path).len(), n, "{name}: a new boundary");
        let last = chain_receipts(&path).pop().unwrap().1;
        assert_eq!(last["action_record"]["verdict"], "revoked", "{name}");
        assert_eq!(last["signer_key"], active.as_str());
        let (code, msg) = sigil_verify_chain(&path, &["--key", &root, "--directory", &url]);
        assert_eq!(code, 0, "{name}: {msg}");
        assert_pipelock_accepts(&path, &root, name, dir.path());
    }
}

/// keys.json and every chain file, byte for byte.
fn snapshot(daemon: &Daemon) -> Vec<Vec<u8>> {
    let mut files = vec![std::fs::read(daemon.data_dir.join("keys.json")).unwrap()];
    files.extend(
        CHAINS
            .iter()
            .map(|c| std::fs::read(daemon.chain_path(c)).unwrap()),
    );
    files
}

/// A revoke sigild refuses leaves keys and chains as they were.
async fn refused_changes_nothing(args: &[&str], complaint: &str) {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(&dir.path().join("data"), &[]);
    append(&daemon.endpoint, 6, 0).await;
    let before = snapshot(&daemon);
    let mut all = vec!["revoke", "--key", "mediator"];
    all.extend_from_slice(args);
    let (ok, out, err) = keys(&daemon, &all).await;
    assert!(!ok, "revoke {args:?} succeeded: {out}");
    assert!(err.contains(complaint), "revoke {args:?}: {err}");
    assert!(
        snapshot(&daemon) == before,
        "revoke {args:?} changed keys or chains"
    );
    assert_eq!(directory_keys(&daemon.endpoint).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_an_unknown_version_changes_nothing() {
    refused_changes_nothing(&["--version", "7", "--reason", "x"], "no version 7").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_with_a_malformed_compromised_since_changes_nothing() {
    // Version 1 signs: a request that is refused must not rotate it first.
    for bad in [
        "yesterday",
        "2026-13-01T00:00:00Z",
        "2026-04-15T12:00:00.500Z",
    ] {
        refused_changes_nothing(
            &[
                "--version",
                "1",
                "--reason",
                "x",
                "--compromised-since",
                bad,
            ],
            "compromised_since",
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_the_active_key_without_a_reason_changes_nothing() {
    refused_changes_nothing(&["--version", "1", "--reason", " "], "reason").await;
}
