//! Certified windows: the daemon rotates to its certified standby
//! `rotate_lead_seconds` before the signing version's window closes, fails
//! closed (UNAVAILABLE, nothing written) once the last window has closed,
//! and the root-pinned verifier refuses a receipt dated outside its
//! version's window.

use std::time::Duration;

use serde_json::{json, Value};
use sigil_proto::root::docs::format_time;
use sigil_tests::root::Ceremony;
use sigil_tests::{chain_receipts, record, sigil_verify_chain, wait_until};
use time::OffsetDateTime;

fn version(v: &Value, nb: OffsetDateTime, na: OffsetDateTime) -> Value {
    json!({"version": v["version"], "public_key": v["public_key"],
           "not_before": format_time(nb), "not_after": format_time(na),
           "custody": v["custody"]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closing_window_rotates_early_then_fails_closed() {
    let tmp = tempfile::tempdir().unwrap();
    let c = Ceremony::new(tmp.path());
    let config = tmp.path().join("sigild-window.toml");
    let base = std::fs::read_to_string(&c.config).unwrap();
    std::fs::write(
        &config,
        format!(
            "{base}\n[rotation]\ncheck_seconds = 1\nmin_interval_seconds = 0\nrotate_lead_seconds = 6\n"
        ),
    )
    .unwrap();
    let data = tmp.path().join("data");
    let daemon = c.daemon_with(&data, &config, &[]);
    let pins = c.init();
    assert_eq!(c.import(&daemon, &c.dir.join("root/1.root.json")).0, 0);
    let req = tmp.path().join("req.json");
    let (code, out, err) = c.keys(
        &daemon,
        &["prepare", "--count", "1", "--out", req.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{out}{err}");
    let r = Ceremony::body(&req);
    let root = Ceremony::body(&c.dir.join("root/1.root.json"));

    // v1 (in use) closes in 9 s, the standby v2 in 17 s; signing stops 5 s
    // before a window closes, and the daemon rotates 6 s before.
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let s = time::Duration::seconds;
    let body = json!({
    "_type": "sigil.keyset", "spec_version": 1, "deployment": root["deployment"],
    "version": 1, "root_version": 1, "prev": null,
    "issued": format_time(now), "expires": format_time(now + time::Duration::days(30)),
    "keys": {"mediator": [
        version(&r["new"][0], now - s(5), now + s(17)),
        version(&r["history"][0], now - s(3600), now + s(9)),
    ]}});
    let ks = c.signed_by_officers(body.clone(), "short");
    let (code, out, err) = c.import(&daemon, &ks);
    assert_eq!(code, 0, "{out}{err}");

    let mut client = sigil_client::Client::connect(&daemon.endpoint)
        .await
        .unwrap();
    client.append("w", &record(0)).await.unwrap();
    // Rotated to v2 about 6 s before v1's window closes.
    assert!(
        wait_until(Duration::from_secs(8), || {
            let d = c.sigil(&["directory", "--endpoint", &daemon.endpoint]).1;
            d.contains("\"mediator.v2\"") && d.find("mediator.v2") < d.find("mediator.v1")
        }),
        "no rotation ahead of the window's end"
    );
    client.append("w", &record(1)).await.unwrap();
    let path = daemon.chain_path("w");
    let keys: Vec<String> = chain_receipts(&path)
        .iter()
        .map(|(_, r)| r["signer_key"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        keys.last().unwrap(),
        r["new"][0]["public_key"].as_str().unwrap()
    );
    let url = daemon.directory_url();
    let (code, msg) = sigil_verify_chain(&path, &Ceremony::pinned(&pins, &url));
    assert_eq!(code, 0, "{msg}");

    // A keyset that closes v1's window before its receipts were signed
    // makes them forgeries: refused by the root pin.
    let mut early = body.clone();
    let first = chain_receipts(&path)[0].1["action_record"]["timestamp"]
        .as_str()
        .unwrap()
        .to_owned();
    let first = sigil_proto::timestamp::parse(&first).unwrap();
    early["keys"]["mediator"][1]["not_after"] = json!(format_time(first - s(2)));
    early["version"] = json!(1);
    let early = c.signed_by_officers(early, "early");
    let root1 = c.dir.join("root/1.root.json");
    let (code, msg) = sigil_verify_chain(
        &path,
        &[
            "--root-key",
            &pins[0],
            "--root-key",
            &pins[1],
            "--root-threshold",
            "2",
            "--trust",
            root1.to_str().unwrap(),
            "--trust",
            early.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 1, "{msg}");
    assert!(msg.contains("outside its certified window"), "{msg}");

    // v2's window closes and no standby is left: appends fail closed.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let before = std::fs::read(&path).unwrap();
    let e = client
        .append("w", &record(2))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("outside that window"), "{e}");
    assert_eq!(
        before,
        std::fs::read(&path).unwrap(),
        "something was written"
    );
}
