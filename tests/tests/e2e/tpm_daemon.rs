//! sigild with its seed sealed by a TPM 2.0 (swtpm): chains pipelock-verify
//! accepts, the same key after a restart on the same TPM state, and a clear
//! refusal on another TPM.
#![cfg(feature = "tpm")]

use sigil_testkit::Swtpm;
use sigil_tests::{append_many, directory_keys, pipelock_verify, Daemon};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_on_swtpm_signs_verifiable_chains_and_only_on_its_own_tpm() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let tpm = Swtpm::start(&dir.path().join("tpm-state"));
    let config = tpm.config(dir.path());
    let args = ["--config", config.to_str().unwrap()];

    let mut daemon = Daemon::start(&data, &args);
    let keys = directory_keys(&daemon.endpoint);
    assert_eq!(keys[0]["backend"], "tpm");
    assert_eq!(
        keys[0]["non_extractable"], false,
        "the seed is in process memory while running"
    );
    assert!(keys[0]["custody"].as_str().unwrap().contains("memory"));
    let root = keys[0]["public_key"].as_str().unwrap().to_owned();
    append_many(&daemon.endpoint, &["t-a", "t-b"], 100, 4).await;
    assert!(daemon.terminate());

    // The same TPM state after a TPM restart: the same key signs on.
    drop(tpm);
    let tpm = Swtpm::start(&dir.path().join("tpm-state"));
    let config = tpm.config(dir.path());
    let mut daemon = Daemon::start(&data, &["--config", config.to_str().unwrap()]);
    assert_eq!(
        directory_keys(&daemon.endpoint)[0]["public_key"],
        root.as_str()
    );
    append_many(&daemon.endpoint, &["t-a"], 20, 2).await;
    assert!(daemon.terminate());
    for chain in ["t-a", "t-b"] {
        let (ok, out) = pipelock_verify(&daemon.chain_path(chain), &root, chain, &[]);
        assert!(ok, "{chain}: {out}");
    }

    // Another TPM (fresh state, another owner seed) cannot unseal the blob.
    drop(tpm);
    let other = Swtpm::start(&dir.path().join("other-tpm-state"));
    let config = other.config(dir.path());
    let err = Daemon::try_start(&data, &["--config", config.to_str().unwrap()])
        .err()
        .expect("sigild must refuse a blob sealed by another TPM");
    assert!(err.contains("another TPM"), "{err}");
}
