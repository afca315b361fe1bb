//! The receipt log as a verifier reads it from an untrusted server: a
//! signed note and its checkpoint, a tile path, an entry bundle, and
//! inclusion and consistency proofs with arbitrary hashes. Nothing may
//! panic; a tile path that parses names the one tile it spells, and a
//! bundle that parses encodes back to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sigil_proto::tlog::{self, Checkpoint, Hash, Note};

fn hashes(bytes: &[u8]) -> Vec<Hash> {
    bytes
        .chunks_exact(32)
        .filter_map(|c| <Hash>::try_from(c).ok())
        .collect()
}

fuzz_target!(|data: &[u8]| {
    if let Some(text) = sigil_fuzz::text(data) {
        if let Ok(note) = Note::parse(text) {
            let _ = Checkpoint::parse(&note.text);
        }
        let _ = Checkpoint::parse(text);
        if let Some(t) = tlog::parse_tile_path(text) {
            let again = match t {
                tlog::TileRef::Hashes {
                    level,
                    index,
                    width,
                } => tlog::tile_path(level, index, width),
                tlog::TileRef::Entries { index, width } => tlog::entries_path(index, width),
            };
            assert_eq!(again, text, "a tile has one name");
        }
    }
    if let Ok(entries) = tlog::parse_entries(data) {
        let refs: Vec<&[u8]> = entries.iter().map(Vec::as_slice).collect();
        let encoded = tlog::encode_entries(&refs).expect("parsed entries encode");
        assert_eq!(encoded, data, "a bundle encodes back to its bytes");
    }
    // Proof checks on arbitrary sizes, indexes and hashes.
    if data.len() >= 16 {
        let a = u64::from_le_bytes(data[..8].try_into().expect("8 bytes"));
        let b = u64::from_le_bytes(data[8..16].try_into().expect("8 bytes"));
        let rest = hashes(&data[16..]);
        if let Some((root, proof)) = rest.split_first() {
            let _ = tlog::verify_inclusion(a, b, root, proof, root);
            let _ = tlog::verify_consistency(a, b, proof, root, root);
        }
    }
});
