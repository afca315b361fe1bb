//! The receipt transparency log's formats: an RFC 6962 (RFC 9162 §2.1)
//! Merkle tree of SHA-256 hashes, its inclusion and consistency proofs,
//! C2SP signed notes and checkpoints, and C2SP tlog-tiles paths. Pure: no
//! I/O, no keys; the daemon stores the tree and signs, verifiers check.
//!
//! A receipt's leaf binds the chain to the receipt:
//! `chain || 0x00 || receipt_hash` (the receipt hash as its lowercase hex
//! text), hashed as every leaf is, `SHA-256(0x00 || leaf)`.

mod checkpoint;
mod note;
mod tile;

pub use checkpoint::Checkpoint;
pub use note::{key_hash, Note, NoteKey, NoteSignature};
pub use tile::{tile_path, TILE_HEIGHT, TILE_WIDTH};

use sha2::{Digest, Sha256};

/// A node or leaf hash.
pub type Hash = [u8; 32];

/// Why a proof or a log document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LogError(pub String);

fn fail<T>(m: impl Into<String>) -> Result<T, LogError> {
    Err(LogError(m.into()))
}

/// The hash of the empty tree: SHA-256 of nothing.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// A leaf's hash: `SHA-256(0x00 || data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

/// An interior node's hash: `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The leaf data of a receipt of `chain`: `chain || 0x00 || receipt_hash`.
/// Chain names hold no NUL, so the split is unambiguous.
pub fn receipt_leaf(chain: &str, receipt_hash: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(chain.len() + 1 + receipt_hash.len());
    v.extend_from_slice(chain.as_bytes());
    v.push(0);
    v.extend_from_slice(receipt_hash.as_bytes());
    v
}

/// The largest power of two smaller than `n` (`n` > 1).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

/// The Merkle tree hash (RFC 6962 MTH) over leaf hashes.
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves {
        [] => empty_root(),
        [one] => *one,
        _ => {
            let k = split(leaves.len());
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// The inclusion proof (RFC 6962 PATH) of leaf `index` in the tree of
/// `leaves`.
pub fn inclusion_proof(index: usize, leaves: &[Hash]) -> Result<Vec<Hash>, LogError> {
    if index >= leaves.len() {
        return fail(format!(
            "leaf {index} is not in a tree of {} leaves",
            leaves.len()
        ));
    }
    let mut proof = Vec::new();
    path(index, leaves, &mut proof);
    Ok(proof)
}

fn path(m: usize, d: &[Hash], out: &mut Vec<Hash>) {
    if d.len() <= 1 {
        return;
    }
    let k = split(d.len());
    if m < k {
        path(m, &d[..k], out);
        out.push(root(&d[k..]));
    } else {
        path(m - k, &d[k..], out);
        out.push(root(&d[..k]));
    }
}

/// The consistency proof (RFC 6962 PROOF) of the tree of the first `m`
/// leaves with the tree of all `leaves`.
pub fn consistency_proof(m: usize, leaves: &[Hash]) -> Result<Vec<Hash>, LogError> {
    if m > leaves.len() {
        return fail(format!(
            "a tree of {m} leaves is not a prefix of one of {}",
            leaves.len()
        ));
    }
    let mut proof = Vec::new();
    if m > 0 {
        subproof(m, leaves, true, &mut proof);
    }
    Ok(proof)
}

fn subproof(m: usize, d: &[Hash], whole: bool, out: &mut Vec<Hash>) {
    if m == d.len() {
        if !whole {
            out.push(root(d));
        }
        return;
    }
    let k = split(d.len());
    if m <= k {
        subproof(m, &d[..k], whole, out);
        out.push(root(&d[k..]));
    } else {
        subproof(m - k, &d[k..], false, out);
        out.push(root(&d[..k]));
    }
}

/// Right-shifts `a` and `b` together until `a`'s lowest bit is set or `a`
/// is 0.
fn shift_to_set(a: &mut u64, b: &mut u64) {
    while *a & 1 == 0 && *a != 0 {
        *a >>= 1;
        *b >>= 1;
    }
}

/// Checks that `leaf` (a leaf hash) is leaf `index` of the tree of `size`
/// leaves whose root is `root` (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), LogError> {
    if index >= size {
        return fail(format!("leaf {index} is not in a tree of {size} leaves"));
    }
    let (mut f, mut s, mut r) = (index, size - 1, *leaf);
    for p in proof {
        if s == 0 {
            return fail("the inclusion proof is too long");
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            if f & 1 == 0 {
                shift_to_set(&mut f, &mut s);
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return fail("the inclusion proof is too short");
    }
    if r != *root {
        return fail(format!(
            "leaf {index} is not in the tree of {size} leaves with this root"
        ));
    }
    Ok(())
}

/// Checks that the tree of `first` leaves with root `first_root` is a
/// prefix of the tree of `second` leaves with root `second_root` (RFC 9162
/// §2.1.4.2). Every tree extends the empty one.
pub fn verify_consistency(
    first: u64,
    second: u64,
    proof: &[Hash],
    first_root: &Hash,
    second_root: &Hash,
) -> Result<(), LogError> {
    if first > second {
        return fail(format!(
            "a tree of {first} leaves cannot be a prefix of one of {second}: the log shrank"
        ));
    }
    if first == second {
        if !proof.is_empty() {
            return fail("a proof between equal sizes must be empty");
        }
        if first_root != second_root {
            return fail(format!(
                "two different roots for a tree of {first} leaves: a split view"
            ));
        }
        return Ok(());
    }
    if first == 0 {
        return if proof.is_empty() {
            Ok(())
        } else {
            fail("a proof from the empty tree must be empty")
        };
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if first.is_power_of_two() {
        path.push(*first_root);
    }
    path.extend_from_slice(proof);
    let Some((start, rest)) = path.split_first() else {
        return fail("the consistency proof is empty");
    };
    let (mut f, mut s) = (first - 1, second - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (*start, *start);
    for c in rest {
        if s == 0 {
            return fail("the consistency proof is too long");
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if f & 1 == 0 {
                shift_to_set(&mut f, &mut s);
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return fail("the consistency proof is too short");
    }
    if fr != *first_root || sr != *second_root {
        return fail(format!(
            "the tree of {second} leaves does not extend the tree of {first}: a split view or \
             a rewritten log"
        ));
    }
    Ok(())
}
