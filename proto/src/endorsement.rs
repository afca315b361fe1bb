//! Rotation endorsements (spec §3.5): the retiring key's signature over its
//! successor, bound to the chain's tail at the boundary.

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::gojson::write_str;
use crate::{json, timestamp, Error};

/// Domain separator of the endorsement digest.
const DOMAIN: &[u8] = b"pipelock-rotation-endorsement-v1";
/// Largest endorsement file pipelock-verify reads.
pub const MAX_LEN: usize = 64 * 1024;

/// A rotation endorsement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endorsement {
    /// Recorder session (chain name) the rotation happened in.
    pub session_id: String,
    /// Retiring key A, lowercase hex.
    pub prior_signer_key: String,
    /// `chain_seq` of A's last receipt.
    pub prior_final_seq: u64,
    /// Receipt hash of A's last receipt.
    pub prior_tail_hash: String,
    /// Successor key B, lowercase hex.
    pub new_signer_key: String,
    /// Canonical UTC RFC3339Nano time of the rotation.
    pub rotated_at: String,
    /// `ed25519:` + hex signature by A.
    pub endorsement: String,
}

impl Endorsement {
    /// The 32-byte message A signs.
    pub fn digest(&self) -> [u8; 32] {
        let mut body = Vec::with_capacity(400);
        body.extend_from_slice(b"{\"version\":1,\"session_id\":");
        write_str(&mut body, &self.session_id);
        body.extend_from_slice(b",\"prior_signer_key\":");
        write_str(&mut body, &self.prior_signer_key);
        body.extend_from_slice(b",\"prior_final_seq\":");
        body.extend_from_slice(self.prior_final_seq.to_string().as_bytes());
        body.extend_from_slice(b",\"prior_tail_hash\":");
        write_str(&mut body, &self.prior_tail_hash);
        body.extend_from_slice(b",\"new_signer_key\":");
        write_str(&mut body, &self.new_signer_key);
        body.extend_from_slice(b",\"rotated_at\":");
        write_str(&mut body, &self.rotated_at);
        body.push(b'}');
        let mut h = Sha256::new();
        h.update(DOMAIN);
        h.update([0u8]);
        h.update(&body);
        h.finalize().into()
    }

    /// The JSON object, as the file `pipelock-verify --rotation-endorsement`
    /// takes and as the `detail` of a `rotation_endorsement` recorder entry.
    pub fn to_json(&self) -> Value {
        json!({
            "version": 1,
            "session_id": self.session_id,
            "prior_signer_key": self.prior_signer_key,
            "prior_final_seq": self.prior_final_seq,
            "prior_tail_hash": self.prior_tail_hash,
            "new_signer_key": self.new_signer_key,
            "rotated_at": self.rotated_at,
            "endorsement": self.endorsement,
        })
    }

    /// Parses an endorsement file.
    pub fn parse(text: &str) -> Result<Self, Error> {
        if text.len() > MAX_LEN {
            return Err(Error::Endorsement("larger than 64 KiB".into()));
        }
        let v = json::parse(text).map_err(Error::Endorsement)?;
        match v {
            Value::Object(m) => Self::from_map(&m),
            _ => Err(Error::Endorsement("must be a JSON object".into())),
        }
    }

    /// Reads an endorsement from its JSON object: exactly the 8 members,
    /// lowercase hex keys, canonical `rotated_at`.
    pub fn from_map(m: &Map<String, Value>) -> Result<Self, Error> {
        const MEMBERS: [&str; 8] = [
            "version",
            "session_id",
            "prior_signer_key",
            "prior_final_seq",
            "prior_tail_hash",
            "new_signer_key",
            "rotated_at",
            "endorsement",
        ];
        let bad = |s: String| Error::Endorsement(s);
        if let Some(k) = m.keys().find(|k| !MEMBERS.contains(&k.as_str())) {
            return Err(bad(format!("unknown member {k:?}")));
        }
        if let Some(k) = MEMBERS.iter().find(|k| !m.contains_key(**k)) {
            return Err(bad(format!("missing member {k:?}")));
        }
        if !(m["version"].is_u64() && m["version"].as_u64() == Some(1)) {
            return Err(bad("version must be 1".into()));
        }
        let s = |k: &str| -> Result<String, Error> {
            m[k].as_str()
                .map(str::to_owned)
                .ok_or_else(|| bad(format!("{k} must be a string")))
        };
        let e = Endorsement {
            session_id: s("session_id")?,
            prior_signer_key: s("prior_signer_key")?,
            prior_final_seq: m["prior_final_seq"]
                .as_u64()
                .ok_or_else(|| bad("prior_final_seq must be a uint64".into()))?,
            prior_tail_hash: s("prior_tail_hash")?,
            new_signer_key: s("new_signer_key")?,
            rotated_at: s("rotated_at")?,
            endorsement: s("endorsement")?,
        };
        if e.session_id.trim().is_empty() {
            return Err(bad("session_id is blank".into()));
        }
        for (k, v) in [
            ("prior_signer_key", &e.prior_signer_key),
            ("prior_tail_hash", &e.prior_tail_hash),
            ("new_signer_key", &e.new_signer_key),
        ] {
            if !is_lower_hex64(v) {
                return Err(bad(format!("{k} must be 64 lowercase hex characters")));
            }
        }
        if e.prior_signer_key == e.new_signer_key {
            return Err(bad("new_signer_key equals prior_signer_key".into()));
        }
        if !timestamp::is_canonical(&e.rotated_at) {
            return Err(bad("rotated_at is not canonical UTC RFC3339Nano".into()));
        }
        Ok(e)
    }

    /// Checks A's signature.
    pub fn verify_signature(&self) -> Result<(), Error> {
        crate::sig::verify(
            &self.prior_signer_key,
            &self.digest(),
            &self.endorsement,
            false,
        )
        .map_err(|m| Error::Endorsement(format!("endorsement by prior_signer_key: {m}")))
    }
}

fn is_lower_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipelock_vector_verifies_and_tampering_breaks_it() {
        let text =
            include_str!("../../tests/vectors/pipelock/rotation/g1-rotation-endorsement.json");
        let e = Endorsement::parse(text).unwrap();
        e.verify_signature().unwrap();
        let mut t = e.clone();
        t.prior_final_seq += 1;
        assert!(t.verify_signature().is_err());
        assert_eq!(
            Endorsement::from_map(e.to_json().as_object().unwrap()).unwrap(),
            e
        );
    }
}
