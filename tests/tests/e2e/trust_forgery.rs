//! The trust model, attacked with the daemon's own keys: each test builds a
//! forgery the way a thief or a rogue caller could (a SignDigest grant, a
//! copied seed of a revoked version, an old or re-signed directory, a
//! backdated receipt, a look-alike record) and shows `sigil verify`
//! refusing it with a message that names why, while the genuine chain still
//! passes sigil and pipelock-verify.

use std::path::Path;

use serde_json::Value;
use sigil_client::{Client, ClientError};
use sigil_proto::directory::{Directory, KeyState};
use sigil_tests::forge::{
    hash_of, key_from_seed, resign, resign_chain, resign_directory, seed_file, with_key,
};
use sigil_tests::{
    chain_lines, chain_receipts, export_endorsements, pipelock_verify, record, sigil,
    sigil_verify_chain, Daemon,
};

fn root_of(daemon: &Daemon) -> String {
    let out = sigil(&["--endpoint", &daemon.endpoint, "directory", "--root-key"]);
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

async fn append(endpoint: &str, chain: &str, n: usize, base: usize) {
    let mut c = Client::connect(endpoint).await.unwrap();
    for i in 0..n {
        c.append(chain, &record(base + i)).await.unwrap();
    }
}

async fn directory(endpoint: &str) -> Directory {
    let mut c = Client::connect(endpoint).await.unwrap();
    Directory::parse(&c.directory().await.unwrap()).unwrap()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_owned()
}

fn verify_receipt(file: &str, args: &[&str]) -> (i32, String) {
    let mut all = vec!["verify", "receipt", file];
    all.extend_from_slice(args);
    let o = sigil(&all);
    (
        o.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

/// The verdict is "invalid" (exit 1) for a forged chain or receipt, and
/// exit 2 when the trust material itself (the directory) is refused.
fn assert_refused(what: &str, (code, msg): (i32, String), why: &str) {
    assert_ne!(code, 0, "{what} was accepted: {msg}");
    let want = if msg.contains("key directory:") { 2 } else { 1 };
    assert_eq!(code, want, "{what}: {msg}");
    assert!(msg.contains(why), "{what}: expected {why:?} in: {msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signdigest_grant_cannot_forge_receipts_or_ledgers() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(&dir.path().join("data"), &[]);
    let root = root_of(&daemon);
    append(&daemon.endpoint, "pay", 4, 0).await;
    let mut c = Client::connect(&daemon.endpoint).await.unwrap();
    let digests = daemon.create_key("digests").await;

    // The chain key itself is no digest oracle.
    match c.sign_digest("mediator", &[7u8; 32]).await {
        Err(ClientError::Status(s)) => {
            assert_eq!(s.code(), tonic::Code::PermissionDenied, "{s:?}");
            assert!(s.message().contains("forge receipts"), "{s:?}");
        }
        other => panic!("SignDigest with the chain key: {other:?}"),
    }

    // Re-sign the chain from its genesis with the digest key, the target of
    // one receipt changed: every digest signed through SignDigest.
    let path = daemon.chain_path("pay");
    let handle = tokio::runtime::Handle::current();
    let mut oracle = |d: &[u8; 32]| -> [u8; 64] {
        tokio::task::block_in_place(|| {
            handle.block_on(async {
                let mut c = Client::connect(&daemon.endpoint).await.unwrap();
                let r = c.sign_digest("digests", d).await.unwrap();
                r.signature.try_into().unwrap()
            })
        })
    };
    let forged = resign_chain(&path, &digests, &mut oracle, |i, ar| {
        if i == 2 {
            ar.insert("target".into(), Value::from("https://attacker.example/pay"));
        }
    });
    let forged = write(dir.path(), "forged.jsonl", &forged);
    let url = daemon.directory_url();
    let fpath = Path::new(&forged);
    assert_refused(
        "a chain re-signed by a digest key, directory alone",
        sigil_verify_chain(fpath, &["--directory", &url]),
        "is not the expected key a version of chain key \"mediator\"",
    );
    assert_refused(
        "a chain re-signed by a digest key, pinned root",
        sigil_verify_chain(fpath, &["--key", &root, "--directory", &url]),
        "a version of chain key \"mediator\"",
    );
    assert_refused(
        "the digest key pinned as a root",
        sigil_verify_chain(fpath, &["--key", &digests, "--directory", &url]),
        "is a digest key",
    );

    // The ledger of who asked for what is signed by the chain key, which
    // verifies it; re-signed by the digest key it is refused.
    let ledger = daemon.chain_path("sigil.ledger.digests");
    let (code, msg) = sigil_verify_chain(&ledger, &["--key", &root, "--directory", &url]);
    assert_eq!(code, 0, "genuine ledger: {msg}");
    let (ok, msg) = pipelock_verify(&ledger, &root, "sigil.ledger.digests", &[]);
    assert!(ok, "pipelock-verify on the ledger: {msg}");
    let lines = chain_receipts(&ledger);
    assert!(lines.len() > 3, "the ledger recorded the signatures");
    let forged_ledger = resign_chain(&ledger, &digests, &mut oracle, |_, _| {});
    let fl = write(dir.path(), "ledger.jsonl", &forged_ledger);
    assert_refused(
        "a ledger re-signed by its digest key",
        sigil_verify_chain(Path::new(&fl), &["--key", &root, "--directory", &url]),
        "a version of chain key \"mediator\"",
    );

    // The genuine chain still passes both verifiers.
    let (code, msg) = sigil_verify_chain(&path, &["--key", &root, "--directory", &url]);
    assert_eq!(code, 0, "{msg}");
    let (ok, msg) = pipelock_verify(&path, &root, "pay", &[]);
    assert!(ok, "{msg}");

    // Revoking the digest key is written on its ledger (signed by the chain
    // key), and a new digest version takes over.
    let r = daemon
        .admin()
        .await
        .revoke_key("digests", 1, "grant leaked", "")
        .await
        .unwrap();
    assert_eq!(r.chains, vec!["sigil.ledger.digests".to_owned()]);
    assert_eq!(r.rotated_to, "digests.v2");
    let last = chain_receipts(&ledger).pop().unwrap().1;
    assert_eq!(last["action_record"]["verdict"], "revoked", "{last}");
    assert!(
        last["action_record"]["target"]
            .as_str()
            .unwrap()
            .contains("digests.v1"),
        "{last}"
    );
    let (code, msg) = sigil_verify_chain(&ledger, &["--key", &root, "--directory", &url]);
    assert_eq!(code, 0, "ledger after the revocation: {msg}");

    // The directory says what each key is for.
    let d = directory(&daemon.endpoint).await;
    let digest_entry = d.keys.iter().find(|k| k.name == "digests").unwrap();
    assert_eq!(digest_entry.use_, "sigil-digest");
    let chain_entry = d.keys.iter().find(|k| k.name == "mediator").unwrap();
    assert_eq!(chain_entry.use_, "pipelock-mediation");
}

/// A daemon whose v1 was revoked after rotating to v2, with v1's seed
/// copied off the host before the revocation (as a thief would have it).
struct Revoked {
    _dir: tempfile::TempDir,
    daemon: Daemon,
    root: String,
    v1: ed25519_dalek::SigningKey,
    before: String,
    after: Directory,
    chain: std::path::PathBuf,
    compromised_since: String,
}

async fn revoked_v1() -> Revoked {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(&dir.path().join("data"), &[]);
    let root = root_of(&daemon);
    append(&daemon.endpoint, "pay", 6, 0).await;
    let v1 = key_from_seed(&seed_file(&daemon.data_dir, "mediator.v1"));
    let mut c = Client::connect(&daemon.endpoint).await.unwrap();
    let before = c.directory().await.unwrap();
    // Compromised from the next whole second: every genuine v1 receipt is
    // older, and the revocation (with its rotation) comes after it.
    let next = time::OffsetDateTime::now_utc() + time::Duration::seconds(1);
    let compromised_since = sigil_proto::timestamp::format(next.replace_nanosecond(0).unwrap());
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    daemon
        .admin()
        .await
        .revoke_key(
            "mediator",
            1,
            "seed copied off the host",
            &compromised_since,
        )
        .await
        .unwrap();
    append(&daemon.endpoint, "pay", 3, 100).await;
    let after = directory(&daemon.endpoint).await;
    Revoked {
        chain: daemon.chain_path("pay"),
        _dir: dir,
        daemon,
        root,
        v1,
        before,
        after,
        compromised_since,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_key_cannot_extend_or_fork_its_chain() {
    let r = revoked_v1().await;
    let tmp = tempfile::tempdir().unwrap();
    let url = r.daemon.directory_url();
    let pin = ["--key", r.root.as_str(), "--directory", url.as_str()];
    let v1_hex = r.root.clone();

    // The genuine chain passes both verifiers, and v1's revocation names
    // where it took effect on this chain: its last receipt.
    let (code, msg) = sigil_verify_chain(&r.chain, &pin);
    assert_eq!(code, 0, "genuine: {msg}");
    let ends = export_endorsements(&r.chain, &tmp.path().join("ends"));
    let (ok, msg) = pipelock_verify(&r.chain, &r.root, "pay", &ends);
    assert!(ok, "{msg}");
    let v1_entry = r.after.keys.iter().find(|k| k.version == 1).unwrap();
    assert_eq!(v1_entry.state, KeyState::Revoked);
    let through = &v1_entry.through.as_ref().expect("revocation positions")[0];
    assert_eq!(through.chain, "pay");
    let receipts = chain_receipts(&r.chain);
    let v1_receipts: Vec<&Value> = receipts
        .iter()
        .map(|(_, v)| v)
        .filter(|v| v["signer_key"] == v1_hex.as_str())
        .collect();
    let last_v1 = v1_receipts.last().unwrap();
    assert_eq!(through.receipt_hash, hash_of(last_v1));
    assert_eq!(
        Some(through.seq),
        last_v1["action_record"]["chain_seq"].as_u64()
    );

    // The thief cuts the chain after v1's last receipt and appends a
    // receipt backdated to before the compromise.
    let mut sign = with_key(&r.v1);
    let mut backdated = |template: &Value, prev: &str, ts: &str| {
        resign(template, Some(prev), &v1_hex, &mut sign, |ar| {
            ar.insert("timestamp".into(), Value::from(ts));
            let seq = ar["chain_seq"].as_u64().unwrap() + 1;
            ar.insert("chain_seq".into(), Value::from(seq));
            ar.insert("target".into(), Value::from("https://attacker.example/x"));
            ar.insert("action_id".into(), Value::from(format!("forged-{seq}")));
            ar.remove("session_control");
        })
        .0
    };
    let prefix_upto = |n: usize| -> String {
        let text = std::fs::read_to_string(&r.chain).unwrap();
        let lines: Vec<&str> = text.split('\n').collect();
        let mut out = lines[..n].join("\n");
        out.push('\n');
        out
    };
    let line_of = |v: &Value| {
        chain_lines(&r.chain)
            .iter()
            .find(|(_, l)| l == v)
            .map(|(n, _)| *n)
            .unwrap()
    };
    let last_ts = last_v1["action_record"]["timestamp"].as_str().unwrap();
    assert!(
        last_ts < r.compromised_since.as_str(),
        "{last_ts} / {}",
        r.compromised_since
    );
    // Keep the last genuine v1 receipt's second: before compromised_since.
    let extended =
        prefix_upto(line_of(last_v1)) + &backdated(last_v1, &hash_of(last_v1), last_ts) + "\n";
    let f = write(tmp.path(), "extended.jsonl", &extended);
    let (code, msg) = sigil_verify_chain(Path::new(&f), &pin);
    assert_refused(
        "a backdated receipt after v1's last trusted one",
        (code, msg.clone()),
        "where its revocation took effect",
    );
    assert!(msg.contains("ends inside a segment of revoked"), "{msg}");

    // A fork that leaves the genuine chain earlier and stops short of the
    // trusted last receipt.
    let earlier = v1_receipts[v1_receipts.len() - 3];
    let forked = prefix_upto(line_of(earlier))
        + &backdated(
            earlier,
            &hash_of(earlier),
            earlier["action_record"]["timestamp"].as_str().unwrap(),
        )
        + "\n";
    let f = write(tmp.path(), "forked.jsonl", &forked);
    assert_refused(
        "a fork of the revoked segment",
        sigil_verify_chain(Path::new(&f), &pin),
        "ends inside a segment of revoked",
    );

    // Time going backwards is refused even without a directory.
    let early = backdated(earlier, &hash_of(earlier), "2020-01-01T00:00:00Z");
    let f = write(
        tmp.path(),
        "backwards.jsonl",
        &(prefix_upto(line_of(earlier)) + &early + "\n"),
    );
    assert_refused(
        "a receipt dated before the one it follows",
        sigil_verify_chain(Path::new(&f), &["--key", &r.root]),
        "time never goes back",
    );

    // A lone receipt of the revoked version is refused; one of v2 passes
    // against the pinned root, v2 being in its lineage.
    let v1_file = write(tmp.path(), "v1.json", &last_v1.to_string());
    assert_refused(
        "a lone receipt of revoked v1",
        verify_receipt(&v1_file, &pin),
        "only trusted within its chain",
    );
    let v2 = receipts.last().unwrap().1.to_string();
    let v2_file = write(tmp.path(), "v2.json", &v2);
    let (code, msg) = verify_receipt(&v2_file, &pin);
    assert_eq!(code, 0, "a genuine v2 receipt with the root pinned: {msg}");

    // The revoked key is gone from the backend once its revocation is
    // recorded on every chain.
    let seeds: Vec<String> = std::fs::read_dir(r.daemon.data_dir.join("seeds"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !seeds.iter().any(|s| s.ends_with(".mediator.v1.seed")),
        "{seeds:?}"
    );
    assert!(
        seeds.iter().any(|s| s.ends_with(".mediator.v2.seed")),
        "{seeds:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_or_resigned_directory_is_refused() {
    let r = revoked_v1().await;
    let tmp = tempfile::tempdir().unwrap();
    let v1_keyid = "mediator.v1";

    // Re-signed by revoked v1 with its revocation removed: v1 is not the
    // newest version, so it speaks for nothing.
    let unrevoked = resign_directory(&r.after, v1_keyid, &r.v1, |d| {
        for k in d.keys.iter_mut().filter(|k| k.version == 1) {
            k.state = KeyState::Retired;
            k.compromised_since = None;
            k.revoked = None;
            k.reason = None;
            k.through = None;
        }
    });
    let f = write(tmp.path(), "unrevoked.json", &unrevoked);
    assert_refused(
        "a directory re-signed by revoked v1",
        sigil_verify_chain(&r.chain, &["--key", &r.root, "--directory", &f]),
        "only the newest version of the lineage, mediator.v2, may sign it",
    );

    // Dropping v2 as well makes v1 the newest again: only a verifier that
    // remembers what it saw can tell. With --state it refuses.
    let truncated = resign_directory(&r.after, v1_keyid, &r.v1, |d| {
        d.keys.retain(|k| !(k.name == "mediator" && k.version > 1));
        for k in d.keys.iter_mut() {
            k.state = KeyState::Active;
            k.compromised_since = None;
            k.revoked = None;
            k.reason = None;
            k.through = None;
        }
        d.signed_at = Some(sigil_proto::timestamp::now());
    });
    let state = tmp.path().join("state.json");
    let state = state.to_str().unwrap();
    let url = r.daemon.directory_url();
    let (code, msg) = sigil_verify_chain(
        &r.chain,
        &["--key", &r.root, "--directory", &url, "--state", state],
    );
    assert_eq!(code, 0, "genuine, remembered: {msg}");
    let f = write(tmp.path(), "truncated.json", &truncated);
    assert_refused(
        "a directory that drops v2 and v1's revocation",
        sigil_verify_chain(
            &r.chain,
            &["--key", &r.root, "--directory", &f, "--state", state],
        ),
        "rolled back: mediator.v2, seen before, is missing",
    );

    // The directory fetched before the revocation: remembered state refuses
    // it, and so does its age.
    let old = write(tmp.path(), "before.json", &r.before);
    assert_refused(
        "the directory from before the revocation",
        sigil_verify_chain(
            &r.chain,
            &["--key", &r.root, "--directory", &old, "--state", state],
        ),
        "rolled back",
    );
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_refused(
        "a directory older than --directory-max-age",
        sigil_verify_chain(
            &r.chain,
            &[
                "--key",
                &r.root,
                "--directory",
                &old,
                "--directory-max-age",
                "1",
            ],
        ),
        "older than the maximum age",
    );
    // The daemon's own directory is re-signed, so a fresh one passes.
    let (code, msg) = sigil_verify_chain(&r.chain, &["--key", &r.root, "--directory", &url]);
    assert_eq!(code, 0, "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producer_records_cannot_look_like_the_daemons_own() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(&dir.path().join("data"), &[]);
    append(&daemon.endpoint, "pay", 2, 0).await;
    let before = std::fs::read(daemon.chain_path("pay")).unwrap();
    let mut c = Client::connect(&daemon.endpoint).await.unwrap();
    for (member, value) in [
        ("target", "sigil://keys/mediator.v1/revoke"),
        ("transport", "sigil_admin"),
        ("principal", "sigil-admin"),
        ("actor", "sigild"),
    ] {
        let mut rec: serde_json::Map<String, Value> = serde_json::from_str(&record(9)).unwrap();
        rec.insert(member.into(), Value::from(value));
        match c.append("pay", &Value::Object(rec).to_string()).await {
            Err(ClientError::Status(s)) => {
                assert_eq!(s.code(), tonic::Code::InvalidArgument, "{member}: {s:?}");
                assert!(
                    s.message().contains(&format!("record.{member}")),
                    "{member}: {s:?}"
                );
                assert!(s.message().contains("reserved"), "{member}: {s:?}");
            }
            other => panic!("a look-alike {member} was accepted: {other:?}"),
        }
    }
    assert_eq!(std::fs::read(daemon.chain_path("pay")).unwrap(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_needs_a_trust_anchor_or_says_unpinned() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(&dir.path().join("data"), &[]);
    append(&daemon.endpoint, "pay", 2, 0).await;
    let path = daemon.chain_path("pay");
    let (code, msg) = sigil_verify_chain(&path, &[]);
    assert_eq!(code, 64, "{msg}");
    assert!(msg.contains("no trust anchor"), "{msg}");
    let (code, msg) = sigil_verify_chain(&path, &["--unpinned"]);
    assert_eq!(code, 0, "{msg}");
    assert!(msg.contains("UNPINNED"), "{msg}");
    let (code, msg) = sigil_verify_chain(&path, &["--unpinned", "--json"]);
    assert_eq!(code, 0, "{msg}");
    let v: Value = serde_json::from_str(msg.trim()).unwrap();
    assert_eq!(v["valid"], true);
    assert_eq!(v["unpinned"], true);
    let root = root_of(&daemon);
    let (code, msg) = sigil_verify_chain(&path, &["--key", &root, "--json"]);
    assert_eq!(code, 0, "{msg}");
    let v: Value = serde_json::from_str(msg.trim()).unwrap();
    assert_eq!(v["unpinned"], false);
    assert_eq!(v["receipts"], 3);
    let other = "11".repeat(32);
    let (code, msg) = sigil_verify_chain(&path, &["--key", &other, "--json"]);
    assert_eq!(code, 1, "{msg}");
    let v: Value = serde_json::from_str(msg.trim()).unwrap();
    assert_eq!(v["valid"], false);
    assert!(v["error"].as_str().unwrap().contains("expected key"), "{v}");
}

/// An older version that was rotated out (not revoked) signs nothing new:
/// with a copy of its seed a thief forks the chain inside its segment, or
/// signs a lone receipt, dated after its retirement. Both are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retired_key_cannot_sign_after_its_retirement() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(&dir.path().join("data"), &[]);
    let root = root_of(&daemon);
    append(&daemon.endpoint, "pay", 4, 0).await;
    let v1 = key_from_seed(&seed_file(&daemon.data_dir, "mediator.v1"));
    daemon.admin().await.rotate_key("").await.unwrap();
    append(&daemon.endpoint, "pay", 2, 100).await;
    let url = daemon.directory_url();
    let pin = ["--key", root.as_str(), "--directory", url.as_str()];
    let path = daemon.chain_path("pay");
    let (code, msg) = sigil_verify_chain(&path, &pin);
    assert_eq!(code, 0, "genuine: {msg}");

    let receipts = chain_receipts(&path);
    let last_v1 = receipts
        .iter()
        .map(|(_, v)| v)
        .rfind(|v| v["signer_key"] == root.as_str())
        .unwrap();
    let later = sigil_proto::timestamp::now();
    let mut sign = with_key(&v1);
    let (forged, _) = resign(last_v1, Some(&hash_of(last_v1)), &root, &mut sign, |ar| {
        let seq = ar["chain_seq"].as_u64().unwrap() + 1;
        ar.insert("chain_seq".into(), Value::from(seq));
        ar.insert("timestamp".into(), Value::from(later.as_str()));
        ar.insert("action_id".into(), Value::from("forged-after-retirement"));
        ar.remove("session_control");
    });
    let tmp = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    // The genuine file up to v1's last receipt, then the forgery.
    let mut fork = String::new();
    for line in text.lines() {
        fork.push_str(line);
        fork.push('\n');
        let v: Value = serde_json::from_str(line).unwrap();
        if &v == last_v1 {
            break;
        }
    }
    fork.push_str(&forged);
    fork.push('\n');
    let f = write(tmp.path(), "fork.jsonl", &fork);
    assert_refused(
        "a fork of retired v1's segment dated after its retirement",
        sigil_verify_chain(Path::new(&f), &pin),
        "after it was retired",
    );
    let lone = write(tmp.path(), "lone.json", &forged);
    assert_refused(
        "a lone receipt of retired v1 dated after its retirement",
        verify_receipt(&lone, &pin),
        "after it was retired",
    );
    // A genuine v1 receipt, from before the rotation, still verifies alone.
    let genuine = write(tmp.path(), "v1.json", &last_v1.to_string());
    let (code, msg) = verify_receipt(&genuine, &pin);
    assert_eq!(code, 0, "{msg}");
}
