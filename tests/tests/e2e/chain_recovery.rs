//! A damaged tail after a power loss: whole lines after the last valid,
//! linked receipt that are not part of the chain (garbage, JSON that is no
//! receipt, a genuine receipt that does not link there) are moved aside
//! into `<chain>.jsonl.cut-<unix seconds>` at the next start, the cut is
//! recorded in a `sigil://chain/cut` receipt, and the chain goes on and
//! verifies with every acknowledged receipt in it. Damage that the chain
//! goes on after (acknowledged receipts may follow it) is never cut: that
//! chain is refused, and every other chain starts.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;
use sigil_client::{Client, ClientError};
use sigil_tests::{assert_chain_verifies, record, Daemon};

/// The files kept aside next to chain file `path`.
fn asides(path: &Path) -> HashSet<PathBuf> {
    let prefix = format!("{}.cut-", path.file_name().unwrap().to_string_lossy());
    std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&prefix)
        })
        .collect()
}

fn append_raw(path: &Path, bytes: &[u8]) {
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .unwrap()
        .write_all(bytes)
        .unwrap();
}

fn parse(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"))
}

async fn append_n(endpoint: &str, chain: &str, n: usize, base: usize) -> Vec<String> {
    let mut c = Client::connect(endpoint).await.unwrap();
    let mut acked = Vec::new();
    for i in 0..n {
        acked.push(
            c.append(chain, &record(base + i))
                .await
                .unwrap()
                .receipt_json,
        );
    }
    acked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_tail_is_moved_aside_recorded_and_the_chain_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut daemon = Daemon::start(&data, &[]);
    let root = daemon.active_key();
    let mut acked = append_n(&daemon.endpoint, "cut", 4, 0).await;
    let other = append_n(&daemon.endpoint, "other", 2, 100).await;
    assert!(daemon.terminate());
    let path = daemon.chain_path("cut");
    let early = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .nth(2)
        .unwrap()
        .to_owned();

    // Whole lines a power loss (or a stray writer) can leave at the end.
    let cases: Vec<(&str, String)> = vec![
        ("garbage", "\0\0\0 not json at all\n".into()),
        ("json, not a receipt", "{\"hello\":\"world\"}\n".into()),
        ("an earlier receipt again", format!("{early}\n")),
        ("a receipt of another chain", format!("{}\n", other[1])),
        (
            "several at once",
            format!("\n{early}\n{{\"type\":\"other\",\"detail\":{{}}}}\n[1,2]\n"),
        ),
    ];
    for (n, (case, junk)) in cases.iter().enumerate() {
        let before = std::fs::read(&path).unwrap();
        let asides_before = asides(&path);
        append_raw(&path, junk.as_bytes());

        let mut daemon = Daemon::start(&data, &[]);
        let after = std::fs::read(&path).unwrap();
        assert!(after.starts_with(&before), "{case}: kept lines changed");
        // The cut bytes, exactly, in a new file next to the chain.
        let new: Vec<PathBuf> = asides(&path).difference(&asides_before).cloned().collect();
        assert_eq!(new.len(), 1, "{case}: {new:?}");
        assert_eq!(std::fs::read(&new[0]).unwrap(), junk.as_bytes(), "{case}");
        let aside_name = new[0].file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            aside_name.starts_with("cut.jsonl.cut-"),
            "{case}: {aside_name}"
        );

        // A restart open, then the receipt recording the cut.
        let rest = String::from_utf8(after[before.len()..].to_vec()).unwrap();
        let rest = sigil_tests::without_seals(&rest);
        let rest: Vec<&str> = rest.lines().collect();
        assert_eq!(rest.len(), 2, "{case}: {rest:?}");
        let open = parse(rest[0]);
        assert_eq!(
            open["action_record"]["session_control"]["kind"], "session_open",
            "{case}"
        );
        let kept = sigil_tests::without_seals(std::str::from_utf8(&before).unwrap());
        let last_kept = parse(kept.lines().last().unwrap());
        assert_eq!(
            open["action_record"]["session_control"]["open"]["prior_chain_head"],
            sigil_tests::forge::hash_of(&last_kept),
            "{case}: the chain goes on from the last valid receipt"
        );
        let cut = &parse(rest[1])["action_record"];
        assert_eq!(cut["target"], "sigil://chain/cut", "{case}");
        assert_eq!(cut["actor"], "sigild", "{case}");
        let intent = cut["intent"].as_str().unwrap();
        let lines = junk.matches('\n').count();
        assert!(
            intent.contains(&format!("moved {} bytes ({lines} lines)", junk.len())),
            "{case}: {intent}"
        );
        assert!(intent.contains(&aside_name), "{case}: {intent}");

        assert_chain_verifies(&path, &root, "cut", &[]);
        // The chain takes appends again, and every acknowledged receipt
        // (the other chain's too) is still in place.
        acked.extend(append_n(&daemon.endpoint, "cut", 1, 1000 + n).await);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: HashSet<&str> = text.lines().collect();
        for r in &acked {
            assert!(lines.contains(r.as_str()), "{case}: lost {r}");
        }
        let other_text = std::fs::read_to_string(daemon.chain_path("other")).unwrap();
        for r in &other {
            assert!(other_text.lines().any(|l| l == r), "{case}: other lost {r}");
        }
        assert!(daemon.terminate());
        assert_chain_verifies(&path, &root, "cut", &[]);
    }
}

/// Damage in the middle: the chain goes on after the bad line, so the lines
/// after it may have been acknowledged. sigild cuts nothing, answers
/// UNAVAILABLE for that chain with a message naming the line, and serves
/// every other chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damage_the_chain_goes_on_after_is_refused_and_never_cut() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut daemon = Daemon::start(&data, &[]);
    let root = daemon.active_key();
    append_n(&daemon.endpoint, "mid", 4, 0).await;
    append_n(&daemon.endpoint, "fine", 2, 100).await;
    assert!(daemon.terminate());
    let path = daemon.chain_path("mid");
    // The receipts alone: the damage below is to receipts.
    let genuine = sigil_tests::without_seals(&std::fs::read_to_string(&path).unwrap());
    let lines: Vec<&str> = genuine.lines().collect();
    let n = lines.len();

    let mut garbage_in_middle: Vec<&str> = lines.clone();
    garbage_in_middle.insert(n - 2, "{\"not\":\"a receipt\"}");
    let mut swapped = lines.clone();
    swapped.swap(n - 2, n - 1);
    // A bit flip inside a receipt: it still parses and links to the one
    // before it, but its signature fails and the next one does not link to
    // it; the one after it carries on its run.
    let flipped = lines[n - 3].replacen("items/", "itemz/", 1);
    let mut garbled = lines.clone();
    garbled[n - 3] = &flipped;
    // (case, lines, the first damaged line, how the chain goes on after it)
    let links = format!("links to the receipt on line {}", n - 2);
    let cases = [
        (
            "garbage before two receipts",
            garbage_in_middle,
            n - 1,
            &links,
        ),
        ("the last two receipts swapped", swapped, n - 1, &links),
        (
            "a receipt garbled in place",
            garbled,
            n - 2,
            &"carries on the run".to_owned(),
        ),
    ];
    for (case, damaged, bad_line, goes_on) in cases {
        let text = format!("{}\n", damaged.join("\n"));
        std::fs::write(&path, &text).unwrap();

        let mut daemon = Daemon::start(&data, &[]);
        let mut c = Client::connect(&daemon.endpoint).await.unwrap();
        for _ in 0..2 {
            let err = match c.append("mid", &record(50)).await {
                Ok(r) => panic!("{case}: appended after damage: {}", r.receipt_json),
                Err(ClientError::Status(s)) => s,
                Err(e) => panic!("{case}: {e}"),
            };
            assert_eq!(err.code(), tonic::Code::Unavailable, "{case}: {err:?}");
            let msg = err.message();
            assert!(msg.contains("not at the tail"), "{case}: {msg}");
            assert!(msg.contains(&format!("line {bad_line}:")), "{case}: {msg}");
            assert!(msg.contains(goes_on.as_str()), "{case}: {msg}");
            assert!(msg.contains("mid.jsonl"), "{case}: {msg}");
        }
        c.append("fine", &record(200)).await.unwrap();
        assert_chain_verifies(&daemon.chain_path("fine"), &root, "fine", &[]);
        assert!(daemon.terminate(), "{case}: SIGTERM with a refused chain");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            text,
            "{case}: the refused chain was changed"
        );
        assert!(asides(&path).is_empty(), "{case}");
    }

    // Repaired, it resumes.
    std::fs::write(&path, &genuine).unwrap();
    let mut daemon = Daemon::start(&data, &[]);
    append_n(&daemon.endpoint, "mid", 1, 300).await;
    assert!(daemon.terminate());
    assert_chain_verifies(&path, &root, "mid", &[]);
}
