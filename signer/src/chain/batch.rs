//! One batch of a chain's commands: each is signed onto the tail in order
//! and its line joins one buffer; one write and one fdatasync make the batch
//! durable, and only then do the replies that wait on it go out. A command
//! refused (a replay, a token error) is answered at once and writes nothing.

use serde_json::{Map, Value};
use sigil_proto::receipt::session;
use sigil_proto::timestamp;
use tokio::sync::oneshot;

use super::tail::Tail;
use super::{seal, Appended, Command, Ctx, DigestSigned, Reply, RevocationWritten, State};
use crate::keyring::{KeyVersion, Revoked};
use crate::store::AppendError;
use crate::Error;

/// A reply, with what it carries.
pub(super) enum Outcome {
    Appended(Reply<Appended>, Result<Appended, Error>),
    Signed(Reply<DigestSigned>, Result<DigestSigned, Error>),
    Done(Reply<()>, Result<(), Error>),
    Key(Reply<KeyVersion>, Result<KeyVersion, Error>),
    Revoked(Reply<RevocationWritten>, Result<RevocationWritten, Error>),
    /// A seal entry: durable, or not written.
    Sealed(Option<oneshot::Sender<bool>>, bool),
}

impl Outcome {
    pub(super) fn send(self) {
        match self {
            Outcome::Appended(tx, r) => drop(tx.send(r)),
            Outcome::Signed(tx, r) => drop(tx.send(r)),
            Outcome::Done(tx, r) => drop(tx.send(r)),
            Outcome::Key(tx, r) => drop(tx.send(r)),
            Outcome::Revoked(tx, r) => drop(tx.send(r)),
            Outcome::Sealed(tx, ok) => {
                if let Some(tx) = tx {
                    let _ = tx.send(ok);
                }
            }
        }
    }

    /// True for a close (or open) that succeeded.
    pub(super) fn is_done(&self) -> bool {
        matches!(self, Outcome::Done(_, Ok(())))
    }

    fn into_failed(self, e: Error) -> Outcome {
        match self {
            Outcome::Appended(tx, _) => Outcome::Appended(tx, Err(e)),
            Outcome::Signed(tx, _) => Outcome::Signed(tx, Err(e)),
            Outcome::Done(tx, _) => Outcome::Done(tx, Err(e)),
            Outcome::Key(tx, _) => Outcome::Key(tx, Err(e)),
            Outcome::Revoked(tx, _) => Outcome::Revoked(tx, Err(e)),
            Outcome::Sealed(tx, _) => Outcome::Sealed(tx, false),
        }
    }
}

/// The refusal of a command that was never carried out.
fn fail(cmd: Command, e: Error) -> Outcome {
    match cmd {
        Command::Append { reply, .. } => Outcome::Appended(reply, Err(e)),
        Command::SignDigest { reply, .. } => Outcome::Signed(reply, Err(e)),
        Command::RecordRevocation { reply, .. } => Outcome::Revoked(reply, Err(e)),
        Command::Rotate { reply, .. } => Outcome::Key(reply, Err(e)),
        Command::Open { reply } | Command::Close { reply, .. } => Outcome::Done(reply, Err(e)),
        Command::Seal { done, .. } => Outcome::Sealed(done, false),
    }
}

/// Refuses every command of a batch with the same reason.
pub(super) fn refuse_all(batch: Vec<Option<Command>>, msg: &str) -> Vec<Outcome> {
    batch
        .into_iter()
        .flatten()
        .map(|cmd| fail(cmd, Error::Unavailable(msg.to_owned())))
        .collect()
}

/// A result that, when it succeeds, put one receipt line into the batch.
trait Written {
    fn line(&self) -> &str;
}

impl Written for Appended {
    fn line(&self) -> &str {
        &self.line
    }
}

impl Written for DigestSigned {
    fn line(&self) -> &str {
        &self.ledger.line
    }
}

impl Written for RevocationWritten {
    fn line(&self) -> &str {
        &self.receipt.line
    }
}

/// A batch being built.
struct Batch<'a> {
    ctx: &'a Ctx,
    state: State,
    buf: Vec<u8>,
    /// Replies whose lines are in `buf`: they go out after the fsync.
    pending: Vec<Outcome>,
    /// Replies that go out whatever the fsync does (refusals, opens).
    answered: Vec<Outcome>,
    /// Signatures by key version (receipts of the chain's key, digests of
    /// a digest key), counted once durable.
    signed: Vec<(KeyVersion, u64)>,
    /// The key the batch began with (a boundary in it is a rotation).
    began_with: KeyVersion,
    /// A session_close is in `buf`: nothing may follow it but seals.
    closed: bool,
    /// Seal entries in `buf`, and the tree size of the last seal once
    /// they are durable.
    seals: usize,
    sealed_to: u64,
}

impl Ctx {
    /// Runs one batch on the blocking pool. `None` commands are heartbeats.
    pub(super) fn apply(
        &self,
        mut state: Option<State>,
        batch: Vec<Option<Command>>,
    ) -> (Option<State>, Vec<Outcome>) {
        let state = match self.admit(&mut state) {
            Ok(s) => s,
            Err(msg) => return (state, refuse_all(batch, &msg)),
        };
        let mut b = Batch {
            ctx: self,
            began_with: state.tail.key.clone(),
            state,
            buf: Vec::with_capacity(batch.len() * 1024),
            pending: Vec::new(),
            answered: Vec::new(),
            signed: Vec::new(),
            closed: false,
            seals: 0,
            sealed_to: self.last_seal.load(std::sync::atomic::Ordering::SeqCst),
        };
        for cmd in batch {
            b.command(cmd);
        }
        b.commit()
    }

    /// The chain's state, ready to sign: refused when its key may not sign
    /// now (under an offline root, a version the keyset does not vouch for
    /// signs nothing: the whole batch is refused before the token is asked
    /// and the chain left as it is), opened from disk when it is not open.
    /// On a refusal the state is left where it was.
    fn admit(&self, state: &mut Option<State>) -> Result<State, String> {
        let key = match state {
            Some(s) => Some(s.tail.key.clone()),
            // The version an open would sign with.
            None => self.keyring.signing_key(&self.key_name),
        };
        let gate = match &key {
            Some(k) => self.keyring.may_sign(k),
            None if self.keyring.root_required() => Err(Error::Unavailable(format!(
                "no version of {} may sign: the offline root certified none that is active; \
                 certify a standby (sigil keys prepare, a ceremony, sigil keys import-statement)",
                self.key_name
            ))),
            None => Ok(()),
        };
        if let Err(e) = gate {
            return Err(format!("chain {}: {e}", self.name));
        }
        if let Some(s) = state.take() {
            return Ok(s);
        }
        if let Some(why) = self.refused.get() {
            return Err(why.clone());
        }
        self.open().map_err(|e| self.open_failed(e))
    }

    /// Why an open failed, as every command is told; damage sigild will not
    /// cut is remembered, so the file is not read again until a restart.
    fn open_failed(&self, e: Error) -> String {
        tracing::error!(chain = %self.name, error = %e, "cannot open chain");
        let why = format!("chain {} cannot be opened: {e}", self.name);
        if let Error::Corrupt(_) = e {
            let why = format!(
                "{why}; sigild does not append to it until it is repaired and sigild restarted"
            );
            self.refused.get_or_init(|| why).clone()
        } else {
            why
        }
    }

    /// Writes into `buf` the rotation boundary from the tail's key to
    /// `target`: the old key's endorsement, then the new key's restart open.
    pub(super) fn cross_boundary(
        &self,
        target: &KeyVersion,
        tail: &mut Tail,
        buf: &mut Vec<u8>,
    ) -> Result<(), Error> {
        let (entry, boundary) =
            seal::rotation(self.backend(), &self.name, tail, target, &self.settings)?;
        push(buf, &entry);
        push(buf, &boundary.line);
        tracing::info!(chain = %self.name, key = %target.id, "rotation boundary");
        Ok(())
    }
}

fn push(buf: &mut Vec<u8>, line: &str) {
    buf.extend_from_slice(line.as_bytes());
    buf.push(b'\n');
}

impl Batch<'_> {
    fn command(&mut self, cmd: Option<Command>) {
        if let Some(Command::Seal { seal, done }) = cmd {
            return self.seal_entry(&seal, done);
        }
        if self.closed {
            // The run is closed: nothing may follow its session_close.
            if let Some(cmd) = cmd {
                let e = Error::Unavailable("chain is shutting down".into());
                self.answered.push(fail(cmd, e));
            }
            return;
        }
        match cmd {
            None => self.heartbeat(),
            Some(Command::Append { record, reply }) => self.append(record, reply),
            Some(Command::SignDigest {
                key,
                digest,
                principal,
                reply,
            }) => self.sign_digest(key, &digest, &principal, reply),
            Some(Command::RecordRevocation { revoked, reply }) => {
                self.record_revocation(&revoked, reply)
            }
            Some(Command::Rotate { target, reply }) => self.rotate(&target, reply),
            Some(Command::Open { reply }) => self.answered.push(Outcome::Done(reply, Ok(()))),
            Some(Command::Close { reason, reply }) => self.close(&reason, reply),
            Some(Command::Seal { .. }) => {}
        }
    }

    /// A seal entry joins the buffer (no signature: it carries the
    /// checkpoint's own).
    fn seal_entry(&mut self, seal: &crate::log::Seal, done: Option<oneshot::Sender<bool>>) {
        match self.ctx.seal_line(seal, self.sealed_to) {
            Some(line) => {
                push(&mut self.buf, &line);
                self.seals += 1;
                self.sealed_to = seal.size;
                self.pending.push(Outcome::Sealed(done, true));
            }
            None => self.answered.push(Outcome::Sealed(done, false)),
        }
    }

    /// Files a command's result: its receipt joins the buffer and its reply
    /// waits on the fsync; a refusal is answered at once.
    fn settle<T: Written>(
        &mut self,
        r: Result<T, Error>,
        reply: Reply<T>,
        outcome: fn(Reply<T>, Result<T, Error>) -> Outcome,
    ) -> bool {
        match r {
            Ok(v) => {
                push(&mut self.buf, v.line());
                self.pending.push(outcome(reply, Ok(v)));
                true
            }
            Err(e) => {
                self.answered.push(outcome(reply, Err(e)));
                false
            }
        }
    }

    /// One more signature by `key` in this batch.
    fn count(&mut self, key: &KeyVersion) {
        match self.signed.iter_mut().find(|(k, _)| k == key) {
            Some((_, n)) => *n += 1,
            None => self.signed.push((key.clone(), 1)),
        }
    }

    fn seal(&mut self, record: Map<String, Value>) -> Result<Appended, Error> {
        seal::seal(self.ctx.backend(), &mut self.state.tail, record, None)
    }

    fn heartbeat(&mut self) {
        let t = &self.state.tail;
        let ctrl = session::heartbeat(
            &t.run_nonce,
            &t.open_nonce,
            t.beat + 1,
            &t.hash,
            t.seq,
            &timestamp::now(),
        );
        let rec = seal::daemon_record("sigil://session/heartbeat".into(), &self.ctx.settings);
        match seal::seal(self.ctx.backend(), &mut self.state.tail, rec, Some(ctrl)) {
            Ok(a) => {
                self.state.tail.beat += 1;
                push(&mut self.buf, &a.line);
            }
            Err(e) => tracing::warn!(chain = %self.ctx.name, error = %e, "heartbeat not written"),
        }
    }

    fn append(&mut self, record: Map<String, Value>, reply: Reply<Appended>) {
        let r = self
            .ctx
            .check_replay(&self.state.tail, &record)
            .and_then(|()| self.seal(record));
        if self.settle(r, reply, Outcome::Appended) {
            self.count(&self.state.tail.key.clone());
        }
    }

    fn sign_digest(
        &mut self,
        key: KeyVersion,
        digest: &[u8; 32],
        principal: &str,
        reply: Reply<DigestSigned>,
    ) {
        let backend = self.ctx.backend();
        let r = backend
            .sign(&key.id, digest)
            .map_err(Error::from)
            .and_then(|sig| {
                // The caller relies on this signature most of all.
                let hex_sig = sigil_proto::sig::encode(&sig.0);
                seal::check_signature(backend, &key, digest, &hex_sig)?;
                let ledger = self.seal(seal::sign_digest_record(digest, &key, principal))?;
                Ok(DigestSigned {
                    signature: sig.0,
                    key,
                    ledger,
                })
            });
        let key = r.as_ref().map(|s| s.key.clone()).ok();
        if self.settle(r, reply, Outcome::Signed) {
            // The ledger receipt is the chain key's; the digest signature
            // is the digest key's.
            self.count(&self.state.tail.key.clone());
            if let Some(k) = key {
                self.count(&k);
            }
        }
    }

    fn record_revocation(&mut self, revoked: &Revoked, reply: Reply<RevocationWritten>) {
        let through = self.state.tail.ended.get(&revoked.key.public_hex).cloned();
        let rec = seal::revocation_record(revoked, through.as_ref(), &self.ctx.settings);
        let r = self
            .seal(rec)
            .map(|receipt| RevocationWritten { receipt, through });
        self.settle(r, reply, Outcome::Revoked);
    }

    /// Crosses to `target` when it is a newer version of the tail's key
    /// name; replies, once the boundary is durable, with the key the chain
    /// signs with afterwards.
    fn rotate(&mut self, target: &KeyVersion, reply: Reply<KeyVersion>) {
        let tail = &self.state.tail.key;
        let newer = target.id.name() == tail.id.name() && target.id.version() > tail.id.version();
        if !newer {
            self.pending.push(Outcome::Key(reply, Ok(tail.clone())));
            return;
        }
        let ctx = self.ctx;
        let crossed = ctx
            .keyring
            .may_sign(target)
            .and_then(|()| ctx.cross_boundary(target, &mut self.state.tail, &mut self.buf));
        match crossed {
            Ok(()) => self.pending.push(Outcome::Key(reply, Ok(target.clone()))),
            Err(e) => {
                tracing::error!(chain = %ctx.name, error = %e, "rotation boundary failed");
                let msg = format!("chain {}: key rotation boundary not written: {e}", ctx.name);
                self.answered
                    .push(Outcome::Key(reply, Err(Error::Unavailable(msg))));
            }
        }
    }

    fn close(&mut self, reason: &str, reply: Reply<()>) {
        self.closed = true;
        let t = &self.state.tail;
        let ctrl = session::close(
            &t.run_nonce,
            &t.open_nonce,
            t.seq + 1,
            &t.hash,
            t.segment_count + 1,
            reason,
        );
        let rec = seal::daemon_record("sigil://session/close".into(), &self.ctx.settings);
        match seal::seal(self.ctx.backend(), &mut self.state.tail, rec, Some(ctrl)) {
            Ok(a) => {
                push(&mut self.buf, &a.line);
                self.pending.push(Outcome::Done(reply, Ok(())));
            }
            Err(e) => self.answered.push(Outcome::Done(reply, Err(e))),
        }
    }

    /// Makes the batch durable with one write and one fdatasync, then
    /// releases its replies; on a failed write every waiting reply says so
    /// and the chain is re-read from disk at the next command (fail-stop:
    /// the tail ran ahead of the file, and after a failed fsync the page
    /// cache may not match the disk).
    fn commit(self) -> (Option<State>, Vec<Outcome>) {
        let Batch {
            ctx,
            mut state,
            buf,
            pending,
            mut answered,
            signed,
            began_with,
            seals,
            sealed_to,
            ..
        } = self;
        if buf.is_empty() {
            answered.extend(pending);
            return (Some(state), answered);
        }
        let started = std::time::Instant::now();
        let written = state.file.append_durable(&buf);
        let m = crate::metrics::get();
        m.fsync_seconds.time(started.elapsed());
        if let Err(e) = written {
            tracing::error!(chain = %ctx.name, error = %e, "append failed; chain will be re-read from disk");
            let msg = match &e {
                AppendError::NothingWritten(e) => format!(
                    "chain {}: {e}; nothing of this request was written",
                    ctx.name
                ),
                AppendError::OutcomeUnknown(e) => format!(
                    "chain {}: {e}; outcome unknown: the receipt may be durable; check the \
                     chain before retrying",
                    ctx.name
                ),
            };
            answered.extend(
                pending
                    .into_iter()
                    .map(|o| o.into_failed(Error::Unavailable(msg.clone()))),
            );
            return (None, answered);
        }
        if seals > 0 {
            ctx.last_seal
                .store(sealed_to, std::sync::atomic::Ordering::SeqCst);
            crate::failpoint::hit("chain.seal_written");
        }
        let lines = (buf.iter().filter(|b| **b == b'\n').count() - seals) as u64;
        m.batch_size.observe(lines as f64);
        m.receipts(&ctx.name, lines);
        if state.tail.key != began_with {
            crate::failpoint::hit("rotate.chain_boundary");
        }
        for (k, n) in &signed {
            ctx.counters.count(&k.id, *n);
        }
        ctx.log_durable(&mut state.tail);
        answered.extend(pending);
        (Some(state), answered)
    }
}
