//! Signatures per key version: counted by the chains as their batches
//! become durable (and, at a chain's first open, what its file already
//! holds), read by the rotation schedule and `/metrics`. They belong to the
//! lifecycle, not to the key records: nothing here is persisted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sigil_keys::KeyId;
use tokio::sync::mpsc;

/// Signature counts, and the rotations they make due.
pub struct Counters {
    counts: Mutex<HashMap<KeyId, u64>>,
    /// Signatures after which a version asks to be rotated (0: never).
    max_signatures: u64,
    due: mpsc::UnboundedSender<String>,
}

impl Counters {
    /// Counters that report on the returned receiver the key name of each
    /// version that has reached `max_signatures` (0: never), every time it
    /// signs more.
    pub fn new(max_signatures: u64) -> (Arc<Counters>, mpsc::UnboundedReceiver<String>) {
        let (due, rx) = mpsc::unbounded_channel();
        let c = Counters {
            counts: Mutex::new(HashMap::new()),
            max_signatures,
            due,
        };
        (Arc::new(c), rx)
    }

    /// Counts `n` more signatures by `key`.
    pub fn count(&self, key: &KeyId, n: u64) {
        if n == 0 {
            return;
        }
        // A poisoned lock only loses counts (a later rotation), never a
        // receipt: counting goes on with what the map holds.
        let total = {
            let mut m = self.counts.lock().unwrap_or_else(|p| p.into_inner());
            let c = m.entry(key.clone()).or_default();
            *c += n;
            *c
        };
        if self.max_signatures > 0 && total >= self.max_signatures {
            let _ = self.due.send(key.name().to_owned());
        }
    }

    /// Signatures counted for `key` since it started signing.
    pub fn get(&self, key: &KeyId) -> u64 {
        let m = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        m.get(key).copied().unwrap_or(0)
    }

    /// True when `key` has reached `max_signatures`.
    pub fn reached(&self, key: &KeyId) -> bool {
        self.max_signatures > 0 && self.get(key) >= self.max_signatures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_that_reaches_the_limit_asks_for_its_rotation() {
        let (c, mut due) = Counters::new(3);
        let v1 = KeyId::new("mediator", 1).unwrap();
        let v2 = KeyId::new("mediator", 2).unwrap();
        c.count(&v1, 2);
        c.count(&v2, 5);
        assert!(!c.reached(&v1));
        assert_eq!(due.try_recv().unwrap(), "mediator");
        assert!(due.try_recv().is_err());
        c.count(&v1, 1);
        assert!(c.reached(&v1));
        assert_eq!(c.get(&v1), 3);
        assert_eq!(due.try_recv().unwrap(), "mediator");
    }

    #[test]
    fn no_limit_asks_for_nothing() {
        let (c, mut due) = Counters::new(0);
        let v1 = KeyId::new("mediator", 1).unwrap();
        c.count(&v1, u64::MAX / 2);
        assert!(!c.reached(&v1));
        assert!(due.try_recv().is_err());
    }
}
