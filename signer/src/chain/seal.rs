//! Building, signing and hashing one receipt at the tail of a chain, and
//! the daemon's own receipts: session controls, rotation boundaries,
//! revocations, sign-digest records.

use serde_json::{json, Map, Value};
use sigil_keys::Backend;
use sigil_proto::endorsement::Endorsement;
use sigil_proto::gojson::escape_for_jsonl;
use sigil_proto::receipt;
use sigil_proto::receipt::schema::{Emit, ACTION_RECORD};
use sigil_proto::receipt::session::Open;
use sigil_proto::timestamp;

use super::tail::Tail;
use super::{Appended, Settings};
use crate::keyring::{KeyVersion, Revoked};
use crate::record::reserved;
use crate::Error;

/// Builds the receipt at `seq` from `ar`, signs it with the tail's key and
/// advances the tail. Nothing changes when it fails.
pub(super) fn seal_at(
    backend: &dyn Backend,
    tail: &mut Tail,
    mut ar: Map<String, Value>,
    control: Option<Value>,
    seq: u64,
) -> Result<Appended, Error> {
    ar.insert("version".into(), json!(1));
    let at = tail.next_time();
    ar.insert("timestamp".into(), json!(timestamp::format(at)));
    if !ar.contains_key("action_id") {
        ar.insert("action_id".into(), json!(uuid::Uuid::now_v7().to_string()));
    }
    for field in ACTION_RECORD.fields {
        if field.emit == Emit::Always && !ar.contains_key(field.name) {
            ar.insert(field.name.into(), field.kind.zero());
        }
    }
    ar.insert("chain_prev_hash".into(), json!(tail.hash));
    ar.insert("chain_seq".into(), json!(seq));
    ar.insert("run_nonce".into(), json!(tail.run_nonce));
    if let Some(c) = control {
        ar.insert("session_control".into(), c);
    }
    // The one encoding of the record also checks its nested members; an
    // error here leaves the tail untouched.
    let canonical = receipt::action_record_bytes(&ar).map_err(|e| {
        let path = e.path.replacen("action_record", "record", 1);
        Error::InvalidArgument(format!("{path}: {}", e.problem))
    })?;
    let digest = receipt::digest(&canonical);
    let signature = sigil_proto::sig::encode(&backend.sign(&tail.key.id, &digest)?.0);
    check_signature(backend, &tail.key, &digest, &signature)?;
    let bytes = receipt::receipt_bytes(&canonical, &signature, &tail.key.public_hex, None);
    let hash = receipt::receipt_hash(&bytes);
    let line = String::from_utf8(escape_for_jsonl(&bytes))
        .map_err(|e| Error::Internal(format!("receipt is not UTF-8: {e}")))?;
    let id = ar["action_id"].as_str().unwrap_or("");
    let phase = ar
        .get("decision_phase")
        .and_then(Value::as_str)
        .unwrap_or("");
    tail.remember(id, phase);
    tail.seq = seq;
    tail.hash = hash.clone();
    tail.fresh.push(hash.clone());
    tail.last_time = Some(at);
    tail.segment_count += 1;
    Ok(Appended { seq, hash, line })
}

/// The next receipt of the chain.
pub(super) fn seal(
    backend: &dyn Backend,
    tail: &mut Tail,
    ar: Map<String, Value>,
    control: Option<Value>,
) -> Result<Appended, Error> {
    let seq = tail.seq + 1;
    seal_at(backend, tail, ar, control, seq)
}

/// Checks a device's signature (`ed25519:` + hex) before anything that
/// depends on it is written; in-process signers are ed25519-dalek itself.
pub(crate) fn check_signature(
    backend: &dyn Backend,
    key: &KeyVersion,
    message: &[u8],
    signature: &str,
) -> Result<(), Error> {
    if backend.signs_in_process() {
        return Ok(());
    }
    sigil_proto::sig::verify(&key.public_hex, message, signature, false).map_err(|_| {
        Error::Unavailable(format!(
            "the token returned a signature that does not verify under {} ({}); nothing was \
             written. Check that the token still holds the key keys.json records (sigil keys \
             list): a re-initialised token or another object under the same label does this",
            key.id, key.public_hex
        ))
    })
}

/// The members of a receipt the daemon writes about itself.
pub(super) fn daemon_record(target: String, settings: &Settings) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("action_type".into(), json!("unclassified"));
    m.insert("principal".into(), json!(reserved::PRINCIPALS[0]));
    m.insert("actor".into(), json!(reserved::ACTOR));
    m.insert("target".into(), json!(target));
    m.insert("side_effect_class".into(), json!("none"));
    m.insert("reversibility".into(), json!("unknown"));
    m.insert("policy_hash".into(), json!(settings.policy_hash));
    m.insert("verdict".into(), json!("allow"));
    m.insert("transport".into(), json!(reserved::TRANSPORTS[0]));
    m
}

/// A session-open of a new run: the genesis (`prior` None, at seq 0) or a
/// restart open after the tail.
pub(super) fn open_run(
    chain: &str,
    tail: &mut Tail,
    settings: &Settings,
    genesis: bool,
) -> Result<(Map<String, Value>, Value, u64), Error> {
    let open = Open {
        run_nonce: nonce()?,
        open_nonce: nonce()?,
        recorder_session: chain.to_owned(),
        policy_hash: settings.policy_hash.clone(),
        signer_key_epoch: tail.key.id.to_string(),
        heartbeat_seconds: settings.heartbeat_seconds as i64,
        chain_open_seq: if genesis { 0 } else { tail.seq + 1 },
        prior: (!genesis).then(|| (tail.hash.clone(), tail.seq)),
    };
    if genesis {
        tail.hash = open.genesis_hash();
    }
    tail.run_nonce = open.run_nonce.clone();
    tail.open_nonce = open.open_nonce.clone();
    tail.beat = 0;
    let seq = open.chain_open_seq;
    Ok((
        daemon_record("sigil://session/open".into(), settings),
        open.control(),
        seq,
    ))
}

/// The rotation of a chain from its tail key to `new`: the endorsement
/// entry (signed by the old key) and the boundary receipt (a restart
/// session_open with `key_transition`, `chain_seq` 0, signed by the new
/// key), as two lines to be written together, endorsement first.
pub(super) fn rotation(
    backend: &dyn Backend,
    chain: &str,
    tail: &mut Tail,
    new: &KeyVersion,
    settings: &Settings,
) -> Result<(String, Appended), Error> {
    let old = tail.key.clone();
    let prior = (tail.seq, tail.hash.clone());
    let rotated_at = timestamp::format(tail.next_time());
    let mut e = Endorsement {
        session_id: chain.to_owned(),
        prior_signer_key: old.public_hex.clone(),
        prior_final_seq: tail.seq,
        prior_tail_hash: tail.hash.clone(),
        new_signer_key: new.public_hex.clone(),
        rotated_at: rotated_at.clone(),
        endorsement: String::new(),
    };
    let digest = e.digest();
    e.endorsement = sigil_proto::sig::encode(&backend.sign(&old.id, &digest)?.0);
    check_signature(backend, &old, &digest, &e.endorsement)?;
    let entry = json!({
        "type": "rotation_endorsement",
        "ts": rotated_at,
        "session_id": chain,
        "detail": e.to_json(),
    })
    .to_string();

    let saved = (
        tail.key.clone(),
        tail.run_nonce.clone(),
        tail.open_nonce.clone(),
        tail.segment_count,
        tail.beat,
    );
    let open = Open {
        run_nonce: nonce()?,
        open_nonce: nonce()?,
        recorder_session: chain.to_owned(),
        policy_hash: settings.policy_hash.clone(),
        signer_key_epoch: new.id.to_string(),
        heartbeat_seconds: settings.heartbeat_seconds as i64,
        chain_open_seq: 0,
        prior: Some((tail.hash.clone(), tail.seq)),
    };
    let mut record = daemon_record("sigil://session/open".into(), settings);
    record.insert(
        "key_transition".into(),
        json!({"prior_signer_key": old.public_hex, "prior_chain_seq": tail.seq, "prior_chain_hash": tail.hash}),
    );
    tail.key = new.clone();
    tail.run_nonce = open.run_nonce.clone();
    tail.open_nonce = open.open_nonce.clone();
    tail.segment_count = 0;
    tail.beat = 0;
    match seal_at(backend, tail, record, Some(open.control()), 0) {
        Ok(a) => {
            tail.ended.insert(old.public_hex, prior);
            Ok((entry, a))
        }
        Err(err) => {
            (
                tail.key,
                tail.run_nonce,
                tail.open_nonce,
                tail.segment_count,
                tail.beat,
            ) = saved;
            Err(err)
        }
    }
}

/// The receipt recording a key revocation.
pub(super) fn revocation_record(
    r: &Revoked,
    through: Option<&(u64, String)>,
    settings: &Settings,
) -> Map<String, Value> {
    let mut m = daemon_record(format!("sigil://keys/{}/revoke", r.key.id), settings);
    m.insert("principal".into(), json!(reserved::PRINCIPALS[1]));
    let position = match through {
        Some((seq, hash)) => format!(
            "its last trusted receipt here is chain_seq {seq} of its segment, receipt hash {hash}"
        ),
        None => "it signed nothing on this chain".into(),
    };
    m.insert(
        "intent".into(),
        json!(format!(
            "revoke key {} ({}) at {}: compromised since {}; reason: {}; {position}",
            r.key.id, r.key.public_hex, r.revoked_at, r.compromised_since, r.reason
        )),
    );
    m.insert("verdict".into(), json!("revoked"));
    m.insert("transport".into(), json!(reserved::TRANSPORTS[1]));
    m.insert("reversibility".into(), json!("irreversible"));
    m
}

/// The receipt recording that damaged lines after the last valid receipt
/// (chain_seq `seq`, receipt hash `hash`) were moved aside at start.
pub(super) fn cut_record(
    seq: u64,
    hash: &str,
    bytes: u64,
    lines: usize,
    aside: &str,
    reason: &str,
    settings: &Settings,
) -> Map<String, Value> {
    // The reason comes from the damaged bytes' parse: keep it short and
    // printable (verifiers refuse a NUL byte in any string).
    let reason: String = reason
        .chars()
        .take(300)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    let mut m = daemon_record("sigil://chain/cut".into(), settings);
    m.insert(
        "intent".into(),
        json!(format!(
            "moved {bytes} bytes ({lines} lines) after chain_seq {seq} (receipt hash {hash}) \
             aside to {aside}, next to the chain file: they were never acknowledged; {reason}"
        )),
    );
    m
}

/// The receipt recording a SignDigest.
pub(super) fn sign_digest_record(
    digest: &[u8; 32],
    key: &KeyVersion,
    principal: &str,
) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("action_type".into(), json!("unclassified"));
    m.insert("principal".into(), json!(principal));
    m.insert("actor".into(), json!(reserved::ACTOR));
    m.insert(
        "target".into(),
        json!(format!(
            "sigil://sign-digest/sha256:{}",
            hex::encode(digest)
        )),
    );
    m.insert(
        "intent".into(),
        json!(format!("sign-digest with {} ({})", key.id, key.public_hex)),
    );
    m.insert("side_effect_class".into(), json!("none"));
    m.insert("reversibility".into(), json!("unknown"));
    m.insert("verdict".into(), json!("allow"));
    m.insert("transport".into(), json!("grpc"));
    m
}

/// 16 random bytes as hex, for run and open nonces.
pub(super) fn nonce() -> Result<String, Error> {
    let mut b = [0u8; 16];
    getrandom::getrandom(&mut b)
        .map_err(|e| Error::Unavailable(format!("no randomness from the OS: {e}")))?;
    Ok(hex::encode(b))
}
