//! Checks sigil's verifier applies beyond pipelock-verify 0.4.1.

use serde_json::Value;
use time::OffsetDateTime;

use crate::receipt::Receipt;
use crate::{timestamp, Error};

/// Checks sigil applies beyond pipelock-verify. Each exists because the
/// receipt-verifier conformance corpus names it as a reason to reject.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Reject a repeated (`action_id`, `decision_phase`) within the last
    /// this-many receipts (0: off). Pipelock pairs an `intent` and an
    /// `outcome` receipt under one `action_id`; different phases are fine.
    pub replay_window: usize,
    /// Reject NUL (U+0000) in any string of a record: it truncates the value
    /// in C-based consumers, a header-injection vector.
    pub forbid_nul: bool,
    /// Reject receipts older than this, measured at `now`.
    pub max_age: Option<time::Duration>,
    /// The instant ages are measured at (default: the current time).
    pub now: Option<OffsetDateTime>,
    /// Reject an `allow` of an (action_type, target, method) that the same
    /// chain has already blocked.
    pub forbid_reversal: bool,
    /// Reject a receipt timestamped before the one it follows in its key
    /// segment. Without this check a thief of a revoked key could backdate
    /// receipts under the key's compromise time; a segment is all such a
    /// thief can write into (a boundary needs the successor's signature).
    pub monotonic_time: bool,
    /// Also across rotation boundaries (`--strict`). sigild never steps
    /// back anywhere in a chain; Pipelock allows a new key's first receipt
    /// to, and its conformance corpus has such a valid chain.
    pub monotonic_across_rotations: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            replay_window: 10_000,
            forbid_nul: true,
            max_age: None,
            now: None,
            forbid_reversal: false,
            monotonic_time: true,
            monotonic_across_rotations: false,
        }
    }
}

impl Policy {
    /// pipelock-verify 0.4.1's behaviour: no checks beyond the format.
    pub fn pipelock() -> Self {
        Policy {
            replay_window: 0,
            forbid_nul: false,
            monotonic_time: false,
            ..Policy::default()
        }
    }
}

/// The per-receipt policies (NUL bytes, age), for single receipts too.
pub fn check_policy(r: &Receipt, policy: &Policy) -> Result<(), Error> {
    if policy.forbid_nul {
        if let Some(path) = find_nul(&Value::Object(r.action_record.clone()), "action_record") {
            return Err(Error::Policy(format!("control byte NUL in {path}")));
        }
    }
    if let Some(max_age) = policy.max_age {
        let ts = timestamp::parse(r.str_field("timestamp")).map_err(Error::Chain)?;
        let now = policy.now.unwrap_or_else(OffsetDateTime::now_utc);
        if now - ts > max_age {
            return Err(Error::Policy(format!(
                "expired: timestamp {} is older than the maximum age",
                r.str_field("timestamp")
            )));
        }
    }
    Ok(())
}

fn find_nul(v: &Value, path: &str) -> Option<String> {
    match v {
        Value::String(s) if s.contains('\0') => Some(path.to_owned()),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .find_map(|(i, x)| find_nul(x, &format!("{path}[{i}]"))),
        Value::Object(m) => m.iter().find_map(|(k, x)| {
            if k.contains('\0') {
                Some(format!("{path} (a key)"))
            } else {
                find_nul(x, &format!("{path}.{k}"))
            }
        }),
        _ => None,
    }
}
