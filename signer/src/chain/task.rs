//! A chain's task: waits for commands, heartbeats and idleness, and hands
//! each batch to the blocking pool.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, Interval};

use super::batch::Outcome;
use super::{Command, Ctx, State};

/// What woke the task.
enum Wake {
    /// Commands from callers (the first, and all that waited behind it).
    Commands(Vec<Option<Command>>),
    /// A heartbeat interval passed on an open chain.
    Heartbeat,
    /// The chain has been idle for `idle_close_seconds`.
    Idle,
    /// Every handle is gone.
    Stopped,
}

struct Task {
    ctx: Arc<Ctx>,
    rx: mpsc::Receiver<Command>,
    state: Option<State>,
    beat: Interval,
    /// Heartbeats only for a chain written since the last one: an idle
    /// chain costs no token signatures (600 idle chains would otherwise
    /// saturate a 10-signatures-a-second device).
    written: bool,
    last_command: Instant,
    /// The chain was closed for idleness and its state dropped; the next
    /// command reopens it.
    idle_closed: bool,
    /// The run was closed for good (shutdown): only seals are taken, until
    /// the last handle is dropped.
    closed: bool,
}

/// Runs chain `ctx` until it is closed or every handle is dropped.
pub(super) async fn run(ctx: Arc<Ctx>, rx: mpsc::Receiver<Command>) {
    let every = Duration::from_secs(ctx.settings.heartbeat_seconds.max(1));
    let mut beat = tokio::time::interval(every);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    beat.tick().await;
    let mut task = Task {
        ctx,
        rx,
        state: None,
        beat,
        written: false,
        last_command: Instant::now(),
        idle_closed: false,
        closed: false,
    };
    loop {
        match task.next().await {
            Wake::Stopped => break,
            Wake::Heartbeat if task.written => task.batch(vec![None]).await,
            Wake::Heartbeat => {}
            Wake::Idle => task.close_idle().await,
            Wake::Commands(batch) => task.batch(batch).await,
        }
    }
}

impl Task {
    async fn next(&mut self) -> Wake {
        let settings = &self.ctx.settings;
        let open = self.state.is_some();
        let idle = Duration::from_secs(settings.idle_close_seconds);
        let idle_due = self.last_command + idle;
        let beats = settings.heartbeat_seconds > 0 && open;
        tokio::select! {
            cmd = self.rx.recv() => match cmd {
                None => Wake::Stopped,
                Some(first) => {
                    let mut batch = vec![Some(first)];
                    while batch.len() < settings.max_batch {
                        match self.rx.try_recv() {
                            Ok(c) => batch.push(Some(c)),
                            Err(_) => break,
                        }
                    }
                    Wake::Commands(batch)
                }
            },
            _ = self.beat.tick(), if beats => Wake::Heartbeat,
            _ = tokio::time::sleep_until(idle_due), if !idle.is_zero() && open => Wake::Idle,
        }
    }

    /// Runs a batch of commands (or a heartbeat) and replies. After a
    /// close the chain takes seals only; a batch of seals alone on a chain
    /// that is not open is written without opening a run.
    async fn batch(&mut self, mut batch: Vec<Option<Command>>) {
        if self.closed {
            batch = refuse_all_but_seals(batch);
        }
        let only_seals = batch
            .iter()
            .all(|c| matches!(c, Some(Command::Seal { .. })));
        if only_seals && self.state.is_none() {
            let seals = batch
                .into_iter()
                .flatten()
                .filter_map(|c| match c {
                    Command::Seal { seal, done } => Some((seal, done)),
                    _ => None,
                })
                .collect();
            let ctx = self.ctx.clone();
            let _ = tokio::task::spawn_blocking(move || ctx.seal_unopened(seals)).await;
            return;
        }
        // Seals are the daemon's own: they neither keep a chain awake nor
        // call for a heartbeat.
        let commands = batch.iter().any(|c| {
            c.as_ref()
                .is_some_and(|c| !matches!(c, Command::Seal { .. }))
        });
        let closing = batch
            .iter()
            .any(|c| matches!(c, Some(Command::Close { .. })));
        if commands {
            self.last_command = Instant::now();
            // Shutting down a chain already closed for idleness: its file
            // ends with a session_close; reopening it only to close it again
            // would write two receipts for nothing.
            if self.idle_closed && self.state.is_none() && batch_only_closes(&batch) {
                for cmd in batch.into_iter().flatten() {
                    if let Command::Close { reply, .. } = cmd {
                        let _ = reply.send(Ok(()));
                    }
                }
                self.closed = true;
                return;
            }
            self.idle_closed = false;
        }
        self.written = commands;
        let outcomes = self.apply(batch).await;
        for o in outcomes {
            o.send();
        }
        if closing {
            self.closed = true;
            self.state = None;
        }
    }

    /// Closes an idle chain (no caller waits on it) and drops its state:
    /// closed, or (on a failure) to be re-read from disk, nothing is held
    /// until the next command. Only a written close spares the shutdown its
    /// own.
    async fn close_idle(&mut self) {
        let (reply, _) = oneshot::channel();
        let close = Command::Close {
            reason: "idle".into(),
            reply,
        };
        let outcomes = self.apply(vec![Some(close)]).await;
        self.state = None;
        self.idle_closed = outcomes.iter().any(Outcome::is_done);
        tracing::debug!(chain = %self.ctx.name, closed = self.idle_closed, "idle chain released");
    }

    /// Runs one batch on the blocking pool; the state comes back with it.
    async fn apply(&mut self, batch: Vec<Option<Command>>) -> Vec<Outcome> {
        let ctx = self.ctx.clone();
        let taken = self.state.take();
        match tokio::task::spawn_blocking(move || ctx.apply(taken, batch)).await {
            Ok((next, outcomes)) => {
                self.state = next;
                outcomes
            }
            Err(e) => {
                // The batch's reply senders were dropped with the task, so
                // its callers see an error; the tail is re-read from disk.
                tracing::error!(chain = %self.ctx.name, error = %e, "chain batch panicked");
                Vec::new()
            }
        }
    }
}

/// After the close, every command but a seal is refused.
fn refuse_all_but_seals(batch: Vec<Option<Command>>) -> Vec<Option<Command>> {
    let (seals, others): (Vec<_>, Vec<_>) = batch
        .into_iter()
        .flatten()
        .partition(|c| matches!(c, Command::Seal { .. }));
    for o in super::batch::refuse_all(
        others.into_iter().map(Some).collect(),
        "chain is shutting down",
    ) {
        o.send();
    }
    seals.into_iter().map(Some).collect()
}

fn batch_only_closes(batch: &[Option<Command>]) -> bool {
    batch
        .iter()
        .all(|c| matches!(c, Some(Command::Close { .. })))
}
