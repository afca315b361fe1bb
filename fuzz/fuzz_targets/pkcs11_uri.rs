//! A PKCS#11 URI (RFC 7512), the `uri` of a `pkcs11` backend.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sigil_keys::pkcs11::Pkcs11Config;

fuzz_target!(|data: &[u8]| {
    let Some(text) = sigil_fuzz::text(data) else {
        return;
    };
    if let Ok(c) = Pkcs11Config::from_uri(text) {
        assert!(c.sessions >= 1);
    }
});
