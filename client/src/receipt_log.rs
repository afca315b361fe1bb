//! Reading sigild's receipt log as a verifier: the checkpoint, checked
//! against keys the trust anchor vouches for; the entries, checked against
//! the checkpoint's root; a chain file compared with what the log holds of
//! its chain; one receipt's inclusion proved from the hash tiles; and the
//! consistency of two checkpoints.
//!
//! Trust: a checkpoint counts only when signed by a key the anchor vouches
//! for (the pinned root's lineage, not revoked; or, with a pinned key
//! alone, the keys the chain walk reached from it). Everything else read
//! from the log is checked against that checkpoint's root, so a log server
//! can withhold but not alter what a signed checkpoint covers.

use std::path::PathBuf;

use sigil_proto::tlog::{self, Checkpoint, Hash, Note, NoteKey, TileFetch, TileHashes};

/// Where a log is read from: a directory in the tlog-tiles layout (a
/// daemon's `<data-dir>/log`, or a copy) or its HTTP base URL (the
/// daemon's `http://host:port/log`).
#[derive(Clone, Debug)]
pub enum LogSource {
    /// A directory.
    Dir(PathBuf),
    /// An `http://` base URL.
    Url(String),
}

impl LogSource {
    /// `http://...` is a URL; anything else a directory.
    pub fn parse(s: &str) -> LogSource {
        if s.starts_with("http://") || s.starts_with("https://") {
            LogSource::Url(s.trim_end_matches('/').to_owned())
        } else {
            LogSource::Dir(PathBuf::from(s))
        }
    }
}

impl TileFetch for LogSource {
    fn fetch(&mut self, path: &str) -> Result<Option<Vec<u8>>, tlog::LogError> {
        match self {
            LogSource::Dir(dir) => match std::fs::read(dir.join(path)) {
                Ok(b) => Ok(Some(b)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(tlog::LogError(format!(
                    "reading {}: {e}",
                    dir.join(path).display()
                ))),
            },
            LogSource::Url(base) => crate::fetch::get_bytes(&format!("{base}/{path}"))
                .map_err(|e| tlog::LogError(e.to_string())),
        }
    }
}

/// A checkpoint whose signature was checked.
#[derive(Clone, Debug)]
pub struct Signed {
    /// The note as read.
    pub note: String,
    /// What it commits to.
    pub checkpoint: Checkpoint,
    /// The public key (hex) that signed it.
    pub signer: String,
}

/// Parses a signed checkpoint and checks that one of `keys` (public keys,
/// hex) signed it, under the note key named by its origin.
pub fn check_checkpoint(note_text: &str, keys: &[String]) -> Result<Signed, String> {
    let note = Note::parse(note_text).map_err(|e| format!("checkpoint: {e}"))?;
    let checkpoint = Checkpoint::parse(&note.text).map_err(|e| format!("checkpoint: {e}"))?;
    // sigild never uses such an origin: the same key signs root-role
    // inputs that start with it.
    if checkpoint.origin.starts_with("sigil-") {
        return Err(format!(
            "checkpoint origin {:?} starts with \"sigil-\": not a log origin",
            checkpoint.origin
        ));
    }
    for k in keys {
        let Some(public) = hex::decode(k)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
        else {
            continue;
        };
        let Ok(nk) = NoteKey::ed25519(&checkpoint.origin, public) else {
            continue;
        };
        if note.verify(&nk).is_ok() {
            return Ok(Signed {
                note: note_text.to_owned(),
                checkpoint,
                signer: k.clone(),
            });
        }
    }
    Err(format!(
        "checkpoint of {} (size {}) is not signed by any key the trust anchor vouches for",
        checkpoint.origin, checkpoint.size
    ))
}

/// The log's latest checkpoint, as served (not checked).
pub fn read_checkpoint(src: &mut LogSource) -> Result<String, String> {
    let bytes = src
        .fetch("checkpoint")
        .map_err(|e| e.to_string())?
        .ok_or("the log has no checkpoint")?;
    String::from_utf8(bytes).map_err(|_| "checkpoint is not UTF-8".to_owned())
}

/// What a signed checkpoint commits to, its signatures not checked (one
/// checked before and kept).
pub fn parse_checkpoint(note_text: &str) -> Result<Checkpoint, String> {
    let note = Note::parse(note_text).map_err(|e| format!("checkpoint: {e}"))?;
    Checkpoint::parse(&note.text).map_err(|e| format!("checkpoint: {e}"))
}

/// Reads the log's latest checkpoint and checks its signature.
pub fn latest(src: &mut LogSource, keys: &[String]) -> Result<Signed, String> {
    check_checkpoint(&read_checkpoint(src)?, keys)
}

/// Every entry of the tree a checkpoint commits to, checked against its
/// root.
pub fn entries(src: &mut LogSource, cp: &Checkpoint) -> Result<Vec<Vec<u8>>, String> {
    let entries = tlog::read_entries(src, cp.size).map_err(|e| format!("log entries: {e}"))?;
    let leaves: Vec<Hash> = entries.iter().map(|e| tlog::leaf_hash(e)).collect();
    if tlog::root(&leaves) != cp.root {
        return Err(format!(
            "the log's entries do not give the root of its checkpoint (size {}): the log \
             serves entries no checkpoint signed",
            cp.size
        ));
    }
    Ok(entries)
}

/// The receipt hashes the log holds for `chain`, in order.
pub fn chain_receipts(entries: &[Vec<u8>], chain: &str) -> Vec<String> {
    let mut prefix = chain.as_bytes().to_vec();
    prefix.push(0);
    entries
        .iter()
        .filter_map(|e| e.strip_prefix(prefix.as_slice()))
        .map(|h| String::from_utf8_lossy(h).into_owned())
        .collect()
}

/// How a chain file stands against the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Coverage {
    /// Receipts of the file the log holds (its prefix).
    pub logged: usize,
    /// Receipts of the file after them, not in the checkpoint yet.
    pub after: usize,
}

/// Compares a chain file's receipts (hashes in file order) with the log's
/// receipts of its chain: the log's must be a prefix of the file's. A file
/// cut at the end, or one that differs from the log, is refused.
pub fn compare(file: &[String], logged: &[String], chain: &str) -> Result<Coverage, String> {
    if let Some(i) = file.iter().zip(logged).position(|(f, l)| f != l) {
        return Err(format!(
            "FORK: receipt {} of the file ({}) is not the log's receipt {} of chain {chain} ({})",
            i + 1,
            file[i],
            i + 1,
            logged[i]
        ));
    }
    if logged.len() > file.len() {
        return Err(format!(
            "TRUNCATED: the log holds {} more receipt(s) of chain {chain} than the file \
             (the file has {}, the log {}): the file was cut at the end",
            logged.len() - file.len(),
            file.len(),
            logged.len()
        ));
    }
    Ok(Coverage {
        logged: logged.len(),
        after: file.len() - logged.len(),
    })
}

/// Where a receipt is in the log.
#[derive(Clone, Debug)]
pub struct Included {
    /// Its leaf index.
    pub index: u64,
    /// The chain it belongs to.
    pub chain: String,
}

/// Proves that the receipt with hash `receipt_hash` is in the tree of `cp`:
/// its entry found, then an inclusion proof built from the hash tiles and
/// checked against the checkpoint's root.
pub fn prove(src: &mut LogSource, cp: &Checkpoint, receipt_hash: &str) -> Result<Included, String> {
    let entries = tlog::read_entries(src, cp.size).map_err(|e| format!("log entries: {e}"))?;
    let found = entries.iter().enumerate().find_map(|(i, e)| {
        let (chain, hash) = e.split_at(e.iter().position(|b| *b == 0)?);
        (&hash[1..] == receipt_hash.as_bytes()).then_some((i, chain, e))
    });
    let Some((i, chain, entry)) = found else {
        return Err(format!(
            "receipt {receipt_hash} is not in the log's checkpoint (size {})",
            cp.size
        ));
    };
    let index = i as u64;
    let mut hashes = TileHashes::new(src.clone(), cp.size);
    let proof = tlog::prove_inclusion(&mut hashes, index, cp.size).map_err(|e| e.to_string())?;
    tlog::verify_inclusion(index, cp.size, &tlog::leaf_hash(entry), &proof, &cp.root)
        .map_err(|e| format!("inclusion of receipt {receipt_hash}: {e}"))?;
    Ok(Included {
        index,
        chain: String::from_utf8_lossy(chain).into_owned(),
    })
}

/// Checks that `new` extends `old` (same origin, a consistency proof built
/// from `new`'s tiles): anything else is a split view or a rollback.
pub fn consistent(src: &mut LogSource, old: &Checkpoint, new: &Checkpoint) -> Result<(), String> {
    if old.origin != new.origin {
        return Err(format!(
            "the log's origin changed from {} to {}",
            old.origin, new.origin
        ));
    }
    if new.size < old.size {
        return Err(format!(
            "ROLLBACK: the log shrank from {} to {} leaves",
            old.size, new.size
        ));
    }
    let mut hashes = TileHashes::new(src.clone(), new.size);
    let proof =
        tlog::prove_consistency(&mut hashes, old.size, new.size).map_err(|e| e.to_string())?;
    tlog::verify_consistency(old.size, new.size, &proof, &old.root, &new.root).map_err(|e| {
        format!(
            "SPLIT VIEW: checkpoint {} does not extend checkpoint {}: {e}",
            new.size, old.size
        )
    })
}
