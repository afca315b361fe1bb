//! Real tokens for daemon tests: a SoftHSM2 token directory and swtpm,
//! both on temporary dirs, handed to sigild through its environment and
//! config.

use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Debian's SoftHSM2 module.
pub const SOFTHSM_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// A SoftHSM2 configuration with one initialised token.
pub struct SoftHsm {
    /// `SOFTHSM2_CONF` for sigild.
    pub conf: PathBuf,
    /// File holding the user PIN (mode 0600).
    pub pin_file: PathBuf,
    /// Token label.
    pub label: String,
}

impl SoftHsm {
    /// Creates a token directory under `dir` and a token `label` in it.
    pub fn new(dir: &Path, label: &str) -> SoftHsm {
        let tokens = dir.join("softhsm-tokens");
        std::fs::create_dir_all(&tokens).unwrap();
        let conf = dir.join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                tokens.display()
            ),
        )
        .unwrap();
        let pin = "daemon-test-PIN-4711";
        let out = Command::new("softhsm2-util")
            .args([
                "--init-token",
                "--free",
                "--label",
                label,
                "--so-pin",
                "so-pin-0000",
                "--pin",
                pin,
            ])
            .env("SOFTHSM2_CONF", &conf)
            .output()
            .expect("softhsm2-util (Debian package softhsm2) runs");
        assert!(out.status.success(), "softhsm2-util: {out:?}");
        let pin_file = dir.join("pkcs11.pin");
        std::fs::write(&pin_file, pin).unwrap();
        std::fs::set_permissions(&pin_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        SoftHsm {
            conf,
            pin_file,
            label: label.into(),
        }
    }

    /// The PKCS#11 URI naming this token.
    pub fn uri(&self) -> String {
        format!(
            "pkcs11:token={}?module-path={SOFTHSM_MODULE}&pin-source=file:{}",
            self.label,
            self.pin_file.display()
        )
    }

    /// A sigild config file using this token with `sessions` sessions.
    pub fn config(&self, dir: &Path, sessions: usize) -> PathBuf {
        let path = dir.join("sigild-pkcs11.toml");
        std::fs::write(
            &path,
            format!(
                "[backend]\nkind = \"pkcs11\"\nuri = \"{}\"\nsessions = {sessions}\n",
                self.uri()
            ),
        )
        .unwrap();
        path
    }
}

/// A running swtpm on free loopback ports, killed on drop.
pub struct Swtpm {
    child: Child,
    /// Data port.
    pub port: u16,
}

impl Swtpm {
    /// Starts swtpm with its state in `state` (created if needed), on free
    /// ports. Tests run in parallel: a port found free can be taken before
    /// swtpm binds it, and swtpm then exits; that is retried on new ports.
    pub fn start(state: &Path) -> Swtpm {
        for _ in 0..5 {
            let (port, _) = free_port_pair();
            if let Some(tpm) = Self::try_start_on(state, port) {
                return tpm;
            }
        }
        panic!("swtpm did not start on five pairs of free ports");
    }

    /// Starts swtpm on `port` (and `port + 1` for control).
    pub fn start_on(state: &Path, port: u16) -> Swtpm {
        Self::try_start_on(state, port).expect("swtpm started and listens on both ports")
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

    /// The TCTI string for sigild.
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

/// Two consecutive free loopback ports (swtpm's data and control).
fn free_port_pair() -> (u16, u16) {
    loop {
        let a = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = a.local_addr().unwrap().port();
        if port < u16::MAX && TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return (port, port + 1);
        }
    }
}
