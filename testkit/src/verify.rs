//! The two chain verifiers: sigil's (`sigil verify chain`) and Pipelock's
//! (`pipelock-verify`), run as their command-line tools.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::{sigil, workspace};

/// stdout and stderr of `out`, one after the other.
fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Path of Pipelock's verifier CLI: `$PIPELOCK_VERIFY`, or the project's
/// virtualenv that scripts/test.sh creates.
pub fn pipelock_verify_bin() -> PathBuf {
    let p = std::env::var_os("PIPELOCK_VERIFY")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join(".venv/bin/pipelock-verify"));
    assert!(
        p.exists(),
        "{} is missing: run scripts/test.sh, which installs pipelock-verify==0.4.1 into .venv",
        p.display()
    );
    p
}

/// Runs `pipelock-verify FILE --key KEY --session-id SID
/// [--rotation-endorsement E]...`; returns (exit success, combined output).
pub fn pipelock_verify(
    file: &Path,
    key: &str,
    session_id: &str,
    endorsements: &[PathBuf],
) -> (bool, String) {
    let mut cmd = Command::new(pipelock_verify_bin());
    cmd.arg(file)
        .args(["--key", key, "--session-id", session_id]);
    for e in endorsements {
        cmd.arg("--rotation-endorsement").arg(e);
    }
    let out = cmd.output().expect("run pipelock-verify");
    (out.status.success(), text(&out))
}

/// Runs `sigil verify chain FILE ARGS...`; returns (exit code, stdout and
/// stderr).
pub fn sigil_verify_chain(file: &Path, args: &[&str]) -> (i32, String) {
    let mut all = vec!["verify", "chain", file.to_str().unwrap()];
    all.extend_from_slice(args);
    let o = sigil(&all);
    (o.status.code().unwrap_or(-1), text(&o))
}

/// Writes the rotation endorsements held in chain file `file` into `out`
/// with `sigil chain endorsements`; returns their paths in file order.
pub fn export_endorsements(file: &Path, out: &Path) -> Vec<PathBuf> {
    let o = sigil(&[
        "chain",
        "endorsements",
        file.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        o.status.success(),
        "sigil chain endorsements: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(PathBuf::from)
        .collect()
}

/// Both verifiers accept chain file `path` of session `name` from the
/// pinned `root` key: Pipelock's with `endorsements` (one per rotation the
/// chain holds, see [`export_endorsements`]), sigil's with the session id
/// (it reads the endorsements from the file).
pub fn assert_chain_verifies(path: &Path, root: &str, name: &str, endorsements: &[PathBuf]) {
    let (ok, msg) = pipelock_verify(path, root, name, endorsements);
    assert!(ok, "pipelock-verify rejected {name}: {msg}");
    let (code, msg) = sigil_verify_chain(path, &["--key", root, "--session-id", name]);
    assert_eq!(code, 0, "sigil verify rejected {name}: {msg}");
}
