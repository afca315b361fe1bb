//! Opens the configured key backend, and says which backends this build
//! has. Each hardware backend is a cargo feature (`pkcs11`, `yubihsm`,
//! `yubihsm-usb`, `tpm`) so that the default build links nothing beyond
//! libc: a config that names a backend this build lacks is refused with the
//! feature to rebuild with.

use std::sync::Arc;

use sigil_keys::software::SoftwareBackend;
use sigil_keys::Backend;

use crate::config::{BackendConfig, Config};
use crate::Error;

/// The backends compiled into this binary, for `sigild --version`.
pub const COMPILED: &[&str] = &[
    "software",
    #[cfg(feature = "pkcs11")]
    "pkcs11",
    #[cfg(feature = "yubihsm")]
    "yubihsm",
    #[cfg(feature = "yubihsm-usb")]
    "yubihsm-usb",
    #[cfg(feature = "tpm")]
    "tpm",
];

/// Opens the configured key backend. Blocking: tokens are opened and
/// logged in to here, so a wrong PIN or a missing module stops the start.
pub fn open_backend(config: &Config) -> Result<Arc<dyn Backend>, Error> {
    match &config.backend {
        BackendConfig::Software { seed_dir } => {
            let dir = seed_dir
                .clone()
                .unwrap_or_else(|| config.data_dir.join("seeds"));
            Ok(Arc::new(SoftwareBackend::open(dir)?))
        }
        BackendConfig::Pkcs11 { .. } => pkcs11(&config.backend).map(|b| with_deadline(b, config)),
        BackendConfig::Yubihsm { .. } => yubihsm(&config.backend).map(|b| with_deadline(b, config)),
        BackendConfig::Tpm { .. } => tpm(config).map(|b| with_deadline(b, config)),
    }
}

/// A device can hang instead of failing: its calls get a deadline (the
/// software backend, in memory, needs none).
fn with_deadline(backend: Arc<dyn Backend>, config: &Config) -> Arc<dyn Backend> {
    let limit = std::time::Duration::from_millis(config.token_deadline_ms.max(1));
    Arc::new(crate::deadline::Deadline::new(backend, limit))
}

/// The refusal for a backend this build lacks.
#[allow(dead_code)] // unused when every backend is compiled in
fn missing(what: &str, feature: &str) -> Error {
    Error::Config(format!(
        "this sigild was built without {what} support: rebuild with --features {feature} \
         (sigild --version lists the backends this build has)"
    ))
}

#[cfg(feature = "pkcs11")]
fn pkcs11(backend: &BackendConfig) -> Result<Arc<dyn Backend>, Error> {
    use sigil_keys::pkcs11::{Pkcs11Backend, Pkcs11Config};
    let BackendConfig::Pkcs11 { uri, sessions } = backend else {
        return Err(Error::Internal(
            "pkcs11() called for another backend".into(),
        ));
    };
    let mut cfg = Pkcs11Config::from_uri(uri)?;
    if let Some(n) = sessions {
        cfg.sessions = *n;
    }
    Ok(Arc::new(Pkcs11Backend::open(&cfg)?))
}

#[cfg(not(feature = "pkcs11"))]
fn pkcs11(_: &BackendConfig) -> Result<Arc<dyn Backend>, Error> {
    Err(missing("PKCS#11", "pkcs11"))
}

#[cfg(feature = "yubihsm")]
fn yubihsm(backend: &BackendConfig) -> Result<Arc<dyn Backend>, Error> {
    use sigil_keys::yubihsm::{YubiHsmBackend, YubiHsmConfig};
    use sigil_keys::SecretSource;
    let BackendConfig::Yubihsm {
        connector,
        auth_key_id,
        password,
        domain,
        timeout_ms,
    } = backend
    else {
        return Err(Error::Internal(
            "yubihsm() called for another backend".into(),
        ));
    };
    let cfg = YubiHsmConfig {
        connection: yubihsm_connection(connector, *timeout_ms)?,
        auth_key_id: *auth_key_id,
        password: SecretSource::parse(password, "yubihsm")?,
        domain: *domain,
    };
    Ok(Arc::new(YubiHsmBackend::open(&cfg)?))
}

#[cfg(not(feature = "yubihsm"))]
fn yubihsm(_: &BackendConfig) -> Result<Arc<dyn Backend>, Error> {
    Err(missing("YubiHSM 2", "yubihsm"))
}

/// `http://HOST:PORT` (yubihsm-connector), or `usb` / `usb:SERIAL` when
/// built with the `yubihsm-usb` feature.
#[cfg(feature = "yubihsm")]
pub fn yubihsm_connection(
    connector: &str,
    timeout_ms: u64,
) -> Result<sigil_keys::yubihsm::YubiHsmConnection, Error> {
    use sigil_keys::yubihsm::YubiHsmConnection;
    let bad = || {
        Error::Config(format!(
            "backend.connector {connector:?} must be http://HOST:PORT, usb or usb:SERIAL"
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
        return Err(Error::Config(
            "this sigild was built without USB YubiHSM support: rebuild with --features \
             yubihsm-usb, or run yubihsm-connector and use http://HOST:PORT"
                .into(),
        ));
    }
    Err(bad())
}

#[cfg(feature = "tpm")]
fn tpm(config: &Config) -> Result<Arc<dyn Backend>, Error> {
    use sigil_keys::tpm::{TpmBackend, TpmConfig};
    use sigil_keys::SecretSource;
    let BackendConfig::Tpm { tcti, dir, auth } = &config.backend else {
        return Err(Error::Internal("tpm() called for another backend".into()));
    };
    let cfg = TpmConfig {
        tcti: tcti.to_owned(),
        dir: dir.clone().unwrap_or_else(|| config.data_dir.join("tpm")),
        auth: auth
            .as_deref()
            .map(|a| SecretSource::parse(a, "tpm"))
            .transpose()?,
    };
    Ok(Arc::new(TpmBackend::open(&cfg)?))
}

#[cfg(not(feature = "tpm"))]
fn tpm(_: &Config) -> Result<Arc<dyn Backend>, Error> {
    Err(missing("TPM", "tpm"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backend_missing_from_the_build_names_the_feature() {
        for (toml, feature, compiled) in [
            (
                "[backend]\nkind = \"tpm\"\ntcti = \"swtpm:host=127.0.0.1,port=1\"\n",
                "tpm",
                cfg!(feature = "tpm"),
            ),
            (
                "[backend]\nkind = \"pkcs11\"\nuri = \"pkcs11:token=x?module-path=/nonexistent.so&pin-source=env:SIGIL_TEST_NO_PIN\"\n",
                "pkcs11",
                cfg!(feature = "pkcs11"),
            ),
        ] {
            let config: Config = toml::from_str(toml).expect("test config parses");
            let err = open_backend(&config).err().map(|e| e.to_string()).unwrap_or_default();
            assert_eq!(
                err.contains(&format!("rebuild with --features {feature}")),
                !compiled,
                "{feature}: {err}"
            );
        }
    }

    #[cfg(feature = "yubihsm")]
    #[test]
    fn yubihsm_connectors_parse_or_say_what_is_wrong() {
        match yubihsm_connection("http://10.0.0.5:12345", 900).unwrap() {
            sigil_keys::yubihsm::YubiHsmConnection::Http {
                addr,
                port,
                timeout_ms,
            } => {
                assert_eq!((addr.as_str(), port, timeout_ms), ("10.0.0.5", 12345, 900));
            }
            #[allow(unreachable_patterns)]
            other => panic!("{other:?}"),
        }
        for bad in [
            "10.0.0.5:12345",
            "http://host",
            "http://host:port",
            "ftp://x:1",
        ] {
            assert!(
                yubihsm_connection(bad, 1)
                    .unwrap_err()
                    .to_string()
                    .contains("http://HOST:PORT"),
                "{bad}"
            );
        }
        #[cfg(not(feature = "yubihsm-usb"))]
        assert!(yubihsm_connection("usb:123", 1)
            .unwrap_err()
            .to_string()
            .contains("yubihsm-usb"));
    }
}
