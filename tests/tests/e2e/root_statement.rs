//! A directory statement signed by an older certified version (still in
//! the token after it retired) says nothing about a chain that moved on to
//! a newer one: the root pin refuses the chain under it.

use serde_json::{json, Value};
use sigil_keys::pkcs11::{Pkcs11Backend, Pkcs11Config};
use sigil_keys::{Backend, KeyId};
use sigil_proto::root::{Signed, Statement};
use sigil_tests::root::Ceremony;
use sigil_tests::{record, sigil_verify_chain};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_by_a_version_older_than_the_chain_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let c = Ceremony::in_process(tmp.path());
    let data = tmp.path().join("data");
    let daemon = c.daemon(&data, &[]);
    let (pins, _) = c.under_root(&daemon, 1);
    assert_eq!(c.keys(&daemon, &["rotate"]).0, 0);
    let mut client = sigil_client::Client::connect(&daemon.endpoint)
        .await
        .unwrap();
    client.append("s", &record(0)).await.unwrap();
    let chain = daemon.chain_path("s");
    let (_, text, _) = c.sigil(&["directory", "--endpoint", &daemon.endpoint]);
    let genuine = tmp.path().join("genuine.json");
    std::fs::write(&genuine, &text).unwrap();
    let (code, msg) =
        sigil_verify_chain(&chain, &Ceremony::pinned(&pins, genuine.to_str().unwrap()));
    assert_eq!(code, 0, "{msg}");

    // Whoever holds the token re-signs the statement with retired v1.
    let token = Pkcs11Backend::open(&Pkcs11Config::from_uri(&c.token.uri()).unwrap()).unwrap();
    let keys: Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("keys.json")).unwrap()).unwrap();
    let v1 = KeyId::new("mediator", 1)
        .unwrap()
        .in_namespace(keys["namespace"].as_str().unwrap())
        .unwrap();
    let v1_public = token.find(&v1).unwrap().expect("v1 is still in the token");
    let mut dir: Value = serde_json::from_str(&text).unwrap();
    let mut body = dir["trust"]["statement"]["signed"].clone();
    body["active"] = json!({"mediator": 1});
    body["signed_at"] = json!(sigil_proto::root::docs::format_time(
        time::OffsetDateTime::now_utc()
    ));
    let mut st =
        Signed::<Statement>::from_value(json!({"signed": body, "signatures": []})).unwrap();
    let sig = token.sign(&v1, &st.signing_input().unwrap()).unwrap();
    st.add_signature(&v1_public.0, &sig.0);
    dir["trust"]["statement"] = st.to_value();
    let forged = tmp.path().join("forged.json");
    std::fs::write(&forged, dir.to_string()).unwrap();
    let (code, msg) =
        sigil_verify_chain(&chain, &Ceremony::pinned(&pins, forged.to_str().unwrap()));
    assert_eq!(code, 1, "{msg}");
    assert!(
        msg.contains("newer than version 1 that signed the directory statement"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_key_name_of_the_daemon_vouches_for_nothing_under_the_root() {
    use sigil_tests::forge::resign_chain;
    let tmp = tempfile::tempdir().unwrap();
    let c = Ceremony::new(tmp.path());
    let daemon = c.daemon(&tmp.path().join("data"), &[]);
    let (pins, _) = c.under_root(&daemon, 1);
    let mut client = sigil_client::Client::connect(&daemon.endpoint)
        .await
        .unwrap();
    for i in 0..3 {
        client.append("p", &record(i)).await.unwrap();
    }
    // A digest key of the same daemon, in the same token: every digest of
    // a re-signed chain goes through SignDigest.
    let digests = daemon.create_key("digests").await;
    let handle = tokio::runtime::Handle::current();
    let endpoint = daemon.endpoint.clone();
    let mut oracle = |d: &[u8; 32]| -> [u8; 64] {
        tokio::task::block_in_place(|| {
            handle.block_on(async {
                let mut c = sigil_client::Client::connect(&endpoint).await.unwrap();
                let r = c.sign_digest("digests", d).await.unwrap();
                r.signature.try_into().unwrap()
            })
        })
    };
    let forged = resign_chain(&daemon.chain_path("p"), &digests, &mut oracle, |_, _| {});
    let file = tmp.path().join("forged.jsonl");
    std::fs::write(&file, forged).unwrap();
    let url = daemon.directory_url();
    let (code, msg) = sigil_verify_chain(&file, &Ceremony::pinned(&pins, &url));
    assert_eq!(code, 1, "{msg}");
    assert!(msg.contains("not in keyset v1"), "{msg}");
}
