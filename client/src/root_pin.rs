//! `sigil verify --root-key HEX... --root-threshold M` (or `--root FILE`):
//! trust walked from the offline root keys, through the keyset they
//! signed and the daemon's directory statement, to the versions that may
//! sign chains.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;
use sigil_proto::lineage::HighWater;
use sigil_proto::root::trust::{self, Material, Pin, Verified};
use sigil_proto::root::{Keyset, Root, Signed};

/// The root pin as given on the command line.
pub(crate) struct RootPin<'a> {
    /// `--root-key` values.
    pub keys: &'a [String],
    /// `--root-threshold`.
    pub threshold: Option<u32>,
    /// `--root FILE`.
    pub root_file: Option<&'a Path>,
}

impl RootPin<'_> {
    /// True when the command line pins an offline root.
    pub(crate) fn given(&self) -> bool {
        !self.keys.is_empty() || self.root_file.is_some()
    }

    /// The pin, or a usage error.
    pub(crate) fn pin(&self) -> Result<Pin, String> {
        if let Some(f) = self.root_file {
            if !self.keys.is_empty() {
                return Err("give --root FILE or --root-key, not both".into());
            }
            let text =
                std::fs::read_to_string(f).map_err(|e| format!("reading {}: {e}", f.display()))?;
            let r = Signed::<Root>::parse(&text).map_err(|e| format!("--root: {e}"))?;
            return Ok(Pin::Root(Box::new(r)));
        }
        let mut keys = BTreeSet::new();
        for k in self.keys {
            let k = k.to_lowercase();
            if !(k.len() == 64 && k.bytes().all(|b| b.is_ascii_hexdigit())) {
                return Err(format!("--root-key must be 64 hex characters, got {k:?}"));
            }
            if !keys.insert(k.clone()) {
                return Err(format!("--root-key {k} is given twice"));
            }
        }
        let threshold = match (self.threshold, keys.len()) {
            (Some(m), n) if m == 0 || m as usize > n => {
                return Err(format!(
                    "--root-threshold {m} must be from 1 to the number of --root-key ({n})"
                ))
            }
            (Some(m), _) => m,
            (None, 1) => 1,
            (None, n) => {
                return Err(format!(
                    "{n} root keys without --root-threshold: say how many must sign"
                ))
            }
        };
        Ok(Pin::Keys { keys, threshold })
    }
}

/// Walks the trust material (the directory's `trust` member, or `--trust`
/// files) from the pin at `at`; with `state`, refuses anything older than
/// seen before and remembers what was accepted.
pub(crate) fn verify(
    pin: &Pin,
    deployment: Option<&str>,
    directory: Option<&str>,
    trust_files: &[PathBuf],
    at: time::OffsetDateTime,
    state: Option<&Path>,
) -> Result<Verified, String> {
    let mut material = match directory {
        Some(text) => {
            let doc = sigil_proto::json::parse(text).map_err(|e| format!("key directory: {e}"))?;
            Material::from_directory(&doc).map_err(|e| e.to_string())?
        }
        None => Material::default(),
    };
    for f in trust_files {
        let text =
            std::fs::read_to_string(f).map_err(|e| format!("reading {}: {e}", f.display()))?;
        let doc = sigil_proto::json::parse(&text).map_err(|e| format!("{}: {e}", f.display()))?;
        match doc
            .get("signed")
            .and_then(|s| s.get("_type"))
            .and_then(Value::as_str)
        {
            Some("sigil.root") => material
                .roots
                .push(Signed::<Root>::from_value(doc).map_err(|e| e.to_string())?),
            Some("sigil.keyset") => material
                .keysets
                .push(Signed::<Keyset>::from_value(doc).map_err(|e| e.to_string())?),
            _ => {
                return Err(format!(
                    "{}: --trust takes root and keyset documents",
                    f.display()
                ))
            }
        }
    }
    if directory.is_none() {
        // Roots may come in any order from files: walk them by version.
        material.roots.sort_by_key(|r| r.signed.version);
        material.roots.dedup_by_key(|r| r.signed.version);
    }
    let Some(first) = material.roots.first() else {
        return Err("no root documents: give --directory or --trust root files".into());
    };
    let id = first.sha256_hex().map_err(|e| e.to_string())?;
    let mut high = match state {
        Some(p) => match std::fs::read_to_string(p) {
            Ok(t) => HighWater::parse(&t).map_err(|e| e.to_string())?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HighWater::default(),
            Err(e) => return Err(format!("reading {}: {e}", p.display())),
        },
        None => HighWater::default(),
    };
    let seen = high.offline_roots.get(&id).cloned();
    let v = trust::verify(pin, &material, at, seen.as_ref()).map_err(|e| e.to_string())?;
    // Root keys may serve several deployments (one set of officers): the
    // pin can name the one meant.
    if let Some(d) = deployment {
        if v.deployment != d {
            return Err(format!(
                "root of trust: the documents are for deployment {:?}, not {d:?} \
                 (--root-deployment)",
                v.deployment
            ));
        }
    }
    if let Some(p) = state {
        high.offline_roots.insert(id, v.seen.clone());
        crate::verify_cmd::write_state(p, &high.to_json())
            .map_err(|e| format!("writing {}: {e}", p.display()))?;
    }
    Ok(v)
}

/// `ROOT v2 (2 of 3) KEYSET v7 DIRECTORY <signed_at>`.
pub(crate) fn describe(v: &Verified, at: Option<&str>) -> String {
    let (rv, m, n) = v.root;
    let mut s = format!("ROOT v{rv} ({m} of {n}) KEYSET v{}", v.keyset_version);
    match &v.statement_signed_at {
        Some(t) => s.push_str(&format!(" DIRECTORY {t}")),
        None => s.push_str(" (online revocations not checked)"),
    }
    if let Some(at) = at {
        s.push_str(&format!(" AT {at}"));
    }
    s.push_str(&format!(" DEPLOYMENT {}", v.deployment));
    s
}
