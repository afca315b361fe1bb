//! Fixtures for sigil's tests that need no sigil crate: SoftHSM2 token
//! directories, swtpm processes, free loopback ports, the workspace's
//! binaries and both chain verifiers (`sigil verify chain` and Pipelock's
//! `pipelock-verify`).
//!
//! It depends on no sigil crate, so that `sigil-keys` can use it as a
//! dev-dependency without a second copy of its own types.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub mod ports;
pub mod softhsm;
pub mod swtpm;
pub mod verify;

pub use softhsm::SoftHsm;
pub use swtpm::Swtpm;
pub use verify::{
    assert_chain_verifies, export_endorsements, pipelock_verify, pipelock_verify_bin,
    sigil_verify_chain,
};

/// The workspace root.
pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Path of a workspace binary (`sigild`, `sigil`).
///
/// The binaries are taken from the cargo target dir next to the test
/// executable; `scripts/test.sh` builds them first (`cargo build --bins`).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` before the tests (scripts/test.sh does)",
        path.display()
    );
    path
}

/// Writes `content` to `path`, readable by its owner only (mode 0600), as
/// sigil wants PIN and password files.
pub fn write_secret(path: &Path, content: &str) {
    std::fs::write(path, content).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// Runs the `sigil` CLI.
pub fn sigil(args: &[&str]) -> Output {
    Command::new(bin("sigil"))
        .args(args)
        .output()
        .expect("run sigil")
}

/// Runs `sigil` with `stdin` as standard input.
pub fn sigil_stdin(args: &[&str], stdin: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(bin("sigil"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run sigil");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("sigil output")
}
