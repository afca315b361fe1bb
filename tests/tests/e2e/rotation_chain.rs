//! Rotation inside chains: three rotations (A→B→C→D) while producers keep
//! appending leave every chain with one boundary per rotation, each
//! endorsed by the old key; both verifiers follow it from the pinned root,
//! and a missing endorsement or a chain cut before a boundary is caught.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use sigil_client::Client;
use sigil_tests::{
    boundaries, chain_lines, export_endorsements, pipelock_verify, record, segment_keys, sigil,
    sigil_verify_chain, wait_until, Daemon,
};

const CHAINS: [&str; 2] = ["rot-0", "rot-1"];

/// `sigil keys rotate`; returns its JSON answer.
fn rotate(admin_socket: &std::path::Path) -> Value {
    let out = sigil(&[
        "--admin-socket",
        admin_socket.to_str().unwrap(),
        "keys",
        "rotate",
    ]);
    assert!(
        out.status.success(),
        "sigil keys rotate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("rotate JSON")
}

/// Copies the first `n` lines of `src` (with their newlines) to `dst`.
fn head(src: &Path, dst: &Path, n: usize) {
    let text = std::fs::read_to_string(src).unwrap();
    let kept: String = text.split_inclusive('\n').take(n).collect();
    std::fs::write(dst, kept).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_rotations_under_load_verify_from_the_root_key() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(&dir.path().join("data"), &[]);
    let root = daemon.active_key();

    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for p in 0..4usize {
        let (endpoint, stop, count) = (daemon.endpoint.clone(), stop.clone(), count.clone());
        tasks.push(tokio::spawn(async move {
            let mut client = Client::connect(&endpoint).await.unwrap();
            let mut acked = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let chain = CHAINS[(p + i) % CHAINS.len()];
                let r = client
                    .append(chain, &record(p * 1_000_000 + i))
                    .await
                    .unwrap_or_else(|e| panic!("append during rotations failed: {e}"));
                acked.push((chain, r.receipt_json));
                count.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
            acked
        }));
    }

    // A, then B, C, D: each rotation while the producers keep going.
    let mut keys = vec![root.clone()];
    for n in 0..3 {
        let seen = count.load(Ordering::Relaxed);
        let c = count.clone();
        assert!(
            tokio::task::spawn_blocking(move || wait_until(Duration::from_secs(60), || {
                c.load(Ordering::Relaxed) >= seen + 60
            }))
            .await
            .unwrap(),
            "producers stalled before rotation {n}"
        );
        let sock = daemon.admin_socket();
        let r = tokio::task::spawn_blocking(move || rotate(&sock))
            .await
            .unwrap();
        assert_eq!(r["previous_keyid"], format!("mediator.v{}", n + 1), "{r}");
        assert_eq!(r["keyid"], format!("mediator.v{}", n + 2), "{r}");
        let chains: HashSet<&str> = r["chains"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        assert_eq!(chains, HashSet::from(CHAINS), "{r}");
        keys.push(r["public_key"].as_str().unwrap().to_owned());
    }
    let seen = count.load(Ordering::Relaxed);
    let c = count.clone();
    tokio::task::spawn_blocking(move || {
        wait_until(Duration::from_secs(60), || {
            c.load(Ordering::Relaxed) >= seen + 60
        })
    })
    .await
    .unwrap();
    stop.store(true, Ordering::Relaxed);
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    assert_eq!(keys.iter().collect::<HashSet<_>>().len(), 4, "{keys:?}");
    assert_eq!(daemon.active_key(), keys[3]);

    let url = daemon.directory_url();
    for name in CHAINS {
        let path = daemon.chain_path(name);
        // Every acknowledged receipt is in the file.
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: HashSet<&str> = text.lines().collect();
        let mine: Vec<_> = acked.iter().filter(|(c, _)| *c == name).collect();
        assert!(mine.len() >= 100, "{name}: only {} receipts", mine.len());
        for (_, r) in &mine {
            assert!(lines.contains(r.as_str()), "{name} lost {r}");
        }
        // Segments in order A, B, C, D; each boundary names the key before.
        assert_eq!(segment_keys(&path), keys, "{name}: signers by segment");
        let b = boundaries(&path);
        assert_eq!(b.len(), 3, "{name}: key_transition receipts");
        for (i, (ar, signer)) in b.iter().enumerate() {
            assert_eq!(ar["key_transition"]["prior_signer_key"], keys[i]);
            assert_eq!(*signer, keys[i + 1]);
            assert_eq!(ar["chain_seq"], 0);
            assert_eq!(ar["session_control"]["kind"], "session_open");
        }
        // Producer receipts on both sides of every boundary.
        let producers_per_segment = {
            let mut per = vec![0usize; 4];
            for (_, v) in chain_lines(&path) {
                if v["action_record"]["actor"] == "agent:tests" {
                    let k = v["signer_key"].as_str().unwrap();
                    per[keys.iter().position(|x| x == k).unwrap()] += 1;
                }
            }
            per
        };
        assert!(
            producers_per_segment.iter().all(|&n| n > 0),
            "{name}: producer receipts per key {producers_per_segment:?}"
        );

        let out = dir.path().join(format!("end-{name}"));
        let ends = export_endorsements(&path, &out);
        assert_eq!(ends.len(), 3, "{name}: {ends:?}");
        let (ok, msg) = pipelock_verify(&path, &root, name, &ends);
        assert!(ok, "pipelock-verify rejected {name}: {msg}");
        let (code, msg) = sigil_verify_chain(&path, &["--key", &root]);
        assert_eq!(code, 0, "sigil verify {name}: {msg}");
        assert!(msg.contains("Key segments: 4"), "{msg}");
        let (code, msg) = sigil_verify_chain(&path, &["--key", &root, "--directory", &url]);
        assert_eq!(code, 0, "sigil verify --directory {name}: {msg}");

        // Pinning a later key fails: the pin is the root.
        let (ok, _) = pipelock_verify(&path, &keys[1], name, &ends);
        assert!(!ok, "pipelock-verify accepted {name} pinned to B");

        // Each endorsement is needed.
        for skip in 0..3 {
            let some: Vec<PathBuf> = (0..3)
                .filter(|&i| i != skip)
                .map(|i| ends[i].clone())
                .collect();
            let (ok, msg) = pipelock_verify(&path, &root, name, &some);
            assert!(!ok, "{name}: accepted without endorsement {skip}: {msg}");
            assert!(msg.contains("rotation endorsement"), "{msg}");
        }
        assert_cut_before_last_boundary_fails(&path, &root, name, &ends, dir.path());
    }
}

/// A file cut just before the last boundary (the endorsement entry that
/// precedes it and everything after are gone) is a valid prefix on its own,
/// but not with all three endorsements: one of them has no boundary.
fn assert_cut_before_last_boundary_fails(
    path: &Path,
    root: &str,
    name: &str,
    ends: &[PathBuf],
    tmp: &Path,
) {
    let lines = chain_lines(path);
    let last_entry = lines
        .iter()
        .rposition(|(_, v)| v["type"] == "rotation_endorsement")
        .unwrap();
    let (line_no, _) = lines[last_entry];
    let next = &lines[last_entry + 1].1;
    assert!(
        !next["action_record"]["key_transition"].is_null(),
        "the endorsement entry is not followed by its boundary"
    );
    let cut = tmp.join(format!("{name}-cut.jsonl"));
    head(path, &cut, line_no - 1);

    // The control: the prefix with the two endorsements it uses is valid.
    let (ok, msg) = pipelock_verify(&cut, root, name, &ends[..2]);
    assert!(ok, "{name}: the prefix itself is broken: {msg}");
    let (ok, msg) = pipelock_verify(&cut, root, name, ends);
    assert!(!ok, "{name}: pipelock-verify accepted a cut chain");
    assert!(msg.contains("unused rotation endorsement"), "{msg}");
    let mut args = vec!["--key", root];
    for e in ends {
        args.extend(["--rotation-endorsement", e.to_str().unwrap()]);
    }
    let (code, msg) = sigil_verify_chain(&cut, &args);
    assert_eq!(code, 1, "{name}: sigil verify accepted a cut chain: {msg}");
    assert!(msg.contains("unused rotation endorsement"), "{msg}");

    // Cut between the endorsement entry and its boundary: sigil reads the
    // entry from the file, so the cut shows without any endorsement given.
    let torn = tmp.join(format!("{name}-torn.jsonl"));
    head(path, &torn, line_no);
    let (code, msg) = sigil_verify_chain(&torn, &["--key", root]);
    assert_eq!(
        code, 1,
        "{name}: sigil verify accepted a lone endorsement: {msg}"
    );
    assert!(msg.contains("unused rotation endorsement"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_crosses_every_chain_even_idle_ones() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(&dir.path().join("data"), &[]);
    let root = daemon.active_key();
    let names = ["multi-a", "multi-b", "multi-c"];
    let mut client = Client::connect(&daemon.endpoint).await.unwrap();
    for (i, n) in names.iter().enumerate() {
        client.append(n, &record(i)).await.unwrap();
    }
    let mut keys = vec![root.clone()];
    for round in 0..3 {
        // Only the first chain gets receipts between rotations; the others
        // cross all the same.
        client.append(names[0], &record(100 + round)).await.unwrap();
        let sock = daemon.admin_socket();
        let r = tokio::task::spawn_blocking(move || rotate(&sock))
            .await
            .unwrap();
        assert_eq!(r["chains"].as_array().unwrap().len(), 3, "{r}");
        keys.push(r["public_key"].as_str().unwrap().to_owned());
    }
    for n in names {
        let path = daemon.chain_path(n);
        assert_eq!(boundaries(&path).len(), 3, "{n}");
        assert_eq!(segment_keys(&path), keys, "{n}");
        let ends = export_endorsements(&path, &dir.path().join(format!("e-{n}")));
        assert_eq!(ends.len(), 3);
        let (ok, msg) = pipelock_verify(&path, &root, n, &ends);
        assert!(ok, "{n}: {msg}");
        let (code, msg) = sigil_verify_chain(&path, &["--key", &root]);
        assert_eq!(code, 0, "{n}: {msg}");
    }
}
