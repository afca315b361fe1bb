//! Crash and fault points for the crash-safety and fault tests.
//!
//! When the environment variable `SIGIL_CRASH_AT` names a point, the daemon
//! kills itself with SIGKILL there, exactly as a crash or `kill -9` would.
//!
//! When `SIGIL_FAIL_AT` lists a point (comma-separated), the I/O there
//! fails with EIO instead of running, as a failing disk would; with
//! `SIGIL_FAIL_WHILE=PATH` only while `PATH` exists, so a test arms and
//! disarms the fault by creating and removing a file. The points:
//! `store.write` (a chain append's write), `store.sync` (its fdatasync,
//! after the write) and `store.cut_back` (cutting a failed append back).
//!
//! When `SIGIL_STALL_AT` names a point, the thread there waits while the
//! file `SIGIL_STALL_WHILE` exists, as a slow disk would (a test holds an
//! fsync as long as it needs, then lets it go). The point:
//! `keyring.persist` (keys.json's durable write).
//!
//! Unset, each point is one comparison.

use std::path::PathBuf;
use std::sync::OnceLock;

/// Kills the process if `SIGIL_CRASH_AT` is `name`.
pub fn hit(name: &str) {
    static AT: OnceLock<Option<String>> = OnceLock::new();
    if AT
        .get_or_init(|| std::env::var("SIGIL_CRASH_AT").ok())
        .as_deref()
        == Some(name)
    {
        eprintln!("sigild: crash point {name} (SIGIL_CRASH_AT)");
        // SAFETY: raising a signal on our own process; nothing is shared.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}

struct Faults {
    points: Vec<String>,
    armed_while: Option<PathBuf>,
}

/// Fails with EIO if `SIGIL_FAIL_AT` lists `name` (and, with
/// `SIGIL_FAIL_WHILE`, its file exists); otherwise does nothing.
pub fn io(name: &str) -> std::io::Result<()> {
    static FAULTS: OnceLock<Option<Faults>> = OnceLock::new();
    let faults = FAULTS.get_or_init(|| {
        let points = std::env::var("SIGIL_FAIL_AT").ok()?;
        Some(Faults {
            points: points.split(',').map(|p| p.trim().to_owned()).collect(),
            armed_while: std::env::var_os("SIGIL_FAIL_WHILE").map(PathBuf::from),
        })
    });
    let Some(f) = faults else {
        return Ok(());
    };
    let armed = f.armed_while.as_ref().is_none_or(|p| p.exists());
    if armed && f.points.iter().any(|p| p == name) {
        eprintln!("sigild: fault point {name} (SIGIL_FAIL_AT)");
        return Err(std::io::Error::from_raw_os_error(libc::EIO));
    }
    Ok(())
}

/// Waits while `SIGIL_STALL_WHILE`'s file exists if `SIGIL_STALL_AT` is
/// `name`; otherwise does nothing.
pub fn stall(name: &str) {
    static AT: OnceLock<Option<(String, PathBuf)>> = OnceLock::new();
    let at = AT.get_or_init(|| {
        let point = std::env::var("SIGIL_STALL_AT").ok()?;
        let file = std::env::var_os("SIGIL_STALL_WHILE")?;
        Some((point, PathBuf::from(file)))
    });
    if let Some((point, file)) = at {
        if point == name && file.exists() {
            eprintln!("sigild: stall point {name} (SIGIL_STALL_AT)");
            while file.exists() {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
    }
}
