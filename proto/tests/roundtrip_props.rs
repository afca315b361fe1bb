//! Property tests: what sigil encodes, it parses back to the same thing.
//!
//! - JCS canonicalization is idempotent and independent of how the input
//!   was spelled.
//! - Timestamps: canonical strings survive `format(parse(s))`, instants
//!   survive `parse(format(t))` and any RFC 3339 offset spelling.
//! - Receipts: an action record encoded, signed and written as sigild
//!   writes a chain line parses back to the same members, signature, key
//!   and receipt hash, bare or inside a recorder entry.
//! - Endorsements, directories and verifier state files survive
//!   `to_json` then `parse`.

// Test code: an unwrap is an assertion.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ed25519_dalek::{Signer, SigningKey};
use proptest::prelude::*;
use serde_json::{json, Map, Number, Value};
use sigil_proto::directory::{Directory, DirectorySignature, KeyEntry, KeyState, Purpose, Through};
use sigil_proto::endorsement::Endorsement;
use sigil_proto::gojson::escape_for_jsonl;
use sigil_proto::lineage::{HighWater, Seen};
use sigil_proto::receipt::schema::ACTION_TYPES;
use sigil_proto::receipt::session::Open;
use sigil_proto::receipt::{self, Entry};
use sigil_proto::{chain, jcs, json, timestamp};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        ..ProptestConfig::default()
    }
}

/// Any string: every Unicode scalar value, control characters, the
/// characters Go escapes (`< > &`, U+2028, U+2029) and NEL among them.
fn any_text(max: usize) -> impl Strategy<Value = String> {
    let special = prop_oneof![
        Just('<'),
        Just('>'),
        Just('&'),
        Just('"'),
        Just('\\'),
        Just('\u{0}'),
        Just('\n'),
        Just('\u{1f}'),
        Just('\u{7f}'),
        Just('\u{85}'),
        Just('\u{2028}'),
        Just('\u{2029}'),
        Just('\u{feff}'),
        Just('\u{1f600}'),
    ];
    prop::collection::vec(prop_oneof![3 => any::<char>(), 1 => special], 0..max)
        .prop_map(|cs| cs.into_iter().collect())
}

fn nonempty_text(max: usize) -> impl Strategy<Value = String> {
    any_text(max).prop_filter("non-empty", |s| !s.is_empty())
}

fn hex64() -> impl Strategy<Value = String> {
    any::<[u8; 32]>().prop_map(hex::encode)
}

/// An instant from year 1 to 9999 (what RFC 3339's four-digit years hold),
/// with any nanosecond.
fn instant() -> impl Strategy<Value = OffsetDateTime> {
    const MIN: i64 = -62_135_596_800; // 0001-01-01T00:00:00Z
    const MAX: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z
    (MIN..=MAX, 0u32..1_000_000_000).prop_map(|(s, ns)| {
        OffsetDateTime::from_unix_timestamp(s)
            .and_then(|t| t.replace_nanosecond(ns))
            .expect("in range by construction")
    })
}

/// A canonical timestamp (UTC, `Z`, no trailing zeros), in the years
/// receipts carry.
fn canonical_timestamp() -> impl Strategy<Value = String> {
    instant()
        .prop_filter("1970 to 2999", |t| (1970..3000).contains(&t.year()))
        .prop_map(timestamp::format)
}

// ---------------------------------------------------------------------------
// JCS

/// Any JSON value sigil's strict parser accepts (finite numbers, unique
/// keys), a few levels deep.
fn json_value(floats: bool) -> impl Strategy<Value = Value> {
    let number = if floats {
        prop_oneof![
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_filter_map("finite", |f| Number::from_f64(f).map(Value::Number)),
        ]
        .boxed()
    } else {
        // Integers JSON carries exactly in every implementation (I-JSON).
        (-(1i64 << 53)..=(1i64 << 53)).prop_map(Value::from).boxed()
    };
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number,
        any_text(12).prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(any_text(8), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn jcs_is_idempotent(v in json_value(true)) {
        let once = jcs::canonicalize(&v).unwrap();
        let text = std::str::from_utf8(&once).unwrap();
        let twice = jcs::canonicalize_str(text).unwrap();
        prop_assert_eq!(&twice, &once, "{}", text);
        // The spelling of the input does not matter: compact or pretty.
        prop_assert_eq!(&jcs::canonicalize_str(&v.to_string()).unwrap(), &once);
        let pretty = serde_json::to_string_pretty(&v).unwrap();
        prop_assert_eq!(&jcs::canonicalize_str(&pretty).unwrap(), &once);
    }

    #[test]
    fn jcs_keeps_the_value(v in json_value(false)) {
        let canonical = jcs::canonicalize(&v).unwrap();
        let back = json::parse(std::str::from_utf8(&canonical).unwrap()).unwrap();
        prop_assert_eq!(back, v);
    }
}

// ---------------------------------------------------------------------------
// Timestamps

proptest! {
    #![proptest_config(config())]

    #[test]
    fn canonical_timestamps_round_trip(s in canonical_timestamp()) {
        let t = timestamp::parse(&s).unwrap();
        prop_assert_eq!(timestamp::format(t), s.as_str());
        prop_assert!(timestamp::is_canonical(&s));
    }

    #[test]
    fn instants_round_trip(t in instant()) {
        let s = timestamp::format(t);
        prop_assert_eq!(timestamp::parse(&s), Ok(t), "{}", s);
        prop_assert!(timestamp::is_canonical(&s), "{}", s);
    }

    /// Any RFC 3339 spelling of an instant (offset, fraction digits) parses
    /// to it and formats canonically. Offsets move the local time across
    /// year boundaries, so the instants stay clear of years 1 and 9999.
    #[test]
    fn offset_spellings_parse_to_the_instant(
        t in instant().prop_filter("years 2 to 9998", |t| (2..9999).contains(&t.year())),
        offset_minutes in -(23 * 60 + 59)..=(23 * 60 + 59),
    ) {
        let offset = UtcOffset::from_whole_seconds(offset_minutes * 60).unwrap();
        let spelled = t.to_offset(offset).format(&Rfc3339).unwrap();
        let parsed = timestamp::parse(&spelled).unwrap();
        prop_assert_eq!(parsed, t, "{}", spelled);
        prop_assert_eq!(timestamp::format(parsed), timestamp::format(t));
        prop_assert_eq!(timestamp::is_canonical(&spelled), spelled == timestamp::format(t));
    }
}

// ---------------------------------------------------------------------------
// Receipts

fn taint_source() -> impl Strategy<Value = Value> {
    (
        any_text(16),
        any_text(8),
        any::<u8>(),
        canonical_timestamp(),
        prop::option::of(nonempty_text(8)),
    )
        .prop_map(|(url, kind, level, ts, reason)| {
            let mut m = Map::new();
            m.insert("url".into(), json!(url));
            m.insert("kind".into(), json!(kind));
            m.insert("level".into(), json!(level));
            m.insert("timestamp".into(), json!(ts));
            if let Some(r) = reason {
                m.insert("match_reason".into(), json!(r));
            }
            Value::Object(m)
        })
}

fn session_control() -> impl Strategy<Value = Value> {
    (
        prop::collection::vec(nonempty_text(10), 5),
        any::<i64>(),
        any::<u64>(),
        prop::option::of((hex64(), 1u64..)),
    )
        .prop_map(|(s, heartbeat_seconds, chain_open_seq, prior)| {
            Open {
                run_nonce: s[0].clone(),
                open_nonce: s[1].clone(),
                recorder_session: s[2].clone(),
                policy_hash: s[3].clone(),
                signer_key_epoch: s[4].clone(),
                heartbeat_seconds,
                chain_open_seq,
                prior,
            }
            .control()
        })
}

fn member(
    name: &'static str,
    value: impl Strategy<Value = Value> + 'static,
) -> BoxedStrategy<Option<(String, Value)>> {
    prop::option::of(value)
        .prop_map(move |v| v.map(|v| (name.to_owned(), v)))
        .boxed()
}

/// Optional members, each non-empty when present (an empty omitempty
/// member is not written, so it would not come back).
fn optional_members() -> impl Strategy<Value = Map<String, Value>> {
    let text = || nonempty_text(24).prop_map(Value::String);
    let strings = || prop::collection::vec(any_text(8), 1..4).prop_map(|v| json!(v));
    let redaction = (
        prop::collection::btree_map(any_text(6), any::<i64>(), 1..4),
        any::<i64>().prop_filter("non-zero", |n| *n != 0),
    )
        .prop_map(|(by_class, total)| json!({"by_class": by_class, "total_redactions": total}));
    let shield = (nonempty_text(8), 1i64..)
        .prop_map(|(pipeline, bytes)| json!({"pipeline": pipeline, "body_bytes": bytes}));
    let key_transition = (hex64(), any::<u64>(), hex64()).prop_map(|(key, seq, hash)| {
        json!({"prior_signer_key": key, "prior_chain_seq": seq, "prior_chain_hash": hash})
    });
    vec![
        member("parent_action_id", text()),
        member("intent", text()),
        member("decision_phase", text()),
        member("session_id", text()),
        member("method", text()),
        member("run_nonce", text()),
        member("data_classes_in", strings()),
        member("precedent_refs", strings()),
        member("session_contaminated", Just(json!(true))),
        member("contract_generation", (1u64..).prop_map(Value::from)),
        member(
            "recent_taint_sources",
            prop::collection::vec(taint_source(), 1..3).prop_map(Value::Array),
        ),
        member("redaction", redaction),
        member("shield", shield),
        member("session_control", session_control()),
        member("key_transition", key_transition),
    ]
    .prop_map(|members| members.into_iter().flatten().collect())
}

prop_compose! {
    /// An action record as sigild builds it: every always-written member set.
    fn action_record()(
        action_id in nonempty_text(24),
        action_type in prop::sample::select(ACTION_TYPES),
        timestamp in canonical_timestamp(),
        // principal, actor, side_effect_class, reversibility, policy_hash
        plain in prop::collection::vec(any_text(16), 5),
        delegation_chain in prop::option::of(prop::collection::vec(any_text(8), 0..4)),
        // target, verdict, transport
        required in prop::collection::vec(nonempty_text(24), 3),
        chain_prev_hash in prop_oneof![hex64(), Just("genesis".to_owned())],
        chain_seq in any::<u64>(),
        optional in optional_members(),
    ) -> Map<String, Value> {
        let mut ar = Map::new();
        ar.insert("version".into(), json!(1));
        ar.insert("action_id".into(), json!(action_id));
        ar.insert("action_type".into(), json!(action_type));
        ar.insert("timestamp".into(), json!(timestamp));
        ar.insert("principal".into(), json!(plain[0]));
        ar.insert("actor".into(), json!(plain[1]));
        ar.insert("delegation_chain".into(), json!(delegation_chain));
        ar.insert("target".into(), json!(required[0]));
        ar.insert("side_effect_class".into(), json!(plain[2]));
        ar.insert("reversibility".into(), json!(plain[3]));
        ar.insert("policy_hash".into(), json!(plain[4]));
        ar.insert("verdict".into(), json!(required[1]));
        ar.insert("transport".into(), json!(required[2]));
        ar.insert("chain_prev_hash".into(), json!(chain_prev_hash));
        ar.insert("chain_seq".into(), json!(chain_seq));
        ar.extend(optional);
        if ar.contains_key("session_control") {
            // A receipt with a session control carries its run.
            ar.entry("run_nonce").or_insert(json!("run"));
        }
        ar
    }
}

fn signing_key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn receipts_parse_back_to_what_was_signed(
        ar in action_record(),
        // The unsigned `ext` is hashed as written, escapes and all, and a
        // chain line escapes NEL (sigild never writes `ext`): keep NEL out.
        ext in prop::option::of(
            json_value(true).prop_filter("no NEL", |v| !v.to_string().contains('\u{85}')),
        ),
        seed in any::<u8>(),
    ) {
        let key = signing_key(seed);
        let key_hex = hex::encode(key.verifying_key().to_bytes());
        let canonical = receipt::action_record_bytes(&ar).unwrap();
        let signature = format!(
            "{}{}",
            receipt::SIG_PREFIX,
            hex::encode(key.sign(&receipt::digest(&canonical)).to_bytes())
        );
        let ext_text = ext.as_ref().map(|v| serde_json::to_string_pretty(v).unwrap());
        let bytes = receipt::receipt_bytes(&canonical, &signature, &key_hex, ext_text.as_deref());
        let hash = receipt::receipt_hash(&bytes);
        // Written as sigild writes a chain line: one line, as Python splits.
        let line = String::from_utf8(escape_for_jsonl(&bytes)).unwrap();
        prop_assert_eq!(chain::split_lines(&line), vec![line.as_str()]);

        let detail = json::parse(&line).unwrap();
        let wrapped_object = json!({"type": "action_receipt", "detail": detail});
        let wrapped_string = json!({"type": "action_receipt", "detail": &line});
        for text in [wrapped_object.to_string(), wrapped_string.to_string(), line] {
            let r = match receipt::parse_entry(&text) {
                Ok(Entry::Receipt(r)) => r,
                other => panic!("{other:?}\n{text}"),
            };
            prop_assert_eq!(&r.action_record, &ar);
            prop_assert_eq!(&r.signature, &signature);
            prop_assert_eq!(&r.signer_key, &key_hex);
            prop_assert_eq!(r.ext_raw.is_some(), ext.is_some());
            prop_assert_eq!(r.canonical_record().unwrap(), canonical.clone());
            prop_assert_eq!(r.hash().unwrap(), hash.clone());
            prop_assert_eq!(receipt::verify(&r, Some(&key_hex)), Ok(canonical.clone()));
        }
    }
}

// ---------------------------------------------------------------------------
// Endorsements, directories, state files

proptest! {
    #![proptest_config(config())]

    #[test]
    fn endorsements_round_trip(
        session_id in nonempty_text(16).prop_filter("not blank", |s| !s.trim().is_empty()),
        (prior, new) in (any::<u8>(), any::<u8>()).prop_filter("two keys", |(a, b)| a != b),
        prior_final_seq in any::<u64>(),
        prior_tail_hash in hex64(),
        rotated_at in canonical_timestamp(),
    ) {
        let (prior, new) = (signing_key(prior), signing_key(new));
        let mut e = Endorsement {
            session_id,
            prior_signer_key: hex::encode(prior.verifying_key().to_bytes()),
            prior_final_seq,
            prior_tail_hash,
            new_signer_key: hex::encode(new.verifying_key().to_bytes()),
            rotated_at,
            endorsement: String::new(),
        };
        e.endorsement = format!(
            "{}{}",
            receipt::SIG_PREFIX,
            hex::encode(prior.sign(&e.digest()).to_bytes())
        );
        let text = e.to_json().to_string();
        let back = Endorsement::parse(&text).unwrap();
        prop_assert_eq!(&back, &e);
        prop_assert_eq!(back.digest(), e.digest());
        prop_assert!(back.verify_signature().is_ok());
        let pretty = serde_json::to_string_pretty(&e.to_json()).unwrap();
        prop_assert_eq!(Endorsement::parse(&pretty).unwrap(), e);
    }
}

fn opt_text() -> impl Strategy<Value = Option<String>> {
    prop::option::of(any_text(12))
}

fn key_state() -> impl Strategy<Value = KeyState> {
    prop_oneof![
        Just(KeyState::Active),
        Just(KeyState::Retired),
        Just(KeyState::Revoked),
        Just(KeyState::Standby)
    ]
}

fn through() -> impl Strategy<Value = Through> {
    (any_text(8), any::<u64>(), hex64()).prop_map(|(chain, seq, receipt_hash)| Through {
        chain,
        seq,
        receipt_hash,
    })
}

prop_compose! {
    fn key_entry()(
        (keyid, name) in (any_text(12), any_text(8)),
        (version, public_key) in (any::<u32>(), any::<[u8; 32]>()),
        state in key_state(),
        (backend, non_extractable) in (any_text(8), any::<bool>()),
        (custody, created) in (any_text(24), any_text(12)),
        // activated, retired, revoked, compromised_since, reason, endorsement
        optional in prop::collection::vec(opt_text(), 6),
        through in prop::option::of(prop::collection::vec(through(), 0..3)),
        purpose in prop::option::of(prop_oneof![Just(Purpose::Chain), Just(Purpose::Digest)]),
    ) -> KeyEntry {
        let mut e = KeyEntry::new(&name, version, &public_key);
        e.keyid = keyid;
        e.state = state;
        e.backend = backend;
        e.non_extractable = non_extractable;
        e.custody = custody;
        e.created = created;
        e.activated = optional[0].clone();
        e.retired = optional[1].clone();
        e.revoked = optional[2].clone();
        e.compromised_since = optional[3].clone();
        e.reason = optional[4].clone();
        e.endorsement = optional[5].clone();
        e.through = through;
        e.purpose = purpose;
        e
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn directories_round_trip(
        keys in prop::collection::vec(key_entry(), 0..4),
        signed_at in prop::option::of(canonical_timestamp()),
        signature in prop::option::of((any_text(12), any_text(16))),
    ) {
        let d = Directory {
            keys,
            signed_at,
            signature: signature.map(|(keyid, value)| DirectorySignature { keyid, value }),
            trust: None,
        };
        let back = Directory::parse(&d.to_json()).unwrap();
        prop_assert_eq!(&back, &d);
        prop_assert_eq!(back.signing_digest().unwrap(), d.signing_digest().unwrap());
    }

    #[test]
    fn state_files_round_trip(
        roots in prop::collection::btree_map(
            hex64(),
            (
                canonical_timestamp(),
                prop::collection::btree_map(any_text(10), hex64(), 0..4),
                prop::collection::btree_map(any_text(10), canonical_timestamp(), 0..3),
            )
                .prop_map(|(signed_at, versions, revoked)| Seen { signed_at, versions, revoked }),
            0..3,
        ),
    ) {
        let hw = HighWater { roots, ..Default::default() };
        prop_assert_eq!(HighWater::parse(&hw.to_json()).unwrap(), hw);
    }
}
