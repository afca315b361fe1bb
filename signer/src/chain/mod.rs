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
//! A rotation reaches a chain as a command carrying the version to cross
//! to: at its place in the batch the chain writes the boundary (the old
//! key's endorsement and the new key's restart open), so every receipt
//! before it is the old key's and every one after it the new key's.
//!
//! `task` waits for work, `batch` signs and commits it, `recover` opens a
//! chain from disk, `scan` reads a chain file back, `seal` builds receipts.

mod batch;
mod recover;
mod scan;
mod seal;
mod tail;
mod task;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot};

use crate::counters::Counters;
use crate::keyring::{KeyVersion, Keyring, Revoked};
use crate::log::{ReceiptLog, Seal};
use crate::store::ChainFile;
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
    pub key: KeyVersion,
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
        key: KeyVersion,
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
    /// Cross to `target`, a newer version of the chain's key name, at this
    /// place in the chain; replies once the boundary is durable (at once
    /// when the chain is already on it or past it).
    Rotate {
        /// The version to cross to.
        target: KeyVersion,
        /// The key the chain signs with afterwards.
        reply: Reply<KeyVersion>,
    },
    /// Write a receipt recording a key revocation.
    RecordRevocation {
        /// The revocation.
        revoked: Revoked,
        /// Done.
        reply: Reply<RevocationWritten>,
    },
    /// Write a seal entry (the log's checkpoint, and where the chain's
    /// latest receipt is in it) after what the chain holds; `done` hears
    /// whether it is durable.
    Seal {
        /// The checkpoint and inclusion proof.
        seal: Seal,
        /// Told `true` once the entry is durable.
        done: Option<oneshot::Sender<bool>>,
    },
    /// End the run with a session_close; the task then takes only seals,
    /// until its last handle is dropped.
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

/// What every chain shares: the keys, the signature counters, the
/// settings and the receipt log.
#[derive(Clone)]
pub struct Shared {
    /// The keys.
    pub keyring: Arc<Keyring>,
    /// Signatures by key version.
    pub counters: Arc<Counters>,
    /// Chain settings.
    pub settings: Arc<Settings>,
    /// The receipt log, when it is on.
    pub log: Option<Arc<ReceiptLog>>,
}

/// Starts the task of chain `name`, stored at `path`, signed by `key_name`.
pub fn spawn(name: String, path: PathBuf, key_name: String, shared: &Shared) -> ChainHandle {
    let settings = shared.settings.clone();
    let (tx, rx) = mpsc::channel(settings.queue_depth.max(1));
    let ctx = Arc::new(Ctx {
        name,
        path,
        key_name,
        keyring: shared.keyring.clone(),
        counters: shared.counters.clone(),
        settings,
        log: shared.log.clone(),
        last_seal: std::sync::atomic::AtomicU64::new(0),
        refused: OnceLock::new(),
        counted: std::sync::atomic::AtomicBool::new(false),
    });
    tokio::spawn(task::run(ctx, rx));
    ChainHandle { tx }
}

/// Ledger chains: `sigil.ledger.<digest key>`.
const LEDGER_PREFIX: &str = "sigil.ledger.";

struct Ctx {
    name: String,
    path: PathBuf,
    key_name: String,
    keyring: Arc<Keyring>,
    counters: Arc<Counters>,
    settings: Arc<Settings>,
    log: Option<Arc<ReceiptLog>>,
    /// Tree size of the last seal in the file (0: none): the next seal
    /// proves it extends that one.
    last_seal: std::sync::atomic::AtomicU64,
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

impl Ctx {
    fn backend(&self) -> &dyn sigil_keys::Backend {
        self.keyring.backend().as_ref()
    }

    /// Logs the receipts the tail signed since the last durable write; only
    /// once that write is durable, so the log never holds a receipt a
    /// crash could take back.
    fn log_durable(&self, tail: &mut Tail) {
        let fresh = std::mem::take(&mut tail.fresh);
        if let Some(log) = &self.log {
            log.append(&self.name, &fresh);
        }
    }

    /// The seal entry for `seal`, proving consistency with the seal at
    /// `prior` (0: none); `None` when the file is sealed at that size or
    /// later already, or the proof cannot be made.
    fn seal_line(&self, seal: &Seal, prior: u64) -> Option<String> {
        if prior >= seal.size {
            return None;
        }
        let consistency = match (&self.log, prior) {
            (_, 0) => None,
            (Some(log), prior) => match log.prove_consistency(prior, seal.size) {
                Ok(proof) => Some((prior, proof)),
                Err(e) => {
                    tracing::warn!(chain = %self.name, error = %e, "seal not written");
                    return None;
                }
            },
            (None, _) => return None,
        };
        Some(seal.entry(&self.name, consistency))
    }

    /// Writes seals into a chain that is not open (closed for idleness or
    /// at shutdown), after its last line, without opening a run.
    fn seal_unopened(&self, seals: Vec<(Seal, Option<oneshot::Sender<bool>>)>) {
        use std::sync::atomic::Ordering;
        let mut buf = Vec::new();
        let mut to = self.last_seal.load(Ordering::SeqCst);
        let mut replies = Vec::new();
        // Only a file this process opened (and so read back whole, its
        // torn tail cut) is appended to without opening it again.
        let opened = self.counted.load(Ordering::SeqCst) && self.refused.get().is_none();
        for (seal, done) in seals {
            if opened {
                if let Some(line) = self.seal_line(&seal, to) {
                    buf.extend_from_slice(line.as_bytes());
                    buf.push(b'\n');
                    to = seal.size;
                }
            }
            replies.push(done);
        }
        let ok = buf.is_empty()
            || match ChainFile::open_at_end(&self.path)
                .and_then(|mut f| f.append_durable(&buf).map_err(Error::from))
            {
                Ok(()) => {
                    self.last_seal.store(to, Ordering::SeqCst);
                    crate::failpoint::hit("chain.seal_written");
                    true
                }
                Err(e) => {
                    tracing::warn!(chain = %self.name, error = %e, "seal not written");
                    false
                }
            };
        for done in replies.into_iter().flatten() {
            let _ = done.send(ok);
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
