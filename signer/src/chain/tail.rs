//! The tail of a chain: what the next receipt links to (rebuilt from the
//! file after a restart by `scan`).

use std::collections::{HashMap, HashSet, VecDeque};

use time::OffsetDateTime;

use crate::keyring::KeyVersion;

/// Everything the next receipt of a chain depends on.
pub(super) struct Tail {
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
    pub key: KeyVersion,
    /// Timestamp of the last receipt: the next is never earlier, whatever
    /// the clock says, so time never goes back within a chain.
    pub last_time: Option<OffsetDateTime>,
    /// Keys whose segment on this chain has ended (a rotation boundary
    /// follows), by public key: their last receipt's (seq, hash), which is
    /// where a revocation of that key takes effect here.
    pub ended: HashMap<String, (u64, String)>,
    /// Receipt hashes signed since the last durable write: they join the
    /// receipt log once the write is durable.
    pub fresh: Vec<String>,
    /// The replay window: a fixed 32 bytes per entry whatever the ids'
    /// length (two 16 KiB strings per entry would make a full window of a
    /// chain hundreds of MiB).
    recent: VecDeque<[u8; 32]>,
    recent_set: HashSet<[u8; 32]>,
    window: usize,
}

impl Tail {
    /// A tail before any receipt.
    pub(super) fn new(key: KeyVersion, anchor: String, window: usize) -> Tail {
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
            fresh: Vec::new(),
            recent: VecDeque::new(),
            recent_set: HashSet::new(),
            window,
        }
    }

    /// The timestamp for the next receipt: now, unless the clock went back
    /// below the last receipt's.
    pub(super) fn next_time(&self) -> OffsetDateTime {
        let now = OffsetDateTime::now_utc();
        match self.last_time {
            Some(last) if last > now => last,
            _ => now,
        }
    }

    /// True when (`action_id`, `decision_phase`) is in the replay window.
    pub(super) fn seen(&self, action_id: &str, phase: &str) -> bool {
        self.recent_set.contains(&replay_key(action_id, phase))
    }

    /// Adds (`action_id`, `decision_phase`) to the replay window.
    pub(super) fn remember(&mut self, action_id: &str, phase: &str) {
        if self.window == 0 {
            return;
        }
        let key = replay_key(action_id, phase);
        if self.recent_set.insert(key) {
            self.recent.push_back(key);
        }
        while self.recent.len() > self.window {
            if let Some(old) = self.recent.pop_front() {
                self.recent_set.remove(&old);
            }
        }
    }
}

/// SHA-256 of (`action_id`, `decision_phase`), length-prefixed so that no
/// two pairs share a key.
fn replay_key(action_id: &str, phase: &str) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update((action_id.len() as u64).to_be_bytes());
    h.update(action_id.as_bytes());
    h.update(phase.as_bytes());
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tail(window: usize) -> Tail {
        let key = KeyVersion {
            id: sigil_keys::KeyId::new("k", 1).expect("id"),
            public_hex: String::new(),
        };
        Tail::new(key, String::new(), window)
    }

    #[test]
    fn the_replay_window_keys_pairs_exactly_and_forgets_the_oldest() {
        let mut t = tail(2);
        let long = "i".repeat(16 * 1024);
        t.remember(&long, "intent");
        assert!(t.seen(&long, "intent"));
        assert!(!t.seen(&long, "outcome"), "another phase is another action");
        // Splitting the same bytes differently is another pair.
        t.remember("ab", "c");
        assert!(!t.seen("a", "bc"));
        t.remember("x", "");
        assert!(!t.seen(&long, "intent"), "the oldest left the window");
        assert!(t.seen("ab", "c") && t.seen("x", ""));
        assert_eq!(size_of_val(&t.recent[0]), 32);
    }
}
