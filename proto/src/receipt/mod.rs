//! Pipelock ActionReceipt v1 (spec §2): parsing, canonical bytes, signing
//! input, receipt hash and the checks on a single receipt.

mod canonical;
pub mod schema;
pub mod session;

use std::collections::HashMap;

use serde_json::value::RawValue;
use serde_json::{Map, Value};

pub use canonical::{action_record_bytes, digest, receipt_bytes, receipt_hash};

use crate::{json, timestamp, Error, FormatError};

/// Prefix of every v1 signature string.
pub const SIG_PREFIX: &str = "ed25519:";

/// A parsed v1 receipt envelope.
#[derive(Clone, Debug, PartialEq)]
pub struct Receipt {
    /// The signed record.
    pub action_record: Map<String, Value>,
    /// `ed25519:` + 128 hex.
    pub signature: String,
    /// 64 hex characters.
    pub signer_key: String,
    /// Raw JSON source of the unsigned `ext` member, if present.
    pub ext_raw: Option<String>,
}

/// One line or document: a receipt, or a flight-recorder entry of another
/// type that chain verification skips (its type is kept).
#[derive(Clone, Debug, PartialEq)]
pub enum Entry {
    /// A receipt, bare or inside an `action_receipt` recorder entry.
    Receipt(Receipt),
    /// A recorder entry of another type (`rotation_endorsement`, ...).
    Other {
        /// The entry's `type`.
        kind: String,
        /// Its `detail`, when it is an object.
        detail: Option<Value>,
    },
}

impl Receipt {
    /// A string member of the action record, or `""`.
    pub fn str_field(&self, name: &str) -> &str {
        self.action_record
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// `chain_seq`, when it is a uint64.
    pub fn chain_seq(&self) -> Option<u64> {
        self.action_record.get("chain_seq").and_then(Value::as_u64)
    }

    /// Canonical action-record bytes.
    pub fn canonical_record(&self) -> Result<Vec<u8>, Error> {
        Ok(action_record_bytes(&self.action_record)?)
    }

    /// The receipt hash (chain link) of this receipt.
    pub fn hash(&self) -> Result<String, Error> {
        let ar = self.canonical_record()?;
        Ok(receipt_hash(&receipt_bytes(
            &ar,
            &self.signature,
            &self.signer_key,
            self.ext_raw.as_deref(),
        )))
    }
}

/// Parses one JSON document: a bare receipt or a flight-recorder entry.
pub fn parse_entry(text: &str) -> Result<Entry, Error> {
    entry(text, false)
}

/// `wrapped`: `text` is the detail of an `action_receipt` recorder entry,
/// where only a bare receipt may stand (pipelock-verify refuses a receipt
/// wrapped twice, and so does sigil).
fn entry(text: &str, wrapped: bool) -> Result<Entry, Error> {
    let value = json::parse(text).map_err(Error::Json)?;
    let obj = value
        .as_object()
        .ok_or_else(|| Error::Json("a receipt must be a JSON object".into()))?;
    if obj.contains_key("type") && obj.contains_key("detail") {
        if wrapped {
            return Err(Error::Format(FormatError::new(
                "detail",
                "a recorder entry inside a recorder entry: a receipt is wrapped at most once",
            )));
        }
        let kind = obj["type"].as_str().unwrap_or("").to_owned();
        if kind != "action_receipt" {
            let detail = obj["detail"].as_object().map(|d| Value::Object(d.clone()));
            return Ok(Entry::Other { kind, detail });
        }
        return match &obj["detail"] {
            Value::String(inner) => entry(inner, true),
            Value::Object(_) => {
                let raw = raw_members(text)?;
                entry(raw["detail"].get(), true)
            }
            _ => Err(Error::Json(
                "recorder entry detail must be an object or a string".into(),
            )),
        };
    }
    if obj.contains_key("action_record") && obj.contains_key("signature") {
        return envelope(obj.clone(), text).map(Entry::Receipt);
    }
    if obj.contains_key("record_type") {
        return Err(Error::Unsupported(format!(
            "record_type {} (sigil verifies ActionReceipt v1)",
            obj["record_type"]
        )));
    }
    Err(Error::Format(FormatError::new(
        "receipt",
        "neither a receipt (action_record, signature) nor a recorder entry (type, detail)",
    )))
}

/// Parses a single-receipt document; recorder entries of other types are
/// refused.
pub fn parse_receipt(text: &str) -> Result<Receipt, Error> {
    match parse_entry(text)? {
        Entry::Receipt(r) => Ok(r),
        Entry::Other { kind, .. } => Err(Error::Unsupported(format!(
            "recorder entry of type {kind:?} is not a receipt"
        ))),
    }
}

fn raw_members(text: &str) -> Result<HashMap<String, &RawValue>, Error> {
    serde_json::from_str(text).map_err(|e| Error::Json(e.to_string()))
}

fn envelope(mut obj: Map<String, Value>, text: &str) -> Result<Receipt, Error> {
    const MEMBERS: [&str; 5] = ["version", "action_record", "signature", "signer_key", "ext"];
    if let Some(k) = obj.keys().find(|k| !MEMBERS.contains(&k.as_str())) {
        return Err(FormatError::new("receipt", format!("unknown field {k:?}")).into());
    }
    if obj.get("version").and_then(Value::as_u64) != Some(1) || !obj["version"].is_u64() {
        return Err(FormatError::new("receipt.version", "must be 1").into());
    }
    let action_record = match obj.remove("action_record") {
        Some(Value::Object(m)) => m,
        _ => return Err(FormatError::new("receipt.action_record", "must be an object").into()),
    };
    let string = |obj: &Map<String, Value>, k: &str| -> Result<String, Error> {
        match obj.get(k) {
            Some(Value::String(s)) => Ok(s.clone()),
            None | Some(Value::Null) => Ok(String::new()),
            Some(_) => Err(FormatError::new(&format!("receipt.{k}"), "must be a string").into()),
        }
    };
    let signature = string(&obj, "signature")?;
    let signer_key = string(&obj, "signer_key")?;
    let ext_raw = if obj.contains_key("ext") {
        Some(raw_members(text)?["ext"].get().to_owned())
    } else {
        None
    };
    Ok(Receipt {
        action_record,
        signature,
        signer_key,
        ext_raw,
    })
}

/// Checks one receipt as pipelock-verify's `verify()` does (spec §2.8): the
/// record's shape and required members, then the signature. With `pinned`,
/// `signer_key` must equal it exactly. Returns the canonical record bytes.
pub fn verify(receipt: &Receipt, pinned: Option<&str>) -> Result<Vec<u8>, Error> {
    let canonical = receipt.canonical_record()?;
    check_required(receipt)?;
    if !receipt.signature.starts_with(SIG_PREFIX) {
        return Err(FormatError::new("receipt.signature", "must start with \"ed25519:\"").into());
    }
    if receipt.signer_key.is_empty() {
        return Err(FormatError::new("receipt.signer_key", "missing").into());
    }
    if let Some(pin) = pinned {
        if receipt.signer_key != pin {
            return Err(Error::UntrustedKey {
                expected: pin.to_owned(),
                found: receipt.signer_key.clone(),
            });
        }
    }
    crate::sig::verify(
        &receipt.signer_key,
        &digest(&canonical),
        &receipt.signature,
        false,
    )
    .map_err(|m| Error::Signature(format!("{m} (signer_key over the action record)")))?;
    Ok(canonical)
}

fn check_required(r: &Receipt) -> Result<(), Error> {
    let ar = &r.action_record;
    if ar.get("version").and_then(Value::as_u64) != Some(1) {
        return Err(FormatError::new("action_record.version", "must be 1").into());
    }
    let missing =
        |name: &str| FormatError::new(&format!("action_record.{name}"), "missing or empty");
    if r.str_field("action_id").is_empty() {
        return Err(missing("action_id").into());
    }
    let action_type = r.str_field("action_type");
    if !schema::ACTION_TYPES.contains(&action_type) {
        return Err(FormatError::new(
            "action_record.action_type",
            format!("invalid action_type {action_type:?}"),
        )
        .into());
    }
    let ts = r.str_field("timestamp");
    if ts.is_empty() {
        return Err(missing("timestamp").into());
    }
    timestamp::parse(ts).map_err(|e| FormatError::new("action_record.timestamp", e))?;
    for name in ["target", "verdict", "transport"] {
        if r.str_field(name).is_empty() {
            return Err(missing(name).into());
        }
    }
    session::check_control_shape(ar)?;
    Ok(())
}
