//! Seal entries in a chain file (`sigil.checkpoint` recorder entries):
//! each holds a checkpoint of the receipt log, signed by the chain key, the
//! leaf of one receipt of this file with its inclusion proof, and a
//! consistency proof from the file's previous seal. Checked without the
//! log: every seal's checkpoint is signed by a key the anchor vouches for,
//! names a receipt that is in this file before it, proves that receipt is
//! in the checkpoint's tree, and extends the seal before it; what follows
//! the last seal is reported as unsealed.

use std::collections::HashMap;

use serde_json::Value;
use sigil_proto::chain::entries;
use sigil_proto::receipt::{self, Entry};
use sigil_proto::tlog::{self, Hash};

use crate::receipt_log;

/// The recorder entry type of a seal.
pub const SEAL_TYPE: &str = "sigil.checkpoint";

/// What a chain file's seals cover.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sealed {
    /// Seal entries checked.
    pub seals: usize,
    /// Receipts up to and including the last one a seal names.
    pub through: usize,
    /// Seals signed by a revoked version, not counted.
    pub revoked: usize,
    /// Every receipt hash of the file, in order (what `--log` compares).
    pub hashes: Vec<String>,
}

impl Sealed {
    /// Receipts after the last seal.
    pub fn unsealed(&self) -> usize {
        self.hashes.len() - self.through
    }
}

fn hashes(v: Option<&Value>, what: &str) -> Result<Vec<Hash>, String> {
    let Some(Value::Array(items)) = v else {
        return Err(format!("{what} is not a list"));
    };
    items
        .iter()
        .map(|h| {
            h.as_str()
                .and_then(|s| hex::decode(s).ok())
                .and_then(|b| <Hash>::try_from(b).ok())
                .ok_or_else(|| format!("{what} holds something that is not a 32-byte hex hash"))
        })
        .collect()
}

/// Checks every seal entry of chain `chain`'s file `text` against `keys`
/// (public keys, hex, that may sign the log's checkpoints). A seal signed
/// by one of `revoked` (versions the anchor revoked since) vouches for
/// nothing and is skipped, and the seal after it is not held to it; one
/// signed by any other key is refused.
pub fn check(
    text: &str,
    chain: &str,
    keys: &[String],
    revoked: &[String],
) -> Result<Sealed, String> {
    let mut at: HashMap<String, usize> = HashMap::new();
    let mut out = Sealed::default();
    // The seal before: none yet, one skipped (`Some(None)`), or checked.
    let mut prev: Option<Option<(u64, Hash)>> = None;
    for line in entries(text) {
        let n = line.number;
        match receipt::parse_entry(line.text) {
            Ok(Entry::Receipt(r)) => {
                let h = r.hash().map_err(|e| format!("line {n}: {e}"))?;
                at.insert(h.clone(), out.hashes.len());
                out.hashes.push(h);
            }
            Ok(Entry::Other { kind, detail }) if kind == SEAL_TYPE => {
                let fail = |why: String| format!("line {n}: seal: {why}");
                let d = detail.unwrap_or_default();
                let note = d["note"].as_str().ok_or_else(|| fail("no note".into()))?;
                let cp = match receipt_log::check_checkpoint(note, keys) {
                    Ok(s) => s.checkpoint,
                    Err(_) if receipt_log::check_checkpoint(note, revoked).is_ok() => {
                        out.revoked += 1;
                        prev = Some(None);
                        continue;
                    }
                    Err(e) => return Err(fail(e)),
                };
                let hash = d["receipt_hash"].as_str().unwrap_or("");
                let Some(&pos) = at.get(hash) else {
                    return Err(fail(format!(
                        "it commits to receipt {hash}, which is not in this file before it: FORK"
                    )));
                };
                let index = d["leaf_index"]
                    .as_u64()
                    .ok_or_else(|| fail("no leaf_index".into()))?;
                let inclusion = hashes(d.get("inclusion"), "inclusion").map_err(fail)?;
                let leaf = tlog::leaf_hash(&tlog::receipt_leaf(chain, hash));
                tlog::verify_inclusion(index, cp.size, &leaf, &inclusion, &cp.root)
                    .map_err(|e| fail(format!("receipt {hash} of chain {chain}: {e}")))?;
                let prior = d["prior_size"].as_u64();
                match (prev, prior) {
                    (None, None) | (Some(None), _) => {}
                    (Some(Some((size, root))), Some(p)) if p == size => {
                        let proof = hashes(d.get("consistency"), "consistency").map_err(fail)?;
                        tlog::verify_consistency(size, cp.size, &proof, &root, &cp.root)
                            .map_err(|e| fail(format!("SPLIT VIEW with the seal before: {e}")))?;
                    }
                    (Some(Some((size, _))), p) => {
                        return Err(fail(format!(
                            "it follows the seal of size {size} but names {p:?} as the one before \
                             it: a seal was removed or moved"
                        )))
                    }
                    (None, Some(p)) => {
                        return Err(fail(format!(
                            "it names a seal of size {p} before it that the file does not hold: a \
                             seal was removed"
                        )))
                    }
                }
                if pos + 1 < out.through {
                    return Err(fail(format!(
                        "it seals receipt {} after a seal of receipt {}: seals only go forward",
                        pos + 1,
                        out.through
                    )));
                }
                out.through = pos + 1;
                out.seals += 1;
                prev = Some(Some((cp.size, cp.root)));
            }
            // Other entries and lines the chain walk judged.
            _ => {}
        }
    }
    Ok(out)
}
