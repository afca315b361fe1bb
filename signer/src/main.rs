//! `sigild`: the sigil signing daemon.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use sigil_signer::config::Config;

/// sigil signing daemon: appends signed, hash-chained Pipelock receipts.
///
/// With no flags it runs the embedded default: a software Ed25519 key named
/// "mediator" in ./sigil-data, gRPC on 127.0.0.1:7700, HTTP (key directory,
/// health) on 127.0.0.1:7701. Flags override the config file.
#[derive(Parser)]
#[command(name = "sigild", version, about, long_about)]
struct Args {
    /// TOML configuration file (see signer/sigild.example.toml).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Data directory: key records, chains/CHAIN.jsonl, software seeds.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// gRPC listen address.
    #[arg(long)]
    grpc_listen: Option<SocketAddr>,
    /// HTTP listen address (key directory, health).
    #[arg(long)]
    http_listen: Option<SocketAddr>,
    /// Seconds between heartbeat receipts on each chain (0: none).
    #[arg(long)]
    heartbeat_seconds: Option<u64>,
    /// Measure the backend's raw signing rate for this many seconds (one
    /// caller, then two), print it and exit; used by `sigil bench`.
    #[arg(long)]
    bench_token_seconds: Option<u64>,
    /// Log format.
    #[arg(long, value_parser = ["text", "json"], default_value = "text")]
    log_format: String,
    /// Print this man page (roff, sigild.1) to standard output and exit.
    #[arg(long)]
    man: bool,
    /// Set the imported offline-root keyset aside (renamed, not deleted)
    /// and sign as without a root, so that verifiers pinned to the root
    /// refuse what follows. Only this flag goes back: a silent downgrade
    /// would be an attack.
    #[arg(long)]
    downgrade_root: bool,
}

/// `sigild --version`: the version and the key backends compiled in, so
/// that an operator sees at once whether this build can open their token.
fn version() -> &'static str {
    let text = format!(
        "{} (backends: {})",
        env!("CARGO_PKG_VERSION"),
        sigil_signer::backends::COMPILED.join(", ")
    );
    // Built once per process, for clap, which wants a static string.
    Box::leak(text.into_boxed_str())
}

fn main() -> ExitCode {
    if let Err(e) = sigil_signer::secrets::no_core_dumps() {
        eprintln!("sigild: cannot turn core dumps off: {e}");
        return ExitCode::from(2);
    }
    let args = match Args::command()
        .version(version())
        .try_get_matches()
        .and_then(|m| <Args as clap::FromArgMatches>::from_arg_matches(&m))
    {
        Ok(a) => a,
        Err(e) => e.exit(),
    };
    if args.man {
        return print_man();
    }
    init_logs(&args.log_format);
    let config = match config_of(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sigild: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sigild: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(secs) = args.bench_token_seconds {
        return bench_token(config, secs);
    }
    // Install the handlers now, not when the future is first polled: a
    // SIGTERM right after start must drain, not kill.
    let shutdown = {
        let _guard = rt.enter();
        match shutdown_signal() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("sigild: cannot install signal handlers: {e}");
                return ExitCode::from(2);
            }
        }
    };
    match rt.block_on(sigil_signer::server::run(config, shutdown)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sigild: {e}");
            ExitCode::from(1)
        }
    }
}

/// Logs to stderr: `json` lines, or plain text (coloured only for a person
/// at a terminal: a log file or journal gets no colour codes).
fn init_logs(format: &str) {
    // cryptoki logs every mechanism type it has no name for at ERROR while
    // listing a token's mechanisms: noise, not errors.
    let directives = std::env::var("SIGIL_LOG").unwrap_or_else(|_| "info".into());
    let filter =
        tracing_subscriber::EnvFilter::try_new(format!("{directives},cryptoki::mechanism=off"))
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,cryptoki::mechanism=off"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if format == "json" {
        logs.json().init();
    } else {
        logs.init();
    }
}

/// The configuration file (or the embedded default), with the flags that
/// override it.
fn config_of(args: &Args) -> Result<Config, sigil_signer::Error> {
    let mut config = match &args.config {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    if let Some(d) = &args.data_dir {
        config.data_dir = d.clone();
    }
    if let Some(a) = args.grpc_listen {
        config.grpc_listen = a;
    }
    if let Some(a) = args.http_listen {
        config.http_listen = a;
    }
    if let Some(h) = args.heartbeat_seconds {
        config.chains.heartbeat_seconds = h;
    }
    config.downgrade_root = args.downgrade_root;
    Ok(config)
}

/// Writes sigild.1, generated from the flags above, for packaging.
fn print_man() -> ExitCode {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match clap_mangen::Man::new(Args::command())
        .render(&mut out)
        .and_then(|()| out.flush())
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sigild: writing the man page: {e}");
            ExitCode::from(2)
        }
    }
}

/// A future that completes on SIGTERM or SIGINT; the handlers are
/// installed before it returns.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()> + Send> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
    })
}

/// Prints `token-rate backend=B threads=N rate=R` for 1 and 2 callers.
fn bench_token(config: Config, secs: u64) -> ExitCode {
    let run = || -> Result<(), sigil_signer::Error> {
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| sigil_signer::Error::io("creating the data dir", e))?;
        // The same lock as a running daemon: the bench generates and records
        // keys, which must not race a sigild on this data dir.
        let _lock = sigil_signer::server::lock_data_dir(&config)?;
        let backend = sigil_signer::server::open_backend(&config)?;
        let keyring = sigil_signer::keyring::Keyring::open(
            &config.data_dir,
            backend.clone(),
            &config.key_name,
        )?;
        let key = keyring.ensure(&config.key_name)?;
        let kind = backend.describe(&key.id)?.backend;
        for threads in [1, 2] {
            let rate = sigil_signer::bench::token_rate(
                &backend,
                &key.id,
                threads,
                std::time::Duration::from_secs(secs),
            )?;
            println!("token-rate backend={kind} threads={threads} rate={rate:.0}");
        }
        Ok(())
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sigild: {e}");
            ExitCode::from(1)
        }
    }
}
