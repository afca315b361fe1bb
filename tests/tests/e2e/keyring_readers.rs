//! Readers never wait behind keys.json's fsync: while a rotation's durable
//! write of the key records is held (a stalled disk, `SIGIL_STALL_AT`),
//! appends keep being signed and made durable, a new chain opens (it reads
//! the records for its signing key), SignDigest signs (it reads them for the
//! digest key and to refuse chain keys) and the directory keeps being
//! served; the rotation then completes and the chain verifies.

use std::process::{Command, Stdio};
use std::time::Duration;

use sigil_tests::{assert_chain_verifies, bin, export_endorsements, wait_until, Daemon};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_and_the_directory_do_not_wait_on_a_stalled_key_record_write() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let stall = dir.path().join("stall");
    let daemon = Daemon::try_start_env(
        &data,
        &[],
        &[
            ("SIGIL_STALL_AT", "keyring.persist"),
            ("SIGIL_STALL_WHILE", stall.to_str().unwrap()),
        ],
    )
    .unwrap();
    let mut c = sigil_client::Client::connect(&daemon.endpoint)
        .await
        .unwrap();
    c.append("readers", &sigil_tests::record(0)).await.unwrap();
    let root = daemon.active_key();
    daemon.create_key("digests").await;

    // Hold the next keys.json write, and start a rotation into it.
    std::fs::write(&stall, b"").unwrap();
    let socket = daemon.admin_socket();
    let mut rotation = Command::new(bin("sigil"))
        .args(["--admin-socket", socket.to_str().unwrap(), "keys", "rotate"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = data.with_extension("sigild.log");
    assert!(
        wait_until(Duration::from_secs(30), || std::fs::read_to_string(&log)
            .is_ok_and(|l| l.contains("stall point keyring.persist"))),
        "the rotation never reached the key record write"
    );

    // The write is held: readers go on. (The bound only keeps a reader
    // that does wait from hanging the test: the write is released below.)
    let readers = async {
        for i in 1..=20 {
            let r = c.append("readers", &sigil_tests::record(i)).await.unwrap();
            assert_eq!(r.chain_seq, i as u64 + 1);
        }
        let fresh = c
            .append("readers-new", &sigil_tests::record(0))
            .await
            .unwrap();
        assert_eq!(fresh.chain_seq, 1, "a new chain opened");
        c.sign_digest("digests", &[7; 32]).await.unwrap();
        c.directory().await.unwrap()
    };
    let directory = tokio::time::timeout(Duration::from_secs(60), readers)
        .await
        .expect("a reader waited on the held key record write");
    assert!(directory.contains("mediator.v1"), "{directory}");
    assert!(
        rotation.try_wait().unwrap().is_none(),
        "the rotation finished while its write was held"
    );

    // Released, the rotation completes and the chain verifies.
    std::fs::remove_file(&stall).unwrap();
    let out = rotation.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    c.append("readers", &sigil_tests::record(21)).await.unwrap();
    let path = daemon.chain_path("readers");
    let ends = export_endorsements(&path, &dir.path().join("ends"));
    assert_eq!(ends.len(), 1, "one rotation, one endorsement");
    assert_chain_verifies(&path, &root, "readers", &ends);
}
