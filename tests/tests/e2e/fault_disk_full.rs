//! A full disk: appends fail with UNAVAILABLE and a message that says so,
//! nothing in the chain is torn, the directory keeps serving, and appends
//! succeed again once space returns. The disk is a 1 MiB tmpfs the test
//! mounts (the tests run as root, as CI does).

use std::process::Command;

use sigil_client::{Client, ClientError};
use sigil_tests::{directory_keys, pipelock_verify, record, sigil, Daemon};

struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_appends_cleanly_and_recovers_when_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("small-disk");
    std::fs::create_dir(&mnt).unwrap();
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&mnt)
        .status()
        .expect("mount runs");
    assert!(st.success(), "mounting a 1 MiB tmpfs needs root");
    let _mount = Mount(mnt.clone());

    let daemon = Daemon::start(&mnt.join("data"), &[]);
    let key = directory_keys(&daemon.endpoint)[0]["public_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut client = Client::connect(&daemon.endpoint).await.unwrap();
    let mut acked = Vec::new();
    for i in 0..10 {
        acked.push(
            client
                .append("disk", &record(i))
                .await
                .unwrap()
                .receipt_json,
        );
    }

    // Fill the disk, leaving a little room.
    let filler = mnt.join("filler");
    let mut size = 1024 * 1024;
    loop {
        if std::fs::write(&filler, vec![0u8; size]).is_ok() {
            break;
        }
        size -= 8 * 1024;
    }

    let mut failed = None;
    for i in 10..5000 {
        match client.append("disk", &record(i)).await {
            Ok(r) => acked.push(r.receipt_json),
            Err(ClientError::Status(s)) => {
                failed = Some(s);
                break;
            }
            Err(e) => panic!("{e}"),
        }
    }
    let status = failed.expect("the disk never filled");
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(
        status.message().contains("No space left"),
        "{}",
        status.message()
    );

    // Nothing torn: the file is whole lines, every acknowledged receipt is
    // there, and it verifies.
    let path = daemon.chain_path("disk");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.ends_with('\n'));
    for line in &acked {
        assert!(text.lines().any(|l| l == line));
    }
    let (ok, out) = pipelock_verify(&path, &key, "disk", &[]);
    assert!(ok, "{out}");
    // Reads keep serving.
    let out = sigil(&["--endpoint", &daemon.endpoint, "directory"]);
    assert!(out.status.success());

    // Space returns: appends succeed again, on a chain that still verifies.
    std::fs::remove_file(&filler).unwrap();
    for i in 0..20 {
        client.append("disk", &record(10_000 + i)).await.unwrap();
    }
    let (ok, out) = pipelock_verify(&path, &key, "disk", &[]);
    assert!(ok, "{out}");
}
