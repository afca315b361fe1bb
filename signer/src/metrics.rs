//! Prometheus metrics, served as text at `/metrics` on the HTTP port.
//!
//! Process-wide, like a Prometheus default registry: counters and
//! histograms are atomics, so recording on the append path costs a few
//! relaxed additions.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// Upper bounds of latency buckets, seconds.
const LATENCY: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];
/// Upper bounds of batch-size buckets.
const SIZES: [f64; 10] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0,
];

/// A fixed-bucket histogram.
pub struct Histogram {
    bounds: &'static [f64],
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
    /// Sum in millionths of the unit.
    sum_micros: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            buckets: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }

    /// Records one observation.
    pub fn observe(&self, v: f64) {
        if let Some(i) = self.bounds.iter().position(|b| v <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add((v * 1e6) as u64, Ordering::Relaxed);
    }

    /// Records a duration in seconds.
    pub fn time(&self, d: Duration) {
        self.observe(d.as_secs_f64());
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        let sep = if labels.is_empty() { "" } else { "," };
        for (b, n) in self.bounds.iter().zip(&self.buckets) {
            cumulative += n.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(
            out,
            "{name}_sum{braces} {}",
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count{braces} {count}");
    }
}

/// Every metric of the daemon.
pub struct Metrics {
    /// Token signing latency, per backend kind.
    pub sign_seconds: Histogram,
    /// Backend kind, for the label.
    pub backend: OnceLock<&'static str>,
    /// From request received to durable reply.
    pub append_seconds: Histogram,
    /// Receipts per group commit.
    pub batch_size: Histogram,
    /// Write plus fdatasync per group commit.
    pub fsync_seconds: Histogram,
    /// Token liveness (1 up, 0 down).
    pub token_up: AtomicU64,
    /// Token calls in progress; each holds one token session.
    pub token_in_use: AtomicU64,
    /// Leaves in the receipt log's latest checkpoint.
    pub log_size: AtomicU64,
    /// Checkpoints signed since start.
    pub log_checkpoints: AtomicU64,
    receipts: Mutex<BTreeMap<String, u64>>,
    errors: Mutex<BTreeMap<&'static str, u64>>,
}

/// The process's metrics.
pub fn get() -> &'static Metrics {
    static M: OnceLock<Metrics> = OnceLock::new();
    M.get_or_init(|| Metrics {
        sign_seconds: Histogram::new(&LATENCY),
        backend: OnceLock::new(),
        append_seconds: Histogram::new(&LATENCY),
        batch_size: Histogram::new(&SIZES),
        fsync_seconds: Histogram::new(&LATENCY),
        token_up: AtomicU64::new(1),
        token_in_use: AtomicU64::new(0),
        log_size: AtomicU64::new(0),
        log_checkpoints: AtomicU64::new(0),
        receipts: Mutex::new(BTreeMap::new()),
        errors: Mutex::new(BTreeMap::new()),
    })
}

impl Metrics {
    /// Counts `n` durable receipts on `chain`.
    pub fn receipts(&self, chain: &str, n: u64) {
        if let Ok(mut m) = self.receipts.lock() {
            *m.entry(chain.to_owned()).or_default() += n;
        }
    }

    /// Counts one failed request by gRPC code name.
    pub fn error(&self, code: tonic::Code) {
        let name = match code {
            tonic::Code::InvalidArgument => "INVALID_ARGUMENT",
            tonic::Code::AlreadyExists => "ALREADY_EXISTS",
            tonic::Code::NotFound => "NOT_FOUND",
            tonic::Code::PermissionDenied => "PERMISSION_DENIED",
            tonic::Code::Unauthenticated => "UNAUTHENTICATED",
            tonic::Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
            tonic::Code::Unavailable => "UNAVAILABLE",
            _ => "INTERNAL",
        };
        if let Ok(mut m) = self.errors.lock() {
            *m.entry(name).or_default() += 1;
        }
    }

    /// Prometheus text exposition. `keys` adds, per key version, its
    /// signature count and age in seconds.
    pub fn render(&self, keys: &[(String, u64, f64)], root: Option<(usize, f64)>) -> String {
        let mut out = String::with_capacity(4096);
        let backend = self.backend.get().copied().unwrap_or("unknown");
        out.push_str("# HELP sigil_sign_seconds Token signing latency.\n# TYPE sigil_sign_seconds histogram\n");
        self.sign_seconds.render(
            &mut out,
            "sigil_sign_seconds",
            &format!("backend=\"{backend}\""),
        );
        out.push_str("# HELP sigil_append_seconds Append latency, request to durable reply.\n# TYPE sigil_append_seconds histogram\n");
        self.append_seconds
            .render(&mut out, "sigil_append_seconds", "");
        out.push_str("# HELP sigil_batch_size Receipts made durable by one fsync.\n# TYPE sigil_batch_size histogram\n");
        self.batch_size.render(&mut out, "sigil_batch_size", "");
        out.push_str("# HELP sigil_fsync_seconds Write and fdatasync of one group commit.\n# TYPE sigil_fsync_seconds histogram\n");
        self.fsync_seconds
            .render(&mut out, "sigil_fsync_seconds", "");
        out.push_str("# HELP sigil_receipts_total Durable receipts per chain.\n# TYPE sigil_receipts_total counter\n");
        if let Ok(m) = self.receipts.lock() {
            for (chain, n) in m.iter() {
                let _ = writeln!(out, "sigil_receipts_total{{chain=\"{chain}\"}} {n}");
            }
        }
        out.push_str("# HELP sigil_errors_total Failed requests by gRPC status.\n# TYPE sigil_errors_total counter\n");
        if let Ok(m) = self.errors.lock() {
            for (code, n) in m.iter() {
                let _ = writeln!(out, "sigil_errors_total{{code=\"{code}\"}} {n}");
            }
        }
        let backend_label = format!("{{backend=\"{backend}\"}}");
        for (name, kind, help, labels, value) in [
            (
                "sigil_token_up",
                "gauge",
                "Whether the last token check succeeded.",
                backend_label.as_str(),
                &self.token_up,
            ),
            (
                "sigil_token_sessions_in_use",
                "gauge",
                "Token signing calls in progress (each holds a session).",
                &backend_label,
                &self.token_in_use,
            ),
            (
                "sigil_log_size",
                "gauge",
                "Leaves in the receipt log's latest checkpoint.",
                "",
                &self.log_size,
            ),
            (
                "sigil_log_checkpoints_total",
                "counter",
                "Receipt log checkpoints signed since start.",
                "",
                &self.log_checkpoints,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name}{labels} {}",
                value.load(Ordering::Relaxed)
            );
        }
        out.push_str("# HELP sigil_key_signatures Signatures by each key version since start.\n# TYPE sigil_key_signatures gauge\n");
        for (keyid, n, _) in keys {
            let _ = writeln!(out, "sigil_key_signatures{{keyid=\"{keyid}\"}} {n}");
        }
        out.push_str("# HELP sigil_key_age_seconds Age of each active key version.\n# TYPE sigil_key_age_seconds gauge\n");
        for (keyid, _, age) in keys {
            let _ = writeln!(out, "sigil_key_age_seconds{{keyid=\"{keyid}\"}} {age:.0}");
        }
        if let Some((standby, expires_in)) = root {
            out.push_str("# HELP sigil_root_standby_versions Certified standby versions ready to take over.\n# TYPE sigil_root_standby_versions gauge\n");
            let _ = writeln!(out, "sigil_root_standby_versions {standby}");
            out.push_str("# HELP sigil_root_keyset_expires_seconds Seconds until the imported keyset expires (verifiers refuse it after).\n# TYPE sigil_root_keyset_expires_seconds gauge\n");
            let _ = writeln!(out, "sigil_root_keyset_expires_seconds {expires_in:.0}");
        }
        out
    }
}
