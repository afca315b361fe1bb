//! The transparency log's formats against public reference data: RFC 6962
//! roots and proofs from Certificate Transparency's tests, Go's signed-note
//! example, and a real checkpoint of the Go checksum database verified with
//! the key the Go toolchain pins (tests/vectors/tlog/README.md). Every proof
//! of small trees is also generated and checked both ways, and tampering
//! with any part of a proof or note is refused.

// Test code: an unwrap is an assertion.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sigil_proto::tlog::{
    consistency_proof, inclusion_proof, leaf_hash, root, tile_path, verify_consistency,
    verify_inclusion, Checkpoint, Hash, Note, NoteKey,
};

fn h(s: &str) -> Hash {
    hex::decode(s).unwrap().try_into().unwrap()
}

const LEAVES: [&str; 8] = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
];

const ROOTS: [&str; 9] = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

fn leaf_hashes() -> Vec<Hash> {
    LEAVES
        .iter()
        .map(|l| leaf_hash(&hex::decode(l).unwrap()))
        .collect()
}

#[test]
fn roots_match_rfc6962_reference_trees() {
    let leaves = leaf_hashes();
    for (n, want) in ROOTS.iter().enumerate() {
        assert_eq!(root(&leaves[..n]), h(want), "tree of {n} leaves");
    }
}

#[test]
fn inclusion_proofs_match_the_published_ones_and_verify() {
    let leaves = leaf_hashes();
    let published: [(usize, usize, &[&str]); 4] = [
        (0, 1, &[]),
        (
            0,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            5,
            8,
            &[
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            2,
            3,
            &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
        ),
    ];
    for (i, n, want) in published {
        let proof = inclusion_proof(i, &leaves[..n]).unwrap();
        let want: Vec<Hash> = want.iter().map(|x| h(x)).collect();
        assert_eq!(proof, want, "PATH({i}, D[{n}])");
    }
    for n in 1..=8usize {
        let r = root(&leaves[..n]);
        for i in 0..n {
            let proof = inclusion_proof(i, &leaves[..n]).unwrap();
            verify_inclusion(i as u64, n as u64, &leaves[i], &proof, &r).unwrap();
            // Another leaf, another index, another size, a changed proof:
            // each refused.
            let other = leaves[(i + 1) % 8];
            assert!(verify_inclusion(i as u64, n as u64, &other, &proof, &r).is_err());
            if n > 1 {
                let j = (i + 1) % n;
                assert!(verify_inclusion(j as u64, n as u64, &leaves[i], &proof, &r).is_err());
            }
            // The proof of a smaller tree does not prove inclusion in the
            // next one (a checkpoint binds a size to its root).
            if n < 8 {
                let next = root(&leaves[..=n]);
                assert!(
                    verify_inclusion(i as u64, n as u64 + 1, &leaves[i], &proof, &next).is_err()
                );
            }
            for k in 0..proof.len() {
                let mut bad = proof.clone();
                bad[k][0] ^= 1;
                assert!(verify_inclusion(i as u64, n as u64, &leaves[i], &bad, &r).is_err());
            }
            let mut longer = proof.clone();
            longer.push(r);
            assert!(verify_inclusion(i as u64, n as u64, &leaves[i], &longer, &r).is_err());
        }
        assert!(inclusion_proof(n, &leaves[..n]).is_err());
    }
}

#[test]
fn consistency_proofs_match_the_published_ones_and_verify() {
    let leaves = leaf_hashes();
    let published: [(usize, usize, &[&str]); 4] = [
        (1, 1, &[]),
        (
            1,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            6,
            8,
            &[
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            2,
            5,
            &[
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
    ];
    for (m, n, want) in published {
        let proof = consistency_proof(m, &leaves[..n]).unwrap();
        let want: Vec<Hash> = want.iter().map(|x| h(x)).collect();
        assert_eq!(proof, want, "PROOF({m}, D[{n}])");
    }
    for n in 0..=8usize {
        let second = root(&leaves[..n]);
        for m in 0..=n {
            let first = root(&leaves[..m]);
            let proof = consistency_proof(m, &leaves[..n]).unwrap();
            verify_consistency(m as u64, n as u64, &proof, &first, &second).unwrap();
            if m > 0 && m < n {
                // A different history of the same size, or a changed proof.
                let mut forked = leaves[..m].to_vec();
                forked[m - 1][0] ^= 1;
                let fork_root = root(&forked);
                assert!(
                    verify_consistency(m as u64, n as u64, &proof, &fork_root, &second).is_err()
                );
                for k in 0..proof.len() {
                    let mut bad = proof.clone();
                    bad[k][31] ^= 1;
                    assert!(verify_consistency(m as u64, n as u64, &bad, &first, &second).is_err());
                }
            }
        }
        if n > 0 {
            // The log never shrinks, and one size has one root.
            assert!(verify_consistency(n as u64, n as u64 - 1, &[], &second, &second).is_err());
            let other = root(&leaves[..n - 1]);
            assert!(verify_consistency(n as u64, n as u64, &[], &second, &other).is_err());
        }
    }
}

const PETER_KEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
const PETER_TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                          then you don't know what your problem is.\n";
const PETER_SIG: &str = "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

#[test]
fn the_go_reference_note_verifies_and_a_changed_one_does_not() {
    let key = NoteKey::parse(PETER_KEY).unwrap();
    assert_eq!(key.name, "PeterNeumann");
    assert_eq!(key.hash, 0xc74f20a3);
    assert_eq!(key.encode(), PETER_KEY);
    let msg = format!("{PETER_TEXT}\n{PETER_SIG}");
    let note = Note::parse(&msg).unwrap();
    assert_eq!(note.text, PETER_TEXT);
    note.verify(&key).unwrap();
    assert_eq!(note.to_text(), msg);

    let changed = Note::parse(&msg.replace("cryptography", "cryptographY")).unwrap();
    assert!(changed.verify(&key).is_err());
    // A key of another name or hash finds no signature.
    let other = NoteKey::ed25519("PeterNeumann2", key.public_key).unwrap();
    assert!(note.verify(&other).is_err());
    // Mangled keys are refused.
    assert!(NoteKey::parse(&PETER_KEY.replace("c74f20a3", "c74f20a4")).is_err());
    assert!(NoteKey::parse("PeterNeumann+c74f20a3").is_err());
    assert!(NoteKey::parse(&PETER_KEY[..PETER_KEY.len() - 2]).is_err());
    // Malformed notes are refused.
    assert!(Note::parse(PETER_TEXT).is_err());
    assert!(Note::parse(&format!("{PETER_TEXT}\n")).is_err());
    assert!(Note::parse(&msg.replace('\n', "\r\n")).is_err());
    assert!(Note::parse(msg.trim_end()).is_err());
}

#[test]
fn a_real_go_checksum_database_checkpoint_parses_and_verifies() {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/vectors/tlog/sumdb-6476701.note"),
    )
    .unwrap();
    let key =
        NoteKey::parse("sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8")
            .unwrap();
    let note = Note::parse(&text).unwrap();
    note.verify(&key).unwrap();
    let cp = Checkpoint::parse(&note.text).unwrap();
    assert_eq!(cp.origin, "go.sum database tree");
    assert_eq!(cp.size, 6476701);
    assert_eq!(
        hex::encode(cp.root),
        "99bf102d022cd19d323f90acb6aea0ba3f3ba1759e0bd80433ca158a49a6f569"
    );
    assert_eq!(cp.to_text(), note.text);
    let bumped = Note::parse(&text.replace("6476701", "6476702")).unwrap();
    assert!(bumped.verify(&key).is_err());
}

#[test]
fn checkpoints_round_trip_and_malformed_ones_are_refused() {
    let cp = Checkpoint {
        origin: "host.example/sigil".into(),
        size: 8,
        root: h(ROOTS[8]),
        extensions: vec!["ext one".into()],
    };
    let text = cp.to_text();
    assert_eq!(
        text,
        "host.example/sigil\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\next one\n"
    );
    assert_eq!(Checkpoint::parse(&text).unwrap(), cp);
    for bad in [
        "host.example/sigil\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=",
        "host.example/sigil\n08\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n",
        "host.example/sigil\n-8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n",
        "host.example/sigil\n8\nXcnaeacGWamtVZy3Ad7Zoqudgjqt\n",
        "\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n",
        "host.example/sigil\n8\n",
    ] {
        assert!(Checkpoint::parse(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn tile_paths_follow_tlog_tiles() {
    assert_eq!(tile_path(0, 1234067, 256), "tile/0/x001/x234/067");
    assert_eq!(tile_path(0, 1234067, 8), "tile/0/x001/x234/067.p/8");
    assert_eq!(tile_path(1, 0, 256), "tile/1/000");
    assert_eq!(tile_path(2, 5, 17), "tile/2/005.p/17");
    assert_eq!(tile_path(0, 1000, 256), "tile/0/x001/000");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Trees of any size up to 600 leaves (over two tiles): every generated
    /// inclusion proof and consistency proof verifies.
    #[test]
    fn proofs_of_larger_trees_verify(n in 1usize..600, a in 0usize..600, b in 0usize..600) {
        let leaves: Vec<Hash> = (0..n).map(|i| leaf_hash(&(i as u64).to_be_bytes())).collect();
        let (i, m) = (a % n, b % (n + 1));
        let r = root(&leaves);
        let proof = inclusion_proof(i, &leaves).unwrap();
        proptest::prop_assert!(verify_inclusion(i as u64, n as u64, &leaves[i], &proof, &r).is_ok());
        let c = consistency_proof(m, &leaves).unwrap();
        let first = root(&leaves[..m]);
        proptest::prop_assert!(verify_consistency(m as u64, n as u64, &c, &first, &r).is_ok());
    }
}
