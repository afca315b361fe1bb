//! The root directory on the ceremony medium.

use std::io::Write;
use std::path::{Path, PathBuf};

use sigil_proto::root::docs::Document;
use sigil_proto::root::{Keyset, Root, Signed};

use crate::Error;

/// `root/`, `keyset/`, `staged/` and `ceremony.log` under one path.
pub struct RootDir {
    path: PathBuf,
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Io { what, source }
}

impl RootDir {
    /// The root directory at `path` (created when first written).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        RootDir { path: path.into() }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn newest<T>(&self, sub: &str) -> Result<Option<Signed<T>>, Error>
    where
        T: Document,
    {
        let mut v = 1u64;
        let mut last = None;
        loop {
            let p = self.path.join(sub).join(format!("{v}.{sub}.json"));
            match std::fs::read_to_string(&p) {
                Ok(text) => last = Some(Signed::<T>::parse(&text)?),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(last),
                Err(e) => return Err(io(format!("reading {}", p.display()))(e)),
            }
            v += 1;
        }
    }

    /// The newest root.
    pub fn newest_root(&self) -> Result<Option<Signed<Root>>, Error> {
        self.newest("root")
    }

    /// The newest keyset.
    pub fn newest_keyset(&self) -> Result<Option<Signed<Keyset>>, Error> {
        self.newest("keyset")
    }

    fn write(&self, path: &Path, text: &str, create_new: bool) -> Result<(), Error> {
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d).map_err(io(format!("creating {}", d.display())))?;
        }
        let tmp = path.with_extension("tmp");
        let mut f =
            std::fs::File::create(&tmp).map_err(io(format!("creating {}", tmp.display())))?;
        f.write_all(text.as_bytes())
            .and_then(|_| f.sync_all())
            .map_err(io(format!("writing {}", tmp.display())))?;
        if create_new && path.exists() {
            let _ = std::fs::remove_file(&tmp);
            return Err(Error::Refused(format!(
                "{} exists: released versions are never rewritten",
                path.display()
            )));
        }
        std::fs::rename(&tmp, path).map_err(io(format!("renaming to {}", path.display())))
    }

    /// Writes a finished document as `<kind>/<version>.<kind>.json`, never
    /// over an existing one (TUF §6.2: released versions stay).
    pub fn write_final<T: Document>(
        &self,
        doc: &Signed<T>,
        kind: &str,
        version: u64,
    ) -> Result<PathBuf, Error> {
        let p = self.path.join(kind).join(format!("{version}.{kind}.json"));
        self.write(&p, &doc.to_json(), true)?;
        Ok(p)
    }

    /// Writes a document short of its threshold as
    /// `staged/<kind>.<version>.json` (replacing the earlier stage).
    pub fn write_staged<T: Document>(
        &self,
        doc: &Signed<T>,
        kind: &str,
        version: u64,
    ) -> Result<PathBuf, Error> {
        let p = self.staged_path(kind, version);
        self.write(&p, &doc.to_json(), false)?;
        Ok(p)
    }

    fn staged_path(&self, kind: &str, version: u64) -> PathBuf {
        self.path
            .join("staged")
            .join(format!("{kind}.{version}.json"))
    }

    /// Removes a staged document once it is final.
    pub fn remove_staged(&self, kind: &str, version: u64) -> Result<(), Error> {
        let p = self.staged_path(kind, version);
        match std::fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(io(format!("removing {}", p.display()))(e))
            }
            _ => Ok(()),
        }
    }

    /// Staged documents.
    pub fn staged(&self) -> Result<Vec<PathBuf>, Error> {
        let d = self.path.join("staged");
        let Ok(entries) = std::fs::read_dir(&d) else {
            return Ok(Vec::new());
        };
        let mut v: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        v.sort();
        Ok(v)
    }

    /// Appends a line to `ceremony.log` (fsynced).
    pub fn log(&self, line: &str) -> Result<(), Error> {
        std::fs::create_dir_all(&self.path)
            .map_err(io(format!("creating {}", self.path.display())))?;
        let p = self.path.join("ceremony.log");
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p)
            .map_err(io(format!("opening {}", p.display())))?;
        let stamp = sigil_proto::timestamp::now();
        writeln!(f, "{stamp} {line}")
            .and_then(|_| f.sync_all())
            .map_err(io(format!("writing {}", p.display())))
    }
}
