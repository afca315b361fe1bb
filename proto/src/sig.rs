//! `ed25519:` + hex signatures and hex public keys, decoded and checked in
//! one place.

use ed25519_dalek::{Signature, Verifier, VerifyingKey};

use crate::receipt::SIG_PREFIX;

/// `ed25519:` + hex of a signature, as every sigil format writes it.
pub fn encode(sig: &[u8; 64]) -> String {
    format!("{SIG_PREFIX}{}", hex::encode(sig))
}

/// Verifies `sig` (`ed25519:` + 128 hex) by `public_key_hex` over `msg`.
/// `strict` uses `verify_strict` (no small-order keys, canonical `s`),
/// which new formats use; the older ones keep what Pipelock accepts. The
/// error says which part was wrong.
pub fn verify(
    public_key_hex: &str,
    msg: &[u8],
    sig: &str,
    strict: bool,
) -> Result<(), &'static str> {
    let key: [u8; 32] = hex::decode(public_key_hex)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or("public key is not 32 bytes of hex")?;
    let sig: [u8; 64] = sig
        .strip_prefix(SIG_PREFIX)
        .and_then(|h| hex::decode(h).ok())
        .and_then(|b| b.try_into().ok())
        .ok_or("signature is not ed25519: + 64 bytes of hex")?;
    let key = VerifyingKey::from_bytes(&key).map_err(|_| "public key is not an Ed25519 point")?;
    let sig = Signature::from_bytes(&sig);
    let ok = if strict {
        key.verify_strict(msg, &sig)
    } else {
        key.verify(msg, &sig)
    };
    ok.map_err(|_| "signature does not verify")
}
