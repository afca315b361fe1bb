//! Per-identity rate limits: a token bucket per caller, refilled at
//! `rate` per second up to `burst`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use crate::Error;

/// Token buckets by caller identity.
#[derive(Debug)]
pub struct RateLimit {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimit {
    /// `rate` appends per second per identity, bursts up to `burst`;
    /// a rate of 0 turns the limit off.
    pub fn new(rate: f64, burst: u32) -> Self {
        RateLimit {
            rate,
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `who`, or answers RESOURCE_EXHAUSTED.
    pub fn take(&self, who: &str) -> Result<(), Error> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut buckets = self
            .buckets
            .lock()
            .map_err(|_| Error::Internal("rate limit lock poisoned".into()))?;
        let (tokens, last) = buckets.entry(who.to_owned()).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * self.rate).min(self.burst);
        *last = now;
        if *tokens < 1.0 {
            return Err(Error::ResourceExhausted(format!(
                "{who} is over its rate limit of {} appends/s (burst {}); retry later",
                self.rate, self.burst
            )));
        }
        *tokens -= 1.0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_refusal_then_refill() {
        let r = RateLimit::new(1000.0, 5);
        for _ in 0..5 {
            r.take("a").unwrap();
        }
        assert!(r.take("a").unwrap_err().to_string().contains("rate limit"));
        r.take("b").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(5));
        r.take("a").unwrap();
        assert!(RateLimit::new(0.0, 0).take("x").is_ok());
    }
}
