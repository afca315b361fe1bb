//! The ActionReceipt v1 field tables (spec §2.2, §2.3): member names in
//! Go's declared order, their JSON kinds and whether Go omits them when
//! empty. The canonical encoder and the input validators both read these
//! tables, so there is one statement of the format.

use serde_json::Value;

/// The JSON kind of a member, as Go decodes it.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// string
    Str,
    /// int64
    Int,
    /// uint64
    Uint,
    /// uint8
    Uint8,
    /// bool
    Bool,
    /// []string (omitted when empty)
    Strings,
    /// []string that Go emits as `null` when nil (`delegation_chain`)
    NullableStrings,
    /// `map[string]int64`, keys sorted
    Counts,
    /// a nested struct (pointer: emitted whenever present, even `{}`)
    Struct(&'static Schema),
    /// a slice of structs
    List(&'static Schema),
}

impl Kind {
    /// Go's zero value of the kind, as JSON: what a member left out means,
    /// and what sigil writes for a member Go always emits.
    pub fn zero(self) -> Value {
        match self {
            Str => Value::String(String::new()),
            Int | Uint | Uint8 => Value::from(0),
            Bool => Value::Bool(false),
            Strings | NullableStrings | Counts | List(_) => Value::Null,
            Struct(_) => Value::Object(serde_json::Map::new()),
        }
    }

    /// Whether `v` has the kind's JSON shape (`null`, Go's zero, always
    /// does). Ranges and nested members are the encoder's to check.
    pub fn accepts(self, v: &Value) -> bool {
        v.is_null()
            || match self {
                Str => v.is_string(),
                Int | Uint | Uint8 => v.is_i64() || v.is_u64(),
                Bool => v.is_boolean(),
                Strings | NullableStrings => {
                    v.as_array().is_some_and(|a| a.iter().all(Value::is_string))
                }
                Counts | Struct(_) => v.is_object(),
                List(_) => v.is_array(),
            }
    }

    /// What a member of the kind must be, for error messages.
    pub fn describe(self) -> &'static str {
        match self {
            Str => "a string",
            Int | Uint | Uint8 => "an integer",
            Bool => "true or false",
            Strings | NullableStrings => "an array of strings",
            Counts | Struct(_) => "an object",
            List(_) => "an array of objects",
        }
    }
}

/// Whether Go always writes a member or omits it when it is the zero value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Emit {
    /// Not `omitempty`: always written.
    Always,
    /// `omitempty`.
    Omit,
}

/// One member of a struct.
#[derive(Debug)]
pub struct Field {
    /// JSON member name.
    pub name: &'static str,
    /// JSON kind.
    pub kind: Kind,
    /// Go's omitempty behaviour.
    pub emit: Emit,
}

/// A struct: its name (for error messages) and members in canonical order.
#[derive(Debug)]
pub struct Schema {
    /// Name used in error paths, e.g. `action_record`.
    pub name: &'static str,
    /// Members in Go's declared order.
    pub fields: &'static [Field],
}

impl Schema {
    /// The member called `name`, if the struct has one.
    pub fn field(&self, name: &str) -> Option<&'static Field> {
        self.fields.iter().find(|f| f.name == name)
    }
}

const fn f(name: &'static str, kind: Kind, emit: Emit) -> Field {
    Field { name, kind, emit }
}

use Emit::{Always as A, Omit as O};
use Kind::*;

/// `action_record`.
pub static ACTION_RECORD: Schema = Schema {
    name: "action_record",
    fields: &[
        f("version", Int, A),
        f("action_id", Str, A),
        f("parent_action_id", Str, O),
        f("action_type", Str, A),
        f("timestamp", Str, A),
        f("principal", Str, A),
        f("actor", Str, A),
        f("delegation_chain", NullableStrings, A),
        f("target", Str, A),
        f("intent", Str, O),
        f("data_classes_in", Strings, O),
        f("data_classes_out", Strings, O),
        f("side_effect_class", Str, A),
        f("reversibility", Str, A),
        f("policy_hash", Str, A),
        f("verdict", Str, A),
        f("decision_phase", Str, O),
        f("defer_id", Str, O),
        f("resolution_policy", Str, O),
        f("resolution_source", Str, O),
        f("session_id", Str, O),
        f("session_id_original", Str, O),
        f("session_taint_level", Str, O),
        f("session_contaminated", Bool, O),
        f("recent_taint_sources", List(&TAINT_SOURCE), O),
        f("session_task_id", Str, O),
        f("session_task_label", Str, O),
        f("authority_kind", Str, O),
        f("taint_decision", Str, O),
        f("taint_decision_reason", Str, O),
        f("task_override_applied", Bool, O),
        f("contract_winning_source", Str, O),
        f("contract_live_verdict", Str, O),
        f("contract_policy_sources", Strings, O),
        f("contract_rule_id", Str, O),
        f("active_manifest_hash", Str, O),
        f("contract_hash", Str, O),
        f("contract_selector_id", Str, O),
        f("contract_generation", Uint, O),
        f("transport", Str, A),
        f("method", Str, O),
        f("layer", Str, O),
        f("pattern", Str, O),
        f("severity", Str, O),
        f("redaction", Struct(&REDACTION), O),
        f("shield", Struct(&SHIELD), O),
        f("request_id", Str, O),
        f("chain_prev_hash", Str, A),
        f("chain_seq", Uint, A),
        f("run_nonce", Str, O),
        f("key_transition", Struct(&KEY_TRANSITION), O),
        f("session_control", Struct(&SESSION_CONTROL), O),
        f("venue", Str, O),
        f("jurisdiction", Str, O),
        f("rulebook_id", Str, O),
        f("remedy_class", Str, O),
        f("contestation_window", Str, O),
        f("precedent_refs", Strings, O),
    ],
};

/// `recent_taint_sources[]`.
pub static TAINT_SOURCE: Schema = Schema {
    name: "recent_taint_sources[]",
    fields: &[
        f("url", Str, A),
        f("kind", Str, A),
        f("level", Uint8, A),
        f("timestamp", Str, A),
        f("receipt_id", Str, O),
        f("match_reason", Str, O),
    ],
};

/// `redaction`.
pub static REDACTION: Schema = Schema {
    name: "redaction",
    fields: &[
        f("profile", Str, O),
        f("provider", Str, O),
        f("parser", Str, O),
        f("total_redactions", Int, O),
        f("by_class", Counts, O),
        f("cache_boundary_kept", Bool, O),
    ],
};

/// `shield`.
pub static SHIELD: Schema = Schema {
    name: "shield",
    fields: &[
        f("pipeline", Str, O),
        f("total_rewrites", Int, O),
        f("extension_probes", Int, O),
        f("tracking_beacons", Int, O),
        f("agent_traps", Int, O),
        f("fingerprint_shim_injected", Bool, O),
        f("svg_foreign_objects", Int, O),
        f("svg_event_handlers", Int, O),
        f("svg_external_references", Int, O),
        f("svg_hidden_text", Int, O),
        f("svg_animation_injections", Int, O),
        f("body_bytes", Int, O),
        f("scanned_bytes", Int, O),
        f("partial", Bool, O),
        f("adaptive_signals_recorded", Int, O),
        f("adaptive_signal_max_per_body", Int, O),
    ],
};

/// `key_transition`.
pub static KEY_TRANSITION: Schema = Schema {
    name: "key_transition",
    fields: &[
        f("prior_signer_key", Str, A),
        f("prior_chain_seq", Uint, A),
        f("prior_chain_hash", Str, A),
    ],
};

/// `session_control`.
pub static SESSION_CONTROL: Schema = Schema {
    name: "session_control",
    fields: &[
        f("kind", Str, A),
        f("open", Struct(&SESSION_OPEN), O),
        f("heartbeat", Struct(&SESSION_HEARTBEAT), O),
        f("close", Struct(&SESSION_CLOSE), O),
    ],
};

/// `session_control.open`.
pub static SESSION_OPEN: Schema = Schema {
    name: "session_control.open",
    fields: &[
        f("run_nonce", Str, A),
        f("open_nonce", Str, A),
        f("recorder_session", Str, A),
        f("policy_hash", Str, A),
        f("signer_key_epoch", Str, A),
        f("heartbeat_seconds", Int, A),
        f("chain_open_seq", Uint, A),
        f("prior_chain_head", Str, O),
        f("prior_chain_seq", Uint, O),
        f("genesis_hash", Str, O),
        f("genesis_anchor_head", Str, O),
        f("genesis_anchor_log", Str, O),
        f("posture_capsule_sha256", Str, O),
        f("posture_signer_key_id", Str, O),
        f("containment_nonce", Str, O),
        f("contained_uid", Str, O),
        f("group_binding", Struct(&GROUP_BINDING), O),
    ],
};

/// `session_control.open.group_binding`.
pub static GROUP_BINDING: Schema = Schema {
    name: "group_binding",
    fields: &[
        f("group_id", Str, A),
        f("shard_index", Int, A),
        f("session_id", Str, A),
        f("open_manifest_sha256", Str, A),
        f("signer_key", Str, A),
        f("previous_group_id", Str, A),
        f("previous_open_manifest_sha256", Str, A),
    ],
};

/// `session_control.heartbeat`.
pub static SESSION_HEARTBEAT: Schema = Schema {
    name: "session_control.heartbeat",
    fields: &[
        f("run_nonce", Str, A),
        f("open_nonce", Str, A),
        f("beat", Uint, A),
        f("chain_head", Str, A),
        f("chain_seq_head", Uint, A),
        f("heartbeat_time", Str, A),
        f("fsync_errors_gated", Uint, A),
        f("durability_blocks", Uint, A),
    ],
};

/// `session_control.close`.
pub static SESSION_CLOSE: Schema = Schema {
    name: "session_control.close",
    fields: &[
        f("run_nonce", Str, A),
        f("open_nonce", Str, A),
        f("final_seq", Uint, A),
        f("root_hash", Str, A),
        f("receipt_count", Uint, A),
        f("close_reason", Str, A),
        f("fsync_errors_gated", Uint, A),
        f("durability_blocks", Uint, A),
    ],
};

/// The `action_type` values Pipelock accepts.
pub const ACTION_TYPES: &[&str] = &[
    "read",
    "derive",
    "write",
    "delegate",
    "authorize",
    "spend",
    "commit",
    "actuate",
    "unclassified",
];
