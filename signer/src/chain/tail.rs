//! The tail of a chain: what the next receipt links to (rebuilt from the
//! file after a restart by `scan`).

use std::collections::{HashMap, HashSet, VecDeque};

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
