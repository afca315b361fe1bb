//! The offline root end to end on SoftHSM2: officers `officer-a` and
//! `officer-b` (2 of 2) hold the root keys, the daemon's chain key is on
//! token `sigil`. Ceremony (init, import, prepare, certify by a, sign by b,
//! import), appends, rotation to a certified standby, and both verifiers;
//! then the forgery the root exists for: whoever holds the daemon's token
//! makes a successor the active version endorses. pipelock-verify accepts
//! that chain (documented: it trusts endorsements, spec §7); sigil verify
//! pinned to the root refuses it.

use std::process::Command;

use sigil_tests::root::Ceremony;
use sigil_tests::{
    chain_receipts, export_endorsements, pipelock_verify, record, sigil_verify_chain,
};

async fn append(endpoint: &str, chain: &str, from: usize, n: usize) {
    let mut c = sigil_client::Client::connect(endpoint).await.unwrap();
    for i in from..from + n {
        c.append(chain, &record(i)).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ceremony_certifies_standbys_and_the_root_pin_refuses_what_the_daemon_key_endorses() {
    let tmp = tempfile::tempdir().unwrap();
    let c = Ceremony::new(tmp.path());
    let data = tmp.path().join("data");
    let rd = c.dir.to_str().unwrap();
    let mut daemon = c.daemon(&data, &[]);
    append(&daemon.endpoint, "payments", 0, 5).await;

    // Offline: root 1, 2 of 2. Threshold 1 needs --single-key; an existing
    // root key is not adopted silently.
    let (code, _, err) = c.sigil(&[
        "root",
        "init",
        "--dir",
        rd,
        "--deployment",
        "payments-prod",
        "--threshold",
        "1",
        "--key",
        &c.a.uri(),
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("--single-key"), "{err}");
    let pins = c.init();
    assert_eq!(pins.len(), 2);
    // Each token reported its root key as never extractable.
    let root1 = Ceremony::body(&c.dir.join("root/1.root.json"));
    for (k, v) in root1["keys"].as_object().unwrap() {
        assert_eq!(v["custody"]["backend"], "pkcs11", "{k}");
        assert_eq!(v["custody"]["non_extractable"], true, "{k}");
    }
    let other = tmp.path().join("other");
    let (code, _, err) = c.sigil(&[
        "root",
        "init",
        "--dir",
        other.to_str().unwrap(),
        "--deployment",
        "x",
        "--threshold",
        "2",
        "--key",
        &c.a.uri(),
        "--key",
        &c.b.uri(),
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("--existing"), "{err}");

    // Daemon host: import root 1, prepare one standby; offline: certify
    // (adopting v1) by a, sign by b; import the keyset.
    let root1 = c.dir.join("root/1.root.json"); // the file, to import
    assert_eq!(c.import(&daemon, &root1).0, 0);
    let req = tmp.path().join("req.json");
    c.ok(&[
        "keys",
        "--admin-socket",
        daemon.admin_socket().to_str().unwrap(),
        "prepare",
        "--count",
        "1",
        "--out",
        req.to_str().unwrap(),
    ]);
    let out = c.ok(&[
        "root",
        "certify",
        req.to_str().unwrap(),
        "--dir",
        rd,
        "--sign-with",
        &c.a.uri(),
        "--adopt",
    ]);
    assert!(out.contains("1 of 2 signatures"), "{out}");
    let staged = c.dir.join("staged/keyset.1.json");
    // One officer's signature is not enough for the daemon.
    let (code, _, err) = c.import(&daemon, &staged);
    assert_ne!(code, 0);
    assert!(err.contains("1 valid signature(s)"), "{err}");
    let out = c.sign(&staged, &c.dir, &c.b);
    assert!(out.contains("complete"), "{out}");
    let keyset1 = c.dir.join("keyset/1.keyset.json");
    assert_eq!(c.import(&daemon, &keyset1).0, 0);
    // One certified standby left, below min_standby (2): one more was
    // generated and its request written for the next ceremony.
    let metrics = sigil_client::fetch::get(&format!("http://{}/metrics", daemon.http))
        .await
        .unwrap();
    assert!(
        metrics.contains("sigil_root_standby_versions 1"),
        "{metrics}"
    );
    let requests = std::fs::read_dir(data.join("root/requests"))
        .unwrap()
        .count();
    assert_eq!(requests, 2, "the prepared request and the pool's");
    // The same keyset again: no version increase.
    let (code, _, err) = c.import(&daemon, &keyset1);
    assert_ne!(code, 0);
    assert!(err.contains("no version increase"), "{err}");

    // Appends, a rotation to the certified standby, more appends.
    append(&daemon.endpoint, "payments", 5, 5).await;
    let (_, out, _) = c.keys(&daemon, &["rotate"]);
    assert!(out.contains("mediator.v2"), "{out}");
    append(&daemon.endpoint, "payments", 10, 5).await;
    // No standby left: the next rotation waits for a ceremony.
    let (code, _, err) = c.keys(&daemon, &["rotate"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("FailedPrecondition") || err.contains("no certified standby"),
        "{err}"
    );

    let chain = daemon.chain_path("payments");
    let url = daemon.directory_url();
    let (code, msg) = sigil_verify_chain(&chain, &Ceremony::pinned(&pins, &url));
    assert_eq!(code, 0, "{msg}");
    assert!(
        msg.contains("ROOT v1 (2 of 2) KEYSET v1 DIRECTORY"),
        "{msg}"
    );
    let mut named = Ceremony::pinned(&pins, &url);
    named.extend(["--root-deployment", "payments-prod"]);
    assert_eq!(sigil_verify_chain(&chain, &named).0, 0);
    let mut other = Ceremony::pinned(&pins, &url);
    other.extend(["--root-deployment", "payments-staging"]);
    let (code, msg) = sigil_verify_chain(&chain, &other);
    assert_eq!(code, 1, "{msg}");
    assert!(msg.contains("not \"payments-staging\""), "{msg}");
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
    let (code, out, _) = c.sigil(&["directory", "--endpoint", &daemon.endpoint]);
    assert_eq!(code, 0);
    std::fs::write(&saved, &out).unwrap();
    assert!(daemon.terminate());
    let stolen = tmp.path().join("stolen");
    sigil_tests::copy_dir(&data, &stolen);
    std::fs::remove_dir_all(stolen.join("root")).unwrap();
    let _ = std::fs::remove_file(stolen.join("admin.sock"));
    let _ = std::fs::remove_file(stolen.join("sigild.lock"));
    let thief = c.daemon(&stolen, &[]);
    let out = c.keys(&thief, &["rotate"]).1;
    assert!(out.contains("\"previous_keyid\":\"mediator.v2\""), "{out}");
    append(&thief.endpoint, "payments", 15, 5).await;
    let forged = thief.chain_path("payments");
    let ends = export_endorsements(&forged, &tmp.path().join("forged-ends"));
    let (valid, out) = pipelock_verify(&forged, &first, "payments", &ends);
    assert!(
        valid,
        "pipelock-verify trusts endorsements (spec §7): {out}"
    );
    let (code, msg) =
        sigil_verify_chain(&forged, &Ceremony::pinned(&pins, saved.to_str().unwrap()));
    assert_eq!(code, 1, "{msg}");
    assert!(msg.contains("not in keyset v1"), "{msg}");
}

#[test]
fn sigild_does_not_depend_on_the_ceremony_crate() {
    // The daemon imports finished documents; it can never sign as the root.
    for manifest in ["signer/Cargo.toml", "keys/Cargo.toml", "proto/Cargo.toml"] {
        let text = std::fs::read_to_string(sigil_tests::workspace().join(manifest)).unwrap();
        assert!(
            !text.contains("sigil-root"),
            "{manifest} depends on sigil-root"
        );
    }
    let tree = Command::new(env!("CARGO"))
        .args([
            "tree",
            "--offline",
            "-p",
            "sigil-signer",
            "--all-features",
            "-e",
            "normal",
        ])
        .current_dir(sigil_tests::workspace())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&tree.stdout);
    assert!(
        tree.status.success() && text.contains("sigil-keys"),
        "{text}"
    );
    assert!(!text.contains("sigil-root"), "{text}");
}

#[test]
fn a_prompted_pin_needs_a_terminal_and_says_so() {
    // The ceremony types PINs (pin-source=prompt); without a controlling
    // terminal (setsid) the prompt is refused by name, not hung on.
    let tmp = tempfile::tempdir().unwrap();
    let a = sigil_testkit::SoftHsm::new(tmp.path(), "officer-a");
    let uri = a.uri().replace(
        &format!("pin-source=file:{}", a.pin_file.display()),
        "pin-source=prompt",
    );
    let o = Command::new("setsid")
        .arg(sigil_tests::bin("sigil"))
        .args([
            "root",
            "init",
            "--dir",
            tmp.path().join("c").to_str().unwrap(),
        ])
        .args([
            "--deployment",
            "d",
            "--threshold",
            "1",
            "--single-key",
            "--key",
            &uri,
        ])
        .env("SOFTHSM2_CONF", &a.conf)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("pin-source=prompt needs a terminal"), "{err}");
}
