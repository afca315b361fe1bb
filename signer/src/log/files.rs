//! The log on disk, under `<data-dir>/log`: the C2SP tlog-tiles layout
//! (`checkpoint`, `tile/<L>/<N>[.p/<W>]`, `tile/entries/<N>[.p/<W>]`),
//! which `sigil verify --log DIR` reads as it is, and `state.json`: the
//! last checkpoint signed and, at its size, each chain's last receipt in
//! the log, so a restart knows which receipts of the chain files the log
//! still lacks.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sigil_proto::tlog::{self, Checkpoint, Hash, Note, TILE_WIDTH};

use super::tree::{entries_at, Full, Position, Tree};
use crate::store::write_atomic;
use crate::Error;

/// The durable state that goes with a checkpoint.
#[derive(Serialize, Deserialize)]
pub(super) struct State {
    /// The signed checkpoint, as served.
    pub checkpoint: String,
    /// Each chain's last receipt in the tree of that checkpoint.
    pub chains: BTreeMap<String, Position>,
}

/// A tile or bundle to write: its path under the log dir and its bytes.
pub(super) struct TileFile {
    pub path: String,
    pub bytes: Vec<u8>,
}

fn hashes_bytes(hashes: &[Hash]) -> Vec<u8> {
    hashes.concat()
}

fn entries_bytes(entries: &[Vec<u8>]) -> Result<Vec<u8>, Error> {
    let refs: Vec<&[u8]> = entries.iter().map(Vec::as_slice).collect();
    tlog::encode_entries(&refs).map_err(|e| Error::Internal(format!("entry bundle: {e}")))
}

/// The files that make the tree of `tree.size` leaves readable: the full
/// tiles completed since the last write, and the partial tile of every
/// level (and the partial bundle) at exactly this size.
pub(super) fn files_of(tree: &Tree) -> Result<Vec<TileFile>, Error> {
    let mut out = Vec::new();
    for f in &tree.full {
        out.push(match f {
            Full::Hashes {
                level,
                index,
                hashes,
            } => TileFile {
                path: tlog::tile_path(*level, *index, TILE_WIDTH),
                bytes: hashes_bytes(hashes),
            },
            Full::Entries { index, entries } => TileFile {
                path: tlog::entries_path(*index, TILE_WIDTH),
                bytes: entries_bytes(entries)?,
            },
        });
    }
    for (level, hashes) in tree.levels.iter().enumerate() {
        if !hashes.is_empty() {
            let index = entries_at(level, tree.size) / TILE_WIDTH;
            out.push(TileFile {
                path: tlog::tile_path(level as u8, index, hashes.len() as u64),
                bytes: hashes_bytes(hashes),
            });
        }
    }
    if !tree.entries.is_empty() {
        out.push(TileFile {
            path: tlog::entries_path(tree.size / TILE_WIDTH, tree.entries.len() as u64),
            bytes: entries_bytes(&tree.entries)?,
        });
    }
    Ok(out)
}

/// Writes `files` under `dir`, each replaced whole (temp file, rename),
/// then makes all of them durable with one `syncfs` of the log's
/// filesystem: one journal commit, where an fsync per tile (a hundred a
/// second under load) queued the chains' own fdatasyncs behind them.
/// Until the syncfs returns nothing covers these files: a crash before it
/// leaves tiles past the last checkpoint, which the next start removes.
pub(super) fn write_durable(dir: &Path, files: &[TileFile]) -> Result<(), Error> {
    let mut dirs = BTreeSet::new();
    for f in files {
        let path = dir.join(&f.path);
        if let Some(parent) = path.parent() {
            if dirs.insert(parent.to_path_buf()) {
                create_dirs(dir, parent)?;
            }
        }
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, &f.bytes)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    }
    sync_fs(dir)
}

/// `syncfs(2)` of the filesystem holding `dir`: every write to it so far,
/// data and metadata, is durable on return (Linux reports writeback errors
/// through it since 5.8).
fn sync_fs(dir: &Path) -> Result<(), Error> {
    use std::os::unix::io::AsRawFd;
    let d =
        std::fs::File::open(dir).map_err(|e| Error::io(format!("opening {}", dir.display()), e))?;
    // SAFETY: syncfs reads nothing from us but a descriptor we own, open
    // for the duration of the call.
    if unsafe { libc::syncfs(d.as_raw_fd()) } != 0 {
        return Err(Error::io(
            format!("syncing the filesystem of {}", dir.display()),
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// Creates `path` and any missing parents up to `root` (made durable by
/// the syncfs that follows).
fn create_dirs(root: &Path, path: &Path) -> Result<(), Error> {
    if path.is_dir() || path == root {
        return Ok(());
    }
    if let Some(parent) = path.parent() {
        create_dirs(root, parent)?;
    }
    match std::fs::create_dir(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Error::io(format!("creating {}", path.display()), e)),
    }
}

/// Writes the state, then the plain `checkpoint` file beside it (the one
/// tlog-tiles readers look for); the state is what a restart trusts.
pub(super) fn save(dir: &Path, state: &State) -> Result<(), Error> {
    let json = serde_json::to_vec(state).map_err(|e| Error::Internal(format!("log state: {e}")))?;
    write_atomic(&dir.join("state.json"), &json)?;
    write_atomic(&dir.join("checkpoint"), state.checkpoint.as_bytes())
}

/// What a log dir holds: its last checkpoint, and the tree at that size
/// rebuilt from the tiles (checked against the checkpoint's root).
pub(super) struct Loaded {
    pub checkpoint: String,
    pub parsed: Checkpoint,
    pub tree: Tree,
}

/// Reads the log under `dir` (`None`: no checkpoint was ever signed).
pub(super) fn load(dir: &Path) -> Result<Option<Loaded>, Error> {
    let path = dir.join("state.json");
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
    };
    let corrupt = |what: String| Error::Corrupt(format!("{}: {what}", path.display()));
    let state: State =
        serde_json::from_slice(&bytes).map_err(|e| corrupt(format!("not a log state: {e}")))?;
    let note = Note::parse(&state.checkpoint).map_err(|e| corrupt(e.to_string()))?;
    let parsed = Checkpoint::parse(&note.text).map_err(|e| corrupt(e.to_string()))?;
    let mut tree = Tree {
        size: parsed.size,
        chains: state.chains,
        ..Tree::default()
    };
    let mut level = 0;
    while entries_at(level, parsed.size) > 0 {
        let n = entries_at(level, parsed.size);
        let (index, width) = (n / TILE_WIDTH, n % TILE_WIDTH);
        let mut hashes = Vec::new();
        if width > 0 {
            let bytes = read_prefix(dir, level as u8, index, width)?;
            for h in bytes.chunks_exact(32) {
                hashes.push(h.try_into().map_err(|_| corrupt("a tile hash".into()))?);
            }
        }
        tree.levels.push(hashes);
        level += 1;
    }
    let width = parsed.size % TILE_WIDTH;
    if width > 0 {
        let path = tlog::entries_path(parsed.size / TILE_WIDTH, width);
        let bytes = read(dir, &path)?;
        let entries = tlog::parse_entries(&bytes).map_err(|e| corrupt(format!("{path}: {e}")))?;
        if entries.len() as u64 != width {
            return Err(corrupt(format!("{path} holds {} entries", entries.len())));
        }
        tree.entries = entries;
    }
    if tree.root() != parsed.root {
        return Err(corrupt(format!(
            "the tiles under {} do not give the root of the last checkpoint (size {}): the log \
             was changed on disk",
            dir.display(),
            parsed.size
        )));
    }
    Ok(Some(Loaded {
        checkpoint: state.checkpoint,
        parsed,
        tree,
    }))
}

fn read(dir: &Path, rel: &str) -> Result<Vec<u8>, Error> {
    let path = dir.join(rel);
    std::fs::read(&path).map_err(|e| {
        Error::Corrupt(format!(
            "{}: {e}: a tile of the last checkpoint is missing",
            path.display()
        ))
    })
}

/// The first `width` hashes of tile (`level`, `index`): its partial file,
/// written with the checkpoint.
fn read_prefix(dir: &Path, level: u8, index: u64, width: u64) -> Result<Vec<u8>, Error> {
    let rel = tlog::tile_path(level, index, width);
    let bytes = read(dir, &rel)?;
    if bytes.len() as u64 != width * 32 {
        return Err(Error::Corrupt(format!(
            "{}: {} bytes, not {} hashes",
            dir.join(&rel).display(),
            bytes.len(),
            width
        )));
    }
    Ok(bytes)
}

/// Removes tiles written past the last checkpoint before a crash: their
/// leaves are logged again, perhaps in another order, and a reader must
/// never get a tile that no checkpoint covers.
pub(super) fn remove_unsigned(dir: &Path, size: u64) -> Result<usize, Error> {
    let mut removed = 0;
    let mut paths = |first: u64, width: u64, path: &dyn Fn(u64, u64) -> String| {
        let mut index = first;
        loop {
            let mut found = false;
            let from = if index == first { width + 1 } else { 1 };
            for w in (from..TILE_WIDTH).chain([TILE_WIDTH]) {
                let p = dir.join(path(index, w));
                if std::fs::remove_file(&p).is_ok() {
                    found = true;
                    removed += 1;
                }
            }
            if !found {
                return;
            }
            index += 1;
        }
    };
    for level in 0..64u8 {
        let n = entries_at(level as usize, size);
        paths(n / TILE_WIDTH, n % TILE_WIDTH, &|i, w| {
            tlog::tile_path(level, i, w)
        });
        if n == 0 && !dir.join(format!("tile/{level}")).exists() {
            break;
        }
    }
    paths(size / TILE_WIDTH, size % TILE_WIDTH, &|i, w| {
        tlog::entries_path(i, w)
    });
    if removed > 0 {
        // Gone for good before anything is written in their place.
        sync_fs(dir)?;
    }
    Ok(removed)
}

/// The log directory under the data dir.
pub fn log_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("log")
}
