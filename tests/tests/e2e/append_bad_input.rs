//! Every bad input to Append, AppendStream and SignDigest gets a specific
//! gRPC status naming what is wrong, and changes nothing on disk.

use serde_json::{json, Value};
use sigil_client::{Client, ClientError};
use sigil_proto::v1::{append_stream_reply, AppendRequest};
use sigil_tests::{pipelock_verify, record, Daemon};
use tonic::Code;

fn status<T: std::fmt::Debug>(r: Result<T, ClientError>) -> tonic::Status {
    match r {
        Err(ClientError::Status(s)) => s,
        other => panic!("expected a gRPC status, got {other:?}"),
    }
}

/// A valid record with `f` applied to its members.
fn with(f: impl FnOnce(&mut serde_json::Map<String, Value>)) -> String {
    let mut v: Value = serde_json::from_str(&record(1)).unwrap();
    f(v.as_object_mut().unwrap());
    v.to_string()
}

/// (what, chain, record JSON, text the status message must contain)
fn bad_appends() -> Vec<(&'static str, String, String, Vec<&'static str>)> {
    let c = || "c".to_string();
    let long = |n: usize| "x".repeat(n);
    let mut cases = Vec::new();
    for field in ["action_type", "target", "verdict", "transport"] {
        let r = with(|m| {
            m.remove(field);
        });
        let want = match field {
            "action_type" => vec!["record.action_type"],
            "target" => vec!["record.target"],
            "verdict" => vec!["record.verdict"],
            _ => vec!["record.transport"],
        };
        cases.push(("missing required field", c(), r, want));
    }
    cases.extend([
        (
            "unknown action_type",
            c(),
            with(|m| drop(m.insert("action_type".into(), json!("fly")))),
            vec!["record.action_type", "\"fly\""],
        ),
        (
            "unknown field",
            c(),
            with(|m| drop(m.insert("colour".into(), json!("red")))),
            vec!["\"colour\""],
        ),
        (
            "daemon-owned chain_seq",
            c(),
            with(|m| drop(m.insert("chain_seq".into(), json!(7)))),
            vec!["record.chain_seq"],
        ),
        (
            "daemon-owned timestamp",
            c(),
            with(|m| drop(m.insert("timestamp".into(), json!("2026-04-15T12:00:00Z")))),
            vec!["record.timestamp"],
        ),
        (
            "string over the field limit",
            c(),
            with(|m| drop(m.insert("target".into(), json!(long(16 * 1024 + 1))))),
            vec!["record.target", "16385", "16384"],
        ),
        (
            // Each string is under the field limit; together over 64 KiB.
            "record over the record limit",
            c(),
            with(|m| {
                for f in ["target", "principal", "actor", "intent", "method"] {
                    m.insert(f.into(), json!(long(14_000)));
                }
            }),
            vec!["record", "65536"],
        ),
        (
            "NUL byte",
            c(),
            with(|m| drop(m.insert("principal".into(), json!("org\u{0}tests")))),
            vec!["record.principal", "NUL"],
        ),
        (
            "duplicate keys",
            c(),
            record(1).replacen('{', r#"{"verdict":"block","#, 1),
            vec!["duplicate"],
        ),
        (
            "a float",
            c(),
            with(|m| drop(m.insert("shield".into(), json!({ "total_rewrites": 1.5 })))),
            vec!["record.shield.total_rewrites"],
        ),
        (
            "nested member of the wrong kind",
            c(),
            with(|m| drop(m.insert("shield".into(), json!({ "total_rewrites": "9" })))),
            vec!["record.shield.total_rewrites"],
        ),
        (
            "string field given a number",
            c(),
            with(|m| drop(m.insert("method".into(), json!(5)))),
            vec!["record.method"],
        ),
        ("not an object", c(), "[1,2]".into(), vec!["record"]),
    ]);
    for name in [
        String::new(),
        "a".repeat(65),
        "a/b".into(),
        "ä".into(),
        "../c".into(),
    ] {
        cases.push(("bad chain name", name, record(1), vec!["chain"]));
    }
    cases.push((
        "reserved chain name",
        "sigil.x".into(),
        record(1),
        vec!["chain", "reserved"],
    ));
    cases
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_get_invalid_argument_naming_the_field_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(&dir.path().join("data"), &[]);
    let mut client = Client::connect(&daemon.endpoint).await.unwrap();
    client.append("c", &record(0)).await.unwrap();
    let path = daemon.chain_path("c");
    let before = std::fs::read(&path).unwrap();

    for (what, chain, rec, want) in bad_appends() {
        let s = status(client.append(&chain, &rec).await);
        assert_eq!(s.code(), Code::InvalidArgument, "{what}: {s:?}");
        for w in want {
            assert!(
                s.message().contains(w),
                "{what}: {:?} lacks {w:?}",
                s.message()
            );
        }
    }
    let s = status(client.sign_digest("mediator", &[7u8; 32]).await);
    assert_eq!(
        s.code(),
        Code::PermissionDenied,
        "the chain key signs no digests: {s:?}"
    );
    daemon.admin().await.create_key("digests").await.unwrap();
    for len in [0, 31, 33, 64] {
        let s = status(client.sign_digest("digests", &vec![7u8; len]).await);
        assert_eq!(s.code(), Code::InvalidArgument, "{len} bytes: {s:?}");
        assert!(s.message().contains("digest"), "{s:?}");
        assert!(s.message().contains(&len.to_string()), "{s:?}");
    }
    let s = status(client.sign_digest("no-such-key", &[7u8; 32]).await);
    assert_eq!(s.code(), Code::NotFound, "{s:?}");
    assert!(s.message().contains("no-such-key"), "{s:?}");

    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "a refused input changed the chain"
    );
    // No other chain (nor a ledger) was created by a refused request.
    let mut files: Vec<String> = std::fs::read_dir(daemon.data_dir.join("chains"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files, ["c.jsonl"]);

    // The daemon still serves, and the chain is whole.
    client.append("c", &record(2)).await.unwrap();
    let (ok, out) = pipelock_verify(&path, &daemon.active_key(), "c", &[]);
    assert!(ok, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_record_in_a_stream_gets_its_own_error_and_the_stream_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(&dir.path().join("data"), &[]);
    let mut client = Client::connect(&daemon.endpoint).await.unwrap();
    client.append("s", &record(0)).await.unwrap();
    let path = daemon.chain_path("s");
    let before = std::fs::read_to_string(&path).unwrap();

    let bad_at = [3usize, 7];
    let reqs: Vec<AppendRequest> = (0..10)
        .map(|i| AppendRequest {
            chain: "s".into(),
            record_json: if bad_at.contains(&i) {
                with(|m| drop(m.remove("verdict")))
            } else {
                record(100 + i)
            },
            correlation_id: 1000 + i as u64,
        })
        .collect();
    let mut replies = client
        .append_stream(tokio_stream::iter(reqs))
        .await
        .unwrap();
    let mut receipts = Vec::new();
    for i in 0..10usize {
        let r = replies
            .message()
            .await
            .unwrap()
            .expect("a reply per request");
        assert_eq!(r.correlation_id, 1000 + i as u64, "replies out of order");
        match r.result.expect("a result") {
            append_stream_reply::Result::Error(e) => {
                assert!(bad_at.contains(&i), "good record {i} refused: {e:?}");
                assert_eq!(e.code, Code::InvalidArgument as i32, "{e:?}");
                assert!(e.message.contains("record.verdict"), "{e:?}");
            }
            append_stream_reply::Result::Receipt(a) => {
                assert!(!bad_at.contains(&i), "bad record {i} appended");
                assert_eq!(a.correlation_id, 1000 + i as u64);
                receipts.push(a);
            }
        }
    }
    assert!(replies.message().await.unwrap().is_none());
    assert_eq!(receipts.len(), 8);
    // The good ones were appended in request order, right after the tail.
    let after = std::fs::read_to_string(&path).unwrap();
    let new: Vec<&str> = after
        .strip_prefix(&before)
        .expect("prefix kept")
        .lines()
        .collect();
    assert_eq!(new.len(), 8);
    for (k, (line, a)) in new.iter().zip(&receipts).enumerate() {
        assert_eq!(*line, a.receipt_json);
        assert_eq!(a.chain_seq, 2 + k as u64);
    }
    let (ok, out) = pipelock_verify(&path, &daemon.active_key(), "s", &[]);
    assert!(ok, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_action_id_is_refused_but_an_intent_outcome_pair_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut daemon = Daemon::start(&data, &[]);
    let mut client = Client::connect(&daemon.endpoint).await.unwrap();
    let with_id = |i: usize, id: &str, phase: Option<&str>| {
        let mut v: Value = serde_json::from_str(&record(i)).unwrap();
        v["action_id"] = json!(id);
        if let Some(p) = phase {
            v["decision_phase"] = json!(p);
        }
        v.to_string()
    };
    let first = client
        .append("r", &with_id(1, "act-1", None))
        .await
        .unwrap();
    assert!(first.receipt_json.contains(r#""action_id":"act-1""#));
    let path = daemon.chain_path("r");
    let before = std::fs::read(&path).unwrap();
    // Even with other members changed, the same action_id is a replay.
    let s = status(client.append("r", &with_id(2, "act-1", None)).await);
    assert_eq!(s.code(), Code::AlreadyExists, "{s:?}");
    assert!(s.message().contains("act-1"), "{s:?}");
    assert_eq!(std::fs::read(&path).unwrap(), before);

    // Pipelock's intent/outcome pair shares one action_id.
    let intent = client
        .append("r", &with_id(3, "act-2", Some("intent")))
        .await
        .unwrap();
    let outcome = client
        .append("r", &with_id(4, "act-2", Some("outcome")))
        .await
        .unwrap();
    assert_eq!(outcome.chain_seq, intent.chain_seq + 1);
    let s = status(
        client
            .append("r", &with_id(5, "act-2", Some("intent")))
            .await,
    );
    assert_eq!(s.code(), Code::AlreadyExists, "{s:?}");
    // Another chain has its own action ids.
    client
        .append("r2", &with_id(6, "act-1", None))
        .await
        .unwrap();

    // The replay window survives a restart: it is rebuilt from the file.
    assert!(daemon.terminate());
    let daemon = Daemon::start(&data, &[]);
    let mut client = Client::connect(&daemon.endpoint).await.unwrap();
    let s = status(client.append("r", &with_id(7, "act-1", None)).await);
    assert_eq!(s.code(), Code::AlreadyExists, "{s:?}");
    let key = daemon.active_key();
    for chain in ["r", "r2"] {
        let (ok, out) = pipelock_verify(&daemon.chain_path(chain), &key, chain, &[]);
        assert!(ok, "{chain}: {out}");
    }
}
