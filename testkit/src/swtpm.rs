//! swtpm, a software TPM 2.0, on free loopback ports.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::ports::free_port_pair;

/// A running swtpm on loopback ports, killed on drop.
pub struct Swtpm {
    child: Child,
    /// Data port (the control port is the next one).
    pub port: u16,
}

impl Swtpm {
    /// Starts swtpm with its state in `state` (created if needed), on free
    /// ports. Tests run in parallel: a port found free can be taken before
    /// swtpm binds it, and swtpm then exits; that is retried on new ports.
    pub fn start(state: &Path) -> Swtpm {
        for _ in 0..5 {
            if let Some(tpm) = Self::try_start_on(state, free_port_pair()) {
                return tpm;
            }
        }
        panic!("swtpm did not start on five pairs of free ports");
    }

    /// Starts swtpm on `port` (and `port + 1` for control), again after a
    /// stop: the stopped swtpm's sockets may take a moment to be released,
    /// so a start that finds the port taken is retried for a few seconds.
    pub fn start_on(state: &Path, port: u16) -> Swtpm {
        for _ in 0..20 {
            if let Some(tpm) = Self::try_start_on(state, port) {
                return tpm;
            }
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
        panic!(
            "swtpm did not start on port {port} (and {}) within 5 s",
            port + 1
        )
    }

    /// [`Swtpm::start_on`], or `None` when swtpm exited (a port was taken).
    fn try_start_on(state: &Path, port: u16) -> Option<Swtpm> {
        std::fs::create_dir_all(state).unwrap();
        let ctrl = port + 1;
        let mut child = Command::new("swtpm")
            .args(["socket", "--tpm2", "--server"])
            .arg(format!("type=tcp,port={port},bindaddr=127.0.0.1"))
            .arg("--ctrl")
            .arg(format!("type=tcp,port={ctrl},bindaddr=127.0.0.1"))
            .arg("--tpmstate")
            .arg(format!("dir={}", state.display()))
            .args(["--flags", "not-need-init,startup-clear"])
            .stdout(Stdio::null())
            .spawn()
            .expect("swtpm (Debian package swtpm) starts");
        let deadline = Instant::now() + Duration::from_secs(10);
        // Both ports must answer, from this swtpm: a child that exited lost
        // a port to another test.
        while TcpStream::connect(("127.0.0.1", ctrl)).is_err()
            || TcpStream::connect(("127.0.0.1", port)).is_err()
        {
            if !matches!(child.try_wait(), Ok(None)) {
                let _ = child.wait();
                return None;
            }
            assert!(Instant::now() < deadline, "swtpm did not start listening");
            std::thread::sleep(Duration::from_millis(20));
        }
        if !matches!(child.try_wait(), Ok(None)) {
            let _ = child.wait();
            return None;
        }
        Some(Swtpm { child, port })
    }

    /// The TCTI string for sigild and the TPM backend.
    pub fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }

    /// A sigild config file using this TPM.
    pub fn config(&self, dir: &Path) -> PathBuf {
        let path = dir.join("sigild-tpm.toml");
        std::fs::write(
            &path,
            format!("[backend]\nkind = \"tpm\"\ntcti = \"{}\"\n", self.tcti()),
        )
        .unwrap();
        path
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
