use thiserror::Error;

/// Errors from a key backend. Messages never contain secrets.
#[derive(Debug, Error)]
pub enum KeyError {
    /// No key with this label exists in the backend.
    #[error("key {label} not found in {backend}")]
    NotFound {
        /// Backend-level name of the key.
        label: String,
        /// Backend kind.
        backend: &'static str,
    },
    /// A key with this label already exists; generating would shadow it.
    #[error("key {label} already exists in {backend}")]
    AlreadyExists {
        /// Backend-level name of the key.
        label: String,
        /// Backend kind.
        backend: &'static str,
    },
    /// The device or token is not reachable right now (lost session, removed
    /// token, connector down). Retrying later may succeed.
    #[error("{backend} unavailable: {reason}")]
    Unavailable {
        /// Backend kind.
        backend: &'static str,
        /// What failed.
        reason: String,
    },
    /// The backend is configured wrongly or refuses the operation for good
    /// (module missing, wrong PIN, unsupported mechanism, bad key name).
    #[error("{backend}: {reason}")]
    Config {
        /// Backend kind.
        backend: &'static str,
        /// What is wrong and, where possible, how to fix it.
        reason: String,
    },
    /// The backend returned something that is not a valid Ed25519 key or
    /// signature.
    #[error("{backend} returned malformed data: {reason}")]
    Malformed {
        /// Backend kind.
        backend: &'static str,
        /// What was malformed.
        reason: String,
    },
    /// A file of the backend's own store could not be read or written.
    #[error("{what}: {source}")]
    Io {
        /// Which file or operation.
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl KeyError {
    /// True when the failure is transient and the device may come back.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, KeyError::Unavailable { .. })
    }
}
