//! Root documents: rotating the root keys (`sigil root rotate`) and renewing
//! a root or keyset before it expires (`sigil root renew`). Root N+1 is final
//! once a threshold of root N's keys and a threshold of its own signed it.

use sigil_proto::root::docs::format_time;
use sigil_proto::root::{Root, RootKey, Signed};
use time::Duration;

use super::{now, place, refused, stage_keyset, Error, Placed, RootDir, RootToken};

/// A root N+1 is final once a threshold of root N's keys and a threshold
/// of its own keys signed it (TUF §5.3.4).
pub(crate) fn place_root(
    dir: &RootDir,
    doc: Signed<Root>,
    old: &Signed<Root>,
) -> Result<Placed, Error> {
    let v = doc.signed.version;
    if v != old.signed.version + 1 {
        return Err(refused(format!(
            "root v{v} does not follow root v{}",
            old.signed.version
        )));
    }
    let by_old = doc.valid_signers(old.signed.keys.keys())?.len();
    let by_new = doc.valid_signers(doc.signed.keys.keys())?.len();
    if by_old >= old.signed.threshold as usize && by_new >= doc.signed.threshold as usize {
        dir.remove_staged("root", v)?;
        return Ok(Placed::Final(dir.write_final(&doc, "root", v)?));
    }
    let path = dir.write_staged(&doc, "root", v)?;
    Ok(Placed::Staged(
        path,
        by_old.min(by_new),
        old.signed.threshold.max(doc.signed.threshold),
    ))
}

/// `sigil root rotate`: stages root N+1 with the root keys of `add`
/// (generated in those tokens, or adopted with `existing`) added, `remove`
/// taken out, and the threshold changed if given; the added tokens sign it
/// (a new key proves it can), then `token`.
pub fn rotate(
    dir: &RootDir,
    add: &[RootToken],
    remove: &[String],
    threshold: Option<u32>,
    existing: bool,
    token: &RootToken,
) -> Result<Placed, Error> {
    let old = dir
        .newest_root()?
        .ok_or_else(|| refused("no root yet: sigil root init first"))?;
    let mut body = old.signed.clone();
    for k in remove {
        if body.keys.remove(&k.to_lowercase()).is_none() {
            return Err(refused(format!(
                "{k} is not a key of root v{}",
                old.signed.version
            )));
        }
    }
    for t in add {
        let (pk, custody) = t.root_key(existing)?;
        body.keys.insert(
            pk,
            RootKey {
                owner: t.owner().to_owned(),
                custody,
            },
        );
    }
    body.threshold = threshold.unwrap_or(body.threshold);
    next_root(dir, body, &old, add, token, "rotate")
}

/// `sigil root renew`: root N+1 with the same keys and a new expiry
/// (`root`), or the next keyset with the same versions (signed by the
/// newest root's keys, as after a root rotation).
pub fn renew(dir: &RootDir, root: bool, token: &RootToken) -> Result<Placed, Error> {
    let old = dir
        .newest_root()?
        .ok_or_else(|| refused("no root yet: sigil root init first"))?;
    if root {
        let body = old.signed.clone();
        return next_root(dir, body, &old, &[], token, "renew");
    }
    let prev = dir
        .newest_keyset()?
        .ok_or_else(|| refused("no keyset yet: nothing to renew"))?;
    let mut next = stage_keyset(&old, Some(&prev), None, now())?;
    token.sign(&mut next)?;
    dir.log(&format!("renew keyset v{}", next.signed.version))?;
    place(dir, next, &old)
}

fn next_root(
    dir: &RootDir,
    mut body: Root,
    old: &Signed<Root>,
    add: &[RootToken],
    token: &RootToken,
    what: &str,
) -> Result<Placed, Error> {
    let now = now();
    body.version = old.signed.version + 1;
    body.issued = format_time(now);
    body.expires = format_time(now + Duration::days(365));
    let mut doc = Signed::new(body)?;
    sigil_proto::root::docs::Document::check(&doc.signed)?;
    for t in add {
        t.sign(&mut doc)?;
    }
    token.sign(&mut doc)?;
    dir.log(&format!(
        "{what} root v{} threshold={} keys={}",
        doc.signed.version,
        doc.signed.threshold,
        doc.signed
            .keys
            .keys()
            .cloned()
            .collect::<Vec<_>>()
            .join(",")
    ))?;
    place_root(dir, doc, old)
}
