//! The receipt log read by code that is not ours: the checkpoint's
//! signature checked by `signed_note` (Cloudflare azul, a port of Go's
//! `sumdb/note`), the checkpoint parsed, the tree root recomputed from the
//! served tiles, and inclusion and consistency proofs built and checked by
//! `tlog_tiles` (a port of Go's `sumdb/tlog`). Each proof is also checked
//! across: `tlog_tiles`' proofs by our verifier, ours by `tlog_tiles`', and
//! the two implementations must produce byte-identical proofs (both emit
//! RFC 6962 PATH/PROOF order, leaf end first). Tile paths are compared with
//! `tlog_tiles::Tile::path` (Go's `tile/H/L/N` spelling, mapped to C2SP's
//! `tile/L/N` and `tile/entries/N`).

use std::time::Duration;

use sigil_proto::tlog as ours;
use tlog_tiles as tt;
// `tlog_tiles` re-exports its modules' items at the crate root
// (tlog_tiles-0.2.0/src/lib.rs:19-25), so `tt::Tile`, `tt::Hash`,
// `tt::check_record` etc. all resolve there. Its `Error`/`Checkpoint`
// collide with ours by name: always qualify. (No trait imports are needed:
// the traits are only implemented here and used through generic bounds.)

use sigil_tests::{append_many, wait_until, Daemon};

/// Tile height of C2SP tlog-tiles (and of sigild): 256 hashes a tile.
const H: u8 = 8;
/// Hashes (or entries) in a full tile.
const FULL: u32 = 1 << H;

/// Reads one file of the log by its path under the log's prefix
/// (`checkpoint`, `tile/0/x001/234.p/7`, `tile/entries/000`); `None`
/// when the server answers 404.
type Fetch<'a> = &'a dyn Fn(&str) -> Option<Vec<u8>>;

// ---------------------------------------------------------------------------
// Adapters
// ---------------------------------------------------------------------------

/// The C2SP path of a `tlog_tiles` tile. `Tile::path` writes Go's sumdb
/// spelling `tile/<H>/<L>/<N>[.p/<W>]`, and `tile/<H>/data/<N>` for a
/// data tile (tlog_tiles-0.2.0/src/tile.rs:182-201); C2SP tlog-tiles drops
/// the height and names entry bundles `entries`. The `<N>` grouping
/// (`x001/x234/067`) and `.p/<W>` suffix are the same in both.
fn c2sp_path(t: &tt::Tile) -> String {
    let go = t.path();
    let Some(rest) = go.strip_prefix("tile/8/") else {
        panic!("tlog_tiles wrote {go:?}: expected the height-8 prefix tile/8/");
    };
    match rest.strip_prefix("data/") {
        Some(n) => format!("tile/entries/{n}"),
        None => format!("tile/{rest}"),
    }
}

/// The inverse, into Go's spelling, for `tlog_tiles::Tile::from_path`
/// (tile.rs:233-300, which insists on the canonical spelling too).
fn go_path(c2sp: &str) -> String {
    match c2sp.strip_prefix("tile/entries/") {
        Some(n) => format!("tile/8/data/{n}"),
        None => c2sp.replacen("tile/", "tile/8/", 1),
    }
}

/// Reads hash tiles over HTTP for `tlog_tiles` (its `TileReader` trait,
/// tile.rs:367-392: `height`, `read_tiles`, `save_tiles`).
struct HttpTiles<'a> {
    fetch: Fetch<'a>,
}

impl HttpTiles<'_> {
    /// The tile's `width()` hashes. A partial tile that is gone may be
    /// read from the full tile, its prefix taken (C2SP: a log may delete a
    /// partial tile once the full one exists). `TileHashReader` insists on
    /// exactly `w * 32` bytes per tile (tile.rs:501-505).
    fn read_one(&self, t: &tt::Tile) -> Result<Vec<u8>, tt::Error> {
        let want = t.width() as usize * tt::HASH_SIZE;
        let exact = c2sp_path(t);
        if let Some(bytes) = (self.fetch)(&exact) {
            if bytes.len() != want {
                return Err(tt::Error::InvalidInput(format!(
                    "{exact} is {} bytes, not {want}",
                    bytes.len()
                )));
            }
            return Ok(bytes);
        }
        if t.width() == FULL {
            return Err(tt::Error::InvalidInput(format!("{exact} is missing")));
        }
        // Tile::new(h, l, n, w, is_data) (tile.rs:64-76; panics if invalid).
        let full = tt::Tile::new(t.height(), t.level(), t.level_index(), FULL, t.is_data());
        let full_path = c2sp_path(&full);
        match (self.fetch)(&full_path) {
            Some(bytes) if bytes.len() == FULL as usize * tt::HASH_SIZE => {
                Ok(bytes[..want].to_vec())
            }
            Some(bytes) => Err(tt::Error::InvalidInput(format!(
                "{full_path} is {} bytes, not a full tile",
                bytes.len()
            ))),
            None => Err(tt::Error::InvalidInput(format!(
                "{exact} is missing, and so is {full_path}"
            ))),
        }
    }
}

impl tt::TileReader for HttpTiles<'_> {
    fn height(&self) -> u8 {
        H
    }

    fn read_tiles(&self, tiles: &[tt::Tile]) -> Result<Vec<Vec<u8>>, tt::Error> {
        tiles.iter().map(|t| self.read_one(t)).collect()
    }

    fn save_tiles(&self, _tiles: &[tt::Tile], _data: &[Vec<u8>]) {}
}

/// Stored hashes read straight from the served tiles, NOT authenticated
/// against a root: so that `tt::tree_hash` over it is an independent
/// recomputation of the root from the tiles (tlog.rs:290-304). A hash at
/// storage index `x` lives in `Tile::from_index(8, x)` widened to the
/// tree's width by `parent(0, size)` (tile.rs:143-147, 209-222), and is
/// read out with `hash_at_index` (tile.rs:169-180), which hashes up within
/// the tile for levels that are not multiples of 8.
struct RawTiles<'a> {
    tiles: &'a HttpTiles<'a>,
    size: u64,
}

impl tt::HashReader for RawTiles<'_> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<tt::Hash>, tt::Error> {
        indexes
            .iter()
            .map(|&x| {
                let t = tt::Tile::from_index(H, x)
                    .parent(0, self.size)
                    .ok_or(tt::Error::IndexesNotInTree)?;
                let data = self.tiles.read_one(&t)?;
                t.hash_at_index(&data, x)
            })
            .collect()
    }
}

/// Every stored hash of a tree, in `tlog_tiles`' storage order, built from
/// the entries alone with `tt::stored_hashes` (tlog.rs:200-255) as Go's
/// tlog tests do: record `n`'s hashes are appended at
/// `stored_hash_index(0, n)`.
struct MemHashes(Vec<tt::Hash>);

impl MemHashes {
    fn build(leaves: &[Vec<u8>]) -> MemHashes {
        let mut mem = MemHashes(Vec::new());
        for (n, leaf) in leaves.iter().enumerate() {
            let hashes = tt::stored_hashes(n as u64, leaf, &mem).expect("stored_hashes");
            mem.0.extend(hashes);
        }
        assert_eq!(
            mem.0.len() as u64,
            tt::stored_hash_count(leaves.len() as u64),
            "tlog_tiles' storage layout"
        );
        mem
    }
}

impl tt::HashReader for MemHashes {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<tt::Hash>, tt::Error> {
        indexes
            .iter()
            .map(|&i| {
                usize::try_from(i)
                    .ok()
                    .and_then(|i| self.0.get(i).copied())
                    .ok_or(tt::Error::IndexesNotInTree)
            })
            .collect()
    }
}

/// Our reader's fetch trait over the same closure, for the cross checks.
struct ProtoFetch<'a>(Fetch<'a>);

impl ours::TileFetch for ProtoFetch<'_> {
    fn fetch(&mut self, path: &str) -> Result<Option<Vec<u8>>, ours::LogError> {
        Ok((self.0)(path))
    }
}

fn arrays(p: &[tt::Hash]) -> Vec<ours::Hash> {
    p.iter().map(|h| h.0).collect()
}

fn hashes(p: &[ours::Hash]) -> Vec<tt::Hash> {
    p.iter().map(|h| tt::Hash(*h)).collect()
}

/// An entry bundle (C2SP tlog-tiles: each entry a big-endian u16 length
/// then its bytes), parsed here rather than by our `parse_entries`:
/// tlog_tiles 0.2.0 has no entry-bundle parser (its data tiles are Go
/// sumdb's format).
fn bundle_entries(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        assert!(rest.len() >= 2, "bundle truncated in a length");
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        assert!(rest.len() >= 2 + len, "bundle truncated in an entry");
        out.push(rest[2..2 + len].to_vec());
        rest = &rest[2 + len..];
    }
    out
}

/// Leaf data of a receipt, built here, not by `ours::receipt_leaf`:
/// `chain || 0x00 || receipt_hash_hex`.
fn leaf_data(chain: &str, receipt_hash_hex: &str) -> Vec<u8> {
    [chain.as_bytes(), &[0u8][..], receipt_hash_hex.as_bytes()].concat()
}

// ---------------------------------------------------------------------------
// (i) + (ii): the signed checkpoint
// ---------------------------------------------------------------------------

/// Verifies `note_text` with signed_note under the Ed25519 key
/// `pubkey_hex` named after the checkpoint's origin, parses it with
/// tlog_tiles, and checks both agree with our parser. Returns the
/// tlog_tiles checkpoint.
fn open_checkpoint(note_text: &str, pubkey_hex: &str) -> tt::Checkpoint {
    let pk: [u8; 32] = hex::decode(pubkey_hex)
        .expect("hex key")
        .try_into()
        .expect("a 32-byte Ed25519 key");
    let vk = ed25519_dalek::VerifyingKey::from_bytes(&pk).expect("an Ed25519 point");

    // Note::from_bytes: syntax only; splits text from signature lines at
    // the last "\n\n" (signed_note-0.2.0/src/lib.rs:705-742).
    let note = signed_note::Note::from_bytes(note_text.as_bytes()).expect("signed_note parses");
    let text = std::str::from_utf8(note.text()).expect("UTF-8 text"); // lib.rs:847-849

    // The key's name is the log's origin (the checkpoint's first line).
    let origin = text.split('\n').next().expect("an origin line");

    // `<name>+<hex key id>+<base64(0x01 || pk)>` (lib.rs:495-504), key id
    // = SHA-256(name || "\n" || 0x01 || pk)[:4] (lib.rs:270-284), then
    // parsed back and the id re-checked by StandardVerifier::new
    // (lib.rs:332-371).
    let vkey = signed_note::new_ed25519_verifier_key(origin, &vk);
    let ours_key = ours::NoteKey::ed25519(origin, pk).expect("our note key");
    assert_eq!(vkey, ours_key.encode(), "verifier key encodings differ");
    let verifier = signed_note::StandardVerifier::new(&vkey).expect("signed_note verifier");

    // Note::verify -> (verified, unverified); Err(UnverifiedNote) when no
    // known key signed, Err(InvalidSignature) when a known key's signature
    // fails (lib.rs:744-801). VerifierList::new (lib.rs:553-564).
    let list: Vec<Box<dyn signed_note::Verifier>> = vec![Box::new(verifier)];
    let known = signed_note::VerifierList::new(list);
    let (verified, unverified) = note
        .verify(&known)
        .expect("signed_note verifies the checkpoint");
    assert_eq!(verified.len(), 1, "one signature by the chain key");
    assert!(
        unverified.is_empty(),
        "no signature by unknown keys: {unverified:?}"
    );
    assert_eq!(verified[0].name(), origin);
    assert_eq!(verified[0].id(), ours::key_hash(origin, &pk));
    assert_eq!(
        verified[0].id(),
        signed_note::key_id(origin, &[&[1u8][..], &pk[..]].concat())
    );

    // Negative controls: another key is unknown (so nothing verifies), and
    // a changed text fails the known key's signature.
    let other = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]).verifying_key();
    let other =
        signed_note::StandardVerifier::new(&signed_note::new_ed25519_verifier_key(origin, &other))
            .expect("other verifier");
    let list: Vec<Box<dyn signed_note::Verifier>> = vec![Box::new(other)];
    assert!(matches!(
        note.verify(&signed_note::VerifierList::new(list)),
        Err(signed_note::NoteError::UnverifiedNote)
    ));
    let tampered = note_text.replacen(origin, &format!("{origin}x"), 1);
    // (Renaming the origin in the text only; the signature line still names
    // the real key.)
    let tampered = signed_note::Note::from_bytes(tampered.as_bytes()).expect("parses");
    let list: Vec<Box<dyn signed_note::Verifier>> = vec![Box::new(
        signed_note::StandardVerifier::new(&vkey).expect("verifier"),
    )];
    assert!(matches!(
        tampered.verify(&signed_note::VerifierList::new(list)),
        Err(signed_note::NoteError::InvalidSignature { .. })
    ));

    // tlog_tiles parses the note text: origin, decimal size, base64 root,
    // optional extension lines (checkpoint.rs:181-262; strict mode needs the
    // text to end in exactly one newline, as a note's text does).
    let cp = tt::Checkpoint::from_bytes(note.text()).expect("tlog_tiles parses the checkpoint");
    // Re-encoding is byte-identical: our text is canonical (checkpoint.rs:264-271).
    assert_eq!(
        cp.to_bytes(),
        note.text(),
        "checkpoint text is not canonical"
    );

    let mine = ours::Checkpoint::parse(text).expect("our parser");
    assert_eq!(cp.origin(), mine.origin);
    assert_eq!(cp.size(), mine.size);
    assert_eq!(cp.hash().0, mine.root);
    let ext: String = mine.extensions.iter().map(|e| format!("{e}\n")).collect();
    assert_eq!(cp.extension(), ext);
    cp
}

// ---------------------------------------------------------------------------
// (iv): tile paths
// ---------------------------------------------------------------------------

/// One tile coordinate spelled by both implementations, both ways.
fn same_path(level: u8, index: u64, width: u32, entries: bool) {
    let t = tt::Tile::new(H, level, index, width, entries);
    let theirs = c2sp_path(&t);
    let mine = if entries {
        ours::entries_path(index, u64::from(width))
    } else {
        ours::tile_path(level, index, u64::from(width))
    };
    assert_eq!(
        theirs, mine,
        "tile ({level}, {index}, {width}, entries={entries})"
    );
    let parsed = ours::parse_tile_path(&theirs).expect("our parser takes tlog_tiles' path");
    let want = if entries {
        ours::TileRef::Entries {
            index,
            width: u64::from(width),
        }
    } else {
        ours::TileRef::Hashes {
            level,
            index,
            width: u64::from(width),
        }
    };
    assert_eq!(parsed, want);
    let back = tt::Tile::from_path(&go_path(&mine)).expect("tlog_tiles parses our path");
    assert_eq!(back, t);
}

fn paths_agree_on_samples() {
    for (level, index, width) in [
        (0u8, 0u64, FULL),
        (0, 0, 1),
        (0, 1, 7),
        (0, 999, 255),
        (0, 1000, FULL),
        (1, 1_234_067, FULL),
        (3, 5, 7),
        (2, 1_000_000, 1),
        (0, 123_456_789_012, 200),
    ] {
        same_path(level, index, width, false);
        if level == 0 {
            same_path(0, index, width, true);
        }
    }
}

// ---------------------------------------------------------------------------
// (iii): root, tiles, bundles, inclusion, consistency
// ---------------------------------------------------------------------------

/// Everything, for the latest checkpoint `note_text` (and optionally an
/// earlier one, for consistency), against `leaves` (the log's entries in
/// order, built by the caller from its own record of what it appended).
fn check_log(
    note_text: &str,
    pubkey_hex: &str,
    fetch: Fetch<'_>,
    leaves: &[Vec<u8>],
    earlier_note: Option<&str>,
    prove: &[u64],
) {
    let cp = open_checkpoint(note_text, pubkey_hex);
    let (size, root) = (cp.size(), *cp.hash());
    assert_eq!(
        size,
        leaves.len() as u64,
        "the checkpoint covers the entries given"
    );
    paths_agree_on_samples();
    if size == 0 {
        assert_eq!(root, tt::EMPTY_HASH); // tlog.rs:270-275
        return;
    }

    // Root from the entries alone (tlog_tiles' own tree, no tiles).
    let mem = MemHashes::build(leaves);
    assert_eq!(
        tt::tree_hash(size, &mem).expect("tree_hash"),
        root,
        "entries -> root"
    );

    // Every tile a tree of this size has (Tile::new_tiles, tile.rs:108-135):
    // its C2SP path as we spell it, served at exactly that path (the
    // current checkpoint's partial tiles must exist), and holding exactly
    // the hashes tlog_tiles computes (Tile::read_data, tile.rs:302-335).
    let http = HttpTiles { fetch };
    for t in tt::Tile::new_tiles(H, 0, size) {
        same_path(t.level(), t.level_index(), t.width(), false);
        let path = c2sp_path(&t);
        let served = fetch(&path).unwrap_or_else(|| panic!("{path} is not served"));
        let want = t.read_data(&mem).expect("read_data");
        assert_eq!(served, want, "{path}: tile content");
        if t.level() == 0 {
            // The entry bundle of the same coordinates.
            let mut b = t;
            b.set_is_data(); // tile.rs:103-106
            same_path(0, b.level_index(), b.width(), true);
            let path = c2sp_path(&b);
            let bytes = fetch(&path).unwrap_or_else(|| panic!("{path} is not served"));
            let got = bundle_entries(&bytes);
            let start = (b.level_index() * u64::from(FULL)) as usize;
            assert_eq!(
                got,
                leaves[start..start + b.width() as usize],
                "{path}: entries"
            );
        }
    }

    // Root recomputed from the served tiles, unauthenticated.
    let raw = RawTiles { tiles: &http, size };
    assert_eq!(
        tt::tree_hash(size, &raw).expect("tree_hash over tiles"),
        root,
        "tiles -> root"
    );

    // Authenticated reading: TileHashReader first recomputes the root from
    // the tiles and refuses them (InconsistentTile) unless it matches
    // (tile.rs:394-547). NB it panics on size 0 (stx empty): guarded above.
    let reader = tt::TileHashReader::new(size, root, &http);
    let mut ours_src = ours::TileHashes::new(ProtoFetch(fetch), size);
    for &n in prove.iter().filter(|&&n| n < size) {
        let leaf = tt::record_hash(&leaves[n as usize]); // SHA-256(0x00 || data), tlog.rs:108-117
        assert_eq!(leaf.0, ours::leaf_hash(&leaves[n as usize]));
        // prove_record (tlog.rs:358-388) / check_record (tlog.rs:470-490).
        let theirs = tt::prove_record(size, n, &reader).expect("prove_record");
        tt::check_record(&theirs, size, root, n, leaf).expect("check_record");
        let mine = ours::prove_inclusion(&mut ours_src, n, size).expect("our proof");
        assert_eq!(arrays(&theirs), mine, "inclusion proof of {n} in {size}");
        ours::verify_inclusion(n, size, &leaf.0, &arrays(&theirs), &root.0)
            .expect("ours accepts theirs");
        tt::check_record(&hashes(&mine), size, root, n, leaf).expect("theirs accepts ours");
        // Negative control: another leaf is not at n.
        let wrong = tt::record_hash(b"not a leaf");
        assert!(tt::check_record(&theirs, size, root, n, wrong).is_err());
    }

    let Some(earlier) = earlier_note else { return };
    let old = open_checkpoint(earlier, pubkey_hex);
    assert_eq!(old.origin(), cp.origin(), "same log");
    let (m, old_root) = (old.size(), *old.hash());
    assert!(m <= size, "the log shrank from {m} to {size}");
    if m == 0 {
        return; // prove_tree/check_tree need 1 <= m (tlog.rs:549-552, 644-647)
    }
    // The earlier root from the entries too.
    assert_eq!(
        tt::tree_hash(m, &mem).expect("tree_hash"),
        old_root,
        "entries -> old root"
    );
    // prove_tree (tlog.rs:538-566) / check_tree (tlog.rs:634-654).
    let theirs = tt::prove_tree(size, m, &reader).expect("prove_tree");
    tt::check_tree(&theirs, size, root, m, old_root).expect("check_tree");
    let mine = ours::prove_consistency(&mut ours_src, m, size).expect("our proof");
    assert_eq!(arrays(&theirs), mine, "consistency proof {m} -> {size}");
    ours::verify_consistency(m, size, &arrays(&theirs), &old_root.0, &root.0)
        .expect("ours accepts theirs");
    tt::check_tree(&hashes(&mine), size, root, m, old_root).expect("theirs accepts ours");
    // Negative control: a different old root is not a prefix.
    let mut forged = old_root;
    forged.0[0] ^= 1;
    assert!(tt::check_tree(&theirs, size, root, m, forged).is_err());
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

/// The checkpoint sigild serves now, or `None` (as log_transparency.rs).
fn served(daemon: &Daemon) -> Option<String> {
    let url = format!("http://{}/log/checkpoint", daemon.http);
    sigil_client::fetch::get_bytes(&url)
        .expect("the HTTP port answers")
        .map(|b| String::from_utf8(b).expect("UTF-8 checkpoint"))
}

/// Waits for a checkpoint of exactly `size` leaves; returns its note.
fn checkpoint_of(daemon: &Daemon, size: u64) -> String {
    let mut last = None;
    let ok = wait_until(Duration::from_secs(20), || {
        last = served(daemon);
        last.as_deref()
            .and_then(|n| sigil_client::receipt_log::parse_checkpoint(n).ok())
            .is_some_and(|c| c.size == size)
    });
    assert!(ok, "no checkpoint of {size} leaves; last served: {last:?}");
    last.expect("a checkpoint")
}

/// The leaves of one chain, from its file, in order.
fn chain_leaves(daemon: &Daemon, chain: &str) -> Vec<Vec<u8>> {
    sigil_tests::chain_receipts(&daemon.chain_path(chain))
        .iter()
        .map(|(_, r)| leaf_data(chain, &sigil_tests::forge::hash_of(r)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn independent_c2sp_implementations_accept_the_served_log() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let daemon = Daemon::start(&data, &[]);
    let key = daemon.active_key();
    let base = format!("http://{}/log", daemon.http);
    let fetch = move |p: &str| -> Option<Vec<u8>> {
        sigil_client::fetch::get_bytes(&format!("{base}/{p}")).expect("the HTTP port answers")
    };

    // One chain, one producer: the log's order is the file's order.
    append_many(&daemon.endpoint, &["interop"], 5, 1).await;
    let leaves = chain_leaves(&daemon, "interop");
    let first = checkpoint_of(&daemon, leaves.len() as u64);
    check_log(&first, &key, &fetch, &leaves, None, &[0, 4, 5]);

    // Past one full tile: a full level-0 tile, a partial one, a level-1
    // tile of one hash, and the first checkpoint's partial tile replaced.
    append_many(&daemon.endpoint, &["interop"], 300, 1).await;
    let leaves = chain_leaves(&daemon, "interop");
    let second = checkpoint_of(&daemon, leaves.len() as u64);
    check_log(
        &second,
        &key,
        &fetch,
        &leaves,
        Some(&first),
        &[0, 1, 4, 5, 255, 256, 257, leaves.len() as u64 - 1],
    );
}

/// No daemon: our tree code and tlog_tiles' agree on every root and every
/// proof of small trees (byte-identical proofs, each verified by the other).
#[test]
fn our_merkle_proofs_match_tlog_tiles_for_small_trees() {
    for size in 1u64..=70 {
        let data: Vec<Vec<u8>> = (0..size)
            .map(|i| format!("leaf {i}").into_bytes())
            .collect();
        let leaves: Vec<ours::Hash> = data.iter().map(|d| ours::leaf_hash(d)).collect();
        let mem = MemHashes::build(&data);
        let root = tt::tree_hash(size, &mem).expect("tree_hash");
        assert_eq!(root.0, ours::root(&leaves), "root of {size}");
        for n in 0..size {
            let theirs = tt::prove_record(size, n, &mem).expect("prove_record");
            let mine = ours::inclusion_proof(n as usize, &leaves).expect("ours");
            assert_eq!(arrays(&theirs), mine, "inclusion {n} in {size}");
            tt::check_record(&hashes(&mine), size, root, n, tt::Hash(leaves[n as usize]))
                .expect("theirs accepts ours");
        }
        for m in 1..=size {
            let old = tt::tree_hash(m, &mem).expect("tree_hash");
            let theirs = tt::prove_tree(size, m, &mem).expect("prove_tree");
            let mine = ours::consistency_proof(m as usize, &leaves).expect("ours");
            assert_eq!(arrays(&theirs), mine, "consistency {m} -> {size}");
            tt::check_tree(&hashes(&mine), size, root, m, old).expect("theirs accepts ours");
            ours::verify_consistency(m, size, &mine, &old.0, &root.0).expect("ours accepts ours");
        }
    }
    paths_agree_on_samples();
}
