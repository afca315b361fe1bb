//! Helpers shared by the end-to-end tests: start and stop a real sigild on
//! a temporary data dir and free loopback ports, run the `sigil` CLI, and
//! run Pipelock's own verifier.
//!
//! The binaries are taken from the cargo target dir next to the test
//! executable; `scripts/test.sh` builds them first (`cargo build --bins`).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub mod forge;
pub mod root;
pub mod tokens;

/// Path of a workspace binary (`sigild`, `sigil`).
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

/// The workspace root.
pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Pipelock vectors shipped in the repository.
pub fn vectors() -> PathBuf {
    workspace().join("tests/vectors")
}

/// A running sigild.
pub struct Daemon {
    child: Option<Child>,
    /// Its data dir.
    pub data_dir: PathBuf,
    /// gRPC endpoint, `http://127.0.0.1:P`.
    pub endpoint: String,
    /// HTTP address, `127.0.0.1:P`.
    pub http: String,
}

impl Daemon {
    /// Starts sigild on `data_dir` with ephemeral loopback ports and no
    /// heartbeats, plus `extra` arguments; waits until it is ready.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Daemon {
        Self::try_start(data_dir, extra).unwrap_or_else(|e| panic!("sigild did not start: {e}"))
    }

    /// Like [`Daemon::start`], returning sigild's complaint on failure.
    pub fn try_start(data_dir: &Path, extra: &[&str]) -> Result<Daemon, String> {
        Self::try_start_env(data_dir, extra, &[])
    }

    /// Like [`Daemon::try_start`], with extra environment variables.
    pub fn try_start_env(
        data_dir: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Daemon, String> {
        let mut args: Vec<String> = vec![
            "--data-dir".into(),
            data_dir.display().to_string(),
            "--grpc-listen".into(),
            "127.0.0.1:0".into(),
            "--http-listen".into(),
            "127.0.0.1:0".into(),
        ];
        if !extra.contains(&"--heartbeat-seconds") {
            args.extend(["--heartbeat-seconds".into(), "0".into()]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let log = data_dir.with_extension("sigild.log");
        let mut child = Command::new(bin("sigild"))
            .args(&args)
            .env("SIGIL_LOG", "info")
            .env("TSS2_LOG", "all+none")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).map_err(|e| e.to_string())?)
            .spawn()
            .map_err(|e| e.to_string())?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_default();
        let field = |k: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(k))
                .map(str::to_owned)
        };
        match (field("grpc="), field("http=")) {
            (Some(g), Some(h)) => Ok(Daemon {
                child: Some(child),
                data_dir: data_dir.to_owned(),
                endpoint: format!("http://{g}"),
                http: h,
            }),
            _ => {
                let _ = child.kill();
                let status = child.wait().ok();
                Err(format!(
                    "{status:?}: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                ))
            }
        }
    }

    /// Path of chain `name`'s file.
    pub fn chain_path(&self, name: &str) -> PathBuf {
        self.data_dir.join("chains").join(format!("{name}.jsonl"))
    }

    /// Public key (hex) of the first (active) directory entry.
    pub fn active_key(&self) -> String {
        let out = sigil(&["--endpoint", &self.endpoint, "directory"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let dir: serde_json::Value = serde_json::from_slice(&out.stdout).expect("directory JSON");
        dir["keys"][0]["public_key"]
            .as_str()
            .expect("public_key")
            .to_owned()
    }

    /// Kills sigild with SIGKILL, as a crash would.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops sigild with SIGTERM and waits for it; returns its success.
    pub fn terminate(&mut self) -> bool {
        match self.child.take() {
            Some(mut c) => {
                // SAFETY: signalling our own child process by its pid.
                unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
                c.wait().map(|s| s.success()).unwrap_or(false)
            }
            None => false,
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
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
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A valid record, distinct per `i`.
pub fn record(i: usize) -> String {
    serde_json::json!({
        "action_type": "write",
        "target": format!("https://api.example.com/v1/items/{i}"),
        "verdict": if i.is_multiple_of(7) { "block" } else { "allow" },
        "transport": "https",
        "method": "POST",
        "principal": "org:tests",
        "actor": "agent:tests",
    })
    .to_string()
}

/// Waits until `f` is true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

/// A sigild running inside the test process over a given backend (for
/// backends that exist only in process, such as the YubiHSM MockHsm, or to
/// inject token faults between calls). Real gRPC over loopback all the same.
pub struct InProcess {
    /// gRPC endpoint.
    pub endpoint: String,
    /// HTTP address.
    pub http: String,
    /// Data dir.
    pub data_dir: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), String>>>,
}

impl InProcess {
    /// Starts the daemon on its own runtime thread.
    pub fn start(data_dir: &Path, backend: std::sync::Arc<dyn sigil_keys::Backend>) -> InProcess {
        let mut config = sigil_signer::config::Config {
            data_dir: data_dir.to_owned(),
            grpc_listen: "127.0.0.1:0".parse().unwrap(),
            http_listen: "127.0.0.1:0".parse().unwrap(),
            ..Default::default()
        };
        config.chains.heartbeat_seconds = 0;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(sigil_signer::server::run_with_backend(
                config,
                backend,
                async move {
                    let _ = stop_rx.await;
                },
                move |g, h| {
                    let _ = ready_tx.send((g, h));
                },
            ))
            .map_err(|e| e.to_string())
        });
        let (g, h) = ready_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("in-process sigild ready");
        InProcess {
            endpoint: format!("http://{g}"),
            http: h.to_string(),
            data_dir: data_dir.to_owned(),
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// Path of chain `name`'s file.
    pub fn chain_path(&self, name: &str) -> PathBuf {
        self.data_dir.join("chains").join(format!("{name}.jsonl"))
    }

    /// Shuts down (drain and session_close) and waits.
    pub fn stop(mut self) -> Result<(), String> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), String> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        match self.thread.take() {
            Some(t) => t.join().map_err(|_| "daemon thread panicked".to_string())?,
            None => Ok(()),
        }
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// The directory entry list from a daemon's gRPC endpoint.
pub fn directory_keys(endpoint: &str) -> Vec<serde_json::Value> {
    let out = sigil(&["--endpoint", endpoint, "directory"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir: serde_json::Value = serde_json::from_slice(&out.stdout).expect("directory JSON");
    dir["keys"].as_array().expect("keys").clone()
}

/// Appends `n` records to each of `chains` with the CLI-free Rust client,
/// `producers` tasks at a time; returns the acknowledged receipt lines per
/// chain.
pub async fn append_many(
    endpoint: &str,
    chains: &[&str],
    n: usize,
    producers: usize,
) -> Vec<(String, String)> {
    let mut tasks = Vec::new();
    for p in 0..producers {
        let endpoint = endpoint.to_owned();
        let chains: Vec<String> = chains.iter().map(|c| c.to_string()).collect();
        tasks.push(tokio::spawn(async move {
            let mut client = sigil_client::Client::connect(&endpoint).await.unwrap();
            let mut acked = Vec::new();
            for i in (p..n * chains.len()).step_by(producers) {
                let chain = &chains[i % chains.len()];
                match client.append(chain, &record(i)).await {
                    Ok(r) => acked.push((chain.clone(), r.receipt_json)),
                    Err(e) => panic!("append failed: {e}"),
                }
            }
            acked
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

// Key lifecycle: rotation, revocation and directory tests share these.

impl Daemon {
    /// Waits until sigild has exited on its own (a crash point kills it);
    /// true when it has. [`Daemon::terminate`] cannot stop a dead process.
    pub fn wait_exited(&mut self, timeout: Duration) -> bool {
        let start = Instant::now();
        while let Some(c) = self.child.as_mut() {
            if let Ok(Some(_)) = c.try_wait() {
                self.child = None;
                break;
            }
            if start.elapsed() > timeout {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        true
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .map(Child::id)
            .expect("sigild is running")
    }

    /// The daemon's admin socket: KeyAdmin without TLS answers only there.
    pub fn admin_socket(&self) -> PathBuf {
        self.data_dir.join("admin.sock")
    }

    /// A client on the admin socket, for key administration.
    pub async fn admin(&self) -> sigil_client::Client {
        sigil_client::Client::connect_admin_socket(&self.admin_socket())
            .await
            .expect("admin socket")
    }

    /// Creates key name `name` over the admin socket; its public key.
    pub async fn create_key(&self, name: &str) -> String {
        self.admin()
            .await
            .create_key(name)
            .await
            .expect("keys create")
            .public_key
    }

    /// URL of the HTTP key directory.
    pub fn directory_url(&self) -> String {
        format!(
            "http://{}/.well-known/http-message-signatures-directory",
            self.http
        )
    }
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

/// Runs `sigil verify chain FILE ARGS...`; returns (exit code, stdout and
/// stderr).
pub fn sigil_verify_chain(file: &Path, args: &[&str]) -> (i32, String) {
    let mut all = vec!["verify", "chain", file.to_str().unwrap()];
    all.extend_from_slice(args);
    let o = sigil(&all);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.code().unwrap_or(-1), text)
}

/// The lines of a chain file, parsed, with their 1-based line numbers.
pub fn chain_lines(path: &Path) -> Vec<(usize, serde_json::Value)> {
    let text = std::fs::read_to_string(path).unwrap();
    text.split('\n')
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            let v = serde_json::from_str(l).unwrap_or_else(|e| panic!("line {}: {e}", i + 1));
            (i + 1, v)
        })
        .collect()
}

/// The receipts of a chain file (lines with an `action_record`).
pub fn chain_receipts(path: &Path) -> Vec<(usize, serde_json::Value)> {
    chain_lines(path)
        .into_iter()
        .filter(|(_, v)| v.get("action_record").is_some())
        .collect()
}

/// The signer keys of a chain's receipts in file order, runs merged: one
/// entry per key segment.
pub fn segment_keys(path: &Path) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    for (_, r) in chain_receipts(path) {
        let k = r["signer_key"].as_str().unwrap().to_owned();
        if keys.last() != Some(&k) {
            keys.push(k);
        }
    }
    keys
}

/// The `action_record`s carrying a `key_transition` (rotation boundaries),
/// with the signer of each.
pub fn boundaries(path: &Path) -> Vec<(serde_json::Value, String)> {
    chain_receipts(path)
        .into_iter()
        .filter(|(_, r)| !r["action_record"]["key_transition"].is_null())
        .map(|(_, r)| {
            (
                r["action_record"].clone(),
                r["signer_key"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Number of `rotation_endorsement` entries in a chain file.
pub fn endorsement_entries(path: &Path) -> usize {
    chain_lines(path)
        .iter()
        .filter(|(_, v)| v["type"] == "rotation_endorsement")
        .count()
}

/// Copies directory `from` to `to`, recursively (regular files only).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let t = to.join(e.file_name());
        let ft = e.file_type().unwrap();
        if ft.is_dir() {
            copy_dir(&e.path(), &t);
        } else if ft.is_file() {
            std::fs::copy(e.path(), t).unwrap();
        }
    }
}
