//! The daemon's long-lived parts: the keyring (its signing key ensured and
//! the directory published), the signature counters, the chains (resumed
//! from disk) and the lifecycle (what a crash interrupted completed, the
//! rotation schedule running).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sigil_keys::Backend;

use crate::chain::Command;
use crate::config::Config;
use crate::counters::Counters;
use crate::keyring::Keyring;
use crate::lifecycle::Lifecycle;
use crate::log::{ReceiptLog, Seal};
use crate::registry::{Chains, Quotas};
use crate::Error;

/// What every listener serves from.
pub(super) struct Parts {
    pub(super) keyring: Arc<Keyring>,
    pub(super) counters: Arc<Counters>,
    pub(super) chains: Arc<Chains>,
    pub(super) lifecycle: Arc<Lifecycle>,
    pub(super) log: Option<Arc<ReceiptLog>>,
}

impl Parts {
    /// Opens the keys and the chains under `chains_dir` and starts the
    /// background work (directory re-signing, the rotation schedule).
    pub(super) async fn start(
        config: &Config,
        backend: Arc<dyn Backend>,
        chains_dir: PathBuf,
    ) -> Result<Parts, Error> {
        let keyring = Arc::new(Keyring::open(&config.data_dir, backend, &config.key_name)?);
        let (k, name) = (keyring.clone(), config.key_name.clone());
        let active = tokio::task::spawn_blocking(move || {
            k.ensure(&name).and_then(|a| k.publish().map(|()| a))
        })
        .await
        .map_err(|e| Error::Internal(e.to_string()))??;
        tracing::info!(key = %active.id, public_key = %active.public_hex, "signing key ready");
        if let Ok(c) = keyring.backend().describe(&active.id) {
            let _ = crate::metrics::get().backend.set(c.backend);
        }
        let (counters, rotations_due) = Counters::new(config.rotation.max_signatures);
        let log = if config.log.enabled {
            let (dir, settings) = (config.data_dir.clone(), config.log.settings());
            let log = tokio::task::spawn_blocking(move || ReceiptLog::open(&dir, settings))
                .await
                .map_err(|e| Error::Internal(e.to_string()))??;
            Some(Arc::new(log))
        } else {
            None
        };
        let c = &config.chains;
        let mut chains = Chains::new(
            chains_dir,
            keyring.clone(),
            counters.clone(),
            Arc::new(config.settings()),
            config.key_name.clone(),
            c.max_chains,
        )
        .with_quotas(Quotas {
            ledger_reserve: c.ledger_reserve.min(c.max_chains / 2),
            per_identity: c.max_per_identity,
        });
        if let Some(log) = &log {
            chains = chains.with_log(log.clone());
        }
        let chains = Arc::new(chains);
        let resumed = chains.resume_all().await?;
        tracing::info!(chains = resumed, "chains resumed");
        if let Some(log) = &log {
            // After every chain resumed, so the first checkpoint holds what
            // a crash kept out of the log.
            spawn_log(
                LogWork {
                    log: log.clone(),
                    keyring: keyring.clone(),
                    counters: counters.clone(),
                    key_name: config.key_name.clone(),
                },
                chains.clone(),
                Duration::from_secs(config.log.seal_seconds.max(1)),
            );
        }
        let lifecycle = Arc::new(
            Lifecycle::new(keyring.clone(), chains.clone(), counters.clone())
                .keep_revoked(config.keep_revoked)
                .min_standby(config.rotation.min_standby),
        );
        spawn_directory_resign(
            keyring.clone(),
            Duration::from_secs(config.directory_resign_seconds),
        );
        lifecycle.resume().await?;
        let r = &config.rotation;
        lifecycle.clone().spawn_schedule(
            rotations_due,
            (r.max_age_seconds > 0).then(|| Duration::from_secs(r.max_age_seconds)),
            Duration::from_secs(r.check_seconds.max(1)),
            Duration::from_secs(r.min_interval_seconds),
            Duration::from_secs(r.rotate_lead_seconds),
        );
        Ok(Parts {
            keyring,
            counters,
            chains,
            lifecycle,
            log,
        })
    }
}

/// What signing a checkpoint takes.
#[derive(Clone)]
pub(super) struct LogWork {
    pub(super) log: Arc<ReceiptLog>,
    pub(super) keyring: Arc<Keyring>,
    pub(super) counters: Arc<Counters>,
    pub(super) key_name: String,
}

impl LogWork {
    /// Signs a checkpoint when the log grew (on the blocking pool), then
    /// lists the seals due: every `seal_every` per chain, or all (`None`).
    pub(super) async fn checkpoint(&self, seal_every: Option<Duration>) -> Vec<(String, Seal)> {
        let w = self.clone();
        let signed = tokio::task::spawn_blocking(move || {
            let signed = w.log.checkpoint(&w.keyring, &w.counters, &w.key_name);
            let seals = w
                .log
                .seals_due(seal_every.unwrap_or_default(), seal_every.is_none());
            (signed, seals)
        })
        .await;
        match signed {
            Ok((Ok(size), seals)) => {
                if let Some(size) = size {
                    tracing::debug!(size, "log checkpoint signed");
                }
                seals
            }
            Ok((Err(e), _)) => {
                tracing::warn!(error = %e, "log checkpoint not signed; will retry");
                Vec::new()
            }
            Err(e) => {
                tracing::warn!(error = %e, "log checkpoint task failed");
                Vec::new()
            }
        }
    }
}

/// Signs a checkpoint every `checkpoint_seconds` when the log grew, and
/// sends each chain due its seal.
fn spawn_log(work: LogWork, chains: Arc<Chains>, seal_every: Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(work.log.checkpoint_every());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            for (chain, seal) in work.checkpoint(Some(seal_every)).await {
                if let Some(h) = chains.existing(&chain).await {
                    // The chain writes it in its turn; a full queue waits.
                    let _ = h.send(Command::Seal { seal, done: None }).await;
                }
            }
        }
    });
}

/// Re-signs the directory every `every`, so that a fresh `signed_at` is
/// always available and verifiers can refuse a stale copy (one that may
/// predate a revocation).
fn spawn_directory_resign(keyring: Arc<Keyring>, every: Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let k = keyring.clone();
            match tokio::task::spawn_blocking(move || k.publish()).await {
                Ok(Ok(())) => tracing::debug!("directory re-signed"),
                Ok(Err(e)) => tracing::warn!(error = %e, "directory not re-signed; will retry"),
                Err(e) => tracing::warn!(error = %e, "directory re-sign task failed"),
            }
        }
    });
}
