//! What the daemon refuses to import, each with FAILED_PRECONDITION naming
//! the rule and a byte-identical data dir: another deployment, no version
//! increase, a `prev` other than the imported keyset, a dropped revocation,
//! a key the daemon did not generate. Every document here carries both
//! officers' signatures: the guards hold even against the root's own keys.

use std::path::Path;

use serde_json::{json, Value};
use sigil_tests::root::Ceremony;

/// keys.json and every file under root/, as bytes.
fn snapshot(data: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v = vec![(
        "keys.json".to_owned(),
        std::fs::read(data.join("keys.json")).unwrap(),
    )];
    let mut files: Vec<_> = std::fs::read_dir(data.join("root"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    for f in files {
        v.push((f.display().to_string(), std::fs::read(&f).unwrap()));
    }
    v
}

fn sha(body: &Value) -> String {
    hex::encode(sigil_proto::root::body_sha256(body).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imports_that_do_not_follow_are_refused_and_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let c = Ceremony::new(tmp.path());
    let data = tmp.path().join("data");
    let daemon = c.daemon(&data, &[]);
    let (_, ks1) = c.under_root(&daemon, 1);
    let body1 = Ceremony::body(&ks1);

    let refused = |file: &Path, rule: &str| {
        let before = snapshot(&data);
        let (code, out, err) = c.import(&daemon, file);
        assert_ne!(code, 0, "{out}");
        // FAILED_PRECONDITION, as the CLI spells it.
        assert!(err.contains("not in a state required"), "{err}");
        assert!(err.contains(rule), "expected {rule:?}: {err}");
        assert_eq!(
            before,
            snapshot(&data),
            "a refused import changed the data dir"
        );
    };

    refused(&c.dir.join("root/1.root.json"), "no version increase");
    refused(&ks1, "no version increase");

    // The same officers run another deployment on the same tokens; its
    // keyset is genuinely theirs, and not for this daemon.
    let other_dir = tmp.path().join("other-ceremony");
    c.ok(&[
        "root",
        "init",
        "--dir",
        other_dir.to_str().unwrap(),
        "--deployment",
        "other-prod",
        "--threshold",
        "2",
        "--key",
        &c.a.uri(),
        "--key",
        &c.b.uri(),
        "--existing",
    ]);
    let mut other = body1.clone();
    other["deployment"] = json!("other-prod");
    refused(
        &c.signed_by_officers_with(&other_dir, other, "deployment", 1, &[]),
        "is for deployment",
    );

    // An officer does not sign a keyset that does not follow the medium's
    // newest (a document swapped on the way).
    let mut stray = body1.clone();
    stray["version"] = json!(2);
    stray["prev"] = json!("00".repeat(32));
    let stray_file = tmp.path().join("stray.json");
    std::fs::write(
        &stray_file,
        json!({"signed": stray, "signatures": []}).to_string(),
    )
    .unwrap();
    let (code, _, err) = c.sigil(&[
        "root",
        "sign",
        stray_file.to_str().unwrap(),
        "--dir",
        c.dir.to_str().unwrap(),
        "--sign-with",
        &c.a.uri(),
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("does not follow"), "{err}");

    // The officers' medium holds a keyset 1 the daemon never saw.
    let mut divergent = body1.clone();
    divergent["issued"] = json!(sigil_proto::root::docs::format_time(
        time::OffsetDateTime::now_utc() - time::Duration::hours(1)
    ));
    let mut wrong_prev = body1.clone();
    wrong_prev["version"] = json!(2);
    wrong_prev["prev"] = json!(sha(&divergent));
    refused(
        &c.signed_by_officers_with(&c.dir, wrong_prev, "prev", 1, &[divergent]),
        "prev does not name",
    );

    let mut foreign = body1.clone();
    foreign["version"] = json!(2);
    foreign["prev"] = json!(sha(&body1));
    let mut x = foreign["keys"]["mediator"][0].clone();
    x["version"] = json!(9);
    x["public_key"] = json!("5a".repeat(32));
    foreign["keys"]["mediator"]
        .as_array_mut()
        .unwrap()
        .insert(0, x);
    refused(
        &c.signed_by_officers(foreign, "foreign"),
        "did not generate",
    );

    // Keyset 2 revokes the standby (mediator.v2): imported, and carried out.
    let mut revoking = body1.clone();
    revoking["version"] = json!(2);
    revoking["prev"] = json!(sha(&body1));
    let since = sigil_proto::root::docs::format_time(time::OffsetDateTime::now_utc());
    for v in revoking["keys"]["mediator"].as_array_mut().unwrap() {
        if v["version"] == 2 {
            v["revoked"] = json!({"reason": "token lost", "revoked_at": since,
                                  "compromised_since": since, "through": [], "through_log": null});
        }
    }
    let ks2 = c.signed_by_officers(revoking.clone(), "revoking");
    let (code, out, err) = c.import(&daemon, &ks2);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("mediator.v2"),
        "the revocation was not carried out: {out}"
    );

    // Keyset 3 drops that revocation.
    let body2 = Ceremony::body(&ks2);
    let mut dropped = body2.clone();
    dropped["version"] = json!(3);
    dropped["prev"] = json!(sha(&body2));
    for v in dropped["keys"]["mediator"].as_array_mut().unwrap() {
        v.as_object_mut().unwrap().remove("revoked");
    }
    refused(
        &c.signed_by_officers_with(&c.dir, dropped, "dropped", 1, &[body1.clone(), body2]),
        "drops the revocation",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_downgrade_root_goes_back_and_verifiers_then_refuse() {
    let tmp = tempfile::tempdir().unwrap();
    let c = Ceremony::new(tmp.path());
    let data = tmp.path().join("data");
    let daemon = c.daemon(&data, &[]);
    let (pins, _) = c.under_root(&daemon, 1);
    drop(daemon);
    let has_trust = |endpoint: &str| {
        let d: Value =
            serde_json::from_str(&c.sigil(&["directory", "--endpoint", endpoint]).1).unwrap();
        d.get("trust").is_some()
    };
    // A restart keeps the root.
    let daemon = c.daemon(&data, &[]);
    assert!(has_trust(&daemon.endpoint));
    drop(daemon);
    let daemon = c.daemon(&data, &["--downgrade-root"]);
    assert!(!has_trust(&daemon.endpoint));
    let aside = std::fs::read_dir(data.join("root"))
        .unwrap()
        .filter(|e| {
            let n = e.as_ref().unwrap().file_name();
            n.to_string_lossy().starts_with("keyset.json.downgraded-")
        })
        .count();
    assert_eq!(aside, 1, "the keyset is kept aside, not deleted");
    let mut client = sigil_client::Client::connect(&daemon.endpoint)
        .await
        .unwrap();
    client.append("d", &sigil_tests::record(0)).await.unwrap();
    let url = daemon.directory_url();
    let (code, msg) =
        sigil_tests::sigil_verify_chain(&daemon.chain_path("d"), &Ceremony::pinned(&pins, &url));
    assert_eq!(code, 1, "{msg}");
    assert!(msg.contains("carries no root documents"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_root_revocation_with_no_standby_left_fails_closed_and_the_daemon_still_starts() {
    let tmp = tempfile::tempdir().unwrap();
    let c = Ceremony::new(tmp.path());
    let data = tmp.path().join("data");
    let daemon = c.daemon(&data, &[]);
    let (_, ks1) = c.under_root(&daemon, 1);
    let mut client = sigil_client::Client::connect(&daemon.endpoint)
        .await
        .unwrap();
    client.append("f", &sigil_tests::record(0)).await.unwrap();

    // Keyset 2 revokes both v1 (signing) and v2 (the only standby).
    let body1 = Ceremony::body(&ks1);
    let mut body = body1.clone();
    body["version"] = json!(2);
    body["prev"] = json!(sha(&body1));
    let since = sigil_proto::root::docs::format_time(time::OffsetDateTime::now_utc());
    for v in body["keys"]["mediator"].as_array_mut().unwrap() {
        v["revoked"] = json!({"reason": "both tokens lost", "revoked_at": since,
                              "compromised_since": since, "through": [], "through_log": null});
    }
    let ks2 = c.signed_by_officers(body, "all-revoked");
    let (code, _, err) = c.import(&daemon, &ks2);
    assert_ne!(code, 0);
    assert!(err.contains("imported, but"), "{err}");
    let path = daemon.chain_path("f");
    let before = std::fs::read(&path).unwrap();
    let e = client
        .append("f", &sigil_tests::record(1))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("revoked by keyset v2"), "{e}");
    drop(client);
    drop(daemon);
    // A restart comes up (the admin socket is how the next keyset gets in)
    // and still signs nothing with the revoked version.
    let daemon = c.daemon(&data, &[]);
    let mut client = sigil_client::Client::connect(&daemon.endpoint)
        .await
        .unwrap();
    let e = client
        .append("f", &sigil_tests::record(2))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("revoked by keyset v2"), "{e}");
    assert_eq!(
        before,
        std::fs::read(&path).unwrap(),
        "something was signed"
    );
}
