//! A producer record (`sigil append`, `Append.record_json`), as sigild
//! checks it, then encoded as the sequencer encodes it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};
use sigil_proto::receipt::{self, schema::Emit, schema::ACTION_RECORD};
use sigil_signer::record::{self, Limits, DAEMON_OWNED};

fuzz_target!(|data: &[u8]| {
    let Some(text) = sigil_fuzz::text(data) else {
        return;
    };
    let Ok(mut rec) = record::parse(text, &Limits::default()) else {
        return;
    };
    // What parse promises: no daemon member, the four required strings.
    assert!(DAEMON_OWNED.iter().all(|k| !rec.contains_key(*k)));
    for k in ["action_type", "target", "verdict", "transport"] {
        assert!(rec[k].as_str().is_some_and(|s| !s.is_empty()), "{k}");
    }
    // The daemon's members, then the canonical encoding (which checks the
    // nested members the parser leaves to it): it may refuse, never panic.
    rec.insert("version".into(), json!(1));
    rec.insert("timestamp".into(), json!("2026-01-02T03:04:05.5Z"));
    rec.entry("action_id").or_insert(json!("fuzz"));
    for f in ACTION_RECORD.fields {
        if f.emit == Emit::Always {
            rec.entry(f.name).or_insert(Value::Null);
        }
    }
    rec.insert("chain_prev_hash".into(), json!("0".repeat(64)));
    rec.insert("chain_seq".into(), json!(1u64));
    rec.insert("run_nonce".into(), json!("00"));
    let _ = receipt::action_record_bytes(&rec);
});
