//! Tokens that misbehave without failing: one that hangs holds no chain
//! (each call answers UNAVAILABLE at the deadline), one that returns a
//! wrong signature fails the append instead of the verifier later. Nothing
//! is written in either case, and appends go on once the token is well.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sigil_client::{Client, ClientError};
use sigil_keys::software::SoftwareBackend;
use sigil_keys::{Backend, Custody, KeyError, KeyId, PublicKey, Signature};
use sigil_signer::deadline::Deadline;
use sigil_tests::{record, sigil, InProcess};

/// A software key whose signing hangs while `hung` is set.
struct Hangs {
    inner: SoftwareBackend,
    hung: Arc<AtomicBool>,
}

impl Backend for Hangs {
    fn generate(&self, id: &KeyId) -> Result<PublicKey, KeyError> {
        self.inner.generate(id)
    }
    fn find(&self, id: &KeyId) -> Result<Option<PublicKey>, KeyError> {
        self.inner.find(id)
    }
    fn sign(&self, id: &KeyId, message: &[u8]) -> Result<Signature, KeyError> {
        while self.hung.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.inner.sign(id, message)
    }
    fn destroy(&self, id: &KeyId) -> Result<(), KeyError> {
        self.inner.destroy(id)
    }
    fn describe(&self, id: &KeyId) -> Result<Custody, KeyError> {
        self.inner.describe(id)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_token_answers_unavailable_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let hung = Arc::new(AtomicBool::new(false));
    let backend = Hangs {
        inner: SoftwareBackend::open(dir.path().join("seeds")).unwrap(),
        hung: hung.clone(),
    };
    let backend = Arc::new(Deadline::new(Arc::new(backend), Duration::from_millis(300)));
    let daemon = InProcess::start(&dir.path().join("data"), backend);
    let mut c = Client::connect(&daemon.endpoint).await.unwrap();
    c.append("hang", &record(0)).await.unwrap();
    let path = daemon.chain_path("hang");
    let before = std::fs::read(&path).unwrap();

    hung.store(true, Ordering::SeqCst);
    for i in 1..4 {
        match c.append("hang", &record(i)).await {
            Err(ClientError::Status(s)) => {
                assert_eq!(s.code(), tonic::Code::Unavailable, "{s:?}");
                assert!(s.message().contains("did not answer"), "{s:?}");
                assert!(s.message().contains("within 300 ms"), "{s:?}");
            }
            other => panic!("an append on a hung token: {other:?}"),
        }
    }
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "something was written"
    );

    hung.store(false, Ordering::SeqCst);
    c.append("hang", &record(9)).await.unwrap();
    daemon.stop().unwrap();
    let root = {
        let text = std::fs::read_to_string(&path).unwrap();
        let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        first["signer_key"].as_str().unwrap().to_owned()
    };
    let out = sigil(&["verify", "chain", path.to_str().unwrap(), "--key", &root]);
    assert!(out.status.success(), "{out:?}");
}

/// A device whose signatures are corrupted while `bad` is set.
struct Garbles {
    inner: SoftwareBackend,
    bad: Arc<AtomicBool>,
}

impl Backend for Garbles {
    fn generate(&self, id: &KeyId) -> Result<PublicKey, KeyError> {
        self.inner.generate(id)
    }
    fn find(&self, id: &KeyId) -> Result<Option<PublicKey>, KeyError> {
        self.inner.find(id)
    }
    fn sign(&self, id: &KeyId, message: &[u8]) -> Result<Signature, KeyError> {
        let mut s = self.inner.sign(id, message)?;
        if self.bad.load(Ordering::SeqCst) {
            s.0[7] ^= 0x40;
        }
        Ok(s)
    }
    fn destroy(&self, id: &KeyId) -> Result<(), KeyError> {
        self.inner.destroy(id)
    }
    fn describe(&self, id: &KeyId) -> Result<Custody, KeyError> {
        self.inner.describe(id)
    }
    // A device, not ed25519-dalek in this process: the default
    // `signs_in_process` (false) applies.
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_signature_from_the_token_fails_the_append_not_the_verifier() {
    let dir = tempfile::tempdir().unwrap();
    let bad = Arc::new(AtomicBool::new(false));
    let backend = Arc::new(Garbles {
        inner: SoftwareBackend::open(dir.path().join("seeds")).unwrap(),
        bad: bad.clone(),
    });
    let daemon = InProcess::start(&dir.path().join("data"), backend);
    let mut c = Client::connect(&daemon.endpoint).await.unwrap();
    c.append("garbled", &record(0)).await.unwrap();
    let path = daemon.chain_path("garbled");
    let before = std::fs::read(&path).unwrap();
    bad.store(true, Ordering::SeqCst);
    match c.append("garbled", &record(1)).await {
        Err(ClientError::Status(s)) => {
            assert_eq!(s.code(), tonic::Code::Unavailable, "{s:?}");
            assert!(s.message().contains("does not verify"), "{s:?}");
        }
        other => panic!("a wrong signature was accepted: {other:?}"),
    }
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "something was written"
    );
    bad.store(false, Ordering::SeqCst);
    c.append("garbled", &record(2)).await.unwrap();
}
