//! `sigil root init|certify|sign|revoke|status`: the offline root ceremony,
//! run on the offline machine with the officers' tokens.

use std::path::PathBuf;

use clap::Subcommand;
use sigil_client::ClientError;
use sigil_root::{Placed, RootDir, RootToken};

use crate::read;

#[derive(Subcommand)]
pub(crate) enum RootCommand {
    /// Generate sigil.root.v1 in each officer's token and write root 1,
    /// signed by every key; prints the pins verifiers use.
    Init {
        /// The root directory (git-tracked, on the ceremony medium).
        #[arg(long)]
        dir: PathBuf,
        /// Deployment name, e.g. payments-prod.
        #[arg(long)]
        deployment: String,
        /// Root signatures needed for every later document.
        #[arg(long)]
        threshold: u32,
        /// An officer's token (PKCS#11 URI); repeat for each.
        #[arg(long = "key", required = true)]
        keys: Vec<String>,
        /// Key names whose certified versions sign chains (default: mediator).
        #[arg(long = "key-name")]
        key_names: Vec<String>,
        /// Allow threshold 1.
        #[arg(long)]
        single_key: bool,
        /// Adopt a sigil.root.v1 already in a token instead of refusing.
        #[arg(long)]
        existing: bool,
    },
    /// Check a daemon's request and stage the next keyset, signed by one
    /// officer's token.
    Certify {
        /// The request (from `sigil keys prepare`).
        request: PathBuf,
        #[arg(long)]
        dir: PathBuf,
        /// The signing officer's token (PKCS#11 URI).
        #[arg(long)]
        sign_with: String,
        /// Also certify the versions the daemon used before the root
        /// (adopting an existing data dir).
        #[arg(long)]
        adopt: bool,
    },
    /// Add one officer's signature to a staged document.
    Sign {
        /// The staged document.
        file: PathBuf,
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        sign_with: String,
    },
    /// Stage a keyset revoking one version, pinned to each chain's last
    /// trusted receipt.
    Revoke {
        #[arg(long)]
        dir: PathBuf,
        /// Key name.
        #[arg(long, default_value = "mediator")]
        key: String,
        #[arg(long)]
        version: u32,
        #[arg(long)]
        reason: String,
        /// UTC, whole seconds (YYYY-MM-DDTHH:MM:SSZ).
        #[arg(long)]
        compromised_since: String,
        /// JSON list of {chain, seq, receipt_hash}: each chain's last
        /// receipt of the version still trusted.
        #[arg(long)]
        tails: Option<PathBuf>,
        #[arg(long)]
        sign_with: String,
    },
    /// Stage the next root: keys added (generated in their tokens, which
    /// sign it) or removed, the threshold changed; it needs a threshold of
    /// the old keys and of the new ones (`sigil root sign`). Re-sign the
    /// keyset afterwards with `sigil root renew`.
    Rotate {
        #[arg(long)]
        dir: PathBuf,
        /// A new officer's token (PKCS#11 URI); repeat.
        #[arg(long)]
        add: Vec<String>,
        /// A root key (hex) to remove; repeat.
        #[arg(long)]
        remove: Vec<String>,
        /// The new threshold (default: unchanged).
        #[arg(long)]
        threshold: Option<u32>,
        /// Adopt a sigil.root.v1 already in an added token.
        #[arg(long)]
        existing: bool,
        #[arg(long)]
        sign_with: String,
    },
    /// Stage the next keyset with the same versions (after a root rotation,
    /// or before the keyset expires); with --root, the next root with the
    /// same keys and a new expiry.
    Renew {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        root: bool,
        #[arg(long)]
        sign_with: String,
    },
    /// Versions, expiries and staged documents.
    Status {
        #[arg(long)]
        dir: PathBuf,
    },
}

fn err(e: sigil_root::Error) -> ClientError {
    ClientError::Input(e.to_string())
}

fn placed(p: Placed) -> String {
    match p {
        Placed::Final(path) => format!(
            "complete: {} (import it on the daemon host)",
            path.display()
        ),
        Placed::Staged(path, have, need) => format!(
            "staged: {} ({have} of {need} signatures; next officer: sigil root sign)",
            path.display()
        ),
    }
}

/// Runs one ceremony step.
pub(crate) fn run(cmd: RootCommand) -> Result<(), ClientError> {
    let out = match cmd {
        RootCommand::Init {
            dir,
            deployment,
            threshold,
            keys,
            key_names,
            single_key,
            existing,
        } => {
            let tokens = keys
                .iter()
                .map(|u| RootToken::open(u, None))
                .collect::<Result<Vec<_>, _>>()
                .map_err(err)?;
            let init = sigil_root::init(
                &RootDir::new(dir),
                &deployment,
                threshold,
                &tokens,
                key_names,
                single_key,
                existing,
            )
            .map_err(err)?;
            let pins: Vec<String> = init
                .keys
                .iter()
                .map(|k| format!("--root-key {k}"))
                .collect();
            format!(
                "wrote {}\npin: {} --root-threshold {}",
                init.path.display(),
                pins.join(" "),
                init.threshold
            )
        }
        RootCommand::Certify {
            request,
            dir,
            sign_with,
            adopt,
        } => {
            let token = RootToken::open(&sign_with, None).map_err(err)?;
            placed(
                sigil_root::certify(&RootDir::new(dir), &read(&request)?, &token, adopt)
                    .map_err(err)?,
            )
        }
        RootCommand::Sign {
            file,
            dir,
            sign_with,
        } => {
            let token = RootToken::open(&sign_with, None).map_err(err)?;
            let text = read(&file)?;
            // What is being vouched for, read from the document itself.
            if let Ok(k) = sigil_proto::root::Signed::<sigil_proto::root::Keyset>::parse(&text) {
                eprint!("{}", sigil_root::describe_keyset(&k.signed));
            }
            placed(sigil_root::sign(&RootDir::new(dir), &text, &token).map_err(err)?)
        }
        RootCommand::Revoke {
            dir,
            key,
            version,
            reason,
            compromised_since,
            tails,
            sign_with,
        } => {
            let through = match &tails {
                Some(p) => serde_json::from_str(&read(p)?)
                    .map_err(|e| ClientError::Input(format!("--tails: {e}")))?,
                None => Vec::new(),
            };
            let token = RootToken::open(&sign_with, None).map_err(err)?;
            placed(
                sigil_root::revoke(
                    &RootDir::new(dir),
                    &key,
                    version,
                    &reason,
                    &compromised_since,
                    through,
                    &token,
                )
                .map_err(err)?,
            )
        }
        RootCommand::Rotate {
            dir,
            add,
            remove,
            threshold,
            existing,
            sign_with,
        } => {
            let add = add
                .iter()
                .map(|u| RootToken::open(u, None))
                .collect::<Result<Vec<_>, _>>()
                .map_err(err)?;
            let token = RootToken::open(&sign_with, None).map_err(err)?;
            placed(
                sigil_root::rotate(
                    &RootDir::new(dir),
                    &add,
                    &remove,
                    threshold,
                    existing,
                    &token,
                )
                .map_err(err)?,
            )
        }
        RootCommand::Renew {
            dir,
            root,
            sign_with,
        } => {
            let token = RootToken::open(&sign_with, None).map_err(err)?;
            placed(sigil_root::renew(&RootDir::new(dir), root, &token).map_err(err)?)
        }
        RootCommand::Status { dir } => sigil_root::status(&RootDir::new(dir)).map_err(err)?,
    };
    println!("{}", out.trim_end());
    Ok(())
}
