//! What a directory proves: the chain key's lineage from a pinned root,
//! signed by its newest unrevoked version, fresh, and never older than what
//! a verifier has already seen. Each rule is tried with a document that
//! breaks it, signed with real keys.

// Test code: an unwrap is an assertion.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ed25519_dalek::{Signer, SigningKey};
use sigil_proto::directory::{
    endorsement_digest, Directory, DirectorySignature, KeyEntry, KeyState, Purpose, Through,
};
use sigil_proto::lineage::{Freshness, HighWater};
use sigil_proto::timestamp;
use time::{Duration, OffsetDateTime};

fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

fn entry(name: &str, version: u32, k: &SigningKey, purpose: Purpose) -> KeyEntry {
    let mut e = KeyEntry::new(name, version, &k.verifying_key().to_bytes());
    e.purpose = Some(purpose);
    e
}

fn endorse(e: &mut KeyEntry, by: &SigningKey) {
    let d = endorsement_digest(&e.name, e.version, &e.public_key);
    e.endorsement = Some(format!("ed25519:{}", hex::encode(by.sign(&d).to_bytes())));
}

fn signed(mut d: Directory, keyid: &str, by: &SigningKey, at: OffsetDateTime) -> Directory {
    d.signed_at = Some(timestamp::format(at));
    d.signature = None;
    let digest = d.signing_digest().unwrap();
    d.signature = Some(DirectorySignature {
        keyid: keyid.into(),
        value: format!("ed25519:{}", hex::encode(by.sign(&digest).to_bytes())),
    });
    d
}

/// mediator v1 -> v2 (endorsed), and a digest key.
fn genuine() -> (Directory, [SigningKey; 3]) {
    let (k1, k2, kd) = (key(1), key(2), key(9));
    let v1 = entry("mediator", 1, &k1, Purpose::Chain);
    let mut v2 = entry("mediator", 2, &k2, Purpose::Chain);
    endorse(&mut v2, &k1);
    let mut v1 = v1;
    v1.state = KeyState::Retired;
    let d = Directory {
        keys: vec![v2, v1, entry("digests", 1, &kd, Purpose::Digest)],
        signed_at: None,
        signature: None,
        trust: None,
    };
    (d, [k1, k2, kd])
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

fn fresh() -> Freshness {
    Freshness {
        at: now(),
        max_age: Some(Duration::hours(24)),
    }
}

fn root(k: &SigningKey) -> String {
    hex::encode(k.verifying_key().to_bytes())
}

fn refused(d: &Directory, pin: Option<&str>, f: &Freshness, why: &str) {
    match d.lineage(pin, f) {
        Ok(l) => panic!("accepted (newest {}), expected {why:?}", l.newest().keyid),
        Err(e) => assert!(e.to_string().contains(why), "{e} / {why:?}"),
    }
}

#[test]
fn the_newest_version_signs_and_the_lineage_walks_from_the_root() {
    let (d, [k1, k2, _]) = genuine();
    let d = signed(d, "mediator.v2", &k2, now());
    let l = d.lineage(Some(&root(&k1)), &fresh()).unwrap();
    assert_eq!(l.versions.len(), 2);
    assert_eq!(l.newest().keyid, "mediator.v2");
    assert!(l.version_of(&root(&key(9))).is_none(), "a digest key");
    // Without a pin the directory's own first chain version is the root.
    assert_eq!(
        d.lineage(None, &fresh()).unwrap().root().keyid,
        "mediator.v1"
    );
}

#[test]
fn an_older_or_revoked_version_may_not_sign() {
    let (d, [k1, k2, _]) = genuine();
    let by_v1 = signed(d.clone(), "mediator.v1", &k1, now());
    refused(
        &by_v1,
        Some(&root(&k1)),
        &fresh(),
        "only the newest version of the lineage, mediator.v2, may sign it",
    );
    let mut revoked = d;
    revoked.keys[0].state = KeyState::Revoked;
    revoked.keys[0].compromised_since = Some(timestamp::format(now()));
    let revoked = signed(revoked, "mediator.v2", &k2, now());
    refused(&revoked, Some(&root(&k1)), &fresh(), "is revoked");
}

#[test]
fn digest_keys_and_unendorsed_versions_vouch_for_nothing() {
    let (d, [k1, k2, kd]) = genuine();
    let d2 = signed(d.clone(), "mediator.v2", &k2, now());
    refused(&d2, Some(&root(&kd)), &fresh(), "is a digest key");
    // A v3 the attacker made, not endorsed by v2, signing the directory.
    let kx = key(7);
    let mut with_x = d;
    with_x.keys.push(entry("mediator", 3, &kx, Purpose::Chain));
    let with_x = signed(with_x, "mediator.v3", &kx, now());
    refused(
        &with_x,
        Some(&root(&k1)),
        &fresh(),
        "has no endorsement by mediator.v2",
    );
}

#[test]
fn a_stale_or_future_directory_is_refused() {
    let (d, [k1, k2, _]) = genuine();
    let stale = signed(d.clone(), "mediator.v2", &k2, now() - Duration::hours(25));
    refused(
        &stale,
        Some(&root(&k1)),
        &fresh(),
        "older than the maximum age",
    );
    let future = signed(d, "mediator.v2", &k2, now() + Duration::hours(1));
    refused(&future, Some(&root(&k1)), &fresh(), "in the future");
}

#[test]
fn the_high_water_mark_refuses_rollbacks() {
    let (d, [k1, k2, _]) = genuine();
    let t0 = now() - Duration::minutes(10);
    let pin = root(&k1);
    let old = signed(d.clone(), "mediator.v2", &k2, t0);
    let mut revoked = d.clone();
    revoked.keys[1].state = KeyState::Revoked;
    revoked.keys[1].compromised_since = Some(timestamp::format(t0));
    revoked.keys[1].through = Some(vec![Through {
        chain: "pay".into(),
        seq: 3,
        receipt_hash: "ab".repeat(32),
    }]);
    let new = signed(revoked.clone(), "mediator.v2", &k2, now());

    let mut state = HighWater::default();
    state
        .advance(&old.lineage(Some(&pin), &fresh()).unwrap())
        .unwrap();
    state
        .advance(&new.lineage(Some(&pin), &fresh()).unwrap())
        .unwrap();
    let l = new.lineage(Some(&pin), &fresh()).unwrap();
    let rev = l.revoked.get(&pin).unwrap();
    assert_eq!(
        rev.through.as_ref().unwrap().get("pay"),
        Some(&(3, "ab".repeat(32)))
    );

    let err = |d: &Directory| {
        let mut s = state.clone();
        s.advance(&d.lineage(Some(&pin), &fresh()).unwrap())
            .unwrap_err()
            .to_string()
    };
    assert!(err(&old).contains("before the directory already seen"));
    // Signed later, but the revocation is gone.
    let unrevoked = signed(d, "mediator.v2", &k2, now() + Duration::seconds(1));
    assert!(err(&unrevoked).contains("was revoked and is not any more"));
    // The compromise moved later.
    let mut later = revoked;
    later.keys[1].compromised_since = Some(timestamp::format(now()));
    let later = signed(later, "mediator.v2", &k2, now() + Duration::seconds(1));
    assert!(err(&later).contains("moved later"));
    // The state survives a round trip through its file form.
    assert_eq!(HighWater::parse(&state.to_json()).unwrap(), state);
}

#[test]
fn a_version_at_the_end_of_u32_is_no_panic() {
    // Found by fuzzing: the walk's `version + 1` overflowed.
    let (mut d, [k1, _, _]) = genuine();
    d.keys.retain(|k| k.version == 1 && k.name == "mediator");
    d.keys[0].version = u32::MAX;
    d.keys[0].state = KeyState::Active;
    let d = signed(d, "mediator.v1", &k1, now());
    let l = d.lineage(Some(&root(&k1)), &fresh()).unwrap();
    assert_eq!(l.newest().version, u32::MAX);
}
