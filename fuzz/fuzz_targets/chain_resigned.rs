//! A chain file re-signed by fuzz keys (see `sigil_fuzz::resign_chain`), so
//! that mutations reach the checks behind the signatures: links, genesis,
//! sessions, rotations and their endorsements, revocations, policies.
#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use sigil_proto::chain::{self, Options, Revocation};
use sigil_proto::policy::Policy;
use sigil_proto::timestamp;

fuzz_target!(|data: &[u8]| {
    let Some(text) = sigil_fuzz::text(data) else {
        return;
    };
    let re = sigil_fuzz::resign_chain(text);
    let Some(root) = re.root.clone() else {
        return;
    };
    let pinned = Options {
        pinned: Some(root.clone()),
        endorsements_from_file: true,
        ..Options::default()
    };
    let _ = chain::verify(&re.text, &pinned);
    let pipelock = Options {
        policy: Policy::pipelock(),
        ..Options::default()
    };
    let _ = chain::verify(&re.text, &pipelock);

    // Strict, with the root revoked from its middle receipt on, and its
    // revocation taking effect at that receipt.
    let in_root: Vec<_> = re.receipts.iter().filter(|r| r.0 == root).collect();
    let mid = in_root[in_root.len() / 2];
    let last_time = re
        .receipts
        .iter()
        .rev()
        .find_map(|r| timestamp::parse(&r.3).ok());
    let Ok(since) = timestamp::parse(&mid.3) else {
        return;
    };
    let session = re.session.clone().unwrap_or_else(|| "proxy".into());
    let strict = Options {
        pinned: Some(root.clone()),
        endorsements_from_file: true,
        revoked: HashMap::from([(
            root,
            Revocation {
                keyid: "fuzz.v1".into(),
                compromised_since: since,
                reason: "fuzz".into(),
                through: Some(HashMap::from([(session, (mid.1, mid.2.clone()))])),
            },
        )]),
        policy: Policy {
            forbid_reversal: true,
            monotonic_across_rotations: true,
            max_age: Some(time::Duration::days(1)),
            now: last_time,
            ..Policy::default()
        },
        ..Options::default()
    };
    let _ = chain::verify(&re.text, &strict);
});
