//! A deadline on every token call. A hung token (one that stops answering
//! rather than failing) would otherwise hold the chain whose batch waits on
//! it, and every caller behind that batch. Calls run on a small pool of
//! worker threads; a caller waits at most the deadline, then gets
//! `Unavailable` and nothing that depends on the call is written. A worker
//! stuck in the token is replaced, up to a bound, so later calls are not
//! queued behind it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sigil_keys::{Backend, Custody, KeyError, KeyId, PublicKey, Signature};

type Job = Box<dyn FnOnce() + Send>;

/// Most worker threads at once, stuck ones included.
const MAX_WORKERS: usize = 64;

/// `inner` with a deadline on each call.
pub struct Deadline {
    inner: Arc<dyn Backend>,
    limit: Duration,
    jobs: Mutex<Sender<Job>>,
    queue: Arc<Mutex<Receiver<Job>>>,
    workers: Arc<AtomicUsize>,
    idle: Arc<AtomicUsize>,
}

impl Deadline {
    /// Wraps `inner`; each call answers within `limit`.
    pub fn new(inner: Arc<dyn Backend>, limit: Duration) -> Self {
        let (tx, rx) = mpsc::channel::<Job>();
        Deadline {
            inner,
            limit,
            jobs: Mutex::new(tx),
            queue: Arc::new(Mutex::new(rx)),
            workers: Arc::new(AtomicUsize::new(0)),
            idle: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn spawn_worker(&self) {
        if self.workers.fetch_add(1, Ordering::SeqCst) >= MAX_WORKERS {
            self.workers.fetch_sub(1, Ordering::SeqCst);
            return;
        }
        let (queue, idle, workers) = (self.queue.clone(), self.idle.clone(), self.workers.clone());
        let spawned = std::thread::Builder::new()
            .name("sigil-token".into())
            .spawn(move || loop {
                idle.fetch_add(1, Ordering::SeqCst);
                let job = queue.lock().ok().and_then(|q| q.recv().ok());
                idle.fetch_sub(1, Ordering::SeqCst);
                match job {
                    Some(job) => job(),
                    None => {
                        workers.fetch_sub(1, Ordering::SeqCst);
                        return;
                    }
                }
            });
        if spawned.is_err() {
            self.workers.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Runs `op` on a worker and waits at most the deadline for it.
    fn call<T: Send + 'static>(
        &self,
        what: &str,
        op: impl FnOnce(&dyn Backend) -> Result<T, KeyError> + Send + 'static,
    ) -> Result<T, KeyError> {
        if self.idle.load(Ordering::SeqCst) == 0 {
            self.spawn_worker();
        }
        let (tx, rx) = mpsc::sync_channel(1);
        let inner = self.inner.clone();
        let job: Job = Box::new(move || {
            let _ = tx.send(op(inner.as_ref()));
        });
        let sent = self
            .jobs
            .lock()
            .map_err(|_| unavailable("token worker queue poisoned".into()))?
            .send(job);
        if sent.is_err() {
            return Err(unavailable("token workers are gone".into()));
        }
        match rx.recv_timeout(self.limit) {
            Ok(r) => r,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                // That worker may never come back: make sure another serves
                // the next call.
                self.spawn_worker();
                Err(unavailable(format!(
                    "the token did not answer {what} within {} ms; check the device or its \
                     connector (sigild's health goes NOT_SERVING while it stays so), or raise \
                     token_deadline_ms for a slow token",
                    self.limit.as_millis()
                )))
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                Err(unavailable(format!("the token call for {what} was lost")))
            }
        }
    }
}

fn unavailable(reason: String) -> KeyError {
    KeyError::Unavailable {
        backend: "token",
        reason,
    }
}

impl Backend for Deadline {
    fn generate(&self, id: &KeyId) -> Result<PublicKey, KeyError> {
        let id = id.clone();
        self.call("a key generation", move |b| b.generate(&id))
    }

    fn find(&self, id: &KeyId) -> Result<Option<PublicKey>, KeyError> {
        let id = id.clone();
        self.call("a key lookup", move |b| b.find(&id))
    }

    fn sign(&self, id: &KeyId, message: &[u8]) -> Result<Signature, KeyError> {
        let (id, message) = (id.clone(), message.to_vec());
        self.call("a signature", move |b| b.sign(&id, &message))
    }

    fn destroy(&self, id: &KeyId) -> Result<(), KeyError> {
        let id = id.clone();
        self.call("a key destruction", move |b| b.destroy(&id))
    }

    fn describe(&self, id: &KeyId) -> Result<Custody, KeyError> {
        let id = id.clone();
        self.call("a description", move |b| b.describe(&id))
    }

    fn keepalive(&self) -> Result<(), KeyError> {
        self.call("a liveness check", |b| b.keepalive())
    }

    fn signs_in_process(&self) -> bool {
        self.inner.signs_in_process()
    }
}
