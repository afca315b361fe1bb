//! The log's growing edge in memory: for each tile level, the hashes of
//! the tile being filled; the entries of the bundle being filled; the full
//! tiles completed since they were last written; and where each chain's
//! last receipt is in the log. Everything left of the edge is on disk in
//! full tiles, so memory stays bounded however long the log grows.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sigil_proto::tlog::{self, Hash, TILE_WIDTH};

/// How far a chain is in the log. Counted in receipts, not by
/// `chain_seq`, which starts again at 0 at each rotation boundary.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// The chain's receipts in the log, from its first.
    pub count: u64,
    /// The receipt hash of the last of them.
    pub hash: String,
    /// Its leaf index in the log.
    #[serde(default)]
    pub index: u64,
}

/// A full tile (or entry bundle) completed and not yet written.
#[derive(Clone, Debug)]
pub(super) enum Full {
    /// Hash tile `index` of tile level `level`: 256 hashes.
    Hashes {
        level: u8,
        index: u64,
        hashes: Vec<Hash>,
    },
    /// Entry bundle `index`: 256 entries.
    Entries { index: u64, entries: Vec<Vec<u8>> },
}

/// The in-memory state of the log.
#[derive(Clone, Debug, Default)]
pub(super) struct Tree {
    /// Leaves in the log.
    pub size: u64,
    /// `levels[l]`: the hashes of the level-`l` tile being filled.
    pub levels: Vec<Vec<Hash>>,
    /// The entries of the bundle being filled.
    pub entries: Vec<Vec<u8>>,
    /// Full tiles and bundles completed since the last write, in order.
    pub full: Vec<Full>,
    /// Each chain's last receipt in the log.
    pub chains: BTreeMap<String, Position>,
}

/// The index of a chain's last receipt when it is not in the log.
pub(super) const NOT_LOGGED: u64 = u64::MAX;

/// How many entries a tile level holds at `size` leaves.
pub(super) fn entries_at(level: usize, size: u64) -> u64 {
    u32::try_from(level)
        .ok()
        .and_then(|l| l.checked_mul(8))
        .and_then(|bits| size.checked_shr(bits))
        .unwrap_or(0)
}

impl Tree {
    /// Appends receipts of `chain` (receipt hashes, in chain order) that
    /// follow its last one in the log.
    pub(super) fn append(&mut self, chain: &str, hashes: &[String]) {
        let Some(last) = hashes.last() else {
            return;
        };
        for hash in hashes {
            self.push(tlog::receipt_leaf(chain, hash));
        }
        let p = self.chains.entry(chain.to_owned()).or_default();
        p.count += hashes.len() as u64;
        p.hash.clone_from(last);
        p.index = self.size - 1;
    }

    /// Logs what a chain file holds that the log does not: `file`, every
    /// receipt hash of the file in order, continues the log's receipts of
    /// the chain. When it does not (the file was replaced or cut behind
    /// sigild's back), nothing is logged, the chain's position follows the
    /// file from here on, and the mismatch is returned to be reported: the
    /// log keeps what it had, and verifiers see the fork.
    pub(super) fn catch_up(&mut self, chain: &str, file: &[String]) -> Result<usize, Position> {
        let have = self.chains.get(chain).cloned().unwrap_or_default();
        let continues = usize::try_from(have.count)
            .ok()
            .filter(|n| *n <= file.len())
            .filter(|n| *n == 0 || file[*n - 1] == have.hash);
        match continues {
            Some(n) => {
                self.append(chain, &file[n..]);
                Ok(file.len() - n)
            }
            None => {
                // The position follows the file (so what is appended next
                // is logged after it); its last receipt is not in the log,
                // so nothing is sealed until the next one is.
                let now = Position {
                    count: file.len() as u64,
                    hash: file.last().cloned().unwrap_or_default(),
                    index: NOT_LOGGED,
                };
                self.chains.insert(chain.to_owned(), now);
                Err(have)
            }
        }
    }

    /// Appends one leaf: its entry, its hash, and every tile it completes.
    fn push(&mut self, entry: Vec<u8>) {
        let mut hash = tlog::leaf_hash(&entry);
        self.entries.push(entry);
        if self.entries.len() as u64 == TILE_WIDTH {
            let index = self.size / TILE_WIDTH;
            let entries = std::mem::take(&mut self.entries);
            self.full.push(Full::Entries { index, entries });
        }
        self.size += 1;
        let mut level = 0;
        loop {
            if self.levels.len() <= level {
                self.levels.push(Vec::new());
            }
            self.levels[level].push(hash);
            if self.levels[level].len() as u64 != TILE_WIDTH {
                break;
            }
            // A full tile is a perfect subtree: its root is one hash of
            // the level above.
            let hashes = std::mem::take(&mut self.levels[level]);
            hash = tlog::root(&hashes);
            let index = entries_at(level, self.size) / TILE_WIDTH - 1;
            self.full.push(Full::Hashes {
                level: level as u8,
                index,
                hashes,
            });
            level += 1;
        }
    }

    /// The root hash of the tree: the tiles being filled, top level first,
    /// are perfect subtrees of decreasing size; each level's run is split
    /// into powers of two and the whole right edge folded, as RFC 6962
    /// builds the tree.
    pub(super) fn root(&self) -> Hash {
        let mut edge: Vec<Hash> = Vec::new();
        for hashes in self.levels.iter().rev() {
            let mut rest: &[Hash] = hashes;
            while !rest.is_empty() {
                let k = 1usize << rest.len().ilog2();
                edge.push(tlog::root(&rest[..k]));
                rest = &rest[k..];
            }
        }
        match edge.split_last() {
            None => tlog::empty_root(),
            Some((last, before)) => before
                .iter()
                .rev()
                .fold(*last, |acc, h| tlog::node_hash(h, &acc)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receipts(n: u64) -> Vec<String> {
        (0..n).map(|i| format!("{i:064x}")).collect()
    }

    #[test]
    fn the_edge_gives_the_root_of_every_leaf_so_far_and_completes_tiles_in_order() {
        let mut tree = Tree::default();
        let mut all = Vec::new();
        // Across a level-1 tile boundary (65536 leaves) and beyond.
        for (i, r) in receipts(66_000).into_iter().enumerate() {
            all.push(tlog::leaf_hash(&tlog::receipt_leaf("c", &r)));
            tree.append("c", &[r]);
            let n = i + 1;
            if n < 600 || n % 4093 == 0 || (65_530..65_540).contains(&n) || n == 66_000 {
                assert_eq!(tree.root(), tlog::root(&all), "root at {n}");
            }
        }
        let level1: Vec<_> = tree
            .full
            .iter()
            .filter_map(|f| match f {
                Full::Hashes {
                    level: 1,
                    index,
                    hashes,
                } => Some((*index, hashes.len())),
                _ => None,
            })
            .collect();
        assert_eq!(level1, vec![(0, 256)]);
        let bundles = tree
            .full
            .iter()
            .filter(|f| matches!(f, Full::Entries { .. }))
            .count();
        assert_eq!(bundles, 66_000 / 256);
        assert_eq!(tree.entries.len(), 66_000 % 256);
    }

    #[test]
    fn catching_up_logs_only_what_the_file_holds_past_the_log() {
        let mut tree = Tree::default();
        tree.append("a", &receipts(3));
        assert_eq!(tree.catch_up("a", &receipts(5)), Ok(2));
        assert_eq!(tree.catch_up("a", &receipts(5)), Ok(0));
        assert_eq!(tree.catch_up("b", &receipts(2)), Ok(2));
        assert_eq!(tree.size, 7);
        assert_eq!(tree.chains["a"].count, 5);
    }

    #[test]
    fn a_file_that_does_not_continue_the_log_logs_nothing_and_is_reported() {
        let mut tree = Tree::default();
        tree.append("a", &receipts(4));
        // Shorter than the log: cut behind sigild's back.
        let had = tree.catch_up("a", &receipts(2)).unwrap_err();
        assert_eq!(had.count, 4);
        assert_eq!(tree.size, 4);
        // Same length, another last receipt: replaced.
        let mut other = receipts(2);
        other[1] = "ff".repeat(32);
        assert!(tree.catch_up("a", &other).is_err());
        assert_eq!(tree.size, 4);
        // From there on the position follows the file.
        other.push("ee".repeat(32));
        assert_eq!(tree.catch_up("a", &other), Ok(1));
    }
}
