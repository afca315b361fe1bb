//! One life of sigild on every backend (software, SoftHSM2, swtpm,
//! MockHsm): appends, a restart, a rotation, a revocation of the retired
//! key and a crash with a restart. After each step no acknowledged receipt
//! is missing and both verifiers accept every chain from the pinned root
//! key, across the rotation.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use sigil_tests::{
    append_many, assert_chain_verifies, boundaries, directory_keys, export_endorsements,
    segment_keys, sigil, sigil_verify_chain, Daemon, InProcess,
};

const CHAINS: [&str; 2] = ["life-0", "life-1"];

/// The token a daemon keeps its keys in, and how sigild is started on it.
enum Token {
    Software,
    #[cfg(feature = "pkcs11")]
    SoftHsm(sigil_testkit::SoftHsm),
    #[cfg(feature = "tpm")]
    Swtpm(sigil_testkit::Swtpm),
    /// In process: the mock's state lives in its connector.
    #[cfg(feature = "yubihsm")]
    MockHsm(yubihsm::Connector),
}

/// A running sigild: a process, or (MockHsm) a daemon in this process.
enum Node {
    Process(Daemon),
    InProcess(InProcess),
}

impl Token {
    /// Starts sigild on `data`, with its config files in `tmp`.
    fn start(&self, tmp: &Path, data: &Path) -> Node {
        match self {
            Token::Software => Node::Process(Daemon::start(data, &[])),
            #[cfg(feature = "pkcs11")]
            Token::SoftHsm(hsm) => {
                let config = hsm.config(tmp, 2);
                let conf = hsm.conf.to_str().unwrap();
                let args = ["--config", config.to_str().unwrap()];
                let env = [("SOFTHSM2_CONF", conf)];
                Node::Process(Daemon::try_start_env(data, &args, &env).unwrap())
            }
            #[cfg(feature = "tpm")]
            Token::Swtpm(tpm) => {
                let config = tpm.config(tmp);
                Node::Process(Daemon::start(data, &["--config", config.to_str().unwrap()]))
            }
            #[cfg(feature = "yubihsm")]
            Token::MockHsm(connector) => {
                let _ = tmp;
                let backend = sigil_keys::yubihsm::YubiHsmBackend::with_credentials(
                    connector.clone(),
                    yubihsm::Credentials::default(),
                    1,
                )
                .unwrap();
                Node::InProcess(InProcess::start(data, std::sync::Arc::new(backend)))
            }
        }
    }
}

impl Node {
    fn endpoint(&self) -> &str {
        match self {
            Node::Process(d) => &d.endpoint,
            Node::InProcess(d) => &d.endpoint,
        }
    }

    fn chain_path(&self, name: &str) -> PathBuf {
        match self {
            Node::Process(d) => d.chain_path(name),
            Node::InProcess(d) => d.chain_path(name),
        }
    }

    fn directory_url(&self) -> String {
        match self {
            Node::Process(d) => d.directory_url(),
            Node::InProcess(d) => d.directory_url(),
        }
    }

    /// `sigil keys ARGS...` over the admin socket, which must succeed; its
    /// JSON answer.
    fn keys(&self, args: &[&str]) -> Value {
        let sock = match self {
            Node::Process(d) => d.admin_socket(),
            Node::InProcess(d) => d.admin_socket(),
        };
        let mut all = vec!["--admin-socket", sock.to_str().unwrap(), "keys"];
        all.extend_from_slice(args);
        let out = sigil(&all);
        assert!(
            out.status.success(),
            "sigil keys {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("keys JSON")
    }

    /// Stops cleanly (SIGTERM, or a drain in process).
    fn stop(self) {
        match self {
            Node::Process(mut d) => assert!(d.terminate(), "sigild did not exit 0"),
            Node::InProcess(d) => d.stop().unwrap(),
        }
    }

    /// Crashes: kill -9, or an in-process daemon abandoned mid-flight.
    fn crash(self) {
        match self {
            Node::Process(mut d) => d.kill9(),
            Node::InProcess(d) => d.crash(),
        }
    }
}

/// The public key of directory entry `version`.
fn public_key(node: &Node, version: u64) -> String {
    let keys = directory_keys(node.endpoint());
    let entry = keys.iter().find(|k| k["version"] == version).unwrap();
    entry["public_key"].as_str().unwrap().to_owned()
}

/// Every acknowledged receipt is in its chain file, and both verifiers
/// accept each chain from `root`.
fn assert_step(node: &Node, root: &str, acked: &[(String, String)], tmp: &Path, step: &str) {
    for name in CHAINS {
        let path = node.chain_path(name);
        let text = std::fs::read_to_string(&path).unwrap();
        for (_, line) in acked.iter().filter(|(c, _)| c == name) {
            assert!(
                text.lines().any(|l| l == line),
                "{step}: {name} lost a receipt"
            );
        }
        let ends = export_endorsements(&path, &tmp.join(format!("ends-{step}-{name}")));
        assert_chain_verifies(&path, root, name, &ends);
    }
}

/// The scenario on `token`, whose directory entries name `kind`.
async fn life(token: impl FnOnce(&Path) -> Token, kind: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (tmp, data) = (dir.path(), dir.path().join("data"));
    let token = token(tmp);
    let mut acked = Vec::new();

    // Start: the root key is in the token.
    let node = token.start(tmp, &data);
    let keys = directory_keys(node.endpoint());
    assert_eq!(keys[0]["backend"], kind, "{keys:?}");
    let root = public_key(&node, 1);
    acked.extend(append_many(node.endpoint(), &CHAINS, 10, 2).await);
    assert_step(&node, &root, &acked, tmp, "start");

    // Restart: the same key is found again and the chains resume.
    node.stop();
    let node = token.start(tmp, &data);
    assert_eq!(
        public_key(&node, 1),
        root,
        "the key changed across a restart"
    );
    acked.extend(append_many(node.endpoint(), &CHAINS, 10, 2).await);
    assert_step(&node, &root, &acked, tmp, "restart");

    // Rotation: every chain crosses to v2 at one endorsed boundary.
    let r = node.keys(&["rotate"]);
    assert_eq!(r["keyid"], "mediator.v2", "{r}");
    let v2 = r["public_key"].as_str().unwrap().to_owned();
    acked.extend(append_many(node.endpoint(), &CHAINS, 10, 2).await);
    for name in CHAINS {
        let path = node.chain_path(name);
        assert_eq!(segment_keys(&path), [root.clone(), v2.clone()], "{name}");
        assert_eq!(boundaries(&path).len(), 1, "{name}");
    }
    assert_step(&node, &root, &acked, tmp, "rotate");

    // Revocation of retired v1 from after its last receipt: recorded, no
    // rotation, and sigil's verifier with the directory still accepts.
    // compromised_since has whole seconds: wait until the second after v1
    // signed its last receipt.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let now = time::OffsetDateTime::now_utc();
    let since = sigil_proto::timestamp::format(now.replace_nanosecond(0).unwrap());
    let revoke = format!(
        "revoke --key mediator --version 1 --reason decommissioned --compromised-since {since}"
    );
    let r = node.keys(&revoke.split(' ').collect::<Vec<_>>());
    assert_eq!(r["rotated_to"], "", "a retired version was rotated: {r}");
    let keys = directory_keys(node.endpoint());
    let v1 = keys.iter().find(|k| k["version"] == 1).unwrap();
    assert_eq!(v1["state"], "revoked", "{v1}");
    assert_eq!(public_key(&node, 2), v2);
    acked.extend(append_many(node.endpoint(), &CHAINS, 10, 2).await);
    assert_step(&node, &root, &acked, tmp, "revoke");
    let url = node.directory_url();
    for name in CHAINS {
        let path = node.chain_path(name);
        let (code, msg) = sigil_verify_chain(&path, &["--key", &root, "--directory", &url]);
        assert_eq!(code, 0, "revoke: {name}: {msg}");
    }

    // Crash: what was acknowledged survives, the restart opens each chain
    // again after its last line, and v2 signs on.
    acked.extend(append_many(node.endpoint(), &CHAINS, 10, 2).await);
    node.crash();
    let before: Vec<String> = CHAINS
        .iter()
        .map(|c| std::fs::read_to_string(data.join("chains").join(format!("{c}.jsonl"))).unwrap())
        .collect();
    let node = token.start(tmp, &data);
    assert_eq!(
        directory_keys(node.endpoint())[0]["public_key"],
        v2.as_str()
    );
    acked.extend(append_many(node.endpoint(), &CHAINS, 10, 2).await);
    for (name, before) in CHAINS.iter().zip(&before) {
        let last: Value = serde_json::from_str(before.lines().last().unwrap()).unwrap();
        let control = &last["action_record"]["session_control"];
        assert_ne!(
            control["kind"], "session_close",
            "{name}: closed, not crashed"
        );
        let after = std::fs::read_to_string(node.chain_path(name)).unwrap();
        let rest = after.strip_prefix(before.as_str()).expect("lines kept");
        let open: Value = serde_json::from_str(rest.lines().next().unwrap()).unwrap();
        let control = &open["action_record"]["session_control"];
        assert_eq!(control["kind"], "session_open", "{name}: {open}");
    }
    assert_step(&node, &root, &acked, tmp, "crash");
    node.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn software_chains_verify_through_restart_rotation_revocation_and_crash() {
    life(|_| Token::Software, "software").await;
}

#[cfg(feature = "pkcs11")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn softhsm_chains_verify_through_restart_rotation_revocation_and_crash() {
    life(
        |tmp| Token::SoftHsm(sigil_testkit::SoftHsm::new(tmp, "sigil-life")),
        "pkcs11",
    )
    .await;
}

#[cfg(feature = "tpm")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swtpm_chains_verify_through_restart_rotation_revocation_and_crash() {
    life(
        |tmp| Token::Swtpm(sigil_testkit::Swtpm::start(&tmp.join("tpm-state"))),
        "tpm",
    )
    .await;
}

#[cfg(feature = "yubihsm")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mockhsm_chains_verify_through_restart_rotation_revocation_and_crash() {
    life(|_| Token::MockHsm(yubihsm::Connector::mockhsm()), "yubihsm").await;
}
