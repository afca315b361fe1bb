//! The offline root end to end on SoftHSM2: officers `officer-a` and
//! `officer-b` (2 of 2) hold the root keys, the daemon's chain key is on
//! token `sigil`. Ceremony (init, import, prepare, certify by a, sign by b,
//! import), appends, rotation to a certified standby, and both verifiers;
//! then the forgery the root exists for: whoever holds the daemon's token
//! makes a successor the active version endorses. pipelock-verify accepts
//! that chain (documented: it trusts endorsements, spec §7); sigil verify
//! pinned to the root refuses it.

use std::path::Path;
use std::process::Command;

use sigil_tests::tokens::SoftHsm;
use sigil_tests::{
    bin, chain_receipts, export_endorsements, pipelock_verify, record, sigil_verify_chain, Daemon,
};

/// Runs `sigil ARGS` with SoftHSM's configuration; (exit code, stdout,
/// stderr).
fn run(conf: &Path, args: &[&str]) -> (i32, String, String) {
    let o = Command::new(bin("sigil"))
        .args(args)
        .env("SOFTHSM2_CONF", conf)
        .output()
        .expect("run sigil");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn ok(conf: &Path, args: &[&str]) -> String {
    let (code, out, err) = run(conf, args);
    assert_eq!(code, 0, "sigil {args:?}: {out}{err}");
    out
}

async fn append(endpoint: &str, chain: &str, from: usize, n: usize) {
    let mut c = sigil_client::Client::connect(endpoint).await.unwrap();
    for i in from..from + n {
        c.append(chain, &record(i)).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ceremony_certifies_standbys_and_the_root_pin_refuses_what_the_daemon_key_endorses() {
    let tmp = tempfile::tempdir().unwrap();
    let a = SoftHsm::new(tmp.path(), "officer-a");
    let b = SoftHsm::new(tmp.path(), "officer-b");
    let hsm = SoftHsm::new(tmp.path(), "sigil");
    let conf = a.conf.clone();
    let env = [("SOFTHSM2_CONF", conf.to_str().unwrap())];
    let config = hsm.config(tmp.path(), 2);
    let data = tmp.path().join("data");
    let rootdir = tmp.path().join("ceremony");
    let rd = rootdir.to_str().unwrap();
    let mut daemon =
        Daemon::try_start_env(&data, &["--config", config.to_str().unwrap()], &env).unwrap();
    let sock = daemon.admin_socket();
    let sock = sock.to_str().unwrap();
    append(&daemon.endpoint, "payments", 0, 5).await;

    // Offline: root 1, 2 of 2. Threshold 1 needs --single-key; an existing
    // root key is not adopted silently.
    let (code, _, err) = run(
        &conf,
        &[
            "root",
            "init",
            "--dir",
            rd,
            "--deployment",
            "payments-prod",
            "--threshold",
            "1",
            "--key",
            &a.uri(),
        ],
    );
    assert_ne!(code, 0);
    assert!(err.contains("--single-key"), "{err}");
    let out = ok(
        &conf,
        &[
            "root",
            "init",
            "--dir",
            rd,
            "--deployment",
            "payments-prod",
            "--threshold",
            "2",
            "--key",
            &a.uri(),
            "--key",
            &b.uri(),
        ],
    );
    let pins: Vec<String> = out
        .split_whitespace()
        .collect::<Vec<_>>()
        .windows(2)
        .filter(|w| w[0] == "--root-key")
        .map(|w| w[1].to_owned())
        .collect();
    assert_eq!(pins.len(), 2, "{out}");
    let other = tmp.path().join("other");
    let (code, _, err) = run(
        &conf,
        &[
            "root",
            "init",
            "--dir",
            other.to_str().unwrap(),
            "--deployment",
            "x",
            "--threshold",
            "2",
            "--key",
            &a.uri(),
            "--key",
            &b.uri(),
        ],
    );
    assert_ne!(code, 0);
    assert!(err.contains("--existing"), "{err}");

    // Daemon host: import root 1, prepare one standby; offline: certify
    // (adopting v1) by a, sign by b; import the keyset.
    let root1 = rootdir.join("root/1.root.json");
    ok(
        &conf,
        &[
            "keys",
            "--admin-socket",
            sock,
            "import-statement",
            root1.to_str().unwrap(),
        ],
    );
    let req = tmp.path().join("req.json");
    ok(
        &conf,
        &[
            "keys",
            "--admin-socket",
            sock,
            "prepare",
            "--count",
            "1",
            "--out",
            req.to_str().unwrap(),
        ],
    );
    let out = ok(
        &conf,
        &[
            "root",
            "certify",
            req.to_str().unwrap(),
            "--dir",
            rd,
            "--sign-with",
            &a.uri(),
            "--adopt",
        ],
    );
    assert!(out.contains("1 of 2 signatures"), "{out}");
    let staged = rootdir.join("staged/keyset.1.json");
    // One officer's signature is not enough for the daemon.
    let (code, _, err) = run(
        &conf,
        &[
            "keys",
            "--admin-socket",
            sock,
            "import-statement",
            staged.to_str().unwrap(),
        ],
    );
    assert_ne!(code, 0);
    assert!(err.contains("1 valid signature(s)"), "{err}");
    let out = ok(
        &conf,
        &[
            "root",
            "sign",
            staged.to_str().unwrap(),
            "--dir",
            rd,
            "--sign-with",
            &b.uri(),
        ],
    );
    assert!(out.contains("complete"), "{out}");
    let keyset1 = rootdir.join("keyset/1.keyset.json");
    ok(
        &conf,
        &[
            "keys",
            "--admin-socket",
            sock,
            "import-statement",
            keyset1.to_str().unwrap(),
        ],
    );
    // The same keyset again: no version increase.
    let (code, _, err) = run(
        &conf,
        &[
            "keys",
            "--admin-socket",
            sock,
            "import-statement",
            keyset1.to_str().unwrap(),
        ],
    );
    assert_ne!(code, 0);
    assert!(err.contains("no version increase"), "{err}");

    // Appends, a rotation to the certified standby, more appends.
    append(&daemon.endpoint, "payments", 5, 5).await;
    let out = ok(&conf, &["keys", "--admin-socket", sock, "rotate"]);
    assert!(out.contains("mediator.v2"), "{out}");
    append(&daemon.endpoint, "payments", 10, 5).await;
    // No standby left: the next rotation waits for a ceremony.
    let (code, _, err) = run(&conf, &["keys", "--admin-socket", sock, "rotate"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("FailedPrecondition") || err.contains("no certified standby"),
        "{err}"
    );

    let chain = daemon.chain_path("payments");
    let url = daemon.directory_url();
    let (code, msg) = sigil_verify_chain(&chain, &pinned(&pins, &url));
    assert_eq!(code, 0, "{msg}");
    assert!(
        msg.contains("ROOT v1 (2 of 2) KEYSET v1 DIRECTORY"),
        "{msg}"
    );
    // The wrong threshold, or one key alone, is another root.
    let one = ["--root-key", pins[0].as_str(), "--directory", url.as_str()];
    let (code, msg) = sigil_verify_chain(&chain, &one);
    assert_eq!(code, 1, "{msg}");
    assert!(msg.contains("not the 1 pinned key(s)"), "{msg}");
    let first = chain_receipts(&chain)[0].1["signer_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let ends = export_endorsements(&chain, &tmp.path().join("ends"));
    let (valid, out) = pipelock_verify(&chain, &first, "payments", &ends);
    assert!(valid, "{out}");

    // The attack: with the daemon's token and a copy of its data dir
    // without the root documents, the active version v2 endorses a
    // successor v3 nobody certified, which then signs receipts.
    let saved = tmp.path().join("directory.json");
    let (code, out, _) = run(&conf, &["directory", "--endpoint", &daemon.endpoint]);
    assert_eq!(code, 0);
    std::fs::write(&saved, &out).unwrap();
    assert!(daemon.terminate());
    let stolen = tmp.path().join("stolen");
    copy_dir(&data, &stolen);
    std::fs::remove_dir_all(stolen.join("root")).unwrap();
    let _ = std::fs::remove_file(stolen.join("admin.sock"));
    let _ = std::fs::remove_file(stolen.join("sigild.lock"));
    let thief =
        Daemon::try_start_env(&stolen, &["--config", config.to_str().unwrap()], &env).unwrap();
    let tsock = thief.admin_socket();
    let out = ok(
        &conf,
        &["keys", "--admin-socket", tsock.to_str().unwrap(), "rotate"],
    );
    assert!(out.contains("mediator.v3"), "{out}");
    append(&thief.endpoint, "payments", 15, 5).await;
    let forged = thief.chain_path("payments");
    let ends = export_endorsements(&forged, &tmp.path().join("forged-ends"));
    let (valid, out) = pipelock_verify(&forged, &first, "payments", &ends);
    assert!(
        valid,
        "pipelock-verify trusts endorsements (spec §7): {out}"
    );
    let (code, msg) = sigil_verify_chain(&forged, &pinned(&pins, saved.to_str().unwrap()));
    assert_eq!(code, 1, "{msg}");
    assert!(msg.contains("not in keyset v1"), "{msg}");
}

/// `--root-key A --root-key B --root-threshold 2 --directory DIR`.
fn pinned<'a>(pins: &'a [String], directory: &'a str) -> Vec<&'a str> {
    let mut v: Vec<&str> = pins
        .iter()
        .flat_map(|p| ["--root-key", p.as_str()])
        .collect();
    v.extend(["--root-threshold", "2", "--directory", directory]);
    v
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let t = to.join(e.file_name());
        let ft = e.file_type().unwrap();
        if ft.is_dir() {
            copy_dir(&e.path(), &t);
        } else if ft.is_file() {
            std::fs::copy(e.path(), t).unwrap();
        }
    }
}

#[test]
fn sigild_does_not_depend_on_the_ceremony_crate() {
    // The daemon imports finished documents; it can never sign as the root.
    for manifest in ["signer/Cargo.toml", "keys/Cargo.toml", "proto/Cargo.toml"] {
        let text = std::fs::read_to_string(sigil_tests::workspace().join(manifest)).unwrap();
        assert!(!text.contains("sigil-root"), "{manifest} depends on sigil-root");
    }
    let tree = Command::new(env!("CARGO"))
        .args(["tree", "--offline", "-p", "sigil-signer", "--all-features", "-e", "normal"])
        .current_dir(sigil_tests::workspace())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&tree.stdout);
    assert!(tree.status.success() && text.contains("sigil-keys"), "{text}");
    assert!(!text.contains("sigil-root"), "{text}");
}
