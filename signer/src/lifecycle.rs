//! Key lifecycle across chains: rotation (by hand or on a schedule),
//! revocation, and completing either after a crash.
//!
//! One operation runs at a time. A rotation records the successor as
//! pending, has every chain of the key name write its boundary, then
//! retires the predecessor; a start that finds a pending successor writes
//! the missing boundaries (chains do it when they open) and finishes.

use std::sync::Arc;
use std::time::Duration;

use sigil_proto::timestamp;
use tokio::sync::{mpsc, Mutex};

use crate::chain::Command;
use crate::counters::Counters;
use crate::failpoint;
use crate::keyring::{KeyVersion, Keyring, Revoked};
use crate::registry::Chains;
use crate::root_role::Imported;
use crate::Error;
use sigil_proto::directory::Through;

/// A completed rotation.
pub struct Rotated {
    /// The retired version.
    pub old: KeyVersion,
    /// The new signing version.
    pub new: KeyVersion,
    /// Chains that crossed the boundary.
    pub chains: Vec<String>,
}

/// A recorded revocation.
pub struct RevokedOn {
    /// What was revoked.
    pub revoked: Revoked,
    /// Chains that carry the revocation receipt.
    pub chains: Vec<String>,
    /// The successor, when the revoked version was signing.
    pub rotated_to: Option<KeyVersion>,
}

/// Rotation and revocation orchestration.
pub struct Lifecycle {
    keyring: Arc<Keyring>,
    chains: Arc<Chains>,
    counters: Arc<Counters>,
    lock: Mutex<()>,
    keep_revoked: bool,
    min_standby: u32,
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Internal(format!("blocking task: {e}")))?
}

impl Lifecycle {
    /// Lifecycle over these keys and chains; `counters` are the chains'
    /// signature counts.
    pub fn new(keyring: Arc<Keyring>, chains: Arc<Chains>, counters: Arc<Counters>) -> Self {
        Lifecycle {
            keyring,
            chains,
            counters,
            lock: Mutex::new(()),
            keep_revoked: false,
            min_standby: 0,
        }
    }

    /// Under an offline root, keeps at least `n` standby versions: below
    /// it, more are generated and a request is written for the officers.
    pub fn min_standby(mut self, n: u32) -> Self {
        self.min_standby = n;
        self
    }

    /// Tops the standby pool up to `min_standby` (called with the lock
    /// held, after an import or a rotation). A failure is logged: the
    /// pool is a convenience, the metric shows what is left.
    async fn refill_pool(&self) {
        let name = self.chains.default_key().to_owned();
        if !self.keyring.root_required() {
            return;
        }
        let have = self.keyring.standby_total(&name);
        if have >= self.min_standby {
            return;
        }
        let (k, n, count) = (self.keyring.clone(), name.clone(), self.min_standby - have);
        match blocking(move || k.prepare(&n, count)).await {
            Ok(_) => tracing::warn!(key = %name, generated = count,
                "standby pool below min_standby: new versions wait for certification; the request is in <data-dir>/root/requests/"),
            Err(e) => tracing::error!(key = %name, error = %e, "standby pool not refilled"),
        }
    }

    /// Keeps revoked versions in the backend instead of destroying them
    /// once their revocation is on every chain.
    pub fn keep_revoked(mut self, keep: bool) -> Self {
        self.keep_revoked = keep;
        self
    }

    /// Rotates key name `name` now.
    pub async fn rotate(&self, name: &str) -> Result<Rotated, Error> {
        let _one_at_a_time = self.lock.lock().await;
        self.rotate_locked(name).await
    }

    async fn rotate_locked(&self, name: &str) -> Result<Rotated, Error> {
        let (k, n) = (self.keyring.clone(), name.to_owned());
        let (old, new) = blocking(move || k.begin_rotation(&n)).await?;
        failpoint::hit("rotate.pending");
        let chains = self.cross_all(name, &new).await?;
        failpoint::hit("rotate.boundaries");
        let (k, n) = (self.keyring.clone(), name.to_owned());
        blocking(move || k.finish_rotation(&n)).await?;
        tracing::info!(old = %old.id, new = %new.id, chains = chains.len(), "key rotated");
        self.refill_pool().await;
        Ok(Rotated { old, new, chains })
    }

    /// Completes a rotation of `name` begun and not finished (a crash, a
    /// chain that did not cross): its pending successor is the signing
    /// version.
    async fn finish_pending(&self, name: &str) -> Result<(), Error> {
        let target = self
            .keyring
            .signing_key(name)
            .ok_or_else(|| Error::NotFound(format!("key: no active key named {name:?}")))?;
        self.cross_all(name, &target).await?;
        let (k, n) = (self.keyring.clone(), name.to_owned());
        blocking(move || k.finish_rotation(&n)).await
    }

    /// Has every chain of `name` cross to `target`, its signing version.
    async fn cross_all(&self, name: &str, target: &KeyVersion) -> Result<Vec<String>, Error> {
        let mut done = Vec::new();
        for (chain, h) in self.chains.chains_of_key(name).await {
            let target = target.clone();
            h.call(|reply| Command::Rotate { target, reply })
                .await
                .map_err(|e| Error::Unavailable(format!("chain {chain} did not cross the rotation boundary: {e}; retry the rotation")))?;
            done.push(chain);
        }
        Ok(done)
    }

    /// Revokes `name` version `version`; rotates first if it signs now.
    pub async fn revoke(
        &self,
        name: &str,
        version: u32,
        reason: &str,
        compromised_since: &str,
    ) -> Result<RevokedOn, Error> {
        let _one_at_a_time = self.lock.lock().await;
        // A rotation left pending is finished first, so that revoking the
        // signing version rotates to a genuinely new one.
        if self.keyring.pending_rotations().iter().any(|n| n == name) {
            self.finish_pending(name).await?;
        }
        let signing = self
            .keyring
            .signing_key(name)
            .ok_or_else(|| Error::NotFound(format!("key: no key named {name:?}")))?;
        let since = if compromised_since.is_empty() {
            timestamp::now()
        } else {
            compromised_since.to_owned()
        };
        // Refuse a bad request before rotating: a refused revocation must
        // change nothing.
        self.keyring
            .check_revocation(name, version, reason, &since)?;
        let rotated_to = if signing.id.version() == version {
            Some(self.rotate_locked(name).await?.new)
        } else {
            None
        };
        let (k, n, r) = (self.keyring.clone(), name.to_owned(), reason.to_owned());
        let revoked = blocking(move || k.revoke(&n, version, &r, &since)).await?;
        failpoint::hit("revoke.recorded");
        let chains = self.record_revocation(&revoked).await?;
        Ok(RevokedOn {
            revoked,
            chains,
            rotated_to,
        })
    }

    /// Imports an offline-root document; a keyset that revokes versions
    /// of the chain key has them revoked here as an online revocation
    /// would be (rotating first to a certified standby when the signing
    /// version is among them). Returns what was imported and the keyids
    /// revoked.
    pub async fn import(&self, text: String) -> Result<(String, Vec<String>), Error> {
        let imported = {
            let _one_at_a_time = self.lock.lock().await;
            let k = self.keyring.clone();
            let imported = blocking(move || k.import(&text)).await?;
            self.refill_pool().await;
            imported
        };
        let what = match imported {
            Imported::Root(v) => format!("root v{v}"),
            Imported::Keyset(v) => format!("keyset v{v}"),
        };
        failpoint::hit("import.stored");
        let (revoked, failed) = self.carry_out_root_revocations().await;
        tracing::info!(imported = %what, revoked = ?revoked, "offline root document imported");
        if let Some(e) = failed {
            return Err(Error::FailedPrecondition(format!(
                "{what} imported, but a revocation it orders is not carried out yet: {e}; the \
                 revoked version signs nothing meanwhile"
            )));
        }
        Ok((what, revoked))
    }

    /// Revokes, as `sigil keys revoke` would, every version of the chain
    /// key that the imported keyset revokes and the records do not yet: at
    /// import, and at start after a crash that came between the two.
    /// Returns what was revoked and the first failure (for example no
    /// certified standby to rotate to): a failure is retried at the next
    /// import or start, and the gate refuses the revoked version meanwhile.
    async fn carry_out_root_revocations(&self) -> (Vec<String>, Option<Error>) {
        let name = self.chains.default_key().to_owned();
        let mut revoked = Vec::new();
        for (version, reason, since) in self.keyring.root_revocations(&name) {
            match self.revoke(&name, version, &reason, &since).await {
                Ok(r) => revoked.push(r.revoked.key.id.to_string()),
                Err(e) => {
                    tracing::error!(key = %name, version, error = %e,
                        "a revocation the offline root ordered is not carried out yet");
                    return (revoked, Some(e));
                }
            }
        }
        (revoked, None)
    }

    /// Generates standby versions of `name` and returns the request.
    pub async fn prepare(&self, name: &str, count: u32) -> Result<String, Error> {
        let _one_at_a_time = self.lock.lock().await;
        let (k, n) = (self.keyring.clone(), name.to_owned());
        blocking(move || k.prepare(&n, count)).await
    }

    async fn record_revocation(&self, revoked: &Revoked) -> Result<Vec<String>, Error> {
        let mut done = Vec::new();
        let mut through = Vec::new();
        for (chain, h) in self.chains.chains_of_key(revoked.key.id.name()).await {
            let r = revoked.clone();
            let written = h
                .call(|reply| Command::RecordRevocation { revoked: r, reply })
                .await?;
            if let Some((seq, receipt_hash)) = written.through {
                through.push(Through {
                    chain: chain.clone(),
                    seq,
                    receipt_hash,
                });
            }
            done.push(chain);
        }
        let (k, id) = (self.keyring.clone(), revoked.key.id.clone());
        blocking(move || k.revocation_recorded(&id, through)).await?;
        tracing::info!(key = %revoked.key.id, chains = done.len(), "revocation recorded");
        if !self.keep_revoked {
            // The revocation is durable on every chain and in keys.json:
            // the key has nothing left to sign, so whoever holds the token
            // (or a copy of its session) cannot use it either.
            let (k, id) = (self.keyring.clone(), revoked.key.id.clone());
            match blocking(move || match k.backend().destroy(&id) {
                Err(sigil_keys::KeyError::NotFound { .. }) => Ok(()),
                r => r.map_err(Error::from),
            })
            .await
            {
                Ok(()) => {
                    tracing::info!(key = %revoked.key.id, "revoked key destroyed in the backend")
                }
                Err(e) => tracing::error!(key = %revoked.key.id, error = %e,
                    "revoked key could not be destroyed in the backend; remove it by hand"),
            }
        }
        Ok(done)
    }

    /// Completes what a crash interrupted: pending rotations and
    /// revocations not yet on every chain. Run after the chains resumed.
    pub async fn resume(&self) -> Result<(), Error> {
        let _one_at_a_time = self.lock.lock().await;
        for name in self.keyring.pending_rotations() {
            self.finish_pending(&name).await?;
            tracing::warn!(key = %name, "completed a rotation interrupted by a crash");
        }
        for revoked in self.keyring.pending_revocations() {
            self.record_revocation(&revoked).await?;
            tracing::warn!(key = %revoked.key.id, "recorded a revocation interrupted by a crash");
        }
        drop(_one_at_a_time);
        // A failure here must not stop the start: the admin socket is how
        // the keyset with new standbys gets in.
        let (revoked, _) = self.carry_out_root_revocations().await;
        if !revoked.is_empty() {
            tracing::warn!(revoked = ?revoked, "carried out root revocations an interrupted import left");
        }
        Ok(())
    }

    /// Rotates on schedule: when a signing version is older than
    /// `max_age`, when its certified window closes within `lead` (under an
    /// offline root), and when a chain reports (through `requests`) that a
    /// version reached `max_signatures`; never twice within `min_interval`.
    pub fn spawn_schedule(
        self: Arc<Self>,
        mut requests: mpsc::UnboundedReceiver<String>,
        max_age: Option<Duration>,
        check_every: Duration,
        min_interval: Duration,
        lead: Duration,
    ) {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(check_every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last: Option<tokio::time::Instant> = None;
            loop {
                let due: Option<String> = tokio::select! {
                    r = requests.recv() => match r {
                        None => return,
                        Some(name) => self
                            .keyring
                            .signing_key(&name)
                            .and_then(|k| self.counters.reached(&k.id).then_some(name)),
                    },
                    _ = tick.tick() => max_age
                        .and_then(|age| self.aged(age))
                        .or_else(|| self.window_closing(lead)),
                };
                let too_soon = last.is_some_and(|t| t.elapsed() < min_interval);
                if let (Some(name), true) = (&due, too_soon) {
                    // The next signature report or age check after the
                    // interval rotates.
                    tracing::debug!(key = %name, "scheduled rotation held back by min_interval_seconds");
                    continue;
                }
                if let Some(name) = due {
                    last = Some(tokio::time::Instant::now());
                    if let Err(e) = self.rotate(&name).await {
                        tracing::error!(key = %name, error = %e, "scheduled rotation failed; will retry");
                    }
                }
            }
        });
    }

    /// The chain key name when its signing version's certified window
    /// closes within `lead`.
    fn window_closing(&self, lead: Duration) -> Option<String> {
        let name = self.chains.default_key().to_owned();
        let key = self.keyring.signing_key(&name)?;
        let closes = self.keyring.window_end(&key)?;
        let lead = time::Duration::try_from(lead).unwrap_or(time::Duration::MAX);
        (time::OffsetDateTime::now_utc() + lead >= closes).then_some(name)
    }

    /// The chain key name when its signing version is older than `max_age`.
    fn aged(&self, max_age: Duration) -> Option<String> {
        let name = self.chains.default_key().to_owned();
        let key = self.keyring.signing_key(&name)?;
        let activated = timestamp::parse(&self.keyring.activated(&key.id)?).ok()?;
        let age = time::OffsetDateTime::now_utc() - activated;
        (age >= max_age).then_some(name)
    }
}
