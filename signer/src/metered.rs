//! Token metrics as a [`Backend`] decorator: every call holds a token
//! session (`sigil_token_sessions_in_use`), and every signature's latency
//! is observed (`sigil_sign_seconds`), whoever asked for it (a receipt, an
//! endorsement, the directory, a digest). Callers sign; they do not count.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use sigil_keys::{Backend, Custody, KeyError, KeyId, PublicKey, Signature};

/// `inner`, measured.
pub struct Metered {
    inner: Arc<dyn Backend>,
}

impl Metered {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Backend>) -> Self {
        Metered { inner }
    }

    /// Runs `f` as one token call in progress.
    fn call<T>(&self, f: impl FnOnce(&dyn Backend) -> T) -> T {
        let m = crate::metrics::get();
        m.token_in_use.fetch_add(1, Ordering::Relaxed);
        let r = f(self.inner.as_ref());
        m.token_in_use.fetch_sub(1, Ordering::Relaxed);
        r
    }
}

impl Backend for Metered {
    fn generate(&self, id: &KeyId) -> Result<PublicKey, KeyError> {
        self.call(|b| b.generate(id))
    }

    fn find(&self, id: &KeyId) -> Result<Option<PublicKey>, KeyError> {
        self.call(|b| b.find(id))
    }

    fn sign(&self, id: &KeyId, message: &[u8]) -> Result<Signature, KeyError> {
        let started = std::time::Instant::now();
        let r = self.call(|b| b.sign(id, message));
        crate::metrics::get().sign_seconds.time(started.elapsed());
        r
    }

    fn destroy(&self, id: &KeyId) -> Result<(), KeyError> {
        self.call(|b| b.destroy(id))
    }

    fn describe(&self, id: &KeyId) -> Result<Custody, KeyError> {
        self.call(|b| b.describe(id))
    }

    fn keepalive(&self) -> Result<(), KeyError> {
        self.call(|b| b.keepalive())
    }

    fn signs_in_process(&self) -> bool {
        self.inner.signs_in_process()
    }
}
