//! The offline root ceremony: root keys generated in officers' tokens,
//! and the `root` and `keyset` documents they sign one by one.
//!
//! A root directory (kept under git on removable media) holds
//! `root/N.root.json`, `keyset/N.keyset.json`, `staged/` (documents still
//! short of their threshold) and an append-only `ceremony.log`. Its files
//! are public; their signatures carry their integrity. `sigild` does not
//! depend on this crate: the daemon only imports the finished documents.

#![forbid(unsafe_code)]

mod dir;
mod roots;
mod token;

use std::collections::BTreeMap;
use std::path::PathBuf;

use sigil_proto::root::docs::{format_time, parse_time};
use sigil_proto::root::{
    Custody, KeyVersion, Keyset, Request, Root, RootKey, RootPolicy, RootRevocation, Signed,
};
use time::{Duration, OffsetDateTime};

pub use dir::RootDir;
use roots::place_root;
pub use roots::{renew, rotate};
pub use token::RootToken;

/// Why a ceremony step was refused; nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file of the root directory could not be read or written.
    #[error("{what}: {source}")]
    Io {
        /// Which file and operation.
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A document is malformed, or fails the checks a verifier runs.
    #[error(transparent)]
    Document(#[from] sigil_proto::Error),
    /// An officer's token failed.
    #[error(transparent)]
    Key(#[from] sigil_keys::KeyError),
    /// The step does not fit the root directory's state or its arguments.
    #[error("{0}")]
    Refused(String),
}

fn refused(m: impl Into<String>) -> Error {
    Error::Refused(m.into())
}

/// What `init` makes.
pub struct Init {
    /// Path of `root/1.root.json`.
    pub path: PathBuf,
    /// The root keys (hex), to pin.
    pub keys: Vec<String>,
    /// The threshold.
    pub threshold: u32,
}

/// `sigil root init`: generates `sigil.root.v1` in each token (or adopts
/// one with `existing`), writes root 1 signed by every key.
pub fn init(
    dir: &RootDir,
    deployment: &str,
    threshold: u32,
    tokens: &[RootToken],
    key_names: Vec<String>,
    single_key: bool,
    existing: bool,
) -> Result<Init, Error> {
    if dir.newest_root()?.is_some() {
        return Err(refused(format!(
            "{} already holds a root: use `sigil root rotate` or `renew`",
            dir.path().display()
        )));
    }
    if threshold == 1 && !single_key {
        return Err(refused(
            "threshold 1 lets one officer (or one stolen token) speak for the root: pass \
             --single-key to mean it",
        ));
    }
    let now = now();
    let mut keys = BTreeMap::new();
    for t in tokens {
        let (pk, custody) = t.root_key(existing)?;
        if keys
            .insert(
                pk,
                RootKey {
                    owner: t.owner().to_owned(),
                    custody,
                },
            )
            .is_some()
        {
            return Err(refused("two --key arguments name the same root key"));
        }
    }
    let body = Root {
        type_: "sigil.root".into(),
        spec_version: 1,
        deployment: deployment.to_owned(),
        version: 1,
        issued: format_time(now),
        expires: format_time(now + Duration::days(365)),
        threshold,
        keys,
        policy: RootPolicy {
            key_names: if key_names.is_empty() {
                RootPolicy::default().key_names
            } else {
                key_names
            },
            ..RootPolicy::default()
        },
    };
    let mut doc = Signed::new(body)?;
    for t in tokens {
        t.sign(&mut doc)?;
    }
    let listed: Vec<String> = doc.signed.keys.keys().cloned().collect();
    if doc.valid_signers(&listed)?.len() < threshold as usize {
        return Err(refused("root 1 does not meet its own threshold"));
    }
    let path = dir.write_final(&doc, "root", 1)?;
    dir.log(&format!(
        "init deployment={deployment} root v1 threshold={threshold} keys={}",
        listed.join(",")
    ))?;
    Ok(Init {
        path,
        keys: listed,
        threshold,
    })
}

/// Where a signed step left its document.
pub enum Placed {
    /// Still short of its threshold, in `staged/`.
    Staged(PathBuf, usize, u32),
    /// Complete, in `root/` or `keyset/`.
    Final(PathBuf),
}

/// `sigil root certify`: checks a daemon's request (each new key signed
/// it) and stages the next keyset with the requested versions added,
/// signed by `token`. With `adopt`, the request's history is certified too
/// (each version's window from its creation, closed at its retirement).
pub fn certify(
    dir: &RootDir,
    request_text: &str,
    token: &RootToken,
    adopt: bool,
) -> Result<Placed, Error> {
    let root = dir
        .newest_root()?
        .ok_or_else(|| refused("no root yet: sigil root init first"))?;
    let req = Signed::<Request>::parse(request_text)?;
    let r = &req.signed;
    let new_keys: Vec<String> = r.new.iter().map(|v| v.public_key.clone()).collect();
    let proven = req.valid_signers(&new_keys)?;
    if let Some(missing) = new_keys.iter().find(|k| !proven.contains(k)) {
        return Err(refused(format!(
            "the request is not signed by new key {missing}: no proof that the daemon holds it"
        )));
    }
    if r.deployment != root.signed.deployment {
        return Err(refused(format!(
            "the request is for deployment {:?}, the root for {:?} (import root 1 on the daemon \
             first)",
            r.deployment, root.signed.deployment
        )));
    }
    if !root.signed.policy.key_names.contains(&r.name) {
        return Err(refused(format!(
            "key name {:?} is not in the root's key_names",
            r.name
        )));
    }
    let prev = dir.newest_keyset()?;
    let prev_version = prev.as_ref().map(|k| k.signed.version).unwrap_or(0);
    if r.keyset_version != prev_version {
        return Err(refused(format!(
            "the request was made against keyset v{}, the newest here is v{prev_version}: ask \
             the daemon for a fresh request",
            r.keyset_version
        )));
    }
    let now = now();
    let max = Duration::days(root.signed.policy.max_validity_days.into());
    let mut versions: Vec<KeyVersion> = prev
        .as_ref()
        .and_then(|k| k.signed.keys.get(&r.name).cloned())
        .unwrap_or_default();
    // The request's history closes a retired version's window.
    for h in &r.history {
        if let (Some(v), Some(retired)) = (
            versions.iter_mut().find(|v| v.public_key == h.public_key),
            &h.retired,
        ) {
            let retired = sigil_proto::timestamp::parse(retired)
                .map_err(|e| refused(format!("request history: {e}")))?;
            if retired < parse_time(&v.not_after, "not_after")? {
                v.not_after = format_time(retired + Duration::seconds(1));
            }
        }
    }
    let mut add = |v: &sigil_proto::root::RequestedVersion, nb: OffsetDateTime| {
        if versions
            .iter()
            .any(|x| x.public_key == v.public_key || x.version == v.version)
        {
            return;
        }
        let na = match &v.retired {
            Some(t) => sigil_proto::timestamp::parse(t)
                .map(|t| t + Duration::seconds(1))
                .unwrap_or(nb + max),
            None => nb + max,
        };
        versions.push(KeyVersion {
            version: v.version,
            public_key: v.public_key.clone(),
            not_before: format_time(nb),
            not_after: format_time(na.min(nb + max)),
            custody: v.custody.clone(),
            revoked: None,
        });
    };
    if adopt {
        for h in &r.history {
            let created = sigil_proto::timestamp::parse(&h.created)
                .map_err(|e| refused(format!("request history: {e}")))?;
            // Whole seconds: the window opens at the second it was made.
            add(h, created.replace_nanosecond(0).unwrap_or(created));
        }
    }
    for v in &r.new {
        add(v, now);
    }
    let next = stage_keyset(&root, prev.as_ref(), Some((r.name.clone(), versions)), now)?;
    dir.log(&format!(
        "certify {} new={} adopt={adopt} keyset v{}",
        r.name,
        new_keys.join(","),
        next.signed.version
    ))?;
    sign_and_place(dir, next, token, &root)
}

/// `sigil root revoke`: stages the next keyset with version `version` of
/// `name` revoked, pinned to each chain's last trusted receipt (`through`,
/// from `sigil keys tails` or `sigil chain tails`).
pub fn revoke(
    dir: &RootDir,
    name: &str,
    version: u32,
    reason: &str,
    compromised_since: &str,
    through: Vec<sigil_proto::directory::Through>,
    token: &RootToken,
) -> Result<Placed, Error> {
    let root = dir
        .newest_root()?
        .ok_or_else(|| refused("no root yet: sigil root init first"))?;
    let prev = dir
        .newest_keyset()?
        .ok_or_else(|| refused("no keyset yet: nothing to revoke"))?;
    parse_time(compromised_since, "--compromised-since")?;
    let now = now();
    let mut versions = prev.signed.keys.get(name).cloned().unwrap_or_default();
    let Some(v) = versions.iter_mut().find(|v| v.version == version) else {
        return Err(refused(format!(
            "keyset v{} does not certify {name}.v{version}",
            prev.signed.version
        )));
    };
    if v.revoked.is_some() {
        return Err(refused(format!("{name}.v{version} is already revoked")));
    }
    v.revoked = Some(RootRevocation {
        reason: reason.to_owned(),
        revoked_at: format_time(now),
        compromised_since: compromised_since.to_owned(),
        through,
        through_log: None,
    });
    let next = stage_keyset(&root, Some(&prev), Some((name.to_owned(), versions)), now)?;
    dir.log(&format!(
        "revoke {name}.v{version} keyset v{}",
        next.signed.version
    ))?;
    sign_and_place(dir, next, token, &root)
}

/// The keyset after `prev` with key name `name`'s versions replaced by
/// `versions` (`None`: every name as in `prev`).
fn stage_keyset(
    root: &Signed<Root>,
    prev: Option<&Signed<Keyset>>,
    name: Option<(String, Vec<KeyVersion>)>,
    now: OffsetDateTime,
) -> Result<Signed<Keyset>, Error> {
    let mut keys = prev.map(|k| k.signed.keys.clone()).unwrap_or_default();
    if let Some((name, mut versions)) = name {
        versions.sort_by_key(|v| std::cmp::Reverse(v.version));
        keys.insert(name, versions);
    }
    let body = Keyset {
        type_: "sigil.keyset".into(),
        spec_version: 1,
        deployment: root.signed.deployment.clone(),
        version: prev.map(|k| k.signed.version).unwrap_or(0) + 1,
        root_version: root.signed.version,
        prev: prev.map(|k| k.sha256_hex()).transpose()?,
        issued: format_time(now),
        expires: format_time(now + Duration::days(root.signed.policy.keyset_max_days.into())),
        keys,
    };
    Ok(Signed::new(body)?)
}

fn sign_and_place(
    dir: &RootDir,
    mut doc: Signed<Keyset>,
    token: &RootToken,
    root: &Signed<Root>,
) -> Result<Placed, Error> {
    token.sign(&mut doc)?;
    place(dir, doc, root)
}

fn place(dir: &RootDir, doc: Signed<Keyset>, root: &Signed<Root>) -> Result<Placed, Error> {
    let have = doc.valid_signers(root.signed.keys.keys())?.len();
    let v = doc.signed.version;
    if have >= root.signed.threshold as usize {
        dir.remove_staged("keyset", v)?;
        Ok(Placed::Final(dir.write_final(&doc, "keyset", v)?))
    } else {
        Ok(Placed::Staged(
            dir.write_staged(&doc, "keyset", v)?,
            have,
            root.signed.threshold,
        ))
    }
}

/// `sigil root sign`: adds `token`'s signature to a staged root or keyset;
/// once its thresholds are met it moves to `root/` or `keyset/`.
pub fn sign(dir: &RootDir, staged_text: &str, token: &RootToken) -> Result<Placed, Error> {
    let root = dir
        .newest_root()?
        .ok_or_else(|| refused("no root yet: sigil root init first"))?;
    let doc =
        sigil_proto::json::parse(staged_text).map_err(|e| refused(format!("document: {e}")))?;
    let kind = doc
        .get("signed")
        .and_then(|b| b.get("_type"))
        .and_then(serde_json::Value::as_str)
        .unwrap_or("")
        .to_owned();
    let me = token.public_key()?;
    if kind == "sigil.root" {
        let mut next = Signed::<Root>::from_value(doc)?;
        if next.signed.deployment != root.signed.deployment {
            return Err(refused(format!(
                "root v{} is for deployment {:?}, this directory's root for {:?}",
                next.signed.version, next.signed.deployment, root.signed.deployment
            )));
        }
        if !root.signed.keys.contains_key(&me) && !next.signed.keys.contains_key(&me) {
            return Err(refused(
                "this token's root key is in neither the old nor the new root",
            ));
        }
        token.sign(&mut next)?;
        dir.log(&format!("sign root v{} by {me}", next.signed.version))?;
        return place_root(dir, next, &root);
    }
    let mut doc = Signed::<Keyset>::from_value(doc)?;
    if !root.signed.keys.contains_key(&me) {
        return Err(refused(format!(
            "this token's root key is not a key of root v{}",
            root.signed.version
        )));
    }
    follows(dir, &root, &doc.signed)?;
    token.sign(&mut doc)?;
    dir.log(&format!("sign keyset v{} by {me}", doc.signed.version))?;
    place(dir, doc, &root)
}

/// An officer signs only the keyset that follows this directory's newest:
/// same deployment, the newest root, version one more, `prev` naming it. A
/// document swapped on the medium does not get signed by accident.
fn follows(dir: &RootDir, root: &Signed<Root>, k: &Keyset) -> Result<(), Error> {
    let prev = dir.newest_keyset()?;
    let want_version = prev.as_ref().map(|p| p.signed.version).unwrap_or(0) + 1;
    let want_prev = prev.as_ref().map(|p| p.sha256_hex()).transpose()?;
    let what = format!("keyset v{}", k.version);
    if k.deployment != root.signed.deployment {
        return Err(refused(format!(
            "{what} is for deployment {:?}, this directory's root for {:?}",
            k.deployment, root.signed.deployment
        )));
    }
    if k.root_version != root.signed.version {
        return Err(refused(format!(
            "{what} names root v{}, the newest here is v{}",
            k.root_version, root.signed.version
        )));
    }
    if k.version != want_version || k.prev != want_prev {
        return Err(refused(format!(
            "{what} does not follow this directory's newest keyset (v{}): a document from \
             elsewhere, or the medium is not up to date",
            want_version - 1
        )));
    }
    Ok(())
}

/// What a keyset certifies, one line per version, for the officer to read
/// before and after signing.
pub fn describe_keyset(k: &Keyset) -> String {
    let mut out = format!(
        "keyset v{} for {} (root v{}), expires {}\n",
        k.version, k.deployment, k.root_version, k.expires
    );
    for (name, v) in k.versions() {
        out.push_str(&format!(
            "  {name}.v{} {} {} to {} ({}{}){}\n",
            v.version,
            v.public_key,
            v.not_before,
            v.not_after,
            v.custody.backend,
            if v.custody.non_extractable {
                ", non-extractable"
            } else {
                ""
            },
            match &v.revoked {
                Some(r) => format!(" REVOKED since {}: {}", r.compromised_since, r.reason),
                None => String::new(),
            }
        ));
    }
    out
}

/// `sigil root status`: versions, expiries and the standby count.
pub fn status(dir: &RootDir) -> Result<String, Error> {
    let mut out = String::new();
    match dir.newest_root()? {
        Some(r) => out.push_str(&format!(
            "root v{} ({} of {}) deployment {} expires {}\n",
            r.signed.version,
            r.signed.threshold,
            r.signed.keys.len(),
            r.signed.deployment,
            r.signed.expires
        )),
        None => out.push_str("no root\n"),
    }
    if let Some(k) = dir.newest_keyset()? {
        out.push_str(&format!(
            "keyset v{} expires {}\n",
            k.signed.version, k.signed.expires
        ));
        for (name, v) in k.signed.versions() {
            let state = if v.revoked.is_some() { " revoked" } else { "" };
            out.push_str(&format!(
                "  {name}.v{} {} {} to {}{state}\n",
                v.version, v.public_key, v.not_before, v.not_after
            ));
        }
    }
    for s in dir.staged()? {
        out.push_str(&format!("staged {}\n", s.display()));
    }
    Ok(out)
}

fn now() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    t.replace_nanosecond(0).unwrap_or(t)
}

/// Custody of a root key as its token describes it.
pub(crate) fn custody_of(c: sigil_keys::Custody) -> Custody {
    Custody {
        backend: c.backend.to_owned(),
        token: c.token,
        non_extractable: c.non_extractable,
        attestation: None,
    }
}
