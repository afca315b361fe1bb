//! The receipt transparency log: every receipt of every chain is a leaf;
//! checkpoints signed by the chain key are served at `/log/checkpoint`
//! with their tiles; `sigil verify chain --log` refuses a file cut at the
//! end or rewritten (even re-signed with the real key), `sigil verify
//! receipt --log` proves one receipt's inclusion, and `sigil log monitor`
//! refuses a split view and a rollback. Trust: the checkpoint is accepted
//! only under a key the pinned root vouches for.

use std::path::Path;
use std::time::Duration;

use ed25519_dalek::Signer;
use sigil_client::receipt_log;
use sigil_proto::tlog::{Checkpoint, Note, NoteKey};
use sigil_tests::forge::{key_from_seed, resign_chain, seed_file, with_key};
use sigil_tests::{append_many, assert_chain_verifies, sigil, wait_until, Daemon};

/// The checkpoint sigild serves now, or `None`.
fn served(daemon: &Daemon) -> Option<String> {
    let url = format!("http://{}/log/checkpoint", daemon.http);
    sigil_client::fetch::get_bytes(&url)
        .expect("the HTTP port answers")
        .map(|b| String::from_utf8(b).expect("UTF-8 checkpoint"))
}

/// Waits for a checkpoint covering at least `size` leaves; returns it.
fn checkpoint_at_least(daemon: &Daemon, size: u64) -> (String, Checkpoint) {
    let mut last = None;
    let ok = wait_until(Duration::from_secs(20), || {
        last = served(daemon);
        last.as_deref()
            .and_then(|n| receipt_log::parse_checkpoint(n).ok())
            .is_some_and(|c| c.size >= size)
    });
    assert!(ok, "no checkpoint of {size} leaves; last served: {last:?}");
    let note = last.expect("a checkpoint");
    let cp = receipt_log::parse_checkpoint(&note).expect("checkpoint");
    (note, cp)
}

fn receipts_in(path: &Path) -> u64 {
    sigil_tests::chain_receipts(path).len() as u64
}

fn run(args: &[&str]) -> (i32, String) {
    let out = sigil(args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// `sigil verify WHAT FILE --key ROOT EXTRA...`.
fn verify(what: &str, file: &Path, root: &str, extra: &[&str]) -> (i32, String) {
    let file = file.to_str().expect("UTF-8 path");
    let mut args = vec!["verify", what, file, "--key", root];
    args.extend_from_slice(extra);
    run(&args)
}

/// `text` as a note signed by `key` under `origin`.
fn signed_note(key: &ed25519_dalek::SigningKey, origin: &str, text: &str) -> String {
    let mut note = Note::unsigned(text).expect("note");
    let nk = NoteKey::ed25519(origin, key.verifying_key().to_bytes()).expect("note key");
    note.add_signature(&nk, &key.sign(text.as_bytes()).to_bytes());
    note.to_text()
}

/// A checkpoint for `origin`, signed by `key` as sigild would: what a
/// thief of the key (or a daemon that lies) could serve.
fn forged_checkpoint(key: &ed25519_dalek::SigningKey, origin: &str, size: u64) -> String {
    let text = Checkpoint {
        origin: origin.to_owned(),
        size,
        root: [7u8; 32],
        extensions: Vec::new(),
    }
    .to_text();
    signed_note(key, origin, &text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_holds_every_receipt_and_catches_a_cut_or_rewritten_chain() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let daemon = Daemon::start(&data, &[]);
    let root = daemon.active_key();
    append_many(&daemon.endpoint, &["pay", "ops", "audit"], 12, 3).await;
    let paths: Vec<_> = ["pay", "ops", "audit"]
        .iter()
        .map(|c| daemon.chain_path(c))
        .collect();
    let total: u64 = paths.iter().map(|p| receipts_in(p)).sum();
    let (note, cp) = checkpoint_at_least(&daemon, total);
    assert_eq!(cp.size, total, "one leaf per receipt, nothing else");

    // The checkpoint verifies with the directory's key, and with no other.
    let signed = receipt_log::check_checkpoint(&note, std::slice::from_ref(&root))
        .expect("signed by the chain key");
    assert_eq!(signed.signer, root);
    assert!(receipt_log::check_checkpoint(&note, &["11".repeat(32)]).is_err());

    let url = format!("http://{}/log", daemon.http);
    let log_dir = data.join("log");
    for (name, path) in ["pay", "ops", "audit"].iter().zip(&paths) {
        // Both verifiers accept the whole file; with the log, against the
        // served log and the log directory alike.
        assert_chain_verifies(path, &root, name, &[]);
        for log in [url.as_str(), log_dir.to_str().unwrap()] {
            let (code, out) = verify("chain", path, &root, &["--log", log]);
            assert_eq!(code, 0, "{out}");
            assert!(
                out.contains("Log: ") && out.contains("holds the file's first"),
                "{out}"
            );
        }
    }

    // Cut at the end: still a valid chain, but the log holds more.
    let text = sigil_tests::without_seals(&std::fs::read_to_string(&paths[0]).unwrap());
    let lines: Vec<&str> = text.lines().collect();
    let cut = dir.path().join("pay-cut.jsonl");
    std::fs::write(&cut, lines[..lines.len() - 3].join("\n") + "\n").unwrap();
    let (code, out) = verify("chain", &cut, &root, &[]);
    assert_eq!(code, 0, "without the log a cut file is undetectable: {out}");
    let (code, out) = verify("chain", &cut, &root, &["--log", &url]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("TRUNCATED") && out.contains("3 more receipt(s)"),
        "{out}"
    );

    // Rewritten with the real key (a thief of the key, or the host itself):
    // both verifiers accept the file alone; the log does not.
    let seed = key_from_seed(&seed_file(&data, "mediator.v1"));
    let forged = resign_chain(&paths[1], &root, &mut with_key(&seed), |i, ar| {
        if i == 4 {
            ar.insert("verdict".into(), "block".into());
        }
    });
    let fork = dir.path().join("ops-fork.jsonl");
    std::fs::write(&fork, forged).unwrap();
    let (code, out) = verify("chain", &fork, &root, &["--session-id", "ops"]);
    assert_eq!(code, 0, "the re-signed file verifies alone: {out}");
    let (code, out) = verify(
        "chain",
        &fork,
        &root,
        &["--session-id", "ops", "--log", &url],
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FORK: receipt 5 "), "{out}");

    // One receipt, without its chain file: inclusion proved from the tiles.
    let last = lines.last().unwrap();
    let one = dir.path().join("one.json");
    std::fs::write(&one, last).unwrap();
    let (code, out) = verify("receipt", &one, &root, &["--log", &url]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("inclusion proved") && out.contains("chain pay"),
        "{out}"
    );
    // A receipt the log never held is refused.
    let other = sigil_tests::chain_receipts(&fork)[4].1.to_string();
    std::fs::write(&one, other).unwrap();
    let (code, out) = verify("receipt", &one, &root, &["--log", &url]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("is not in the log"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_monitor_accepts_a_growing_log_and_refuses_a_split_view_or_a_rollback() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let daemon = Daemon::start(&data, &[]);
    let root = daemon.active_key();
    append_many(&daemon.endpoint, &["m"], 5, 1).await;
    let (_, first) = checkpoint_at_least(&daemon, receipts_in(&daemon.chain_path("m")));
    let url = format!("http://{}/log", daemon.http);
    let state = dir.path().join("monitor.json");
    let st = state.to_str().unwrap();
    let (code, out) = run(&["log", "monitor", &url, "--key", &root, "--state", st]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("first seen"), "{out}");

    append_many(&daemon.endpoint, &["m", "n"], 300, 2).await;
    let grown = receipts_in(&daemon.chain_path("m")) + receipts_in(&daemon.chain_path("n"));
    checkpoint_at_least(&daemon, grown);
    let (code, out) = run(&["log", "monitor", &url, "--key", &root, "--state", st]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("consistent with size {} seen before", first.size)),
        "{out}"
    );

    // What a lying daemon (or a thief of the key) shows another auditor:
    // a checkpoint of the same log with another history. Signed by the
    // real key, it is refused as a split view, and a larger one the log
    // never reached as a rollback when the log comes back.
    let seed = key_from_seed(&seed_file(&data, "mediator.v1"));
    let served = receipt_log::parse_checkpoint(&served(&daemon).unwrap()).unwrap();
    let split = forged_checkpoint(&seed, &served.origin, served.size);
    std::fs::write(
        &state,
        serde_json::json!({ "checkpoint": split }).to_string(),
    )
    .unwrap();
    let (code, out) = run(&["log", "monitor", &url, "--key", &root, "--state", st]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("SPLIT VIEW") || out.contains("split view"),
        "{out}"
    );
    let ahead = forged_checkpoint(&seed, &served.origin, served.size + 1_000);
    std::fs::write(
        &state,
        serde_json::json!({ "checkpoint": ahead }).to_string(),
    )
    .unwrap();
    let (code, out) = run(&["log", "monitor", &url, "--key", &root, "--state", st]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("ROLLBACK"), "{out}");
    // `verify --log-state` holds the same floor.
    let (code, out) = verify(
        "chain",
        &daemon.chain_path("m"),
        &root,
        &["--log", &url, "--log-state", st],
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("ROLLBACK"), "{out}");

    // A checkpoint the root does not vouch for is refused outright.
    let (code, out) = run(&["log", "monitor", &url, "--key", &"ab".repeat(32)]);
    assert_ne!(code, 0, "{out}");
}

/// Waits until a checkpoint holds every receipt of `chains`, then runs
/// `sigil log monitor` with `state`.
fn monitor_when_logged(daemon: &Daemon, chains: &[&str], root: &str, state: &str) -> (i32, String) {
    let size: u64 = chains
        .iter()
        .map(|c| receipts_in(&daemon.chain_path(c)))
        .sum();
    checkpoint_at_least(daemon, size);
    let url = format!("http://{}/log", daemon.http);
    run(&["log", "monitor", &url, "--key", root, "--state", state])
}

/// After `kill -9` at each step of a checkpoint, and while appending, the
/// next checkpoint extends every one served before, and the log holds
/// every receipt of every chain file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_each_log_step_keeps_every_checkpoint_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let state = dir.path().join("monitor.json");
    let st = state.to_str().unwrap().to_owned();
    let chains = ["k0", "k1"];
    let mut root = String::new();
    for (round, point) in [
        "",
        "log.tiles_written",
        "log.checkpoint_signed",
        "chain.seal_written",
        "mid-append",
    ]
    .iter()
    .enumerate()
    {
        // A clean run: its checkpoint is what the monitor saw last.
        let daemon = Daemon::start(&data, &[]);
        if root.is_empty() {
            root = daemon.active_key();
        }
        append_many(&daemon.endpoint, &chains, 40, 2).await;
        let (code, out) = monitor_when_logged(&daemon, &chains, &root, &st);
        assert_eq!(code, 0, "round {round}: {out}");
        drop(daemon);

        // The crash: at a step of the first checkpoint after a start (the
        // restart opens grew the log), or while producers append.
        if point.is_empty() {
            continue;
        }
        if *point == "mid-append" {
            let mut d = Daemon::start(&data, &[]);
            let endpoint = d.endpoint.clone();
            let producers = tokio::spawn(async move {
                let mut c = sigil_client::Client::connect(&endpoint).await.unwrap();
                for i in 0.. {
                    if c.append("k0", &sigil_tests::record(50_000 + i))
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            });
            tokio::time::sleep(Duration::from_millis(1500)).await;
            d.kill9();
            producers.await.unwrap();
        } else {
            match Daemon::try_start_env(&data, &[], &[("SIGIL_CRASH_AT", point)]) {
                Ok(mut d) => assert!(d.wait_exited(Duration::from_secs(20)), "{point}"),
                Err(e) => assert!(e.contains("crash point"), "{point}: {e}"),
            }
        }

        // Back up: the next checkpoint extends the last one served, and
        // holds every receipt the files hold.
        let daemon = Daemon::start(&data, &[]);
        let (code, out) = monitor_when_logged(&daemon, &chains, &root, &st);
        assert_eq!(code, 0, "after a crash at {point}: {out}");
        let url = format!("http://{}/log", daemon.http);
        for c in chains {
            let path = daemon.chain_path(c);
            let (code, out) = verify("chain", &path, &root, &["--log", &url]);
            assert_eq!(code, 0, "after a crash at {point}, {c}: {out}");
        }
    }
}

/// After a rotation the log is signed by the new version, and a verifier
/// pinned to the root alone follows it (through the directory beside the
/// log); a checkpoint signed by the retired version, or by it once revoked,
/// is refused even when what it says is true.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_of_a_retired_or_revoked_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let daemon = Daemon::start(&data, &[]);
    let root = daemon.active_key();
    append_many(&daemon.endpoint, &["r"], 5, 1).await;
    let early = sigil_tests::chain_receipts(&daemon.chain_path("r"))[2]
        .1
        .to_string();
    let (ok, out, err) = daemon.keys_cli(&["rotate"]).await;
    assert!(ok, "{out}{err}");
    append_many(&daemon.endpoint, &["r"], 5, 1).await;
    let path = daemon.chain_path("r");
    let (note, cp) = checkpoint_at_least(&daemon, receipts_in(&path));
    let url = format!("http://{}/log", daemon.http);
    let v2 = receipt_log::check_checkpoint(&note, std::slice::from_ref(&root));
    assert!(v2.is_err(), "the new checkpoint is not the root's: {v2:?}");

    // Pinned to the root alone, before and after the rotation.
    let (code, out) = verify("chain", &path, &root, &["--log", &url]);
    assert_eq!(code, 0, "{out}");
    let one = dir.path().join("early.json");
    std::fs::write(&one, &early).unwrap();
    let (code, out) = verify("receipt", &one, &root, &["--log", &url]);
    assert_eq!(code, 0, "{out}");

    // The same checkpoint, signed by the retired root version instead.
    let copy = dir.path().join("log-copy");
    sigil_tests::copy_dir(&data.join("log"), &copy);
    let v1 = key_from_seed(&seed_file(&data, "mediator.v1"));
    let text = Note::parse(&note).unwrap().text;
    std::fs::write(copy.join("checkpoint"), signed_note(&v1, &cp.origin, &text)).unwrap();
    let directory = daemon.directory_url();
    let by_v1 = |what: &'static str| {
        let copy = copy.to_str().unwrap().to_owned();
        let (path, one, root, directory) =
            (path.clone(), one.clone(), root.clone(), directory.clone());
        move || {
            let file = if what == "chain" { path } else { one };
            verify(
                what,
                &file,
                &root,
                &["--directory", &directory, "--log", &copy],
            )
        }
    };
    for what in ["chain", "receipt"] {
        let (code, out) = tokio::task::spawn_blocking(by_v1(what)).await.unwrap();
        assert_eq!(code, 1, "{what}: {out}");
        assert!(
            out.contains("not signed by any key the trust anchor vouches for"),
            "{out}"
        );
    }
    let (ok, out, err) = daemon
        .keys_cli(&[
            "revoke",
            "--key",
            "mediator",
            "--version",
            "1",
            "--reason",
            "seed copied",
        ])
        .await;
    assert!(ok, "{out}{err}");
    let (code, out) = tokio::task::spawn_blocking(by_v1("chain")).await.unwrap();
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("not signed by any key the trust anchor vouches for"),
        "{out}"
    );

    // The same checkpoint signed by the daemon's own key of another name
    // (a digest key, which the root never vouches for as a chain key):
    // refused under the directory, and under the pinned root alone.
    let (ok, out, err) = daemon.keys_cli(&["create", "digests"]).await;
    assert!(ok, "{out}{err}");
    let digest_key = key_from_seed(&seed_file(&data, "digests.v1"));
    std::fs::write(
        copy.join("checkpoint"),
        signed_note(&digest_key, &cp.origin, &text),
    )
    .unwrap();
    let copy_dir = copy.to_str().unwrap().to_owned();
    let (path2, root2, directory2) = (path.clone(), root.clone(), directory.clone());
    let outs = tokio::task::spawn_blocking(move || {
        [
            verify(
                "chain",
                &path2,
                &root2,
                &["--directory", &directory2, "--log", &copy_dir],
            ),
            verify("chain", &path2, &root2, &["--log", &copy_dir]),
        ]
    })
    .await
    .unwrap();
    for (code, out) in outs {
        assert_eq!(code, 1, "{out}");
        assert!(
            out.contains("not signed by any key the trust anchor vouches for"),
            "{out}"
        );
    }
}

fn seal_lines(text: &str) -> Vec<(usize, serde_json::Value)> {
    text.lines()
        .enumerate()
        .filter_map(|(i, l)| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .map(|v| (i, v))
        })
        .filter(|(_, v)| v["type"] == "sigil.checkpoint")
        .collect()
}

/// Seal entries: each chain carries checkpoints of the log with inclusion
/// proofs of its own receipts, which both verifiers accept, which sigil
/// verify checks without the log, and which a restart keeps; a closed
/// chain is sealed to its last receipt. Edited, removed or copied onto a
/// forked file, they are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seal_entries_carry_the_log_into_each_chain_and_resist_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("seal.toml");
    std::fs::write(&config, "[log]\nseal_seconds = 1\n").unwrap();
    let cfg = ["--config", config.to_str().unwrap()];
    let mut daemon = Daemon::start(&data, &cfg);
    let root = daemon.active_key();
    for round in 0..3 {
        append_many(&daemon.endpoint, &["s"], 10, 1).await;
        let path = daemon.chain_path("s");
        let want = round + 1;
        assert!(
            wait_until(Duration::from_secs(20), || {
                seal_lines(&std::fs::read_to_string(&path).unwrap()).len() >= want
            }),
            "no seal {want}"
        );
    }
    assert!(daemon.terminate());
    let path = daemon.chain_path("s");
    let text = std::fs::read_to_string(&path).unwrap();
    let seals = seal_lines(&text);
    assert!(seals.len() >= 3, "{} seals", seals.len());
    // Closed and sealed to its end: the close receipt, then its seal.
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        seals.last().unwrap().0,
        lines.len() - 1,
        "a seal ends the file"
    );
    let close: serde_json::Value = serde_json::from_str(lines[lines.len() - 2]).unwrap();
    assert_eq!(
        close["action_record"]["session_control"]["kind"],
        "session_close"
    );
    assert!(seals[1..]
        .iter()
        .all(|(_, v)| v["detail"]["prior_size"].is_u64()));
    assert_chain_verifies(&path, &root, "s", &[]);
    let (code, out) = verify("chain", &path, &root, &["--strict"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("Seals: {}, ", seals.len())) && out.contains("(0 after it)"),
        "{out}"
    );

    let tampered = |edit: &dyn Fn(&mut Vec<String>)| {
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        edit(&mut lines);
        let p = dir.path().join("tampered.jsonl");
        std::fs::write(&p, lines.join("\n") + "\n").unwrap();
        verify("chain", &p, &root, &["--session-id", "s"])
    };
    // An inclusion proof edited.
    let (i, mut v) = seals[1].clone();
    let h = v["detail"]["inclusion"][0].as_str().unwrap().to_owned();
    let flipped = format!("{}{}", if h.starts_with('0') { "1" } else { "0" }, &h[1..]);
    v["detail"]["inclusion"][0] = flipped.into();
    let (code, out) = tampered(&|l| l[i] = v.to_string());
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("seal: receipt"), "{out}");
    // A seal removed from the middle.
    let gone = seals[1].0;
    let (code, out) = tampered(&|l| {
        l.remove(gone);
    });
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("a seal was removed or moved"), "{out}");
    // The genuine last seal copied onto a file that lacks what it sealed
    // (a shorter history shown as sealed): it names a receipt the file
    // does not hold.
    let receipts_only = sigil_tests::without_seals(&text);
    let prefix: Vec<&str> = receipts_only.lines().take(20).collect();
    let fork = dir.path().join("fork.jsonl");
    let last_seal = lines[seals.last().unwrap().0];
    std::fs::write(&fork, format!("{}\n{last_seal}\n", prefix.join("\n"))).unwrap();
    let (code, out) = verify("chain", &fork, &root, &["--session-id", "s"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("not in this file before it: FORK"), "{out}");

    // A restart keeps the seals, and the next seal extends the last one.
    let mut daemon = Daemon::start(&data, &cfg);
    append_many(&daemon.endpoint, &["s"], 5, 1).await;
    assert!(daemon.terminate());
    let after = std::fs::read_to_string(&path).unwrap();
    assert!(after.starts_with(&text), "the restart changed the file");
    assert!(seal_lines(&after).len() > seals.len());
    let (code, out) = verify("chain", &path, &root, &["--strict"]);
    assert_eq!(code, 0, "{out}");
    assert_chain_verifies(&path, &root, "s", &[]);
}

/// However many receipts arrive, the token signs at most one checkpoint
/// per `checkpoint_seconds` (counted by `sigil_log_checkpoints_total`
/// against the time the daemon has run).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_signs_at_most_one_checkpoint_per_interval() {
    let dir = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let daemon = Daemon::start(&dir.path().join("data"), &[]);
    let until = std::time::Instant::now() + Duration::from_secs(3);
    while std::time::Instant::now() < until {
        append_many(&daemon.endpoint, &["busy-0", "busy-1"], 20, 2).await;
    }
    let metrics = sigil_client::fetch::get(&format!("http://{}/metrics", daemon.http))
        .await
        .unwrap();
    let elapsed = started.elapsed().as_secs();
    let value = |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {metrics}"))
    };
    let checkpoints = value("sigil_log_checkpoints_total ");
    assert!(checkpoints >= 2, "{checkpoints} checkpoints under load");
    // One per elapsed second, plus the one at start.
    assert!(
        checkpoints <= elapsed + 1,
        "{checkpoints} checkpoints in {elapsed} s"
    );
    assert!(value("sigil_log_size ") > 100);
}
