//! Chain sequencers: one task owns each chain's tail, signs its receipts in
//! order and group-commits them.
//!
//! A batch is every command waiting when the task wakes (up to
//! `max_batch`): each receipt is built, signed by the chain's key in the
//! token and appended to one buffer; one write and one fdatasync make the
//! whole batch durable; only then do the replies go out. Signing within a
//! chain is serial because each receipt's hash covers the previous
//! receipt's signature; chains run in parallel.

use std::collections::{HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};
use sigil_proto::gojson::escape_for_jsonl;
use sigil_proto::receipt::schema::{Emit, Kind, ACTION_RECORD};
use sigil_proto::receipt::session::{self, Open};
use sigil_proto::receipt::{self, Entry, SIG_PREFIX};
use sigil_proto::timestamp;
use tokio::sync::{mpsc, oneshot};

use crate::keyring::{ActiveKey, Keyring};
use crate::store::ChainFile;
use crate::Error;

/// Settings every chain shares.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Interval of heartbeat receipts (0: none).
    pub heartbeat_seconds: u64,
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
    pub key: ActiveKey,
    /// Ledger receipt.
    pub ledger: Appended,
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
    /// Sign a digest with the chain's key and record it (ledger chains).
    SignDigest {
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
    });
    tokio::spawn(run(ctx, rx));
    ChainHandle { tx }
}

struct Ctx {
    name: String,
    path: PathBuf,
    key_name: String,
    keyring: Arc<Keyring>,
    settings: Arc<Settings>,
}

struct State {
    file: ChainFile,
    tail: Tail,
}

struct Tail {
    seq: u64,
    hash: String,
    segment_count: u64,
    run_nonce: String,
    open_nonce: String,
    beat: u64,
    key: ActiveKey,
    recent: VecDeque<(String, String)>,
    recent_set: HashSet<(String, String)>,
}

enum Outcome {
    Appended(Reply<Appended>, Result<Appended, Error>),
    Signed(Reply<DigestSigned>, Result<DigestSigned, Error>),
    Done(Reply<()>, Result<(), Error>),
}

async fn run(ctx: Arc<Ctx>, mut rx: mpsc::Receiver<Command>) {
    let mut state: Option<State> = None;
    let beat_every = ctx.settings.heartbeat_seconds;
    let mut beat = tokio::time::interval(Duration::from_secs(beat_every.max(1)));
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    beat.tick().await;
    loop {
        let batch = tokio::select! {
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
                    batch
                }
            },
            _ = beat.tick(), if beat_every > 0 && state.is_some() => vec![None],
        };
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
        state = next;
        for o in outcomes {
            match o {
                Outcome::Appended(tx, r) => drop(tx.send(r)),
                Outcome::Signed(tx, r) => drop(tx.send(r)),
                Outcome::Done(tx, r) => drop(tx.send(r)),
            }
        }
        if closing {
            break;
        }
    }
}

impl Ctx {
    /// Runs one batch on the blocking pool. `None` commands are heartbeats.
    fn apply(
        &self,
        state: Option<State>,
        batch: Vec<Option<Command>>,
    ) -> (Option<State>, Vec<Outcome>) {
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut state = match state {
            Some(s) => s,
            None => match self.open() {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(chain = %self.name, error = %e, "cannot open chain");
                    let msg = format!("chain {} cannot be opened: {e}", self.name);
                    for cmd in batch.into_iter().flatten() {
                        outcomes.push(fail(cmd, Error::Unavailable(msg.clone())));
                    }
                    return (None, outcomes);
                }
            },
        };
        let mut buf = Vec::with_capacity(batch.len() * 1024);
        // Outcomes whose line is in `buf` and so wait on the fsync.
        let mut pending = Vec::new();
        for cmd in batch {
            match cmd {
                None => {
                    let t = &state.tail;
                    let ctrl = session::heartbeat(
                        &t.run_nonce,
                        &t.open_nonce,
                        t.beat + 1,
                        &t.hash,
                        t.seq,
                        &timestamp::now(),
                    );
                    match self.seal(
                        &mut state.tail,
                        control_record("heartbeat", &self.settings),
                        Some(ctrl),
                    ) {
                        Ok(a) => {
                            state.tail.beat += 1;
                            buf.extend_from_slice(a.line.as_bytes());
                            buf.push(b'\n');
                        }
                        Err(e) => {
                            tracing::warn!(chain = %self.name, error = %e, "heartbeat not written")
                        }
                    }
                }
                Some(Command::Append { record, reply }) => {
                    let r = self
                        .check_replay(&state.tail, &record)
                        .and_then(|_| self.seal(&mut state.tail, record, None));
                    match r {
                        Ok(a) => {
                            buf.extend_from_slice(a.line.as_bytes());
                            buf.push(b'\n');
                            pending.push(Outcome::Appended(reply, Ok(a)));
                        }
                        Err(e) => outcomes.push(Outcome::Appended(reply, Err(e))),
                    }
                }
                Some(Command::SignDigest {
                    digest,
                    principal,
                    reply,
                }) => match self.sign_digest(&mut state.tail, digest, &principal) {
                    Ok(s) => {
                        buf.extend_from_slice(s.ledger.line.as_bytes());
                        buf.push(b'\n');
                        pending.push(Outcome::Signed(reply, Ok(s)));
                    }
                    Err(e) => outcomes.push(Outcome::Signed(reply, Err(e))),
                },
                Some(Command::Open { reply }) => outcomes.push(Outcome::Done(reply, Ok(()))),
                Some(Command::Close { reason, reply }) => {
                    let t = &state.tail;
                    let ctrl = session::close(
                        &t.run_nonce,
                        &t.open_nonce,
                        t.seq + 1,
                        &t.hash,
                        t.segment_count + 1,
                        &reason,
                    );
                    match self.seal(
                        &mut state.tail,
                        control_record("close", &self.settings),
                        Some(ctrl),
                    ) {
                        Ok(a) => {
                            buf.extend_from_slice(a.line.as_bytes());
                            buf.push(b'\n');
                            pending.push(Outcome::Done(reply, Ok(())));
                        }
                        Err(e) => outcomes.push(Outcome::Done(reply, Err(e))),
                    }
                }
            }
        }
        if buf.is_empty() {
            return (Some(state), outcomes);
        }
        match state.file.append_durable(&buf) {
            Ok(()) => {
                outcomes.extend(pending);
                (Some(state), outcomes)
            }
            Err(e) => {
                tracing::error!(chain = %self.name, error = %e, "append failed; chain will be re-read from disk");
                let msg = format!(
                    "chain {}: {e}; nothing of this request was written",
                    self.name
                );
                for o in pending {
                    outcomes.push(match o {
                        Outcome::Appended(tx, _) => {
                            Outcome::Appended(tx, Err(Error::Unavailable(msg.clone())))
                        }
                        Outcome::Signed(tx, _) => {
                            Outcome::Signed(tx, Err(Error::Unavailable(msg.clone())))
                        }
                        Outcome::Done(tx, _) => {
                            Outcome::Done(tx, Err(Error::Unavailable(msg.clone())))
                        }
                    });
                }
                // The in-memory tail ran ahead of the file: drop it.
                (None, outcomes)
            }
        }
    }

    /// Opens the chain: a genesis on a new file, or a restart open after
    /// cutting a torn tail of an existing one. Durable before it returns.
    fn open(&self) -> Result<State, Error> {
        let key = self.keyring.ensure(&self.key_name)?;
        let policy_hash = self.settings.policy_hash.clone();
        let heartbeat_seconds = self.settings.heartbeat_seconds as i64;
        if !self.path.exists() {
            let file = ChainFile::create(&self.path)?;
            let open = Open {
                run_nonce: nonce()?,
                open_nonce: nonce()?,
                recorder_session: self.name.clone(),
                policy_hash,
                signer_key_epoch: key.id.to_string(),
                heartbeat_seconds,
                chain_open_seq: 0,
                prior: None,
            };
            let mut tail = Tail {
                seq: 0,
                hash: open.genesis_hash(),
                segment_count: 0,
                run_nonce: open.run_nonce.clone(),
                open_nonce: open.open_nonce.clone(),
                beat: 0,
                key,
                recent: VecDeque::new(),
                recent_set: HashSet::new(),
            };
            let a = self.seal_at(
                &mut tail,
                control_record("open", &self.settings),
                Some(open.control()),
                0,
            )?;
            let mut state = State { file, tail };
            state
                .file
                .append_durable(format!("{}\n", a.line).as_bytes())?;
            tracing::info!(chain = %self.name, "chain created");
            return Ok(state);
        }
        let rec = ChainFile::recover(&self.path)?;
        if rec.cut > 0 {
            tracing::warn!(chain = %self.name, bytes = rec.cut, "cut a torn last line (never acknowledged)");
        }
        let mut tail = self.tail_from(&rec.lines, key)?;
        let open = Open {
            run_nonce: nonce()?,
            open_nonce: nonce()?,
            recorder_session: self.name.clone(),
            policy_hash,
            signer_key_epoch: tail.key.id.to_string(),
            heartbeat_seconds,
            chain_open_seq: tail.seq + 1,
            prior: Some((tail.hash.clone(), tail.seq)),
        };
        tail.run_nonce = open.run_nonce.clone();
        tail.open_nonce = open.open_nonce.clone();
        tail.beat = 0;
        let a = self.seal(
            &mut tail,
            control_record("open", &self.settings),
            Some(open.control()),
        )?;
        let mut state = State {
            file: rec.file,
            tail,
        };
        state
            .file
            .append_durable(format!("{}\n", a.line).as_bytes())?;
        tracing::info!(chain = %self.name, seq = a.seq, "chain resumed with a restart session_open");
        Ok(state)
    }

    /// Rebuilds the tail from the whole lines of a chain file.
    fn tail_from(&self, lines: &[String], key: ActiveKey) -> Result<Tail, Error> {
        let corrupt = |n: usize, e: String| {
            Error::Corrupt(format!("{} line {}: {e}", self.path.display(), n + 1))
        };
        let mut receipts = Vec::new();
        for (n, line) in lines.iter().enumerate() {
            match receipt::parse_entry(line).map_err(|e| corrupt(n, e.to_string()))? {
                Entry::Receipt(r) => receipts.push((n, r)),
                Entry::Other { .. } => {}
            }
        }
        let Some((n, last)) = receipts.last() else {
            return Err(corrupt(0, "no receipt in an existing chain file".into()));
        };
        if last.signer_key != key.public_hex {
            return Err(corrupt(
                *n,
                format!(
                    "the chain's last receipt is signed by {} but the active {} key is {} ({}); \
                     the key records do not match this chain",
                    last.signer_key, self.key_name, key.public_hex, key.id
                ),
            ));
        }
        let seq = last
            .chain_seq()
            .ok_or_else(|| corrupt(*n, "chain_seq is not a uint64".into()))?;
        let hash = last.hash().map_err(|e| corrupt(*n, e.to_string()))?;
        let segment_start = receipts
            .iter()
            .rposition(|(_, r)| {
                r.action_record
                    .get("key_transition")
                    .is_some_and(|v| !v.is_null())
            })
            .unwrap_or(0);
        let mut tail = Tail {
            seq,
            hash,
            segment_count: (receipts.len() - segment_start) as u64,
            run_nonce: String::new(),
            open_nonce: String::new(),
            beat: 0,
            key,
            recent: VecDeque::new(),
            recent_set: HashSet::new(),
        };
        let window = self.settings.replay_window;
        for (_, r) in receipts.iter().skip(receipts.len().saturating_sub(window)) {
            remember(
                &mut tail,
                window,
                (
                    r.str_field("action_id").into(),
                    r.str_field("decision_phase").into(),
                ),
            );
        }
        Ok(tail)
    }

    fn check_replay(&self, tail: &Tail, record: &Map<String, Value>) -> Result<(), Error> {
        let Some(id) = record.get("action_id").and_then(Value::as_str) else {
            return Ok(());
        };
        let phase = record
            .get("decision_phase")
            .and_then(Value::as_str)
            .unwrap_or("");
        if tail.recent_set.contains(&(id.to_owned(), phase.to_owned())) {
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

    fn sign_digest(
        &self,
        tail: &mut Tail,
        digest: [u8; 32],
        principal: &str,
    ) -> Result<DigestSigned, Error> {
        let signature = self.keyring.backend().sign(&tail.key.id, &digest)?;
        let mut record = Map::new();
        record.insert("action_type".into(), json!("unclassified"));
        record.insert("principal".into(), json!(principal));
        record.insert("actor".into(), json!("sigild"));
        record.insert(
            "target".into(),
            json!(format!(
                "sigil://sign-digest/sha256:{}",
                hex::encode(digest)
            )),
        );
        record.insert("intent".into(), json!("sign-digest"));
        record.insert("side_effect_class".into(), json!("none"));
        record.insert("reversibility".into(), json!("unknown"));
        record.insert("verdict".into(), json!("allow"));
        record.insert("transport".into(), json!("grpc"));
        let key = tail.key.clone();
        let ledger = self.seal(tail, record, None)?;
        Ok(DigestSigned {
            signature: signature.0,
            key,
            ledger,
        })
    }

    fn seal(
        &self,
        tail: &mut Tail,
        record: Map<String, Value>,
        control: Option<Value>,
    ) -> Result<Appended, Error> {
        let seq = tail.seq + 1;
        self.seal_at(tail, record, control, seq)
    }

    /// Builds, signs and hashes the receipt at `seq`, then advances the
    /// tail. Nothing changes when it fails.
    fn seal_at(
        &self,
        tail: &mut Tail,
        mut ar: Map<String, Value>,
        control: Option<Value>,
        seq: u64,
    ) -> Result<Appended, Error> {
        ar.insert("version".into(), json!(1));
        ar.insert("timestamp".into(), json!(timestamp::now()));
        if !ar.contains_key("action_id") {
            ar.insert("action_id".into(), json!(uuid::Uuid::now_v7().to_string()));
        }
        for field in ACTION_RECORD.fields {
            if field.emit == Emit::Always && !ar.contains_key(field.name) {
                let zero = match field.kind {
                    Kind::NullableStrings => Value::Null,
                    Kind::Int | Kind::Uint | Kind::Uint8 => json!(0),
                    _ => json!(""),
                };
                ar.insert(field.name.into(), zero);
            }
        }
        ar.insert("chain_prev_hash".into(), json!(tail.hash));
        ar.insert("chain_seq".into(), json!(seq));
        ar.insert("run_nonce".into(), json!(tail.run_nonce));
        if let Some(c) = control {
            ar.insert("session_control".into(), c);
        }
        // The one encoding of the record also checks its nested members;
        // an error here leaves the tail untouched.
        let canonical = receipt::action_record_bytes(&ar).map_err(|e| {
            let path = e.path.replacen("action_record", "record", 1);
            Error::InvalidArgument(format!("{path}: {}", e.problem))
        })?;
        let sig = self
            .keyring
            .backend()
            .sign(&tail.key.id, &receipt::digest(&canonical))?;
        let signature = format!("{SIG_PREFIX}{}", hex::encode(sig.0));
        let bytes = receipt::receipt_bytes(&canonical, &signature, &tail.key.public_hex, None);
        let hash = receipt::receipt_hash(&bytes);
        let line = String::from_utf8(escape_for_jsonl(&bytes))
            .map_err(|e| Error::Internal(format!("receipt is not UTF-8: {e}")))?;
        let window = self.settings.replay_window;
        let id = ar["action_id"].as_str().unwrap_or("").to_owned();
        let phase = ar
            .get("decision_phase")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        remember(tail, window, (id, phase));
        tail.seq = seq;
        tail.hash = hash.clone();
        tail.segment_count += 1;
        Ok(Appended { seq, hash, line })
    }
}

fn remember(tail: &mut Tail, window: usize, key: (String, String)) {
    if window == 0 {
        return;
    }
    if tail.recent_set.insert(key.clone()) {
        tail.recent.push_back(key);
    }
    while tail.recent.len() > window {
        if let Some(old) = tail.recent.pop_front() {
            tail.recent_set.remove(&old);
        }
    }
}

/// The members of a session-control receipt written by the daemon.
fn control_record(what: &str, settings: &Settings) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("action_type".into(), json!("unclassified"));
    m.insert("principal".into(), json!("sigil"));
    m.insert("actor".into(), json!("sigild"));
    m.insert("target".into(), json!(format!("sigil://session/{what}")));
    m.insert("side_effect_class".into(), json!("none"));
    m.insert("reversibility".into(), json!("unknown"));
    m.insert("policy_hash".into(), json!(settings.policy_hash));
    m.insert("verdict".into(), json!("allow"));
    m.insert("transport".into(), json!("receipt_session"));
    m
}

fn fail(cmd: Command, e: Error) -> Outcome {
    match cmd {
        Command::Append { reply, .. } => Outcome::Appended(reply, Err(e)),
        Command::SignDigest { reply, .. } => Outcome::Signed(reply, Err(e)),
        Command::Open { reply } | Command::Close { reply, .. } => Outcome::Done(reply, Err(e)),
    }
}

/// 16 random bytes as hex, for run and open nonces.
fn nonce() -> Result<String, Error> {
    let mut b = [0u8; 16];
    getrandom::getrandom(&mut b)
        .map_err(|e| Error::Unavailable(format!("no randomness from the OS: {e}")))?;
    Ok(hex::encode(b))
}
