//! Loading a PKCS#11 module once per process, finding a token, and turning
//! cryptoki errors into [`KeyError`]s that say what is wrong.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::slot::Slot;

use super::BACKEND;
use crate::KeyError;

/// Closes every session this process has on the token, from outside the
/// backend: it calls `C_CloseAllSessions` on the token's slot through a
/// second handle on the same library instance. Backends using the token notice
/// on their next call and re-open their sessions. For fault-injection tests
/// and for operators forcing a fresh login; it never touches keys.
pub fn close_all_sessions(module_path: &Path, token_label: &str) -> Result<(), KeyError> {
    let ctx = load_module(module_path)?;
    let slot = find_slot(&ctx, token_label, None)?;
    // SAFETY: loading the module runs its initialisers, which `load_module`
    // already did through the same path (the loader returns the same,
    // already loaded instance); the library stays loaded while `raw` lives.
    let raw = unsafe { cryptoki_sys::Pkcs11::new(module_path) }
        .map_err(|e| config(format!("cannot load {}: {e}", module_path.display())))?;
    let close = raw
        .C_CloseAllSessions
        .as_ref()
        .map_err(|_| config("the module has no C_CloseAllSessions".into()))?;
    // SAFETY: C_CloseAllSessions takes a slot id by value and the library
    // is initialised (above).
    let rv = unsafe { close(slot.id() as cryptoki_sys::CK_SLOT_ID) };
    if rv != cryptoki_sys::CKR_OK {
        return Err(unavailable(&format!("C_CloseAllSessions returned {rv:#x}")));
    }
    Ok(())
}

pub(super) fn initialize(ctx: &Pkcs11) -> Result<(), CkError> {
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Loads and initialises a module once per process and keeps it loaded.
///
/// PKCS#11 state (initialisation, logins, sessions) belongs to the process,
/// not to a handle: if every handle of a module were dropped the library
/// would be unloaded under the next user, and a second `C_Initialize` is
/// refused. So all backends of one module share one context, never
/// finalised.
pub(super) fn load_module(path: &Path) -> Result<Pkcs11, KeyError> {
    static MODULES: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();
    let mut modules = MODULES
        .get_or_init(Default::default)
        .lock()
        .map_err(poisoned)?;
    if let Some(ctx) = modules.get(path) {
        return Ok(ctx.clone());
    }
    if !path.is_file() {
        return Err(config(format!(
            "PKCS#11 module {} not found (is the token's package installed?)",
            path.display()
        )));
    }
    let ctx = Pkcs11::new(path).map_err(|e| {
        config(format!(
            "cannot load PKCS#11 module {}: {e}",
            path.display()
        ))
    })?;
    initialize(&ctx).map_err(|e| ck_err("initialising the module", e))?;
    modules.insert(path.to_owned(), ctx.clone());
    Ok(ctx)
}

pub(super) fn find_slot(ctx: &Pkcs11, label: &str, serial: Option<&str>) -> Result<Slot, KeyError> {
    let slots = ctx
        .get_slots_with_token()
        .map_err(|e| ck_err("listing slots", e))?;
    let mut seen = Vec::new();
    for slot in slots {
        let Ok(info) = ctx.get_token_info(slot) else {
            continue;
        };
        let l = info.label().trim_end().to_owned();
        let s = info.serial_number().trim_end().to_owned();
        if l == label && serial.is_none_or(|want| want == s) {
            return Ok(slot);
        }
        seen.push(if serial.is_some() {
            format!("{l:?} (serial {s})")
        } else {
            format!("{l:?}")
        });
    }
    Err(config(format!(
        "no token labelled {label:?}{}; tokens seen: [{}]",
        serial
            .map(|s| format!(" with serial {s}"))
            .unwrap_or_default(),
        seen.join(", ")
    )))
}

/// Short form of a cryptoki error: function and return value name. The
/// crate's own Display appends the long spec text of each code.
pub(super) fn describe_ck(e: &CkError) -> String {
    match e {
        CkError::Pkcs11(rv, func) => format!("C_{func:?} returned {rv:?}"),
        other => other.to_string(),
    }
}

pub(super) fn ck_err(what: &str, e: CkError) -> KeyError {
    let reason = format!("{what}: {}", describe_ck(&e));
    match e {
        CkError::Pkcs11(
            RvError::MechanismInvalid
            | RvError::MechanismParamInvalid
            | RvError::CurveNotSupported
            | RvError::TemplateInconsistent
            | RvError::TemplateIncomplete
            | RvError::AttributeValueInvalid
            | RvError::KeyTypeInconsistent
            | RvError::PinIncorrect
            | RvError::PinLocked
            | RvError::PinExpired
            | RvError::TokenWriteProtected,
            _,
        ) => config(reason),
        _ => unavailable(&reason),
    }
}

pub(super) fn config(reason: String) -> KeyError {
    KeyError::Config {
        backend: BACKEND,
        reason,
    }
}

pub(super) fn malformed(reason: String) -> KeyError {
    KeyError::Malformed {
        backend: BACKEND,
        reason,
    }
}

pub(super) fn unavailable(reason: &str) -> KeyError {
    KeyError::Unavailable {
        backend: BACKEND,
        reason: reason.into(),
    }
}

pub(super) fn poisoned<T>(_: T) -> KeyError {
    unavailable("session pool lock poisoned by a panic")
}
