//! Where a YubiHSM 2 is and how to open a session: the connector string
//! sigild's config names, and the `yubihsm:` URI the root ceremony takes.

use super::{config, YubiHsmConfig, YubiHsmConnection};
use crate::{KeyError, SecretSource};

impl YubiHsmConnection {
    /// `http://HOST:PORT` (yubihsm-connector), or `usb` / `usb:SERIAL`
    /// with the `yubihsm-usb` feature.
    pub fn parse(connector: &str, timeout_ms: u64) -> Result<Self, KeyError> {
        let bad = || {
            config(format!(
                "connector {connector:?} must be http://HOST:PORT, usb or usb:SERIAL"
            ))
        };
        if let Some(rest) = connector.strip_prefix("http://") {
            let (addr, port) = rest
                .trim_end_matches('/')
                .rsplit_once(':')
                .ok_or_else(bad)?;
            return Ok(YubiHsmConnection::Http {
                addr: addr.to_owned(),
                port: port.parse().map_err(|_| bad())?,
                timeout_ms,
            });
        }
        if connector == "usb" || connector.starts_with("usb:") {
            #[cfg(feature = "yubihsm-usb")]
            return Ok(YubiHsmConnection::Usb {
                serial: connector.strip_prefix("usb:").map(str::to_owned),
            });
            #[cfg(not(feature = "yubihsm-usb"))]
            return Err(config(
                "built without USB YubiHSM support: rebuild with --features yubihsm-usb, or \
                 run yubihsm-connector and use http://HOST:PORT"
                    .into(),
            ));
        }
        Err(bad())
    }
}

impl YubiHsmConfig {
    /// Parses `yubihsm:?connector=http://HOST:PORT&auth-key=ID&password-source=SRC[&domain=N]`
    /// (`password-source` as for PKCS#11 PINs: `file:PATH`, `env:VAR` or
    /// `prompt`; `domain` defaults to 1, the connector to
    /// `http://127.0.0.1:12345`).
    pub fn from_uri(uri: &str) -> Result<Self, KeyError> {
        let query = uri
            .strip_prefix("yubihsm:")
            .map(|r| r.trim_start_matches('?'))
            .ok_or_else(|| config(format!("{uri:?} is not a yubihsm: URI")))?;
        let mut connector = "http://127.0.0.1:12345".to_owned();
        let (mut auth_key_id, mut password, mut domain) = (None, None, 1u8);
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| config(format!("yubihsm URI: {pair:?} is not key=value")))?;
            match k {
                "connector" => connector = v.to_owned(),
                "auth-key" => {
                    auth_key_id = Some(v.parse().map_err(|_| {
                        config(format!("yubihsm URI: auth-key {v:?} is not an object id"))
                    })?)
                }
                "password-source" => password = Some(SecretSource::parse(v, "yubihsm")?),
                "domain" => {
                    domain = v
                        .parse()
                        .map_err(|_| config(format!("yubihsm URI: domain {v:?} is not 1 to 16")))?
                }
                other => {
                    return Err(config(format!(
                        "yubihsm URI: unknown attribute {other:?} (supported: connector, \
                         auth-key, password-source, domain)"
                    )))
                }
            }
        }
        Ok(YubiHsmConfig {
            connection: YubiHsmConnection::parse(&connector, 5_000)?,
            auth_key_id: auth_key_id
                .ok_or_else(|| config("yubihsm URI: auth-key=ID is required".into()))?,
            password: password.ok_or_else(|| {
                config(
                    "yubihsm URI: password-source=file:PATH, env:VAR or prompt is required".into(),
                )
            })?,
            domain,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connectors_parse_or_say_what_is_wrong() {
        match YubiHsmConnection::parse("http://10.0.0.5:12345", 900).unwrap() {
            YubiHsmConnection::Http {
                addr,
                port,
                timeout_ms,
            } => assert_eq!((addr.as_str(), port, timeout_ms), ("10.0.0.5", 12345, 900)),
            #[allow(unreachable_patterns)]
            other => panic!("{other:?}"),
        }
        for bad in [
            "10.0.0.5:12345",
            "http://host",
            "http://host:port",
            "ftp://x:1",
        ] {
            let e = YubiHsmConnection::parse(bad, 1).unwrap_err().to_string();
            assert!(e.contains("http://HOST:PORT"), "{bad}: {e}");
        }
        #[cfg(not(feature = "yubihsm-usb"))]
        assert!(YubiHsmConnection::parse("usb:123", 1)
            .unwrap_err()
            .to_string()
            .contains("yubihsm-usb"));
    }

    #[test]
    fn uris_name_connector_key_password_and_domain() {
        let c = YubiHsmConfig::from_uri(
            "yubihsm:?connector=http://10.1.1.1:12345&auth-key=2&password-source=prompt&domain=3",
        )
        .unwrap();
        assert_eq!((c.auth_key_id, c.domain), (2, 3));
        assert_eq!(c.password, SecretSource::Prompt);
        for (bad, why) in [
            ("pkcs11:token=x", "not a yubihsm: URI"),
            ("yubihsm:?password-source=prompt", "auth-key=ID is required"),
            ("yubihsm:?auth-key=1", "password-source"),
            (
                "yubihsm:?auth-key=1&password-source=prompt&pin=1",
                "unknown attribute",
            ),
            (
                "yubihsm:?auth-key=x&password-source=prompt",
                "not an object id",
            ),
        ] {
            let e = YubiHsmConfig::from_uri(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
