//! Reading the log from C2SP tlog-tiles files: roots and proofs computed
//! from hash tiles equal the ones computed over every leaf hash and
//! verify, at every size up to 600 and at sizes that need level-1 and
//! level-2 tiles; older checkpoints stay readable after the log grew and
//! dropped partial tiles; entry bundles read back in order; and damaged or
//! missing files are refused with a message naming them.

// Test code: an unwrap is an assertion.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use sigil_proto::tlog::{
    consistency_proof, empty_root, encode_entries, entries_path, inclusion_proof, leaf_hash,
    node_hash, parse_entries, prove_consistency, prove_inclusion, read_entries, root, tile_path,
    tile_width, tree_root, verify_consistency, verify_inclusion, Hash, HashSource, Leaves,
    LogError, TileFetch, TileHashes,
};

/// A log's files in memory, by path.
#[derive(Default)]
struct Files(HashMap<String, Vec<u8>>);

impl TileFetch for Files {
    fn fetch(&mut self, path: &str) -> Result<Option<Vec<u8>>, LogError> {
        Ok(self.0.get(path).cloned())
    }
}

impl Files {
    /// Deletes every partial tile and bundle whose full one exists, as the
    /// spec lets a log do.
    fn drop_replaced_partials(&mut self) {
        let replaced: Vec<String> = (self.0.keys())
            .filter(|p| {
                p.split_once(".p/")
                    .is_some_and(|(full, _)| self.0.contains_key(full))
            })
            .cloned()
            .collect();
        assert!(!replaced.is_empty());
        for p in replaced {
            self.0.remove(&p);
        }
    }
}

/// A log's entries and every perfect subtree hash, computed once:
/// `heights[h][i]` is the hash of the perfect subtree of height `h` at `i`.
struct Log {
    entries: Vec<Vec<u8>>,
    heights: Vec<Vec<Hash>>,
}

impl Log {
    fn new(n: usize) -> Log {
        let entries: Vec<Vec<u8>> = (0..n)
            .map(|i| format!("chain-{}\0{:064x}", i % 7, i).into_bytes())
            .collect();
        let mut heights = vec![entries.iter().map(|e| leaf_hash(e)).collect::<Vec<_>>()];
        while heights.last().unwrap().len() > 1 {
            let below = heights.last().unwrap();
            let (pairs, _) = below.as_chunks::<2>();
            let next = pairs.iter().map(|[l, r]| node_hash(l, r)).collect();
            heights.push(next);
        }
        Log { entries, heights }
    }

    fn leaves(&self) -> &[Hash] {
        &self.heights[0]
    }

    /// The root of the first `m` leaves, folded from the perfect subtrees
    /// of `m` in binary, rightmost first: a second way to a root, apart
    /// from the recursion under test.
    fn root(&self, m: u64) -> Hash {
        let (mut acc, mut end) = (None, m);
        for h in 0..64 {
            if m >> h & 1 == 1 {
                end -= 1 << h;
                let sub = self.heights[h][(end >> h) as usize];
                acc = Some(acc.map_or(sub, |right| node_hash(&sub, &right)));
            }
        }
        acc.unwrap_or_else(empty_root)
    }

    /// Writes what the log writes when it publishes a checkpoint of `n`
    /// leaves: the entry bundles, and the hash tiles of every level, full
    /// and partial (level L holds the subtrees of height 8L).
    fn publish(&self, files: &mut Files, n: u64) {
        for (i, bundle) in self.entries[..n as usize].chunks(256).enumerate() {
            let refs: Vec<&[u8]> = bundle.iter().map(Vec::as_slice).collect();
            let path = entries_path(i as u64, bundle.len() as u64);
            files.0.insert(path, encode_entries(&refs).unwrap());
        }
        for (level, hashes) in self.heights.iter().step_by(8).enumerate() {
            let hashes = &hashes[..(n >> (8 * level)) as usize];
            for (i, tile) in hashes.chunks(256).enumerate() {
                let path = tile_path(level as u8, i as u64, tile.len() as u64);
                files.0.insert(path, tile.concat());
            }
        }
    }
}

/// Indexes below `n` worth checking: the ends, the middle, and the edges
/// of level-0 and level-1 tiles.
fn picks(n: u64) -> Vec<u64> {
    let mut v = vec![0, n / 2, n - 1, 255, 256, 65535, 65536];
    v.retain(|&i| i < n);
    v.sort_unstable();
    v.dedup();
    v
}

/// The tree of the first `n` leaves read from `files` has the log's root,
/// and the proofs of `indexes` (as leaves, and as older sizes) verify; with
/// `compare`, the root and proofs also equal the ones computed over the
/// leaf hashes (each costs n hashes).
fn check_size(files: &mut Files, log: &Log, n: u64, indexes: &[u64], compare: bool) {
    let leaves = &log.leaves()[..n as usize];
    let want = log.root(n);
    if compare {
        assert_eq!(root(leaves), want, "root of {n} leaves");
    }
    let mut tiles = TileHashes::new(&mut *files, n);
    assert_eq!(tree_root(&mut tiles, n).unwrap(), want, "root at {n}");
    for &i in indexes {
        let proof = prove_inclusion(&mut tiles, i, n).unwrap();
        if compare {
            assert_eq!(
                proof,
                inclusion_proof(i as usize, leaves).unwrap(),
                "{i} in {n}"
            );
        }
        verify_inclusion(i, n, &leaves[i as usize], &proof, &want).unwrap();
    }
    for &m in indexes.iter().chain(&[n]) {
        let proof = prove_consistency(&mut tiles, m, n).unwrap();
        if compare {
            assert_eq!(
                proof,
                consistency_proof(m as usize, leaves).unwrap(),
                "{m} to {n}"
            );
        }
        verify_consistency(m, n, &proof, &log.root(m), &want).unwrap();
    }
}

fn err<T: std::fmt::Debug>(r: Result<T, LogError>) -> String {
    r.unwrap_err().0
}

#[test]
fn every_size_to_600_reads_from_tiles_as_from_leaves() {
    let log = Log::new(600);
    let mut files = Files::default();
    for n in 1..=600 {
        log.publish(&mut files, n);
    }
    for n in 1..=600 {
        // Every root; every proof of small trees, then a sample.
        let indexes = match n {
            ..=40 => (0..n).collect(),
            _ if n % 7 == 0 || (254..=258).contains(&n) || (510..=514).contains(&n) => picks(n),
            _ => vec![],
        };
        check_size(&mut files, &log, n, &indexes, true);
    }
    // The empty tree needs no file.
    let mut none = TileHashes::new(Files::default(), 0);
    assert_eq!(tree_root(&mut none, 0).unwrap(), root(&[]));
}

#[test]
fn level_one_and_two_tiles_read_as_leaves() {
    let log = Log::new(70_000);
    let mut files = Files::default();
    let sizes = [255, 256, 257, 511, 65535, 65536, 65537, 70_000];
    for n in sizes {
        log.publish(&mut files, n);
    }
    for n in sizes {
        check_size(&mut files, &log, n, &picks(n), n < 1000);
    }
    // Over the leaf hashes a proof costs the tree's size: compared once
    // here, in a tree with a level-2 tile.
    let leaves = &log.leaves()[..65537];
    assert_eq!(root(leaves), log.root(65537));
    let mut tiles = TileHashes::new(&mut files, 65537);
    let proof = prove_inclusion(&mut tiles, 65536, 65537).unwrap();
    assert_eq!(proof, inclusion_proof(65536, leaves).unwrap());
    let proof = prove_consistency(&mut tiles, 1000, 65537).unwrap();
    assert_eq!(proof, consistency_proof(1000, leaves).unwrap());
    // Each older checkpoint is consistent with the newest, read from tiles.
    let mut tiles = TileHashes::new(&mut files, 70_000);
    for m in sizes {
        let proof = prove_consistency(&mut tiles, m, 70_000).unwrap();
        verify_consistency(m, 70_000, &proof, &log.root(m), &log.root(70_000)).unwrap();
    }
}

#[test]
fn older_checkpoints_read_after_the_log_grew_and_dropped_partials() {
    let log = Log::new(600);
    let mut files = Files::default();
    let sizes = [5, 100, 256, 300, 513, 600];
    for n in sizes {
        log.publish(&mut files, n);
    }
    files.drop_replaced_partials();
    assert!(!files.0.contains_key("tile/0/000.p/100"));
    assert!(!files.0.contains_key("tile/entries/001.p/44"));
    for n in sizes {
        check_size(&mut files, &log, n, &picks(n), true);
        assert_eq!(
            read_entries(&mut files, n).unwrap(),
            log.entries[..n as usize]
        );
    }

    // Without its partial tile or the full one, a size cannot be read.
    let mut only = Files::default();
    log.publish(&mut only, 100);
    only.0.remove("tile/0/000.p/100");
    let msg = err(tree_root(&mut TileHashes::new(only, 100), 100));
    assert!(msg.contains("tile/0/000.p/100 is missing"), "{msg}");
    assert!(msg.ends_with("the full tile/0/000"), "{msg}");
}

#[test]
fn entry_bundles_read_back_in_order() {
    let log = Log::new(600);
    let mut files = Files::default();
    for n in [1, 255, 256, 257, 600] {
        log.publish(&mut files, n);
        assert_eq!(
            read_entries(&mut files, n).unwrap(),
            log.entries[..n as usize]
        );
    }
    // A smaller tree than the one last written takes the bundles' prefix.
    assert_eq!(read_entries(&mut files, 3).unwrap(), log.entries[..3]);
    assert!(read_entries(&mut files, 0).unwrap().is_empty());
    for (n, bundle) in [(0, 256), (2, 88)] {
        let bytes = &files.0[&entries_path(n, bundle)];
        assert_eq!(parse_entries(bytes).unwrap().len(), bundle as usize);
    }
    // Lengths are 2 bytes, big-endian; an entry may be empty or 65535 bytes.
    let big = vec![7u8; 65535];
    let parts: [&[u8]; 3] = [b"ab", b"", &big];
    let bundle = encode_entries(&parts).unwrap();
    assert_eq!(bundle[..6], [0, 2, b'a', b'b', 0, 0]);
    assert_eq!(bundle[6..8], [0xff, 0xff]);
    assert_eq!(
        parse_entries(&bundle).unwrap(),
        [b"ab".to_vec(), vec![], big.clone()]
    );
    let huge = vec![0u8; 65536];
    assert!(
        err(encode_entries(&[big.as_slice(), huge.as_slice()])).contains("entry 1 is 65536 bytes")
    );
}

#[test]
fn damaged_or_short_bundles_are_refused() {
    let bundle = encode_entries(&[b"one".as_slice(), b"two"]).unwrap();
    for cut in [1, 2, 6, bundle.len() - 1] {
        let msg = err(parse_entries(&bundle[..cut]));
        assert!(msg.contains("truncated"), "{cut}: {msg}");
    }
    let log = Log::new(5);
    let mut files = Files::default();
    log.publish(&mut files, 5);
    let path = "tile/entries/000.p/5";
    files.0.get_mut(path).unwrap().pop();
    let msg = err(read_entries(&mut files, 5));
    assert!(msg.contains(path) && msg.contains("truncated"), "{msg}");
    // Well-formed, but holding fewer entries than the tree has.
    let four: Vec<&[u8]> = log.entries[..4].iter().map(Vec::as_slice).collect();
    files.0.insert(path.into(), encode_entries(&four).unwrap());
    let msg = err(read_entries(&mut files, 5));
    assert!(
        msg.contains(path) && msg.contains("holds 4 entries"),
        "{msg}"
    );
    files.0.remove(path);
    let msg = err(read_entries(&mut files, 5));
    assert!(msg.contains(path) && msg.contains("missing"), "{msg}");
}

#[test]
fn short_or_ragged_tiles_are_refused() {
    let log = Log::new(300);
    let mut files = Files::default();
    log.publish(&mut files, 300);
    let good = files.0["tile/0/001.p/44"].clone();
    for (bad, why) in [
        (good[..43 * 32].to_vec(), "holds 43 hashes"),
        (good[..44 * 32 - 1].to_vec(), "not a whole number"),
        ([good.as_slice(), &[0]].concat(), "not a whole number"),
    ] {
        files.0.insert("tile/0/001.p/44".into(), bad);
        let mut tiles = TileHashes::new(&mut files, 300);
        let msg = err(tree_root(&mut tiles, 300));
        assert!(
            msg.contains("tile/0/001.p/44") && msg.contains(why),
            "{msg}"
        );
    }
    files.0.insert("tile/0/001.p/44".into(), good);
    // A full tile read in place of a partial one that was never written
    // is short too when it lacks the hashes the smaller tree needs.
    let full = files.0.get_mut("tile/0/000").unwrap();
    full.truncate(40 * 32);
    let msg = err(tree_root(&mut TileHashes::new(&mut files, 44), 44));
    assert!(
        msg.contains("tile/0/000 ") && msg.contains("holds 40"),
        "{msg}"
    );
}

#[test]
fn subtrees_outside_the_tree_are_refused() {
    let log = Log::new(300);
    let leaves = log.leaves();
    let mut files = Files::default();
    log.publish(&mut files, 300);
    let mut tiles = TileHashes::new(&mut files, 300);
    assert_eq!(tiles.subtree(2, 1).unwrap(), root(&leaves[4..8]));
    assert_eq!(tiles.subtree(8, 0).unwrap(), root(&leaves[..256]));
    for (height, index) in [
        (0, 300),
        (2, 75),
        (8, 1),
        (9, 0),
        (63, 1),
        (64, 0),
        (0, u64::MAX),
    ] {
        let msg = err(tiles.subtree(height, index));
        assert!(msg.contains("not inside the tree of 300 leaves"), "{msg}");
        let msg = err(Leaves(leaves).subtree(height, index));
        assert!(msg.contains("not inside the tree of 300 leaves"), "{msg}");
    }
    // Files of a larger tree do not let a reader past its checkpoint.
    let mut at_100 = TileHashes::new(files, 100);
    assert!(err(tree_root(&mut at_100, 101)).contains("not inside"));
    assert!(err(prove_inclusion(&mut at_100, 5, 101)).contains("not inside"));
    assert!(err(prove_inclusion(&mut at_100, 100, 100)).contains("not in a tree"));
    assert!(err(prove_consistency(&mut at_100, 101, 100)).contains("not a prefix"));
    assert!(err(tree_root(&mut Leaves(&leaves[..5]), 6)).contains("not inside"));
}

#[test]
fn tile_widths_and_paths_follow_tlog_tiles() {
    // The spec's tree of 70,000: 273 full level-0 tiles and one of 112, a
    // full level-1 tile and one of 17, a level-2 tile of 1.
    let s = 70_000;
    assert_eq!(tile_width(0, 272, s), 256);
    assert_eq!(tile_width(0, 273, s), 112);
    assert_eq!(tile_width(0, 274, s), 0);
    assert_eq!(tile_width(1, 0, s), 256);
    assert_eq!(tile_width(1, 1, s), 17);
    assert_eq!(tile_width(1, 2, s), 0);
    assert_eq!(tile_width(2, 0, s), 1);
    assert_eq!(tile_width(3, 0, s), 0);
    // A tree of 256: a full level-0 tile and a level-1 tile of 1.
    assert_eq!(tile_width(0, 0, 256), 256);
    assert_eq!(tile_width(1, 0, 256), 1);
    assert_eq!(tile_width(0, 0, 0), 0);
    assert_eq!(tile_width(7, 0, u64::MAX), 255);
    assert_eq!(tile_width(8, 0, u64::MAX), 0);
    assert_eq!(tile_width(0, u64::MAX, u64::MAX), 0);

    assert_eq!(entries_path(1234067, 256), "tile/entries/x001/x234/067");
    assert_eq!(entries_path(1234067, 8), "tile/entries/x001/x234/067.p/8");
    assert_eq!(entries_path(0, 1), "tile/entries/000.p/1");
    assert_eq!(entries_path(1000, 256), "tile/entries/x001/000");
}
