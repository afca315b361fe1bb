//! Chain files: append-only JSONL, one receipt per line, made durable with
//! one fdatasync per batch before any reply.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use crate::{failpoint, Error};

/// An open chain file positioned at its end.
pub struct ChainFile {
    path: PathBuf,
    file: File,
    len: u64,
    /// An append failed: what the file holds past `len` is not known, and
    /// after a failed fsync the page cache may not match the disk either,
    /// so no append is taken until the chain is re-read from disk.
    failed: bool,
}

/// What recovery found in an existing file.
pub struct Recovered {
    /// The file, torn tail cut.
    pub file: ChainFile,
    /// Its whole lines, exactly as on disk (each ends with a newline).
    pub bytes: Vec<u8>,
    /// Bytes cut from the end (a line that was never acknowledged).
    pub cut: u64,
}

/// A failed append, and what it leaves on disk: the caller's reply must
/// say which, since a receipt that may persist must never be reported as
/// not written.
#[derive(Debug)]
pub enum AppendError {
    /// The file was cut back to where it was, and the cut made durable:
    /// none of the bytes is in the file.
    NothingWritten(Error),
    /// The cut back failed or could not be made durable: some or all of
    /// the bytes may be in the file, now or after a crash.
    OutcomeUnknown(Error),
}

impl std::fmt::Display for AppendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AppendError::NothingWritten(e) => write!(f, "{e}; nothing of it was written"),
            AppendError::OutcomeUnknown(e) => {
                write!(f, "{e}; outcome unknown: what it wrote may be durable")
            }
        }
    }
}

impl From<AppendError> for Error {
    fn from(e: AppendError) -> Self {
        match e {
            AppendError::NothingWritten(e) => e,
            AppendError::OutcomeUnknown(e) => Error::Unavailable(format!(
                "{e}; outcome unknown: what it wrote may be durable"
            )),
        }
    }
}

/// Opens an existing chain file to read and append, never through a
/// symlink.
fn open_existing(path: &Path) -> Result<File, Error> {
    OpenOptions::new()
        .read(true)
        .append(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => symlink_refused(path),
            _ => Error::io(format!("opening {}", path.display()), e),
        })
}

/// The refusal of a symlink where a chain file or the chains dir should be.
pub fn symlink_refused(path: &Path) -> Error {
    Error::Corrupt(format!(
        "{} is a symbolic link: sigild refuses symlinks in its data dir \
         (put the file or directory itself there)",
        path.display()
    ))
}

impl ChainFile {
    /// Opens an existing chain file at its end, to append entries to a
    /// chain that is not open (its last line is whole: it was closed).
    pub fn open_at_end(path: &Path) -> Result<Self, Error> {
        let file = open_existing(path)?;
        let len = file
            .metadata()
            .map_err(|e| Error::io(format!("inspecting {}", path.display()), e))?
            .len();
        Ok(ChainFile {
            path: path.to_owned(),
            file,
            len,
            failed: false,
        })
    }

    /// Creates a new, empty chain file (never overwrites one, nor follows a
    /// symlink) and makes its directory entry durable.
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
            failed: false,
        })
    }

    /// Opens an existing chain file and cuts a torn last line: bytes after
    /// the last newline were never acknowledged (replies follow the fsync
    /// of whole lines), so they are removed and the cut made durable.
    pub fn recover(path: &Path) -> Result<Recovered, Error> {
        let mut file = open_existing(path)?;
        // After a failed fsync the page cache may hold lines the disk does
        // not: drop the file's clean pages so that what is read is what
        // the disk holds. Advisory; dirty pages stay, and are written.
        // SAFETY: an fadvise on a descriptor we own; no memory is touched.
        unsafe {
            libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED);
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        let whole = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let cut = (bytes.len() - whole) as u64;
        if cut > 0 {
            file.set_len(whole as u64)
                .map_err(|e| Error::io(format!("cutting torn line of {}", path.display()), e))?;
        }
        // What was read is made durable before anything relies on it (the
        // receipt log takes the receipts the log missed from here): dirty
        // pages of a write whose fsync failed may be read back above.
        file.sync_all()
            .map_err(|e| Error::io(format!("syncing {}", path.display()), e))?;
        bytes.truncate(whole);
        file.seek(SeekFrom::End(0))
            .map_err(|e| Error::io(format!("seeking {}", path.display()), e))?;
        Ok(Recovered {
            file: ChainFile {
                path: path.to_owned(),
                file,
                len: whole as u64,
                failed: false,
            },
            bytes,
            cut,
        })
    }

    /// Appends whole lines and makes them durable. On failure the file is
    /// cut back to where it was; the error says whether that cut is
    /// durable. After any failure the file takes no more appends: the
    /// chain must be re-read from disk.
    pub fn append_durable(&mut self, bytes: &[u8]) -> Result<(), AppendError> {
        if self.failed {
            return Err(AppendError::NothingWritten(Error::Unavailable(format!(
                "{}: an earlier write failed; the chain is re-read from disk before it takes \
                 another append",
                self.path.display()
            ))));
        }
        let result = failpoint::io("store.write")
            .and_then(|_| self.file.write_all(bytes))
            .and_then(|_| failpoint::io("store.sync"))
            .and_then(|_| self.file.sync_data());
        let Err(e) = result else {
            self.len += bytes.len() as u64;
            return Ok(());
        };
        self.failed = true;
        // The cut back must itself be durable before the reply may say
        // that nothing was written: otherwise whole lines of the batch can
        // reappear after a crash.
        let cut = failpoint::io("store.cut_back")
            .and_then(|_| self.file.set_len(self.len))
            .and_then(|_| self.file.sync_all());
        match cut {
            Ok(()) => Err(AppendError::NothingWritten(Error::io(
                format!("appending to {}", self.path.display()),
                e,
            ))),
            Err(c) => {
                tracing::error!(file = %self.path.display(), error = %c,
                    "cutting back a failed append failed: its lines may persist");
                Err(AppendError::OutcomeUnknown(Error::io(
                    format!(
                        "appending to {} (cutting it back failed too: {c})",
                        self.path.display()
                    ),
                    e,
                )))
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
            .map_err(|e| {
                self.failed = true;
                Error::io(format!("cutting {}", self.path.display()), e)
            })?;
        self.len = len;
        Ok(())
    }

    /// A name for a file next to this one to move a damaged tail into,
    /// `<chain>.jsonl.cut-<unix seconds>[-n]`, not taken yet.
    pub fn aside_path(&self) -> PathBuf {
        let secs = time::OffsetDateTime::now_utc().unix_timestamp();
        let mut n = 0u32;
        loop {
            let aside = self.path.with_extension(match n {
                0 => format!("jsonl.cut-{secs}"),
                n => format!("jsonl.cut-{secs}-{n}"),
            });
            if n >= 1000 || fs::symlink_metadata(&aside).is_err() {
                return aside;
            }
            n += 1;
        }
    }

    /// Moves `tail`, the file's bytes after its first `keep`, into the new
    /// file `aside` (never deleted), durably, then cuts the chain to `keep`.
    pub fn cut_aside(&mut self, keep: u64, tail: &[u8], aside: &Path) -> Result<(), Error> {
        if keep.checked_add(tail.len() as u64) != Some(self.len) {
            return Err(Error::Internal(format!(
                "{}: {} bytes to move aside after byte {keep} of {}",
                self.path.display(),
                tail.len(),
                self.len
            )));
        }
        // create_new: never overwrites a file kept aside, nor follows a
        // symlink.
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o640)
            .open(aside)
            .map_err(|e| Error::io(format!("creating {}", aside.display()), e))?;
        f.write_all(tail)
            .and_then(|_| f.sync_all())
            .map_err(|e| Error::io(format!("writing {}", aside.display()), e))?;
        sync_parent(aside)?;
        // Only once the copy is durable is the chain cut.
        self.cut_to(keep)
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
