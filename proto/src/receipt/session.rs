//! Session controls (spec §3.4) and the bound `g1:` genesis (§2.7).

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::FormatError;

/// Domain separator of the `g1:` genesis preimage.
const G1_DOMAIN: &[u8] = b"pipelock.receipt.session_open.v1";

/// The fields of a `session_open` that sigil writes.
#[derive(Clone, Debug, Default)]
pub struct Open {
    /// Nonce of the run this open starts.
    pub run_nonce: String,
    /// Nonce of this open.
    pub open_nonce: String,
    /// Recorder session id: the chain name.
    pub recorder_session: String,
    /// Policy hash in force for the run.
    pub policy_hash: String,
    /// Key epoch: the signing key version id.
    pub signer_key_epoch: String,
    /// Promised heartbeat interval (0: none).
    pub heartbeat_seconds: i64,
    /// `chain_seq` of the open receipt itself.
    pub chain_open_seq: u64,
    /// For a restart open: hash and seq of the receipt before it.
    pub prior: Option<(String, u64)>,
}

impl Open {
    /// `g1:` + hex(sha256(framed fields)), for a genesis open.
    pub fn genesis_hash(&self) -> String {
        let mut fields = Map::new();
        fields.insert("run_nonce".into(), json!(self.run_nonce));
        fields.insert("open_nonce".into(), json!(self.open_nonce));
        fields.insert("recorder_session".into(), json!(self.recorder_session));
        fields.insert("policy_hash".into(), json!(self.policy_hash));
        fields.insert("signer_key_epoch".into(), json!(self.signer_key_epoch));
        fields.insert("heartbeat_seconds".into(), json!(self.heartbeat_seconds));
        genesis_hash(&fields)
    }

    /// The `session_control` object; a genesis open carries `genesis_hash`.
    pub fn control(&self) -> Value {
        let mut open = Map::new();
        open.insert("run_nonce".into(), json!(self.run_nonce));
        open.insert("open_nonce".into(), json!(self.open_nonce));
        open.insert("recorder_session".into(), json!(self.recorder_session));
        open.insert("policy_hash".into(), json!(self.policy_hash));
        open.insert("signer_key_epoch".into(), json!(self.signer_key_epoch));
        open.insert("heartbeat_seconds".into(), json!(self.heartbeat_seconds));
        open.insert("chain_open_seq".into(), json!(self.chain_open_seq));
        match &self.prior {
            Some((head, seq)) => {
                open.insert("prior_chain_head".into(), json!(head));
                open.insert("prior_chain_seq".into(), json!(seq));
            }
            None => {
                open.insert("genesis_hash".into(), json!(self.genesis_hash()));
            }
        }
        json!({"kind": "session_open", "open": open})
    }
}

/// `g1:` + hex(sha256(P)) over the framed members of a `session_open`
/// payload (spec §2.7); absent strings frame as empty.
pub fn genesis_hash(open: &Map<String, Value>) -> String {
    let mut h = Sha256::new();
    let mut frame = |b: &[u8]| {
        h.update((b.len() as u64).to_be_bytes());
        h.update(b);
    };
    frame(G1_DOMAIN);
    let s = |k: &str| open.get(k).and_then(Value::as_str).unwrap_or("");
    for k in [
        "run_nonce",
        "open_nonce",
        "recorder_session",
        "policy_hash",
        "signer_key_epoch",
    ] {
        frame(s(k).as_bytes());
    }
    let beat = open
        .get("heartbeat_seconds")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    frame(&(beat.max(0) as u64).to_be_bytes());
    for k in [
        "genesis_anchor_head",
        "genesis_anchor_log",
        "posture_capsule_sha256",
        "containment_nonce",
        "contained_uid",
    ] {
        frame(s(k).as_bytes());
    }
    format!("g1:{}", hex::encode(h.finalize()))
}

/// A `heartbeat` control: the chain head as of this receipt.
pub fn heartbeat(
    run_nonce: &str,
    open_nonce: &str,
    beat: u64,
    chain_head: &str,
    chain_seq_head: u64,
    heartbeat_time: &str,
) -> Value {
    json!({"kind": "heartbeat", "heartbeat": {
        "run_nonce": run_nonce, "open_nonce": open_nonce, "beat": beat,
        "chain_head": chain_head, "chain_seq_head": chain_seq_head,
        "heartbeat_time": heartbeat_time, "fsync_errors_gated": 0, "durability_blocks": 0,
    }})
}

/// A `session_close` control ending a run.
pub fn close(
    run_nonce: &str,
    open_nonce: &str,
    final_seq: u64,
    root_hash: &str,
    receipt_count: u64,
    close_reason: &str,
) -> Value {
    json!({"kind": "session_close", "close": {
        "run_nonce": run_nonce, "open_nonce": open_nonce, "final_seq": final_seq,
        "root_hash": root_hash, "receipt_count": receipt_count,
        "close_reason": close_reason, "fsync_errors_gated": 0, "durability_blocks": 0,
    }})
}

/// Shape rules of a `session_control`: a known `kind` with exactly the one
/// matching payload, and a non-empty `run_nonce` on the receipt.
pub fn check_control_shape(ar: &Map<String, Value>) -> Result<(), FormatError> {
    let Some(ctrl) = ar.get("session_control").filter(|v| !v.is_null()) else {
        return Ok(());
    };
    let path = "action_record.session_control";
    let ctrl = ctrl
        .as_object()
        .ok_or_else(|| FormatError::new(path, "must be an object"))?;
    let kind = ctrl.get("kind").and_then(Value::as_str).unwrap_or("");
    let payload = match kind {
        "session_open" => "open",
        "heartbeat" => "heartbeat",
        "session_close" => "close",
        other => return Err(FormatError::new(path, format!("unknown kind {other:?}"))),
    };
    for p in ["open", "heartbeat", "close"] {
        let present = ctrl.get(p).is_some_and(|v| !v.is_null());
        if present != (p == payload) {
            return Err(FormatError::new(
                path,
                format!("kind {kind:?} must carry exactly the {payload:?} payload"),
            ));
        }
    }
    if ar
        .get("run_nonce")
        .and_then(Value::as_str)
        .unwrap_or("")
        .is_empty()
    {
        return Err(FormatError::new(
            "action_record.run_nonce",
            "a receipt with session_control needs a run_nonce",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn genesis_hash_matches_pipelock_live_chain() {
        // From the first receipt Pipelock 3.2.0 wrote (vectors/pipelock/rotation).
        let open = Open {
            run_nonce: "4120828d9be9b0f9cfb02359a1d29dad".into(),
            open_nonce: "52377cda42792526c8c6bd6ec89f6668".into(),
            recorder_session: "proxy".into(),
            policy_hash: "9da87919033d0a277a33bf45e0a688ae06e32e92641f4d09c1a7e96f8431d80b".into(),
            signer_key_epoch: "7b50779c51c9968bd70551d777d3672dedf3d68e008fbffa1c0de18dedb92897"
                .into(),
            heartbeat_seconds: 0,
            chain_open_seq: 0,
            prior: None,
        };
        assert_eq!(
            open.genesis_hash(),
            "g1:2451a4fbed9070302bf6a684609e3ef0890f8b882b68629640ee2f5c4c02768f"
        );
    }
}
