//! A root revocation pins each chain's last trusted receipt of the revoked
//! version by hash (`sigil chain tails`, `sigil root revoke --tails`). The
//! thief of that version, who forked the chain while it was still in the
//! token, is refused whatever the timestamps say: a fork past the pinned
//! receipt, a fork that left before it and stops short, a copy that ends in
//! the revoked segment, and a lone receipt of the revoked version. The
//! genuine chain passes both verifiers.

use std::path::{Path, PathBuf};

use serde_json::Value;
use sigil_tests::forge::hash_of;
use sigil_tests::root::Ceremony;
use sigil_tests::{
    chain_receipts, export_endorsements, pipelock_verify, record, sigil, sigil_verify_chain, Daemon,
};

async fn append(d: &Daemon, from: usize, n: usize) {
    let mut c = sigil_client::Client::connect(&d.endpoint).await.unwrap();
    for i in from..from + n {
        c.append("pay", &record(i)).await.unwrap();
    }
}

/// A thief's copy of `data` (no root documents, so the daemon signs with
/// whatever keys.json calls active), its chain replaced by `chain`.
fn thief_copy(data: &Path, to: &Path, chain: Option<&str>) {
    sigil_tests::copy_dir(data, to);
    let _ = std::fs::remove_dir_all(to.join("root"));
    let _ = std::fs::remove_file(to.join("admin.sock"));
    if let Some(text) = chain {
        std::fs::write(to.join("chains/pay.jsonl"), text).unwrap();
    }
}

/// The chain's lines up to and including the receipt with hash `hash`.
fn cut_after(path: &Path, hash: &str) -> String {
    let mut out = String::new();
    for line in std::fs::read_to_string(path).unwrap().lines() {
        out.push_str(line);
        out.push('\n');
        let v: Value = serde_json::from_str(line).unwrap();
        if v.get("action_record").is_some() && hash_of(&v) == hash {
            return out;
        }
    }
    panic!("no receipt {hash}");
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_root_revocation_pins_the_last_trusted_receipt_by_hash() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let c = Ceremony::new(t);
    let data = t.join("data");
    let mut daemon = c.daemon(&data, &[]);
    let (pins, _) = c.under_root(&daemon, 1);
    append(&daemon, 0, 5).await;
    // What a thief of v1 holds: the data dir as it is now, v1 signing.
    assert!(daemon.terminate());
    let early = t.join("early");
    sigil_tests::copy_dir(&data, &early);
    let mut daemon = c.daemon(&data, &[]);
    append(&daemon, 5, 5).await;
    assert_eq!(c.keys(&daemon, &["rotate"]).0, 0);
    append(&daemon, 10, 3).await;
    let chain = daemon.chain_path("pay");
    let v1 = chain_receipts(&chain)[0].1["signer_key"]
        .as_str()
        .unwrap()
        .to_owned();

    // The tails, from the genuine chain.
    let o = sigil(&["chain", "tails", "--signer", &v1, chain.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let tails_text = String::from_utf8_lossy(&o.stdout).into_owned();
    let tails: Value = serde_json::from_str(&tails_text).unwrap();
    assert_eq!(tails.as_array().unwrap().len(), 1, "{tails}");
    let tail_hash = tails[0]["receipt_hash"].as_str().unwrap().to_owned();
    let tails_file = write(t, "tails.json", &tails_text);
    let ends_in_v1 = write(t, "ends-in-v1.jsonl", &cut_after(&chain, &tail_hash));

    // The thief, while v1 is still in the token: a fork past the pinned
    // receipt, and one that left before it and stops short.
    assert!(daemon.terminate());
    let after = t.join("after");
    thief_copy(&early, &after, Some(&cut_after(&chain, &tail_hash)));
    let thief = c.daemon(&after, &[]);
    append(&thief, 100, 2).await;
    drop(thief);
    let before = t.join("before");
    thief_copy(&early, &before, None);
    let thief = c.daemon(&before, &[]);
    append(&thief, 200, 1).await;
    drop(thief);
    let fork_after = after.join("chains/pay.jsonl");
    let fork_before = before.join("chains/pay.jsonl");
    let lone_v1 = write(
        t,
        "lone-v1.json",
        std::fs::read_to_string(&fork_after)
            .unwrap()
            .lines()
            .rev()
            .find(|l| l.contains("action_record") && l.contains(&v1))
            .unwrap(),
    );

    // Offline: revoke v1, pinned; daemon host: import.
    let daemon = c.daemon(&data, &[]);
    // In whole seconds, after every genuine receipt (all made this second).
    let since = sigil_proto::root::docs::format_time(
        time::OffsetDateTime::now_utc() + time::Duration::seconds(2),
    );
    let rd = c.dir.to_str().unwrap();
    let out = c.ok(&[
        "root",
        "revoke",
        "--dir",
        rd,
        "--version",
        "1",
        "--reason",
        "seed copied",
        "--compromised-since",
        &since,
        "--tails",
        tails_file.to_str().unwrap(),
        "--sign-with",
        &c.a.uri(),
    ]);
    let staged = Ceremony::placed(&out);
    let ks2 = Ceremony::placed(&c.sign(&staged, &c.dir, &c.b));
    let (code, out, err) = c.import(&daemon, &ks2);
    assert_eq!(code, 0, "{out}{err}");

    let url = daemon.directory_url();
    let pinned = Ceremony::pinned(&pins, &url);
    let (code, msg) = sigil_verify_chain(&chain, &pinned);
    assert_eq!(code, 0, "the genuine chain: {msg}");
    let ends = export_endorsements(&chain, &t.join("ends"));
    let (valid, out) = pipelock_verify(&chain, &v1, "pay", &ends);
    assert!(valid, "{out}");
    // With the root documents alone (no directory, so no retirement
    // times), the pin by hash is what refuses each fork; with the
    // directory, the retirement of v1 refuses them too.
    let root1 = c.dir.join("root/1.root.json");
    let mut by_files: Vec<&str> = pins
        .iter()
        .flat_map(|p| ["--root-key", p.as_str()])
        .collect();
    by_files.extend(["--root-threshold", "2", "--trust", root1.to_str().unwrap()]);
    by_files.extend(["--trust", ks2.to_str().unwrap()]);
    let (code, msg) = sigil_verify_chain(&chain, &by_files);
    assert_eq!(code, 0, "the genuine chain under the root files: {msg}");
    for (what, file, why) in [
        (
            "a fork past the pinned receipt",
            &fork_after,
            "where its revocation took effect",
        ),
        (
            "a fork that stops short",
            &fork_before,
            "segment of revoked mediator.v1",
        ),
        (
            "a copy ending in v1",
            &ends_in_v1,
            "ends inside a segment of revoked",
        ),
    ] {
        let (code, msg) = sigil_verify_chain(file, &by_files);
        assert_eq!(code, 1, "{what}: {msg}");
        assert!(msg.contains(why), "{what}: {msg}");
        let (code, msg) = sigil_verify_chain(file, &pinned);
        assert_eq!(code, 1, "{what}: {msg}");
        assert!(msg.contains("mediator.v1"), "{what}: {msg}");
    }
    // A lone v1 receipt: refused for its revocation (root files) and its
    // retirement (directory).
    for (anchor, why) in [(&by_files, "revoked"), (&pinned, "retired")] {
        let mut args = vec!["verify", "receipt", lone_v1.to_str().unwrap()];
        args.extend(anchor.iter());
        let o = sigil(&args);
        let msg = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(o.status.code(), Some(1), "a lone v1 receipt: {msg}");
        assert!(msg.contains(why), "{msg}");
    }
    let lone_v2 = write(
        t,
        "lone-v2.json",
        std::fs::read_to_string(&chain)
            .unwrap()
            .lines()
            .rev()
            .find(|l| l.contains("action_record") && !l.contains(&v1))
            .unwrap(),
    );
    let mut args = vec!["verify", "receipt", lone_v2.to_str().unwrap()];
    args.extend(&pinned);
    let o = sigil(&args);
    assert!(
        o.status.success(),
        "a lone v2 receipt: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}
