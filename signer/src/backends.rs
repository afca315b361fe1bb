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
        connection: sigil_keys::yubihsm::YubiHsmConnection::parse(connector, *timeout_ms)
            .map_err(|e| Error::Config(format!("backend.connector: {e}")))?,
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
}
