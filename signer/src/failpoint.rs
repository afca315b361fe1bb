//! Crash points for the crash-safety tests: when the environment variable
//! `SIGIL_CRASH_AT` names a point, the daemon kills itself with SIGKILL
//! there, exactly as a crash or `kill -9` would. Unset, each point is one
//! comparison.

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
