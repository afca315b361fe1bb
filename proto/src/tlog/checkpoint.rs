//! C2SP checkpoints (<https://c2sp.org/tlog-checkpoint>): the text of a
//! signed note that commits to a tree: the log's origin, its size in
//! decimal, its root hash in base64, then optional extension lines.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use super::{fail, Hash, LogError};

/// A checkpoint's text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's identity, e.g. `host.example/sigil`.
    pub origin: String,
    /// Leaves in the tree.
    pub size: u64,
    /// The tree's root hash.
    pub root: Hash,
    /// Extension lines (without their newlines).
    pub extensions: Vec<String>,
}

impl Checkpoint {
    /// Parses a checkpoint's text (a note's text, ending in a newline).
    pub fn parse(text: &str) -> Result<Checkpoint, LogError> {
        let Some(body) = text.strip_suffix('\n') else {
            return fail("a checkpoint ends in a newline");
        };
        let mut lines = body.split('\n');
        let (Some(origin), Some(size), Some(root)) = (lines.next(), lines.next(), lines.next())
        else {
            return fail("a checkpoint has an origin, a size and a root hash line");
        };
        if origin.is_empty() {
            return fail("a checkpoint's origin is not empty");
        }
        let canonical = size == "0" || (!size.starts_with('0') && !size.is_empty());
        let size: u64 = match size.parse() {
            Ok(n) if canonical && size.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => return fail(format!("checkpoint size {size:?} is not a decimal number")),
        };
        let root: Hash = STANDARD
            .decode(root)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| {
                LogError(format!(
                    "checkpoint root {root:?} is not 32 bytes of base64"
                ))
            })?;
        let extensions: Vec<String> = lines.map(str::to_owned).collect();
        if extensions.iter().any(String::is_empty) {
            return fail("a checkpoint has no empty line");
        }
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size,
            root,
            extensions,
        })
    }

    /// The checkpoint's text, ready to sign.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            STANDARD.encode(self.root)
        );
        for e in &self.extensions {
            out.push_str(e);
            out.push('\n');
        }
        out
    }
}
