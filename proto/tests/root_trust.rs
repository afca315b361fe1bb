//! The root role's walk, forged against: thresholds (one count per key),
//! root rotation by the old and the new keys, keysets and statements
//! signed by the online key, expiry, rollback under a state, and documents
//! mixed from different publications. Each refusal names its rule.

// Test code: an unwrap is an assertion.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};

use ed25519_dalek::{Signer, SigningKey};
use serde_json::{json, Value};
use sigil_proto::root::docs::{format_time, Document, OnlineRevocation};
use sigil_proto::root::trust::{verify, Material, Pin, Seen};
use sigil_proto::root::{
    signing_input, Custody, Domain, KeyVersion, Keyset, Root, RootKey, RootPolicy, Signed,
    Statement,
};
use time::{Duration, OffsetDateTime};

fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}
fn hexpk(k: &SigningKey) -> String {
    hex::encode(k.verifying_key().as_bytes())
}
fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc().replace_nanosecond(0).unwrap()
}
fn t(offset: Duration) -> String {
    format_time(now() + offset)
}

fn sign<T>(doc: &mut Signed<T>, k: &SigningKey)
where
    T: Document,
{
    let sig = k.sign(&doc.signing_input().unwrap());
    doc.add_signature(k.verifying_key().as_bytes(), &sig.to_bytes());
}

fn root(version: u64, keys: &[&SigningKey], threshold: u32) -> Signed<Root> {
    Signed::new(Root {
        type_: "sigil.root".into(),
        spec_version: 1,
        deployment: "payments-prod".into(),
        version,
        issued: t(Duration::days(-1)),
        expires: t(Duration::days(365)),
        threshold,
        keys: keys
            .iter()
            .map(|k| (hexpk(k), RootKey::default()))
            .collect(),
        policy: RootPolicy::default(),
    })
    .unwrap()
}

fn version(v: u32, k: &SigningKey) -> KeyVersion {
    KeyVersion {
        version: v,
        public_key: hexpk(k),
        not_before: t(Duration::days(-2)),
        not_after: t(Duration::days(300)),
        custody: Custody::default(),
        revoked: None,
    }
}

fn keyset(version: u64, versions: Vec<KeyVersion>, prev: Option<String>) -> Signed<Keyset> {
    let mut vs = versions;
    vs.sort_by_key(|v| std::cmp::Reverse(v.version));
    Signed::new(Keyset {
        type_: "sigil.keyset".into(),
        spec_version: 1,
        deployment: "payments-prod".into(),
        version,
        root_version: 1,
        prev,
        issued: t(Duration::days(-1)),
        expires: t(Duration::days(170)),
        keys: BTreeMap::from([("mediator".into(), vs)]),
    })
    .unwrap()
}

fn keys_json(ks: &[&SigningKey]) -> Value {
    json!(ks
        .iter()
        .map(|k| json!({"public_key": hexpk(k)}))
        .collect::<Vec<_>>())
}

fn statement(
    ks: &Signed<Keyset>,
    keys: &Value,
    by: &SigningKey,
    at: Duration,
) -> Signed<Statement> {
    let mut s = Signed::new(Statement {
        type_: "sigil.directory".into(),
        spec_version: 1,
        deployment: "payments-prod".into(),
        signed_at: t(at),
        root_version: 1,
        keyset_version: ks.signed.version,
        keyset_sha256: ks.sha256_hex().unwrap(),
        keys_sha256: hex::encode(sigil_proto::root::body_sha256(keys).unwrap()),
        active: BTreeMap::from([("mediator".into(), 1)]),
        revoked: Vec::new(),
    })
    .unwrap();
    sign(&mut s, by);
    s
}

/// Officers a, b, c; online versions v1 (key 11), v2 (key 12).
struct World {
    a: SigningKey,
    b: SigningKey,
    c: SigningKey,
    v1: SigningKey,
    v2: SigningKey,
}

fn world() -> World {
    World {
        a: key(1),
        b: key(2),
        c: key(3),
        v1: key(11),
        v2: key(12),
    }
}

fn pin(keys: &[&SigningKey], threshold: u32) -> Pin {
    Pin::Keys {
        keys: keys.iter().map(|k| hexpk(k)).collect::<BTreeSet<_>>(),
        threshold,
    }
}

/// A genuine publication: root 1 (a, b; 2 of 2), keyset 1 with v1 and v2,
/// a statement by v1.
fn genuine(w: &World) -> Material {
    let mut r = root(1, &[&w.a, &w.b], 2);
    sign(&mut r, &w.a);
    sign(&mut r, &w.b);
    let mut ks = keyset(1, vec![version(1, &w.v1), version(2, &w.v2)], None);
    sign(&mut ks, &w.a);
    sign(&mut ks, &w.b);
    let keys = keys_json(&[&w.v1, &w.v2]);
    let st = statement(&ks, &keys, &w.v1, Duration::minutes(-1));
    Material {
        roots: vec![r],
        keysets: vec![ks],
        statement: Some(st),
        keys: Some(keys),
    }
}

fn refused(m: &Material, p: &Pin, seen: Option<&Seen>) -> String {
    match verify(p, m, now(), seen) {
        Ok(_) => panic!("accepted"),
        Err(e) => e.to_string(),
    }
}

fn expect(m: &Material, p: &Pin, rule: &str) {
    let e = refused(m, p, None);
    assert!(e.contains(rule), "expected {rule:?}, got: {e}");
}

#[test]
fn the_genuine_publication_is_accepted() {
    let w = world();
    let v = verify(&pin(&[&w.a, &w.b], 2), &genuine(&w), now(), None).unwrap();
    assert_eq!(v.root, (1, 2, 2));
    assert_eq!(v.keyset_version, 1);
    assert_eq!(v.lineage.versions.len(), 2);
    assert!(v.lineage.version_of(&hexpk(&w.v2)).is_some());
}

#[test]
fn no_signing_input_is_32_bytes() {
    let body = json!({"x": 1});
    let lens: Vec<usize> = [Domain::Root, Domain::Directory, Domain::Request]
        .iter()
        .map(|d| signing_input(*d, &body).unwrap().len())
        .collect();
    assert_eq!(lens, vec![46, 51, 49]);
    assert!(lens.iter().all(|l| *l != 32));
}

#[test]
fn a_threshold_counts_each_key_once_and_only_root_keys() {
    let w = world();
    let p = pin(&[&w.a, &w.b], 2);
    let mut m = genuine(&w);
    // One root signature.
    let mut r = root(1, &[&w.a, &w.b], 2);
    sign(&mut r, &w.a);
    m.roots = vec![r.clone()];
    expect(&m, &p, "root v1 has 1 valid signature(s)");
    // The same signature twice.
    let dup = r.signatures[0].clone();
    let mut twice = r.clone();
    twice.signatures.push(dup);
    m.roots = vec![twice];
    expect(&m, &p, "two signatures by key");
    // A root key plus the active online key.
    let mut plus_online = r.clone();
    sign(&mut plus_online, &w.v1);
    m.roots = vec![plus_online];
    expect(&m, &p, "root v1 has 1 valid signature(s)");
    // The online key alone, on a keyset.
    let mut m = genuine(&w);
    let mut ks = keyset(1, vec![version(1, &w.v1)], None);
    sign(&mut ks, &w.v1);
    m.keysets = vec![ks];
    expect(&m, &p, "keyset v1 has 0 valid signature(s)");
}

#[test]
fn the_pin_names_exactly_root_one() {
    let w = world();
    let m = genuine(&w);
    expect(&m, &pin(&[&w.a, &w.c], 2), "not the 2 pinned key(s)");
    expect(&m, &pin(&[&w.a, &w.b], 1), "threshold");
}

#[test]
fn a_root_rotation_needs_the_old_and_the_new_threshold() {
    let w = world();
    let p = pin(&[&w.a, &w.b], 2);
    let rotated = |signers: &[&SigningKey]| {
        let mut r2 = root(2, &[&w.a, &w.c], 2);
        for s in signers {
            sign(&mut r2, s);
        }
        r2
    };
    let with_root2 = |r2: Signed<Root>, ks_signers: &[&SigningKey]| {
        let mut m = genuine(&w);
        m.roots.push(r2);
        let mut ks = keyset(1, vec![version(1, &w.v1), version(2, &w.v2)], None);
        for s in ks_signers {
            sign(&mut ks, s);
        }
        let keys = m.keys.clone().unwrap();
        let mut st = statement(&ks, &keys, &w.v1, Duration::minutes(-1));
        st.signed.root_version = 2;
        let mut st = Signed::new(st.signed).unwrap();
        sign(&mut st, &w.v1);
        m.keysets = vec![ks];
        m.statement = Some(st);
        m
    };
    let ok = with_root2(rotated(&[&w.a, &w.b, &w.c]), &[&w.a, &w.c]);
    assert_eq!(verify(&p, &ok, now(), None).unwrap().root.0, 2);
    expect(
        &with_root2(rotated(&[&w.a, &w.c]), &[&w.a, &w.c]),
        &p,
        "root v2 has 1 valid signature(s) by the keys of root v1",
    );
    expect(
        &with_root2(rotated(&[&w.a, &w.b]), &[&w.a, &w.c]),
        &p,
        "root v2 has 1 valid signature(s) by the keys of root v2",
    );
    // After the rotation, b's signature no longer counts on a keyset.
    expect(
        &with_root2(rotated(&[&w.a, &w.b, &w.c]), &[&w.a, &w.b]),
        &p,
        "keyset v1 has 1 valid signature(s) by the keys of root v2",
    );
    // Root 3 straight after root 1.
    let mut m = genuine(&w);
    let mut r3 = root(3, &[&w.a, &w.b], 2);
    sign(&mut r3, &w.a);
    sign(&mut r3, &w.b);
    m.roots.push(r3);
    expect(&m, &p, "root versions go up by exactly one");
}

#[test]
fn documents_signed_online_are_refused() {
    let w = world();
    let p = pin(&[&w.a, &w.b], 2);
    let x = key(66);
    // A root 2 signed by the active version and a key of its choosing.
    let mut m = genuine(&w);
    let mut r2 = root(2, &[&w.a, &x], 1);
    sign(&mut r2, &w.v1);
    sign(&mut r2, &x);
    m.roots.push(r2);
    expect(
        &m,
        &p,
        "root v2 has 0 valid signature(s) by the keys of root v1",
    );
    // A statement adding X to keys[] is not the keys[] published ...
    let mut m = genuine(&w);
    let forged_keys = keys_json(&[&w.v1, &w.v2, &x]);
    m.statement = Some(statement(
        &m.keysets[0],
        &forged_keys,
        &w.v1,
        Duration::minutes(-1),
    ));
    let v = verify(&p, &m, now(), None);
    // ... and when it hashes its own keys[], X is still no keyset version.
    m.keys = Some(forged_keys);
    let l = verify(&p, &m, now(), None).unwrap().lineage;
    assert!(v.unwrap_err().to_string().contains("keys_sha256"));
    assert!(l.version_of(&hexpk(&x)).is_none());
    // A statement signed by X.
    let mut m = genuine(&w);
    let keys = m.keys.clone().unwrap();
    m.statement = Some(statement(&m.keysets[0], &keys, &x, Duration::minutes(-1)));
    expect(&m, &p, "which keyset v1 does not certify");
}

#[test]
fn expiry_is_judged_at_one_instant() {
    let w = world();
    let p = pin(&[&w.a, &w.b], 2);
    let m = genuine(&w);
    let late = now() + Duration::days(200);
    let e = verify(&p, &m, late, None).unwrap_err().to_string();
    assert!(e.contains("keyset v1 expired"), "{e}");
    let later = now() + Duration::days(400);
    let e = verify(&p, &m, later, None).unwrap_err().to_string();
    assert!(e.contains("root v1 expired"), "{e}");
}

#[test]
fn a_stale_or_future_statement_is_refused() {
    let w = world();
    let p = pin(&[&w.a, &w.b], 2);
    let mut m = genuine(&w);
    let keys = m.keys.clone().unwrap();
    m.statement = Some(statement(&m.keysets[0], &keys, &w.v1, Duration::hours(-25)));
    expect(&m, &p, "directory_max_age_seconds");
    m.statement = Some(statement(
        &m.keysets[0],
        &keys,
        &w.v1,
        Duration::minutes(10),
    ));
    expect(&m, &p, "in the future");
}

#[test]
fn a_statement_of_another_publication_is_refused() {
    let w = world();
    let p = pin(&[&w.a, &w.b], 2);
    let mut m = genuine(&w);
    let mut other = keyset(
        2,
        vec![version(1, &w.v1)],
        Some(m.keysets[0].sha256_hex().unwrap()),
    );
    sign(&mut other, &w.a);
    sign(&mut other, &w.b);
    let keys = m.keys.clone().unwrap();
    m.statement = Some(statement(&other, &keys, &w.v1, Duration::minutes(-1)));
    expect(&m, &p, "documents of different publications");
}

#[test]
fn under_a_state_nothing_older_is_accepted() {
    let w = world();
    let p = pin(&[&w.a, &w.b], 2);
    let m1 = genuine(&w);
    let seen1 = verify(&p, &m1, now(), None).unwrap().seen;
    // Keyset 2 follows keyset 1 by hash.
    let mut m2 = genuine(&w);
    let mut ks2 = keyset(
        2,
        vec![version(1, &w.v1), version(2, &w.v2)],
        Some(m1.keysets[0].sha256_hex().unwrap()),
    );
    sign(&mut ks2, &w.a);
    sign(&mut ks2, &w.b);
    let keys = m2.keys.clone().unwrap();
    m2.statement = Some(statement(&ks2, &keys, &w.v2, Duration::seconds(-30)));
    m2.keysets = vec![ks2.clone()];
    let seen2 = verify(&p, &m2, now(), Some(&seen1)).unwrap().seen;
    // Shown keyset 1 again: rolled back.
    let e = refused(&m1, &p, Some(&seen2));
    assert!(e.contains("rolled back: keyset v1"), "{e}");
    // Given both keysets, the newest valid one wins.
    let mut both = m2.clone();
    both.keysets = vec![m1.keysets[0].clone(), ks2];
    assert_eq!(
        verify(&p, &both, now(), Some(&seen2))
            .unwrap()
            .keyset_version,
        2
    );
    // An older statement by the same signer: rolled back.
    let mut older = m2.clone();
    older.statement = Some(statement(
        &older.keysets[0],
        &keys,
        &w.v2,
        Duration::minutes(-5),
    ));
    let e = refused(&older, &p, Some(&seen2));
    assert!(e.contains("rolled back: the statement"), "{e}");
    // A statement by an older version than the one seen: rolled back.
    let mut by_v1 = m2.clone();
    by_v1.statement = Some(statement(
        &by_v1.keysets[0],
        &keys,
        &w.v1,
        Duration::seconds(-10),
    ));
    let e = refused(&by_v1, &p, Some(&seen2));
    assert!(
        e.contains("signed by version 1, older than version 2"),
        "{e}"
    );
    // Once the root revokes v2, its high-water no longer binds.
    let mut ks3 = keyset(
        3,
        vec![version(1, &w.v1), version(2, &w.v2)],
        Some(m2.keysets[0].sha256_hex().unwrap()),
    );
    ks3.signed.keys.get_mut("mediator").unwrap()[0].revoked =
        Some(sigil_proto::root::RootRevocation {
            reason: "seed copied".into(),
            revoked_at: t(Duration::minutes(-20)),
            compromised_since: t(Duration::minutes(-30)),
            through: Vec::new(),
            through_log: None,
        });
    let mut ks3 = Signed::new(ks3.signed).unwrap();
    sign(&mut ks3, &w.a);
    sign(&mut ks3, &w.b);
    let mut m3 = m2;
    m3.statement = Some(statement(&ks3, &keys, &w.v1, Duration::minutes(-5)));
    m3.keysets = vec![ks3];
    let v3 = verify(&p, &m3, now(), Some(&seen2)).unwrap();
    assert!(v3.lineage.revoked.contains_key(&hexpk(&w.v2)));
}

#[test]
fn online_revocations_only_tighten() {
    let w = world();
    let p = pin(&[&w.a, &w.b], 2);
    let mut m = genuine(&w);
    let keys = m.keys.clone().unwrap();
    let mut st = statement(&m.keysets[0], &keys, &w.v2, Duration::minutes(-1)).signed;
    st.revoked.push(OnlineRevocation {
        name: "mediator".into(),
        version: 1,
        compromised_since: t(Duration::hours(-2)),
        reason: "token left unlocked".into(),
        through: Vec::new(),
    });
    let mut s = Signed::new(st).unwrap();
    sign(&mut s, &w.v2);
    m.statement = Some(s);
    let l = verify(&p, &m, now(), None).unwrap().lineage;
    assert!(l.revoked.contains_key(&hexpk(&w.v1)));
    // A statement revoking a key the keyset does not certify is refused.
    let mut st = m.statement.clone().unwrap().signed;
    st.revoked[0].version = 9;
    let mut s = Signed::new(st).unwrap();
    sign(&mut s, &w.v2);
    m.statement = Some(s);
    expect(&m, &p, "revokes mediator.v9");
}

#[test]
fn a_statement_cannot_revoke_the_newer_signer_seen_to_lift_its_high_water() {
    let w = world();
    let p = pin(&[&w.a, &w.b], 2);
    let m = genuine(&w);
    let keys = m.keys.clone().unwrap();
    // The verifier has seen a statement by v2.
    let mut by_v2 = m.clone();
    by_v2.statement = Some(statement(
        &m.keysets[0],
        &keys,
        &w.v2,
        Duration::seconds(-30),
    ));
    let seen = verify(&p, &by_v2, now(), None).unwrap().seen;
    // A thief of v1 signs a newer statement that revokes v2.
    let mut st = statement(&m.keysets[0], &keys, &w.v1, Duration::seconds(-5)).signed;
    st.revoked.push(OnlineRevocation {
        name: "mediator".into(),
        version: 2,
        compromised_since: t(Duration::hours(-1)),
        reason: "framed".into(),
        through: Vec::new(),
    });
    let mut forged = Signed::new(st).unwrap();
    sign(&mut forged, &w.v1);
    let mut attack = m;
    attack.statement = Some(forged);
    let e = refused(&attack, &p, Some(&seen));
    assert!(
        e.contains("signed by version 1, older than version 2"),
        "{e}"
    );
}

#[test]
fn online_revocations_seen_stay_and_trust_files_keep_the_high_water() {
    let w = world();
    let p = pin(&[&w.a, &w.b], 2);
    let m = genuine(&w);
    let keys = m.keys.clone().unwrap();
    let mut st = statement(&m.keysets[0], &keys, &w.v2, Duration::seconds(-30)).signed;
    st.revoked.push(OnlineRevocation {
        name: "mediator".into(),
        version: 1,
        compromised_since: t(Duration::hours(-1)),
        reason: "token left unlocked".into(),
        through: Vec::new(),
    });
    let mut revoking = Signed::new(st).unwrap();
    sign(&mut revoking, &w.v2);
    let mut m1 = m.clone();
    m1.statement = Some(revoking);
    let seen = verify(&p, &m1, now(), None).unwrap().seen;
    assert_eq!(seen.online_revoked.len(), 1);
    // A later statement by v2 that leaves the revocation out.
    let mut m2 = m.clone();
    m2.statement = Some(statement(
        &m.keysets[0],
        &keys,
        &w.v2,
        Duration::seconds(-10),
    ));
    let e = refused(&m2, &p, Some(&seen));
    assert!(e.contains("drops the online revocation"), "{e}");
    // Trust files alone (no statement) keep the statement high-water.
    let mut files = m;
    files.statement = None;
    files.keys = None;
    let v = verify(&p, &files, now(), Some(&seen)).unwrap();
    assert_eq!(v.seen.statement_signer, seen.statement_signer);
    assert!(v.lineage.revoked.contains_key(&hexpk(&w.v1)));
}
