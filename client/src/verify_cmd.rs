//! `sigil verify receipt|chain`: flags, trust anchors, output (text or
//! `--json`), progress on a terminal, and Pipelock's exit codes.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use serde_json::json;
use sigil_client::{fetch, verify};
use sigil_proto::chain::Options;
use sigil_proto::directory::Directory;
use sigil_proto::endorsement::Endorsement;
use sigil_proto::lineage::{Freshness, HighWater, Lineage};
use sigil_proto::policy::Policy;

use crate::log_cmd::LogArgs;
use crate::root_pin::{self, RootPin};

/// Exit codes shared with Pipelock's verifier.
pub(crate) const VALID: u8 = 0;
/// The receipt or chain is not valid.
pub(crate) const INVALID: u8 = 1;
/// The verification could not run (unreadable file, unreachable directory).
pub(crate) const RUNTIME: u8 = 2;
/// The command line is wrong.
pub(crate) const USAGE: u8 = 64;

#[derive(Args)]
pub(crate) struct PolicyArgs {
    /// Refuse receipts older than this many hours.
    #[arg(long)]
    max_age_hours: Option<i64>,
    /// Judge ages (receipts and the directory) at this RFC 3339 instant instead of now.
    #[arg(long)]
    at: Option<String>,
    /// Refuse an allow of an action the chain blocked before.
    #[arg(long)]
    forbid_reversal: bool,
    /// Apply only pipelock-verify 0.4.1's checks (no replay, NUL and
    /// time-order checks).
    #[arg(long, conflicts_with = "strict")]
    pipelock_compatible: bool,
    /// Also refuse time going back across a key rotation (sigild never
    /// writes that; Pipelock chains may), and, in a chain with seal
    /// entries, receipts after the last seal.
    #[arg(long)]
    strict: bool,
}

/// Where trust comes from. One of --key, --directory or --unpinned is required.
#[derive(Args)]
pub(crate) struct AnchorArgs {
    /// Pinned root key, 64 hex characters: the chain's first signer, or the
    /// receipt's signer. With --directory: the root its lineage is walked
    /// from, and every version of that lineage is accepted.
    #[arg(long)]
    key: Option<String>,
    /// Key directory (a file, or an http:// URL). Alone it is trusted as
    /// fetched; with --key it must lead back to the pinned root.
    #[arg(long)]
    directory: Option<String>,
    /// Check internal consistency only, trusting the file's own key; the
    /// verdict says UNPINNED.
    #[arg(long, conflicts_with_all = ["key", "directory"])]
    unpinned: bool,
    /// Refuse a directory signed longer ago than this many seconds (it may
    /// predate a revocation); sigild re-signs its directory every hour.
    #[arg(long, default_value_t = 86_400)]
    directory_max_age: i64,
    /// Remember the newest directory seen per root in FILE and refuse an
    /// older one (a rollback) from then on.
    #[arg(long)]
    state: Option<PathBuf>,
    /// Offline root key, 64 hex characters; repeat for each key of root 1.
    /// Trust is then walked from the root through its keyset and the
    /// directory statement (needs --directory or --trust).
    #[arg(long = "root-key", conflicts_with_all = ["key", "unpinned"])]
    root_keys: Vec<String>,
    /// How many root keys must sign (root 1's threshold); required with
    /// more than one --root-key.
    #[arg(long)]
    root_threshold: Option<u32>,
    /// Root 1 as a file, instead of --root-key.
    #[arg(long, conflicts_with_all = ["key", "unpinned", "root_keys"])]
    root: Option<PathBuf>,
    /// The deployment the root documents must be for (root keys may serve
    /// several).
    #[arg(long)]
    root_deployment: Option<String>,
    /// Root and keyset documents from another channel, instead of the
    /// directory's; online revocations are then not checked.
    #[arg(long = "trust")]
    trust_files: Vec<PathBuf>,
    /// Print the verdict as one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
pub(crate) enum VerifyCommand {
    /// Verify one receipt.
    Receipt {
        /// Receipt file.
        file: PathBuf,
        #[command(flatten)]
        anchor: AnchorArgs,
        #[command(flatten)]
        log: LogArgs,
        #[command(flatten)]
        policy: PolicyArgs,
    },
    /// Verify a chain file, following key rotations and revocations.
    Chain {
        /// Chain file (JSONL).
        file: PathBuf,
        #[command(flatten)]
        anchor: AnchorArgs,
        /// Recorder session (default: the chain's own, from its first session_open).
        #[arg(long)]
        session_id: Option<String>,
        /// A rotation endorsement file; repeat for each boundary. Endorsements
        /// held in the chain file are read too.
        #[arg(long = "rotation-endorsement")]
        rotation_endorsements: Vec<PathBuf>,
        #[command(flatten)]
        log: LogArgs,
        #[command(flatten)]
        policy: PolicyArgs,
    },
}

fn policy(p: &PolicyArgs) -> Result<Policy, String> {
    let mut policy = if p.pipelock_compatible {
        Policy::pipelock()
    } else {
        Policy::default()
    };
    policy.max_age = p.max_age_hours.map(time::Duration::hours);
    policy.forbid_reversal = p.forbid_reversal;
    policy.monotonic_across_rotations = p.strict;
    if let Some(at) = &p.at {
        policy.now = Some(sigil_proto::timestamp::parse(at).map_err(|e| format!("--at: {e}"))?);
    }
    Ok(policy)
}

/// How a verification ends: printed as text or JSON.
struct Verdict {
    code: u8,
    json: serde_json::Value,
    text: String,
}

impl Verdict {
    fn failed(code: u8, label: &str, name: &str, error: String) -> Self {
        let text = if label == "FAILED" {
            format!("FAILED: {name}: {error}")
        } else {
            format!("{label}: {name}\n  Error: {error}")
        };
        Verdict {
            code,
            json: json!({"valid": false, "file": name, "exit": code, "error": error}),
            text,
        }
    }
}

/// Runs `sigil verify`; returns the exit code.
pub(crate) async fn run(cmd: VerifyCommand) -> u8 {
    let (file, anchor, policy_args, broken) = match &cmd {
        VerifyCommand::Receipt {
            file,
            anchor,
            policy,
            ..
        } => (file, anchor, policy, "FAILED"),
        VerifyCommand::Chain {
            file,
            anchor,
            policy,
            ..
        } => (file, anchor, policy, "CHAIN BROKEN"),
    };
    let name = file.display().to_string();
    let v = verdict(&cmd, file, anchor, policy_args, broken, &name).await;
    if anchor.json {
        println!("{}", v.json);
    } else if v.code == VALID || v.code == INVALID {
        println!("{}", v.text);
    } else {
        eprintln!("{}", v.text);
    }
    v.code
}

async fn verdict(
    cmd: &VerifyCommand,
    file: &Path,
    a: &AnchorArgs,
    policy_args: &PolicyArgs,
    broken: &str,
    name: &str,
) -> Verdict {
    let usage = |m: String| Verdict::failed(USAGE, "sigil", name, m);
    let root_pin = RootPin {
        keys: &a.root_keys,
        threshold: a.root_threshold,
        root_file: a.root.as_deref(),
    };
    let pin = if root_pin.given() {
        if a.directory.is_none() && a.trust_files.is_empty() {
            return usage("an offline root pin needs its documents: --directory or --trust".into());
        }
        match root_pin.pin() {
            Ok(p) => Some(p),
            Err(e) => return usage(e),
        }
    } else {
        if a.root_threshold.is_some() || !a.trust_files.is_empty() || a.root_deployment.is_some() {
            return usage(
                "--root-threshold, --root-deployment and --trust go with --root-key or --root"
                    .into(),
            );
        }
        if a.state.is_some() && a.directory.is_none() {
            return usage("--state needs --directory".into());
        }
        None
    };
    if a.key.is_none() && a.directory.is_none() && !a.unpinned && pin.is_none() {
        return usage(
            "no trust anchor: pin the root key with --key HEX, give the key directory with \
             --directory FILE|URL (best: both), or say --unpinned to check consistency only"
                .into(),
        );
    }
    if let Some(k) = &a.key {
        if !(k.len() == 64 && k.bytes().all(|b| b.is_ascii_hexdigit())) {
            return usage(format!("--key must be 64 hex characters, got {k:?}"));
        }
    }
    let policy = match policy(policy_args) {
        Ok(p) => p,
        Err(e) => return usage(e),
    };
    let text = match std::fs::read(file) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(t) => t,
            // Readable but not UTF-8: not a receipt, so invalid, not an error.
            Err(e) => {
                return Verdict::failed(
                    INVALID,
                    broken,
                    name,
                    format!("not UTF-8 at byte {}", e.utf8_error().valid_up_to()),
                )
            }
        },
        Err(e) => return Verdict::failed(RUNTIME, "FAILED", name, e.to_string()),
    };
    let at = policy.now.unwrap_or_else(time::OffsetDateTime::now_utc);
    let mut root_trust = None;
    let lineage = match (&pin, &a.directory) {
        (Some(pin), dir) => {
            let text = match dir {
                Some(src) => match read_directory(src).await {
                    Ok(t) => Some(t),
                    Err((code, e)) => return Verdict::failed(code, broken, name, e),
                },
                None => None,
            };
            // Refused trust material is an invalid verdict here: what the
            // root vouches for is the question asked.
            match root_pin::verify(
                pin,
                a.root_deployment.as_deref(),
                text.as_deref(),
                &a.trust_files,
                at,
                a.state.as_deref(),
            ) {
                Ok(v) => {
                    root_trust = Some(root_pin::describe(&v, policy_args.at.as_deref()));
                    Some(v.lineage)
                }
                Err(e) => return Verdict::failed(INVALID, broken, name, e),
            }
        }
        (None, None) => None,
        (None, Some(src)) => match load_lineage(src, a, at).await {
            Ok(l) => Some(l),
            Err((code, e)) => return Verdict::failed(code, broken, name, e),
        },
    };
    let key = a.key.as_ref().map(|k| k.to_lowercase());
    let anchor = match (&lineage, &key) {
        (Some(l), _) => verify::Anchor::Lineage(l),
        (None, Some(k)) => verify::Anchor::Key(k),
        (None, None) => verify::Anchor::Unpinned,
    };
    let pinned_by = match (root_trust, &lineage, &key) {
        (Some(t), _, _) => t,
        (None, Some(l), Some(_)) => format!(
            "root {} ({}), directory signed at {}",
            l.root().public_key,
            l.root().keyid,
            sigil_proto::timestamp::format(l.signed_at)
        ),
        (None, Some(l), None) => format!(
            "directory alone, trusted as fetched (root {}; pin it with --key)",
            l.root().keyid
        ),
        (None, None, Some(k)) => format!("key {k}"),
        (None, None, None) => "UNPINNED: internal consistency only".into(),
    };
    let unpinned = matches!(anchor, verify::Anchor::Unpinned);
    let log_args = match cmd {
        VerifyCommand::Receipt { log, .. } | VerifyCommand::Chain { log, .. } => log,
    };
    if unpinned && log_args.log.is_some() {
        return usage("--log needs a trust anchor (--key or --directory): an unpinned log vouches for nothing".into());
    }
    // Who may sign the log's checkpoints: what the anchor vouches for.
    let (anchor_ref, log_ref) = (&anchor, &log_args.log);
    let log_keys = |reached: Vec<String>| async move {
        match (anchor_ref, log_ref) {
            (verify::Anchor::Lineage(l), _) => crate::log_cmd::lineage_keys(l, false),
            (verify::Anchor::Key(k), Some(log)) => {
                crate::log_cmd::keys_for_pinned(log, k, &reached).await
            }
            _ => Vec::new(),
        }
    };
    match cmd {
        VerifyCommand::Receipt { log, .. } => match verify::receipt(&text, &anchor, &policy) {
            Ok(r) => {
                let mut out = vec![format!(
                    "{}: {name}",
                    if unpinned { "UNPINNED OK" } else { "OK" }
                )];
                let mut j = json!({"valid": true, "unpinned": unpinned, "file": name,
                    "anchor": pinned_by, "signer_key": r.signer_key,
                    "chain_seq": r.chain_seq().unwrap_or(0)});
                for (label, field) in [
                    ("Action ID", "action_id"),
                    ("Action Type", "action_type"),
                    ("Verdict", "verdict"),
                    ("Target", "target"),
                    ("Transport", "transport"),
                    ("Timestamp", "timestamp"),
                ] {
                    out.push(format!("  {label}: {}", r.str_field(field)));
                    j[field] = json!(r.str_field(field));
                }
                out.push(format!("  Signer: {}", r.signer_key));
                out.push(format!("  Chain seq: {}", r.chain_seq().unwrap_or(0)));
                out.push(format!("  Trust: {pinned_by}"));
                if log.log.is_some() {
                    let keys = log_keys(vec![r.signer_key.clone()]).await;
                    let checked = r
                        .hash()
                        .map_err(|e| (INVALID, e.to_string()))
                        .and_then(|h| crate::log_cmd::check_receipt(log, &keys, &h));
                    match checked {
                        Ok((line, lj)) => {
                            out.push(line);
                            j["log"] = lj;
                        }
                        Err((code, e)) => return Verdict::failed(code, broken, name, e),
                    }
                }
                Verdict {
                    code: VALID,
                    json: j,
                    text: out.join("\n"),
                }
            }
            Err(e) => Verdict::failed(INVALID, broken, name, e.to_string()),
        },
        VerifyCommand::Chain {
            session_id,
            rotation_endorsements,
            log,
            ..
        } => {
            let mut endorsements: Vec<Endorsement> = Vec::new();
            for p in rotation_endorsements {
                let e = match std::fs::read_to_string(p)
                    .map_err(|e| e.to_string())
                    .and_then(|t| Endorsement::parse(&t).map_err(|e| e.to_string()))
                {
                    Ok(e) => e,
                    Err(e) => {
                        return Verdict::failed(
                            INVALID,
                            broken,
                            name,
                            format!("{}: {e}", p.display()),
                        )
                    }
                };
                // pipelock-verify refuses one endorsement given twice, and so
                // does sigil (one held in the file as well is fine).
                if endorsements.contains(&e) {
                    return Verdict::failed(
                        INVALID,
                        broken,
                        name,
                        format!("rotation endorsement: {} is given twice", p.display()),
                    );
                }
                endorsements.push(e);
            }
            let opts = Options {
                pinned: None,
                session_id: session_id.clone(),
                endorsements,
                endorsements_from_file: true,
                policy,
                ..Options::default()
            };
            let progress = Progress::new(a.json);
            let result = verify::chain_with_progress(&text, opts, &anchor, &mut |done, total| {
                progress.show(done, total)
            });
            progress.finish();
            match result {
                Ok(s) => {
                    let label = if unpinned {
                        "CHAIN VALID (UNPINNED)"
                    } else {
                        "CHAIN VALID"
                    };
                    let chain = s.session_id.clone().unwrap_or_else(|| {
                        file.file_stem()
                            .map(|f| f.to_string_lossy().into_owned())
                            .unwrap_or_default()
                    });
                    // Seals: signed by what the anchor vouches for, retired
                    // versions included (a seal predates the rotation after it).
                    let revoked: Vec<String> = match &anchor {
                        verify::Anchor::Lineage(l) => l.revoked.keys().cloned().collect(),
                        _ => Vec::new(),
                    };
                    let seal_keys: Vec<String> = match &anchor {
                        verify::Anchor::Lineage(l) => crate::log_cmd::lineage_keys(l, true),
                        verify::Anchor::Key(k) => std::iter::once(k.to_string())
                            .chain(s.segment_keys.iter().cloned())
                            .collect(),
                        verify::Anchor::Unpinned => s.segment_keys.clone(),
                    };
                    // A second pass over the file only when there is
                    // something for it: seals, or a log to compare with.
                    let second = text.contains(sigil_client::seals::SEAL_TYPE) || log.log.is_some();
                    let (sealed, hashes) = if second {
                        match crate::log_cmd::check_seals(
                            &text,
                            &chain,
                            (&seal_keys, &revoked),
                            policy_args.strict,
                        ) {
                            Ok(checked) => checked,
                            Err(e) => return Verdict::failed(INVALID, broken, name, e),
                        }
                    } else {
                        (None, Vec::new())
                    };
                    let logged = if log.log.is_some() {
                        let keys = log_keys(s.segment_keys.clone()).await;
                        match crate::log_cmd::check_chain(log, &keys, &chain, &hashes) {
                            Ok(l) => Some(l),
                            Err((code, e)) => return Verdict::failed(code, broken, name, e),
                        }
                    } else {
                        None
                    };
                    let mut text = format!(
                        "{label}: {name}\n  Receipts: {}\n  Final seq: {}\n  Root hash: {}\n  \
                         Start: {}\n  End: {}\n  Key segments: {}\n  Trust: {pinned_by}",
                        s.receipt_count,
                        s.final_seq,
                        s.root_hash,
                        s.start_time,
                        s.end_time,
                        s.segment_keys.len()
                    );
                    let mut j = json!({"valid": true, "unpinned": unpinned, "file": name,
                        "anchor": pinned_by, "receipts": s.receipt_count,
                        "final_seq": s.final_seq, "root_hash": s.root_hash,
                        "start": s.start_time, "end": s.end_time,
                        "key_segments": s.segment_keys,
                        "endorsements_used": s.endorsements_used});
                    if let Some((line, sj)) = sealed {
                        text.push('\n');
                        text.push_str(&line);
                        j["seals"] = sj;
                    }
                    if let Some((line, lj)) = logged {
                        text.push('\n');
                        text.push_str(&line);
                        j["log"] = lj;
                    }
                    Verdict {
                        code: VALID,
                        json: j,
                        text,
                    }
                }
                Err(e) => Verdict::failed(INVALID, broken, name, e.to_string()),
            }
        }
    }
}

/// Fetches and verifies the directory: its lineage from the pinned root
/// (or its own root), fresh at `at`, and not older than the state file's
/// high-water mark, which then advances. Errors carry their exit code.
async fn load_lineage(
    src: &str,
    a: &AnchorArgs,
    at: time::OffsetDateTime,
) -> Result<Lineage, (u8, String)> {
    let text = read_directory(src).await?;
    // A directory that fails its checks is exit 2, as before: the file was
    // not judged, the trust material was refused.
    let dir = Directory::parse(&text).map_err(|e| (RUNTIME, e.to_string()))?;
    let fresh = Freshness {
        at,
        max_age: Some(time::Duration::seconds(a.directory_max_age)),
    };
    let lineage = dir
        .lineage(a.key.as_deref(), &fresh)
        .map_err(|e| (RUNTIME, e.to_string()))?;
    if let Some(path) = &a.state {
        let mut state = match std::fs::read_to_string(path) {
            Ok(t) => HighWater::parse(&t).map_err(|e| (RUNTIME, e.to_string()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HighWater::default(),
            Err(e) => return Err((RUNTIME, format!("reading {}: {e}", path.display()))),
        };
        state
            .advance(&lineage)
            .map_err(|e| (RUNTIME, e.to_string()))?;
        write_state(path, &state.to_json())
            .map_err(|e| (RUNTIME, format!("writing {}: {e}", path.display())))?;
    }
    Ok(lineage)
}

/// The directory's text, from a file or an http(s) URL.
async fn read_directory(src: &str) -> Result<String, (u8, String)> {
    if src.starts_with("http://") || src.starts_with("https://") {
        fetch::get(src).await.map_err(|e| (RUNTIME, e.to_string()))
    } else {
        std::fs::read_to_string(src).map_err(|e| (RUNTIME, format!("reading {src}: {e}")))
    }
}

/// Replaces the state file atomically (write, fsync, rename).
pub(crate) fn write_state(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// A progress line on stderr while a long chain verifies, only when stderr
/// is a terminal (and not for `--json`): receipts done, of how many, and
/// the rate.
struct Progress {
    on: bool,
    started: std::time::Instant,
}

impl Progress {
    fn new(json: bool) -> Self {
        Progress {
            on: !json && std::io::stderr().is_terminal(),
            started: std::time::Instant::now(),
        }
    }

    fn show(&self, done: usize, total: usize) {
        if !self.on || total < 10_000 {
            return;
        }
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        let width = 30;
        let filled = done * width / total.max(1);
        eprint!(
            "\r[{}{}] {done}/{total} receipts, {:.0}/s ",
            "#".repeat(filled),
            " ".repeat(width - filled),
            done as f64 / secs
        );
    }

    fn finish(&self) {
        if self.on {
            // Clear the progress line.
            eprint!("\r\x1b[2K");
        }
    }
}
