//! Opening a chain: a genesis on a new file, or a resume from what the file
//! holds, read from disk (at start, and again after any failed write).

use std::path::Path;

use super::scan::{self, Cut, ScanError};
use super::tail::Tail;
use super::{seal, Ctx, State, LEDGER_PREFIX};
use crate::keyring::KeyVersion;
use crate::store::{self, ChainFile, Recovered};
use crate::Error;

/// True when a chain file is at `path`; refuses anything there that is not
/// a regular file, a symlink in particular.
fn exists(path: &Path) -> Result<bool, Error> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err(store::symlink_refused(path)),
        Ok(m) if !m.is_file() => Err(Error::Corrupt(format!(
            "{} is not a regular file",
            path.display()
        ))),
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io(format!("inspecting {}", path.display()), e)),
    }
}

impl Ctx {
    /// Opens the chain: a genesis on a new file, or, after cutting what was
    /// never acknowledged, a restart open (or a rotation boundary, when the
    /// key name moved on while the chain was closed), followed by a
    /// `sigil://chain/cut` receipt when damaged lines were moved aside.
    /// Durable on return.
    pub(super) fn open(&self) -> Result<State, Error> {
        let key = self.keyring.ensure(&self.key_name)?;
        if let Some(dir) = self.path.parent() {
            if std::fs::symlink_metadata(dir).is_ok_and(|m| m.file_type().is_symlink()) {
                return Err(store::symlink_refused(dir));
            }
        }
        if !exists(&self.path)? {
            return self.genesis(ChainFile::create(&self.path)?, key);
        }
        let rec = ChainFile::recover(&self.path)?;
        // A file without a whole line was created but its genesis never
        // became durable (crash, token or disk error): nothing in it was
        // ever acknowledged, so the chain starts anew in it.
        if String::from_utf8_lossy(&rec.bytes).trim().is_empty() {
            return self.genesis(rec.file, key);
        }
        self.resume(rec, &key)
    }

    /// Starts the chain in an empty (or never acknowledged) file.
    fn genesis(&self, mut file: ChainFile, key: KeyVersion) -> Result<State, Error> {
        if !file.is_empty() {
            file.cut_to(0)?;
        }
        let mut tail = Tail::new(key, String::new(), self.settings.replay_window);
        let (rec, ctrl, _) = seal::open_run(&self.name, &mut tail, &self.settings, true)?;
        let a = seal::seal_at(self.backend(), &mut tail, rec, Some(ctrl), 0)?;
        let mut state = State { file, tail };
        state
            .file
            .append_durable(format!("{}\n", a.line).as_bytes())?;
        crate::metrics::get().receipts(&self.name, 1);
        self.log_durable(&mut state.tail);
        // Everything this chain signs from now on is counted as it is
        // written; a later reopen has nothing of its own to add.
        self.counted
            .store(true, std::sync::atomic::Ordering::SeqCst);
        tracing::info!(chain = %self.name, "chain created");
        Ok(state)
    }

    /// Resumes the chain from what its file holds: after a restart open (or
    /// the boundary to `key`), a receipt recording what was cut.
    fn resume(&self, rec: Recovered, key: &KeyVersion) -> Result<State, Error> {
        if rec.cut > 0 {
            tracing::warn!(chain = %self.name, bytes = rec.cut, "cut a torn last line (never acknowledged)");
        }
        let scanned = match scan::scan(
            &rec.bytes,
            self.settings.replay_window,
            &self.key_name,
            |pk| self.keyring.version_with(&self.key_name, pk),
        ) {
            Ok(s) => s,
            Err(ScanError::ForeignKey(e)) if self.name.starts_with(LEDGER_PREFIX) => {
                // An older sigild signed ledgers with the digest key itself;
                // a digest key vouches for nothing, so that ledger is kept
                // aside as it is and a new one starts under the chain key.
                let aside = self.path.with_extension(format!(
                    "jsonl.digest-signed-{}",
                    time::OffsetDateTime::now_utc().unix_timestamp()
                ));
                drop(rec);
                std::fs::rename(&self.path, &aside)
                    .map_err(|e| Error::io(format!("moving {} aside", self.path.display()), e))?;
                tracing::warn!(chain = %self.name, kept = %aside.display(), reason = %e,
                    "ledger signed by its digest key moved aside; a new ledger starts");
                return self.open();
            }
            Err(e) => return Err(Error::Corrupt(format!("{}: {e}", self.path.display()))),
        };
        if let Some(log) = &self.log {
            log.catch_up(&self.name, &scanned.receipts);
        }
        self.last_seal
            .store(scanned.last_seal, std::sync::atomic::Ordering::SeqCst);
        let mut state = State {
            file: rec.file,
            tail: scanned.tail,
        };
        if !self.counted.swap(true, std::sync::atomic::Ordering::SeqCst) {
            self.counters
                .count(&state.tail.key.id, state.tail.segment_count);
        }
        let (kept_seq, kept_hash) = (state.tail.seq, state.tail.hash.clone());
        // Everything is signed before the file changes, so a token error
        // leaves the file as it was.
        let mut buf = Vec::new();
        let mut written = 1;
        if state.tail.key != *key {
            self.cross_boundary(key, &mut state.tail, &mut buf)?;
        } else {
            let (rec, ctrl, seq) =
                seal::open_run(&self.name, &mut state.tail, &self.settings, false)?;
            let a = seal::seal_at(self.backend(), &mut state.tail, rec, Some(ctrl), seq)?;
            buf.extend_from_slice(a.line.as_bytes());
            buf.push(b'\n');
        }
        if let Some(cut) = &scanned.cut {
            written += self.cut(
                &mut state,
                cut,
                &rec.bytes,
                scanned.keep_bytes,
                (kept_seq, &kept_hash),
                &mut buf,
            )?;
        }
        state.file.append_durable(&buf)?;
        self.log_durable(&mut state.tail);
        crate::metrics::get().receipts(&self.name, written);
        tracing::info!(chain = %self.name, seq = state.tail.seq, "chain resumed with a restart session_open");
        Ok(state)
    }

    /// Removes what follows the last valid receipt: a rotation endorsement
    /// whose boundary was never written is cut; damaged lines are moved
    /// aside and a `sigil://chain/cut` receipt (into `buf`) records them,
    /// after `kept` (seq, hash), the last receipt kept. Returns the
    /// receipts written.
    fn cut(
        &self,
        state: &mut State,
        cut: &Cut,
        bytes: &[u8],
        at: u64,
        kept: (u64, &str),
        buf: &mut Vec<u8>,
    ) -> Result<u64, Error> {
        if !cut.aside {
            tracing::warn!(chain = %self.name, reason = %cut.reason,
                "cut a rotation endorsement whose boundary was never written");
            state.file.cut_to(at)?;
            return Ok(0);
        }
        let moved = usize::try_from(at)
            .ok()
            .and_then(|at| bytes.get(at..))
            .ok_or_else(|| Error::Internal("cut offset outside the file".into()))?;
        let aside = state.file.aside_path();
        let name = aside
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // After the open: a receipt belongs to an open run.
        let rec = seal::cut_record(
            kept.0,
            kept.1,
            moved.len() as u64,
            cut.lines,
            &name,
            &cut.reason,
            &self.settings,
        );
        let a = seal::seal(self.backend(), &mut state.tail, rec, None)?;
        buf.extend_from_slice(a.line.as_bytes());
        buf.push(b'\n');
        state.file.cut_aside(at, moved, &aside)?;
        tracing::warn!(chain = %self.name, bytes = moved.len(), lines = cut.lines,
            kept = %aside.display(), reason = %cut.reason,
            "moved damaged lines after the last valid receipt aside");
        Ok(1)
    }
}
