//! AppendStream at volume: one reply per request, in request order; each
//! receipt is the chain file's line at its seq; chains verify.

use serde_json::Value;
use sigil_client::Client;
use sigil_proto::v1::{append_stream_reply, AppendRequest, AppendResponse};
use sigil_tests::{pipelock_verify, record, sigil, Daemon};

const PER_CHAIN: usize = 2500;

/// Sends `reqs` on one stream; returns the receipts, checking that replies
/// come one per request, in request order, and none is an error.
async fn stream(endpoint: String, reqs: Vec<AppendRequest>) -> Vec<AppendResponse> {
    let ids: Vec<u64> = reqs.iter().map(|r| r.correlation_id).collect();
    let mut client = Client::connect(&endpoint).await.unwrap();
    let mut replies = client
        .append_stream(tokio_stream::iter(reqs))
        .await
        .unwrap();
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let r = replies
            .message()
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("stream ended before the reply to {id}"));
        assert_eq!(r.correlation_id, id, "reply out of request order");
        match r.result {
            Some(append_stream_reply::Result::Receipt(a)) => {
                assert_eq!(a.correlation_id, id);
                out.push(a);
            }
            other => panic!("request {id} failed: {other:?}"),
        }
    }
    assert!(replies.message().await.unwrap().is_none(), "extra replies");
    out
}

fn requests(chain: &str, ids: std::ops::Range<usize>) -> Vec<AppendRequest> {
    ids.map(|i| AppendRequest {
        chain: chain.into(),
        record_json: record(i),
        correlation_id: i as u64,
    })
    .collect()
}

/// The receipts of one chain, in reply order, are its file's lines 1..,
/// each linked to the one before by hash.
fn check_chain(daemon: &Daemon, key: &str, name: &str, receipts: &[&AppendResponse]) {
    let path = daemon.chain_path(name);
    let text = sigil_tests::without_seals(&std::fs::read_to_string(&path).unwrap());
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.len(),
        receipts.len() + 1,
        "{name}: genesis + receipts"
    );
    let mut prev_hash: Option<&str> = None;
    for (k, a) in receipts.iter().enumerate() {
        assert_eq!(a.chain, name);
        assert_eq!(a.chain_seq, k as u64 + 1, "{name}: seq not consecutive");
        assert_eq!(
            lines[k + 1],
            a.receipt_json,
            "{name}: line {} differs",
            k + 1
        );
        let v: Value = serde_json::from_str(&a.receipt_json).unwrap();
        let ar = &v["action_record"];
        assert_eq!(ar["chain_seq"], a.chain_seq);
        if let Some(h) = prev_hash {
            assert_eq!(ar["chain_prev_hash"], h, "{name}: seq {} link", a.chain_seq);
        }
        prev_hash = Some(&a.receipt_hash);
    }
    let (ok, out) = pipelock_verify(&path, key, name, &[]);
    assert!(ok, "pipelock-verify rejected {name}: {out}");
    assert!(
        out.contains(&format!("Receipts:  {}", receipts.len() + 1)),
        "{out}"
    );
    let out = sigil(&["verify", "chain", path.to_str().unwrap(), "--key", key]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_records_on_two_streams_reply_in_order_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(&dir.path().join("data"), &[]);
    let a = tokio::spawn(stream(
        daemon.endpoint.clone(),
        requests("stream-a", 0..PER_CHAIN),
    ));
    let b = tokio::spawn(stream(
        daemon.endpoint.clone(),
        requests("stream-b", PER_CHAIN..2 * PER_CHAIN),
    ));
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    assert_eq!(a.len() + b.len(), 2 * PER_CHAIN);
    // Each reply carries its own record.
    for r in a.iter().chain(&b) {
        let want = format!("items/{}\"", r.correlation_id);
        assert!(r.receipt_json.contains(&want), "{}", r.receipt_json);
    }
    let key = daemon.active_key();
    check_chain(&daemon, &key, "stream-a", &a.iter().collect::<Vec<_>>());
    check_chain(&daemon, &key, "stream-b", &b.iter().collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_stream_over_two_chains_keeps_request_order() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(&dir.path().join("data"), &[]);
    // Alternate chains in runs of uneven length, so replies from the two
    // chain tasks could overtake each other if order were not kept.
    let reqs: Vec<AppendRequest> = (0..2000)
        .map(|i| AppendRequest {
            chain: if (i / 3 + i / 7) % 2 == 0 {
                "mix-a"
            } else {
                "mix-b"
            }
            .into(),
            record_json: record(i),
            correlation_id: 77_000 + i as u64,
        })
        .collect();
    let replies = stream(daemon.endpoint.clone(), reqs).await;
    let key = daemon.active_key();
    for name in ["mix-a", "mix-b"] {
        let mine: Vec<&AppendResponse> = replies.iter().filter(|r| r.chain == name).collect();
        assert!(mine.len() > 500, "{name}: {}", mine.len());
        check_chain(&daemon, &key, name, &mine);
    }
}
