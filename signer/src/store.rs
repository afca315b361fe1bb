//! Chain files: append-only JSONL, one receipt per line, made durable with
//! one fdatasync per batch before any reply.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::Error;

/// An open chain file positioned at its end.
pub struct ChainFile {
    path: PathBuf,
    file: File,
    len: u64,
}

/// What recovery found in an existing file.
pub struct Recovered {
    /// The file, torn tail cut.
    pub file: ChainFile,
    /// Each whole line, without its newline (blank lines included).
    pub lines: Vec<String>,
    /// Bytes cut from the end (a line that was never acknowledged).
    pub cut: u64,
}

impl ChainFile {
    /// Creates a new, empty chain file (never overwrites one) and makes its
    /// directory entry durable.
    pub fn create(path: &Path) -> Result<Self, Error> {
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create_new(true)
            .mode(0o640)
            .open(path)
            .map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
        sync_parent(path)?;
        Ok(ChainFile {
            path: path.to_owned(),
            file,
            len: 0,
        })
    }

    /// Opens an existing chain file and cuts a torn last line: bytes after
    /// the last newline were never acknowledged (replies follow the fsync
    /// of whole lines), so they are removed and the cut made durable.
    pub fn recover(path: &Path) -> Result<Recovered, Error> {
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(path)
            .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        let whole = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let cut = (bytes.len() - whole) as u64;
        if cut > 0 {
            file.set_len(whole as u64)
                .and_then(|_| file.sync_all())
                .map_err(|e| Error::io(format!("cutting torn line of {}", path.display()), e))?;
        }
        let text = std::str::from_utf8(&bytes[..whole]).map_err(|e| {
            Error::Corrupt(format!(
                "{} is not UTF-8 at byte {}: not a chain sigil wrote",
                path.display(),
                e.valid_up_to()
            ))
        })?;
        // Every whole line, blank ones too, so offsets can be recomputed.
        let lines = text.split_terminator('\n').map(str::to_owned).collect();
        file.seek(SeekFrom::End(0))
            .map_err(|e| Error::io(format!("seeking {}", path.display()), e))?;
        Ok(Recovered {
            file: ChainFile {
                path: path.to_owned(),
                file,
                len: whole as u64,
            },
            lines,
            cut,
        })
    }

    /// Appends whole lines and makes them durable. On failure the file is
    /// cut back to where it was, so no partial batch stays behind.
    pub fn append_durable(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let result = self
            .file
            .write_all(bytes)
            .and_then(|_| self.file.sync_data());
        match result {
            Ok(()) => {
                self.len += bytes.len() as u64;
                Ok(())
            }
            Err(e) => {
                // Best effort: recovery on the next start cuts whatever
                // survives of a torn tail anyway.
                let _ = self
                    .file
                    .set_len(self.len)
                    .and_then(|_| self.file.sync_all());
                Err(Error::io(
                    format!("appending to {}", self.path.display()),
                    e,
                ))
            }
        }
    }

    /// Path of the file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes in the file.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when the file holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Cuts the file to its first `len` bytes, durably. Only for entries
    /// that were never acknowledged.
    pub fn cut_to(&mut self, len: u64) -> Result<(), Error> {
        self.file
            .set_len(len)
            .and_then(|_| self.file.sync_all())
            .map_err(|e| Error::io(format!("cutting {}", self.path.display()), e))?;
        self.len = len;
        Ok(())
    }
}

/// fsyncs the directory holding `path`, so a new entry survives a crash.
pub fn sync_parent(path: &Path) -> Result<(), Error> {
    let dir = path.parent().unwrap_or(Path::new("."));
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(format!("syncing directory {}", dir.display()), e))
}

/// Writes a small file atomically: temp file, fsync, rename, fsync dir.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let tmp = path.with_extension("tmp");
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o640)
        .open(&tmp)
        .map_err(|e| Error::io(format!("creating {}", tmp.display()), e))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(|e| Error::io(format!("writing {}", tmp.display()), e))?;
    fs::rename(&tmp, path).map_err(|e| Error::io(format!("renaming to {}", path.display()), e))?;
    sync_parent(path)
}
