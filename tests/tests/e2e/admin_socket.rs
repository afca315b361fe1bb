//! Key administration without TLS is not open to every local process: it
//! answers only on `<data-dir>/admin.sock` (mode 0600), to the daemon's own
//! uid, root and `admin_uids`; over TCP it is PERMISSION_DENIED naming the
//! socket, and nothing changes.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use sigil_client::{Client, ClientError};
use sigil_tests::{bin, sigil, Daemon};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_tls_keys_are_administered_on_the_socket_only() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(&dir.path().join("data"), &[]);
    let sock = daemon.admin_socket();
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "admin socket mode {mode:o}");
    let keys_before = std::fs::read(daemon.data_dir.join("keys.json")).unwrap();

    // Over loopback TCP every admin call is refused, naming the socket.
    let mut tcp = Client::connect(&daemon.endpoint).await.unwrap();
    for result in [
        tcp.create_key("digests").await.map(|_| ()),
        tcp.rotate_key("").await.map(|_| ()),
        tcp.revoke_key("mediator", 1, "x", "").await.map(|_| ()),
        tcp.list_keys().await.map(|_| ()),
    ] {
        match result {
            Err(ClientError::Status(s)) => {
                assert_eq!(s.code(), tonic::Code::PermissionDenied, "{s:?}");
                assert!(s.message().contains("admin.sock"), "{s:?}");
            }
            other => panic!("admin over TCP without TLS: {other:?}"),
        }
    }
    assert_eq!(
        std::fs::read(daemon.data_dir.join("keys.json")).unwrap(),
        keys_before
    );
    // The directory stays public over TCP.
    assert!(tcp.directory().await.unwrap().contains("mediator.v1"));

    // On the socket, the daemon's own uid administers keys.
    let out = sigil(&[
        "--admin-socket",
        sock.to_str().unwrap(),
        "keys",
        "create",
        "digests",
    ]);
    assert!(out.status.success(), "{out:?}");
    let out = sigil(&["--admin-socket", sock.to_str().unwrap(), "keys", "list"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("digests.v1"));

    // The CLI says where to look when there is no socket.
    let out = sigil(&["--admin-socket", "/nonexistent/admin.sock", "keys", "list"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unix:/nonexistent/admin.sock"), "{err}");
    assert!(err.contains("--admin-socket"), "{err}");
}

/// Runs the sigil CLI as `uid` (the test runs as root, as CI does).
fn sigil_as(uid: u32, args: &[&str]) -> std::process::Output {
    Command::new("setpriv")
        .args([
            &format!("--reuid={uid}"),
            &format!("--regid={uid}"),
            "--clear-groups",
        ])
        .arg(bin("sigil"))
        .args(args)
        .output()
        .expect("setpriv runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_socket_checks_the_callers_uid() {
    // Root in CI: another uid is real only when we can become it.
    assert_eq!(
        unsafe { libc::getuid() },
        0,
        "this test drops privileges: run as root"
    );
    let dir = tempfile::tempdir().unwrap();
    let public = dir.path().join("public");
    std::fs::create_dir_all(&public).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&public, std::fs::Permissions::from_mode(0o755)).unwrap();
    let sock = public.join("admin.sock");
    let config = dir.path().join("sigild.toml");
    std::fs::write(
        &config,
        format!(
            "admin_socket = \"{}\"\nadmin_uids = [65533]\n",
            sock.display()
        ),
    )
    .unwrap();
    let daemon = Daemon::start(
        &dir.path().join("data"),
        &["--config", config.to_str().unwrap()],
    );
    // Let other uids reach the socket file, so the daemon's uid check is
    // what is tested (the 0600 mode alone would stop them at connect).
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o666)).unwrap();
    let s = sock.to_str().unwrap();

    let out = sigil_as(65534, &["--admin-socket", s, "keys", "create", "nobodys"]);
    assert!(!out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("uid 65534 may not create keys"), "{err}");
    assert!(!std::fs::read_to_string(daemon.data_dir.join("keys.json"))
        .unwrap()
        .contains("nobodys"));

    let out = sigil_as(65533, &["--admin-socket", s, "keys", "create", "listed"]);
    assert!(
        out.status.success(),
        "an admin_uids member was refused: {out:?}"
    );
}
