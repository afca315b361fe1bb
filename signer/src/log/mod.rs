//! The receipt transparency log: one RFC 6962 Merkle tree over every
//! receipt of every chain (leaf `chain || 0x00 || receipt_hash`), stored
//! in the C2SP tlog-tiles layout under `<data-dir>/log`, with C2SP
//! checkpoints signed in the token by the chain key.
//!
//! Trust: a checkpoint is a statement by the key the chains are signed
//! with, which the pinned root vouches for through the directory; what it
//! adds is that the history is one: a chain cut at the end, or shown
//! differently to two auditors, contradicts a checkpoint (see `sigil
//! verify chain --log` and `sigil log monitor`). The chain key signs 32-byte
//! digests and root-role inputs that start with `sigil-`; a note is always
//! longer than 32 bytes and its origin may not start with `sigil-`, so no
//! note is ever the message of another signature.
//!
//! Order of durability: a batch's receipts join the tree in memory only
//! after the chain file's fsync; the tiles of a size are fsynced before a
//! checkpoint of that size is signed; the checkpoint and each chain's
//! position are written together before the checkpoint is served. After a
//! crash the tree is rebuilt at the last checkpoint and each chain's
//! receipts after its position are logged again from the chain file, so
//! the next checkpoint extends every one served and no durable receipt is
//! missing.

mod files;
mod seal;
mod tree;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use sigil_proto::tlog::{self, Checkpoint, Note, NoteKey, TileRef, TILE_WIDTH};

use crate::counters::Counters;
use crate::keyring::Keyring;
use crate::Error;
pub use files::log_dir;
pub use seal::{Seal, SEAL_TYPE};
pub use tree::Position;
use tree::{entries_at, Tree};

/// The log's settings (`[log]`).
#[derive(Clone, Debug)]
pub struct LogSettings {
    /// The log's identity, the first line of every checkpoint.
    pub origin: String,
    /// The origin was configured, not the default: a log under another
    /// origin is refused instead of kept.
    pub origin_configured: bool,
    /// Shortest time between two checkpoints.
    pub checkpoint_seconds: u64,
}

/// Checks an origin: printable ASCII without spaces or `+` (it names the
/// note key too), not starting with `sigil-` (the prefix of the root
/// role's signing inputs, which the same key signs).
pub fn check_origin(origin: &str) -> Result<(), Error> {
    let printable = origin
        .bytes()
        .all(|b| (0x21..0x7f).contains(&b) && b != b'+');
    if origin.is_empty() || !printable || origin.starts_with("sigil-") {
        return Err(Error::Config(format!(
            "log.origin {origin:?} must be printable ASCII without spaces or '+' and may not \
             start with \"sigil-\" (e.g. \"host.example/sigil\")"
        )));
    }
    Ok(())
}

/// The latest checkpoint served.
#[derive(Clone, Debug)]
pub struct Published {
    /// The signed note.
    pub note: String,
    /// Its tree size.
    pub size: u64,
    /// Each chain's last receipt in it.
    pub chains: Arc<std::collections::BTreeMap<String, Position>>,
}

/// The daemon's receipt log.
pub struct ReceiptLog {
    dir: PathBuf,
    settings: LogSettings,
    tree: Mutex<Tree>,
    published: RwLock<Option<Arc<Published>>>,
    /// Partial tiles written, by (level or `None` for bundles, index):
    /// removed once the full tile is covered by a checkpoint.
    partials: Mutex<BTreeSet<(Option<u8>, u64, u64)>>,
    /// One checkpoint at a time.
    signing: Mutex<()>,
    /// Seals issued, by chain.
    issued: Mutex<seal::Issued>,
}

impl ReceiptLog {
    /// Opens (or creates) the log under `data_dir`: the tree at its last
    /// checkpoint, tiles written after it removed.
    pub fn open(data_dir: &Path, mut settings: LogSettings) -> Result<ReceiptLog, Error> {
        check_origin(&settings.origin)?;
        let dir = log_dir(data_dir);
        if !dir.is_dir() {
            std::fs::create_dir(&dir)
                .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
            crate::store::sync_parent(&dir)?;
        }
        let loaded = files::load(&dir)?;
        if let Some(l) = loaded
            .as_ref()
            .filter(|l| l.parsed.origin != settings.origin)
        {
            if settings.origin_configured {
                return Err(Error::Config(format!(
                    "the receipt log in {} has origin {:?}, the configuration says {:?}: a \
                     log keeps its origin (set [log] origin back, or move {} aside to start a \
                     new log)",
                    dir.display(),
                    l.parsed.origin,
                    settings.origin,
                    dir.display()
                )));
            }
            // The default follows the hostname, which a redeployment may
            // change; the log keeps the origin it was started with.
            tracing::info!(origin = %l.parsed.origin, "the receipt log keeps its origin");
            settings.origin.clone_from(&l.parsed.origin);
        }
        let size = loaded.as_ref().map_or(0, |l| l.parsed.size);
        let removed = files::remove_unsigned(&dir, size)?;
        if removed > 0 {
            tracing::warn!(
                tiles = removed,
                size,
                "removed log tiles written after the last checkpoint"
            );
        }
        let (tree, published) = match loaded {
            Some(l) => {
                let chains = Arc::new(l.tree.chains.clone());
                let published = Published {
                    note: l.checkpoint,
                    size,
                    chains,
                };
                (l.tree, Some(Arc::new(published)))
            }
            None => (Tree::default(), None),
        };
        crate::metrics::get()
            .log_size
            .store(size, std::sync::atomic::Ordering::Relaxed);
        Ok(ReceiptLog {
            dir,
            settings,
            tree: Mutex::new(tree),
            published: RwLock::new(published),
            partials: Mutex::new(BTreeSet::new()),
            signing: Mutex::new(()),
            issued: Mutex::new(seal::Issued::new()),
        })
    }

    /// Logs durable receipts of `chain` (receipt hashes, in chain order),
    /// the next after its last one in the log.
    pub fn append(&self, chain: &str, hashes: &[String]) {
        if hashes.is_empty() {
            return;
        }
        let mut tree = self.tree.lock().unwrap_or_else(PoisonError::into_inner);
        tree.append(chain, hashes);
    }

    /// Logs the receipts of `chain`'s file (every receipt hash, in order)
    /// that the log lacks: those a crash kept out of it. A file that does
    /// not continue what the log holds of the chain is reported, and
    /// nothing of it is logged.
    pub fn catch_up(&self, chain: &str, file: &[String]) {
        let mut tree = self.tree.lock().unwrap_or_else(PoisonError::into_inner);
        match tree.catch_up(chain, file) {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                chain,
                receipts = n,
                "logged receipts a restart found missing from the log"
            ),
            Err(had) => tracing::error!(chain, log_receipts = had.count, log_last = %had.hash,
                file_receipts = file.len(),
                "the chain file does not continue what the receipt log holds of it (replaced or \
                 cut outside sigild); the log keeps its history and verifiers with --log will \
                 report the fork"),
        }
    }

    /// The latest checkpoint served.
    pub fn published(&self) -> Option<Arc<Published>> {
        self.published
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Signs a checkpoint of the tree as it is, when it grew since the last
    /// one: tiles made durable first, then the note signed in the token by
    /// `key_name`'s signing version, then the state written, then served.
    /// Blocking. Returns the new size, or `None` when nothing was signed.
    pub fn checkpoint(
        &self,
        keyring: &Keyring,
        counters: &Counters,
        key_name: &str,
    ) -> Result<Option<u64>, Error> {
        let _one = self.signing.lock().unwrap_or_else(PoisonError::into_inner);
        let before = self.published().map_or(0, |p| p.size);
        let snap = self
            .tree
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if snap.size == before {
            return Ok(None);
        }
        let written = files::files_of(&snap)?;
        files::write_durable(&self.dir, &written)?;
        {
            // Those tiles are on disk: memory keeps only what came after.
            let mut tree = self.tree.lock().unwrap_or_else(PoisonError::into_inner);
            tree.full.drain(..snap.full.len());
        }
        self.note_partials(&snap);
        crate::failpoint::hit("log.tiles_written");
        let text = Checkpoint {
            origin: self.settings.origin.clone(),
            size: snap.size,
            root: snap.root(),
            extensions: Vec::new(),
        }
        .to_text();
        let note = sign_note(keyring, counters, key_name, &self.settings.origin, &text)?;
        crate::failpoint::hit("log.checkpoint_signed");
        let state = files::State {
            checkpoint: note.clone(),
            chains: snap.chains,
        };
        files::save(&self.dir, &state)?;
        *self
            .published
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(Published {
            note,
            size: snap.size,
            chains: Arc::new(state.chains),
        }));
        let m = crate::metrics::get();
        m.log_size
            .store(snap.size, std::sync::atomic::Ordering::Relaxed);
        m.log_checkpoints
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.remove_covered_partials(snap.size);
        Ok(Some(snap.size))
    }

    fn note_partials(&self, snap: &Tree) {
        let mut p = self.partials.lock().unwrap_or_else(PoisonError::into_inner);
        for (level, hashes) in snap.levels.iter().enumerate() {
            if !hashes.is_empty() {
                let index = entries_at(level, snap.size) / TILE_WIDTH;
                p.insert((Some(level as u8), index, hashes.len() as u64));
            }
        }
        if !snap.entries.is_empty() {
            p.insert((None, snap.size / TILE_WIDTH, snap.entries.len() as u64));
        }
    }

    /// Partial tiles whose full tile a checkpoint now covers are no longer
    /// needed: a reader of an older checkpoint takes the full tile's prefix.
    fn remove_covered_partials(&self, size: u64) {
        let mut p = self.partials.lock().unwrap_or_else(PoisonError::into_inner);
        p.retain(|(level, index, width)| {
            let n = entries_at(level.map_or(0, usize::from), size);
            if n < (index + 1) * TILE_WIDTH {
                return true;
            }
            let path = match level {
                Some(l) => tlog::tile_path(*l, *index, *width),
                None => tlog::entries_path(*index, *width),
            };
            let _ = std::fs::remove_file(self.dir.join(path));
            false
        });
    }

    /// A tile or bundle a checkpoint served covers, by its tlog-tiles path
    /// (`tile/...`); `None` for anything else (no file outside the tiles,
    /// no tile past the last checkpoint).
    pub fn read_tile(&self, path: &str) -> Option<Vec<u8>> {
        let size = self.published()?.size;
        let (n, index, width) = match tlog::parse_tile_path(path)? {
            TileRef::Hashes {
                level,
                index,
                width,
            } => (entries_at(usize::from(level), size), index, width),
            TileRef::Entries { index, width } => (size, index, width),
        };
        let covered = index
            .checked_mul(TILE_WIDTH)
            .and_then(|start| start.checked_add(width))
            .is_some_and(|end| end <= n);
        if !covered {
            return None;
        }
        std::fs::read(self.dir.join(path)).ok()
    }

    /// Shortest time between two checkpoints.
    pub fn checkpoint_every(&self) -> Duration {
        Duration::from_secs(self.settings.checkpoint_seconds.max(1))
    }
}

/// Signs checkpoint `text` as a C2SP note named `origin`, in the token, by
/// the signing version of `key_name` (refused when it may not sign now).
fn sign_note(
    keyring: &Keyring,
    counters: &Counters,
    key_name: &str,
    origin: &str,
    text: &str,
) -> Result<String, Error> {
    let key = keyring.signing_key(key_name).ok_or_else(|| {
        Error::Unavailable(format!("no version of {key_name} may sign a checkpoint"))
    })?;
    keyring.may_sign(&key)?;
    let public: [u8; 32] = hex::decode(&key.public_hex)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| Error::Internal(format!("public key of {} is not 32 bytes", key.id)))?;
    let internal = |e: tlog::LogError| Error::Internal(format!("checkpoint note: {e}"));
    // Everything that can be refused is, before the token is asked.
    let note_key = NoteKey::ed25519(origin, public).map_err(internal)?;
    let mut note = Note::unsigned(text).map_err(internal)?;
    let backend = keyring.backend();
    let sig = backend.sign(&key.id, text.as_bytes())?;
    crate::chain::check_signature(
        backend.as_ref(),
        &key,
        text.as_bytes(),
        &sigil_proto::sig::encode(&sig.0),
    )?;
    counters.count(&key.id, 1);
    note.add_signature(&note_key, &sig.0);
    Ok(note.to_text())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_origin_that_could_collide_with_another_signed_message_is_refused() {
        assert!(check_origin("host.example/sigil").is_ok());
        for bad in [
            "",
            "sigil-root-v1",
            "sigil-directory-v1/x",
            "a+b",
            "two words",
            "line\nbreak",
            "caf\u{e9}",
        ] {
            let e = check_origin(bad).expect_err(bad).to_string();
            assert!(e.contains("log.origin"), "{bad}: {e}");
        }
    }
}
