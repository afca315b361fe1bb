//! Rebuilding a chain's tail from its file at start (or after a failed
//! write), and deciding what may be cut.
//!
//! Every receipt is linked to the one before it (`chain_seq`,
//! `chain_prev_hash`, and at a rotation boundary its `key_transition`);
//! the last one's signature is verified and its signer must be a version of
//! the chain's key name. What follows the last valid, linked receipt (G) is
//! then one of:
//!
//! - nothing (blank lines are kept, as before);
//! - rotation endorsements alone: the rotation never reached this chain (an
//!   endorsement is written together with its boundary); they are cut and
//!   the rotation writes them again;
//! - damage at the tail: lines that do not continue the chain (not a
//!   receipt, a receipt that does not link, a signature that does not
//!   verify). Only the last batch, never acknowledged, can be damaged by a
//!   power loss, since every earlier batch was fsynced before its replies;
//!   these lines are moved aside and the chain goes on after G;
//! - damage followed by the chain going on: a receipt after the damage
//!   whose signature verifies and which links to G, or carries on G's run
//!   past it. Receipts after it may have been acknowledged, so nothing is
//!   cut: the chain is refused until someone repairs it.

use std::borrow::Cow;

use serde_json::Value;
use sigil_proto::receipt::{self, session, Entry, Receipt};
use sigil_proto::{chain, timestamp};

use super::tail::Tail;
use crate::keyring::KeyVersion;

/// What recovery read from a chain file's whole lines.
pub(super) struct Scanned {
    /// The tail after the last valid, linked receipt.
    pub tail: Tail,
    /// Bytes of the file to keep: everything after them is `cut`.
    pub keep_bytes: u64,
    /// What is cut after `keep_bytes`, if anything.
    pub cut: Option<Cut>,
    /// The receipt hash of every receipt kept, in order.
    pub receipts: Vec<String>,
    /// The tree size of the last seal entry in the file (0: none).
    pub last_seal: u64,
}

/// Lines after the last valid receipt that are cut.
pub(super) struct Cut {
    /// Whole lines cut.
    pub lines: usize,
    /// Damage, kept aside in a file of its own, rather than a lone rotation
    /// endorsement, which the rotation writes again.
    pub aside: bool,
    /// Why the first cut line is not part of the chain.
    pub reason: String,
}

/// Why a chain file's tail could not be rebuilt.
#[derive(Debug, thiserror::Error)]
pub(super) enum ScanError {
    /// The last receipt is signed by a key that is no version of the
    /// chain's key name (a ledger of an older sigild, signed by its digest
    /// key).
    #[error("{0}")]
    ForeignKey(String),
    /// The file is not a chain sigild can resume.
    #[error("{0}")]
    Malformed(String),
    /// A damaged line is followed by receipts that continue the chain.
    #[error("{0}")]
    NotAtTail(String),
}

/// One whole line: its text (lossy when it is not UTF-8, which no line
/// sigild writes is) and the byte offset just past its line break.
struct Line<'a> {
    text: Cow<'a, str>,
    end: u64,
}

/// The whole lines of `bytes`, split exactly as the verifier splits them
/// (`sigil_proto::chain::lines`), so that recovery keeps what the verifier
/// would accept and nothing else. From the first byte that is not UTF-8,
/// the rest is one damaged line.
fn split(bytes: &[u8]) -> Vec<Line<'_>> {
    let valid = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => bytes
            .get(..e.valid_up_to())
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or_default(),
    };
    let mut lines: Vec<Line<'_>> = chain::lines(valid)
        .filter(|l| l.terminated)
        .map(|l| Line {
            text: Cow::Borrowed(l.text),
            end: l.end as u64,
        })
        .collect();
    let done = lines.last().map_or(0, |l| l.end as usize);
    if let Some(rest) = bytes.get(done..).filter(|r| !r.is_empty()) {
        lines.push(Line {
            text: String::from_utf8_lossy(rest),
            end: bytes.len() as u64,
        });
    }
    lines
}

/// A receipt of the valid prefix, as much of it as the tail needs.
struct Link {
    /// 0-based line.
    line: usize,
    seq: u64,
    hash: String,
    /// A boundary's `key_transition`: prior signer, seq and hash.
    transition: Option<Box<(String, u64, String)>>,
}

/// The first line that is not part of the chain (0-based), and why.
type Bad = Option<(usize, String)>;

/// Rebuilds the tail from `bytes`, the whole lines of a chain file.
/// `key_of` maps the last receipt's signer to a version of `key_name`.
pub(super) fn scan(
    bytes: &[u8],
    window: usize,
    key_name: &str,
    key_of: impl Fn(&str) -> Option<KeyVersion>,
) -> Result<Scanned, ScanError> {
    let lines = split(bytes);
    let (mut links, mut bad) = follow(&lines);
    let last = last_valid(&lines, &mut links, &mut bad)?;
    let (Some(last), Some(g)) = (last, links.last()) else {
        return Err(ScanError::Malformed(match bad {
            Some((_, why)) => format!("no valid first receipt: {why}"),
            None => "no receipt in an existing chain file".into(),
        }));
    };
    let key = key_of(&last.signer_key).ok_or_else(|| {
        ScanError::ForeignKey(format!(
            "line {}: the last receipt is signed by {}, which is no version of key name \
             {key_name:?} in keys.json",
            g.line + 1,
            last.signer_key
        ))
    })?;
    let (keep_bytes, cut) = what_to_cut(&lines, g, &last, bad)?;
    let tail = rebuild(&lines, &links, g, key, &last, window);
    Ok(Scanned {
        tail,
        keep_bytes,
        cut,
        receipts: links.into_iter().map(|l| l.hash).collect(),
        last_seal: last_seal(&lines),
    })
}

/// Follows the chain from its first line while each receipt links to the
/// one before it; stops at the first line that does not.
fn follow(lines: &[Line<'_>]) -> (Vec<Link>, Bad) {
    let mut links: Vec<Link> = Vec::new();
    let mut prev_signer = String::new();
    for (n, line) in lines.iter().enumerate() {
        if line.text.trim().is_empty() {
            continue;
        }
        let r = match receipt::parse_entry(&line.text) {
            Ok(Entry::Receipt(r)) => r,
            // Recorder entries (rotation endorsements) are no link.
            Ok(Entry::Other { .. }) => continue,
            Err(e) => {
                return (
                    links,
                    Some((n, format!("line {}: not a receipt: {e}", n + 1))),
                )
            }
        };
        match link(links.last(), &prev_signer, &r, n) {
            Ok(l) => {
                prev_signer = r.signer_key;
                links.push(l);
            }
            Err(why) => return (links, Some((n, format!("line {}: {why}", n + 1)))),
        }
    }
    (links, None)
}

/// The last receipt must verify before anything is appended after it; one
/// that does not is damage, and the one before it is tried.
fn last_valid(
    lines: &[Line<'_>],
    links: &mut Vec<Link>,
    bad: &mut Bad,
) -> Result<Option<Receipt>, ScanError> {
    while let Some(l) = links.last() {
        let Ok(Entry::Receipt(r)) = receipt::parse_entry(&lines[l.line].text) else {
            return Err(ScanError::Malformed(format!(
                "line {}: unreadable",
                l.line + 1
            )));
        };
        match receipt::verify(&r, None) {
            Ok(_) => return Ok(Some(r)),
            Err(e) => {
                *bad = Some((l.line, format!("line {}: {e}", l.line + 1)));
                links.pop();
            }
        }
    }
    Ok(None)
}

/// What follows `g`, the last valid receipt (`last`): nothing; a rotation
/// endorsement whose boundary was never written (cut); damage at the tail
/// (moved aside); or damage that later receipts continue past (refused).
fn what_to_cut(
    lines: &[Line<'_>],
    g: &Link,
    last: &Receipt,
    bad: Bad,
) -> Result<(u64, Option<Cut>), ScanError> {
    let total = lines.last().map_or(0, |l| l.end);
    // Seal entries after the last receipt are the chain's own evidence,
    // written after its receipts (at close, last of all): kept.
    let rest: Vec<(usize, &Line)> = lines
        .iter()
        .enumerate()
        .skip(g.line + 1)
        .filter(|(_, l)| !l.text.trim().is_empty() && seal_size(&l.text).is_none())
        .collect();
    let Some(&(first, l)) = rest.first() else {
        return Ok((total, None));
    };
    if rest.iter().all(|(_, l)| is_endorsement(&l.text)) {
        let cut = Cut {
            lines: lines.len() - first,
            aside: false,
            reason: format!(
                "line {}: a rotation endorsement without its boundary receipt",
                first + 1
            ),
        };
        return Ok((lines[first - 1].end, Some(cut)));
    }
    let reason = match bad {
        Some((n, why)) if n == first => why,
        _ => describe(first, &l.text),
    };
    if let Some(why) = continuation(&rest, g, last) {
        return Err(ScanError::NotAtTail(format!(
            "{reason}; but {why}: the damage is not at the tail, and receipts after it may \
             have been acknowledged, so sigild cuts nothing; repair the file or move it aside, \
             then restart sigild"
        )));
    }
    // After the last line kept (the last valid receipt, or a seal entry
    // that follows it): blank lines before the damage go with it.
    let kept = lines[..first]
        .iter()
        .rposition(|l| !l.text.trim().is_empty())
        .unwrap_or(g.line);
    let cut = Cut {
        lines: lines.len() - kept - 1,
        aside: true,
        reason,
    };
    Ok((lines[kept].end, Some(cut)))
}

/// The tail after the valid chain `links`, whose last link is `g` and
/// last receipt `last`, signed by `key`.
fn rebuild(
    lines: &[Line<'_>],
    links: &[Link],
    g: &Link,
    key: KeyVersion,
    last: &Receipt,
    window: usize,
) -> Tail {
    let mut tail = Tail::new(key, g.hash.clone(), window);
    tail.seq = g.seq;
    tail.last_time = timestamp::parse(last.str_field("timestamp")).ok();
    for l in links {
        if let Some(t) = &l.transition {
            tail.ended.insert(t.0.clone(), (t.1, t.2.clone()));
        }
    }
    let segment_start = links
        .iter()
        .rposition(|l| l.transition.is_some())
        .unwrap_or(0);
    tail.segment_count = (links.len() - segment_start) as u64;
    for l in links.iter().skip(links.len().saturating_sub(window)) {
        // Each parsed once already; read again for the replay window only.
        if let Ok(Entry::Receipt(r)) = receipt::parse_entry(&lines[l.line].text) {
            tail.remember(r.str_field("action_id"), r.str_field("decision_phase"));
        }
    }
    tail
}

/// Links `r`, on 0-based line `n`, to `prev` (signed by `prev_signer`), or
/// says why it does not follow it.
fn link(prev: Option<&Link>, prev_signer: &str, r: &Receipt, n: usize) -> Result<Link, String> {
    let seq = r
        .action_record
        .get("chain_seq")
        .filter(|v| v.is_u64())
        .and_then(Value::as_u64)
        .ok_or("chain_seq is not a uint64")?;
    let prev_hash = r.str_field("chain_prev_hash");
    let kt = r
        .action_record
        .get("key_transition")
        .filter(|v| !v.is_null());
    let transition = match (prev, kt) {
        (None, Some(_)) => return Err("the first receipt carries key_transition".into()),
        (None, None) => {
            if seq != 0 {
                return Err(format!("the first receipt has chain_seq {seq}, not 0"));
            }
            check_anchor(r, prev_hash)?;
            None
        }
        (Some(p), Some(kt)) => {
            let kt = kt.as_object().ok_or("key_transition is not an object")?;
            let s = |k: &str| kt.get(k).and_then(Value::as_str).unwrap_or("");
            if seq != 0
                || prev_hash != p.hash
                || s("prior_chain_hash") != p.hash
                || kt.get("prior_chain_seq").and_then(Value::as_u64) != Some(p.seq)
                || s("prior_signer_key") != prev_signer
            {
                return Err(format!(
                    "the rotation boundary does not follow the receipt on line {}",
                    p.line + 1
                ));
            }
            Some(Box::new((
                prev_signer.to_owned(),
                p.seq,
                s("prior_chain_hash").to_owned(),
            )))
        }
        (Some(p), None) => {
            if prev_hash != p.hash {
                return Err(format!(
                    "chain_prev_hash does not link to the receipt on line {}",
                    p.line + 1
                ));
            }
            if p.seq.checked_add(1) != Some(seq) {
                return Err(format!(
                    "chain_seq {seq} does not follow chain_seq {} on line {}",
                    p.seq,
                    p.line + 1
                ));
            }
            None
        }
    };
    let hash = r.hash().map_err(|e| e.to_string())?;
    Ok(Link {
        line: n,
        seq,
        hash,
        transition,
    })
}

/// The first receipt's anchor: a bound `g1:` session_open, or the legacy
/// `"genesis"`.
fn check_anchor(r: &Receipt, anchor: &str) -> Result<(), String> {
    if anchor == "genesis" {
        return Ok(());
    }
    let open = r
        .action_record
        .get("session_control")
        .and_then(|c| c.get("open"))
        .and_then(Value::as_object);
    match open {
        Some(o) if anchor.starts_with("g1:") && session::genesis_hash(o) == anchor => Ok(()),
        _ => Err("the first receipt is not anchored by a g1: session_open".into()),
    }
}

/// The tree size of a seal entry's checkpoint, or `None` for any other
/// line.
fn seal_size(text: &str) -> Option<u64> {
    if !text.contains(crate::log::SEAL_TYPE) {
        return None;
    }
    let Ok(Entry::Other { kind, detail }) = receipt::parse_entry(text) else {
        return None;
    };
    if kind != crate::log::SEAL_TYPE {
        return None;
    }
    let note = sigil_proto::tlog::Note::parse(detail?.get("note")?.as_str()?).ok()?;
    sigil_proto::tlog::Checkpoint::parse(&note.text)
        .ok()
        .map(|c| c.size)
}

/// The tree size of the file's last seal entry (0: none).
fn last_seal(lines: &[Line<'_>]) -> u64 {
    lines
        .iter()
        .rev()
        .find_map(|l| seal_size(&l.text))
        .unwrap_or(0)
}

fn is_endorsement(text: &str) -> bool {
    matches!(receipt::parse_entry(text), Ok(Entry::Other { kind, .. }) if kind == "rotation_endorsement")
}

/// Why line `n` (0-based), after the last receipt, is cut, when the walk
/// did not already say.
fn describe(n: usize, text: &str) -> String {
    match receipt::parse_entry(text) {
        Ok(Entry::Other { kind, .. }) => {
            format!("line {}: a recorder entry of type {kind:?}", n + 1)
        }
        Ok(Entry::Receipt(_)) => format!("line {}: a receipt that does not link", n + 1),
        Err(e) => format!("line {}: not a receipt: {e}", n + 1),
    }
}

/// A line of `rest` (after the last valid receipt `last`, on `g`) that
/// continues the chain: a receipt whose signature verifies and which links
/// to `last`, or carries on its run by the same key past a missing line
/// (a later `chain_seq` than the next). Says which and how, or `None`.
fn continuation(rest: &[(usize, &Line)], g: &Link, last: &Receipt) -> Option<String> {
    // Only what the checks need: the damage can be early in a long file.
    struct Valid {
        line: usize,
        prev: String,
        run: String,
        signer: String,
        seq: Option<u64>,
    }
    let run = last.str_field("run_nonce");
    let valid: Vec<Valid> = rest
        .iter()
        .filter_map(|(n, l)| match receipt::parse_entry(&l.text) {
            Ok(Entry::Receipt(r)) if receipt::verify(&r, None).is_ok() => Some(Valid {
                line: *n,
                prev: r.str_field("chain_prev_hash").to_owned(),
                run: r.str_field("run_nonce").to_owned(),
                seq: r.chain_seq(),
                signer: r.signer_key,
            }),
            _ => None,
        })
        .collect();
    // A link to `last` is the plainer evidence: name it first.
    let linked = valid.iter().find_map(|v| {
        (v.prev == g.hash).then(|| {
            format!(
                "line {} links to the receipt on line {}",
                v.line + 1,
                g.line + 1
            )
        })
    });
    linked.or_else(|| {
        valid.iter().find_map(|v| {
            let seq = v.seq?;
            // One right after `last` that does not link to it is no
            // continuation: a genuine one would.
            let carries_on = !run.is_empty()
                && v.run == run
                && v.signer == last.signer_key
                && seq > g.seq.saturating_add(1);
            carries_on.then(|| {
                format!(
                    "line {} (chain_seq {seq}) carries on the run of the receipt on line {}",
                    v.line + 1,
                    g.line + 1
                )
            })
        })
    })
}
