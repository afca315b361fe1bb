//! Start-up, serving and shutdown.

use std::fs::{self, File};
use std::future::Future;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::io::AsRawFd;
use std::sync::Arc;

use sigil_keys::Backend;

pub use crate::backends::open_backend;
use crate::config::Config;
use crate::Error;
use parts::Parts;

mod parts;
mod serve;

/// Takes an exclusive lock on the data dir, so two daemons never append to
/// the same chain files. Held until the returned file is dropped.
pub fn lock_data_dir(config: &Config) -> Result<File, Error> {
    let path = config.data_dir.join("LOCK");
    let f =
        File::create(&path).map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
    // SAFETY: flock on a file descriptor we own; no memory is touched.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        return Err(Error::Config(format!(
            "data dir {} is in use by another sigild",
            config.data_dir.display()
        )));
    }
    Ok(f)
}

/// Runs the daemon with the configured backend until `shutdown`
/// completes. Prints one `sigild ready grpc=ADDR http=ADDR` line on stdout
/// once both listeners accept.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    config.check()?;
    let backend = open_backend(&config)?;
    // The backend holds what it read: the environment need not.
    crate::secrets::scrub_env(&crate::secrets::env_sources(&config));
    run_with_backend(config, backend, shutdown, |grpc, http| {
        println!("sigild ready grpc={grpc} http={http}");
    })
    .await
}

/// Runs the daemon over `backend` until `shutdown` completes, then drains:
/// no new requests, in-flight appends finish, every chain's run ends with a
/// session_close. `ready` gets the bound addresses once both listen.
pub async fn run_with_backend(
    config: Config,
    backend: Arc<dyn Backend>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    ready: impl FnOnce(SocketAddr, SocketAddr),
) -> Result<(), Error> {
    config.check()?;
    let backend: Arc<dyn Backend> = Arc::new(crate::metered::Metered::new(backend));
    let chains_dir = config.data_dir.join("chains");
    fs::create_dir_all(&chains_dir)
        .map_err(|e| Error::io(format!("creating {}", chains_dir.display()), e))?;
    fs::set_permissions(&config.data_dir, fs::Permissions::from_mode(0o700))
        .map_err(|e| Error::io("restricting the data dir", e))?;
    let _lock = lock_data_dir(&config)?;
    if config.downgrade_root {
        crate::root_role::downgrade(&config.data_dir)?;
    }
    let parts = Parts::start(&config, backend, chains_dir).await?;
    let serving = serve::start(&config, &parts).await?;
    ready(serving.grpc_addr, serving.http_addr);
    shutdown.await;
    serving
        .drain(
            std::time::Duration::from_secs(config.shutdown_grace_seconds),
            &parts,
            &config.key_name,
        )
        .await;
    tracing::info!("stopped");
    Ok(())
}
