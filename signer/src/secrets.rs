//! Keeping secrets out of places they could leak from: core dumps, and the
//! process environment (which children inherit and `/proc/PID/environ`
//! shows) once a PIN or password has been read from it.

use sigil_keys::SecretSource;

use crate::config::{BackendConfig, Config};

/// Turns core dumps off for this process: a dump of sigild would hold PINs,
/// passwords and (for the software and TPM backends) seeds.
pub fn no_core_dumps() -> std::io::Result<()> {
    let zero = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: setrlimit reads the struct we pass; prctl with
    // PR_SET_DUMPABLE takes plain integers. Neither touches our memory.
    unsafe {
        if libc::setrlimit(libc::RLIMIT_CORE, &zero) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The environment variables the configured backend reads secrets from
/// (`env:VAR` sources).
pub fn env_sources(config: &Config) -> Vec<String> {
    // The backends' own parsers, so that what is scrubbed is exactly what
    // they read (a percent-encoded `env%3AVAR` included).
    let env = |source: &str| match SecretSource::parse(source, "config") {
        Ok(SecretSource::Env(var)) => Some(var),
        _ => None,
    };
    match &config.backend {
        BackendConfig::Software { .. } => Vec::new(),
        BackendConfig::Pkcs11 { uri, .. } => pkcs11_pin_env(uri).into_iter().collect(),
        BackendConfig::Yubihsm { password, .. } => env(password).into_iter().collect(),
        BackendConfig::Tpm { auth, .. } => auth.as_deref().and_then(env).into_iter().collect(),
    }
}

#[cfg(feature = "pkcs11")]
fn pkcs11_pin_env(uri: &str) -> Option<String> {
    match sigil_keys::pkcs11::Pkcs11Config::from_uri(uri).ok()?.pin {
        SecretSource::Env(var) => Some(var),
        SecretSource::File(_) | SecretSource::Prompt => None,
    }
}

#[cfg(not(feature = "pkcs11"))]
fn pkcs11_pin_env(_: &str) -> Option<String> {
    // Without PKCS#11 support the backend never opens, so nothing was read.
    None
}

/// Overwrites each variable's value in place and removes it, once the
/// backend has read it: children do not inherit it and
/// `/proc/PID/environ` shows zeros instead.
pub fn scrub_env(vars: &[String]) {
    for var in vars {
        let Ok(name) = std::ffi::CString::new(var.as_str()) else {
            continue;
        };
        // SAFETY: getenv returns a pointer into the environment block or
        // null; the value is a NUL-terminated string we may overwrite (the
        // block is the process's own writable memory). No other thread of
        // sigild reads the environment after start-up (the logger read
        // SIGIL_LOG before the backend opened), so nothing reads it while
        // it changes.
        unsafe {
            let value = libc::getenv(name.as_ptr());
            if !value.is_null() {
                std::ptr::write_bytes(value, 0, libc::strlen(value));
            }
            libc::unsetenv(name.as_ptr());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_sources_are_found_in_every_backend_config() {
        for (toml, want) in [
            (
                "[backend]\nkind = \"pkcs11\"\nuri = \"pkcs11:token=t?module-path=/m.so&pin-source=env:HSM_PIN\"\n",
                vec!["HSM_PIN"],
            ),
            (
                "[backend]\nkind = \"pkcs11\"\nuri = \"pkcs11:token=t?module-path=/m.so&pin-source=file:/p\"\n",
                vec![],
            ),
            (
                "[backend]\nkind = \"pkcs11\"\nuri = \"pkcs11:token=t?module-path=/m.so&pin-source=env%3AENC_PIN\"\n",
                vec!["ENC_PIN"],
            ),
            (
                "[backend]\nkind = \"yubihsm\"\nauth_key_id = 1\npassword = \"env:YH_PASS\"\n",
                vec!["YH_PASS"],
            ),
            (
                "[backend]\nkind = \"tpm\"\ntcti = \"device:/dev/tpmrm0\"\nauth = \"env:TPM_AUTH\"\n",
                vec!["TPM_AUTH"],
            ),
        ] {
            let config: Config = toml::from_str(toml).expect("test config parses");
            assert_eq!(env_sources(&config), want, "{toml}");
        }
    }
}
