//! The set of chains: created on first append, resumed at start, closed at
//! shutdown.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::{oneshot, Mutex};

use crate::chain::{self, ChainHandle, Command, Settings, Shared};
use crate::counters::Counters;
use crate::keyring::Keyring;
use crate::log::ReceiptLog;
use crate::Error;

/// Prefix of the daemon's own chains (ledgers); producers cannot use it.
pub const RESERVED_PREFIX: &str = "sigil.";

/// All chains of one data dir.
pub struct Chains {
    dir: PathBuf,
    shared: Shared,
    default_key: String,
    max_chains: usize,
    quotas: Quotas,
    map: Mutex<HashMap<String, ChainHandle>>,
    /// Producer chains created in this run, by the identity that created
    /// them.
    created_by: Mutex<HashMap<String, usize>>,
    /// Set by `close_all`: no chain is opened (or reopened) after its runs
    /// were closed, so nothing follows a session_close.
    closing: std::sync::atomic::AtomicBool,
}

/// Checks a chain name: 1 to 64 characters of `[A-Za-z0-9._-]`.
pub fn check_name(name: &str) -> Result<(), Error> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !ok {
        return Err(Error::InvalidArgument(format!(
            "chain: {name:?} must be 1 to 64 characters of A-Z a-z 0-9 . _ -"
        )));
    }
    Ok(())
}

/// The ledger chain recording what `key` signed through SignDigest.
pub fn ledger_name(key: &str) -> String {
    format!("{RESERVED_PREFIX}ledger.{key}")
}

/// How the chain capacity is shared.
#[derive(Clone, Copy, Debug, Default)]
pub struct Quotas {
    /// Chains kept for the daemon's own ledgers: producers may fill only
    /// `max_chains - ledger_reserve`, so SignDigest keeps working.
    pub ledger_reserve: usize,
    /// Chains one producer identity may create (0: no limit).
    pub per_identity: usize,
}

impl Chains {
    /// Chains stored under `dir`, all signed by `default_key`.
    pub fn new(
        dir: PathBuf,
        keyring: Arc<Keyring>,
        counters: Arc<Counters>,
        settings: Arc<Settings>,
        default_key: String,
        max_chains: usize,
    ) -> Self {
        Chains {
            dir,
            shared: Shared {
                keyring,
                counters,
                settings,
                log: None,
            },
            default_key,
            max_chains,
            quotas: Quotas::default(),
            map: Mutex::new(HashMap::new()),
            created_by: Mutex::new(HashMap::new()),
            closing: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Logs every chain's receipts in `log`.
    pub fn with_log(mut self, log: Arc<ReceiptLog>) -> Self {
        self.shared.log = Some(log);
        self
    }

    /// Shares the capacity as `quotas` says.
    pub fn with_quotas(mut self, quotas: Quotas) -> Self {
        self.quotas = quotas;
        self
    }

    /// The producer chain `name`, created for `identity` if new.
    pub async fn producer_chain(&self, name: &str, identity: &str) -> Result<ChainHandle, Error> {
        check_name(name)?;
        if name.starts_with(RESERVED_PREFIX) {
            return Err(Error::InvalidArgument(format!(
                "chain: names starting with {RESERVED_PREFIX:?} are reserved for the daemon's own chains"
            )));
        }
        // An existing chain is no new chain: quotas apply to creation only.
        if let Some(h) = self.map.lock().await.get(name) {
            return Ok(h.clone());
        }
        let producer_max = self.max_chains.saturating_sub(self.quotas.ledger_reserve);
        let mut created = self.created_by.lock().await;
        let mine = created.get(identity).copied().unwrap_or(0);
        if self.quotas.per_identity > 0 && mine >= self.quotas.per_identity {
            return Err(Error::ResourceExhausted(format!(
                "chain: {identity} may create at most {} chains",
                self.quotas.per_identity
            )));
        }
        let (h, new) = self.get_within(name, producer_max).await?;
        if new {
            *created.entry(identity.to_owned()).or_default() += 1;
        }
        Ok(h)
    }

    /// The ledger chain of `key`.
    pub async fn ledger(&self, key: &str) -> Result<ChainHandle, Error> {
        self.get(&ledger_name(key)).await
    }

    async fn get(&self, name: &str) -> Result<ChainHandle, Error> {
        Ok(self.get_within(name, self.max_chains).await?.0)
    }

    /// The chain `name`, created if new and fewer than `limit` are held;
    /// true when it was created now.
    async fn get_within(&self, name: &str, limit: usize) -> Result<(ChainHandle, bool), Error> {
        let mut map = self.map.lock().await;
        if self.closing.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(Error::Unavailable("sigild is shutting down".into()));
        }
        if let Some(h) = map.get(name) {
            return Ok((h.clone(), false));
        }
        if map.len() >= limit {
            let reserve = if limit < self.max_chains {
                format!(
                    " for producers ({} more kept for SignDigest ledgers)",
                    self.max_chains - limit
                )
            } else {
                String::new()
            };
            return Err(Error::ResourceExhausted(format!(
                "chain: the daemon already holds its maximum of {limit} chains{reserve}"
            )));
        }
        let h = chain::spawn(
            name.to_owned(),
            self.dir.join(format!("{name}.jsonl")),
            self.default_key.clone(),
            &self.shared,
        );
        map.insert(name.to_owned(), h.clone());
        Ok((h, true))
    }

    /// The open chains that record the lifecycle of key name `key`, by
    /// name: every chain for the chain key (it signs them all), the key's
    /// own ledger for a digest key.
    pub async fn chains_of_key(&self, key: &str) -> Vec<(String, ChainHandle)> {
        let ledger = ledger_name(key);
        let mut v: Vec<_> = self
            .map
            .lock()
            .await
            .iter()
            .filter(|(n, _)| key == self.default_key || **n == ledger)
            .map(|(n, h)| (n.clone(), h.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// The chain `name` when its task runs, without opening or creating
    /// it.
    pub async fn existing(&self, name: &str) -> Option<ChainHandle> {
        self.map.lock().await.get(name).cloned()
    }

    /// The key name that signs producer chains.
    pub fn default_key(&self) -> &str {
        &self.default_key
    }

    /// Resumes every chain file in the directory with a restart open.
    /// A chain that cannot be resumed is logged and left to answer
    /// UNAVAILABLE with why; the others start. Returns how many resumed.
    pub async fn resume_all(&self) -> Result<usize, Error> {
        // Every chain file is opened through this directory: one that is a
        // symlink would put the chains wherever it points.
        let meta = std::fs::symlink_metadata(&self.dir)
            .map_err(|e| Error::io(format!("inspecting {}", self.dir.display()), e))?;
        if meta.file_type().is_symlink() {
            return Err(Error::Config(format!(
                "{} is a symbolic link: sigild refuses symlinks in its data dir \
                 (put the directory itself there)",
                self.dir.display()
            )));
        }
        let mut names = Vec::new();
        let entries = std::fs::read_dir(&self.dir)
            .map_err(|e| Error::io(format!("listing {}", self.dir.display()), e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("listing chains", e))?;
            let file = entry.file_name().to_string_lossy().into_owned();
            if let Some(name) = file.strip_suffix(".jsonl") {
                if check_name(name).is_ok() {
                    names.push(name.to_owned());
                }
            }
        }
        names.sort();
        let mut resumed = 0;
        for name in &names {
            // Every chain, ledgers included, is signed by the chain key.
            let h = self.get(name).await?;
            match h.call(|reply| Command::Open { reply }).await {
                Ok(()) => resumed += 1,
                Err(e) => tracing::error!(chain = %name, error = %e,
                    "chain not resumed: it answers UNAVAILABLE until this is fixed; the other chains start"),
            }
        }
        Ok(resumed)
    }

    /// Ends every chain's run with a session_close; waits for each. The
    /// handles come back: a closed chain still takes its last seals, and
    /// its task ends when they are dropped.
    pub async fn close_all(&self, reason: &str) -> Vec<(String, ChainHandle)> {
        let handles: Vec<(String, ChainHandle)> = {
            let mut map = self.map.lock().await;
            self.closing
                .store(true, std::sync::atomic::Ordering::SeqCst);
            map.drain().collect()
        };
        for (name, h) in &handles {
            let (tx, rx) = oneshot::channel();
            if h.send(Command::Close {
                reason: reason.into(),
                reply: tx,
            })
            .await
            .is_ok()
            {
                match rx.await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        tracing::warn!(chain = %name, error = %e, "session_close not written")
                    }
                    Err(_) => tracing::warn!(chain = %name, "chain stopped before closing"),
                }
            }
        }
        handles
    }
}
