//! `sigil`: the command-line client of sigild, and the offline verifier.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use sigil_client::{bench, Client, ClientError, DEFAULT_ENDPOINT};
use sigil_proto::endorsement::Endorsement;
use sigil_proto::receipt::{self, Entry};

mod docs;
mod log_cmd;
#[cfg(feature = "root")]
mod root_cmd;
mod root_pin;
mod verify_cmd;

use log_cmd::LogCommand;
use verify_cmd::{VerifyCommand, RUNTIME, USAGE, VALID};

/// sigil: append receipts, sign digests, read the key directory, and verify
/// receipts and chains offline.
#[derive(Parser)]
#[command(name = "sigil", version, about)]
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
    /// sigild's admin socket, for `sigil keys` without TLS (with an https
    /// endpoint, keys are administered over mTLS instead).
    #[arg(
        long,
        global = true,
        env = "SIGIL_ADMIN_SOCKET",
        default_value = "./sigil-data/admin.sock"
    )]
    admin_socket: PathBuf,
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
    Directory {
        /// Print only the chain key's root (its first version's public key,
        /// hex): the key to pin in `sigil verify --key` and pipelock-verify.
        /// Record it once, when the daemon is set up, and keep it.
        #[arg(long)]
        root_key: bool,
    },
    /// Manage keys: list, create, rotate, revoke.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// The offline root ceremony (on the offline machine, with the
    /// officers' tokens).
    #[cfg(feature = "root")]
    Root {
        #[command(subcommand)]
        command: root_cmd::RootCommand,
    },
    /// Work on chain files.
    Chain {
        #[command(subcommand)]
        command: ChainCommand,
    },
    /// Verify receipts and chains offline (exit 0 valid, 1 invalid, 2 error, 64 usage).
    Verify {
        #[command(subcommand)]
        command: Box<VerifyCommand>,
    },
    /// Watch sigild's receipt log (a witness or an auditor runs this).
    Log {
        #[command(subcommand)]
        command: LogCommand,
    },
    /// Measure durable append throughput and latency against a sigild it starts.
    Bench(bench::BenchArgs),
    /// Print a shell completion script for bash, zsh, fish, elvish or powershell.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Write man pages for sigil and its subcommands (sigil.1, sigil-verify.1, ...).
    Man {
        /// Directory to write the pages into (created if missing).
        #[arg(long)]
        out: PathBuf,
    },
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
    /// Generate standby versions for the offline root to certify, and
    /// write the signed certification request.
    Prepare {
        /// Key name (default: the key that signs producer chains).
        #[arg(long)]
        key: Option<String>,
        /// How many standby versions (1 to 16).
        #[arg(long, default_value_t = 2)]
        count: u32,
        /// Where to write the request (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Import a root or keyset document the officers signed.
    ImportStatement {
        /// The document (root/N.root.json or keyset/N.keyset.json).
        file: PathBuf,
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
    /// Print, as the JSON list `sigil root revoke --tails` takes, each
    /// chain's last receipt signed by one key: where a root revocation of
    /// that key pins the chain. Each file is verified first (unpinned).
    Tails {
        /// The signer key, 64 hex characters.
        #[arg(long)]
        signer: String,
        /// Chain files (copies held where the key could not reach).
        #[arg(required = true)]
        files: Vec<PathBuf>,
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
    admin_socket: PathBuf,
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
        admin_socket: cli.admin_socket.clone(),
    };
    let result = match cli.command {
        Command::Verify { command } => return verify_cmd::run(*command).await,
        Command::Log { command } => return log_cmd::run(command).await,
        Command::Append { chain, record } => append(&target, &chain, &record).await,
        Command::SignDigest { key, digest } => sign_digest(&target, &key, &digest).await,
        Command::Directory { root_key } => match connect(&target).await {
            Ok(mut c) => c.directory().await.and_then(|d| {
                if !root_key {
                    println!("{d}");
                    return Ok(());
                }
                let dir = sigil_proto::directory::Directory::parse(&d)
                    .map_err(|e| ClientError::Input(format!("directory: {e}")))?;
                let lineage = dir
                    .lineage(None, &sigil_proto::lineage::Freshness::any())
                    .map_err(|e| ClientError::Input(e.to_string()))?;
                println!("{}", lineage.root().public_key);
                Ok(())
            }),
            Err(e) => Err(e),
        },
        Command::Keys { command } => keys(&target, command).await,
        #[cfg(feature = "root")]
        Command::Root { command } => root_cmd::run(command),
        Command::Chain {
            command: ChainCommand::Endorsements { file, out },
        } => endorsements(&file, &out),
        Command::Chain {
            command: ChainCommand::Tails { signer, files },
        } => tails(&signer, &files),
        Command::Bench(args) => bench::run(args).await,
        Command::Completions { shell } => docs::completions(Cli::command(), shell),
        Command::Man { out } => docs::man_pages(Cli::command(), &out).map(|pages| {
            for p in pages {
                println!("{}", p.display());
            }
        }),
    };
    match result {
        Ok(()) => VALID,
        Err(e) => {
            eprintln!("sigil: {e}{}", hint(&e));
            if matches!(e, ClientError::Input(_)) {
                USAGE
            } else {
                RUNTIME
            }
        }
    }
}

/// What to do next, for the errors a first run meets; the library's message
/// says what went wrong, this names the flags and commands that fix it.
fn hint(e: &ClientError) -> &'static str {
    match e {
        ClientError::Unreachable { endpoint, .. } if endpoint.starts_with("unix:") => {
            ". Is sigild running on that data dir? Key administration without TLS goes \
             through <data-dir>/admin.sock: pass --admin-socket / SIGIL_ADMIN_SOCKET"
        }
        ClientError::Unreachable { .. } => {
            ". Is sigild running? Start it with `sigild` (or pass --endpoint / SIGIL_ENDPOINT)"
        }
        ClientError::Endpoint(_) => " (https needs --ca, and --cert/--key-file for mTLS)",
        _ => "",
    }
}

pub(crate) fn read(path: &std::path::Path) -> Result<String, ClientError> {
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
    // Without TLS, KeyAdmin answers only on the daemon's Unix socket.
    let mut client = if sigil_client::endpoint_is_https(&target.endpoint)? {
        connect(target).await?
    } else {
        Client::connect_admin_socket(&target.admin_socket).await?
    };
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
        KeysCommand::Prepare { key, count, out } => {
            let request = client
                .prepare_keys(key.as_deref().unwrap_or(""), count)
                .await?;
            match out {
                Some(path) => {
                    std::fs::write(&path, &request).map_err(|source| ClientError::Io {
                        what: format!("writing {}", path.display()),
                        source,
                    })?;
                    serde_json::json!({"request": path})
                }
                None => {
                    print!("{request}");
                    return Ok(());
                }
            }
        }
        KeysCommand::ImportStatement { file } => {
            let document = std::fs::read(&file).map_err(|source| ClientError::Io {
                what: format!("reading {}", file.display()),
                source,
            })?;
            let r = client.import_statement(document).await?;
            serde_json::json!({"imported": r.imported, "revoked": r.revoked})
        }
    };
    println!("{out}");
    Ok(())
}

fn tails(signer: &str, files: &[PathBuf]) -> Result<(), ClientError> {
    let signer = signer.to_lowercase();
    let mut out = Vec::new();
    for f in files {
        let text = read(f)?;
        // The file's own first signer: the tails are only as good as the
        // copy they come from, which is why it must be one the key could
        // not reach.
        let first = sigil_client::verify::first_signer(&text);
        let opts = sigil_proto::chain::Options {
            pinned: first,
            endorsements_from_file: true,
            ..Default::default()
        };
        let s = sigil_proto::chain::verify(&text, &opts)
            .map_err(|e| ClientError::Input(format!("{}: {e}", f.display())))?;
        let (Some(chain), Some((seq, hash))) = (s.session_id, s.tails.get(&signer)) else {
            continue;
        };
        out.push(serde_json::json!({"chain": chain, "seq": seq, "receipt_hash": hash}));
    }
    println!("{}", serde_json::Value::Array(out));
    Ok(())
}

fn endorsements(file: &std::path::Path, out: &std::path::Path) -> Result<(), ClientError> {
    let text = read(file)?;
    std::fs::create_dir_all(out).map_err(|source| ClientError::Io {
        what: format!("creating {}", out.display()),
        source,
    })?;
    let mut n = 0;
    for line in sigil_proto::chain::entries(&text) {
        let at = |e: &dyn std::fmt::Display| {
            ClientError::Input(format!("{} line {}: {e}", file.display(), line.number))
        };
        let entry = receipt::parse_entry(line.text).map_err(|e| at(&e))?;
        if let Entry::Other { kind, detail } = entry {
            if kind != "rotation_endorsement" {
                continue;
            }
            let map = detail
                .and_then(|d| d.as_object().cloned())
                .unwrap_or_default();
            let e = Endorsement::from_map(&map).map_err(|e| at(&e))?;
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
