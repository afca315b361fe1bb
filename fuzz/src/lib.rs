//! Helpers shared by the fuzz targets.
//!
//! Most of what sigil verifies sits behind an Ed25519 signature, which a
//! fuzzer never forges: a mutated receipt fails at its signature and the
//! checks after it (links, sessions, rotations, revocations, policies) stay
//! unreached. [`resign_chain`] and [`resign_directory`] keep the fuzzer's
//! document as it is but replace every key by a fuzz key derived from it
//! and every signature by a valid one, and re-link the hashes that the
//! re-signing changed, so those checks see mutated but well-signed input.

use std::collections::HashMap;

use ed25519_dalek::{Signer, SigningKey};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use sigil_proto::chain::split_lines;
use sigil_proto::directory::{endorsement_digest, Directory, DirectorySignature};
use sigil_proto::endorsement::Endorsement;
use sigil_proto::gojson::escape_for_jsonl;
use sigil_proto::receipt::{self, Entry, Receipt, SIG_PREFIX};

/// The input as UTF-8 text, or `None` (every parser here takes `&str`).
pub fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn sign(key: &SigningKey, msg: &[u8]) -> String {
    format!("{SIG_PREFIX}{}", hex::encode(key.sign(msg).to_bytes()))
}

/// Fuzz keys, one per distinct original public key (case-insensitive).
#[derive(Default)]
pub struct Keys {
    /// Original public key (lowercase) to fuzz public key (lowercase).
    by_old: HashMap<String, String>,
    /// Fuzz public key (lowercase) to its signing key.
    by_new: HashMap<String, SigningKey>,
}

impl Keys {
    /// The fuzz key standing for `old` (64 hex characters), created on
    /// first use: its public key hex, upper case when `old` had any upper
    /// case (so the verifier's case rules still see it).
    pub fn map(&mut self, old: &str) -> Option<String> {
        if !is_hex64(old) {
            return None;
        }
        let lower = old.to_ascii_lowercase();
        let new = match self.by_old.get(&lower) {
            Some(n) => n.clone(),
            None => {
                let mut h = Sha256::new();
                h.update(b"sigil-fuzz-key\0");
                h.update(lower.as_bytes());
                let key = SigningKey::from_bytes(&h.finalize().into());
                let n = hex::encode(key.verifying_key().to_bytes());
                self.by_old.insert(lower, n.clone());
                self.by_new.insert(n.clone(), key);
                n
            }
        };
        Some(if old.bytes().any(|b| b.is_ascii_uppercase()) {
            new.to_ascii_uppercase()
        } else {
            new
        })
    }

    /// The signing key of a fuzz public key (any case).
    pub fn signer(&self, new: &str) -> Option<&SigningKey> {
        self.by_new.get(&new.to_ascii_lowercase())
    }
}

/// What [`resign_chain`] made.
#[derive(Default)]
pub struct Resigned {
    /// The chain file, every receipt and endorsement signed by fuzz keys.
    pub text: String,
    /// The first receipt's fuzz key (lowercase): the root to pin.
    pub root: Option<String>,
    /// The first `session_open`'s recorder session.
    pub session: Option<String>,
    /// Every receipt written: (signer key, chain_seq, receipt hash, timestamp).
    pub receipts: Vec<(String, u64, String, String)>,
}

/// Replaces strings found in `hashes` anywhere in `v`.
fn relink(v: &mut Value, hashes: &HashMap<String, String>) {
    match v {
        Value::String(s) => {
            if let Some(n) = hashes.get(s.as_str()) {
                *s = n.clone();
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| relink(x, hashes)),
        Value::Object(m) => m.values_mut().for_each(|x| relink(x, hashes)),
        _ => {}
    }
}

fn resign_receipt(
    r: &Receipt,
    keys: &mut Keys,
    hashes: &mut HashMap<String, String>,
    out: &mut Resigned,
) -> Option<String> {
    let old_hash = r.hash().ok()?;
    let new_key = keys.map(&r.signer_key)?;
    let mut ar: Map<String, Value> = r.action_record.clone();
    for v in ar.values_mut() {
        relink(v, hashes);
    }
    if let Some(Value::Object(kt)) = ar.get_mut("key_transition") {
        if let Some(Value::String(prior)) = kt.get_mut("prior_signer_key") {
            if let Some(n) = keys.map(prior) {
                *prior = n;
            }
        }
    }
    let canonical = receipt::action_record_bytes(&ar).ok()?;
    let signature = if r.signature.starts_with(SIG_PREFIX) {
        sign(keys.signer(&new_key)?, &receipt::digest(&canonical))
    } else {
        r.signature.clone()
    };
    let bytes = receipt::receipt_bytes(&canonical, &signature, &new_key, r.ext_raw.as_deref());
    let new_hash = receipt::receipt_hash(&bytes);
    hashes.insert(old_hash, new_hash.clone());
    if out.root.is_none() {
        out.root = Some(new_key.to_ascii_lowercase());
    }
    if out.session.is_none() {
        out.session = ar
            .get("session_control")
            .and_then(|c| c.get("open"))
            .and_then(|o| o.get("recorder_session"))
            .and_then(Value::as_str)
            .map(str::to_owned);
    }
    let str_of = |k: &str| ar.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    out.receipts.push((
        new_key.to_ascii_lowercase(),
        ar.get("chain_seq").and_then(Value::as_u64).unwrap_or(0),
        new_hash,
        str_of("timestamp"),
    ));
    String::from_utf8(escape_for_jsonl(&bytes)).ok()
}

fn resign_endorsement(
    detail: &Option<Value>,
    keys: &mut Keys,
    hashes: &HashMap<String, String>,
) -> Option<String> {
    let mut e = Endorsement::from_map(detail.as_ref()?.as_object()?).ok()?;
    e.prior_signer_key = keys.map(&e.prior_signer_key)?;
    e.new_signer_key = keys.map(&e.new_signer_key)?;
    if let Some(n) = hashes.get(&e.prior_tail_hash) {
        e.prior_tail_hash = n.clone();
    }
    if e.endorsement.starts_with(SIG_PREFIX) {
        e.endorsement = sign(keys.signer(&e.prior_signer_key)?, &e.digest());
    }
    Some(json!({"type": "rotation_endorsement", "detail": e.to_json()}).to_string())
}

/// Re-signs a chain file with fuzz keys, line by line as the verifier
/// splits it. Receipts and rotation endorsements that parse are re-signed
/// (a signature that was not `ed25519:` stays as it was) and every receipt
/// hash they mention is replaced by the re-signed receipt's; other lines
/// are kept as they are.
pub fn resign_chain(text: &str) -> Resigned {
    let mut keys = Keys::default();
    let mut hashes = HashMap::new();
    let mut out = Resigned::default();
    let mut lines = String::with_capacity(text.len() + 1024);
    for line in split_lines(text) {
        let new = match receipt::parse_entry(line) {
            Ok(Entry::Receipt(r)) => resign_receipt(&r, &mut keys, &mut hashes, &mut out),
            Ok(Entry::Other { kind, detail }) if kind == "rotation_endorsement" => {
                resign_endorsement(&detail, &mut keys, &hashes)
            }
            _ => None,
        };
        lines.push_str(new.as_deref().unwrap_or(line));
        lines.push('\n');
    }
    out.text = lines;
    out
}

/// The directory with every 64-hex public key replaced by a fuzz key, each
/// `ed25519:` endorsement re-signed by the entry of the same name one
/// version below (when there is one) and an `ed25519:` directory signature
/// re-signed by the entry its keyid names. Returns the directory and its
/// first entry's new public key.
pub fn resign_directory(d: &Directory) -> (Directory, Option<String>) {
    let mut keys = Keys::default();
    let mut d = d.clone();
    for e in &mut d.keys {
        if let Some(n) = keys.map(&e.public_key) {
            e.public_key = n;
        }
    }
    let signers: Vec<(String, u32, String)> = d
        .keys
        .iter()
        .map(|e| (e.name.clone(), e.version, e.public_key.clone()))
        .collect();
    for e in &mut d.keys {
        if !e
            .endorsement
            .as_deref()
            .is_some_and(|s| s.starts_with(SIG_PREFIX))
        {
            continue;
        }
        let by = signers
            .iter()
            .find(|(n, v, _)| *n == e.name && Some(*v) == e.version.checked_sub(1))
            .and_then(|(_, _, pk)| keys.signer(pk));
        if let Some(by) = by {
            e.endorsement = Some(sign(
                by,
                &endorsement_digest(&e.name, e.version, &e.public_key),
            ));
        }
    }
    if let Some(sig) = d.signature.clone() {
        let by = d
            .keys
            .iter()
            .find(|e| e.keyid == sig.keyid)
            .and_then(|e| keys.signer(&e.public_key));
        if let (true, Some(by)) = (sig.value.starts_with(SIG_PREFIX), by) {
            if let Ok(digest) = d.signing_digest() {
                d.signature = Some(DirectorySignature {
                    keyid: sig.keyid,
                    value: sign(by, &digest),
                });
            }
        }
    }
    let root = d.keys.first().map(|e| e.public_key.to_ascii_lowercase());
    (d, root)
}

#[cfg(test)]
mod tests {
    //! The re-signing must turn a genuine chain or directory into one that
    //! verifies under fuzz keys, or the fuzz targets built on it would stop
    //! at the first signature like the plain ones.

    use sigil_proto::chain::{self, Options};
    use sigil_proto::directory::Directory;
    use sigil_proto::lineage::Freshness;

    fn seed(path: &str) -> String {
        std::fs::read_to_string(format!("{}/corpus/{path}", env!("CARGO_MANIFEST_DIR")))
            .expect("seed file")
    }

    fn verifies(path: &str) {
        let re = super::resign_chain(&seed(path));
        let opts = Options {
            pinned: re.root.clone(),
            endorsements_from_file: true,
            ..Options::default()
        };
        let summary =
            chain::verify(&re.text, &opts).unwrap_or_else(|e| panic!("{path}: {e}\n{}", re.text));
        assert!(summary.receipt_count > 1, "{path}");
    }

    #[test]
    fn resigned_chains_verify() {
        verifies("chain/sigild-rotated-restarted.jsonl");
        verifies("chain/sigild-ledger.jsonl");
        verifies("chain/g1-rotated-with-endorsement-entry.jsonl");
        verifies("chain/valid-chain.jsonl");
    }

    #[test]
    fn a_resigned_directory_verifies() {
        let d = Directory::parse(&seed("directory/sigild-rotated.json")).expect("directory");
        let (signed, _) = super::resign_directory(&d);
        let root = signed
            .keys
            .iter()
            .find(|k| k.keyid == "mediator.v1")
            .map(|k| k.public_key.clone());
        signed
            .lineage(root.as_deref(), &Freshness::any())
            .expect("lineage");
    }
}
