//! What a chain resumes from is checked first: the last receipt's signature
//! (by a version of the chain's key name in keys.json) and its link to the
//! one before. A chain that cannot be resumed is refused on its own (the
//! daemon starts, that chain answers UNAVAILABLE naming the problem, the
//! others work), and symlinks in the data dir are refused.

use std::path::Path;

use ed25519_dalek::SigningKey;
use serde_json::{json, Value};
use sigil_client::{Client, ClientError};
use sigil_tests::forge::{hash_of, key_from_seed, resign, seed_file, with_key};
use sigil_tests::{assert_chain_verifies, chain_receipts, record, Daemon};

async fn append_n(endpoint: &str, chain: &str, n: usize, base: usize) {
    let mut c = Client::connect(endpoint).await.unwrap();
    for i in 0..n {
        c.append(chain, &record(base + i)).await.unwrap();
    }
}

/// The status of an append that must fail.
async fn refused(endpoint: &str, chain: &str) -> tonic::Status {
    let mut c = Client::connect(endpoint).await.unwrap();
    match c.append(chain, &record(999)).await {
        Ok(r) => panic!("{chain}: appended: {}", r.receipt_json),
        Err(ClientError::Status(s)) => s,
        Err(e) => panic!("{chain}: {e}"),
    }
}

/// A line that continues chain file `path` after its last receipt, built
/// from that receipt by `edit` and signed by `key`.
fn next_line(
    path: &Path,
    key: &SigningKey,
    prev_hash: Option<String>,
    edit: impl FnOnce(&mut serde_json::Map<String, Value>),
) -> String {
    let (_, last) = chain_receipts(path).pop().unwrap();
    let prev = prev_hash.unwrap_or_else(|| hash_of(&last));
    let seq = last["action_record"]["chain_seq"].as_u64().unwrap() + 1;
    let signer = hex::encode(key.verifying_key().to_bytes());
    let (line, _) = resign(&last, Some(&prev), &signer, &mut with_key(key), |ar| {
        ar.insert("chain_seq".into(), json!(seq));
        ar.remove("session_control");
        ar.insert("target".into(), json!("https://api.example.com/v1/forged"));
        edit(ar);
    });
    line
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_last_receipt_by_an_unknown_signer_refuses_only_that_chain() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut daemon = Daemon::start(&data, &[]);
    let root = daemon.active_key();
    append_n(&daemon.endpoint, "alien", 3, 0).await;
    append_n(&daemon.endpoint, "fine", 3, 10).await;
    assert!(daemon.terminate());

    // Linked and validly signed, by a key that is no version of "mediator".
    let path = daemon.chain_path("alien");
    let stranger = SigningKey::from_bytes(&[7u8; 32]);
    let stranger_hex = hex::encode(stranger.verifying_key().to_bytes());
    let line = next_line(&path, &stranger, None, |_| {});
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&line);
    text.push('\n');
    std::fs::write(&path, &text).unwrap();

    let mut daemon = Daemon::start(&data, &[]);
    for _ in 0..2 {
        let s = refused(&daemon.endpoint, "alien").await;
        assert_eq!(s.code(), tonic::Code::Unavailable, "{s:?}");
        let msg = s.message();
        assert!(msg.contains("alien.jsonl"), "{msg}");
        assert!(msg.contains(&stranger_hex), "{msg}");
        assert!(msg.contains("no version of key name \"mediator\""), "{msg}");
    }
    append_n(&daemon.endpoint, "fine", 2, 20).await;
    append_n(&daemon.endpoint, "new", 1, 30).await;
    assert!(daemon.terminate());
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        text,
        "alien was changed"
    );
    assert_chain_verifies(&daemon.chain_path("fine"), &root, "fine", &[]);
    assert_chain_verifies(&daemon.chain_path("new"), &root, "new", &[]);
}

/// A last receipt whose signature does not verify, or that the chain key
/// signed but that does not link to the one before, is not a receipt to go
/// on from: it is moved aside, and the chain goes on from the one before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_last_receipt_that_does_not_verify_or_link_is_not_appended_after() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut daemon = Daemon::start(&data, &[]);
    let root = daemon.active_key();
    append_n(&daemon.endpoint, "check", 3, 0).await;
    assert!(daemon.terminate());
    let path = daemon.chain_path("check");
    let chain_key = key_from_seed(&seed_file(&data, "mediator.v1"));

    let last_hash = || hash_of(&chain_receipts(&path).pop().unwrap().1);
    let bad_signature = {
        let mut v: Value =
            serde_json::from_str(&next_line(&path, &chain_key, None, |_| {})).unwrap();
        let sig = v["signature"].as_str().unwrap().to_owned();
        let flipped = if sig.ends_with('0') { "1" } else { "0" };
        v["signature"] = json!(format!("{}{flipped}", &sig[..sig.len() - 1]));
        serde_json::to_string(&v).unwrap()
    };
    let unlinked = next_line(&path, &chain_key, Some("ab".repeat(32)), |_| {});
    for (case, line) in [("bad signature", bad_signature), ("unlinked", unlinked)] {
        let before = std::fs::read_to_string(&path).unwrap();
        let kept = last_hash();
        std::fs::write(&path, format!("{before}{line}\n")).unwrap();

        let mut daemon = Daemon::start(&data, &[]);
        let after = std::fs::read_to_string(&path).unwrap();
        let rest = after.strip_prefix(&before).expect("kept lines unchanged");
        let open: Value = serde_json::from_str(rest.lines().next().unwrap()).unwrap();
        assert_eq!(
            open["action_record"]["session_control"]["open"]["prior_chain_head"], kept,
            "{case}: resumed after a receipt that does not verify or link"
        );
        assert!(!after.contains(&line), "{case}");
        assert_chain_verifies(&path, &root, "check", &[]);
        append_n(&daemon.endpoint, "check", 1, 100).await;
        assert!(daemon.terminate());
        assert_chain_verifies(&path, &root, "check", &[]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symlinked_chain_file_is_refused_and_the_other_chains_work() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut daemon = Daemon::start(&data, &[]);
    let root = daemon.active_key();
    append_n(&daemon.endpoint, "linked", 2, 0).await;
    append_n(&daemon.endpoint, "plain", 2, 10).await;
    assert!(daemon.terminate());

    let path = daemon.chain_path("linked");
    let elsewhere = dir.path().join("elsewhere.jsonl");
    std::fs::rename(&path, &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &path).unwrap();
    let text = std::fs::read_to_string(&elsewhere).unwrap();

    let mut daemon = Daemon::start(&data, &[]);
    let s = refused(&daemon.endpoint, "linked").await;
    assert_eq!(s.code(), tonic::Code::Unavailable, "{s:?}");
    assert!(s.message().contains("symbolic link"), "{}", s.message());
    assert!(s.message().contains("linked.jsonl"), "{}", s.message());
    append_n(&daemon.endpoint, "plain", 1, 20).await;
    assert!(daemon.terminate());
    assert_eq!(std::fs::read_to_string(&elsewhere).unwrap(), text);
    assert_chain_verifies(&daemon.chain_path("plain"), &root, "plain", &[]);
}

#[test]
fn a_symlinked_chains_dir_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut daemon = Daemon::start(&data, &[]);
    assert!(daemon.terminate());
    let chains = data.join("chains");
    let elsewhere = dir.path().join("chains-elsewhere");
    std::fs::rename(&chains, &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &chains).unwrap();
    let err = match Daemon::try_start(&data, &[]) {
        Ok(_) => panic!("sigild started on a symlinked chains dir"),
        Err(e) => e,
    };
    assert!(err.contains("symbolic link"), "{err}");
    assert!(err.contains("chains"), "{err}");
}
