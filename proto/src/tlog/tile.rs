//! C2SP tlog-tiles paths (<https://c2sp.org/tlog-tiles>): the tree's
//! hashes in tiles of 256, level by level, each served at
//! `tile/<L>/<N>[.p/<W>]`, with `N` written in groups of three digits.

/// Tile height: each tile spans 8 levels of the tree.
pub const TILE_HEIGHT: u32 = 8;

/// Hashes in a full tile.
pub const TILE_WIDTH: u64 = 1 << TILE_HEIGHT;

/// The path of tile `index` at tile level `level` holding `width` hashes
/// (a partial tile below [`TILE_WIDTH`]).
pub fn tile_path(level: u8, index: u64, width: u64) -> String {
    let mut n = index.to_string();
    // Left-pad to a multiple of three digits, then group.
    while !n.len().is_multiple_of(3) {
        n.insert(0, '0');
    }
    let groups: Vec<&str> = (0..n.len() / 3).map(|i| &n[i * 3..i * 3 + 3]).collect();
    let last = groups.len() - 1;
    let mut path = format!("tile/{level}/");
    for (i, g) in groups.iter().enumerate() {
        if i < last {
            path.push('x');
            path.push_str(g);
            path.push('/');
        } else {
            path.push_str(g);
        }
    }
    if width < TILE_WIDTH {
        path.push_str(&format!(".p/{width}"));
    }
    path
}

/// What a tlog-tiles path names: a hash tile or an entry bundle, with its
/// index and width ([`TILE_WIDTH`] for a full one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TileRef {
    /// Hash tile `index` of tile level `level`.
    Hashes {
        /// Tile level.
        level: u8,
        /// Tile index within the level.
        index: u64,
        /// Hashes it holds.
        width: u64,
    },
    /// Entry bundle `index`.
    Entries {
        /// Bundle index.
        index: u64,
        /// Entries it holds.
        width: u64,
    },
}

/// Parses a path as [`tile_path`] writes it (or `tile/entries/...`),
/// strictly: anything else, including a non-canonical spelling of the
/// same tile, is `None`, so one tile has one name.
pub fn parse_tile_path(path: &str) -> Option<TileRef> {
    let rest = path.strip_prefix("tile/")?;
    let (kind, rest) = rest.split_once('/')?;
    let (n, width) = match rest.split_once(".p/") {
        None => (rest, TILE_WIDTH),
        Some((n, w)) => {
            let canonical = !w.starts_with('0') && w.bytes().all(|b| b.is_ascii_digit());
            let w: u64 = w.parse().ok().filter(|w| canonical && *w < TILE_WIDTH)?;
            (n, w)
        }
    };
    let groups: Vec<&str> = n.split('/').collect();
    let (last, upper) = groups.split_last()?;
    let mut digits = String::new();
    for g in upper {
        digits.push_str(g.strip_prefix('x')?);
    }
    digits.push_str(last);
    let grouped = groups.iter().all(|g| {
        let g = g.strip_prefix('x').unwrap_or(g);
        g.len() == 3 && g.bytes().all(|b| b.is_ascii_digit())
    });
    if !grouped || digits.len() > 3 && digits.starts_with("000") {
        return None;
    }
    let index: u64 = digits.parse().ok()?;
    if kind == "entries" {
        return Some(TileRef::Entries { index, width });
    }
    let canonical = kind == "0" || !kind.starts_with('0');
    let level: u8 = kind.parse().ok().filter(|l| canonical && *l < 64)?;
    if !kind.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let path_again = tile_path(level, index, width);
    (path_again == path).then_some(TileRef::Hashes {
        level,
        index,
        width,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tile_path_parses_back_to_the_tile_and_other_spellings_do_not() {
        for (level, index, width) in [(0, 0, 256), (0, 1_234_067, 256), (3, 5, 7), (1, 999, 255)] {
            let p = tile_path(level, index, width);
            assert_eq!(
                parse_tile_path(&p),
                Some(TileRef::Hashes {
                    level,
                    index,
                    width
                }),
                "{p}"
            );
        }
        assert_eq!(
            parse_tile_path("tile/entries/x001/x234/067.p/8"),
            Some(TileRef::Entries {
                index: 1_234_067,
                width: 8
            })
        );
        for bad in [
            "tile/0/1",
            "tile/0/001.p/0",
            "tile/0/001.p/256",
            "tile/0/001.p/08",
            "tile/00/001",
            "tile/0/x000/001",
            "tile/0/001/002",
            "tile/0/x001",
            "tile/0/../001",
            "tile/64/001",
            "tile/+1/001",
            "tile/entries/1",
            "tiles/0/001",
        ] {
            assert_eq!(parse_tile_path(bad), None, "{bad}");
        }
    }
}
