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
