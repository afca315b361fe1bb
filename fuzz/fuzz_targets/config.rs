//! sigild's TOML configuration (`sigild --config`), and the checks and
//! derived settings the daemon takes from it at start.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sigil_keys::pkcs11::Pkcs11Config;
use sigil_signer::config::{BackendConfig, Config};

fuzz_target!(|data: &[u8]| {
    let Some(text) = sigil_fuzz::text(data) else {
        return;
    };
    let Ok(c) = toml::from_str::<Config>(text) else {
        return;
    };
    let _ = c.check();
    let _ = c.settings();
    let _ = c.record_limits();
    if let BackendConfig::Pkcs11 { uri, .. } = &c.backend {
        let _ = Pkcs11Config::from_uri(uri);
    }
});
