//! Verification of a chain file (spec §3): the walk pipelock-verify does,
//! with rotation endorsements, plus sigil's stricter policies.

use std::collections::HashMap;

use serde_json::Value;
use time::OffsetDateTime;

use crate::endorsement::Endorsement;
use crate::policy::Policy;
use crate::receipt::{self, Entry, Receipt};
use crate::Error;
use walk::Walk;

/// Pipelock's default recorder session id.
pub const DEFAULT_SESSION_ID: &str = "proxy";

pub use crate::lineage::{Revocation, Window};
pub use lines::{entries, lines, split_lines, Line, Lines};
pub use walk::{check_not_after_retirement, check_window};

mod lines;
mod walk;

/// What to verify a chain against.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// The root key (first segment's signer), lowercase hex. Without it the
    /// first receipt's key is trusted.
    pub pinned: Option<String>,
    /// The recorder session. `None`: the first `session_open`'s session,
    /// or Pipelock's `proxy` when endorsements must be matched.
    pub session_id: Option<String>,
    /// Endorsements given besides those held in the file.
    pub endorsements: Vec<Endorsement>,
    /// Also use `rotation_endorsement` recorder entries of the file.
    pub endorsements_from_file: bool,
    /// Revoked keys (lowercase hex): when they became untrustworthy and
    /// where their revocation took effect on each chain.
    pub revoked: HashMap<String, Revocation>,
    /// Retired keys (lowercase hex): (keyid, when); their receipts dated
    /// later are refused.
    pub retired: HashMap<String, (String, OffsetDateTime)>,
    /// Certified windows (root role) by public key: receipts dated outside
    /// are refused.
    pub windows: HashMap<String, Window>,
    /// Stricter checks.
    pub policy: Policy,
}

/// A receipt refused because its key was revoked before it was signed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevokedReceipt {
    /// 1-based line in the file.
    pub line: usize,
    /// Its `chain_seq`.
    pub seq: u64,
    /// Its `timestamp`.
    pub timestamp: String,
    /// The revoked signer key.
    pub signer_key: String,
    /// Why it is refused.
    pub why: String,
}

/// What a valid chain proves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// Number of receipts.
    pub receipt_count: usize,
    /// `chain_seq` of the last receipt.
    pub final_seq: u64,
    /// Receipt hash of the last receipt.
    pub root_hash: String,
    /// First and last timestamps.
    pub start_time: String,
    /// Last timestamp.
    pub end_time: String,
    /// Signer keys of the segments, root first.
    pub segment_keys: Vec<String>,
    /// Endorsements consumed at boundaries.
    pub endorsements_used: usize,
    /// Receipts otherwise valid but signed by a revoked key at or after its
    /// compromise time. When non-empty, [`verify`] returns an error too.
    pub revoked: Vec<RevokedReceipt>,
    /// The recorder session the chain was checked as.
    pub session_id: Option<String>,
    /// Per signer key (lowercase hex), its last receipt: (seq, hash). What
    /// a root revocation pins (`sigil chain tails`).
    pub tails: HashMap<String, (u64, String)>,
}

/// Verifies a chain file's text. Blank lines are ignored; recorder entries
/// of types other than `action_receipt` are skipped (their endorsements are
/// used when `endorsements_from_file`). On failure the error names the line.
pub fn verify(text: &str, opts: &Options) -> Result<Summary, Error> {
    verify_with_progress(text, opts, &mut |_, _| {})
}

/// [`verify`], calling `progress(done, total)` every 4096 receipts.
pub fn verify_with_progress(
    text: &str,
    opts: &Options,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Summary, Error> {
    let (receipts, endorsements) = read(text, opts)?;
    let (Some((_, first)), Some((_, last))) = (receipts.first(), receipts.last()) else {
        return Err(Error::Chain("no receipts found".into()));
    };
    for e in &endorsements {
        e.verify_signature()?;
    }
    let session_id = session_of(&receipts, opts, !endorsements.is_empty())?;
    let mut w = Walk::new(opts, session_id, endorsements, first, receipts.len());
    for (i, (line, r)) in receipts.iter().enumerate() {
        if i % 4096 == 0 {
            progress(i, receipts.len());
        }
        w.step(i, *line, r).map_err(|e| Error::AtLine {
            line: *line,
            seq: r.chain_seq(),
            source: Box::new(e),
        })?;
    }
    w.finish(last)
}

/// Receipts with their 1-based line numbers.
type Numbered = Vec<(usize, Receipt)>;

/// The receipts of a chain file (with their line numbers) and the
/// endorsements to use: those given, then the file's own when asked, each
/// once.
fn read(text: &str, opts: &Options) -> Result<(Numbered, Vec<Endorsement>), Error> {
    let mut receipts = Vec::new();
    let mut endorsements: Vec<Endorsement> = Vec::new();
    let mut push_endorsement = |e: Endorsement| {
        if !endorsements.contains(&e) {
            endorsements.push(e);
        }
    };
    for e in &opts.endorsements {
        push_endorsement(e.clone());
    }
    for line in entries(text) {
        let at = |e: Error| Error::AtLine {
            line: line.number,
            seq: None,
            source: Box::new(e),
        };
        match receipt::parse_entry(line.text).map_err(at)? {
            Entry::Receipt(r) => receipts.push((line.number, r)),
            Entry::Other { kind, detail } => {
                if kind == "rotation_endorsement" && opts.endorsements_from_file {
                    let d = detail
                        .and_then(|d| d.as_object().cloned())
                        .unwrap_or_default();
                    push_endorsement(Endorsement::from_map(&d).map_err(at)?);
                }
            }
        }
    }
    Ok((receipts, endorsements))
}

/// The recorder session the chain is checked as; with endorsements, the
/// root must be pinned and its segment must open a run.
fn session_of(
    receipts: &[(usize, Receipt)],
    opts: &Options,
    endorsed: bool,
) -> Result<Option<String>, Error> {
    let first_open_session = receipts.iter().find_map(|(_, r)| {
        walk::open_payload(r).map(|o| {
            o.get("recorder_session")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        })
    });
    if !endorsed {
        return Ok(opts.session_id.clone().or(first_open_session));
    }
    if opts.pinned.is_none() {
        return Err(Error::Endorsement(
            "verifying rotations needs a pinned root key".into(),
        ));
    }
    let root_has_open = receipts
        .iter()
        .take_while(|(_, r)| !walk::has(r, "key_transition"))
        .any(|(_, r)| walk::open_payload(r).is_some());
    if !root_has_open {
        return Err(Error::Endorsement(
            "the root segment has no session_open".into(),
        ));
    }
    Ok(Some(opts.session_id.clone().unwrap_or_else(|| {
        first_open_session.unwrap_or_else(|| DEFAULT_SESSION_ID.into())
    })))
}
