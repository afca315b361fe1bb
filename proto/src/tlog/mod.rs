//! The receipt transparency log's formats: an RFC 6962 (RFC 9162 §2.1)
//! Merkle tree of SHA-256 hashes, its inclusion and consistency proofs,
//! C2SP signed notes and checkpoints, and C2SP tlog-tiles paths, entry
//! bundles and reading the tree from tiles. Pure: no I/O, no keys; the
//! daemon stores the tree and signs, verifiers check, and reading a file
//! is a trait the caller implements ([`TileFetch`]).
//!
//! A receipt's leaf binds the chain to the receipt:
//! `chain || 0x00 || receipt_hash` (the receipt hash as its lowercase hex
//! text), hashed as every leaf is, `SHA-256(0x00 || leaf)`.

mod checkpoint;
mod note;
mod tile;
mod tiles;

pub use checkpoint::Checkpoint;
pub use note::{key_hash, Note, NoteKey, NoteSignature};
pub use tile::{parse_tile_path, tile_path, TileRef, TILE_HEIGHT, TILE_WIDTH};
pub use tiles::{
    encode_entries, entries_path, parse_entries, read_entries, tile_width, TileFetch, TileHashes,
};

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

/// Hashes of perfect subtrees, from wherever the tree is kept: a slice of
/// every leaf hash ([`Leaves`]) or a log's hash tiles ([`TileHashes`]).
/// Roots and proofs need nothing else, so a verifier computes them for a
/// checkpoint's size without holding every leaf.
pub trait HashSource {
    /// The hash of the perfect subtree of height `height` (2^height leaves)
    /// whose first leaf is `index << height`.
    fn subtree(&mut self, height: u8, index: u64) -> Result<Hash, LogError>;
}

/// A slice of all leaf hashes is a [`HashSource`].
pub struct Leaves<'a>(pub &'a [Hash]);

impl HashSource for Leaves<'_> {
    fn subtree(&mut self, height: u8, index: u64) -> Result<Hash, LogError> {
        let size = self.0.len() as u64;
        match subtree_leaves(height, index) {
            // end <= size = len, so both ends fit a usize and index the slice.
            Some((start, end)) if end <= size => Ok(root(&self.0[start as usize..end as usize])),
            _ => fail(outside(height, index, size)),
        }
    }
}

/// The leaves `[start, end)` under the perfect subtree of height `height`
/// at `index`; None past 2^64.
fn subtree_leaves(height: u8, index: u64) -> Option<(u64, u64)> {
    let n = 1u64.checked_shl(height.into())?;
    let start = index.checked_mul(n)?;
    Some((start, start.checked_add(n)?))
}

fn outside(height: u8, index: u64, size: u64) -> String {
    format!(
        "the subtree of height {height} at index {index} is not inside the tree of {size} leaves"
    )
}

/// The largest power of two smaller than `n` (`n` > 1).
fn split(n: u64) -> u64 {
    1 << (63 - (n - 1).leading_zeros())
}

/// The Merkle tree hash (RFC 6962 MTH) over leaf hashes.
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves {
        [] => empty_root(),
        [one] => *one,
        _ => {
            let k = split(leaves.len() as u64) as usize;
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// The inclusion proof (RFC 6962 PATH) of leaf `index` in the tree of
/// `leaves`.
pub fn inclusion_proof(index: usize, leaves: &[Hash]) -> Result<Vec<Hash>, LogError> {
    prove_inclusion(&mut Leaves(leaves), index as u64, leaves.len() as u64)
}

/// The consistency proof (RFC 6962 PROOF) of the tree of the first `m`
/// leaves with the tree of all `leaves`.
pub fn consistency_proof(m: usize, leaves: &[Hash]) -> Result<Vec<Hash>, LogError> {
    prove_consistency(&mut Leaves(leaves), m as u64, leaves.len() as u64)
}

/// Root of the tree of the first `size` leaves.
pub fn tree_root(src: &mut impl HashSource, size: u64) -> Result<Hash, LogError> {
    if size == 0 {
        return Ok(empty_root());
    }
    range_root(src, 0, size)
}

/// MTH of the `len` (> 0) leaves from `start`. RFC 6962's splits keep
/// `start` a multiple of the range's next power of two, so every perfect
/// range met here is one subtree the source holds.
fn range_root(src: &mut impl HashSource, start: u64, len: u64) -> Result<Hash, LogError> {
    if len.is_power_of_two() && start.is_multiple_of(len) {
        let height = len.trailing_zeros();
        // height < 64, so it fits a u8.
        return src.subtree(height as u8, start >> height);
    }
    let k = split(len);
    let left = range_root(src, start, k)?;
    let right = range_root(src, start + k, len - k)?;
    Ok(node_hash(&left, &right))
}

/// Inclusion proof (RFC 6962 PATH) of leaf `index` in the tree of `size`
/// leaves.
pub fn prove_inclusion(
    src: &mut impl HashSource,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, LogError> {
    if index >= size {
        return fail(format!("leaf {index} is not in a tree of {size} leaves"));
    }
    let mut proof = Vec::new();
    path(src, index, 0, size, &mut proof)?;
    Ok(proof)
}

/// PATH(m, D[start..start + n]), appended to `out` leaf end first.
fn path(
    src: &mut impl HashSource,
    m: u64,
    start: u64,
    n: u64,
    out: &mut Vec<Hash>,
) -> Result<(), LogError> {
    if n <= 1 {
        return Ok(());
    }
    let k = split(n);
    if m < k {
        path(src, m, start, k, out)?;
        out.push(range_root(src, start + k, n - k)?);
    } else {
        path(src, m - k, start + k, n - k, out)?;
        out.push(range_root(src, start, k)?);
    }
    Ok(())
}

/// Consistency proof (RFC 6962 PROOF) between trees of `first` and
/// `second` leaves.
pub fn prove_consistency(
    src: &mut impl HashSource,
    first: u64,
    second: u64,
) -> Result<Vec<Hash>, LogError> {
    if first > second {
        return fail(format!(
            "a tree of {first} leaves is not a prefix of one of {second}"
        ));
    }
    let mut proof = Vec::new();
    if first > 0 {
        subproof(src, first, 0, second, true, &mut proof)?;
    }
    Ok(proof)
}

/// SUBPROOF(m, D[start..start + n], whole), appended to `out`.
fn subproof(
    src: &mut impl HashSource,
    m: u64,
    start: u64,
    n: u64,
    whole: bool,
    out: &mut Vec<Hash>,
) -> Result<(), LogError> {
    if m == n {
        if !whole {
            out.push(range_root(src, start, n)?);
        }
        return Ok(());
    }
    let k = split(n);
    if m <= k {
        subproof(src, m, start, k, whole, out)?;
        out.push(range_root(src, start + k, n - k)?);
    } else {
        subproof(src, m - k, start + k, n - k, false, out)?;
        out.push(range_root(src, start, k)?);
    }
    Ok(())
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
