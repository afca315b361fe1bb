//! Rotating the root keys: officer b leaves, officer c joins. Root 2 needs
//! a threshold of root 1's keys and of its own; the keyset is re-signed by
//! the new keys; verifiers pinned to root 1 follow to root 2; a keyset the
//! departed officer signed no longer counts.

use serde_json::json;
use sigil_testkit::SoftHsm;
use sigil_tests::root::Ceremony;
use sigil_tests::{record, sigil_verify_chain};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_two_is_followed_from_root_one_and_the_old_key_stops_counting() {
    let tmp = tempfile::tempdir().unwrap();
    let c = Ceremony::new(tmp.path());
    let officer_c = SoftHsm::new(tmp.path(), "officer-c");
    let daemon = c.daemon(&tmp.path().join("data"), &[]);
    let (pins, _) = c.under_root(&daemon, 1);
    let mut client = sigil_client::Client::connect(&daemon.endpoint)
        .await
        .unwrap();
    client.append("r", &record(0)).await.unwrap();

    let rd = c.dir.to_str().unwrap();
    let b_key = Ceremony::body(&c.dir.join("root/1.root.json"))["keys"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(_, v)| v["owner"] == "officer-b")
        .map(|(k, _)| k.clone())
        .unwrap();
    let out = c.ok(&[
        "root",
        "rotate",
        "--dir",
        rd,
        "--add",
        &officer_c.uri(),
        "--remove",
        &b_key,
        "--sign-with",
        &c.a.uri(),
    ]);
    // a and c signed: c is new, and root 1 needs two of its own keys.
    assert!(out.contains("staged"), "{out}");
    let staged = c.dir.join("staged/root.2.json");
    let out = c.sign(&staged, &c.dir, &c.b);
    assert!(out.contains("complete"), "{out}");
    let out = c.ok(&["root", "renew", "--dir", rd, "--sign-with", &c.a.uri()]);
    assert!(out.contains("1 of 2"), "{out}");
    let staged = c.dir.join("staged/keyset.2.json");
    let out = c.sign(&staged, &c.dir, &officer_c);
    assert!(out.contains("complete"), "{out}");
    for doc in ["root/2.root.json", "keyset/2.keyset.json"] {
        let (code, out, err) = c.import(&daemon, &c.dir.join(doc));
        assert_eq!(code, 0, "{doc}: {out}{err}");
    }
    client.append("r", &record(1)).await.unwrap();
    let url = daemon.directory_url();
    let (code, msg) = sigil_verify_chain(&daemon.chain_path("r"), &Ceremony::pinned(&pins, &url));
    assert_eq!(code, 0, "{msg}");
    assert!(msg.contains("ROOT v2 (2 of 2) KEYSET v2"), "{msg}");
    let status = c.ok(&["root", "status", "--dir", rd]);
    assert!(status.contains("root v2 (2 of 2)"), "{status}");

    // A keyset signed by a and the departed b: one valid signature under
    // root 2.
    let body2 = Ceremony::body(&c.dir.join("keyset/2.keyset.json"));
    let mut next = body2.clone();
    let body2 = body2.clone();
    next["version"] = json!(3);
    next["root_version"] = json!(1);
    next["prev"] = json!(hex::encode(sigil_proto::root::body_sha256(&body2).unwrap()));
    // The departed officer and a stale medium that never saw root 2.
    let forged = c.signed_by_officers_with(&c.dir, next, "departed", 1, &[body1_of(&c), body2]);
    let (code, _, err) = c.import(&daemon, &forged);
    assert_ne!(code, 0);
    assert!(
        err.contains("1 valid signature(s) by the keys of root v2"),
        "{err}"
    );
}

fn body1_of(c: &Ceremony) -> serde_json::Value {
    Ceremony::body(&c.dir.join("keyset/1.keyset.json"))
}
