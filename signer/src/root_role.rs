//! Under an offline root: the `root` and `keyset` documents the officers
//! signed, kept in `<data-dir>/root/`, and what they allow.
//!
//! Until a keyset is imported the daemon behaves as without a root (mode
//! `off`). The first imported keyset makes the root `required`: from then
//! on a version of the chain key signs only while the newest keyset lists
//! it unrevoked and the moment is inside its window (strict activation,
//! `root-role.md` §4), and the directory carries the root documents and a
//! statement the signing version makes over them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use serde_json::{json, Value};
use sigil_proto::root::trust::{check_keyset, verify_roots, Pin};
use sigil_proto::root::{Keyset, Root, Signed, Statement};
use time::OffsetDateTime;

use crate::store::write_atomic;
use crate::Error;

#[derive(Clone, Default)]
struct Docs {
    roots: Vec<Signed<Root>>,
    keyset: Option<Signed<Keyset>>,
    /// The keyset's versions by public key, times parsed once (each batch
    /// asks whether its key may sign).
    certified: HashMap<String, Certified>,
}

/// One version the keyset lists.
#[derive(Clone)]
struct Certified {
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    /// (reason, compromised_since) once the root revoked it.
    revoked: Option<(String, String)>,
}

impl Docs {
    /// Indexes the keyset; a time that does not parse (the keyset was
    /// checked on import) leaves the version out, so it signs nothing.
    fn with_keyset(mut self, ks: Option<Signed<Keyset>>) -> Self {
        self.certified = ks
            .iter()
            .flat_map(|k| k.signed.versions())
            .filter_map(|(_, v)| {
                let t = |s: &str| sigil_proto::timestamp::parse(s).ok();
                Some((
                    v.public_key.clone(),
                    Certified {
                        not_before: t(&v.not_before)?,
                        not_after: t(&v.not_after)?,
                        revoked: v
                            .revoked
                            .as_ref()
                            .map(|r| (r.reason.clone(), r.compromised_since.clone())),
                    },
                ))
            })
            .collect();
        self.keyset = ks;
        self
    }
}

/// `sigild --downgrade-root`: renames `root/keyset.json` aside (kept, for
/// the record), so the daemon starts as without an offline root.
pub fn downgrade(data_dir: &Path) -> Result<(), Error> {
    let ks = data_dir.join("root").join("keyset.json");
    if !ks.exists() {
        tracing::warn!("--downgrade-root: no keyset imported; nothing to set aside");
        return Ok(());
    }
    let stamp = OffsetDateTime::now_utc().unix_timestamp();
    let aside = ks.with_file_name(format!("keyset.json.downgraded-{stamp}"));
    std::fs::rename(&ks, &aside)
        .map_err(|e| Error::io(format!("setting {} aside", ks.display()), e))?;
    tracing::warn!(kept = %aside.display(),
        "--downgrade-root: the offline root's keyset is set aside; versions sign without \
         certification and verifiers pinned to the root refuse what follows");
    Ok(())
}

/// The imported root documents.
pub struct RootRole {
    dir: PathBuf,
    docs: RwLock<Docs>,
}

/// What an import changed.
pub enum Imported {
    /// Root version N.
    Root(u64),
    /// Keyset version N (its revocations: `Keyring::root_revocations`).
    Keyset(u64),
}

/// Signing stops this long before a window closes: a batch is judged once,
/// and its receipts are stamped as they are signed (after the chain's
/// previous one), so one that began just before `not_after` must not date
/// a receipt after it, which every root-pinned verifier would refuse.
const WINDOW_MARGIN: time::Duration = time::Duration::seconds(5);

/// Refuses a keyset `next` that does not succeed `cur`: a higher
/// version, `prev` naming `cur`'s hash, and every revocation of `cur` kept.
fn succeeds(cur: &Signed<Keyset>, next: &Signed<Keyset>) -> Result<(), Error> {
    let (c, k) = (&cur.signed, &next.signed);
    if k.version <= c.version {
        return Err(refused(format!(
            "keyset v{}: no version increase (keyset v{} is imported)",
            k.version, c.version
        )));
    }
    let sha = cur
        .sha256_hex()
        .map_err(|e| Error::InvalidArgument(e.to_string()))?;
    if k.prev.as_deref() != Some(sha.as_str()) {
        return Err(refused(format!(
            "keyset v{}: prev does not name the imported keyset v{} ({sha})",
            k.version, c.version
        )));
    }
    for (name, v) in c.versions().filter(|(_, v)| v.revoked.is_some()) {
        if k.find(&v.public_key)
            .is_none_or(|(_, n)| n.revoked.is_none())
        {
            return Err(refused(format!(
                "keyset v{} drops the revocation of {name}.v{}: revocations never leave a keyset",
                k.version, v.version
            )));
        }
    }
    Ok(())
}

fn refused(m: String) -> Error {
    Error::FailedPrecondition(m)
}

impl RootRole {
    /// Loads `<data-dir>/root/` (nothing there: mode off).
    pub fn open(data_dir: &Path) -> Result<Self, Error> {
        let dir = data_dir.join("root");
        let mut docs = Docs::default();
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|e| Error::io(format!("reading {}", p.display()), e))
        };
        for v in 1u64.. {
            let p = dir.join(format!("{v}.root.json"));
            if !p.exists() {
                break;
            }
            let r = Signed::<Root>::parse(&read(&p)?)
                .map_err(|e| Error::Corrupt(format!("{}: {e}", p.display())))?;
            docs.roots.push(r);
        }
        let ks = dir.join("keyset.json");
        if ks.exists() {
            docs = docs.with_keyset(Some(
                Signed::<Keyset>::parse(&read(&ks)?)
                    .map_err(|e| Error::Corrupt(format!("{}: {e}", ks.display())))?,
            ));
        }
        Ok(RootRole {
            dir,
            docs: RwLock::new(docs),
        })
    }

    fn docs(&self) -> Docs {
        self.docs.read().map(|d| d.clone()).unwrap_or_default()
    }

    /// True once a keyset was imported: only certified versions sign.
    pub fn required(&self) -> bool {
        self.docs.read().map(|d| d.keyset.is_some()).unwrap_or(true)
    }

    fn version(&self, public_hex: &str) -> Option<Certified> {
        self.docs.read().ok()?.certified.get(public_hex).cloned()
    }

    /// Whether the version with `public_hex` may sign at `at`: always when
    /// the root is not required; else only when the keyset lists it, the
    /// root has not revoked it, and `at` is inside its window.
    pub fn allows(&self, keyid: &str, public_hex: &str, at: OffsetDateTime) -> Result<(), String> {
        let d = self
            .docs
            .read()
            .map_err(|_| "root lock poisoned".to_string())?;
        let Some(ks) = &d.keyset else {
            return Ok(());
        };
        let kv = ks.signed.version;
        let Some(v) = d.certified.get(public_hex) else {
            return Err(format!(
                "{keyid} is not certified by keyset v{kv}: only certified versions sign under \
                 the offline root (sigil keys prepare, then a ceremony)"
            ));
        };
        if v.revoked.is_some() {
            return Err(format!("{keyid} is revoked by keyset v{kv}"));
        }
        if at >= v.not_before && at + WINDOW_MARGIN <= v.not_after {
            return Ok(());
        }
        Err(format!(
            "{keyid} may sign only from {} to {} (keyset v{kv}, stopping 5 s before the end); \
             it is now outside that window",
            sigil_proto::timestamp::format(v.not_before),
            sigil_proto::timestamp::format(v.not_after)
        ))
    }

    /// True when the keyset certifies `public_hex` and has not revoked it.
    pub fn certified(&self, public_hex: &str) -> bool {
        self.version(public_hex)
            .is_some_and(|v| v.revoked.is_none())
    }

    /// When the imported keyset expires.
    pub fn keyset_expires(&self) -> Option<OffsetDateTime> {
        let d = self.docs.read().ok()?;
        sigil_proto::timestamp::parse(&d.keyset.as_ref()?.signed.expires).ok()
    }

    /// The end of `public_hex`'s certified window.
    pub fn not_after(&self, public_hex: &str) -> Option<OffsetDateTime> {
        self.version(public_hex).map(|v| v.not_after)
    }

    /// True when the keyset lists `public_hex` (revoked or not).
    pub fn lists(&self, public_hex: &str) -> bool {
        self.version(public_hex).is_some()
    }

    /// The keyset's revocation of `public_hex`: (reason, compromised_since).
    pub fn revocation_of(&self, public_hex: &str) -> Option<(String, String)> {
        self.version(public_hex)?.revoked
    }

    /// The deployment and keyset (version, body hash), for requests.
    pub fn current(&self) -> (String, u64, String) {
        let d = self.docs();
        let deployment = d
            .roots
            .last()
            .map(|r| r.signed.deployment.clone())
            .unwrap_or_default();
        match &d.keyset {
            Some(k) => (
                deployment,
                k.signed.version,
                k.sha256_hex().unwrap_or_default(),
            ),
            None => (deployment, 0, String::new()),
        }
    }

    /// Checks and stores a root or keyset document. Refused, with nothing
    /// changed: another deployment, no version increase, a `prev` other
    /// than the current keyset, a dropped revocation, a public key the
    /// daemon did not generate (`generated(name, public_hex)`), the signing
    /// version left out.
    pub fn import(
        &self,
        text: &str,
        generated: impl Fn(&str, &str) -> bool,
        signing: Option<&str>,
    ) -> Result<Imported, Error> {
        let doc = sigil_proto::json::parse(text)
            .map_err(|e| Error::InvalidArgument(format!("document: {e}")))?;
        let kind = doc
            .get("signed")
            .and_then(|s| s.get("_type"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let bad = |e: sigil_proto::Error| Error::InvalidArgument(e.to_string());
        match kind.as_str() {
            "sigil.root" => self.import_root(Signed::<Root>::from_value(doc).map_err(bad)?),
            "sigil.keyset" => {
                let ks = Signed::<Keyset>::from_value(doc).map_err(bad)?;
                self.import_keyset(ks, generated, signing)
            }
            other => Err(Error::InvalidArgument(format!(
                "document: _type {other:?} is neither sigil.root nor sigil.keyset"
            ))),
        }
    }

    /// A root that follows the newest imported one, signed by both its
    /// predecessor's threshold and its own.
    fn import_root(&self, r: Signed<Root>) -> Result<Imported, Error> {
        let mut docs = self.docs();
        let v = r.signed.version;
        let newest = docs.roots.last().map(|x| x.signed.version).unwrap_or(0);
        if v <= newest {
            return Err(refused(format!(
                "root v{v}: no version increase (root v{newest} is imported)"
            )));
        }
        docs.roots.push(r.clone());
        let pin = Pin::Root(Box::new(docs.roots[0].clone()));
        verify_roots(&pin, &docs.roots, OffsetDateTime::now_utc(), None)
            .map_err(|e| refused(e.to_string()))?;
        write_atomic(
            &self.dir_ready()?.join(format!("{v}.root.json")),
            r.to_json().as_bytes(),
        )?;
        self.swap(docs)?;
        Ok(Imported::Root(v))
    }

    /// A keyset the newest root signs, succeeding the imported one, that
    /// certifies only keys this daemon generated, the signing one among
    /// them.
    fn import_keyset(
        &self,
        ks: Signed<Keyset>,
        generated: impl Fn(&str, &str) -> bool,
        signing: Option<&str>,
    ) -> Result<Imported, Error> {
        let docs = self.docs();
        let Some(root) = docs.roots.last() else {
            return Err(refused(
                "no root imported yet: import root/1.root.json first".into(),
            ));
        };
        check_keyset(root, &ks, OffsetDateTime::now_utc()).map_err(|e| refused(e.to_string()))?;
        if let Some(cur) = &docs.keyset {
            succeeds(cur, &ks)?;
        }
        let k = &ks.signed;
        for (name, v) in k.versions() {
            if !generated(name, &v.public_key) {
                return Err(refused(format!(
                    "keyset v{} certifies {name}.v{} with public key {}, which this daemon did \
                     not generate",
                    k.version, v.version, v.public_key
                )));
            }
        }
        if let Some(pk) = signing {
            if k.find(pk).is_none() {
                return Err(refused(format!(
                    "keyset v{} does not certify the signing version ({pk}): importing it would \
                     stop every chain; certify it first (sigil keys prepare --adopt)",
                    k.version
                )));
            }
        }
        let v = k.version;
        let dir = self.dir_ready()?;
        write_atomic(
            &dir.join(format!("keyset.{v}.json")),
            ks.to_json().as_bytes(),
        )?;
        write_atomic(&dir.join("keyset.json"), ks.to_json().as_bytes())?;
        self.swap(docs.with_keyset(Some(ks)))?;
        Ok(Imported::Keyset(v))
    }

    fn dir_ready(&self) -> Result<&Path, Error> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| Error::io(format!("creating {}", self.dir.display()), e))?;
        Ok(&self.dir)
    }

    fn swap(&self, docs: Docs) -> Result<(), Error> {
        *self
            .docs
            .write()
            .map_err(|_| Error::Internal("root lock poisoned".into()))? = docs;
        Ok(())
    }

    /// The directory's `trust` member: roots, keyset, and a statement over
    /// them and `keys` by the signing version (`sign` makes the
    /// signature). `None` when the root is not required.
    pub fn trust_member(
        &self,
        keys: &Value,
        active: (&str, u32),
        revoked: Vec<sigil_proto::root::docs::OnlineRevocation>,
        signer_public: &[u8; 32],
        sign: impl FnOnce(&[u8]) -> Result<[u8; 64], Error>,
    ) -> Result<Option<Value>, Error> {
        let d = self.docs();
        let (Some(ks), Some(root)) = (&d.keyset, d.roots.last()) else {
            return Ok(None);
        };
        let internal = |e: sigil_proto::Error| Error::Internal(format!("statement: {e}"));
        let body = Statement {
            type_: "sigil.directory".into(),
            spec_version: 1,
            deployment: root.signed.deployment.clone(),
            signed_at: sigil_proto::root::docs::format_time(OffsetDateTime::now_utc()),
            root_version: root.signed.version,
            keyset_version: ks.signed.version,
            keyset_sha256: ks.sha256_hex().map_err(internal)?,
            keys_sha256: hex::encode(sigil_proto::root::body_sha256(keys).map_err(internal)?),
            active: [(active.0.to_owned(), active.1)].into_iter().collect(),
            revoked,
        };
        let mut st = Signed::new(body).map_err(internal)?;
        let sig = sign(&st.signing_input().map_err(internal)?)?;
        st.add_signature(signer_public, &sig);
        Ok(Some(json!({
            "roots": d.roots.iter().map(Signed::to_value).collect::<Vec<_>>(),
            "keyset": ks.to_value(),
            "statement": st.to_value(),
        })))
    }
}
