//! One data dir, one writer: a second sigild, and the token benchmark
//! (which generates and records keys), refuse a data dir a daemon holds.

use std::process::Command;

use sigil_tests::{bin, Daemon};

#[test]
fn a_held_data_dir_is_refused_by_a_second_daemon_and_by_the_bench() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let daemon = Daemon::start(&data, &[]);
    let keys = std::fs::read(data.join("keys.json")).unwrap();

    let second = Daemon::try_start(&data, &[]).err().unwrap_or_default();
    assert!(second.contains("in use by another sigild"), "{second}");

    let bench = Command::new(bin("sigild"))
        .args([
            "--data-dir",
            data.to_str().unwrap(),
            "--bench-token-seconds",
            "1",
        ])
        .output()
        .unwrap();
    assert!(!bench.status.success(), "{bench:?}");
    let err = String::from_utf8_lossy(&bench.stderr);
    assert!(err.contains("in use by another sigild"), "{err}");
    assert_eq!(std::fs::read(data.join("keys.json")).unwrap(), keys);
    drop(daemon);
}
