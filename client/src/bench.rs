//! `sigil bench`: durable append throughput and latency through a real
//! sigild on loopback, beside the raw Ed25519 signing rate measured in the
//! same run, so results are ratios to the machine's own limit.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use ed25519_dalek::{Signer, SigningKey};
use sigil_proto::v1::{append_stream_reply, AppendRequest};
use tokio::sync::{mpsc, Semaphore};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;

use crate::{Client, ClientError};

/// Options of `sigil bench`.
#[derive(Args, Clone, Debug)]
pub struct BenchArgs {
    /// The sigild binary to start (default: the one beside this sigil).
    #[arg(long)]
    pub sigild: Option<PathBuf>,
    /// Receipts per scenario.
    #[arg(long, default_value_t = 20_000)]
    pub receipts: usize,
    /// Chain counts to run, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,8")]
    pub chains: Vec<usize>,
    /// Unary calls in flight.
    #[arg(long, default_value_t = 64)]
    pub in_flight: usize,
    /// Records in flight per append stream.
    #[arg(long, default_value_t = 2048)]
    pub window: usize,
    /// Extra arguments passed to sigild (e.g. --config FILE).
    #[arg(long = "sigild-arg", allow_hyphen_values = true)]
    pub sigild_args: Vec<String>,
}

const RECORD: &str = r#"{"action_type":"read","target":"https://api.example.com/v1/items?page=2","verdict":"allow","transport":"https","method":"GET","principal":"org:bench","actor":"agent:bench"}"#;

struct Daemon {
    child: Child,
    endpoint: String,
    _dir: tempfile::TempDir,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // SAFETY: signalling our own child process by its pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

fn sigild(args: &BenchArgs) -> Result<PathBuf, ClientError> {
    match &args.sigild {
        Some(p) => Ok(p.clone()),
        None => std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("sigild")))
            .ok_or_else(|| ClientError::Input("cannot locate sigild; pass --sigild".into())),
    }
}

/// The backend's raw rates, from `sigild --bench-token-seconds`:
/// (backend, [(callers, signatures/s)]).
fn token_rates(
    args: &BenchArgs,
    dir: &std::path::Path,
) -> Result<(String, Vec<(usize, f64)>), ClientError> {
    let bin = sigild(args)?;
    let out = Command::new(&bin)
        .arg("--data-dir")
        .arg(dir)
        .args(["--bench-token-seconds", "2"])
        .args(&args.sigild_args)
        .env("SIGIL_LOG", "warn")
        .output()
        .map_err(|source| ClientError::Io {
            what: format!("running {}", bin.display()),
            source,
        })?;
    if !out.status.success() {
        return Err(ClientError::Input(format!(
            "sigild --bench-token-seconds failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    let mut backend = String::new();
    let mut rates = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let field = |k: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(k))
                .map(str::to_owned)
        };
        if let (Some(b), Some(t), Some(r)) = (field("backend="), field("threads="), field("rate="))
        {
            backend = b;
            rates.push((t.parse().unwrap_or(1), r.parse().unwrap_or(0.0)));
        }
    }
    Ok((backend, rates))
}

fn start(args: &BenchArgs, dir: tempfile::TempDir) -> Result<Daemon, ClientError> {
    let bin = sigild(args)?;
    let mut child = Command::new(&bin)
        .arg("--data-dir")
        .arg(dir.path())
        .args([
            "--grpc-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--heartbeat-seconds",
            "0",
        ])
        .args(&args.sigild_args)
        .env("SIGIL_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|source| ClientError::Io {
            what: format!("starting {}", bin.display()),
            source,
        })?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| ClientError::Input("no stdout from sigild".into()))?;
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|source| ClientError::Io {
            what: "reading sigild".into(),
            source,
        })?;
    let grpc = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("grpc="))
        .ok_or_else(|| ClientError::Input(format!("sigild did not start: {line:?}")))?;
    Ok(Daemon {
        endpoint: format!("http://{grpc}"),
        child,
        _dir: dir,
    })
}

/// Ed25519 signatures per second on one core, in process.
pub fn raw_sign_rate(for_how_long: Duration) -> f64 {
    let key = SigningKey::from_bytes(&[7u8; 32]);
    let mut digest = [0u8; 32];
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < for_how_long {
        for _ in 0..256 {
            digest[0] = digest[0].wrapping_add(1);
            std::hint::black_box(key.sign(&digest));
        }
        n += 256;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// One scenario's result.
pub struct Outcome {
    /// `unary` or `stream`.
    pub mode: &'static str,
    /// Chains written in parallel.
    pub chains: usize,
    /// Requests in flight.
    pub in_flight: usize,
    /// Receipts acknowledged.
    pub receipts: usize,
    /// Receipts per second.
    pub rate: f64,
    /// Median latency.
    pub p50: Duration,
    /// 99th percentile latency.
    pub p99: Duration,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn outcome(
    mode: &'static str,
    chains: usize,
    in_flight: usize,
    mut lat: Vec<Duration>,
    took: Duration,
) -> Outcome {
    lat.sort();
    Outcome {
        mode,
        chains,
        in_flight,
        receipts: lat.len(),
        rate: lat.len() as f64 / took.as_secs_f64(),
        p50: percentile(&lat, 0.5),
        p99: percentile(&lat, 0.99),
    }
}

async fn unary(
    client: &Client,
    tag: &str,
    chains: usize,
    in_flight: usize,
    total: usize,
) -> Result<Outcome, ClientError> {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..in_flight {
        let (mut c, next, tag) = (client.clone(), next.clone(), tag.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return Ok::<_, ClientError>(lat);
                }
                let t = Instant::now();
                c.append(&format!("{tag}-{}", i % chains), RECORD).await?;
                lat.push(t.elapsed());
            }
        }));
    }
    let mut lat = Vec::with_capacity(total);
    for t in tasks {
        lat.extend(t.await.map_err(|e| ClientError::Input(e.to_string()))??);
    }
    Ok(outcome("unary", chains, in_flight, lat, start.elapsed()))
}

async fn stream(
    client: &Client,
    tag: &str,
    chains: usize,
    window: usize,
    total: usize,
) -> Result<Outcome, ClientError> {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..chains {
        let per = total / chains + usize::from(c < total % chains);
        let (mut client, chain) = (client.clone(), format!("{tag}-{c}"));
        tasks.push(tokio::spawn(async move {
            let (tx, rx) = mpsc::channel(window);
            let sent: Arc<Mutex<std::collections::VecDeque<Instant>>> = Arc::default();
            let permits = Arc::new(Semaphore::new(window));
            let mut replies = client.append_stream(ReceiverStream::new(rx)).await?;
            let (s2, p2) = (sent.clone(), permits.clone());
            let feeder = tokio::spawn(async move {
                for i in 0..per {
                    let Ok(permit) = p2.acquire().await else {
                        return;
                    };
                    permit.forget();
                    if let Ok(mut q) = s2.lock() {
                        q.push_back(Instant::now());
                    }
                    let req = AppendRequest {
                        chain: chain.clone(),
                        record_json: RECORD.into(),
                        correlation_id: i as u64,
                    };
                    if tx.send(req).await.is_err() {
                        return;
                    }
                }
            });
            let mut lat = Vec::with_capacity(per);
            while lat.len() < per {
                let Some(reply) = replies.next().await else {
                    break;
                };
                let reply = reply?;
                let t = sent.lock().ok().and_then(|mut q| q.pop_front());
                permits.add_permits(1);
                match reply.result {
                    Some(append_stream_reply::Result::Receipt(_)) => {
                        lat.push(t.map(|t| t.elapsed()).unwrap_or_default())
                    }
                    Some(append_stream_reply::Result::Error(e)) => {
                        return Err(ClientError::Input(format!("append failed: {}", e.message)))
                    }
                    None => return Err(ClientError::Input("empty reply".into())),
                }
            }
            feeder.abort();
            Ok::<_, ClientError>(lat)
        }));
    }
    let mut lat = Vec::with_capacity(total);
    for t in tasks {
        lat.extend(t.await.map_err(|e| ClientError::Input(e.to_string()))??);
    }
    Ok(outcome("stream", chains, window, lat, start.elapsed()))
}

/// Runs every scenario and prints a Markdown table.
pub async fn run(args: BenchArgs) -> Result<(), ClientError> {
    let raw = tokio::task::spawn_blocking(|| raw_sign_rate(Duration::from_secs(2)))
        .await
        .map_err(|e| ClientError::Input(e.to_string()))?;
    let dir = tempfile::tempdir().map_err(|source| ClientError::Io {
        what: "temp dir".into(),
        source,
    })?;
    let (backend, token) = token_rates(&args, dir.path())?;
    let daemon = start(&args, dir)?;
    let client = Client::connect(&daemon.endpoint).await?;
    // Warm up: chain creation and connection set-up are not measured.
    let mut results = Vec::new();
    for (n, &chains) in args.chains.iter().enumerate() {
        let tag = format!("u{n}");
        unary(
            &client,
            &tag,
            chains,
            args.in_flight.min(chains * 8),
            chains * 8,
        )
        .await?;
        results.push(unary(&client, &tag, chains, args.in_flight, args.receipts).await?);
        let tag = format!("s{n}");
        stream(&client, &tag, chains, 8, chains * 8).await?;
        results.push(stream(&client, &tag, chains, args.window, args.receipts).await?);
    }
    drop(daemon);
    let raw_after = tokio::task::spawn_blocking(|| raw_sign_rate(Duration::from_secs(2)))
        .await
        .map_err(|e| ClientError::Input(e.to_string()))?;
    let raw = (raw + raw_after) / 2.0;
    println!("raw Ed25519 signing, ed25519-dalek, one core, in process: {raw:.0}/s (mean of before and after)");
    for (threads, rate) in &token {
        println!(
            "raw {backend} backend signing, {threads} caller(s), through sigil-keys: {rate:.0}/s"
        );
    }
    // The token limit a scenario can reach: one caller per chain, at most
    // as many callers as were measured.
    let token_for = |chains: usize| {
        token
            .iter()
            .filter(|(callers, _)| *callers <= chains.max(1))
            .map(|(_, r)| *r)
            .fold(0.0, f64::max)
    };
    println!();
    println!("backend: {backend}");
    println!();
    println!("| mode | chains | in flight | receipts | durable appends/s | vs raw one-core | vs raw token (callers = chains, max 2) | p50 ms | p99 ms |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for r in &results {
        println!(
            "| {} | {} | {} | {} | {:.0} | {:.0}% | {:.0}% | {:.2} | {:.2} |",
            r.mode,
            r.chains,
            r.in_flight,
            r.receipts,
            r.rate,
            100.0 * r.rate / raw,
            100.0 * r.rate / token_for(r.chains),
            r.p50.as_secs_f64() * 1e3,
            r.p99.as_secs_f64() * 1e3
        );
    }
    Ok(())
}
