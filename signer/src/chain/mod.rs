//! Chain sequencers: one task owns each chain's tail, signs its receipts in
//! order and group-commits them.
//!
//! A batch is every command waiting when the task wakes (up to
//! `max_batch`): each receipt is built, signed by the chain's key in the
//! token and appended to one buffer; one write and one fdatasync make the
//! whole batch durable; only then do the replies go out. Signing within a
//! chain is serial because each receipt's hash covers the previous
//! receipt's signature; chains run in parallel.
//!
//! Before each batch the task compares its tail key with the signing
//! version of its key name; when a rotation has made a successor, the batch
//! starts with the boundary (the old key's endorsement and the new key's
//! restart open), so no receipt is ever signed by the wrong side.

mod recover;
mod scan;
mod seal;
mod tail;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde_json::{Map, Value};
use sigil_proto::receipt::session;
use sigil_proto::timestamp;
use tokio::sync::{mpsc, oneshot};

use crate::keyring::{ActiveKey, Keyring, Revoked};
use crate::store::{AppendError, ChainFile};
use crate::Error;
use tail::Tail;

pub(crate) use seal::check_signature;

/// Settings every chain shares.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Interval of heartbeat receipts (0: none).
    pub heartbeat_seconds: u64,
    /// Close an unwritten chain after this many seconds, and reopen it on
    /// demand (0: never).
    pub idle_close_seconds: u64,
    /// Most commands signed and committed together.
    pub max_batch: usize,
    /// Depth of each chain's queue; callers wait when it is full.
    pub queue_depth: usize,
    /// `policy_hash` written in session controls.
    pub policy_hash: String,
    /// Receipts remembered per chain for the replay check.
    pub replay_window: usize,
    /// Signatures after which a key version asks to be rotated (0: never).
    pub max_signatures: u64,
    /// Where such requests go (key names).
    pub rotate_requests: Option<mpsc::UnboundedSender<String>>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            heartbeat_seconds: 60,
            idle_close_seconds: 900,
            max_batch: 4096,
            queue_depth: 8192,
            policy_hash: String::new(),
            replay_window: 10_000,
            max_signatures: 0,
            rotate_requests: None,
        }
    }
}

/// A durable receipt, as the reply carries it.
#[derive(Clone, Debug)]
pub struct Appended {
    /// `chain_seq`.
    pub seq: u64,
    /// Receipt hash.
    pub hash: String,
    /// The line as written, without its newline.
    pub line: String,
}

/// A signed digest and where the ledger recorded it.
#[derive(Clone, Debug)]
pub struct DigestSigned {
    /// Ed25519 signature over the digest.
    pub signature: [u8; 64],
    /// Signing key version.
    pub key: ActiveKey,
    /// Ledger receipt.
    pub ledger: Appended,
}

/// A revocation receipt, and where the revocation takes effect on the chain.
#[derive(Clone, Debug)]
pub struct RevocationWritten {
    /// The revocation receipt.
    pub receipt: Appended,
    /// The revoked key's last receipt on this chain, (seq, hash): `None`
    /// when it never signed here.
    pub through: Option<(u64, String)>,
}

type Reply<T> = oneshot::Sender<Result<T, Error>>;

/// What a chain task is asked to do.
pub enum Command {
    /// Append a producer's record (already checked by `record::parse`).
    Append {
        /// Record members.
        record: Map<String, Value>,
        /// Where the receipt goes.
        reply: Reply<Appended>,
    },
    /// Sign a digest with a digest key and record it, signed by the chain's
    /// key (ledger chains): a key that signs caller-chosen digests never
    /// signs a chain.
    SignDigest {
        /// The digest key's signing version.
        key: ActiveKey,
        /// The 32-byte digest.
        digest: [u8; 32],
        /// Who asked.
        principal: String,
        /// Where the signature goes.
        reply: Reply<DigestSigned>,
    },
    /// Open the chain now (genesis or restart open), before any append.
    Open {
        /// Done.
        reply: Reply<()>,
    },
    /// Cross to the key name's signing version now if the chain is not on
    /// it yet; replies once the boundary is durable.
    Rotate {
        /// The key the chain signs with afterwards.
        reply: Reply<ActiveKey>,
    },
    /// Write a receipt recording a key revocation.
    RecordRevocation {
        /// The revocation.
        revoked: Revoked,
        /// Done.
        reply: Reply<RevocationWritten>,
    },
    /// End the run with a session_close and stop the task.
    Close {
        /// `close_reason`.
        reason: String,
        /// Done.
        reply: Reply<()>,
    },
}

/// A handle to a chain's task.
#[derive(Clone)]
pub struct ChainHandle {
    tx: mpsc::Sender<Command>,
}

impl ChainHandle {
    /// Sends a command; fails when the task has stopped.
    pub async fn send(&self, cmd: Command) -> Result<(), Error> {
        self.tx
            .send(cmd)
            .await
            .map_err(|_| Error::Unavailable("chain is shutting down".into()))
    }

    /// Sends a command built around a reply channel and waits for the reply.
    pub async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, Error> {
        let (tx, rx) = oneshot::channel();
        self.send(make(tx)).await?;
        rx.await
            .map_err(|_| Error::Unavailable("chain task stopped before replying".into()))?
    }
}

/// Starts the task of chain `name`, stored at `path`, signed by `key_name`.
pub fn spawn(
    name: String,
    path: PathBuf,
    key_name: String,
    keyring: Arc<Keyring>,
    settings: Arc<Settings>,
) -> ChainHandle {
    let (tx, rx) = mpsc::channel(settings.queue_depth.max(1));
    let ctx = Arc::new(Ctx {
        name,
        path,
        key_name,
        keyring,
        settings,
        refused: OnceLock::new(),
        counted: std::sync::atomic::AtomicBool::new(false),
    });
    tokio::spawn(run(ctx, rx));
    ChainHandle { tx }
}

/// Ledger chains: `sigil.ledger.<digest key>`.
const LEDGER_PREFIX: &str = "sigil.ledger.";

struct Ctx {
    name: String,
    path: PathBuf,
    key_name: String,
    keyring: Arc<Keyring>,
    settings: Arc<Settings>,
    /// Why the chain's file cannot be resumed (damage sigild will not cut,
    /// a signer it does not know, a symlink): every command is answered
    /// with it, without reading the file again, until a restart.
    refused: OnceLock<String>,
    /// The signatures already in the file were counted (at the first open):
    /// a reopen after a failed write must not count them again, or the next
    /// scheduled rotation comes early.
    counted: std::sync::atomic::AtomicBool,
}

struct State {
    file: ChainFile,
    tail: Tail,
}

enum Outcome {
    Appended(Reply<Appended>, Result<Appended, Error>),
    Signed(Reply<DigestSigned>, Result<DigestSigned, Error>),
    Done(Reply<()>, Result<(), Error>),
    Key(Reply<ActiveKey>, Result<ActiveKey, Error>),
    Revoked(Reply<RevocationWritten>, Result<RevocationWritten, Error>),
}

impl Outcome {
    fn send(self) {
        match self {
            Outcome::Appended(tx, r) => drop(tx.send(r)),
            Outcome::Signed(tx, r) => drop(tx.send(r)),
            Outcome::Done(tx, r) => drop(tx.send(r)),
            Outcome::Key(tx, r) => drop(tx.send(r)),
            Outcome::Revoked(tx, r) => drop(tx.send(r)),
        }
    }

    fn into_failed(self, e: Error) -> Outcome {
        match self {
            Outcome::Appended(tx, _) => Outcome::Appended(tx, Err(e)),
            Outcome::Signed(tx, _) => Outcome::Signed(tx, Err(e)),
            Outcome::Done(tx, _) => Outcome::Done(tx, Err(e)),
            Outcome::Key(tx, _) => Outcome::Key(tx, Err(e)),
            Outcome::Revoked(tx, _) => Outcome::Revoked(tx, Err(e)),
        }
    }
}

fn fail(cmd: Command, e: Error) -> Outcome {
    match cmd {
        Command::Append { reply, .. } => Outcome::Appended(reply, Err(e)),
        Command::SignDigest { reply, .. } => Outcome::Signed(reply, Err(e)),
        Command::RecordRevocation { reply, .. } => Outcome::Revoked(reply, Err(e)),
        Command::Rotate { reply } => Outcome::Key(reply, Err(e)),
        Command::Open { reply } | Command::Close { reply, .. } => Outcome::Done(reply, Err(e)),
    }
}

async fn run(ctx: Arc<Ctx>, mut rx: mpsc::Receiver<Command>) {
    let mut state: Option<State> = None;
    let beat_every = ctx.settings.heartbeat_seconds;
    let mut beat = tokio::time::interval(Duration::from_secs(beat_every.max(1)));
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    beat.tick().await;
    // Heartbeats only for a chain written since the last one: an idle
    // chain costs no token signatures (600 idle chains would otherwise
    // saturate a 10-signatures-a-second device).
    let mut written = false;
    // A chain idle for `idle_close_seconds` is closed and its state (file,
    // tail, replay window) dropped; the next command reopens it.
    let idle = Duration::from_secs(ctx.settings.idle_close_seconds);
    let mut last_command = tokio::time::Instant::now();
    let mut idle_closed = false;
    loop {
        let idle_due = last_command + idle;
        // `idle_close`: the batch is the daemon's own close of an idle chain
        // (no caller waits on it), after which the chain's state is dropped.
        let (batch, idle_close) = tokio::select! {
            cmd = rx.recv() => match cmd {
                None => break,
                Some(first) => {
                    let mut batch = vec![Some(first)];
                    while batch.len() < ctx.settings.max_batch {
                        match rx.try_recv() {
                            Ok(c) => batch.push(Some(c)),
                            Err(_) => break,
                        }
                    }
                    (batch, false)
                }
            },
            _ = beat.tick(), if beat_every > 0 && state.is_some() => {
                if !written {
                    continue;
                }
                (vec![None], false)
            }
            _ = tokio::time::sleep_until(idle_due), if !idle.is_zero() && state.is_some() => {
                let (reply, _) = oneshot::channel();
                (vec![Some(Command::Close { reason: "idle".into(), reply })], true)
            }
        };
        let commands = !idle_close && batch.iter().any(Option::is_some);
        if commands {
            last_command = tokio::time::Instant::now();
        }
        // Shutting down a chain that is already closed for idleness: its
        // file ends with a session_close; reopening it only to close it
        // again would write two receipts for nothing.
        if idle_closed
            && state.is_none()
            && batch
                .iter()
                .all(|c| matches!(c, Some(Command::Close { .. })))
        {
            for cmd in batch.into_iter().flatten() {
                if let Command::Close { reply, .. } = cmd {
                    let _ = reply.send(Ok(()));
                }
            }
            break;
        }
        written = commands;
        let closing = batch
            .iter()
            .any(|c| matches!(c, Some(Command::Close { .. })));
        let c = ctx.clone();
        let taken = state.take();
        let (next, outcomes) =
            match tokio::task::spawn_blocking(move || c.apply(taken, batch)).await {
                Ok(r) => r,
                Err(e) => {
                    // The batch's reply senders were dropped with the task, so
                    // its callers see an error; the tail is re-read from disk.
                    tracing::error!(chain = %ctx.name, error = %e, "chain batch panicked");
                    (None, Vec::new())
                }
            };
        if idle_close {
            // Closed, or (on a failure) to be re-read from disk: either way
            // nothing is held until the next command. Only a written close
            // spares the shutdown its own.
            idle_closed = outcomes
                .iter()
                .any(|o| matches!(o, Outcome::Done(_, Ok(()))));
            tracing::debug!(chain = %ctx.name, closed = idle_closed, "idle chain released");
            continue;
        }
        if commands {
            idle_closed = false;
        }
        state = next;
        for o in outcomes {
            o.send();
        }
        if closing {
            break;
        }
    }
}

impl Ctx {
    fn backend(&self) -> &dyn sigil_keys::Backend {
        self.keyring.backend().as_ref()
    }

    /// Runs one batch on the blocking pool. `None` commands are heartbeats.
    fn apply(
        &self,
        state: Option<State>,
        batch: Vec<Option<Command>>,
    ) -> (Option<State>, Vec<Outcome>) {
        let mut outcomes = Vec::with_capacity(batch.len());
        // Under an offline root, a version the keyset does not vouch for
        // (now) signs nothing: the whole batch is refused before the token
        // is asked, and the chain is left as it is (fail closed).
        // The key read here is the one the batch crosses to and signs with.
        let target = self.keyring.signing_key(&self.key_name);
        let gate = match &target {
            Some(t) => self.keyring.may_sign(t),
            None if self.keyring.root_required() => Err(Error::Unavailable(format!(
                "no version of {} may sign: the offline root certified none that is active; \
                 certify a standby (sigil keys prepare, a ceremony, sigil keys import-statement)",
                self.key_name
            ))),
            None => Ok(()),
        };
        if let Err(e) = gate {
            let msg = format!("chain {}: {e}", self.name);
            for cmd in batch.into_iter().flatten() {
                outcomes.push(fail(cmd, Error::Unavailable(msg.clone())));
            }
            return (state, outcomes);
        }
        let opened = match (state, self.refused.get()) {
            (Some(s), _) => Ok(s),
            (None, Some(why)) => Err(why.clone()),
            (None, None) => self.open().map_err(|e| {
                tracing::error!(chain = %self.name, error = %e, "cannot open chain");
                let why = format!("chain {} cannot be opened: {e}", self.name);
                if let Error::Corrupt(_) = e {
                    let why = format!(
                        "{why}; sigild does not append to it until it is repaired and sigild \
                         restarted"
                    );
                    self.refused.get_or_init(|| why).clone()
                } else {
                    why
                }
            }),
        };
        let mut state = match opened {
            Ok(s) => s,
            Err(msg) => {
                for cmd in batch.into_iter().flatten() {
                    outcomes.push(fail(cmd, Error::Unavailable(msg.clone())));
                }
                return (None, outcomes);
            }
        };
        let mut buf = Vec::with_capacity(batch.len() * 1024);
        // Outcomes whose lines are in `buf` and so wait on the fsync.
        let mut pending = Vec::new();
        let push = |buf: &mut Vec<u8>, line: &str| {
            buf.extend_from_slice(line.as_bytes());
            buf.push(b'\n');
        };
        let mut signed = 0u64;
        let mut digest_signed: Vec<ActiveKey> = Vec::new();
        let key_at_start = state.tail.key.clone();
        if let Err(e) = self.cross_boundary(target.as_ref(), &mut state.tail, &mut buf) {
            let msg = format!(
                "chain {}: key rotation boundary not written: {e}",
                self.name
            );
            tracing::error!(chain = %self.name, error = %e, "rotation boundary failed");
            for cmd in batch.into_iter().flatten() {
                outcomes.push(fail(cmd, Error::Unavailable(msg.clone())));
            }
            return (Some(state), outcomes);
        }
        let mut closed = false;
        for cmd in batch {
            if closed {
                // The run is closed: nothing may follow its session_close.
                if let Some(cmd) = cmd {
                    outcomes.push(fail(
                        cmd,
                        Error::Unavailable("chain is shutting down".into()),
                    ));
                }
                continue;
            }
            let t = &mut state.tail;
            match cmd {
                None => {
                    let ctrl = session::heartbeat(
                        &t.run_nonce,
                        &t.open_nonce,
                        t.beat + 1,
                        &t.hash,
                        t.seq,
                        &timestamp::now(),
                    );
                    let rec =
                        seal::daemon_record("sigil://session/heartbeat".into(), &self.settings);
                    match seal::seal(self.backend(), t, rec, Some(ctrl)) {
                        Ok(a) => {
                            t.beat += 1;
                            push(&mut buf, &a.line);
                        }
                        Err(e) => {
                            tracing::warn!(chain = %self.name, error = %e, "heartbeat not written")
                        }
                    }
                }
                Some(Command::Append { record, reply }) => {
                    let r = self
                        .check_replay(t, &record)
                        .and_then(|_| seal::seal(self.backend(), t, record, None));
                    match r {
                        Ok(a) => {
                            push(&mut buf, &a.line);
                            signed += 1;
                            pending.push(Outcome::Appended(reply, Ok(a)));
                        }
                        Err(e) => outcomes.push(Outcome::Appended(reply, Err(e))),
                    }
                }
                Some(Command::SignDigest {
                    key,
                    digest,
                    principal,
                    reply,
                }) => {
                    let r = self
                        .backend()
                        .sign(&key.id, &digest)
                        .map_err(Error::from)
                        .and_then(|sig| {
                            // The caller relies on this signature most of all.
                            let hex_sig = format!("ed25519:{}", hex::encode(sig.0));
                            seal::check_signature(self.backend(), &key, &digest, &hex_sig)?;
                            let ledger = seal::seal(
                                self.backend(),
                                t,
                                seal::sign_digest_record(&digest, &key, &principal),
                                None,
                            )?;
                            Ok(DigestSigned {
                                signature: sig.0,
                                key,
                                ledger,
                            })
                        });
                    match r {
                        Ok(s) => {
                            push(&mut buf, &s.ledger.line);
                            // The ledger receipt is the chain key's; the
                            // digest signature is the digest key's.
                            signed += 1;
                            digest_signed.push(s.key.clone());
                            pending.push(Outcome::Signed(reply, Ok(s)));
                        }
                        Err(e) => outcomes.push(Outcome::Signed(reply, Err(e))),
                    }
                }
                Some(Command::RecordRevocation { revoked, reply }) => {
                    let through = t.ended.get(&revoked.key.public_hex).cloned();
                    match seal::seal(
                        self.backend(),
                        t,
                        seal::revocation_record(&revoked, through.as_ref(), &self.settings),
                        None,
                    ) {
                        Ok(a) => {
                            push(&mut buf, &a.line);
                            let w = RevocationWritten {
                                receipt: a,
                                through,
                            };
                            pending.push(Outcome::Revoked(reply, Ok(w)));
                        }
                        Err(e) => outcomes.push(Outcome::Revoked(reply, Err(e))),
                    }
                }
                Some(Command::Rotate { reply }) => {
                    pending.push(Outcome::Key(reply, Ok(t.key.clone())))
                }
                Some(Command::Open { reply }) => outcomes.push(Outcome::Done(reply, Ok(()))),
                Some(Command::Close { reason, reply }) => {
                    closed = true;
                    let ctrl = session::close(
                        &t.run_nonce,
                        &t.open_nonce,
                        t.seq + 1,
                        &t.hash,
                        t.segment_count + 1,
                        &reason,
                    );
                    let rec = seal::daemon_record("sigil://session/close".into(), &self.settings);
                    match seal::seal(self.backend(), t, rec, Some(ctrl)) {
                        Ok(a) => {
                            push(&mut buf, &a.line);
                            pending.push(Outcome::Done(reply, Ok(())));
                        }
                        Err(e) => outcomes.push(Outcome::Done(reply, Err(e))),
                    }
                }
            }
        }
        if buf.is_empty() {
            outcomes.extend(pending);
            return (Some(state), outcomes);
        }
        let started = std::time::Instant::now();
        let written = state.file.append_durable(&buf);
        let m = crate::metrics::get();
        m.fsync_seconds.time(started.elapsed());
        match written {
            Ok(()) => {
                let lines = buf.iter().filter(|b| **b == b'\n').count() as u64;
                m.batch_size.observe(lines as f64);
                m.receipts(&self.name, lines);
                if state.tail.key != key_at_start {
                    crate::failpoint::hit("rotate.chain_boundary");
                }
                self.keyring.count_signatures(&state.tail.key.id, signed);
                self.maybe_request_rotation(&state.tail.key);
                for k in &digest_signed {
                    self.keyring.count_signatures(&k.id, 1);
                    self.maybe_request_rotation(k);
                }
                outcomes.extend(pending);
                (Some(state), outcomes)
            }
            Err(e) => {
                tracing::error!(chain = %self.name, error = %e, "append failed; chain will be re-read from disk");
                let msg = match &e {
                    AppendError::NothingWritten(e) => format!(
                        "chain {}: {e}; nothing of this request was written",
                        self.name
                    ),
                    AppendError::OutcomeUnknown(e) => format!(
                        "chain {}: {e}; outcome unknown: the receipt may be durable; check the \
                         chain before retrying",
                        self.name
                    ),
                };
                for o in pending {
                    outcomes.push(o.into_failed(Error::Unavailable(msg.clone())));
                }
                // Fail-stop: the in-memory tail ran ahead of the file, and
                // after a failed fsync the page cache may not match the
                // disk; the next command re-reads the chain from disk.
                (None, outcomes)
            }
        }
    }

    /// Writes the rotation boundary into `buf` when the key name's signing
    /// version is not the tail's key.
    fn cross_boundary(
        &self,
        target: Option<&ActiveKey>,
        tail: &mut Tail,
        buf: &mut Vec<u8>,
    ) -> Result<(), Error> {
        let Some(target) = target else {
            return Ok(());
        };
        if *target == tail.key {
            return Ok(());
        }
        let (entry, boundary) =
            seal::rotation(self.backend(), &self.name, tail, target, &self.settings)?;
        buf.extend_from_slice(entry.as_bytes());
        buf.push(b'\n');
        buf.extend_from_slice(boundary.line.as_bytes());
        buf.push(b'\n');
        tracing::info!(chain = %self.name, key = %target.id, "rotation boundary");
        Ok(())
    }

    fn maybe_request_rotation(&self, key: &ActiveKey) {
        let max = self.settings.max_signatures;
        if max > 0 && self.keyring.signatures(&key.id) >= max {
            if let Some(tx) = &self.settings.rotate_requests {
                let _ = tx.send(key.id.name().to_owned());
            }
        }
    }

    fn check_replay(&self, tail: &Tail, record: &Map<String, Value>) -> Result<(), Error> {
        let Some(id) = record.get("action_id").and_then(Value::as_str) else {
            return Ok(());
        };
        let phase = record
            .get("decision_phase")
            .and_then(Value::as_str)
            .unwrap_or("");
        if tail.seen(id, phase) {
            return Err(Error::AlreadyExists(format!(
                "record.action_id: {id:?}{} is already in chain {} (replays are refused; \
                 an intent and an outcome may share an action_id with different decision_phase)",
                if phase.is_empty() {
                    String::new()
                } else {
                    format!(" with decision_phase {phase:?}")
                },
                self.name
            )));
        }
        Ok(())
    }
}
