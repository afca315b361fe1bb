//! `kill -9` inside an import or a rotation to a standby: the next start
//! completes what was begun. A keyset stored before its revocations were
//! carried out has them carried out at start; a standby made pending
//! before every chain crossed is crossed to and finished.

use std::time::Duration;

use serde_json::json;
use sigil_tests::root::Ceremony;
use sigil_tests::{record, sigil_verify_chain};

fn directory(c: &Ceremony, endpoint: &str) -> serde_json::Value {
    let (code, out, err) = c.sigil(&["directory", "--endpoint", endpoint]);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).unwrap()
}

fn state_of(dir: &serde_json::Value, keyid: &str) -> String {
    dir["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["keyid"] == keyid)
        .map(|k| k["state"].as_str().unwrap().to_owned())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_in_a_standby_rotation_is_finished_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    let c = Ceremony::new(tmp.path());
    let data = tmp.path().join("data");
    let daemon = c.daemon(&data, &[]);
    let (pins, _) = c.under_root(&daemon, 1);
    let mut client = sigil_client::Client::connect(&daemon.endpoint)
        .await
        .unwrap();
    client.append("k", &record(0)).await.unwrap();
    drop(client);
    drop(daemon);

    let mut crashing = c.daemon_env(
        &data,
        &c.config,
        &[],
        &[("SIGIL_CRASH_AT", "rotate.pending")],
    );
    let (code, _, _) = c.keys(&crashing, &["rotate"]);
    assert_ne!(code, 0, "the rotation answered although sigild was killed");
    assert!(crashing.wait_exited(Duration::from_secs(10)));
    let daemon = c.daemon(&data, &[]);
    let d = directory(&c, &daemon.endpoint);
    assert_eq!(state_of(&d, "mediator.v2"), "active", "{d}");
    assert_eq!(state_of(&d, "mediator.v1"), "retired", "{d}");
    let mut client = sigil_client::Client::connect(&daemon.endpoint)
        .await
        .unwrap();
    client.append("k", &record(1)).await.unwrap();
    let url = daemon.directory_url();
    let (code, msg) = sigil_verify_chain(&daemon.chain_path("k"), &Ceremony::pinned(&pins, &url));
    assert_eq!(code, 0, "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_a_revoking_keyset_is_stored_revokes_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    let c = Ceremony::new(tmp.path());
    let data = tmp.path().join("data");
    let daemon = c.daemon(&data, &[]);
    let (_, ks1) = c.under_root(&daemon, 1);
    drop(daemon);

    // Keyset 2 revokes the signing version v1.
    let body1 = Ceremony::body(&ks1);
    let mut body = body1.clone();
    body["version"] = json!(2);
    body["prev"] = json!(hex::encode(sigil_proto::root::body_sha256(&body1).unwrap()));
    let since = sigil_proto::root::docs::format_time(time::OffsetDateTime::now_utc());
    for v in body["keys"]["mediator"].as_array_mut().unwrap() {
        if v["version"] == 1 {
            v["revoked"] = json!({"reason": "seed copied", "revoked_at": since,
                                  "compromised_since": since, "through": [], "through_log": null});
        }
    }
    let ks2 = c.signed_by_officers(body, "revoke-v1");
    let mut crashing = c.daemon_env(
        &data,
        &c.config,
        &[],
        &[("SIGIL_CRASH_AT", "import.stored")],
    );
    let (code, _, _) = c.import(&crashing, &ks2);
    assert_ne!(code, 0);
    assert!(crashing.wait_exited(Duration::from_secs(10)));
    let daemon = c.daemon(&data, &[]);
    let d = directory(&c, &daemon.endpoint);
    assert_eq!(state_of(&d, "mediator.v1"), "revoked", "{d}");
    assert_eq!(state_of(&d, "mediator.v2"), "active", "{d}");
}
