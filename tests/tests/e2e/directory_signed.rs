//! The HTTP key directory after two rotations: Pipelock's own reader takes
//! it, the active key comes first, every version is listed, and sigil
//! trusts it only when its signature leads back to the pinned root.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use sigil_client::Client;
use sigil_tests::{pipelock_verify_bin, record, sigil, sigil_verify_chain, Daemon};

/// Runs Python `code` in pipelock-verify's virtualenv; returns stdout.
fn python(code: &str, args: &[&str]) -> String {
    let py: PathBuf = pipelock_verify_bin().parent().unwrap().join("python");
    let out = Command::new(py)
        .arg("-c")
        .arg(code)
        .args(args)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "python: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const READ: &str = r#"
import json, sys
import pipelock_verify as pv
def dump(d):
    return {"first": d.public_key_hex(),
            "keys": [[k.keyid, k.public_key] for k in d.keys]}
parsed = pv.parse_directory(open(sys.argv[1]).read())
fetched = pv.fetch_directory(sys.argv[2], scheme="http")
print(json.dumps({"parsed": dump(parsed), "fetched": dump(fetched)}))
"#;

async fn rotated_daemon(data: &Path) -> Daemon {
    let daemon = Daemon::start(data, &[]);
    let mut client = Client::connect(&daemon.endpoint).await.unwrap();
    for round in 0..3 {
        for i in 0..3 {
            client
                .append("dir-0", &record(round * 10 + i))
                .await
                .unwrap();
        }
        if round < 2 {
            let sock = daemon.admin_socket();
            let out = tokio::task::spawn_blocking(move || {
                sigil(&["--admin-socket", sock.to_str().unwrap(), "keys", "rotate"])
            })
            .await
            .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    daemon
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_directory_is_pipelocks_format_and_signed_back_to_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = rotated_daemon(&dir.path().join("data")).await;
    let url = daemon.directory_url();
    let body = sigil_client::fetch::get(&url).await.unwrap();
    let doc: Value = serde_json::from_str(&body).unwrap();
    let keys = doc["keys"].as_array().unwrap();
    let file = dir.path().join("directory.json");
    std::fs::write(&file, &body).unwrap();

    // All three versions, the active one first.
    let versions: Vec<u64> = keys
        .iter()
        .map(|k| k["version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, [3, 2, 1]);
    assert_eq!(keys[0]["state"], "active");
    assert_eq!(keys[0]["public_key"], daemon.active_key().as_str());
    assert!(keys[1..].iter().all(|k| k["state"] == "retired"));
    let root = keys[2]["public_key"].as_str().unwrap().to_owned();

    // Pipelock's reader, from the file and over HTTP.
    let got: Value =
        serde_json::from_str(&python(READ, &[file.to_str().unwrap(), &daemon.http])).unwrap();
    let want: Vec<Value> = keys
        .iter()
        .map(|k| serde_json::json!([k["keyid"], k["public_key"]]))
        .collect();
    for how in ["parsed", "fetched"] {
        assert_eq!(got[how]["first"], keys[0]["public_key"], "{how}: {got}");
        assert_eq!(got[how]["keys"], Value::from(want.clone()), "{how}: {got}");
    }

    // sigil trusts it from the pinned root, over HTTP and from the file.
    let chain = daemon.chain_path("dir-0");
    for src in [url.as_str(), file.to_str().unwrap()] {
        let (code, msg) = sigil_verify_chain(&chain, &["--key", &root, "--directory", src]);
        assert_eq!(code, 0, "{src}: {msg}");
    }

    // One byte changed: a public key, or a state. Untrustworthy directory:
    // sigil says so and exits 2 (it could not check the chain).
    let retired_pk = keys[1]["public_key"].as_str().unwrap();
    let flipped = {
        let mut b = retired_pk.as_bytes().to_vec();
        b[10] = if b[10] == b'0' { b'1' } else { b'0' };
        String::from_utf8(b).unwrap()
    };
    let tampered = [
        ("public key", body.replacen(retired_pk, &flipped, 1)),
        ("state", body.replacen("\"retired\"", "\"revoked\"", 1)),
        ("state", body.replacen("\"retired\"", "\"active\"", 1)),
    ];
    for (n, (what, text)) in tampered.iter().enumerate() {
        assert_ne!(*text, body, "{what}: nothing changed");
        let bad = dir.path().join(format!("tampered-{n}.json"));
        std::fs::write(&bad, text).unwrap();
        let (code, msg) = sigil_verify_chain(
            &chain,
            &["--key", &root, "--directory", bad.to_str().unwrap()],
        );
        assert_eq!(code, 2, "tampered {what} accepted: {msg}");
        assert!(msg.contains("key directory"), "{msg}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_not_descending_from_the_pinned_root_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = rotated_daemon(&dir.path().join("data")).await;
    let other = Daemon::start(&dir.path().join("other"), &[]);
    let body = sigil_client::fetch::get(&daemon.directory_url())
        .await
        .unwrap();
    let ours: Value = serde_json::from_str(&body).unwrap();
    let root = ours["keys"][2]["public_key"].as_str().unwrap().to_owned();
    let chain = daemon.chain_path("dir-0");

    // Another daemon's directory, whose own signature is fine.
    let (code, msg) = sigil_verify_chain(
        &chain,
        &["--key", &root, "--directory", &other.directory_url()],
    );
    assert_eq!(code, 2, "{msg}");
    assert!(msg.contains("not in the directory"), "{msg}");

    // The same, listing our root under another name: the root is there,
    // but the signer does not descend from it.
    let mut forged: Value = serde_json::from_str(
        &sigil_client::fetch::get(&other.directory_url())
            .await
            .unwrap(),
    )
    .unwrap();
    let mut entry = ours["keys"][2].clone();
    entry["name"] = "imported".into();
    entry["keyid"] = "imported.v1".into();
    forged["keys"].as_array_mut().unwrap().push(entry);
    let file = dir.path().join("forged.json");
    std::fs::write(&file, serde_json::to_string_pretty(&forged).unwrap()).unwrap();
    let (code, msg) = sigil_verify_chain(
        &chain,
        &["--key", &root, "--directory", file.to_str().unwrap()],
    );
    assert_eq!(code, 2, "{msg}");
    assert!(
        msg.contains("only the newest version of the lineage, imported.v1, may sign it"),
        "{msg}"
    );

    // Pinned to the other daemon's root, its directory is trusted, yet our
    // chain is not signed by any key it vouches for.
    let other_root = other.active_key();
    let (code, msg) = sigil_verify_chain(
        &chain,
        &["--key", &other_root, "--directory", &other.directory_url()],
    );
    assert_eq!(code, 1, "{msg}");
}
