//! C2SP signed notes (<https://c2sp.org/signed-note>), Ed25519 only: a text
//! ending in a newline, a blank line, then signature lines
//! `— <name> <base64(key hash || signature)>`. A key is named by
//! `<name>+<hash>+<base64(0x01 || public key)>`, its hash being the first
//! four bytes of `SHA-256(name || "\n" || 0x01 || public key)`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ed25519_dalek::{Signature, VerifyingKey};
use sha2::{Digest, Sha256};

use super::{fail, LogError};

/// The signature type byte of Ed25519 note keys.
const ED25519: u8 = 0x01;

/// Most signatures a note may carry (as Go's implementation).
const MAX_SIGNATURES: usize = 100;

/// An Ed25519 note verifier key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteKey {
    /// The key name, as signature lines show it.
    pub name: String,
    /// The key hash.
    pub hash: u32,
    /// The Ed25519 public key.
    pub public_key: [u8; 32],
}

/// The key hash of Ed25519 key `public_key` named `name`.
pub fn key_hash(name: &str, public_key: &[u8; 32]) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([ED25519]);
    h.update(public_key);
    let d = h.finalize();
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.contains('+') && !name.chars().any(char::is_whitespace)
}

impl NoteKey {
    /// The note key of Ed25519 key `public_key` named `name`.
    pub fn ed25519(name: &str, public_key: [u8; 32]) -> Result<NoteKey, LogError> {
        if !valid_name(name) {
            return fail(format!(
                "note key name {name:?}: must be non-empty, without spaces or '+'"
            ));
        }
        Ok(NoteKey {
            name: name.to_owned(),
            hash: key_hash(name, &public_key),
            public_key,
        })
    }

    /// Parses `<name>+<hash>+<base64(0x01 || public key)>`.
    pub fn parse(text: &str) -> Result<NoteKey, LogError> {
        let bad = |why: &str| fail(format!("note key {text:?}: {why}"));
        let mut parts = text.splitn(3, '+');
        let (Some(name), Some(hash), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return bad("not name+hash+key");
        };
        if hash.len() != 8 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return bad("the hash is not 8 hex digits");
        }
        let Ok(raw) = STANDARD.decode(key) else {
            return bad("the key is not base64");
        };
        let Some((&ED25519, pk)) = raw.split_first() else {
            return bad("not an Ed25519 key");
        };
        let Ok(pk) = <[u8; 32]>::try_from(pk) else {
            return bad("an Ed25519 key is 32 bytes");
        };
        let k = NoteKey::ed25519(name, pk)?;
        if format!("{:08x}", k.hash) != hash {
            return bad("the hash does not match the name and key");
        }
        Ok(k)
    }

    /// The key as `<name>+<hash>+<base64(0x01 || public key)>`.
    pub fn encode(&self) -> String {
        let mut raw = vec![ED25519];
        raw.extend_from_slice(&self.public_key);
        format!("{}+{:08x}+{}", self.name, self.hash, STANDARD.encode(raw))
    }
}

/// One signature line of a note.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteSignature {
    /// The signer's key name.
    pub name: String,
    /// The signer's key hash.
    pub hash: u32,
    /// The signature bytes (64 for Ed25519).
    pub signature: Vec<u8>,
}

impl NoteSignature {
    fn line(&self) -> String {
        let mut raw = self.hash.to_be_bytes().to_vec();
        raw.extend_from_slice(&self.signature);
        format!("— {} {}\n", self.name, STANDARD.encode(raw))
    }
}

/// A signed note.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// The text, ending in a newline.
    pub text: String,
    /// Its signatures, in order.
    pub signatures: Vec<NoteSignature>,
}

impl Note {
    /// A note of `text`, not signed yet: non-empty lines, each ending in a
    /// newline.
    pub fn unsigned(text: &str) -> Result<Note, LogError> {
        if text.is_empty() || !text.ends_with('\n') || text.contains("\n\n") || text.contains('\r')
        {
            return fail("a note's text is non-empty lines, each ending in a newline");
        }
        Ok(Note {
            text: text.to_owned(),
            signatures: Vec::new(),
        })
    }

    /// Adds `key`'s signature (Ed25519 over exactly the text's bytes).
    pub fn add_signature(&mut self, key: &NoteKey, signature: &[u8; 64]) {
        self.signatures.push(NoteSignature {
            name: key.name.clone(),
            hash: key.hash,
            signature: signature.to_vec(),
        });
    }

    /// Parses a signed note (signatures are not checked here).
    pub fn parse(msg: &str) -> Result<Note, LogError> {
        if msg.contains('\r') {
            return fail("a note holds no carriage return");
        }
        let Some(split) = msg.rfind("\n\n") else {
            return fail("a note is its text, a blank line and signature lines");
        };
        let (text, sigs) = (&msg[..=split], &msg[split + 2..]);
        if !sigs.ends_with('\n') {
            return fail("a note's signature lines end in a newline");
        }
        let mut signatures = Vec::new();
        for line in sigs.lines() {
            let Some(rest) = line.strip_prefix("— ") else {
                return fail(format!("not a signature line: {line:?}"));
            };
            let Some((name, b64)) = rest.split_once(' ') else {
                return fail(format!("not a signature line: {line:?}"));
            };
            let raw = STANDARD
                .decode(b64)
                .map_err(|_| LogError(format!("signature of {name} is not base64")))?;
            if !valid_name(name) || raw.len() < 5 {
                return fail(format!("not a signature line: {line:?}"));
            }
            signatures.push(NoteSignature {
                name: name.to_owned(),
                hash: u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]),
                signature: raw[4..].to_vec(),
            });
        }
        if signatures.is_empty() || signatures.len() > MAX_SIGNATURES {
            return fail(format!(
                "a note carries 1 to {MAX_SIGNATURES} signatures, not {}",
                signatures.len()
            ));
        }
        Ok(Note {
            text: text.to_owned(),
            signatures,
        })
    }

    /// Checks that `key` signed the note: a signature line with its name
    /// and hash whose Ed25519 signature over the text verifies.
    pub fn verify(&self, key: &NoteKey) -> Result<(), LogError> {
        let Some(s) = self
            .signatures
            .iter()
            .find(|s| s.name == key.name && s.hash == key.hash)
        else {
            return fail(format!(
                "the note is not signed by {}+{:08x}",
                key.name, key.hash
            ));
        };
        let sig = <[u8; 64]>::try_from(s.signature.as_slice())
            .map_err(|_| LogError(format!("signature of {} is not 64 bytes", key.name)))?;
        let vk = VerifyingKey::from_bytes(&key.public_key)
            .map_err(|_| LogError(format!("key {} is not an Ed25519 point", key.name)))?;
        vk.verify_strict(self.text.as_bytes(), &Signature::from_bytes(&sig))
            .map_err(|_| LogError(format!("signature of {} does not verify", key.name)))
    }

    /// The note as served: text, blank line, signature lines.
    pub fn to_text(&self) -> String {
        let mut out = self.text.clone();
        out.push('\n');
        for s in &self.signatures {
            out.push_str(&s.line());
        }
        out
    }
}
