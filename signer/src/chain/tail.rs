//! The tail of a chain: what the next receipt links to, and how it is
//! rebuilt from the file after a restart.

use std::collections::{HashMap, HashSet, VecDeque};

use sigil_proto::receipt::{self, Entry, Receipt};
use sigil_proto::timestamp;
use time::OffsetDateTime;

use crate::keyring::ActiveKey;

/// Everything the next receipt of a chain depends on.
pub struct Tail {
    /// `chain_seq` of the last receipt.
    pub seq: u64,
    /// Receipt hash of the last receipt (or the `g1:` anchor before the
    /// genesis is sealed).
    pub hash: String,
    /// Receipts in the current key segment.
    pub segment_count: u64,
    /// The active run.
    pub run_nonce: String,
    /// Its open nonce.
    pub open_nonce: String,
    /// Heartbeats written in this run.
    pub beat: u64,
    /// The key that signed the last receipt and signs the next.
    pub key: ActiveKey,
    /// Timestamp of the last receipt: the next is never earlier, whatever
    /// the clock says, so time never goes back within a chain.
    pub last_time: Option<OffsetDateTime>,
    /// Keys whose segment on this chain has ended (a rotation boundary
    /// follows), by public key: their last receipt's (seq, hash), which is
    /// where a revocation of that key takes effect here.
    pub ended: HashMap<String, (u64, String)>,
    recent: VecDeque<(String, String)>,
    recent_set: HashSet<(String, String)>,
    window: usize,
}

impl Tail {
    /// A tail before any receipt.
    pub fn new(key: ActiveKey, anchor: String, window: usize) -> Tail {
        Tail {
            seq: 0,
            hash: anchor,
            segment_count: 0,
            run_nonce: String::new(),
            open_nonce: String::new(),
            beat: 0,
            key,
            last_time: None,
            ended: HashMap::new(),
            recent: VecDeque::new(),
            recent_set: HashSet::new(),
            window,
        }
    }

    /// The timestamp for the next receipt: now, unless the clock went back
    /// below the last receipt's.
    pub fn next_time(&self) -> OffsetDateTime {
        let now = OffsetDateTime::now_utc();
        match self.last_time {
            Some(last) if last > now => last,
            _ => now,
        }
    }

    /// True when (`action_id`, `decision_phase`) is in the replay window.
    pub fn seen(&self, action_id: &str, phase: &str) -> bool {
        self.recent_set
            .contains(&(action_id.to_owned(), phase.to_owned()))
    }

    /// Adds (`action_id`, `decision_phase`) to the replay window.
    pub fn remember(&mut self, action_id: String, phase: String) {
        if self.window == 0 {
            return;
        }
        let key = (action_id, phase);
        if self.recent_set.insert(key.clone()) {
            self.recent.push_back(key);
        }
        while self.recent.len() > self.window {
            if let Some(old) = self.recent.pop_front() {
                self.recent_set.remove(&old);
            }
        }
    }
}

/// What recovery read from a chain file's whole lines.
pub struct Scanned {
    /// The tail after the last receipt.
    pub tail: Tail,
    /// Bytes of the file that hold whole entries worth keeping: a trailing
    /// rotation endorsement whose boundary receipt never made it is not.
    pub keep_bytes: u64,
}

/// Why a chain file's tail could not be rebuilt.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// The last receipt is signed by a key that is no version of the
    /// chain's key name (a ledger of an older sigild, signed by its digest
    /// key).
    #[error("{0}")]
    ForeignKey(String),
    /// The file is not a chain sigild can resume.
    #[error("{0}")]
    Malformed(String),
}

/// Rebuilds the tail from the lines of a chain file. `key_of` maps the last
/// receipt's signer to a version of the chain's key name.
pub fn scan(
    lines: &[String],
    window: usize,
    key_of: impl Fn(&str) -> Option<ActiveKey>,
) -> Result<Scanned, ScanError> {
    let mut receipts: Vec<(usize, Receipt)> = Vec::new();
    let mut keep_bytes = 0u64;
    let mut trailing_endorsement = None;
    for (n, line) in lines.iter().enumerate() {
        let bytes = line.len() as u64 + 1;
        if line.trim().is_empty() {
            keep_bytes += bytes;
            continue;
        }
        match receipt::parse_entry(line)
            .map_err(|e| ScanError::Malformed(format!("line {}: {e}", n + 1)))?
        {
            Entry::Receipt(r) => {
                receipts.push((n, r));
                trailing_endorsement = None;
            }
            Entry::Other { kind, .. } => {
                if kind == "rotation_endorsement" {
                    trailing_endorsement = Some(keep_bytes);
                }
            }
        }
        keep_bytes += bytes;
    }
    // An endorsement is written in the same write as its boundary receipt,
    // just before it; alone at the end, the rotation never reached this
    // chain and was never acknowledged.
    if let Some(at) = trailing_endorsement {
        keep_bytes = at;
    }
    let Some((n, last)) = receipts.last() else {
        return Err(ScanError::Malformed(
            "no receipt in an existing chain file".into(),
        ));
    };
    let key = key_of(&last.signer_key).ok_or_else(|| {
        ScanError::ForeignKey(format!(
            "line {}: signed by {}, which is no version of this chain's key name in keys.json",
            n + 1,
            last.signer_key
        ))
    })?;
    let seq = last.chain_seq().ok_or_else(|| {
        ScanError::Malformed(format!("line {}: chain_seq is not a uint64", n + 1))
    })?;
    let hash = last
        .hash()
        .map_err(|e| ScanError::Malformed(format!("line {}: {e}", n + 1)))?;
    let segment_start = receipts
        .iter()
        .rposition(|(_, r)| {
            r.action_record
                .get("key_transition")
                .is_some_and(|v| !v.is_null())
        })
        .unwrap_or(0);
    let mut tail = Tail::new(key, hash, window);
    tail.seq = seq;
    tail.last_time = timestamp::parse(last.str_field("timestamp")).ok();
    for (_, r) in &receipts {
        if let Some(kt) = r
            .action_record
            .get("key_transition")
            .and_then(|v| v.as_object())
        {
            let field = |k: &str| kt.get(k).and_then(|v| v.as_str()).unwrap_or("").to_owned();
            let prior_seq = kt
                .get("prior_chain_seq")
                .and_then(|v| v.as_u64())
                .unwrap_or(0);
            tail.ended.insert(
                field("prior_signer_key"),
                (prior_seq, field("prior_chain_hash")),
            );
        }
    }
    tail.segment_count = (receipts.len() - segment_start) as u64;
    for (_, r) in receipts.iter().skip(receipts.len().saturating_sub(window)) {
        tail.remember(
            r.str_field("action_id").into(),
            r.str_field("decision_phase").into(),
        );
    }
    Ok(Scanned { tail, keep_bytes })
}
