//! sigild with its key in a PKCS#11 token (SoftHSM2): chains that
//! pipelock-verify accepts, the key found again after a restart, and token
//! sessions dropped under load.
#![cfg(feature = "pkcs11")]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use sigil_keys::pkcs11::{close_all_sessions, Pkcs11Backend, Pkcs11Config};
use sigil_keys::{Backend, Custody, KeyError, KeyId, PublicKey, Signature};
use sigil_testkit::softhsm::{SoftHsm, MODULE as SOFTHSM_MODULE};
use sigil_tests::{
    append_many, directory_keys, pipelock_verify, sigil, Daemon, InProcess, IN_PROCESS_TOKENS,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_on_softhsm_writes_chains_pipelock_accepts_and_finds_its_key_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let hsm = SoftHsm::new(dir.path(), "sigil-daemon");
    let config = hsm.config(dir.path(), 2);
    let conf = hsm.conf.to_str().unwrap().to_owned();
    let env = [("SOFTHSM2_CONF", conf.as_str())];
    let data = dir.path().join("data");
    let args = ["--config", config.to_str().unwrap()];

    let mut daemon = Daemon::try_start_env(&data, &args, &env).unwrap();
    let keys = directory_keys(&daemon.endpoint);
    assert_eq!(keys[0]["backend"], "pkcs11");
    assert_eq!(keys[0]["non_extractable"], true);
    let root = keys[0]["public_key"].as_str().unwrap().to_owned();
    let acked = append_many(&daemon.endpoint, &["p-a", "p-b"], 150, 4).await;
    assert_eq!(acked.len(), 300);
    assert!(daemon.terminate());

    // The key is found again in the token: same public key, chains resume.
    let daemon = Daemon::try_start_env(&data, &args, &env).unwrap();
    assert_eq!(
        directory_keys(&daemon.endpoint)[0]["public_key"],
        root.as_str()
    );
    append_many(&daemon.endpoint, &["p-a"], 20, 2).await;
    for chain in ["p-a", "p-b"] {
        let path = daemon.chain_path(chain);
        let text = std::fs::read_to_string(&path).unwrap();
        for (c, line) in &acked {
            if c == chain {
                assert!(text.lines().any(|l| l == line), "acknowledged receipt lost");
            }
        }
        let (ok, out) = pipelock_verify(&path, &root, chain, &[]);
        assert!(ok, "{chain}: {out}");
        let out = sigil(&["verify", "chain", path.to_str().unwrap(), "--key", &root]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

#[test]
fn a_wrong_pin_stops_the_start_with_a_clear_error_and_no_pin_in_it() {
    let dir = tempfile::tempdir().unwrap();
    let hsm = SoftHsm::new(dir.path(), "sigil-wrong-pin");
    std::fs::write(&hsm.pin_file, "not-the-pin-31337").unwrap();
    let config = hsm.config(dir.path(), 1);
    let conf = hsm.conf.to_str().unwrap().to_owned();
    let err = Daemon::try_start_env(
        &dir.path().join("data"),
        &["--config", config.to_str().unwrap()],
        &[("SOFTHSM2_CONF", conf.as_str())],
    )
    .err()
    .expect("sigild must refuse a wrong PIN");
    assert!(err.to_lowercase().contains("pin"), "{err}");
    assert!(!err.contains("not-the-pin-31337"), "the PIN leaked: {err}");
}

/// Delegates to the real PKCS#11 backend, holding a read lock around each
/// call so the fault injector (write lock) closes sessions only between
/// calls: SoftHSM 2.6 frees sessions that another thread is signing in.
struct Guarded {
    inner: Pkcs11Backend,
    gate: Arc<RwLock<()>>,
}

impl Backend for Guarded {
    fn generate(&self, id: &KeyId) -> Result<PublicKey, KeyError> {
        let _g = self.gate.read().unwrap();
        self.inner.generate(id)
    }
    fn find(&self, id: &KeyId) -> Result<Option<PublicKey>, KeyError> {
        let _g = self.gate.read().unwrap();
        self.inner.find(id)
    }
    fn sign(&self, id: &KeyId, message: &[u8]) -> Result<Signature, KeyError> {
        let _g = self.gate.read().unwrap();
        self.inner.sign(id, message)
    }
    fn destroy(&self, id: &KeyId) -> Result<(), KeyError> {
        let _g = self.gate.read().unwrap();
        self.inner.destroy(id)
    }
    fn describe(&self, id: &KeyId) -> Result<Custody, KeyError> {
        let _g = self.gate.read().unwrap();
        self.inner.describe(id)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_closed_under_load_end_in_retried_success_or_unavailable_and_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // In process: SoftHSM sessions belong to the process that opened them.
    let hsm = SoftHsm::in_process(IN_PROCESS_TOKENS).named("sigil-faults");
    let cfg = Pkcs11Config::from_uri(&hsm.uri()).unwrap();
    let gate = Arc::new(RwLock::new(()));
    let backend = Arc::new(Guarded {
        inner: Pkcs11Backend::open(&cfg).unwrap(),
        gate: gate.clone(),
    });
    let daemon = InProcess::start(&dir.path().join("data"), backend);
    let root = directory_keys(&daemon.endpoint)[0]["public_key"]
        .as_str()
        .unwrap()
        .to_owned();

    let stop = Arc::new(AtomicBool::new(false));
    let (s, g, label) = (stop.clone(), gate.clone(), hsm.label.clone());
    let injector = std::thread::spawn(move || {
        let mut closed = 0;
        while !s.load(Ordering::Relaxed) {
            std::thread::sleep(std::time::Duration::from_millis(15));
            let _w = g.write().unwrap();
            close_all_sessions(std::path::Path::new(SOFTHSM_MODULE), &label).unwrap();
            closed += 1;
        }
        closed
    });

    let mut tasks = Vec::new();
    for p in 0..4 {
        let endpoint = daemon.endpoint.clone();
        tasks.push(tokio::spawn(async move {
            let mut client = sigil_client::Client::connect(&endpoint).await.unwrap();
            let (mut acked, mut unavailable) = (Vec::new(), 0);
            for i in 0..150 {
                let chain = format!("f-{}", (p + i) % 2);
                match client
                    .append(&chain, &sigil_tests::record(p * 1000 + i))
                    .await
                {
                    Ok(r) => acked.push((chain, r.receipt_json)),
                    Err(sigil_client::ClientError::Status(s))
                        if s.code() == tonic::Code::Unavailable =>
                    {
                        unavailable += 1
                    }
                    Err(e) => panic!("append failed with something other than UNAVAILABLE: {e}"),
                }
            }
            (acked, unavailable)
        }));
    }
    let (mut acked, mut unavailable) = (Vec::new(), 0);
    for t in tasks {
        let (a, u) = t.await.unwrap();
        acked.extend(a);
        unavailable += u;
    }
    stop.store(true, Ordering::Relaxed);
    let closed = injector.join().unwrap();
    assert!(closed > 5, "the fault injector ran {closed} times");
    assert!(!acked.is_empty());
    eprintln!(
        "acked {} unavailable {unavailable} session drops {closed}",
        acked.len()
    );

    daemon.stop().unwrap();
    for chain in ["f-0", "f-1"] {
        let path = dir
            .path()
            .join("data/chains")
            .join(format!("{chain}.jsonl"));
        let text = std::fs::read_to_string(&path).unwrap();
        for (c, line) in &acked {
            if c == chain {
                assert!(text.lines().any(|l| l == line), "acknowledged receipt lost");
            }
        }
        let (ok, out) = pipelock_verify(&path, &root, chain, &[]);
        assert!(ok, "{chain}: {out}");
    }
}

/// Two daemons on one token: each generates its own chain and digest keys
/// (labels are namespaced per data dir), so B's SignDigest never signs with
/// A's key, and B's chains verify only against B's root.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_daemons_on_one_token_never_share_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let hsm = SoftHsm::new(dir.path(), "sigil-shared");
    let config = hsm.config(dir.path(), 2);
    let conf = hsm.conf.to_str().unwrap().to_owned();
    let env = [("SOFTHSM2_CONF", conf.as_str())];
    let args = ["--config", config.to_str().unwrap()];
    let a = Daemon::try_start_env(&dir.path().join("a"), &args, &env).unwrap();
    let b = Daemon::try_start_env(&dir.path().join("b"), &args, &env).unwrap();
    let (root_a, root_b) = (a.active_key(), b.active_key());
    assert_ne!(root_a, root_b, "B adopted A's chain key");

    let mut cb = sigil_client::Client::connect(&b.endpoint).await.unwrap();
    let da = a.create_key("digests").await;
    let db = b.create_key("digests").await;
    assert_ne!(da, db, "B's keys create adopted A's digest key");
    let signed = cb.sign_digest("digests", &[3u8; 32]).await.unwrap();
    assert_eq!(signed.signer_key, db);

    append_many(&b.endpoint, &["p-b"], 5, 1).await;
    let chain = b.chain_path("p-b");
    let ok = sigil(&["verify", "chain", chain.to_str().unwrap(), "--key", &root_b]);
    assert!(ok.status.success(), "{ok:?}");
    let wrong = sigil(&["verify", "chain", chain.to_str().unwrap(), "--key", &root_a]);
    assert_eq!(wrong.status.code(), Some(1), "{wrong:?}");
}

/// A PIN read from the environment is gone from it once the token is open
/// (children would inherit it, /proc shows it), and sigild makes no core
/// dumps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_env_pin_is_scrubbed_and_core_dumps_are_off() {
    let dir = tempfile::tempdir().unwrap();
    let hsm = SoftHsm::new(dir.path(), "sigil-env-pin");
    let pin = sigil_testkit::softhsm::PIN;
    let config = dir.path().join("sigild.toml");
    std::fs::write(
        &config,
        format!(
            "[backend]\nkind = \"pkcs11\"\nuri = \"pkcs11:token={}?module-path={SOFTHSM_MODULE}&pin-source=env:SIGIL_PIN\"\n",
            hsm.label
        ),
    )
    .unwrap();
    let conf = hsm.conf.to_str().unwrap().to_owned();
    let env = [("SOFTHSM2_CONF", conf.as_str()), ("SIGIL_PIN", pin)];
    let daemon = Daemon::try_start_env(
        &dir.path().join("data"),
        &["--config", config.to_str().unwrap()],
        &env,
    )
    .unwrap();
    append_many(&daemon.endpoint, &["p"], 3, 1).await;
    let environ = std::fs::read(format!("/proc/{}/environ", daemon.pid())).unwrap();
    let environ = String::from_utf8_lossy(&environ);
    assert!(environ.contains("SOFTHSM2_CONF="), "environ not read");
    assert!(
        !environ.contains(pin),
        "the PIN is still in the environment"
    );
    // /proc shows the original environment block: the name stays there,
    // its value is overwritten.
    assert!(
        environ.contains("SIGIL_PIN=\0"),
        "the value was not overwritten"
    );
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", daemon.pid())).unwrap();
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    let fields: Vec<&str> = core.split_whitespace().collect();
    assert_eq!(&fields[4..6], ["0", "0"], "{core}");
}
