//! The receipt log on the command line: `--log` for `sigil verify`, and
//! `sigil log monitor`, which an auditor or a witness runs from cron to
//! notice a split view or a rollback.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use serde_json::json;
use sigil_client::receipt_log::{self, LogSource};
use sigil_proto::directory::Directory;
use sigil_proto::lineage::{Freshness, Lineage};

use crate::verify_cmd::{write_state, INVALID, RUNTIME, USAGE, VALID};

#[derive(Subcommand)]
pub(crate) enum LogCommand {
    /// Check the log's latest checkpoint: signed by a key the pinned root
    /// vouches for, and consistent with the last one seen (exit 1 on a
    /// split view or a rollback, 2 when the log cannot be read).
    Monitor {
        /// The log: sigild's `http://HOST:PORT/log`, or a directory.
        log: String,
        /// Pinned root key, 64 hex characters.
        #[arg(long)]
        key: String,
        /// Key directory (file or http:// URL); default: the one served
        /// beside an http:// log.
        #[arg(long)]
        directory: Option<String>,
        /// Where the last checkpoint seen is kept between runs.
        #[arg(long)]
        state: Option<PathBuf>,
    },
}

/// The public keys (hex) a lineage vouches for that may sign the log's
/// latest checkpoint: versions neither revoked nor retired (a checkpoint
/// carries no date, so a key that signs nothing new any more signs no
/// checkpoint). With `retired`, retired versions too: a seal in a file
/// was signed when it was written, before the rotation that follows it.
pub(crate) fn lineage_keys(l: &Lineage, retired: bool) -> Vec<String> {
    l.versions
        .iter()
        .filter(|v| {
            !l.revoked.contains_key(&v.public_key)
                && (retired || !l.retired.contains_key(&v.public_key))
        })
        .map(|v| v.public_key.clone())
        .collect()
}

/// A line for the verdict and its JSON.
pub(crate) type Reported = (String, serde_json::Value);

/// The seal entries of a chain file, checked (see `sigil_client::seals`),
/// in the one pass that also hashes every receipt for `--log`: a line for
/// the verdict and its JSON when the file has seals, and the hashes; or why
/// the file fails. With `strict`, receipts after the last seal fail a file
/// that has seals.
pub(crate) fn check_seals(
    text: &str,
    chain: &str,
    (keys, revoked): (&[String], &[String]),
    strict: bool,
) -> Result<(Option<Reported>, Vec<String>), String> {
    let s = sigil_client::seals::check(text, chain, keys, revoked)?;
    if s.seals == 0 {
        return Ok((None, s.hashes));
    }
    if strict && s.unsealed() > 0 {
        return Err(format!(
            "{} receipt(s) after the last seal (unsealed tail; --strict)",
            s.unsealed()
        ));
    }
    let line = format!(
        "  Seals: {}, the last covering the first {} of {} receipts ({} after it){}",
        s.seals,
        s.through,
        s.hashes.len(),
        s.unsealed(),
        if s.revoked > 0 {
            format!("; {} signed by a revoked version, not counted", s.revoked)
        } else {
            String::new()
        }
    );
    let json = json!({"seals": s.seals, "sealed_through": s.through, "unsealed": s.unsealed(),
        "revoked_seals": s.revoked});
    Ok((Some((line, json)), s.hashes))
}

/// `--log` and `--log-state` for `sigil verify`.
#[derive(Args, Clone, Debug, Default)]
pub(crate) struct LogArgs {
    /// Also check against sigild's receipt log (`http://HOST:PORT/log` or a
    /// log directory), under its latest checkpoint signed by a key the
    /// anchor vouches for: for a chain, the log's receipts of it must be
    /// the file's first ones (a file cut at the end or forked fails); for a
    /// receipt, its inclusion is proved.
    #[arg(long)]
    pub log: Option<String>,
    /// Remember the log's checkpoint in FILE and refuse one that does not
    /// extend it (a log shown rolled back to before a cut). Without it,
    /// `--log` trusts whichever signed checkpoint it is shown.
    #[arg(long, requires = "log")]
    pub log_state: Option<PathBuf>,
}

/// The public keys that may sign the log's checkpoints, for an anchor that
/// pinned `key` alone: the lineage of `key` in the directory served beside
/// an `http://.../log`, or, for a log directory, `key` and the keys the
/// chain walk reached from it (`reached`).
pub(crate) async fn keys_for_pinned(log: &str, key: &str, reached: &[String]) -> Vec<String> {
    if let Some(dir) = directory_beside(log) {
        if let Ok(l) = lineage_from(&dir, key).await {
            return lineage_keys(&l, false);
        }
    }
    std::iter::once(key.to_owned())
        .chain(reached.iter().cloned())
        .collect()
}

fn directory_beside(log: &str) -> Option<String> {
    let base = log.trim_end_matches('/').strip_suffix("/log")?;
    log.starts_with("http://")
        .then(|| format!("{base}{}", sigil_proto::directory::WELL_KNOWN_PATH))
}

async fn lineage_from(directory: &str, key: &str) -> Result<Lineage, String> {
    let text = if directory.starts_with("http://") {
        sigil_client::fetch::get(directory)
            .await
            .map_err(|e| e.to_string())?
    } else {
        std::fs::read_to_string(directory).map_err(|e| format!("reading {directory}: {e}"))?
    };
    let dir = Directory::parse(&text).map_err(|e| e.to_string())?;
    let fresh = Freshness {
        at: time::OffsetDateTime::now_utc(),
        max_age: Some(time::Duration::days(1)),
    };
    dir.lineage(Some(&key.to_lowercase()), &fresh)
        .map_err(|e| e.to_string())
}

/// The log's latest checkpoint, signed by one of `keys` and, with
/// `state`, extending the one remembered there (which it then replaces).
/// Errors carry their exit code: 2 when the log cannot be read, 1 when
/// what it shows is refused.
fn latest_checked(
    src: &mut LogSource,
    keys: &[String],
    state: Option<&Path>,
) -> Result<(receipt_log::Signed, Option<u64>), (u8, String)> {
    let note = receipt_log::read_checkpoint(src).map_err(|e| (RUNTIME, e))?;
    let new = receipt_log::check_checkpoint(&note, keys).map_err(|e| (INVALID, e))?;
    let Some(path) = state else {
        return Ok((new, None));
    };
    // The state: `{"checkpoint": NOTE}`, checked when it was written.
    let seen = match std::fs::read_to_string(path) {
        Ok(t) => Some(
            serde_json::from_str::<serde_json::Value>(&t)
                .ok()
                .and_then(|v| v["checkpoint"].as_str().map(str::to_owned))
                .ok_or_else(|| {
                    (
                        RUNTIME,
                        format!("state {}: not a log state", path.display()),
                    )
                })?,
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err((RUNTIME, format!("reading {}: {e}", path.display()))),
    };
    let was = match seen {
        Some(s) => {
            let old = receipt_log::parse_checkpoint(&s)
                .map_err(|e| (RUNTIME, format!("state {}: {e}", path.display())))?;
            receipt_log::consistent(src, &old, &new.checkpoint).map_err(|e| (INVALID, e))?;
            Some(old.size)
        }
        None => None,
    };
    let json = json!({ "checkpoint": new.note }).to_string();
    write_state(path, &json).map_err(|e| (RUNTIME, format!("writing {}: {e}", path.display())))?;
    Ok((new, was))
}

fn seen_before(was: Option<u64>) -> String {
    match was {
        Some(n) => format!("; consistent with size {n} seen before"),
        None => String::new(),
    }
}

/// The log `--log` names, and its latest checkpoint as `latest_checked`
/// takes it.
type Opened = (LogSource, receipt_log::Signed, Option<u64>);

fn open(args: &LogArgs, keys: &[String]) -> Result<Opened, (u8, String)> {
    let Some(log) = &args.log else {
        return Err((USAGE, "no --log".into()));
    };
    let mut src = LogSource::parse(log);
    let (signed, was) = latest_checked(&mut src, keys, args.log_state.as_deref())?;
    Ok((src, signed, was))
}

/// `verify chain --log`: the file (its receipt hashes, in order) against
/// what the log holds of `chain`. Ok: a line for the verdict and its JSON;
/// Err: the exit code and why.
pub(crate) fn check_chain(
    args: &LogArgs,
    keys: &[String],
    chain: &str,
    file: &[String],
) -> Result<Reported, (u8, String)> {
    let (mut src, signed, was) = open(args, keys)?;
    let cp = &signed.checkpoint;
    let entries = receipt_log::entries(&mut src, cp).map_err(|e| (INVALID, e))?;
    let logged = receipt_log::chain_receipts(&entries, chain);
    let cov = receipt_log::compare(file, &logged, chain).map_err(|e| (INVALID, e))?;
    let after = if cov.after > 0 {
        format!(
            "; {} receipt(s) after it are not in this checkpoint yet",
            cov.after
        )
    } else {
        String::new()
    };
    Ok((
        format!(
            "  Log: {} checkpoint size {} (signed by {}{}): holds the file's first {} \
             receipt(s) of chain {chain}{after}",
            cp.origin,
            cp.size,
            signed.signer,
            seen_before(was),
            cov.logged
        ),
        json!({"origin": cp.origin, "checkpoint_size": cp.size, "signer": signed.signer,
            "chain": chain, "logged": cov.logged, "after_checkpoint": cov.after}),
    ))
}

/// `verify receipt --log`: the receipt's inclusion in the log.
pub(crate) fn check_receipt(
    args: &LogArgs,
    keys: &[String],
    receipt_hash: &str,
) -> Result<Reported, (u8, String)> {
    let (mut src, signed, was) = open(args, keys)?;
    let cp = &signed.checkpoint;
    let inc = receipt_log::prove(&mut src, cp, receipt_hash).map_err(|e| (INVALID, e))?;
    Ok((
        format!(
            "  Log: leaf {} of {} checkpoint size {} (chain {}, signed by {}{}), inclusion proved",
            inc.index,
            cp.origin,
            cp.size,
            inc.chain,
            signed.signer,
            seen_before(was)
        ),
        json!({"origin": cp.origin, "checkpoint_size": cp.size, "leaf_index": inc.index,
            "chain": inc.chain, "signer": signed.signer}),
    ))
}

/// Runs `sigil log ...`; returns the exit code.
pub(crate) async fn run(cmd: LogCommand) -> u8 {
    let LogCommand::Monitor {
        log,
        key,
        directory,
        state,
    } = cmd;
    if !(key.len() == 64 && key.bytes().all(|b| b.is_ascii_hexdigit())) {
        eprintln!("sigil: --key must be 64 hex characters, got {key:?}");
        return USAGE;
    }
    let Some(directory) = directory.or_else(|| directory_beside(&log)) else {
        eprintln!("sigil: --directory is needed for a log that is not sigild's http://.../log");
        return USAGE;
    };
    let lineage = match lineage_from(&directory, &key).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("sigil: key directory {directory}: {e}");
            return RUNTIME;
        }
    };
    let keys = lineage_keys(&lineage, false);
    let stateful = state.is_some();
    let mut src = LogSource::parse(&log);
    let outcome =
        tokio::task::spawn_blocking(move || latest_checked(&mut src, &keys, state.as_deref()))
            .await
            .unwrap_or_else(|e| Err((RUNTIME, e.to_string())));
    match outcome {
        Ok((new, was)) => {
            let cp = &new.checkpoint;
            let was = match was {
                Some(n) => format!(" (consistent with size {n} seen before)"),
                None if stateful => " (first seen)".into(),
                None => String::new(),
            };
            println!(
                "OK: {log}: {} size {}, signed by {}{was}",
                cp.origin, cp.size, new.signer
            );
            VALID
        }
        Err((code, e)) => {
            if code == INVALID {
                println!("LOG INVALID: {log}: {e}");
            } else {
                eprintln!("sigil: {log}: {e}");
            }
            code
        }
    }
}
