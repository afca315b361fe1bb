//! `sigil`: the command-line client of sigild, and the offline verifier.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use sigil_client::{bench, fetch, verify, Client, ClientError, DEFAULT_ENDPOINT};
use sigil_proto::chain::{Options, Policy};
use sigil_proto::directory::Directory;
use sigil_proto::endorsement::Endorsement;
use sigil_proto::receipt::{self, Entry};

/// Exit codes shared with Pipelock's verifier.
const VALID: u8 = 0;
const INVALID: u8 = 1;
const RUNTIME: u8 = 2;
const USAGE: u8 = 64;

/// sigil: append receipts, sign digests, read the key directory, and verify
/// receipts and chains offline.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// sigild gRPC endpoint.
    #[arg(long, global = true, env = "SIGIL_ENDPOINT", default_value = DEFAULT_ENDPOINT)]
    endpoint: String,
    /// CA certificate (PEM) of the daemon's TLS certificate; use an https:// endpoint.
    #[arg(long, global = true, env = "SIGIL_CA")]
    ca: Option<PathBuf>,
    /// Client certificate (PEM) for mTLS.
    #[arg(long, global = true, env = "SIGIL_CERT")]
    cert: Option<PathBuf>,
    /// Client private key (PEM) for mTLS.
    #[arg(long = "key-file", global = true, env = "SIGIL_KEY_FILE")]
    key_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Append an action record to a chain; prints the signed receipt as one JSON line.
    Append {
        /// Chain name ([A-Za-z0-9._-], up to 64 characters).
        #[arg(long)]
        chain: String,
        /// File holding the record JSON object, or - for standard input.
        #[arg(long, default_value = "-")]
        record: String,
    },
    /// Sign a 32-byte digest (64 hex characters) with a named key.
    SignDigest {
        /// Key name, e.g. mediator.
        #[arg(long)]
        key: String,
        /// The digest, 64 hex characters.
        digest: String,
    },
    /// Print the key directory JSON.
    Directory,
    /// Manage keys: list, create, rotate, revoke.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Work on chain files.
    Chain {
        #[command(subcommand)]
        command: ChainCommand,
    },
    /// Verify receipts and chains offline (exit 0 valid, 1 invalid, 2 error, 64 usage).
    Verify {
        #[command(subcommand)]
        command: VerifyCommand,
    },
    /// Measure durable append throughput and latency against a sigild it starts.
    Bench(bench::BenchArgs),
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Print every key version and its state.
    List,
    /// Create a new key name (version 1) in the daemon's backend.
    Create {
        /// Key name ([A-Za-z0-9_-], up to 48 characters).
        name: String,
    },
    /// Rotate now, on every chain of the key.
    Rotate {
        /// Key name (default: the key that signs producer chains).
        #[arg(long)]
        key: Option<String>,
    },
    /// Revoke a key version (rotating first if it signs now).
    Revoke {
        /// Key name.
        #[arg(long)]
        key: String,
        /// Version to revoke.
        #[arg(long)]
        version: u32,
        /// Why (recorded in every chain and the directory).
        #[arg(long)]
        reason: String,
        /// From when its signatures are not to be trusted (UTC RFC 3339; default now).
        #[arg(long)]
        compromised_since: Option<String>,
    },
}

#[derive(Subcommand)]
enum ChainCommand {
    /// Write each rotation endorsement held in a chain file as its own JSON file.
    Endorsements {
        /// The chain file.
        file: PathBuf,
        /// Directory to write endorsement-N.json files into.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Args)]
struct PolicyArgs {
    /// Refuse receipts older than this many hours.
    #[arg(long)]
    max_age_hours: Option<i64>,
    /// Measure ages at this RFC 3339 instant instead of now.
    #[arg(long)]
    at: Option<String>,
    /// Refuse an allow of an action the chain blocked before.
    #[arg(long)]
    forbid_reversal: bool,
    /// Apply only pipelock-verify 0.4.1's checks (no replay and NUL checks).
    #[arg(long)]
    pipelock_compatible: bool,
}

#[derive(Subcommand)]
enum VerifyCommand {
    /// Verify one receipt.
    Receipt {
        /// Receipt file.
        file: PathBuf,
        /// Pinned signer key, 64 hex characters. With --directory, the
        /// directory's signature must lead back to it.
        #[arg(long)]
        key: Option<String>,
        /// Key directory: a file, or an http:// URL.
        #[arg(long)]
        directory: Option<String>,
        #[command(flatten)]
        policy: PolicyArgs,
    },
    /// Verify a chain file, following key rotations and revocations.
    Chain {
        /// Chain file (JSONL).
        file: PathBuf,
        /// Pinned root key (the first segment's signer), 64 hex characters.
        /// With --directory, the directory's signature must lead back to it.
        #[arg(long)]
        key: Option<String>,
        /// Key directory: a file, or an http:// URL.
        #[arg(long)]
        directory: Option<String>,
        /// Recorder session (default: the chain's own, from its first session_open).
        #[arg(long)]
        session_id: Option<String>,
        /// A rotation endorsement file; repeat for each boundary. Endorsements
        /// held in the chain file are read too.
        #[arg(long = "rotation-endorsement")]
        rotation_endorsements: Vec<PathBuf>,
        #[command(flatten)]
        policy: PolicyArgs,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { USAGE } else { VALID };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sigil: cannot start the runtime: {e}");
            return ExitCode::from(RUNTIME);
        }
    };
    ExitCode::from(rt.block_on(run(cli)))
}

/// Where the daemon is and how to reach it.
struct Target {
    endpoint: String,
    tls: Option<sigil_client::ClientTls>,
}

async fn connect(t: &Target) -> Result<Client, ClientError> {
    Client::connect_with(&t.endpoint, t.tls.as_ref()).await
}

async fn run(cli: Cli) -> u8 {
    let tls = (cli.ca.is_some() || cli.cert.is_some() || cli.key_file.is_some()).then(|| {
        sigil_client::ClientTls {
            ca: cli.ca.clone(),
            cert: cli.cert.clone(),
            key: cli.key_file.clone(),
        }
    });
    let target = Target {
        endpoint: cli.endpoint.clone(),
        tls,
    };
    let result = match cli.command {
        Command::Verify { command } => return verify_cmd(command).await,
        Command::Append { chain, record } => append(&target, &chain, &record).await,
        Command::SignDigest { key, digest } => sign_digest(&target, &key, &digest).await,
        Command::Directory => match connect(&target).await {
            Ok(mut c) => c.directory().await.map(|d| println!("{d}")),
            Err(e) => Err(e),
        },
        Command::Keys { command } => keys(&target, command).await,
        Command::Chain {
            command: ChainCommand::Endorsements { file, out },
        } => endorsements(&file, &out),
        Command::Bench(args) => bench::run(args).await,
    };
    match result {
        Ok(()) => VALID,
        Err(e) => {
            eprintln!("sigil: {e}");
            if matches!(e, ClientError::Input(_)) {
                USAGE
            } else {
                RUNTIME
            }
        }
    }
}

fn read(path: &std::path::Path) -> Result<String, ClientError> {
    std::fs::read_to_string(path).map_err(|source| ClientError::Io {
        what: format!("reading {}", path.display()),
        source,
    })
}

async fn append(target: &Target, chain: &str, record: &str) -> Result<(), ClientError> {
    let text = if record == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s).map_err(|source| {
            ClientError::Io {
                what: "reading standard input".into(),
                source,
            }
        })?;
        s
    } else {
        read(std::path::Path::new(record))?
    };
    let mut client = connect(target).await?;
    let r = client.append(chain, text.trim_end()).await?;
    println!("{}", r.receipt_json);
    Ok(())
}

async fn sign_digest(target: &Target, key: &str, digest: &str) -> Result<(), ClientError> {
    let bytes = hex::decode(digest)
        .ok()
        .filter(|b| b.len() == 32)
        .ok_or_else(|| {
            ClientError::Input(format!(
                "digest must be 64 hex characters (32 bytes), got {digest:?}"
            ))
        })?;
    let mut client = connect(target).await?;
    let r = client.sign_digest(key, &bytes).await?;
    println!(
        "{}",
        serde_json::json!({
            "signature": hex::encode(&r.signature),
            "signer_key": r.signer_key,
            "key_version": r.key_version,
            "ledger_chain": r.ledger_chain,
            "ledger_seq": r.ledger_seq,
        })
    );
    Ok(())
}

async fn keys(target: &Target, cmd: KeysCommand) -> Result<(), ClientError> {
    let mut client = connect(target).await?;
    let out = match cmd {
        KeysCommand::List => {
            println!("{}", client.list_keys().await?);
            return Ok(());
        }
        KeysCommand::Create { name } => {
            let r = client.create_key(&name).await?;
            serde_json::json!({"keyid": r.keyid, "public_key": r.public_key})
        }
        KeysCommand::Rotate { key } => {
            let r = client.rotate_key(key.as_deref().unwrap_or("")).await?;
            serde_json::json!({"previous_keyid": r.previous_keyid, "keyid": r.keyid,
                               "public_key": r.public_key, "chains": r.chains})
        }
        KeysCommand::Revoke {
            key,
            version,
            reason,
            compromised_since,
        } => {
            let r = client
                .revoke_key(
                    &key,
                    version,
                    &reason,
                    compromised_since.as_deref().unwrap_or(""),
                )
                .await?;
            serde_json::json!({"keyid": r.keyid, "chains": r.chains, "rotated_to": r.rotated_to})
        }
    };
    println!("{out}");
    Ok(())
}

fn endorsements(file: &std::path::Path, out: &std::path::Path) -> Result<(), ClientError> {
    let text = read(file)?;
    std::fs::create_dir_all(out).map_err(|source| ClientError::Io {
        what: format!("creating {}", out.display()),
        source,
    })?;
    let mut n = 0;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let entry = receipt::parse_entry(line)
            .map_err(|e| ClientError::Input(format!("{} line {}: {e}", file.display(), i + 1)))?;
        if let Entry::Other { kind, detail } = entry {
            if kind != "rotation_endorsement" {
                continue;
            }
            let map = detail
                .and_then(|d| d.as_object().cloned())
                .unwrap_or_default();
            let e = Endorsement::from_map(&map).map_err(|e| {
                ClientError::Input(format!("{} line {}: {e}", file.display(), i + 1))
            })?;
            n += 1;
            let path = out.join(format!("endorsement-{n}.json"));
            let body = serde_json::to_string_pretty(&e.to_json()).unwrap_or_default();
            std::fs::write(&path, body + "\n").map_err(|source| ClientError::Io {
                what: format!("writing {}", path.display()),
                source,
            })?;
            println!("{}", path.display());
        }
    }
    eprintln!("{n} endorsement(s) written");
    Ok(())
}

fn policy(p: &PolicyArgs) -> Result<Policy, String> {
    let mut policy = if p.pipelock_compatible {
        Policy::pipelock()
    } else {
        verify::default_policy()
    };
    policy.max_age = p.max_age_hours.map(time::Duration::hours);
    policy.forbid_reversal = p.forbid_reversal;
    if let Some(at) = &p.at {
        policy.now = Some(sigil_proto::timestamp::parse(at).map_err(|e| format!("--at: {e}"))?);
    }
    Ok(policy)
}

/// Reads a directory; with a pinned key its signature must verify back to
/// that key, without one it is trusted as fetched (as pipelock-verify does).
async fn load_trust(
    directory: Option<&str>,
    pinned: Option<&str>,
) -> Result<Option<verify::Trust>, String> {
    let Some(src) = directory else {
        return Ok(None);
    };
    let text = if src.starts_with("http://") || src.starts_with("https://") {
        fetch::get(src).await.map_err(|e| e.to_string())?
    } else {
        std::fs::read_to_string(src).map_err(|e| format!("reading {src}: {e}"))?
    };
    let dir = Directory::parse(&text).map_err(|e| e.to_string())?;
    if let Some(root) = pinned {
        dir.verify(root).map_err(|e| e.to_string())?;
    }
    verify::Trust::from_directory(&dir)
        .map(Some)
        .map_err(|e| e.to_string())
}

fn check_key(key: &Option<String>) -> Result<(), String> {
    match key {
        Some(k) if !(k.len() == 64 && k.bytes().all(|b| b.is_ascii_hexdigit())) => {
            Err(format!("--key must be 64 hex characters, got {k:?}"))
        }
        _ => Ok(()),
    }
}

async fn verify_cmd(cmd: VerifyCommand) -> u8 {
    let (file, key, directory, policy_args) = match &cmd {
        VerifyCommand::Receipt {
            file,
            key,
            directory,
            policy,
        } => (file, key, directory, policy),
        VerifyCommand::Chain {
            file,
            key,
            directory,
            policy,
            ..
        } => (file, key, directory, policy),
    };
    if let Err(e) = check_key(key) {
        eprintln!("sigil: {e}");
        return USAGE;
    }
    let policy = match policy(policy_args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("sigil: {e}");
            return USAGE;
        }
    };
    let name = file.display().to_string();
    let text = match std::fs::read(file) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(t) => t,
            // Readable but not UTF-8: not a receipt, so invalid, not an error.
            Err(e) => {
                println!(
                    "FAILED: {name}: not UTF-8 at byte {}",
                    e.utf8_error().valid_up_to()
                );
                return INVALID;
            }
        },
        Err(e) => {
            eprintln!("FAILED: {name}: {e}");
            return RUNTIME;
        }
    };
    let trust = match load_trust(directory.as_deref(), key.as_deref()).await {
        Ok(t) => t,
        Err(e) => {
            eprintln!("sigil: key directory: {e}");
            return RUNTIME;
        }
    };
    match &cmd {
        VerifyCommand::Receipt { .. } => {
            match verify::receipt(&text, key.as_deref(), trust.as_ref(), &policy) {
                Ok(r) => {
                    println!("OK: {name}");
                    for (label, field) in [
                        ("Action ID", "action_id"),
                        ("Action Type", "action_type"),
                        ("Verdict", "verdict"),
                        ("Target", "target"),
                        ("Transport", "transport"),
                        ("Timestamp", "timestamp"),
                    ] {
                        println!("  {label}: {}", r.str_field(field));
                    }
                    println!("  Signer: {}", r.signer_key);
                    println!("  Chain seq: {}", r.chain_seq().unwrap_or(0));
                    VALID
                }
                Err(e) => {
                    println!("FAILED: {name}: {e}");
                    INVALID
                }
            }
        }
        VerifyCommand::Chain {
            session_id,
            rotation_endorsements,
            ..
        } => {
            let mut endorsements = Vec::new();
            for p in rotation_endorsements {
                match std::fs::read_to_string(p)
                    .map_err(|e| e.to_string())
                    .and_then(|t| Endorsement::parse(&t).map_err(|e| e.to_string()))
                {
                    Ok(e) => endorsements.push(e),
                    Err(e) => {
                        println!("CHAIN BROKEN: {name}\n  Error: {}: {e}", p.display());
                        return INVALID;
                    }
                }
            }
            let opts = Options {
                pinned: key.as_ref().map(|k| k.to_lowercase()),
                session_id: session_id.clone(),
                endorsements,
                endorsements_from_file: true,
                revoked: Default::default(),
                policy,
            };
            match verify::chain(&text, opts, trust.as_ref()) {
                Ok(s) => {
                    println!("CHAIN VALID: {name}");
                    println!("  Receipts: {}", s.receipt_count);
                    println!("  Final seq: {}", s.final_seq);
                    println!("  Root hash: {}", s.root_hash);
                    println!("  Start: {}", s.start_time);
                    println!("  End: {}", s.end_time);
                    println!("  Key segments: {}", s.segment_keys.len());
                    VALID
                }
                Err(e) => {
                    println!("CHAIN BROKEN: {name}\n  Error: {e}");
                    INVALID
                }
            }
        }
    }
}
