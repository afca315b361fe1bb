//! The raw signing rate of the configured backend, measured by sigild
//! itself (`sigild --bench-token-seconds S`), so `sigil bench` can compare
//! durable appends with what the token alone can do, in the same run.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sigil_keys::{Backend, KeyId};

use crate::Error;

/// Signatures per second over 32-byte digests with `threads` callers.
pub fn token_rate(
    backend: &Arc<dyn Backend>,
    id: &KeyId,
    threads: usize,
    for_how_long: Duration,
) -> Result<f64, Error> {
    backend.sign(id, &[0u8; 32])?;
    let count = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let handles: Vec<_> = (0..threads.max(1))
        .map(|t| {
            let (backend, id, count) = (backend.clone(), id.clone(), count.clone());
            std::thread::spawn(move || -> Result<(), Error> {
                let mut digest = [t as u8; 32];
                while start.elapsed() < for_how_long {
                    digest[1] = digest[1].wrapping_add(1);
                    backend.sign(&id, &digest)?;
                    count.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            })
        })
        .collect();
    for h in handles {
        h.join()
            .map_err(|_| Error::Internal("bench thread panicked".into()))??;
    }
    Ok(count.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64())
}
