use thiserror::Error;

/// A member of a document that is missing, unknown or of the wrong kind.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("{path}: {problem}")]
pub struct FormatError {
    /// Where, e.g. `action_record.chain_seq`.
    pub path: String,
    /// What is wrong with it.
    pub problem: String,
}

impl FormatError {
    /// A problem at `path`.
    pub fn new(path: &str, problem: impl Into<String>) -> Self {
        FormatError {
            path: path.to_owned(),
            problem: problem.into(),
        }
    }
}

/// Why a document, receipt or chain was refused.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum Error {
    /// Not strict JSON: syntax, trailing data, duplicate keys, too deep.
    #[error("malformed JSON: {0}")]
    Json(String),
    /// A member is missing, unknown, empty when required, or of the wrong kind.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// The signature does not verify under the receipt's key.
    #[error("signature invalid: {0}")]
    Signature(String),
    /// The receipt is signed by a key other than the one expected.
    #[error("signer key {found} is not the expected key {expected}")]
    UntrustedKey {
        /// The pinned or expected key (lowercase hex).
        expected: String,
        /// The receipt's `signer_key`.
        found: String,
    },
    /// Linkage, sequence, genesis or session-control rules are broken.
    #[error("{0}")]
    Chain(String),
    /// A rotation endorsement is malformed, badly signed or unmatched.
    #[error("rotation endorsement: {0}")]
    Endorsement(String),
    /// A policy sigil applies beyond pipelock-verify (replay, control bytes,
    /// age, revocation, verdict reversal).
    #[error("{0}")]
    Policy(String),
    /// The key directory is malformed or its signature does not verify.
    #[error("key directory: {0}")]
    Directory(String),
    /// A root-role document (root, keyset, directory statement) is
    /// malformed, under its threshold, expired, rolled back or does not
    /// match the others.
    #[error("root of trust: {0}")]
    Root(String),
    /// A receipt format this verifier does not handle.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The error of one line of a chain file.
    #[error("line {line}{}: {source}", seq.map(|s| format!(" (chain_seq {s})")).unwrap_or_default())]
    AtLine {
        /// 1-based line number in the file.
        line: usize,
        /// The receipt's `chain_seq`, when it could be read.
        seq: Option<u64>,
        /// What was wrong.
        source: Box<Error>,
    },
}
