//! The key directory sigild publishes: every version but standbys, the
//! signing versions first, signed by the chain key's signing version (and,
//! under an offline root, with the root's statement).

use std::sync::PoisonError;

use sigil_proto::directory::{
    Directory, DirectorySignature, KeyEntry, KeyState, Purpose, USE_DIGEST, USE_MEDIATION,
};
use sigil_proto::timestamp;

use super::records::Record;
use super::Keyring;
use crate::Error;

impl Keyring {
    /// The published (signed) directory.
    pub fn directory(&self) -> Directory {
        self.published
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Rebuilds and signs the directory: signing versions first, then the
    /// rest, newest first. Blocking (a token signature).
    pub fn publish(&self) -> Result<(), Error> {
        let keys = entries(&self.read(), &self.directory_key);
        let mut dir = Directory {
            keys,
            signed_at: Some(timestamp::now()),
            signature: None,
            trust: None,
        };
        // Under a required root a version outside what the keyset allows
        // signs no directory either: it goes out unsigned (verifiers then
        // refuse it: fail closed).
        let signer = self
            .signing_key(&self.directory_key)
            .filter(|k| self.may_sign(k).is_ok());
        if let Some(signer) = signer {
            let digest = dir
                .signing_digest()
                .map_err(|e| Error::Internal(format!("directory: {e}")))?;
            let sig = self.backend.sign(&signer.id, &digest)?;
            dir.signature = Some(DirectorySignature {
                keyid: signer.id.to_string(),
                value: sigil_proto::sig::encode(&sig.0),
            });
            dir.trust = self.statement(&dir, &signer)?;
        }
        *self
            .published
            .write()
            .unwrap_or_else(PoisonError::into_inner) = dir;
        Ok(())
    }
}

/// The directory's entries: every version but standbys, each with its
/// purpose (`chain` for versions of `chain_key`, `digest` otherwise);
/// active versions first, then the rest, each group with the chain key
/// before digest keys, by name, newest first.
fn entries(records: &[Record], chain_key: &str) -> Vec<KeyEntry> {
    let mut keys: Vec<KeyEntry> = records
        .iter()
        .filter(|r| r.entry.state != KeyState::Standby)
        .map(|r| {
            let mut e = r.entry.clone();
            if e.name == chain_key {
                e.purpose = Some(Purpose::Chain);
                e.use_ = USE_MEDIATION.into();
            } else {
                e.purpose = Some(Purpose::Digest);
                e.use_ = USE_DIGEST.into();
            }
            e
        })
        .collect();
    keys.sort_by_key(|k| {
        (
            k.state != KeyState::Active,
            k.name != chain_key,
            k.name.clone(),
            std::cmp::Reverse(k.version),
        )
    });
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str, version: u32, state: KeyState) -> Record {
        let mut entry = KeyEntry::new(name, version, &[version as u8; 32]);
        entry.state = state;
        Record {
            entry,
            pending: false,
            revocation_pending: false,
            namespace: None,
        }
    }

    #[test]
    fn active_versions_come_first_the_chain_key_leads_and_no_standby_is_shown() {
        let rs = [
            record("mediator", 1, KeyState::Retired),
            record("digests", 1, KeyState::Active),
            record("mediator", 2, KeyState::Active),
            record("mediator", 3, KeyState::Standby),
            record("digests", 2, KeyState::Revoked),
            record("audit", 1, KeyState::Active),
        ];
        let got: Vec<(String, Option<Purpose>)> = entries(&rs, "mediator")
            .into_iter()
            .map(|e| (e.keyid, e.purpose))
            .collect();
        let chain = Some(Purpose::Chain);
        let digest = Some(Purpose::Digest);
        assert_eq!(
            got,
            [
                ("mediator.v2".to_owned(), chain),
                ("audit.v1".to_owned(), digest),
                ("digests.v1".to_owned(), digest),
                ("mediator.v1".to_owned(), chain),
                ("digests.v2".to_owned(), digest),
            ]
        );
        let e = entries(&rs, "mediator");
        assert_eq!(e[0].use_, USE_MEDIATION);
        assert_eq!(e[1].use_, USE_DIGEST);
    }
}
