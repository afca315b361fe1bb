//! The receipt log on the command line: `--log` for `sigil verify`, and
//! `sigil log monitor`, which an auditor or a witness runs from cron to
//! notice a split view or a rollback.

use std::path::PathBuf;

use clap::Subcommand;
use serde_json::json;
use sigil_client::receipt_log::{self, LogSource};
use sigil_proto::chain::entries;
use sigil_proto::directory::Directory;
use sigil_proto::lineage::{Freshness, Lineage};
use sigil_proto::receipt::{self, Entry};

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

/// The public keys (hex) a lineage vouches for that may sign a checkpoint:
/// every version not revoked.
pub(crate) fn lineage_keys(l: &Lineage) -> Vec<String> {
    l.versions
        .iter()
        .filter(|v| !l.revoked.contains_key(&v.keyid))
        .map(|v| v.public_key.clone())
        .collect()
}

/// The receipt hashes of a chain file, in order.
fn file_receipts(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for line in entries(text) {
        if let Ok(Entry::Receipt(r)) = receipt::parse_entry(line.text) {
            out.push(r.hash().map_err(|e| format!("line {}: {e}", line.number))?);
        }
    }
    Ok(out)
}

/// `verify chain --log`: the file against what the log holds of `chain`.
/// Ok: a line for the verdict and its JSON; Err: why the file fails.
pub(crate) fn check_chain(
    log: &str,
    keys: &[String],
    chain: &str,
    text: &str,
) -> Result<(String, serde_json::Value), String> {
    let mut src = LogSource::parse(log);
    let signed = receipt_log::latest(&mut src, keys)?;
    let cp = &signed.checkpoint;
    let entries = receipt_log::entries(&mut src, cp)?;
    let logged = receipt_log::chain_receipts(&entries, chain);
    let file = file_receipts(text)?;
    let cov = receipt_log::compare(&file, &logged, chain)?;
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
            "  Log: {} checkpoint size {} (signed by {}): holds the file's first {} receipt(s) \
             of chain {chain}{after}",
            cp.origin, cp.size, signed.signer, cov.logged
        ),
        json!({"origin": cp.origin, "checkpoint_size": cp.size, "signer": signed.signer,
            "chain": chain, "logged": cov.logged, "after_checkpoint": cov.after}),
    ))
}

/// `verify receipt --log`: the receipt's inclusion in the log.
pub(crate) fn check_receipt(
    log: &str,
    keys: &[String],
    receipt_hash: &str,
) -> Result<(String, serde_json::Value), String> {
    let mut src = LogSource::parse(log);
    let signed = receipt_log::latest(&mut src, keys)?;
    let cp = &signed.checkpoint;
    let inc = receipt_log::prove(&mut src, cp, receipt_hash)?;
    Ok((
        format!(
            "  Log: leaf {} of {} checkpoint size {} (chain {}, signed by {}), inclusion proved",
            inc.index, cp.origin, cp.size, inc.chain, signed.signer
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
    let directory = match (directory, log.strip_suffix("/log")) {
        (Some(d), _) => d,
        (None, Some(base)) if log.starts_with("http://") => {
            format!("{base}{}", sigil_proto::directory::WELL_KNOWN_PATH)
        }
        (None, _) => {
            eprintln!("sigil: --directory is needed for a log that is not sigild's http://.../log");
            return USAGE;
        }
    };
    let text = if directory.starts_with("http://") {
        sigil_client::fetch::get(&directory)
            .await
            .map_err(|e| e.to_string())
    } else {
        std::fs::read_to_string(&directory).map_err(|e| format!("reading {directory}: {e}"))
    };
    let lineage = text.and_then(|t| {
        let dir = Directory::parse(&t).map_err(|e| e.to_string())?;
        let fresh = Freshness {
            at: time::OffsetDateTime::now_utc(),
            max_age: Some(time::Duration::days(1)),
        };
        dir.lineage(Some(&key.to_lowercase()), &fresh)
            .map_err(|e| e.to_string())
    });
    let lineage = match lineage {
        Ok(l) => l,
        Err(e) => {
            eprintln!("sigil: key directory {directory}: {e}");
            return RUNTIME;
        }
    };
    let keys = lineage_keys(&lineage);
    let mut src = LogSource::parse(&log);
    let log2 = log.clone();
    let outcome = tokio::task::spawn_blocking(move || monitor(&mut src, &keys, state))
        .await
        .unwrap_or_else(|e| Err((RUNTIME, e.to_string())));
    match outcome {
        Ok(line) => {
            println!("OK: {log2}: {line}");
            VALID
        }
        Err((code, e)) => {
            if code == INVALID {
                println!("LOG INVALID: {log2}: {e}");
            } else {
                eprintln!("sigil: {log2}: {e}");
            }
            code
        }
    }
}

/// One monitor run: the latest checkpoint checked, then against the one
/// in `state`, which then moves forward.
fn monitor(
    src: &mut LogSource,
    keys: &[String],
    state: Option<PathBuf>,
) -> Result<String, (u8, String)> {
    let note = receipt_log::read_checkpoint(src).map_err(|e| (RUNTIME, e))?;
    let new = receipt_log::check_checkpoint(&note, keys).map_err(|e| (INVALID, e))?;
    let Some(path) = state else {
        return Ok(format!(
            "{} size {}, signed by {}",
            new.checkpoint.origin, new.checkpoint.size, new.signer
        ));
    };
    // The state: `{"checkpoint": NOTE}`, the last checkpoint seen.
    let seen: Option<String> = match std::fs::read_to_string(&path) {
        Ok(t) => Some(
            serde_json::from_str::<serde_json::Value>(&t)
                .ok()
                .and_then(|v| v["checkpoint"].as_str().map(str::to_owned))
                .ok_or_else(|| {
                    (
                        RUNTIME,
                        format!("state {}: not a monitor state", path.display()),
                    )
                })?,
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err((RUNTIME, format!("reading {}: {e}", path.display()))),
    };
    let was = match seen {
        Some(s) => {
            // Checked when it was written by this command.
            let old = receipt_log::parse_checkpoint(&s)
                .map_err(|e| (RUNTIME, format!("state {}: {e}", path.display())))?;
            receipt_log::consistent(src, &old, &new.checkpoint).map_err(|e| (INVALID, e))?;
            format!(" (consistent with size {} seen before)", old.size)
        }
        None => " (first seen)".to_owned(),
    };
    let json = json!({ "checkpoint": new.note }).to_string();
    write_state(&path, &json).map_err(|e| (RUNTIME, format!("writing {}: {e}", path.display())))?;
    Ok(format!(
        "{} size {}, signed by {}{was}",
        new.checkpoint.origin, new.checkpoint.size, new.signer
    ))
}
