//! Reading a log stored as C2SP tlog-tiles (<https://c2sp.org/tlog-tiles>):
//! which tiles a tree of a given size has, entry bundles, and
//! perfect-subtree hashes read from hash tiles, so a verifier computes a
//! checkpoint's root and proofs from the files the log serves. Reading a
//! file is the caller's ([`TileFetch`]: a directory, HTTP, memory); this
//! module only decides which paths to read and checks what comes back.

use super::{
    fail, node_hash, outside, subtree_leaves, tile_path, Hash, HashSource, LogError, TILE_HEIGHT,
    TILE_WIDTH,
};

/// Reads one file of a log by its tlog-tiles path (e.g.
/// `tile/0/x001/234.p/7`, `tile/entries/000`, `checkpoint`).
pub trait TileFetch {
    /// The file's bytes; `Ok(None)` when it does not exist.
    fn fetch(&mut self, path: &str) -> Result<Option<Vec<u8>>, LogError>;
}

/// Lets a caller lend its fetcher and keep it.
impl<F: TileFetch + ?Sized> TileFetch for &mut F {
    fn fetch(&mut self, path: &str) -> Result<Option<Vec<u8>>, LogError> {
        (**self).fetch(path)
    }
}

/// Width of tile `index` at tile level `level` in a tree of `size` leaves
/// (0: no such tile yet).
pub fn tile_width(level: u8, index: u64, size: u64) -> u64 {
    // Level L holds one hash per 2^(8L) leaves; past level 7 there are none.
    let hashes = size
        .checked_shr(TILE_HEIGHT * u32::from(level))
        .unwrap_or(0);
    match index.checked_mul(TILE_WIDTH) {
        Some(start) => hashes.saturating_sub(start).min(TILE_WIDTH),
        None => 0,
    }
}

/// The path of entry bundle `index` holding `width` entries.
pub fn entries_path(index: u64, width: u64) -> String {
    // Bundles are named as level-0 tiles are, under `entries`.
    tile_path(0, index, width).replacen("tile/0/", "tile/entries/", 1)
}

/// An entry bundle: each entry as a 2-byte big-endian length, then its
/// bytes. Refuses an entry longer than 65535 bytes.
pub fn encode_entries(entries: &[&[u8]]) -> Result<Vec<u8>, LogError> {
    let mut out = Vec::with_capacity(entries.iter().map(|e| 2 + e.len()).sum());
    for (i, entry) in entries.iter().enumerate() {
        let Ok(len) = u16::try_from(entry.len()) else {
            return fail(format!(
                "entry {i} is {} bytes; an entry bundle holds entries of at most 65535",
                entry.len()
            ));
        };
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(entry);
    }
    Ok(out)
}

/// The entries of an entry bundle. Refuses truncated data.
pub fn parse_entries(bytes: &[u8]) -> Result<Vec<Vec<u8>>, LogError> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let Some((len, tail)) = rest.split_first_chunk::<2>() else {
            return fail(format!(
                "the entry bundle is truncated: entry {} has half a length",
                out.len()
            ));
        };
        let len = usize::from(u16::from_be_bytes(*len));
        let Some((entry, tail)) = tail.split_at_checked(len) else {
            return fail(format!(
                "the entry bundle is truncated: entry {} has {len} bytes but {} remain",
                out.len(),
                tail.len()
            ));
        };
        out.push(entry.to_vec());
        rest = tail;
    }
    Ok(out)
}

/// Every entry of the tree of `size` leaves, in order, read bundle by
/// bundle. A partial bundle that is gone is read from the full bundle, its
/// prefix taken. Refuses a bundle holding fewer entries than the tree has
/// in it.
pub fn read_entries(fetch: &mut impl TileFetch, size: u64) -> Result<Vec<Vec<u8>>, LogError> {
    let mut out = Vec::new();
    for index in 0..size.div_ceil(TILE_WIDTH) {
        let width = tile_width(0, index, size);
        let (path, bytes) = fetch_width(fetch, |w| entries_path(index, w), width)?;
        let mut entries = parse_entries(&bytes).map_err(|e| LogError(format!("{path}: {e}")))?;
        if (entries.len() as u64) < width {
            return fail(format!(
                "{path} holds {} entries; the tree of {size} leaves has {width} in it",
                entries.len()
            ));
        }
        // width <= 256, so it fits a usize.
        entries.truncate(width as usize);
        out.append(&mut entries);
    }
    Ok(out)
}

/// Reads the file `path(width)`, or, when a partial one is gone, the full
/// one, which begins with the same content (logs may delete a partial tile
/// once the full one exists). Returns the path read and its bytes.
fn fetch_width(
    fetch: &mut impl TileFetch,
    path: impl Fn(u64) -> String,
    width: u64,
) -> Result<(String, Vec<u8>), LogError> {
    let wanted = path(width);
    if let Some(bytes) = fetch.fetch(&wanted)? {
        return Ok((wanted, bytes));
    }
    if width == TILE_WIDTH {
        return fail(format!("{wanted} is missing"));
    }
    let full = path(TILE_WIDTH);
    match fetch.fetch(&full)? {
        Some(bytes) => Ok((full, bytes)),
        None => fail(format!("{wanted} is missing, and so is the full {full}")),
    }
}

/// Tiles kept: a proof reads a handful of tiles (the leaf's, the tree's
/// right edge at each level), each many times.
const CACHE_TILES: usize = 8;

/// Perfect-subtree hashes read from hash tiles for a tree of `size`
/// leaves, with a small cache of tiles read.
pub struct TileHashes<F: TileFetch> {
    fetch: F,
    size: u64,
    /// `(level, index, the tile's hashes for this size)`, most recently
    /// used last.
    cache: Vec<(u8, u64, Vec<Hash>)>,
}

impl<F: TileFetch> TileHashes<F> {
    /// Reads the tree of `size` leaves (a checkpoint's) through `fetch`.
    pub fn new(fetch: F, size: u64) -> Self {
        TileHashes {
            fetch,
            size,
            cache: Vec::with_capacity(CACHE_TILES),
        }
    }

    /// Gives the fetcher back.
    pub fn into_inner(self) -> F {
        self.fetch
    }

    /// The hashes of tile `index` at `level` in this tree, from the cache
    /// or read and checked.
    fn tile(&mut self, level: u8, index: u64) -> Result<&[Hash], LogError> {
        let at = match self.cache.iter().position(|t| (t.0, t.1) == (level, index)) {
            Some(at) => {
                self.cache[at..].rotate_left(1);
                self.cache.len() - 1
            }
            None => {
                let hashes = self.read_tile(level, index)?;
                if self.cache.len() == CACHE_TILES {
                    self.cache.remove(0);
                }
                self.cache.push((level, index, hashes));
                self.cache.len() - 1
            }
        };
        Ok(&self.cache[at].2)
    }

    fn read_tile(&mut self, level: u8, index: u64) -> Result<Vec<Hash>, LogError> {
        let width = tile_width(level, index, self.size);
        let (path, bytes) = fetch_width(&mut self.fetch, |w| tile_path(level, index, w), width)?;
        let (hashes, rest) = bytes.as_chunks::<32>();
        if !rest.is_empty() {
            return fail(format!(
                "{path} is {} bytes, not a whole number of 32-byte hashes",
                bytes.len()
            ));
        }
        if (hashes.len() as u64) < width {
            return fail(format!(
                "{path} holds {} hashes; the tree of {} leaves has {width} in it",
                hashes.len(),
                self.size
            ));
        }
        // width <= 256, so it fits a usize.
        Ok(hashes[..width as usize].to_vec())
    }
}

impl<F: TileFetch> HashSource for TileHashes<F> {
    fn subtree(&mut self, height: u8, index: u64) -> Result<Hash, LogError> {
        match subtree_leaves(height, index) {
            Some((_, end)) if end <= self.size => {}
            _ => return fail(outside(height, index, self.size)),
        }
        // TILE_HEIGHT is 8, so it fits a u8.
        let tile_height = TILE_HEIGHT as u8;
        let (level, r) = (height / tile_height, height % tile_height);
        // The subtree's 2^r hashes at `level` are aligned and at most 256,
        // so one tile holds them all. No overflow: index << height <= size.
        let first = index << r;
        let (n, lo) = (first / TILE_WIDTH, (first % TILE_WIDTH) as usize);
        let size = self.size;
        let Some(hashes) = self.tile(level, n)?.get(lo..lo + (1 << r)) else {
            return fail(format!(
                "tile {n} at level {level} is shorter than the tree of {size} leaves needs"
            ));
        };
        let mut layer = hashes.to_vec();
        while layer.len() > 1 {
            let (pairs, _) = layer.as_chunks::<2>();
            layer = pairs
                .iter()
                .map(|[left, right]| node_hash(left, right))
                .collect();
        }
        match layer.first() {
            Some(h) => Ok(*h),
            None => fail("an empty subtree has no hash"),
        }
    }
}
