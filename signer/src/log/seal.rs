//! Seal entries: after a checkpoint, each chain that gained receipts gets a
//! recorder entry (`sigil.checkpoint`, which pipelock-verify skips) holding
//! the checkpoint and an inclusion proof of its latest receipt in it, and a
//! consistency proof from the chain's previous seal. A chain file then
//! carries its own evidence: a verifier without the log checks that every
//! sealed receipt is in a tree the chain key signed, that the seals never
//! disagree, and how many receipts come after the last seal.
//!
//! The log decides which chains are due (at most one seal per chain per
//! `seal_seconds`, every chain at shutdown); the chain's task writes the
//! entry, and adds the consistency proof from the last seal in its file,
//! so successive seals in a file always chain whatever order they were
//! issued in.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use serde_json::json;
use sigil_proto::tlog::{self, Hash, LogError, TileFetch, TileHashes};

use super::ReceiptLog;
use crate::Error;

/// The recorder entry type of a seal.
pub const SEAL_TYPE: &str = "sigil.checkpoint";

/// A seal to write into a chain: the checkpoint and where the chain's
/// latest receipt in it is.
#[derive(Clone, Debug)]
pub struct Seal {
    /// The signed checkpoint.
    pub note: Arc<str>,
    /// Its tree size.
    pub size: u64,
    /// The leaf index of the chain's latest receipt in it.
    pub leaf_index: u64,
    /// That receipt's hash.
    pub receipt_hash: String,
    /// Its inclusion proof.
    pub inclusion: Vec<Hash>,
}

/// The log's files, read by tlog-tiles path.
struct DirTiles<'a>(&'a Path);

impl TileFetch for DirTiles<'_> {
    fn fetch(&mut self, path: &str) -> Result<Option<Vec<u8>>, LogError> {
        match std::fs::read(self.0.join(path)) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(LogError(format!("reading log tile {path}: {e}"))),
        }
    }
}

/// When each chain was last sealed, and how many of its receipts the seal
/// covered.
pub(super) type Issued = HashMap<String, (u64, Instant)>;

impl ReceiptLog {
    /// The seals due after the latest checkpoint: every chain with receipts
    /// its last seal did not cover, sealed longer than `every` ago (or
    /// any, with `all`, at shutdown). Blocking (reads tiles).
    pub fn seals_due(&self, every: Duration, all: bool) -> Vec<(String, Seal)> {
        let Some(p) = self.published() else {
            return Vec::new();
        };
        let mut issued = self.issued.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let mut hashes = TileHashes::new(DirTiles(&self.dir), p.size);
        let mut out = Vec::new();
        for (chain, pos) in p.chains.iter() {
            let last = issued.get(chain);
            let fresh = last.is_none_or(|(count, _)| pos.count > *count);
            let waited = all || last.is_none_or(|(_, at)| now.duration_since(*at) >= every);
            if !fresh || !waited || pos.count == 0 || pos.index == super::tree::NOT_LOGGED {
                continue;
            }
            match tlog::prove_inclusion(&mut hashes, pos.index, p.size) {
                Ok(inclusion) => {
                    issued.insert(chain.clone(), (pos.count, now));
                    out.push((
                        chain.clone(),
                        Seal {
                            note: p.note.as_str().into(),
                            size: p.size,
                            leaf_index: pos.index,
                            receipt_hash: pos.hash.clone(),
                            inclusion,
                        },
                    ));
                }
                Err(e) => tracing::warn!(chain = %chain, error = %e, "no seal: inclusion proof"),
            }
        }
        out
    }

    /// The consistency proof from a chain's previous seal (tree size
    /// `prior`) to `size`. Blocking.
    pub fn prove_consistency(&self, prior: u64, size: u64) -> Result<Vec<Hash>, Error> {
        let mut hashes = TileHashes::new(DirTiles(&self.dir), size);
        tlog::prove_consistency(&mut hashes, prior, size)
            .map_err(|e| Error::Internal(format!("consistency proof {prior} to {size}: {e}")))
    }
}

impl Seal {
    /// The recorder entry, with the consistency proof from `prior` (the
    /// tree size of the chain's previous seal) when there is one.
    pub fn entry(&self, chain: &str, prior: Option<(u64, Vec<Hash>)>) -> String {
        let hexes = |v: &[Hash]| v.iter().map(hex::encode).collect::<Vec<_>>();
        let mut detail = json!({
            "note": &*self.note,
            "leaf_index": self.leaf_index,
            "receipt_hash": self.receipt_hash,
            "inclusion": hexes(&self.inclusion),
        });
        if let Some((size, proof)) = prior {
            detail["prior_size"] = json!(size);
            detail["consistency"] = json!(hexes(&proof));
        }
        json!({
            "type": SEAL_TYPE,
            "ts": sigil_proto::timestamp::now(),
            "session_id": chain,
            "detail": detail,
        })
        .to_string()
    }
}
