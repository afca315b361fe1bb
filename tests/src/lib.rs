//! Helpers shared by the end-to-end tests: start and stop a real sigild on
//! a temporary data dir and free loopback ports, and read its chain files.
//! Tokens, the `sigil` CLI and both verifiers come from `sigil-testkit`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub mod forge;
pub mod root;

pub use sigil_testkit::{
    assert_chain_verifies, bin, export_endorsements, pipelock_verify, pipelock_verify_bin, sigil,
    sigil_stdin, sigil_verify_chain, workspace,
};

/// The SoftHSM tokens of this process ([`sigil_testkit::SoftHsm::in_process`])
/// for the tests that open a token themselves: SoftHSM sees only tokens
/// made before the module loads, so they are named here all at once.
pub const IN_PROCESS_TOKENS: &[&str] = &["officer-a", "officer-b", "sigil", "sigil-faults"];

/// Pipelock vectors shipped in the repository.
pub fn vectors() -> PathBuf {
    workspace().join("tests/vectors")
}

/// Path of chain `name`'s file in data dir `data_dir`.
fn chain_path_in(data_dir: &Path, name: &str) -> PathBuf {
    data_dir.join("chains").join(format!("{name}.jsonl"))
}

/// The admin socket of a daemon on `data_dir`.
fn admin_socket_in(data_dir: &Path) -> PathBuf {
    data_dir.join("admin.sock")
}

/// URL of the HTTP key directory of a daemon serving HTTP on `http`.
fn directory_url_at(http: &str) -> String {
    format!("http://{http}/.well-known/http-message-signatures-directory")
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
        chain_path_in(&self.data_dir, name)
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
    crash: Option<tokio::sync::oneshot::Sender<()>>,
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
        let (crash_tx, crash_rx) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            let daemon = sigil_signer::server::run_with_backend(
                config,
                backend,
                async move {
                    let _ = stop_rx.await;
                },
                move |g, h| {
                    let _ = ready_tx.send((g, h));
                },
            );
            let crashed = rt.block_on(async move {
                tokio::select! {
                    r = daemon => Some(r),
                    Ok(()) = crash_rx => None,
                }
            });
            match crashed {
                Some(r) => r.map_err(|e| e.to_string()),
                None => {
                    // Abandoned mid-flight: no drain, no session_close.
                    rt.shutdown_background();
                    Ok(())
                }
            }
        });
        let (g, h) = ready_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("in-process sigild ready");
        InProcess {
            endpoint: format!("http://{g}"),
            http: h.to_string(),
            data_dir: data_dir.to_owned(),
            stop: Some(stop_tx),
            crash: Some(crash_tx),
            thread: Some(thread),
        }
    }

    /// The daemon's admin socket.
    pub fn admin_socket(&self) -> PathBuf {
        admin_socket_in(&self.data_dir)
    }

    /// URL of the HTTP key directory.
    pub fn directory_url(&self) -> String {
        directory_url_at(&self.http)
    }

    /// Abandons the daemon as a crash would: its tasks are dropped where
    /// they stand, nothing is drained and no chain is closed (the files
    /// end as after `kill -9`). The backend's device state stays.
    pub fn crash(mut self) {
        if let Some(c) = self.crash.take() {
            let _ = c.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// Path of chain `name`'s file.
    pub fn chain_path(&self, name: &str) -> PathBuf {
        chain_path_in(&self.data_dir, name)
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
        admin_socket_in(&self.data_dir)
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
        directory_url_at(&self.http)
    }

    /// `sigil --admin-socket SOCK keys ARGS...`, off the async runtime:
    /// (success, stdout, stderr).
    pub async fn keys_cli(&self, args: &[&str]) -> (bool, String, String) {
        let sock = self.admin_socket().to_str().expect("UTF-8 path").to_owned();
        let mut all = vec!["--admin-socket".to_owned(), sock, "keys".into()];
        all.extend(args.iter().map(|s| s.to_string()));
        let out = tokio::task::spawn_blocking(move || {
            sigil(&all.iter().map(String::as_str).collect::<Vec<_>>())
        })
        .await
        .expect("sigil keys ran");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

/// A chain file's text without its seal entries (the receipt log's
/// `sigil.checkpoint` recorder entries, written when the log's checkpoint
/// covers new receipts), for tests about the receipts' layout.
pub fn without_seals(text: &str) -> String {
    text.split_inclusive('\n')
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .map_or(true, |v| v["type"] != "sigil.checkpoint")
        })
        .collect()
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
