//! Adopting a root over a data dir that already has history (v1 rotated to
//! v2 on three chains before any root existed: made here, and as sigild
//! 7f81eb8 wrote it, in tests/vectors/datadir-7f81eb8), then revoking
//! online. The
//! adopted chains pass the root pin, pipelock-verify and the older
//! `--key --directory` check; `sigil keys revoke` of the signing version
//! rotates to a certified standby and its receipts then count only within
//! their chains, up to where the daemon's revocation took effect.

use sigil_tests::root::Ceremony;
use sigil_tests::{
    chain_receipts, export_endorsements, pipelock_verify, record, sigil, sigil_verify_chain,
};

const CHAINS: [&str; 3] = ["m-0", "m-1", "m-2"];

async fn append_all(endpoint: &str, base: usize) {
    let mut c = sigil_client::Client::connect(endpoint).await.unwrap();
    for (i, chain) in CHAINS.iter().enumerate() {
        for j in 0..3 {
            c.append(chain, &record(base + i * 10 + j)).await.unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_data_dir_is_adopted_and_self_revocation_takes_effect() {
    let tmp = tempfile::tempdir().unwrap();
    let c = Ceremony::new(tmp.path());
    let data = tmp.path().join("data");
    let daemon = c.daemon(&data, &[]);
    append_all(&daemon.endpoint, 0).await;
    assert_eq!(
        c.keys(&daemon, &["rotate"]).0,
        0,
        "legacy rotation v1 -> v2"
    );
    append_all(&daemon.endpoint, 100).await;

    // Adopt v1 (retired) and v2 (signing); two standbys.
    let (pins, _) = c.under_root(&daemon, 2);
    append_all(&daemon.endpoint, 200).await;

    let url = daemon.directory_url();
    let first = chain_receipts(&daemon.chain_path(CHAINS[0]))[0].1["signer_key"]
        .as_str()
        .unwrap()
        .to_owned();
    for chain in CHAINS {
        let path = daemon.chain_path(chain);
        let (code, msg) = sigil_verify_chain(&path, &Ceremony::pinned(&pins, &url));
        assert_eq!(code, 0, "{chain} under the root: {msg}");
        let (code, msg) = sigil_verify_chain(&path, &["--key", &first, "--directory", &url]);
        assert_eq!(code, 0, "{chain} under the legacy check: {msg}");
        let ends = export_endorsements(&path, &tmp.path().join(format!("ends-{chain}")));
        let (ok, out) = pipelock_verify(&path, &first, chain, &ends);
        assert!(ok, "{chain}: {out}");
    }

    // What a verifier fetched before the revocation, and its state.
    let state = tmp.path().join("verifier.state");
    let before_revocation = tmp.path().join("directory-before.json");
    std::fs::write(
        &before_revocation,
        c.sigil(&["directory", "--endpoint", &daemon.endpoint]).1,
    )
    .unwrap();

    // Online self-revocation of the signing version v2.
    let (code, out, err) = c.keys(
        &daemon,
        &[
            "revoke",
            "--key",
            "mediator",
            "--version",
            "2",
            "--reason",
            "token left unlocked",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("mediator.v3"), "rotated to the standby: {out}");
    append_all(&daemon.endpoint, 300).await;
    let d: serde_json::Value =
        serde_json::from_str(&c.sigil(&["directory", "--endpoint", &daemon.endpoint]).1).unwrap();
    let revoked = &d["trust"]["statement"]["signed"]["revoked"];
    assert_eq!(revoked[0]["version"], 2, "the statement lists it: {d}");
    for chain in CHAINS {
        let (code, msg) =
            sigil_verify_chain(&daemon.chain_path(chain), &Ceremony::pinned(&pins, &url));
        assert_eq!(code, 0, "{chain} after the revocation: {msg}");
    }
    // A verifier that saw the revocation (--state) is not shown the
    // directory from before it again (a statement of the revoked v2).
    let path0 = daemon.chain_path(CHAINS[0]);
    let mut with_state = Ceremony::pinned(&pins, &url);
    with_state.extend(["--state", state.to_str().unwrap()]);
    assert_eq!(sigil_verify_chain(&path0, &with_state).0, 0);
    let mut old_dir = Ceremony::pinned(&pins, before_revocation.to_str().unwrap());
    old_dir.extend(["--state", state.to_str().unwrap()]);
    let (code, msg) = sigil_verify_chain(&path0, &old_dir);
    assert_eq!(code, 1, "{msg}");
    // Its statement's signer is revoked in what the verifier remembers.
    assert!(msg.contains("signed by revoked mediator.v2"), "{msg}");
    // A lone v2 receipt no longer stands on its own.
    let path = daemon.chain_path(CHAINS[1]);
    let v2 = d["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["keyid"] == "mediator.v2")
        .unwrap()["public_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let lone = chain_receipts(&path)
        .into_iter()
        .find(|(_, r)| r["signer_key"] == v2.as_str())
        .unwrap()
        .1;
    let file = tmp.path().join("lone-v2.json");
    std::fs::write(&file, lone.to_string()).unwrap();
    let mut args = vec!["verify", "receipt", file.to_str().unwrap()];
    args.extend(Ceremony::pinned(&pins, &url));
    let o = sigil(&args);
    let msg = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(o.status.code(), Some(1), "{msg}");
    assert!(msg.contains("revoked"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_dir_written_by_sigild_7f81eb8_is_adopted() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let fixture = sigil_tests::vectors().join("datadir-7f81eb8");
    let data = tmp.path().join("data");
    for sub in ["chains", "seeds"] {
        std::fs::create_dir_all(data.join(sub)).unwrap();
        for e in std::fs::read_dir(fixture.join(sub)).unwrap() {
            let e = e.unwrap();
            let to = data.join(sub).join(e.file_name());
            std::fs::copy(e.path(), &to).unwrap();
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
    }
    std::fs::copy(fixture.join("keys.json"), data.join("keys.json")).unwrap();
    let c = Ceremony::new(tmp.path());
    let daemon = sigil_tests::Daemon::start(&data, &[]);
    let (pins, _) = c.under_root(&daemon, 2);
    let mut client = sigil_client::Client::connect(&daemon.endpoint)
        .await
        .unwrap();
    let chains = ["legacy-a", "legacy-b", "legacy-c"];
    for (i, chain) in chains.iter().enumerate() {
        client.append(chain, &record(500 + i)).await.unwrap();
    }
    let url = daemon.directory_url();
    for chain in chains {
        let path = daemon.chain_path(chain);
        let first = chain_receipts(&path)[0].1["signer_key"]
            .as_str()
            .unwrap()
            .to_owned();
        let (code, msg) = sigil_verify_chain(&path, &Ceremony::pinned(&pins, &url));
        assert_eq!(code, 0, "{chain} under the root: {msg}");
        let (code, msg) = sigil_verify_chain(&path, &["--key", &first, "--directory", &url]);
        assert_eq!(code, 0, "{chain} under the legacy check: {msg}");
        let ends = export_endorsements(&path, &tmp.path().join(format!("ends-{chain}")));
        let (ok, out) = pipelock_verify(&path, &first, chain, &ends);
        assert!(ok, "{chain}: {out}");
    }
}
