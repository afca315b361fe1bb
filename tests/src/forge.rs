//! What an attacker builds, for the trust tests: receipts re-signed with a
//! key the attacker can use (a copied seed, a SignDigest oracle) and linked
//! onto a genuine chain, and directories re-signed by an old version.

use std::path::Path;

use ed25519_dalek::{Signer, SigningKey};
use serde_json::{Map, Value};
use sigil_proto::directory::Directory;
use sigil_proto::receipt;

/// Signs a 32-byte digest, returning the 64-byte signature.
pub type Sign<'a> = dyn FnMut(&[u8; 32]) -> [u8; 64] + 'a;

/// A software key from a seed file copied off the data dir.
pub fn key_from_seed(path: &Path) -> SigningKey {
    let seed: [u8; 32] = std::fs::read(path)
        .expect("seed file")
        .try_into()
        .expect("32-byte seed");
    SigningKey::from_bytes(&seed)
}

/// The seed file of `keyid` (e.g. `mediator.v1`) in a software data dir.
pub fn seed_file(data_dir: &Path, keyid: &str) -> std::path::PathBuf {
    let suffix = format!(".{keyid}.seed");
    std::fs::read_dir(data_dir.join("seeds"))
        .expect("seeds dir")
        .map(|e| e.expect("seed entry").path())
        .find(|p| p.to_string_lossy().ends_with(&suffix))
        .unwrap_or_else(|| panic!("no seed file for {keyid}"))
}

/// Re-signs receipt `r` (a parsed receipt) after `edit` changed its
/// action record, linked to `prev_hash`, by `signer`. Returns the JSON
/// line and its receipt hash.
pub fn resign(
    r: &Value,
    prev_hash: Option<&str>,
    signer_hex: &str,
    sign: &mut Sign,
    edit: impl FnOnce(&mut Map<String, Value>),
) -> (String, String) {
    let mut ar = r["action_record"]
        .as_object()
        .expect("action_record")
        .clone();
    if let Some(p) = prev_hash {
        ar.insert("chain_prev_hash".into(), Value::String(p.to_owned()));
    }
    edit(&mut ar);
    let canonical = receipt::action_record_bytes(&ar).expect("canonical record");
    let sig = sign(&receipt::digest(&canonical));
    let bytes = receipt::receipt_bytes(
        &canonical,
        &format!("ed25519:{}", hex::encode(sig)),
        signer_hex,
        None,
    );
    let hash = receipt::receipt_hash(&bytes);
    (String::from_utf8(bytes).expect("UTF-8 receipt"), hash)
}

/// Re-signs every receipt of a chain file with `signer`, keeping the links
/// consistent; `edit(i, record)` may change receipt `i`. Other entries
/// (endorsements) are dropped. Returns the new file's text.
pub fn resign_chain(
    path: &Path,
    signer_hex: &str,
    sign: &mut Sign,
    mut edit: impl FnMut(usize, &mut Map<String, Value>),
) -> String {
    let mut out = String::new();
    let mut prev: Option<String> = None;
    for (i, (_, r)) in crate::chain_receipts(path).into_iter().enumerate() {
        let (line, hash) = resign(&r, prev.as_deref(), signer_hex, sign, |ar| edit(i, ar));
        out.push_str(&line);
        out.push('\n');
        prev = Some(hash);
    }
    out
}

/// The receipt hash of a receipt line as written.
pub fn hash_of(r: &Value) -> String {
    let ar = r["action_record"].as_object().expect("action_record");
    let canonical = receipt::action_record_bytes(ar).expect("canonical record");
    let bytes = receipt::receipt_bytes(
        &canonical,
        r["signature"].as_str().expect("signature"),
        r["signer_key"].as_str().expect("signer_key"),
        None,
    );
    receipt::receipt_hash(&bytes)
}

/// `dir` signed again by `key` as `keyid`, after `edit`.
pub fn resign_directory(
    dir: &Directory,
    keyid: &str,
    key: &SigningKey,
    edit: impl FnOnce(&mut Directory),
) -> String {
    let mut d = dir.clone();
    edit(&mut d);
    d.signature = None;
    let digest = d.signing_digest().expect("directory digest");
    d.signature = Some(sigil_proto::directory::DirectorySignature {
        keyid: keyid.to_owned(),
        value: format!("ed25519:{}", hex::encode(key.sign(&digest).to_bytes())),
    });
    d.to_json()
}

/// A signer from a local key.
pub fn with_key(key: &SigningKey) -> impl FnMut(&[u8; 32]) -> [u8; 64] + '_ {
    move |d| key.sign(d).to_bytes()
}
