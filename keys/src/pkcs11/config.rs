//! PKCS#11 URIs (RFC 7512) naming a token, its module and its PIN source.

use std::path::PathBuf;

use super::module::config;
use super::BACKEND;
use crate::{KeyError, SecretSource};

/// Where the token is and how to log in to it. Holds no secret: the PIN is
/// read from its source when the backend opens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pkcs11Config {
    /// Path of the PKCS#11 module (`module-path`).
    pub module_path: PathBuf,
    /// Token label (`token`).
    pub token_label: String,
    /// Token serial number (`serial`), if the label alone is ambiguous.
    pub token_serial: Option<String>,
    /// Where the user PIN comes from (`pin-source`).
    pub pin: SecretSource,
    /// Number of sessions in the pool (`x-sessions`), at least 1; default 2.
    pub sessions: usize,
}

impl Pkcs11Config {
    /// Default pool size.
    pub const DEFAULT_SESSIONS: usize = 2;

    /// Parses a PKCS#11 URI such as
    /// `pkcs11:token=sigil?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/sigil/pin`.
    ///
    /// Path attributes: `token` (required), `serial` (optional); `object`,
    /// `id` and `type` are accepted and ignored, since sigil names key
    /// objects itself. Query attributes: `module-path` (required),
    /// `pin-source` (required: `file:PATH`, `file:///PATH` or `env:VAR`),
    /// `x-sessions` (optional pool size). `pin-value` is refused: a PIN in a
    /// URI ends up in config files, shell history and logs.
    pub fn from_uri(uri: &str) -> Result<Self, KeyError> {
        let rest = uri
            .strip_prefix("pkcs11:")
            .ok_or_else(|| config("a PKCS#11 URI starts with \"pkcs11:\"".into()))?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut token_label = None;
        let mut token_serial = None;
        for (k, v) in attrs(path, ';')? {
            match k.as_str() {
                "token" => token_label = Some(v),
                "serial" => token_serial = Some(v),
                "object" | "id" | "type" => {}
                other => {
                    return Err(config(format!(
                        "unsupported path attribute {other:?} in PKCS#11 URI \
                         (supported: token, serial)"
                    )))
                }
            }
        }
        let mut module_path = None;
        let mut pin = None;
        let mut sessions = Self::DEFAULT_SESSIONS;
        for (k, v) in attrs(query, '&')? {
            match k.as_str() {
                "module-path" => module_path = Some(PathBuf::from(v)),
                "pin-source" => pin = Some(SecretSource::parse(&v, BACKEND)?),
                "pin-value" => {
                    return Err(config(
                        "pin-value is refused: put the PIN in a file (pin-source=file:PATH) \
                         or an environment variable (pin-source=env:VAR)"
                            .into(),
                    ))
                }
                "x-sessions" => {
                    sessions = v.parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
                        config(format!("x-sessions must be a number >= 1, not {v:?}"))
                    })?
                }
                other => {
                    return Err(config(format!(
                        "unsupported query attribute {other:?} in PKCS#11 URI \
                         (supported: module-path, pin-source, x-sessions)"
                    )))
                }
            }
        }
        Ok(Pkcs11Config {
            module_path: module_path
                .ok_or_else(|| config("the PKCS#11 URI needs ?module-path=".into()))?,
            token_label: token_label
                .ok_or_else(|| config("the PKCS#11 URI needs token=LABEL".into()))?,
            token_serial,
            pin: pin.ok_or_else(|| {
                config("the PKCS#11 URI needs pin-source=file:PATH, env:VAR or prompt".into())
            })?,
            sessions,
        })
    }
}

/// Splits `a=b<sep>c=d` and percent-decodes names and values.
fn attrs(s: &str, sep: char) -> Result<Vec<(String, String)>, KeyError> {
    s.split(sep)
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p
                .split_once('=')
                .ok_or_else(|| config(format!("PKCS#11 URI attribute {p:?} has no '='")))?;
            Ok((pct_decode(k)?, pct_decode(v)?))
        })
        .collect()
}

fn pct_decode(s: &str) -> Result<String, KeyError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| config("bad percent-encoding in PKCS#11 URI".into()))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| config("PKCS#11 URI is not UTF-8".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_uri() {
        let c = Pkcs11Config::from_uri(
            "pkcs11:token=my%20token;object=x?module-path=/usr/lib/softhsm/libsofthsm2.so\
             &pin-source=file:/etc/pin&x-sessions=4",
        )
        .unwrap();
        assert_eq!(c.token_label, "my token");
        assert_eq!(
            c.module_path,
            PathBuf::from("/usr/lib/softhsm/libsofthsm2.so")
        );
        assert_eq!(c.pin, SecretSource::File("/etc/pin".into()));
        assert_eq!(c.sessions, 4);
        let c = Pkcs11Config::from_uri("pkcs11:token=t?module-path=/m&pin-source=env:PIN").unwrap();
        assert_eq!(c.pin, SecretSource::Env("PIN".into()));
        assert_eq!(c.sessions, 2);
    }

    #[test]
    fn refuses_pin_value_without_echoing_it() {
        let e = Pkcs11Config::from_uri("pkcs11:token=t?module-path=/m&pin-value=s3cr3t-991")
            .unwrap_err()
            .to_string();
        assert!(e.contains("pin-value"), "{e}");
        assert!(!e.contains("s3cr3t-991"), "{e}");
    }
}
