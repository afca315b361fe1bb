//! sigild with its key in a YubiHSM 2, here the yubihsm crate's MockHsm
//! (in process: the mock lives in the connector): chains pipelock-verify
//! accepts and a directory entry that says where the key is.
#![cfg(feature = "yubihsm")]

use std::sync::Arc;

use sigil_keys::yubihsm::YubiHsmBackend;
use sigil_tests::{append_many, directory_keys, pipelock_verify, InProcess};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_on_mockhsm_signs_chains_pipelock_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let connector = yubihsm::Connector::mockhsm();
    let backend =
        YubiHsmBackend::with_credentials(connector.clone(), yubihsm::Credentials::default(), 1)
            .unwrap();
    let daemon = InProcess::start(&dir.path().join("data"), Arc::new(backend));
    let keys = directory_keys(&daemon.endpoint);
    assert_eq!(keys[0]["backend"], "yubihsm");
    assert_eq!(keys[0]["non_extractable"], true);
    let root = keys[0]["public_key"].as_str().unwrap().to_owned();
    let acked = append_many(&daemon.endpoint, &["y-a", "y-b"], 60, 3).await;
    assert_eq!(acked.len(), 120);
    let paths = [daemon.chain_path("y-a"), daemon.chain_path("y-b")];
    daemon.stop().unwrap();

    // A new client over the same device finds the key again.
    let backend =
        YubiHsmBackend::with_credentials(connector, yubihsm::Credentials::default(), 1).unwrap();
    let daemon = InProcess::start(&dir.path().join("data"), Arc::new(backend));
    assert_eq!(
        directory_keys(&daemon.endpoint)[0]["public_key"],
        root.as_str()
    );
    append_many(&daemon.endpoint, &["y-a"], 10, 1).await;
    daemon.stop().unwrap();
    for (path, chain) in paths.iter().zip(["y-a", "y-b"]) {
        let (ok, out) = pipelock_verify(path, &root, chain, &[]);
        assert!(ok, "{chain}: {out}");
    }
}
