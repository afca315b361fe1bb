//! The `sigil` command-line contract of DESIGN.md against a real sigild:
//! append (file and stdin), sign-digest and its ledger, the directory over
//! gRPC and HTTP, and `verify chain --directory URL`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use ed25519_dalek::{Signature, VerifyingKey};
use serde_json::Value;
use sigil_tests::{pipelock_verify, pipelock_verify_bin, record, sigil, sigil_stdin, Daemon};

const WELL_KNOWN: &str = "/.well-known/http-message-signatures-directory";

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}: {}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// The single JSON line `sigil append` printed.
fn one_json_line(out: &Output) -> (String, Value) {
    let text = stdout(out);
    let line = text.strip_suffix('\n').expect("ends with a newline");
    assert!(!line.contains('\n'), "more than one line: {text}");
    let v = serde_json::from_str(line).expect("a JSON line");
    (line.to_owned(), v)
}

fn is_uuid_v7(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && [8, 13, 18, 23].iter().all(|&i| b[i] == b'-')
        && s.chars()
            .enumerate()
            .all(|(i, c)| [8, 13, 18, 23].contains(&i) || c.is_ascii_hexdigit())
        && b[14] == b'7'
        && matches!(b[19], b'8' | b'9' | b'a' | b'b')
}

fn verify_receipt(dir: &Path, name: &str, line: &str, key: &str) -> Output {
    let file = dir.join(name);
    std::fs::write(&file, line).unwrap();
    sigil(&["verify", "receipt", file.to_str().unwrap(), "--key", key])
}

#[test]
fn append_prints_the_receipt_as_written_from_a_file_or_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(&dir.path().join("data"), &[]);
    let ep = daemon.endpoint.as_str();
    let key = daemon.active_key();

    let rec_file = dir.path().join("record.json");
    std::fs::write(&rec_file, record(1) + "\n").unwrap();
    let out = sigil(&[
        "--endpoint",
        ep,
        "append",
        "--chain",
        "cli",
        "--record",
        rec_file.to_str().unwrap(),
    ]);
    let (line1, r1) = one_json_line(&out);
    let ar = &r1["action_record"];
    assert_eq!(ar["target"], "https://api.example.com/v1/items/1");
    assert_eq!(ar["chain_seq"], 1);
    assert_eq!(ar["version"], 1);
    assert_eq!(r1["signer_key"], key.as_str());
    let id1 = ar["action_id"].as_str().unwrap();
    assert!(
        is_uuid_v7(id1),
        "generated action_id {id1:?} is not a UUIDv7"
    );

    let out = sigil_stdin(
        &[
            "--endpoint",
            ep,
            "append",
            "--chain",
            "cli",
            "--record",
            "-",
        ],
        &record(2),
    );
    let (line2, r2) = one_json_line(&out);
    let id2 = r2["action_record"]["action_id"].as_str().unwrap();
    assert!(is_uuid_v7(id2) && id2 != id1, "{id1} {id2}");
    assert_eq!(r2["action_record"]["chain_seq"], 2);

    // A given action_id is kept as given.
    let mut given: Value = serde_json::from_str(&record(3)).unwrap();
    given["action_id"] = "producer-chosen-id".into();
    let out = sigil_stdin(
        &["--endpoint", ep, "append", "--chain", "cli"],
        &given.to_string(),
    );
    let (line3, r3) = one_json_line(&out);
    assert_eq!(r3["action_record"]["action_id"], "producer-chosen-id");

    // What was printed is exactly what was written.
    let text = std::fs::read_to_string(daemon.chain_path("cli")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[1..], [line1.as_str(), line2.as_str(), line3.as_str()]);

    for (i, line) in [&line1, &line2, &line3].into_iter().enumerate() {
        let out = verify_receipt(dir.path(), &format!("r{i}.json"), line, &key);
        assert!(stdout(&out).starts_with("OK: "));
    }
    // And the pinned key matters.
    let other = "4655a7e605c12ebb00a46037881c33c5bca5eb74b45a02e8e7261a7ff5a21678";
    let out = verify_receipt(dir.path(), "other.json", &line1, other);
    assert_eq!(out.status.code(), Some(1));

    // A refused record is an error on stderr naming the field; nothing printed.
    let out = sigil_stdin(
        &["--endpoint", ep, "append", "--chain", "cli"],
        r#"{"action_type":"read","target":"t","transport":"https"}"#,
    );
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("record.verdict"), "{err}");
    assert_eq!(
        std::fs::read_to_string(daemon.chain_path("cli")).unwrap(),
        text
    );
}

#[test]
fn sign_digest_signs_the_32_bytes_and_records_them_on_the_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(&dir.path().join("data"), &[]);
    let ep = daemon.endpoint.as_str();
    let digest: [u8; 32] = std::array::from_fn(|i| (i as u8).wrapping_mul(37) ^ 0xa5);
    let hex64 = hex::encode(digest);
    // The chain key is refused for digests (it would let callers forge
    // receipts); a key made for digests signs them.
    let out = sigil(&["--endpoint", ep, "sign-digest", "--key", "mediator", &hex64]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("forge"),
        "{out:?}"
    );
    let sock = daemon.admin_socket();
    let sock = sock.to_str().unwrap();
    let created = sigil(&["--admin-socket", sock, "keys", "create", "digests"]);
    assert!(created.status.success(), "{created:?}");
    let digests_key: Value = serde_json::from_str(&stdout(&created)).unwrap();
    let out = sigil(&["--endpoint", ep, "sign-digest", "--key", "digests", &hex64]);
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();

    let pk: [u8; 32] = hex::decode(v["signer_key"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let sig: [u8; 64] = hex::decode(v["signature"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let vk = VerifyingKey::from_bytes(&pk).unwrap();
    vk.verify_strict(&digest, &Signature::from_bytes(&sig))
        .expect("the signature verifies over the 32 digest bytes");
    let mut other = digest;
    other[0] ^= 1;
    assert!(vk
        .verify_strict(&other, &Signature::from_bytes(&sig))
        .is_err());
    assert_eq!(v["signer_key"], digests_key["public_key"]);
    assert_eq!(v["ledger_chain"], "sigil.ledger.digests");

    let ledger = daemon.chain_path("sigil.ledger.digests");
    assert!(ledger.ends_with("chains/sigil.ledger.digests.jsonl"));
    let text = std::fs::read_to_string(&ledger).unwrap();
    let seq = v["ledger_seq"].as_u64().unwrap();
    let line = text.lines().nth(seq as usize).expect("the ledger receipt");
    let r: Value = serde_json::from_str(line).unwrap();
    assert_eq!(r["action_record"]["chain_seq"], seq);
    let target = r["action_record"]["target"].as_str().unwrap();
    assert!(target.contains(&hex64), "ledger target {target:?}");
    // The ledger is signed by the chain key, never by the digest key it
    // records: a key that signs caller-chosen digests vouches for nothing.
    assert_ne!(r["signer_key"], v["signer_key"]);
    assert_eq!(r["signer_key"].as_str().unwrap(), daemon.active_key());
    let (ok, out) = pipelock_verify(&ledger, &daemon.active_key(), "sigil.ledger.digests", &[]);
    assert!(ok, "{out}");

    // A digest that is not 64 hex characters is a usage error.
    for bad in [&hex64[..62], "zz", &format!("{hex64}00")] {
        let out = sigil(&["--endpoint", ep, "sign-digest", "--key", "digests", bad]);
        assert_eq!(out.status.code(), Some(64), "{bad}");
    }
    assert_eq!(std::fs::read_to_string(&ledger).unwrap(), text);
}

/// Python next to pipelock-verify, which has the pipelock_verify module.
fn venv_python() -> PathBuf {
    let bin = pipelock_verify_bin();
    let dir = bin.parent().unwrap();
    ["python", "python3"]
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.exists())
        .expect("python beside pipelock-verify")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_directory_over_grpc_and_http_names_the_chain_key() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(&dir.path().join("data"), &[]);
    let ep = daemon.endpoint.as_str();
    let out = sigil_stdin(&["--endpoint", ep, "append", "--chain", "d"], &record(1));
    let (_, receipt) = one_json_line(&out);
    let signer = receipt["signer_key"].as_str().unwrap().to_owned();

    let grpc: Value =
        serde_json::from_str(&stdout(&sigil(&["--endpoint", ep, "directory"]))).unwrap();
    assert_eq!(grpc["keys"][0]["public_key"], signer.as_str());

    let url = format!("http://{}{WELL_KNOWN}", daemon.http);
    let body = sigil_client::fetch::get(&url).await.unwrap();
    let http: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(http, grpc, "HTTP and gRPC directories differ");

    // Pipelock's own parser reads it and finds the same key first.
    let mut child = Command::new(venv_python())
        .args([
            "-c",
            "import sys\nfrom pipelock_verify import parse_directory\n\
             d = parse_directory(sys.stdin.buffer.read())\n\
             print(len(d.keys), d.public_key_hex(), d.keys[0].algorithm, d.keys[0].keyid)",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = stdout(&out);
    let words: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(words.len(), 4, "{text}");
    assert_eq!(words[0], http["keys"].as_array().unwrap().len().to_string());
    assert_eq!(words[1], signer);
    assert_eq!(words[2].to_lowercase(), "ed25519");
    assert_eq!(words[3], http["keys"][0]["keyid"].as_str().unwrap());

    // `sigil verify chain --directory URL` trusts the directory's keys...
    let chain = daemon.chain_path("d");
    let out = sigil(&[
        "verify",
        "chain",
        chain.to_str().unwrap(),
        "--directory",
        &url,
    ]);
    assert!(stdout(&out).starts_with("CHAIN VALID"));
    // ...and only them: a chain signed by another key is refused.
    let foreign = sigil_tests::vectors().join("pipelock/sdk/valid-chain.jsonl");
    let out = sigil(&[
        "verify",
        "chain",
        foreign.to_str().unwrap(),
        "--directory",
        &url,
    ]);
    assert_eq!(out.status.code(), Some(1));
    // A directory that cannot be fetched is a runtime error.
    let gone = format!("http://{}/no-such-path", daemon.http);
    let out = sigil(&[
        "verify",
        "chain",
        chain.to_str().unwrap(),
        "--directory",
        &gone,
    ]);
    assert_eq!(out.status.code(), Some(2));
}
