//! The Python producer example (examples/python) against a real sigild:
//! producer.py appends over Append and AppendStream and prints each receipt
//! exactly as the chain file holds it; verify.py has Pipelock's verifier
//! accept the chain against the daemon's key directory, and refuse a
//! tampered copy.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use sigil_tests::{pipelock_verify_bin, workspace, Daemon};

const CHAIN: &str = "python-demo";

/// Runs `examples/python/SCRIPT ARGS` with the python beside pipelock-verify
/// (the .venv scripts/test.sh fills with the example's grpcio and protobuf),
/// so verify.py finds that same pipelock-verify next to its interpreter.
fn python(script: &str, args: &[&str]) -> Output {
    let py = pipelock_verify_bin().parent().unwrap().join("python");
    assert!(py.exists(), "{} is missing", py.display());
    Command::new(py)
        .arg(workspace().join("examples/python").join(script))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {script}: {e}"))
}

/// (exit code, stdout, stdout and stderr).
fn outcome(out: &Output) -> (Option<i32>, String, String) {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let all = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    (out.status.code(), stdout, all)
}

fn verify(daemon: &Daemon, file: &Path) -> (Option<i32>, String) {
    let out = python(
        "verify.py",
        &[
            file.to_str().unwrap(),
            "--directory",
            &daemon.directory_url(),
            "--chain",
            CHAIN,
        ],
    );
    let (code, _, all) = outcome(&out);
    (code, all)
}

#[test]
fn the_python_producer_prints_the_chain_receipts_and_pipelock_verifies_them() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(&dir.path().join("data"), &[]);
    // grpc-python takes host:port, not a URL.
    let grpc = daemon.endpoint.strip_prefix("http://").unwrap();

    // One unary Append, then four over AppendStream.
    let out = python(
        "producer.py",
        &["--endpoint", grpc, "--chain", CHAIN, "--stream", "4"],
    );
    let (code, stdout, all) = outcome(&out);
    assert_eq!(code, Some(0), "producer.py failed: {all}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 5, "one receipt per record: {all}");
    let receipts: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    let seqs: Vec<u64> = receipts
        .iter()
        .map(|r| r["action_record"]["chain_seq"].as_u64().expect("chain_seq"))
        .collect();
    // The genesis session_open is seq 0; the producer's receipts follow it.
    assert_eq!(seqs, [1, 2, 3, 4, 5], "chain_seq of the printed receipts");
    for (i, r) in receipts.iter().enumerate() {
        let ar = &r["action_record"];
        assert_eq!(
            ar["target"],
            format!("https://api.example.com/v1/orders/{i}")
        );
        assert_eq!(ar["actor"], "agent:python-demo");
        assert!(r["signature"].as_str().is_some(), "unsigned: {r}");
    }

    // What the producer printed is byte-for-byte the chain file after its
    // genesis line (heartbeats are off, so nothing else is in it).
    let path = daemon.chain_path(CHAIN);
    let file = std::fs::read_to_string(&path).unwrap();
    let file_lines: Vec<&str> = file.lines().collect();
    assert_eq!(file_lines.len(), 6, "genesis + 5 receipts:\n{file}");
    assert_eq!(
        file_lines[1..],
        lines[..],
        "printed receipts differ from the file"
    );

    // verify.py: the directory's first key and pipelock-verify accept it.
    let (code, text) = verify(&daemon, &path);
    assert_eq!(code, Some(0), "verify.py: {text}");
    assert!(
        text.contains(&format!("CHAIN VALID: {}", path.display())),
        "{text}"
    );
    assert!(text.contains("Receipts:  6"), "{text}");

    // ... and pass on pipelock-verify's refusal of a tampered copy.
    let tampered = dir.path().join("tampered.jsonl");
    let forged = file.replacen("/v1/orders/2", "/v1/orders/9", 1);
    assert_ne!(forged, file);
    std::fs::write(&tampered, forged).unwrap();
    let (code, text) = verify(&daemon, &tampered);
    assert_eq!(code, Some(1), "verify.py on a tampered chain: {text}");
    assert!(text.contains("CHAIN BROKEN"), "{text}");
}
